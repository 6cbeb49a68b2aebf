"""The pruning methods: how each one's scores (or its whole mask) are built.

Every method of :func:`latentkit.pruning.prune` is one :class:`PruningMethod` in
:data:`latentkit.pruning.registry.REGISTRY`, keyed by the vocabulary
:data:`latentkit.options.PRUNING_METHODS`. A method is one of three kinds:

* *entry scores* (``lowest``, ``highest``, ``highest_reference``, ``random``, ``lq_adaptive``,
  ``random_reference``): a
  scorer builds one :class:`~latentkit.pruning._select.ScoreSource` per layer; the exact selector
  prunes the ``k`` smallest scores of a group of layers (``prune_largest`` keeps the ``n - k``
  smallest instead); an optional ``transform`` rewrites the surviving weights;
* *group masks* (``structured``): a function fills the masks of a group of layers itself;
* *model masks* (``spectral``): a function prunes its layers and rewires their successors.

Adding a method: add its name to ``latentkit.options.PRUNING_METHODS``, write its scorer (or mask
builder) here (or in its own module) and register it in :mod:`latentkit.pruning.registry`;
:func:`prune` needs no change.

Examples
--------
>>> from latentkit.pruning.methods import OPTION_CHECKS
>>> type(OPTION_CHECKS).__name__
'dict'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_fraction, check_int, check_positive, make_generator
from ..modules import dense_param
from ..options import PRUNING_SCOPES
from . import soft
from ._select import ScoreSource, select_smallest, tensor_source

__all__ = [
    "OPTION_CHECKS",
    "lq_source",
    "magnitude_source",
    "random_source",
    "random_reference_source",
    "reference_transform",
    "PruneContext",
    "PruningMethod",
    "check_amount",
    "count_to_prune",
    "draw_generator",
    "prune_entries",
    "prune_structured",
    "row_view",
]

Group = Sequence[tuple[str, nn.Module]]


# ----------------------------------------------------------------------------------------------
# amounts
# ----------------------------------------------------------------------------------------------
def check_amount(amount: Any) -> int | float:
    """``amount`` as a count (int >= 0) or a fraction (float in [0, 1]); bools and strings are refused.

    Parameters
    ----------
    amount : int or float
        A count (int >= 0) or a fraction (float in [0, 1]).
    """
    if isinstance(amount, bool):
        raise TypeError("amount must be a fraction (float in [0, 1]) or a count (int >= 0); got a bool")
    if isinstance(amount, (numbers.Integral, np.integer)):
        return check_int(amount, "amount", minimum=0)
    if isinstance(amount, (numbers.Real, np.floating)):
        return check_fraction(amount, "amount")
    raise TypeError(
        f"amount must be a fraction (float in [0, 1]) or a count (int >= 0); got {type(amount).__name__}"
    )


def count_to_prune(amount: int | float, n: int, where: str) -> int:
    """Entries to prune among ``n`` candidates (torch's rule: ``round(amount * n)`` for fractions)."""
    if isinstance(amount, int):
        if amount > n:
            raise ValueError(f"amount={amount} is larger than the {n} prunable entries of {where}")
        return amount
    return int(round(amount * n))


def draw_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``; ``None`` draws the seed from the global torch RNG
    (so ``seed=None`` is reproducible under ``torch.manual_seed``)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return make_generator(seed, device)


# ----------------------------------------------------------------------------------------------
# what one prune call carries through its methods
# ----------------------------------------------------------------------------------------------
@dataclass
class PruneContext:
    """State of one :func:`prune` call, shared by the methods it runs.

    Attributes
    ----------
    amount : int or float
        Validated count or fraction.
    scope : str
        ``"layer"`` or ``"global"``.
    seed : int or None
    options : dict
        The method's validated options.
    masks_before : dict[str, Tensor or None]
        Existing mask of each chosen layer (None: dense).
    new_masks : dict[str, Tensor]
        Boolean keep-masks computed by the method (filled by it).
    info : dict
        Method details returned in :attr:`PruneResult.info`.
    """

    amount: int | float
    scope: str
    seed: int | None
    options: dict[str, Any]
    masks_before: dict[str, torch.Tensor | None]
    new_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=lambda: {"pruned": {}})
    _gens: dict[torch.device, torch.Generator] = field(default_factory=dict)

    def generator(self, device: torch.device) -> torch.Generator:
        """One generator per device for the whole call (layers draw from it in module order)."""
        if device not in self._gens:
            self._gens[device] = draw_generator(self.seed, device)
        return self._gens[device]


Scorer = Callable[[torch.Tensor, torch.Tensor | None, PruneContext, int], ScoreSource]


