"""Fine-tuning a pruned network without ever reviving a pruned weight.

Why masking the forward pass is not enough: with ``torch.nn.utils.prune`` the forward uses
``weight_orig * weight_mask``, so the gradient of ``weight_orig`` is already zero at pruned entries,
but weight decay (``g + wd * w``), momentum / Nesterov buffers and Adam's moments still move the
hidden entries of ``weight_orig``; for a plain parameter with zeroed entries they revive them
outright. :class:`MaskedOptimizer` closes every path: (1) gradient hooks multiply each gradient by the
mask (so clipping, closures and logging see masked gradients); (2) before ``step`` the ``.grad`` is
masked again; (3) after ``step`` the parameter *and* every optimizer state tensor of the parameter's
shape (momentum buffer, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``, ...) are multiplied by the
mask. The pruned entries of ``weight_orig`` are therefore exactly 0 after the first step (the original
values hidden behind the mask are dropped), and ``prune.remove`` leaves exact zeros.

Examples
--------
>>> import torch
>>> from latentkit.pruning.finetune import freeze_all_but
>>> nn = torch.nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
>>> len(freeze_all_but(model, ['1.weight']))
1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

__all__ = ["MaskedOptimizer", "model_masks", "freeze_all_but"]

MaskGetter = Callable[[], torch.Tensor]


def model_masks(model: nn.Module) -> dict[nn.Parameter, MaskGetter]:
    """``{<name>_orig parameter: getter of its current <name>_mask}`` for every pruned tensor of ``model``.

    Getters read the buffer at call time, so a later re-pruning (which replaces the buffer) is seen.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    out: dict[nn.Parameter, MaskGetter] = {}
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, torch_prune.BasePruningMethod):
                name = hook._tensor_name
                p = module._parameters[name + "_orig"]
                out[p] = lambda mod=module, n=name: mod._buffers[n + "_mask"]
    return out


class MaskedOptimizer:
    """Wrap a ``torch.optim.Optimizer`` so that masked entries stay exactly zero.

    Every other attribute (``param_groups``, ``state``, ``zero_grad``, ``state_dict``...) is the
    wrapped optimizer's. See the module docstring for what ``step`` does.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Any optimizer (SGD with momentum / Nesterov / weight decay, Adam, AdamW, ...).
    masks : mapping Parameter -> Tensor, optional
        Binary masks (same shape as the parameter; 1 = keep). Default: the ``weight_mask`` buffers of
        every pruned tensor of ``model`` (their ``weight_orig`` parameters are masked).
    model : nn.Module, optional
        Source of the masks when ``masks`` is None.
    hooks : bool
        Register gradient hooks (``grad * mask``) as well (default True). Call :meth:`remove` to
        take them away.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        masks: Mapping[torch.Tensor, torch.Tensor] | None = None,
        *,
        model: nn.Module | None = None,
        hooks: bool = True,
    ):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
        if masks is None and model is None:
            raise ValueError("give masks={param: mask} or model= (a model pruned with torch.nn.utils.prune)")
        self.optimizer = optimizer
        self._masks: list[tuple[torch.Tensor, MaskGetter]] = []
        if masks is None:
            items = list(model_masks(model).items())
            if not items:
                raise ValueError("model has no pruned tensor (no weight_orig / weight_mask): nothing to mask")
        else:
            items = []
            for p, m in masks.items():
                if not isinstance(p, torch.Tensor) or not isinstance(m, torch.Tensor):
                    raise TypeError("masks must map parameters (tensors) to mask tensors")
                if tuple(p.shape) != tuple(m.shape):
                    raise ValueError(
                        f"mask shape {tuple(m.shape)} differs from its parameter's {tuple(p.shape)}"
                    )
                if m.device != p.device:
                    raise ValueError(f"mask on {m.device} but parameter on {p.device}")
                mm = m.detach().to(p.dtype)
                items.append((p, (lambda t=mm: t)))
        self._masks = items
        self._handles = []
        if hooks:
            for p, get in self._masks:
                if p.requires_grad:
                    self._handles.append(p.register_hook(lambda g, get=get: g * get().to(g.dtype)))
        self.apply_masks()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["optimizer"], name)

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Multiply parameters, gradients and same-shaped optimizer state by their masks."""
        for p, get in self._masks:
            m = get().to(p.dtype)
            p.mul_(m)
            if p.grad is not None:
                p.grad.mul_(m)
            for v in self.optimizer.state.get(p, {}).values():
                if isinstance(v, torch.Tensor) and v.shape == p.shape:
                    v.mul_(m.to(v.dtype))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        with torch.no_grad():
            for p, get in self._masks:
                if p.grad is not None:
                    p.grad.mul_(get().to(p.grad.dtype))
        loss = self.optimizer.step(closure)
        self.apply_masks()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def remove(self) -> None:
        """Remove the gradient hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []


def freeze_all_but(model: nn.Module, params: Iterable[str | torch.Tensor | nn.Module]) -> list[nn.Parameter]:
    """Set ``requires_grad=False`` on every parameter of ``model`` except ``params``; return those.

    ``params`` may hold parameter names (``"fc.weight"`` also finds ``"fc.weight_orig"`` of a pruned
    layer), parameters, or modules (all their parameters). The paper fine-tunes only the unpruned
    weights of the last layer: ``freeze_all_but(model, [name + ".weight"])`` with ``name`` from
    :func:`~latentkit.pruning.last_layer`, then a :class:`MaskedOptimizer` over the result.
    Note that BatchNorm running statistics still update in ``train()`` mode; keep the frozen
    backbone in ``eval()`` mode if they must not change.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if isinstance(params, (str, nn.Module, torch.Tensor)) or not hasattr(params, "__iter__"):
        raise TypeError(
            f"params must be a list of parameter names, parameters or modules; got {type(params).__name__}"
        )
    named = dict(model.named_parameters())
    by_id = {id(p): p for p in named.values()}
    keep: dict[int, nn.Parameter] = {}
    for item in params:
        if isinstance(item, str):
            p = named.get(item, named.get(item + "_orig"))
            if p is None:
                raise ValueError(f"no parameter named {item!r}; known: {sorted(named)[:8]}...")
            keep[id(p)] = p
        elif isinstance(item, nn.Module):
            for p in item.parameters():
                if id(p) not in by_id:
                    raise ValueError("module is not part of model")
                keep[id(p)] = p
        elif isinstance(item, torch.Tensor):
            if id(item) not in by_id:
                raise ValueError("parameter is not part of model")
            keep[id(item)] = by_id[id(item)]
        else:
            raise TypeError(f"params must be names, parameters or modules; got {type(item).__name__}")
    if not keep:
        raise ValueError("params is empty: nothing would be trained")
    for p in named.values():
        p.requires_grad_(id(p) in keep)
    return list(keep.values())
