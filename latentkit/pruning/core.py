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
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

from .._validation import check_choice, check_fraction, check_int, check_positive
from . import soft, spectral
from ._select import ScoreSource, select_smallest, tensor_source

__all__ = [
    "METHODS",
    "PrecomputedMask",
    "PruneResult",
    "prune",
    "last_layer",
    "prunable_layers",
    "select_layers",
    "sparsity_report",
    "pruning_mask",
    "unprune",
    "soft_sparsity",
    "effective_weight",
]

METHODS = ("lowest", "highest", "highest_reference", "random", "structured", "lq_adaptive", "spectral")
_PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)
LayerSpec = Union[str, Sequence[str], Callable[[str, nn.Module], bool]]


class PrecomputedMask(torch_prune.BasePruningMethod):
    """A ``torch.nn.utils.prune`` method whose mask was computed beforehand (by :func:`prune`).

    ``PRUNING_TYPE = "global"`` so that, inside a ``PruningContainer`` (a tensor pruned twice), it
    receives the whole tensor and the previous mask; :meth:`compute_mask` returns
    ``default_mask * mask``. With ``inplace=True`` the product is written into ``default_mask`` (the
    fresh buffer torch allocates in ``apply``), which saves one tensor of the layer's size.

    Attributes ``method`` and ``amount`` record what produced the mask.
    """

    PRUNING_TYPE = "global"

    def __init__(self, mask: torch.Tensor, method: str = "precomputed", amount: Any = None, inplace: bool = False):
        self.mask = mask
        self.method = method
        self.amount = amount
        self.inplace = inplace

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        if tuple(default_mask.shape) != tuple(self.mask.shape):
            raise ValueError(f"mask shape {tuple(self.mask.shape)} does not match the tensor {tuple(default_mask.shape)}")
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


# ----------------------------------------------------------------------------------------------
# layers
# ----------------------------------------------------------------------------------------------

def _has_weight(module: nn.Module) -> bool:
    return isinstance(getattr(module, "weight", None), torch.Tensor) or "weight_orig" in module._parameters


def prunable_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Every ``nn.Linear`` and convolution (``_ConvNd``) of ``model``, in module order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _PRUNABLE)]


def last_layer(model: nn.Module) -> Tuple[str, nn.Linear]:
    """``(name, module)`` of the final ``nn.Linear`` in module order (the paper's pruned layer)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    lin = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not lin:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return lin[-1]


def select_layers(model: nn.Module, layers: LayerSpec = "last") -> List[Tuple[str, nn.Module]]:
    """Resolve a layer specification to ``[(name, module), ...]`` in module order.

    ``"last"``: the final ``nn.Linear``; ``"all"``: every Linear and Conv; a list of module names
    (any module with a ``weight``); or a predicate ``f(name, module) -> bool`` over the modules
    that have a ``weight``. Raises ``ValueError`` when nothing matches or a name is unknown.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if isinstance(layers, str):
        check_choice(layers, "layers", ("last", "all"))
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


# ----------------------------------------------------------------------------------------------
# pruning state of one module
# ----------------------------------------------------------------------------------------------

def _pruning_hook(module: nn.Module, name: str = "weight"):
    hooks = [(k, h) for k, h in module._forward_pre_hooks.items()
             if isinstance(h, torch_prune.BasePruningMethod) and h._tensor_name == name]
    return hooks[0] if hooks else (None, None)


def pruning_mask(module: nn.Module, name: str = "weight", *, check: bool = True) -> Optional[torch.Tensor]:
    """The current ``<name>_mask`` buffer of a pruned module, or None if the tensor is not pruned.

    Raises ``ValueError`` for states :func:`prune` cannot compose with (see module docstring).
    """
    if parametrize.is_parametrized(module, name):
        raise ValueError(f"{type(module).__name__}.{name} is reparametrised by torch.nn.utils.parametrize; "
                         "latentkit cannot compose a pruning mask with it")
    _, hook = _pruning_hook(module, name)
    has_orig = name + "_orig" in module._parameters
    has_mask = name + "_mask" in module._buffers
    if hook is None:
        if has_orig or has_mask:
            raise ValueError(f"{type(module).__name__} has {name}_orig/{name}_mask but no pruning hook; "
                             "its pruning state is inconsistent")
        return None
    if not (has_orig and has_mask):
        raise ValueError(f"{type(module).__name__} has a pruning hook but no {name}_orig/{name}_mask")
    mask = module._buffers[name + "_mask"]
    orig = module._parameters[name + "_orig"]
    if tuple(mask.shape) != tuple(orig.shape):
        raise ValueError(f"{name}_mask shape {tuple(mask.shape)} differs from {name}_orig {tuple(orig.shape)}")
    if check and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{type(module).__name__}.{name}_mask is not binary (0/1); cannot compose with it")
    return mask


