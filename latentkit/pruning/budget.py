r"""A label-free choice of the sparsity: the largest one whose divergence stays under a budget.

Given a dense layer or model, a pruning ``method`` and a divergence budget :math:`\beta`,

.. math::

    s^\star = \max\{\, s : \mathrm{div}(w, \tilde w_{s'}) \le \beta
        \text{ for every evaluated } s' \le s \,\},

where :math:`\tilde w_s` is the network pruned to sparsity :math:`s` and :math:`\mathrm{div}` is
AP3_fn (:func:`latentkit.patterns.ap3_fn`, on unlabelled features or inputs), AP3 or AP2 of the
pruned layers. No label is used. The divergences are evaluated on a grid of sparsities, or found
by bisection over the number of pruned weights (which assumes the curve is non-decreasing, as it
is for magnitude pruning under AP2).

Examples
--------
>>> import torch
>>> from latentkit.pruning.budget import sparsity_for_budget
>>> _ = torch.manual_seed(0)
>>> dense = torch.nn.Linear(4, 3)
>>> x = torch.randn(16, 4)
>>> choice = sparsity_for_budget(dense, budget=0.5, features=x)
>>> type(choice).__name__
'SparsityChoice'
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._validation import as_tensor, check_choice, check_fraction, check_nonnegative
from ..modules import effective_weight, prunable_layers
from ..patterns import ap2, ap3, ap3_fn
from .core import prune, select_layers

__all__ = ["BUDGET_MEASURES", "SparsityChoice", "sparsity_for_budget"]

#: Divergences :func:`sparsity_for_budget` can hold under a budget.
BUDGET_MEASURES = ("ap3_fn", "ap3", "ap2")
_DEFAULT_GRID = tuple(float(s) for s in np.round(np.arange(0.05, 1.0, 0.05), 2))


@dataclass(frozen=True)
class SparsityChoice:
    """The chosen sparsity and the divergence curve it was read from.

    Attributes
    ----------
    sparsity : float
        The largest evaluated sparsity within the budget (0.0: none was).
    divergence : float
        Its divergence.
    curve : DataFrame
        ``sparsity``, ``divergence`` of every evaluation, sorted by sparsity (0.0 included).
    budget : float
    measure : str
    """

    sparsity: float
    divergence: float
    curve: pd.DataFrame
    budget: float
    measure: str


def _as_model(dense: Any, bias: Any) -> nn.Module:
    """A model to prune: ``dense`` itself (a module) or a bias-aware ``nn.Linear`` holding the weight."""
    if isinstance(dense, nn.Module):
        if bias is not None:
            raise TypeError("bias applies to a weight tensor only; a model holds its own biases")
        return dense
    W = as_tensor(dense, "dense", min_dim=2).detach()
    if W.dim() != 2:
        raise ValueError(f"dense must be a (C, in) weight or an nn.Module; got shape {tuple(W.shape)}")
    lin = nn.Linear(W.shape[1], W.shape[0], bias=bias is not None, dtype=W.dtype, device=W.device)
    with torch.no_grad():
        lin.weight.copy_(W)
        if bias is not None:
            lin.bias.copy_(as_tensor(bias, "bias", min_dim=1).detach())
    return lin


def _divergence(
    dense: nn.Module, pruned: nn.Module, measure: str, data: Any, ap3_kwargs: Mapping[str, Any]
) -> float:
    """``measure`` between the dense and pruned model (AP2/AP3 summed over the prunable layers)."""
    if measure == "ap3_fn":  # a forward pass (for a weight, the nn.Linear holding it and its bias)
        return ap3_fn(dense, pruned, data)
    fn = ap2 if measure == "ap2" else ap3
    kwargs = dict(ap3_kwargs) if measure == "ap3" else {}
    pairs = zip(prunable_layers(dense), prunable_layers(pruned), strict=True)
    return float(sum(fn(effective_weight(a), effective_weight(b), **kwargs) for (_, a), (_, b) in pairs))


def _sparsities(sparsities: Any) -> list[float]:
    if isinstance(sparsities, str) or not isinstance(sparsities, Sequence | np.ndarray):
        raise TypeError(f"sparsities must be a list of fractions or 'bisection'; got {sparsities!r}")
    out = sorted({check_fraction(s, "sparsities", high_open=True) for s in sparsities})
    if not out:
        raise ValueError("sparsities must hold at least one fraction")
    return out


def sparsity_for_budget(
    dense: Any,
    *,
    budget: float,
    measure: str = "ap3_fn",
    features: Any = None,
    bias: Any = None,
    method: str = "lowest",
    sparsities: Sequence[float] | str = _DEFAULT_GRID,
    layers: Any = "last",
    seed: int | None = 0,
    ap3_kwargs: Mapping[str, Any] | None = None,
    **prune_options: Any,
) -> SparsityChoice:
    r"""The largest sparsity whose label-free divergence from the dense network stays under ``budget``.

    For each evaluated sparsity :math:`s`, a copy of ``dense`` is pruned with
    ``prune(copy, method, s, layers=layers, seed=seed, **prune_options)`` and
    :math:`d(s) = \mathrm{div}(w, \tilde w_s)`: ``"ap3_fn"`` = :math:`\mathbb E_x \mathrm{KL}(p(\cdot|x,w)
    \Vert p(\cdot|x,\tilde w_s))` over ``features`` (weight input) or model inputs (no labels),
    ``"ap2"``/``"ap3"`` = the sum over prunable layers of :func:`~latentkit.patterns.ap2` /
    :func:`~latentkit.patterns.ap3` (``ap3_kwargs``). The answer is the largest :math:`s` such
    that :math:`d(s') \le \beta` for every evaluated :math:`s' \le s` (:math:`s = 0` if none).

    ``sparsities="bisection"`` searches the number :math:`k` of pruned weights of the selected
    layers in :math:`[0, n]` for the largest :math:`k` with :math:`d(k) \le \beta`, assuming
    :math:`d` non-decreasing in :math:`k` (:math:`\lceil \log_2 (n+1) \rceil` evaluations; exact
    for a monotone curve).

    Parameters
    ----------
    dense : Tensor (C, in) or nn.Module
        A last-layer weight (with ``bias``) or a model; never modified.
    budget : float >= 0
    measure : {"ap3_fn", "ap3", "ap2"}
    features : Tensor or iterable of batches
        Unlabelled features of the weight's layer, or model inputs; required for ``"ap3_fn"``.
    bias : Tensor (C,), optional
        With a weight only.
    method : str
        A pruning method of :func:`latentkit.pruning.prune`.
    sparsities : list of fractions in [0, 1), or "bisection"
    layers, seed, **prune_options
        Passed to :func:`~latentkit.pruning.prune`.
    ap3_kwargs : mapping, optional
        Latent-space keywords of :func:`~latentkit.patterns.ap3`.

    Returns
    -------
    SparsityChoice

    Raises
    ------
    TypeError, ValueError
        A bad ``dense``, ``budget``, ``measure``, ``sparsities``; ``features`` missing for AP3_fn.
    """
    budget = check_nonnegative(budget, "budget")
    check_choice(measure, "measure", BUDGET_MEASURES)
    if measure == "ap3_fn" and features is None:
        raise ValueError("measure='ap3_fn' needs features (unlabelled inputs of the layer or model)")
    model = _as_model(dense, bias)
    kw = dict(ap3_kwargs or {})

    def evaluate(amount: float | int) -> float:
        pruned = copy.deepcopy(model)
        if amount:
            prune(pruned, method, amount, layers=layers, seed=seed, **prune_options)
        return _divergence(model, pruned, measure, features, kw)

    if isinstance(sparsities, str):
        check_choice(sparsities, "sparsities", ("bisection",))
        curve = _bisect(model, evaluate, budget, layers)
    else:
        curve = [(0.0, 0.0)] + [(s, evaluate(s)) for s in _sparsities(sparsities) if s > 0]
    table = pd.DataFrame(sorted(curve), columns=["sparsity", "divergence"]).drop_duplicates("sparsity")
    over = np.flatnonzero(table["divergence"].to_numpy() > budget)
    best = (over[0] - 1) if len(over) else len(table) - 1
    row = table.iloc[max(best, 0)]
    return SparsityChoice(
        float(row["sparsity"]), float(row["divergence"]), table.reset_index(drop=True), budget, measure
    )


def _bisect(model: nn.Module, evaluate: Any, budget: float, layers: Any) -> list[tuple[float, float]]:
    """Evaluations of a bisection over the pruned count k in [0, n] (largest k with d(k) <= budget)."""
    n = sum(m.weight.numel() for _, m in select_layers(model, layers))
    curve = [(0.0, 0.0)]
    lo, hi = 0, n  # d(lo) <= budget; the answer is in [lo, hi]
    d_hi = evaluate(n)
    curve.append((1.0, d_hi))
    if d_hi <= budget:
        return curve
    while hi - lo > 1:
        mid = (lo + hi) // 2
        d = evaluate(mid)
        curve.append((mid / n, d))
        lo, hi = (mid, hi) if d <= budget else (lo, mid)
    return curve
