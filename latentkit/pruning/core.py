"""``prune``: masks for any ``nn.Module``, computed on the weights' device and applied through
``torch.nn.utils.prune`` (``weight_orig`` / ``weight_mask`` / forward pre-hook / ``prune.remove``).

Composition with an earlier pruning
-----------------------------------
Pruning a layer that is already pruned (by latentkit or by ``torch.nn.utils.prune``) *composes*, like
torch's ``PruningContainer``: the new mask is computed among the weights that are still present,
``amount`` counts those surviving weights (a fraction of them, or a number of them), and the final
mask is the product of the old and the new one, so a pruned weight stays pruned. Pass
``existing="replace"`` to drop the earlier mask first (the dense ``weight_orig`` comes back), or
``existing="error"`` to refuse pre-pruned layers. Composition is impossible, and raises, when the
weight is reparametrised by ``torch.nn.utils.parametrize``, when a module has ``weight_orig`` /
``weight_mask`` but no pruning hook, when a mask is not binary, and for ``spectral`` pruning whose
following layer is already pruned (its rewiring writes into entries that mask would hide).

Examples
--------
>>> import torch
>>> from latentkit.pruning.core import select_layers
>>> nn = torch.nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> [name for name, _ in select_layers(model, 'last')]
['2']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from .._validation import all_finite, check_choice, check_int
from ..modules import dense_param, effective_weight, last_layer, prunable_layers, pruning_mask
from ..options import EXISTING_MASKS, LAYER_SELECTIONS, PRUNING_METHODS, PRUNING_SCOPES
from . import soft
from .methods import OPTION_CHECKS, PruneContext, PruningMethod, check_amount, prune_entries
from .registry import REGISTRY
from .state import PrecomputedMask, check_same_existing, share_mask, tie_groups, unprune

__all__ = [
    "PruneResult",
    "prune",
    "select_layers",
    "sparsity_report",
    "soft_sparsity",
]

LayerSpec = str | Sequence[str] | Callable[[str, nn.Module], bool]


def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor) or "weight_orig" in module._parameters


def select_layers(model: nn.Module, layers: LayerSpec = "last") -> list[tuple[str, nn.Module]]:
    """Resolve a layer specification to ``[(name, module), ...]`` in module order.

    ``"last"``: the final ``nn.Linear``; ``"all"``: every Linear and Conv; a list of module names
    (any module with a ``weight``); or a predicate ``f(name, module) -> bool`` over the modules
    that have a ``weight``. Raises ``ValueError`` when nothing matches or a name is unknown.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if isinstance(layers, str):
        check_choice(layers, "layers", LAYER_SELECTIONS)
        chosen = [last_layer(model)] if layers == "last" else prunable_layers(model)
    elif callable(layers):
        chosen = [(n, m) for n, m in model.named_modules() if _has_weight(m) and layers(n, m)]
    elif isinstance(layers, (list, tuple)):
        names = dict(model.named_modules())
        for n in layers:
            if not isinstance(n, str):
                raise TypeError(f"layer names must be strings; got {type(n).__name__}")
            if n not in names:
                raise ValueError(f"no module named {n!r} in the model")
            if not _has_weight(names[n]):
                raise ValueError(f"module {n!r} ({type(names[n]).__name__}) has no weight to prune")
        wanted = set(layers)
        chosen = [(n, m) for n, m in model.named_modules() if n in wanted]
    else:
        raise TypeError("layers must be 'last', 'all', a list of module names or a predicate(name, module)")
    if not chosen:
        raise ValueError(f"no prunable layer matched layers={layers!r}")
    return chosen