def _dense_param(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The trainable tensor: ``<name>_orig`` when pruned, else ``<name>``."""
    return module._parameters.get(name + "_orig", getattr(module, name))


def effective_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The weight the forward pass uses, ``<name>_orig * <name>_mask`` if pruned (fresh, detached)."""
    mask = pruning_mask(module, name, check=False)
    if mask is None:
        return getattr(module, name).detach()
    return (module._parameters[name + "_orig"] * mask).detach()


def unprune(module: nn.Module, name: str = "weight") -> nn.Module:
    """Undo pruning without baking the mask in: ``<name>`` becomes ``<name>_orig`` again (dense).

    Unlike ``torch.nn.utils.prune.remove`` (which keeps the zeros), the weights hidden by the mask
    come back with whatever values ``<name>_orig`` holds. No-op on a tensor that is not pruned.
    """
    k, hook = _pruning_hook(module, name)
    if hook is None:
        return module
    del module._forward_pre_hooks[k]
    orig = module._parameters.pop(name + "_orig")
    module._buffers.pop(name + "_mask", None)
    if hasattr(module, name):
        delattr(module, name)
    module.register_parameter(name, orig)
    return module


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------

def sparsity_report(model: nn.Module, layers: LayerSpec = "all") -> pd.DataFrame:
    """Per-layer sparsity: columns ``layer, shape, parameters, zeros, sparsity``.

    ``zeros`` counts pruned entries (``weight_mask == 0``) of a pruned layer and exact zeros of the
    weight otherwise; ``sparsity = zeros / parameters``. The last row, ``layer == "(total)"``, sums
    the selected layers (its sparsity is the achieved global sparsity).
    """
    rows = []
    for name, module in select_layers(model, layers):
        mask = pruning_mask(module, check=False)
        t = mask if mask is not None else getattr(module, "weight")
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

    masks: Dict[str, torch.Tensor]
    report: pd.DataFrame
    sparsity: float
    method: str
    amount: Any
    scope: str
    info: Dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"PruneResult(method={self.method!r}, amount={self.amount!r}, scope={self.scope!r}, "
                f"layers={list(self.masks)}, sparsity={self.sparsity:.4g})")


# ----------------------------------------------------------------------------------------------
# prune
# ----------------------------------------------------------------------------------------------

def _check_amount(amount: Any) -> Union[int, float]:
    if isinstance(amount, bool):
        raise TypeError("amount must be a fraction (float in [0, 1]) or a count (int >= 0); got a bool")
    if isinstance(amount, (numbers.Integral, np.integer)):
        return check_int(amount, "amount", minimum=0)
    if isinstance(amount, (numbers.Real, np.floating)):
        return check_fraction(amount, "amount")
    raise TypeError(f"amount must be a fraction (float in [0, 1]) or a count (int >= 0); got {type(amount).__name__}")


def _count(amount: Union[int, float], n: int, where: str) -> int:
    """Number of entries to prune among ``n`` candidates (torch's rule: round(amount * n) for fractions)."""
    if isinstance(amount, int):
        if amount > n:
            raise ValueError(f"amount={amount} is larger than the {n} prunable entries of {where}")
        return amount
    return int(round(amount * n))


def _magnitude_source(param: torch.Tensor, cand: Optional[torch.Tensor]) -> ScoreSource:
    flat = param.detach().reshape(-1)
    return ScoreSource(flat.numel(), flat.device, lambda a, b: flat[a:b].abs(),
                       None if cand is None else cand.reshape(-1))


def _random_source(param: torch.Tensor, cand: Optional[torch.Tensor], gen: torch.Generator) -> ScoreSource:
    state = gen.get_state()
    dtype = torch.float64 if param.dtype == torch.float64 else torch.float32

    def reset():
        gen.set_state(state)

    def make(a, b):
        return torch.rand(b - a, generator=gen, device=param.device, dtype=dtype)

    src = ScoreSource(param.numel(), param.device, make, None if cand is None else cand.reshape(-1), reset)
    # advance the generator past this layer so the next layer draws fresh numbers
    for _ in src.chunks():
        pass
    return src