@dataclass(frozen=True)
class PruningMethod:
    """One pruning method of the registry.

    Attributes
    ----------
    name : str
    options : frozenset of str
        Keyword options the method accepts (others are a ``TypeError``).
    scorer : callable(param, candidates, ctx, group_numel) -> ScoreSource, optional
        Entry scores (lower = pruned first, unless ``prune_largest``).
    prune_largest : bool
        Prune the ``k`` largest scores (keep the ``n - k`` smallest).
    transform : callable(module, candidates), optional
        Rewrites the dense weight of each pruned layer before its mask is applied.
    group : callable(group, ctx, where), optional
        Builds the keep-masks of a group of layers itself (no scorer).
    model : callable(model, chosen, ctx) -> dict, optional
        Prunes whole layers of the model itself (applies its own masks).
    scopes : tuple of str
        Scopes the method supports.
    """

    name: str
    options: frozenset[str] = frozenset()
    scorer: Scorer | None = None
    prune_largest: bool = False
    transform: Callable[[nn.Module, torch.Tensor | None], None] | None = None
    group: Callable[[Group, PruneContext, str], None] | None = None
    model: Callable[[nn.Module, Group, PruneContext], dict[str, Any]] | None = None
    scopes: tuple[str, ...] = PRUNING_SCOPES


# ----------------------------------------------------------------------------------------------
# entry scorers
# ----------------------------------------------------------------------------------------------
def magnitude_source(
    param: torch.Tensor, cand: torch.Tensor | None, ctx: PruneContext, n: int
) -> ScoreSource:
    """Scores :math:`|w|`, flat order."""
    flat = param.detach().reshape(-1)
    return ScoreSource(
        flat.numel(), flat.device, lambda a, b: flat[a:b].abs(), None if cand is None else cand.reshape(-1)
    )


def random_source(param: torch.Tensor, cand: torch.Tensor | None, ctx: PruneContext, n: int) -> ScoreSource:
    """Uniform scores from the call's generator; the generator is advanced past this layer."""
    gen = ctx.generator(param.device)
    state = gen.get_state()
    dtype = torch.float64 if param.dtype == torch.float64 else torch.float32

    def reset() -> None:
        gen.set_state(state)

    def make(a: int, b: int) -> torch.Tensor:
        return torch.rand(b - a, generator=gen, device=param.device, dtype=dtype)

    src = ScoreSource(param.numel(), param.device, make, None if cand is None else cand.reshape(-1), reset)
    # advance the generator past this layer so the next layer draws fresh numbers
    for _ in src.chunks():
        pass
    return src


#: Seed of the reference code's legacy ``np.random.seed`` before its random mask.
REFERENCE_SEED = 42


def random_reference_source(
    param: torch.Tensor, cand: torch.Tensor | None, ctx: PruneContext, n: int
) -> ScoreSource:
    r"""Scores reproducing the reference code's random mask exactly.

    The reference draws ``np.random.seed(42); idx = np.random.choice(numel, k, replace=False)``
    and prunes the flat (row-major) positions ``idx``. NumPy's legacy ``choice`` without
    replacement is the first ``k`` entries of ``permutation(numel)``, so with a *local*
    ``np.random.RandomState(seed)`` (the global NumPy state is never touched) the score of flat
    position :math:`i` is its rank in that permutation, :math:`s_{\pi_j} = j`; pruning the ``k``
    smallest scores prunes exactly ``idx`` for every ``k``. The seed is option ``legacy_seed``
    (default 42), not the call's ``seed``: the same mask in every trial, as the reference.
    """
    seed = ctx.options.get("legacy_seed", REFERENCE_SEED)
    perm = np.random.RandomState(seed).permutation(param.numel())
    rank = np.empty_like(perm)
    rank[perm] = np.arange(perm.size)
    dtype = torch.float32 if rank.size <= 2**24 else torch.float64  # ranks exact in either
    scores = torch.from_numpy(rank).to(device=param.device, dtype=dtype)
    return tensor_source(scores, None if cand is None else cand.reshape(-1))


def lq_source(
    param: torch.Tensor, cand: torch.Tensor | None, ctx: PruneContext, group_numel: int
) -> ScoreSource:
    """Scores :math:`e_j(r-1)/b_j` of the l_q-adaptive rule (:func:`~latentkit.pruning.lq_tail_scores`)."""
    amount = ctx.amount
    keep = 1.0 - (amount if isinstance(amount, float) else min(1.0, amount / group_numel))
    q = ctx.options.get("q", 0.5)
    sc = soft.lq_tail_scores(param, q=q, keep_fraction=max(keep, 1e-12), candidates=cand)
    return tensor_source(sc, cand)


def reference_transform(module: nn.Module, cand: torch.Tensor | None) -> None:
    """The reference code's 'highest' side effect: w <- |w| - max|w| (max over the present weights)."""
    param = dense_param(module)
    with torch.no_grad():
        a = param.abs()
        mx = (a if cand is None else a * cand).max()
        param.copy_(a - mx)


def _eps_of(sources: Sequence[ScoreSource], pruned_sel: Sequence[torch.Tensor]) -> float:
    """Largest score among the pruned entries: the achieved budget multiplier epsilon."""
    best = -math.inf
    for src, sel in zip(sources, pruned_sel):
        if bool(sel.any()):
            v = src.make(0, src.numel)[sel]
            best = max(best, float(v.max().item()))
    return best