def sparsity_report(model: nn.Module, layers: LayerSpec = "all") -> pd.DataFrame:
    """Per-layer sparsity: columns ``layer, shape, parameters, zeros, sparsity``.

    ``zeros`` counts pruned entries (``weight_mask == 0``) of a pruned layer and exact zeros of the
    weight otherwise; ``sparsity = zeros / parameters``. The last row, ``layer == "(total)"``, sums
    the selected layers (its sparsity is the achieved global sparsity).
    """
    rows = []
    for name, module in select_layers(model, layers):
        mask = pruning_mask(module, check=False)
        t = mask if mask is not None else module.weight
        zeros = int(t.numel() - torch.count_nonzero(t).item())
        rows.append({"layer": name, "shape": tuple(t.shape), "parameters": int(t.numel()), "zeros": zeros})
    tot_p = sum(r["parameters"] for r in rows)
    tot_z = sum(r["zeros"] for r in rows)
    rows.append({"layer": "(total)", "shape": None, "parameters": tot_p, "zeros": tot_z})
    df = pd.DataFrame(rows)
    df["sparsity"] = df["zeros"] / df["parameters"]
    return df


@dataclass
class PruneResult:
    """What :func:`prune` did.

    Parameters
    ----------
    amount : float or int
        The amount given to :func:`prune` (fraction or count).

    Attributes
    ----------
    masks : dict[str, Tensor]
        Module name -> its ``weight_mask`` buffer (the live tensor, on the weights' device; for
        ``spectral`` also the rewired following layer).
    report : pandas.DataFrame
        :func:`sparsity_report` of the touched layers (last row ``"(total)"``).
    sparsity : float
        Achieved sparsity over the touched layers (pruned entries / entries).
    method, amount, scope
        As given to :func:`prune`.
    info : dict
        Method details: ``pruned`` (entries or rows pruned by this call), ``epsilon`` for
        ``lq_adaptive`` (the achieved budget multiplier), ``spectral`` per-layer selections, ...
    """

    masks: dict[str, torch.Tensor]
    report: pd.DataFrame
    sparsity: float
    method: str
    amount: Any
    scope: str
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"PruneResult(method={self.method!r}, amount={self.amount!r}, scope={self.scope!r}, "
            f"layers={list(self.masks)}, sparsity={self.sparsity:.4g})"
        )


# ----------------------------------------------------------------------------------------------
# prune
# ----------------------------------------------------------------------------------------------
def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = REGISTRY[method].options
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(
            f"unexpected option(s) {sorted(unknown)} for method {method!r}; allowed: {sorted(allowed)}"
        )
    return dict(options)


def _check_weights(chosen: Sequence[tuple[str, nn.Module]]) -> None:
    """Refuse layers whose dense weight is not a finite floating tensor (NaN would rank above +inf)."""
    for name, module in chosen:
        w = dense_param(module)
        if not w.is_floating_point():
            raise TypeError(f"layer {name!r} has a weight of dtype {w.dtype}; pruning needs floating weights")
        if not all_finite(w.detach()):
            raise ValueError(
                f"layer {name!r} ({type(module).__name__}) has NaN or infinite weights; "
                "prune needs finite weights to rank them"
            )


def _existing_masks(chosen: Sequence[tuple[str, nn.Module]], existing: str) -> dict[str, torch.Tensor | None]:
    masks_before: dict[str, torch.Tensor | None] = {}
    for name, module in chosen:
        m = pruning_mask(module)
        if m is not None and existing == "error":
            raise ValueError(
                f"layer {name!r} is already pruned (existing='error'); use existing='compose' or 'replace'"
            )
        if m is not None and existing == "replace":
            unprune(module)
            m = None
        masks_before[name] = m
    return masks_before


def _untie(model: nn.Module, chosen: list[tuple[str, nn.Module]], method: str, existing: str):
    """Owners of tied weights (one per shared tensor) and ``{owner: its tied modules}``."""
    ties = tie_groups(model, chosen)
    if ties and method == "spectral":
        owner, members = next(iter(ties.items()))
        raise ValueError(
            f"layers {owner!r} and {members[0][0]!r} share one weight tensor (tied weights); spectral "
            "pruning rewires the next layer's weights and cannot keep them tied: untie them first"
        )
    modules = dict(chosen)
    for owner, members in ties.items():
        if existing == "replace":
            for _, m in members:
                unprune(m)
        else:
            check_same_existing(owner, pruning_mask(modules[owner]), members)
    followers = {id(m) for members in ties.values() for _, m in members}
    return [(n, m) for n, m in chosen if id(m) not in followers], ties