def _generator(seed: Optional[int], device: torch.device) -> torch.Generator:
    if seed is None:  # draw a seed from the global RNG: reproducible under torch.manual_seed
        seed = int(torch.randint(0, 2**62, (1,)).item())
    seed = check_int(seed, "seed", minimum=0)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _row_view(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.movedim(dim, 0).reshape(t.shape[dim], -1)


def prune(
    model: nn.Module,
    method: str,
    amount: Union[int, float],
    layers: LayerSpec = "last",
    scope: str = "layer",
    seed: Optional[int] = None,
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
          ``forward``); ``amount`` counts nodes (output neurons/channels); scope must be ``"layer"``;
          the following layer's weights are rewritten (see :mod:`latentkit.pruning.spectral`).
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

    Returns
    -------
    PruneResult

    Notes
    -----
    Exact counts and ties: the k entries pruned are the k smallest (largest for ``highest``) under
    the order (score, position), position being the flat index within a layer, layers in module
    order for ``scope="global"``. Already pruned entries are never selected again.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_choice(method, "method", METHODS)
    check_choice(scope, "scope", ("layer", "global"))
    check_choice(existing, "existing", ("compose", "replace", "error"))
    amount = _check_amount(amount)
    allowed = {
        "structured": {"norm", "dim"},
        "lq_adaptive": {"q"},
        "spectral": {"inputs", "lam", "next_layer", "forward"},
    }.get(method, set())
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unexpected option(s) {sorted(unknown)} for method {method!r}; allowed: {sorted(allowed)}")
    chosen = select_layers(model, layers)

    masks_before: Dict[str, Optional[torch.Tensor]] = {}
    for name, module in chosen:
        m = pruning_mask(module)
        if m is not None and existing == "error":
            raise ValueError(f"layer {name!r} is already pruned (existing='error'); use existing='compose' or 'replace'")
        if m is not None and existing == "replace":
            unprune(module)
            m = None
        masks_before[name] = m

    if method == "spectral":
        if scope != "layer":
            raise ValueError("spectral pruning selects nodes layer by layer; use scope='layer'")
        info = _prune_spectral(model, chosen, amount, masks_before, **options)
        touched = list(info["touched"])
        masks = {n: m._buffers["weight_mask"] for n, m in touched}
        report = sparsity_report(model, [n for n, _ in touched])
        del info["touched"]
        return PruneResult(masks, report, float(report["sparsity"].iloc[-1]), method, amount, scope, info)

    groups = [chosen] if scope == "global" else [[c] for c in chosen]
    info: Dict[str, Any] = {"pruned": {}}
    new_masks: Dict[str, torch.Tensor] = {}
    gens: Dict[torch.device, torch.Generator] = {}
    for group in groups:
        where = f"layer {group[0][0]!r}" if scope == "layer" else "the selected layers"
        if method == "structured":
            _structured(group, amount, masks_before, new_masks, info, where, **options)
            continue
        sources = []
        group_numel = sum(_dense_param(m).numel() for _, m in group)
        for name, module in group:
            param = _dense_param(module)
            cand = masks_before[name]
            if method in ("lowest", "highest", "highest_reference"):
                sources.append(_magnitude_source(param, cand))
            elif method == "random":
                dev = param.device
                if dev not in gens:
                    gens[dev] = _generator(seed, dev)
                sources.append(_random_source(param, cand, gens[dev]))
            elif method == "lq_adaptive":
                q = options.get("q", 0.5)
                q = check_positive(q, "q")
                if not q < 1:
                    raise ValueError(f"q must lie in (0, 1); got {q}")
                keep = 1.0 - (amount if isinstance(amount, float) else min(1.0, amount / group_numel))
                sc = soft.lq_tail_scores(param, q=q, keep_fraction=max(keep, 1e-12), candidates=cand)
                sources.append(tensor_source(sc, cand))
        n_cand = sum(s.num_candidates() for s in sources)
        k = _count(amount, n_cand, where)
        if method in ("highest", "highest_reference"):
            keep_sel = select_smallest(sources, n_cand - k)
            for (name, module), sel in zip(group, keep_sel):
                new_masks[name] = sel.reshape(module.weight.shape)
        else:
            pruned_sel = select_smallest(sources, k)
            if method == "lq_adaptive" and k > 0:
                info.setdefault("epsilon", {})[group[0][0] if scope == "layer" else "(global)"] = _eps_of(sources, pruned_sel)
            for (name, module), sel, src in zip(group, pruned_sel, sources):
                keep = sel.logical_not_()  # in place: no second copy of the masks
                if src.candidates is not None:
                    keep &= src.candidates != 0
                new_masks[name] = keep.reshape(module.weight.shape)
            del pruned_sel
        del sources

    for name, module in chosen:
        keep = new_masks.pop(name)
        if method == "highest_reference":
            _reference_transform(module, masks_before[name])
        info["pruned"][name] = int(keep.numel() - torch.count_nonzero(keep).item()) - (
            0 if masks_before[name] is None else int(masks_before[name].numel() - torch.count_nonzero(masks_before[name]).item()))
        PrecomputedMask.apply(module, "weight", mask=keep, method=method, amount=amount, inplace=True)
        del keep
    masks = {n: m._buffers["weight_mask"] for n, m in chosen}
    report = sparsity_report(model, [n for n, _ in chosen])
    return PruneResult(masks, report, float(report["sparsity"].iloc[-1]), method, amount, scope, info)


def _eps_of(sources: Sequence[ScoreSource], pruned_sel: Sequence[torch.Tensor]) -> float:
    """Largest score among the pruned entries: the achieved budget multiplier epsilon."""
    best = -math.inf
    for src, sel in zip(sources, pruned_sel):
        if bool(sel.any()):
            v = src.make(0, src.numel)[sel]
            best = max(best, float(v.max().item()))
    return best


def _reference_transform(module: nn.Module, cand: Optional[torch.Tensor]) -> None:
    """The reference code's 'highest' side effect: w <- |w| - max|w| (max over the present weights)."""
    param = _dense_param(module)
    with torch.no_grad():
        a = param.abs()
        mx = (a if cand is None else a * cand).max()
        param.copy_(a - mx)


def _structured(group, amount, masks_before, new_masks, info, where, norm: Any = 2, dim: Any = 0) -> None:
    if norm not in (1, 2):
        raise ValueError(f"structured norm must be 1 or 2; got {norm!r}")
    dim = check_int(dim, "dim", minimum=0)
    sources, shapes = [], []
    for name, module in group:
        param = _dense_param(module)
        if param.dim() < 2 or dim >= param.dim():
            raise ValueError(f"structured pruning along dim={dim} needs a weight with at least {dim + 1} and at least 2 "
                             f"dimensions; layer {name!r} has weight shape {tuple(param.shape)}")
        cand = masks_before[name]
        w = param.detach() if cand is None else param.detach() * cand
        rows = _row_view(w, dim)
        score = rows.abs().sum(1) if norm == 1 else rows.pow(2).sum(1).sqrt()
        row_cand = None if cand is None else (_row_view(cand, dim) != 0).any(1)
        sources.append(tensor_source(score, row_cand))
    n_cand = sum(s.num_candidates() for s in sources)
    k = _count(amount, n_cand, where + " (rows)")
    sel = select_smallest(sources, k)
    for (name, module), s, src in zip(group, sel, sources):
        keep_rows = ~s
        if src.candidates is not None:
            keep_rows &= src.candidates
        shape = [1] * module.weight.dim()
        shape[dim] = -1
        keep = keep_rows.reshape(shape).expand_as(module.weight).clone()
        if masks_before[name] is not None:
            keep &= masks_before[name] != 0
        new_masks[name] = keep
    info.setdefault("rows_pruned", {}).update({n: int(s.sum().item()) for (n, _), s in zip(group, sel)})


def _next_prunable(model: nn.Module, name: str) -> Tuple[str, nn.Module]:
    layers = prunable_layers(model)
    names = [n for n, _ in layers]
    if name not in names or names.index(name) == len(names) - 1:
        raise ValueError(f"spectral pruning of {name!r} needs a following Linear/Conv layer to rewire; none found "
                         "(pass next_layer=...)")
    return layers[names.index(name) + 1]


def _prune_spectral(model, chosen, amount, masks_before, inputs=None, lam=None, next_layer=None, forward=None):
    if inputs is None:
        raise ValueError("spectral pruning needs example inputs: prune(..., method='spectral', inputs=batch)")
    if next_layer is not None and len(chosen) != 1:
        raise ValueError("next_layer= can only be given when exactly one layer is pruned")
    modules = dict(model.named_modules())
    touched: Dict[str, nn.Module] = {}
    out = {"spectral": {}, "pruned": {}}
    for name, module in chosen:
        if next_layer is not None:
            if next_layer not in modules:
                raise ValueError(f"no module named {next_layer!r} in the model")
            nname, nmod = next_layer, modules[next_layer]
        else:
            nname, nmod = _next_prunable(model, name)
        if pruning_mask(nmod) is not None:
            raise ValueError(f"spectral pruning of {name!r} rewires {nname!r}, which is already pruned: its mask would "
                             "hide rewired weights. Call torch.nn.utils.prune.remove on it first.")
        W = _dense_param(module)
        Wn = nmod.weight
        F = W.shape[0]
        if Wn.dim() < 2 or Wn.shape[1] != F:
            raise ValueError(f"{nname!r} (weight {tuple(Wn.shape)}) does not take the {F} outputs of {name!r} as its "
                             "input nodes; spectral pruning needs Linear->Linear or Conv->Conv")
        S = spectral.input_second_moment(model, nmod, inputs, forward)
        if S.shape[0] != F:
            raise ValueError(f"the input of {nname!r} has {S.shape[0]} nodes, {name!r} has {F} outputs")
        lam_l = check_positive(lam, "lam") if lam is not None else max(1e-2 * float(torch.trace(S).item()) / F, 1e-12)
        cand = masks_before[name]
        alive = torch.ones(F, dtype=torch.bool, device=W.device) if cand is None else (_row_view(cand, 0) != 0).any(1)
        n_alive = int(alive.sum().item())
        k = _count(amount, n_alive, f"layer {name!r} (nodes)")
        m = n_alive - k
        # restrict the search to live nodes
        live_idx = torch.nonzero(alive).reshape(-1).to(S.device)
        sel = spectral.greedy_spectral_selection(S[live_idx][:, live_idx], m, lam_l)
        J = live_idx[torch.as_tensor(sel.selected, dtype=torch.long, device=S.device)].tolist() if m else []
        A = spectral.reconstruction_matrix(S, J, lam_l) if m else torch.zeros(F, 0, dtype=torch.float64, device=S.device)
        Jt = torch.as_tensor(J, dtype=torch.long, device=Wn.device)
        with torch.no_grad():
            Wd = Wn.detach().to(torch.float64)
            new = torch.einsum("of...,fj->oj...", Wd, A.to(Wd.device))
            Wn.zero_()
            if m:
                Wn[:, Jt] = new.to(Wn.dtype)
        keep_nodes = torch.zeros(F, dtype=torch.bool, device=W.device)
        if m:
            keep_nodes[Jt.to(W.device)] = True
        rows = keep_nodes.reshape([-1] + [1] * (W.dim() - 1)).expand(W.shape).clone()
        if cand is not None:
            rows &= cand != 0
        cols = keep_nodes.to(Wn.device).reshape([1, -1] + [1] * (Wn.dim() - 2)).expand(Wn.shape).clone()
        PrecomputedMask.apply(module, "weight", mask=rows, method="spectral", amount=amount, inplace=True)
        PrecomputedMask.apply(nmod, "weight", mask=cols, method="spectral_rewired", amount=amount, inplace=True)
        touched[name] = module
        touched[nname] = nmod
        out["pruned"][name] = k
        out["spectral"][name] = {
            "next_layer": nname, "selected": J, "errors": sel.errors, "lam": lam_l,
            "degrees_of_freedom": spectral.degrees_of_freedom(S, lam_l), "reconstruction": A,
        }
    order = [n for n, _ in model.named_modules()]
    out["touched"] = sorted(touched.items(), key=lambda kv: order.index(kv[0]))
    return out


def soft_sparsity(model: nn.Module, layers: LayerSpec = "all", q: float = 0.5, p: float = 1.0,
                  pq_q: float = 2.0) -> pd.DataFrame:
    """Per-layer soft sparsity table (pandas): ``layer, parameters, lq_index, lq_index_neuron_mean,
    pq_index, pq_index_neuron_mean`` of each selected layer's *effective* weight (masked if pruned).

    ``lq_index`` is :func:`lq_index` (order ``q``) of the whole flattened weight, ``pq_index`` is
    :func:`pq_index` with orders ``(p, pq_q)``; the ``*_neuron_mean`` columns average the per-neuron
    (row) values.
    """
    rows = []
    for name, module in select_layers(model, layers):
        w = effective_weight(module)
        rows.append({
            "layer": name,
            "parameters": int(w.numel()),
            "lq_index": float(soft.lq_index(w, q)),
            "lq_index_neuron_mean": float(soft.lq_index(w, q, dim=0).mean()),
            "pq_index": float(soft.pq_index(w, p, pq_q)),
            "pq_index_neuron_mean": float(soft.pq_index(w, p, pq_q, dim=0).mean()),
        })
    return pd.DataFrame(rows)