def prune_entries(method: PruningMethod, group: Group, ctx: PruneContext, where: str) -> None:
    """Keep-masks of one group by exact selection over the method's entry scores."""
    group_numel = sum(dense_param(m).numel() for _, m in group)
    sources = [method.scorer(dense_param(m), ctx.masks_before[n], ctx, group_numel) for n, m in group]
    n_cand = sum(s.num_candidates() for s in sources)
    k = count_to_prune(ctx.amount, n_cand, where)
    if method.prune_largest:
        keep_sel = select_smallest(sources, n_cand - k)
        for (name, module), sel in zip(group, keep_sel):
            ctx.new_masks[name] = sel.reshape(module.weight.shape)
        return
    pruned_sel = select_smallest(sources, k)
    if method.name == "lq_adaptive" and k > 0:
        key = group[0][0] if ctx.scope == "layer" else "(global)"
        ctx.info.setdefault("epsilon", {})[key] = _eps_of(sources, pruned_sel)
    for (name, module), sel, src in zip(group, pruned_sel, sources):
        keep = sel.logical_not_()  # in place: no second copy of the masks
        if src.candidates is not None:
            keep &= src.candidates != 0
        ctx.new_masks[name] = keep.reshape(module.weight.shape)


# ----------------------------------------------------------------------------------------------
# structured
# ----------------------------------------------------------------------------------------------
def row_view(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` as ``(t.shape[dim], -1)``: one row per slice along ``dim``."""
    return t.movedim(dim, 0).reshape(t.shape[dim], -1)


def _row_sources(group: Group, ctx: PruneContext, norm: int, dim: int) -> list[ScoreSource]:
    sources = []
    for name, module in group:
        param = dense_param(module)
        if param.dim() < 2 or dim >= param.dim():
            raise ValueError(
                f"structured pruning along dim={dim} needs a weight with at least {dim + 1} and at least 2 "
                f"dimensions; layer {name!r} has weight shape {tuple(param.shape)}"
            )
        cand = ctx.masks_before[name]
        w = param.detach() if cand is None else param.detach() * cand
        rows = row_view(w, dim)
        score = rows.abs().sum(1) if norm == 1 else rows.pow(2).sum(1).sqrt()
        row_cand = None if cand is None else (row_view(cand, dim) != 0).any(1)
        sources.append(tensor_source(score, row_cand))
    return sources


def prune_structured(group: Group, ctx: PruneContext, where: str) -> None:
    """Keep-masks pruning whole rows along ``dim`` with the smallest l1/l2 norm."""
    norm, dim = ctx.options.get("norm", 2), ctx.options.get("dim", 0)
    sources = _row_sources(group, ctx, norm, dim)
    n_cand = sum(s.num_candidates() for s in sources)
    k = count_to_prune(ctx.amount, n_cand, where + " (rows)")
    sel = select_smallest(sources, k)
    for (name, module), s, src in zip(group, sel, sources):
        keep_rows = ~s
        if src.candidates is not None:
            keep_rows &= src.candidates
        shape = [1] * module.weight.dim()
        shape[dim] = -1
        keep = keep_rows.reshape(shape).expand_as(module.weight).clone()
        if ctx.masks_before[name] is not None:
            keep &= ctx.masks_before[name] != 0
        ctx.new_masks[name] = keep
    ctx.info.setdefault("rows_pruned", {}).update({n: int(s.sum().item()) for (n, _), s in zip(group, sel)})


# ----------------------------------------------------------------------------------------------
# option validation (once per call)
# ----------------------------------------------------------------------------------------------
def _check_q(options: dict[str, Any]) -> None:
    if "q" in options:
        q = check_positive(options["q"], "q")
        if not q < 1:
            raise ValueError(f"q must lie in (0, 1); got {q}")
        options["q"] = q


def _check_structured(options: dict[str, Any]) -> None:
    norm = options.get("norm", 2)
    if isinstance(norm, bool) or not isinstance(norm, (numbers.Real, np.number)):
        raise TypeError(f"structured norm must be the number 1 or 2; got {type(norm).__name__}")
    if norm not in (1, 2):
        raise ValueError(f"structured norm must be 1 or 2; got {norm!r}")
    options["dim"] = check_int(options.get("dim", 0), "dim", minimum=0)


def _check_legacy_seed(options: dict[str, Any]) -> None:
    options["legacy_seed"] = check_int(options.get("legacy_seed", REFERENCE_SEED), "legacy_seed", minimum=0)
    if options["legacy_seed"] >= 2**32:
        raise ValueError(
            f"legacy_seed must be below 2**32 (NumPy's legacy seed); got {options['legacy_seed']}"
        )


OPTION_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "lq_adaptive": _check_q,
    "structured": _check_structured,
    "random_reference": _check_legacy_seed,
}
