"""The ``torch.nn.utils.prune`` state of a module: applying a precomputed mask, undoing it, tied weights.

A pruned module holds ``weight_orig`` (the dense parameter), ``weight_mask`` (a buffer) and a forward
pre-hook that writes ``weight = weight_orig * weight_mask`` before every forward pass
(:mod:`torch.nn.utils.prune`). :class:`PrecomputedMask` is a pruning method whose mask was computed
beforehand by :func:`latentkit.pruning.prune`.

Tied weights
------------
When several modules share one weight tensor (``b.weight = a.weight``), that tensor is pruned once:
:func:`tie_groups` finds the modules that share it, the mask is computed on the first of them (the
*owner*, in module order) and :func:`share_mask` makes every other module of the group use the
owner's ``weight_orig`` parameter *and* the owner's ``weight_mask`` buffer (the same tensor objects).
So one tensor has one mask: the forward passes of all the modules agree, :class:`MaskedOptimizer`
(one mask per parameter) masks what every module sees, and :func:`sparsity_report` counts what the
optimiser keeps.

Examples
--------
>>> import torch
>>> from latentkit.pruning import prune
>>> from latentkit.pruning.state import unprune
>>> layer = torch.nn.Linear(4, 2)
>>> _ = prune(layer, 'lowest', 0.5, layers='all')
>>> hasattr(unprune(layer), 'weight_orig')
False
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..modules import pruning_hook, pruning_mask

__all__ = ["PrecomputedMask", "unprune", "tie_groups", "share_mask", "check_same_existing"]


class PrecomputedMask(torch_prune.BasePruningMethod):
    """A ``torch.nn.utils.prune`` method whose mask was computed beforehand (by :func:`prune`).

    ``PRUNING_TYPE = "global"`` so that, inside a ``PruningContainer`` (a tensor pruned twice), it
    receives the whole tensor and the previous mask; :meth:`compute_mask` returns
    ``default_mask * mask``. With ``inplace=True`` the product is written into ``default_mask`` (the
    fresh buffer torch allocates in ``apply``), which saves one tensor of the layer's size.

    Attributes ``method`` and ``amount`` record what produced the mask.

    Parameters
    ----------
    mask : torch.Tensor
        The 0/1 mask, with the pruned tensor's shape.
    method : str
        Name of the method that computed the mask (recorded).
    amount : float or int, optional
        The amount asked for (recorded, not used).
    inplace : bool
        Write the product into torch's fresh default mask instead of a new tensor.
    """

    PRUNING_TYPE = "global"

    def __init__(
        self, mask: torch.Tensor, method: str = "precomputed", amount: Any = None, inplace: bool = False
    ) -> None:
        self.mask = mask
        self.method = method
        self.amount = amount
        self.inplace = inplace

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        """``default_mask * mask`` (in place into ``default_mask`` when ``inplace``)."""
        if tuple(default_mask.shape) != tuple(self.mask.shape):
            raise ValueError(
                f"mask shape {tuple(self.mask.shape)} does not match the tensor {tuple(default_mask.shape)}"
            )
        if self.inplace:
            out = default_mask.mul_(self.mask)
        else:
            out = default_mask * self.mask.to(default_mask.dtype)
        self.mask = None  # the module's buffer is the one source of truth from here on
        return out

    @classmethod
    def apply(cls, module, name, mask, method="precomputed", amount=None, inplace=False):  # type: ignore[override]
        """Prune ``module.<name>`` with ``mask`` (composing with an existing mask)."""
        return super().apply(module, name, mask=mask, method=method, amount=amount, inplace=inplace)


def unprune(module: nn.Module, name: str = "weight") -> nn.Module:
    """Undo pruning without baking the mask in: ``<name>`` becomes ``<name>_orig`` again (dense).

    Unlike ``torch.nn.utils.prune.remove`` (which keeps the zeros), the weights hidden by the mask
    come back with whatever values ``<name>_orig`` holds. No-op on a tensor that is not pruned.
    """
    k, hook = pruning_hook(module, name)
    if hook is None:
        return module
    del module._forward_pre_hooks[k]
    orig = module._parameters.pop(name + "_orig")
    module._buffers.pop(name + "_mask", None)
    if hasattr(module, name):
        delattr(module, name)
    module.register_parameter(name, orig)
    return module


def tie_groups(
    model: nn.Module, chosen: Sequence[tuple[str, nn.Module]]
) -> dict[str, list[tuple[str, nn.Module]]]:
    """``{owner name: [(name, module), ...]}`` of the other modules that share each chosen weight.

    Two modules share a weight when their dense tensors (``weight_orig`` if pruned, else ``weight``)
    are one storage of the same shape. The owner is the first chosen module of the group in module
    order; modules of ``model`` outside ``chosen`` that share the tensor are listed too (the tensor
    is pruned wherever it is used). Chosen modules without a tie do not appear.
    """
    by_key: dict[tuple[int, int, tuple[int, ...]], list[tuple[str, nn.Module]]] = {}
    for n, m in model.named_modules(remove_duplicate=False):
        t = m._parameters.get("weight_orig", m._parameters.get("weight"))
        if isinstance(t, torch.Tensor) and t.numel() > 0 and t.device.type != "meta":
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
            if all(mod is not m for _, mod in by_key.setdefault(key, [])):
                by_key[key].append((n, m))
    groups: dict[str, list[tuple[str, nn.Module]]] = {}
    for name, module in chosen:
        members = next((v for v in by_key.values() if any(mod is module for _, mod in v)), [])
        if len(members) > 1 and not any(any(m is module for _, m in v) for v in groups.values()):
            groups[name] = [(n, m) for n, m in members if m is not module]
    return groups


def share_mask(owner: nn.Module, others: Sequence[tuple[str, nn.Module]], method: str, amount: Any) -> None:
    """Make every module of ``others`` use ``owner``'s ``weight_orig`` and ``weight_mask`` (one mask).

    Any pruning state of the others is dropped first (they share the owner's tensor, so the owner's
    mask, computed among the weights still present, already composes with it).

    Parameters
    ----------
    amount : int or float
        The amount recorded on the shared pruning method (see :class:`PrecomputedMask`).
    """
    orig = owner._parameters["weight_orig"]
    mask = owner._buffers["weight_mask"]
    for _, m in others:
        k, hook = pruning_hook(m)
        if hook is not None:
            del m._forward_pre_hooks[k]
            m._parameters.pop("weight_orig", None)
            m._buffers.pop("weight_mask", None)
        m._parameters.pop("weight", None)
        if "weight" in m.__dict__:
            del m.__dict__["weight"]
        m.register_parameter("weight_orig", orig)
        m.register_buffer("weight_mask", mask)
        hook = PrecomputedMask(None, method=method, amount=amount)  # type: ignore[arg-type]
        hook._tensor_name = "weight"
        m.register_forward_pre_hook(hook)
        m.weight = orig * mask


def check_same_existing(owner: str, cand: Any, members: Sequence[tuple[str, nn.Module]]) -> None:
    """Raise ``ValueError`` if a module tied to ``owner`` carries a different mask than the owner's.

    Parameters
    ----------
    cand : torch.Tensor or None
        The owner's existing mask (None when the owner is not pruned yet).
    """
    for n, m in members:
        other = pruning_mask(m)
        same = (cand is None and other is None) or (
            cand is not None and other is not None and torch.equal(cand != 0, other != 0)
        )
        if not same:
            raise ValueError(
                f"layers {owner!r} and {n!r} share one weight tensor (tied weights) but carry different "
                "pruning masks; call latentkit.pruning.unprune on both (or prune with existing='replace')"
            )