def _apply(entry: PruningMethod, chosen, ctx: PruneContext, ties) -> None:
    """Apply the new keep-masks through torch's pruning (composing) and tie the shared tensors."""
    for name, module in chosen:
        keep = ctx.new_masks.pop(name)
        before = ctx.masks_before[name]
        if entry.transform is not None:
            entry.transform(module, before)
        pruned_before = 0 if before is None else int(before.numel() - torch.count_nonzero(before).item())
        ctx.info["pruned"][name] = int(keep.numel() - torch.count_nonzero(keep).item()) - pruned_before
        PrecomputedMask.apply(module, "weight", mask=keep, method=entry.name, amount=ctx.amount, inplace=True)
        del keep
        if name in ties:
            share_mask(module, ties[name], entry.name, ctx.amount)


def _result(model, touched, ctx: PruneContext, method: str) -> PruneResult:
    masks = {n: m._buffers["weight_mask"] for n, m in touched}
    report = sparsity_report(model, [n for n, _ in touched])
    return PruneResult(
        masks, report, float(report["sparsity"].iloc[-1]), method, ctx.amount, ctx.scope, ctx.info
    )


def prune(
    model: nn.Module,
    method: str,
    amount: int | float,
    layers: LayerSpec = "last",
    scope: str = "layer",
    seed: int | None = None,
    *,
    existing: str = "compose",
    **options: Any,
) -> PruneResult:
    r"""Prune ``model`` in place with ``method`` and return the masks and a sparsity report.

    Masks are computed on the weights' device (no host copies of weights, no Python loops over
    entries) and applied with ``torch.nn.utils.prune`` through :class:`PrecomputedMask`: each
    pruned module gets ``weight_orig`` (parameter), ``weight_mask`` (buffer, weight dtype) and a
    forward pre-hook; ``torch.nn.utils.prune.remove(module, "weight")`` makes it permanent.

    Parameters
    ----------
    model : nn.Module
    method : str
        One of

        * ``"lowest"``  prune the smallest :math:`|w|` (L1 unstructured);
        * ``"highest"`` prune the largest :math:`|w|`, the other weights untouched;
        * ``"highest_reference"`` the reference code's variant: same mask as ``highest`` but every
          surviving weight is *replaced* by :math:`|w| - \max|w|` (max over the layer's present
          weights) before masking, so the survivors change value and sign (all become <= 0);
        * ``"random"`` a uniformly random subset of exactly the asked size (``seed``);
        * ``"structured"`` whole output neurons / conv output channels (rows along ``dim``, default
          0) with the smallest norm (option ``norm=1`` or ``2``, default 2); ``amount`` counts rows;
        * ``"lq_adaptive"`` per-neuron adaptive l_q rule (:func:`~latentkit.pruning.lq_adaptive_mask`,
          options ``q`` in (0, 1), default 0.5): the budget multiplier epsilon is the one that prunes
          exactly ``amount`` (reported in ``info["epsilon"]``);
        * ``"spectral"`` Suzuki et al. node selection with next-layer rewiring (options ``inputs``
          (required, a batch for ``model``), ``lam`` (default ``1e-2 * tr(S) / F``), ``next_layer``,
          ``forward``, ``theta`` >= 0 (default 0), the weight of the output-aware term in the
          criterion :math:`L_A + \theta L_B`); ``amount`` counts nodes (output neurons/channels);
          scope must be ``"layer"``; the following layer's weights are rewritten (see
          :mod:`latentkit.pruning.spectral` and :mod:`latentkit.pruning.spectral_prune`).
    amount : float in [0, 1] or int >= 0
        Fraction (rounded like torch: ``round(amount * n)``) or count of the *present* entries
        (rows/nodes for structured/spectral) to prune, per layer (``scope="layer"``) or over all the
        selected layers together (``scope="global"``).
    layers : "last", "all", list of names, or predicate(name, module)
        See :func:`select_layers`.
    scope : "layer" or "global"
        ``global``: one threshold over the scores of all selected layers.
    seed : int, optional
        Seed of the ``torch.Generator`` (on the weights' device) for ``random``; None draws one from
        the global torch RNG (reproducible after ``torch.manual_seed``).
    existing : "compose", "replace" or "error"
        What to do with layers that are already pruned (module docstring).
    **options
        Method-specific keywords (e.g. ``q`` and ``epsilon`` for ``lq_adaptive``, ``theta`` for
        ``spectral``), checked against the method's options
        (:data:`~latentkit.pruning.methods.OPTION_CHECKS`); unknown ones raise ``TypeError``.

    Returns
    -------
    PruneResult

    Notes
    -----
    Exact counts and ties: the k entries pruned are the k smallest (largest for ``highest``) under
    the order (score, position), position being the flat index within a layer, layers in module
    order for ``scope="global"``. Already pruned entries are never selected again.

    Tied weights (one tensor shared by several modules) are pruned once: the mask is computed on
    the first selected module that uses the tensor and shared by every module that uses it (see
    :mod:`latentkit.pruning.state`); ``spectral`` refuses them. Weights with NaN or infinite
    entries are refused (``ValueError`` naming the layer).

    Methods are dispatched through :data:`latentkit.pruning.REGISTRY`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_choice(method, "method", PRUNING_METHODS)
    check_choice(scope, "scope", PRUNING_SCOPES)
    check_choice(existing, "existing", EXISTING_MASKS)
    amount = check_amount(amount)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    entry = REGISTRY[method]
    options = _check_options(method, options)
    chosen = select_layers(model, layers)
    if method in OPTION_CHECKS:
        OPTION_CHECKS[method](options)
    if scope not in entry.scopes:
        raise ValueError(f"{method} pruning selects nodes layer by layer; use scope='layer'")
    _check_weights(chosen)
    owners, ties = _untie(model, chosen, method, existing)
    ctx = PruneContext(amount, scope, seed, options, _existing_masks(owners, existing))
    if entry.model is not None:
        info = entry.model(model, owners, ctx)
        touched = list(info.pop("touched"))
        return _result(model, touched, ctx, method)
    groups = [owners] if scope == "global" else [[c] for c in owners]
    for group in groups:
        where = f"layer {group[0][0]!r}" if scope == "layer" else "the selected layers"
        if entry.group is not None:
            entry.group(group, ctx, where)
        else:
            prune_entries(entry, group, ctx, where)
    _apply(entry, owners, ctx, ties)
    return _result(model, chosen, ctx, method)


def soft_sparsity(
    model: nn.Module, layers: LayerSpec = "all", q: float = 0.5, p: float = 1.0, pq_q: float = 2.0
) -> pd.DataFrame:
    """Per-layer soft sparsity table (pandas): ``layer, parameters, lq_index, lq_index_neuron_mean,
    pq_index, pq_index_neuron_mean`` of each selected layer's *effective* weight (masked if pruned).

    ``lq_index`` is :func:`lq_index` (order ``q``) of the whole flattened weight, ``pq_index`` is
    :func:`pq_index` with orders ``(p, pq_q)``; the ``*_neuron_mean`` columns average the per-neuron
    (row) values.
    """
    rows = []
    for name, module in select_layers(model, layers):
        w = effective_weight(module)
        rows.append(
            {
                "layer": name,
                "parameters": int(w.numel()),
                "lq_index": float(soft.lq_index(w, q)),
                "lq_index_neuron_mean": float(soft.lq_index(w, q, dim=0).mean()),
                "pq_index": float(soft.pq_index(w, p, pq_q)),
                "pq_index_neuron_mean": float(soft.pq_index(w, p, pq_q, dim=0).mean()),
            }
        )
    return pd.DataFrame(rows)
