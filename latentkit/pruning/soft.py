"""Soft sparsity (l_q quasi-norm, PQ index) and the l_q-adaptive per-neuron pruning rule.

References: Yang, Wang, Ding & Yang (2022, arXiv:2206.05604) for the l_q view of compressibility and
the best s-term approximation bound; Diao et al. (2023, arXiv:2302.05601) for the PQ index.

Examples
--------
>>> import torch
>>> from latentkit.pruning.soft import lq_norm
>>> round(float(lq_norm(torch.tensor([1.0, 1.0]), q=0.5)), 4)
4.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validation import as_tensor, check_fraction, check_positive

__all__ = [
    "lq_norm",
    "lq_index",
    "pq_index",
    "lq_tail_scores",
    "lq_adaptive_mask",
    "best_s_term_error",
    "LqBoundCheck",
    "lq_bound_check",
]


def _rows(w: torch.Tensor, dim: int | None) -> torch.Tensor:
    """(groups, d) float64 view: one row per neuron (dim=0 style: weight.reshape(out, -1)) or one row."""
    w = w.detach().to(torch.float64)
    if dim is None:
        return w.reshape(1, -1)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be 0 or None; got {type(dim).__name__}")
    if dim != 0:
        raise ValueError(
            f"dim must be 0 (one value per output neuron/channel) or None (whole tensor); got {dim}"
        )
    if w.dim() < 1:
        raise ValueError("per-neuron measures need a weight with at least one dimension")
    return w.reshape(w.shape[0], -1)


def _lq_rows(a: torch.Tensor, q: float) -> torch.Tensor:
    """||row||_q = (sum |w_i|^q)^(1/q) for each row of the non-negative (g, d) tensor ``a``,
    computed as m * (sum (|w_i|/m)^q)^(1/q) with m = max |w_i| (no overflow, exact for zero rows)."""
    m = a.amax(dim=1, keepdim=True)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    s = ((a / safe) ** q).sum(dim=1)
    return m.squeeze(1) * s ** (1.0 / q)


def lq_norm(weight: torch.Tensor, q: float = 0.5, dim: int | None = None) -> torch.Tensor:
    r"""The l_q (quasi-)norm :math:`\|w\|_q = (\sum_i |w_i|^q)^{1/q}`, float64.

    Parameters
    ----------
    weight : Tensor, any shape
    q : float > 0
    dim : 0 or None
        0: one value per output neuron/channel (rows of ``weight.reshape(out, -1)``), shape ``(out,)``;
        None: one value for the whole tensor, shape ``()``.
    """
    w = as_tensor(weight, "weight", min_dim=0)
    q = check_positive(q, "q")
    r = _lq_rows(_rows(w, dim).abs(), q)
    return r if dim is not None else r[0]


def lq_index(weight: torch.Tensor, q: float = 0.5, dim: int | None = None) -> torch.Tensor:
    r"""l_q soft-sparsity index :math:`1 - n_q(w)/d` in :math:`[0, 1 - 1/d]`, float64.

    :math:`n_q(w) = (\|w\|_q / \|w\|_1)^{q/(1-q)}` is the *effective support size* for
    :math:`0 < q < 1`: it equals k for a vector with k equal nonzero magnitudes, lies in [1, d], and
    is small when the l_q norm is small relative to the l_1 norm (the compressible case of Yang et al.
    2022). The index is 0 for a flat vector and :math:`1 - 1/d` for a 1-sparse vector; by convention
    the all-zero vector has index 1 (it needs no terms at all).

    Parameters
    ----------
    weight : Tensor
    q : float in (0, 1)
    dim : 0 (per neuron, shape ``(out,)``) or None (whole tensor, shape ``()``)
    """
    w = as_tensor(weight, "weight")
    q = check_positive(q, "q")
    if not q < 1:
        raise ValueError(f"q must lie in (0, 1); got {q}")
    a = _rows(w, dim).abs()
    d = a.shape[1]
    l1 = a.sum(dim=1)
    lq = _lq_rows(a, q)
    zero = l1 == 0
    ratio = lq / torch.where(zero, torch.ones_like(l1), l1)
    n_eff = ratio ** (q / (1.0 - q))
    idx = torch.where(zero, torch.ones_like(l1), 1.0 - n_eff / d)
    return idx if dim is not None else idx[0]


def pq_index(weight: torch.Tensor, p: float = 1.0, q: float = 2.0, dim: int | None = None) -> torch.Tensor:
    r"""PQ index of Diao et al.: :math:`I_{p,q}(w) = 1 - d^{1/q - 1/p}\,\|w\|_p / \|w\|_q`, ``0 < p < q``.

    Lies in :math:`[0, 1 - d^{1/q-1/p}]`: 0 for a flat vector, largest for a 1-sparse one. The
    all-zero vector gets index 1 by convention. float64; shape ``(out,)`` for ``dim=0``, ``()`` for None.
    """
    w = as_tensor(weight, "weight")
    p = check_positive(p, "p")
    q = check_positive(q, "q")
    if not p < q:
        raise ValueError(f"the PQ index needs 0 < p < q; got p={p}, q={q}")
    a = _rows(w, dim).abs()
    d = a.shape[1]
    np_ = _lq_rows(a, p)
    nq = _lq_rows(a, q)
    zero = nq == 0
    idx = 1.0 - d ** (1.0 / q - 1.0 / p) * np_ / torch.where(zero, torch.ones_like(nq), nq)
    idx = torch.where(zero, torch.ones_like(idx), idx)
    return idx if dim is not None else idx[0]


def best_s_term_error(weight: torch.Tensor, dim: int | None = 0) -> torch.Tensor:
    r"""All best s-term approximation errors :math:`e(s) = \|w - H_s(w)\|_2`, s = 0..d, float64.

    :math:`H_s` keeps the s largest magnitudes. Returns shape ``(out, d + 1)`` (dim=0) or ``(d + 1,)``.
    Computed by one descending sort and a reversed cumulative sum of squares, vectorised over rows.
    """
    w = as_tensor(weight, "weight")
    a = _rows(w, dim).abs()
    s, _ = torch.sort(a, dim=1, descending=True)
    tail2 = torch.flip(torch.cumsum(torch.flip(s * s, [1]), 1), [1])  # tail2[:, i] = sum_{j>=i} s_j^2
    e = torch.cat([tail2, torch.zeros_like(tail2[:, :1])], dim=1).clamp_min(0).sqrt()
    return e if dim is not None else e[0]


def _budget_base(a: torch.Tensor, q: float, keep_fraction: float) -> torch.Tensor:
    """b_j = s0^(1/2 - 1/q) ||w_j||_q with s0 = max(1, round(keep_fraction * d)) (the l_q bound at s0)."""
    d = a.shape[1]
    s0 = max(1, int(round(keep_fraction * d)))
    return s0 ** (0.5 - 1.0 / q) * _lq_rows(a, q)


def lq_tail_scores(
    weight: torch.Tensor,
    q: float = 0.5,
    keep_fraction: float = 0.5,
    candidates: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Per-entry score of the l_q-adaptive rule: :math:`e_j(r-1) / b_j` at each entry's rank r.

    For neuron j (row of ``weight.reshape(out, -1)``) with magnitudes sorted in decreasing order,
    the entry of rank r (1 = largest) gets the score :math:`e_j(r-1)/b_j` where
    :math:`e_j(s) = \|w_j - H_s(w_j)\|_2` and :math:`b_j = s_0^{1/2-1/q}\|w_j\|_q`. Keeping the entries
    with score > epsilon keeps, in every row, exactly the fewest largest weights with
    :math:`e_j(s) \le \epsilon\, b_j` (see :func:`lq_adaptive_mask`). Zero rows score 0.
    Returns float64 scores with the shape of ``weight`` (on its device); ``candidates`` (same shape,
    nonzero = still present) restricts the computation to the surviving weights.
    """
    w = as_tensor(weight, "weight", min_dim=1)
    q = check_positive(q, "q")
    keep_fraction = check_fraction(keep_fraction, "keep_fraction")
    if candidates is not None:
        if not isinstance(candidates, torch.Tensor):
            raise TypeError(f"candidates must be a torch.Tensor; got {type(candidates).__name__}")
        if tuple(candidates.shape) != tuple(w.shape):
            raise ValueError(
                f"candidates shape {tuple(candidates.shape)} differs from weight shape {tuple(w.shape)}"
            )
    a = _rows(w, 0).abs()
    if candidates is not None:
        a = a * (candidates.reshape(a.shape) != 0)
    b = _budget_base(a, q, keep_fraction)
    s, order = torch.sort(a, dim=1, descending=True, stable=True)
    tail2 = torch.flip(torch.cumsum(torch.flip(s * s, [1]), 1), [1])  # e(r-1)^2 for rank r = col+1
    ratio = tail2.clamp_min(0).sqrt() / torch.where(b > 0, b, torch.ones_like(b)).unsqueeze(1)
    ratio = torch.where((b > 0).unsqueeze(1), ratio, torch.zeros_like(ratio))
    scores = torch.empty_like(ratio)
    scores.scatter_(1, order, ratio)
    return scores.reshape(w.shape)


def lq_adaptive_mask(
    weight: torch.Tensor, epsilon: float, q: float = 0.5, keep_fraction: float = 0.5
) -> torch.Tensor:
    r"""Mask of the l_q-adaptive rule for a given budget multiplier ``epsilon``.

    For each neuron j, keep the fewest largest-magnitude weights :math:`s_j` such that

    .. math:: \|w_j - H_{s_j}(w_j)\|_2 \le \epsilon\, s_0^{1/2-1/q}\, \|w_j\|_q,
              \qquad s_0 = \max(1, \mathrm{round}(\text{keep\_fraction}\cdot d)).

    The right-hand side is the l_q bound :math:`\|w - H_s(w)\|_2 \le s^{1/2-1/q}\|w\|_q` evaluated at
    the nominal count :math:`s_0`, scaled by epsilon; with ``epsilon >= 1`` every neuron keeps at most
    :math:`s_0` weights, and softly sparse neurons (small l_q norm) keep fewer. Ties in magnitude are
    broken by position (lower index kept first). Returns a mask (weight dtype, shape of ``weight``).
    """
    w = as_tensor(weight, "weight", min_dim=1)
    eps = check_positive(epsilon, "epsilon", allow_inf=True)
    sc = lq_tail_scores(w, q=q, keep_fraction=keep_fraction)
    return (sc > eps).to(w.dtype)


@dataclass
class LqBoundCheck:
    """Outcome of :func:`lq_bound_check`: the two sides of the per-neuron l_q bound, and whether it held.

    Truthy exactly when it holds (like :class:`latentkit.theory.Check`).

    Attributes
    ----------
    name : str
        The claim, in words.
    lhs : Tensor (out,)
        Achieved per-neuron error :math:`e_j = \\|w_j - m_j \\odot w_j\\|_2` (float64).
    rhs : Tensor (out,)
        Per-neuron bound :math:`s_j^{1/2-1/q}\\|w_j\\|_q` at the achieved count :math:`s_j` of kept
        weights (``inf`` where :math:`s_j = 0`: the bound says nothing there).
    relation : str
        ``"<="``.
    holds : bool
        ``lhs <= rhs`` (relative tolerance ``details["rtol"]``) for every neuron and, when
        ``epsilon`` was given, ``lhs <= details["budget"]`` too.
    details : dict
        ``kept`` (s_j), ``budget`` (:math:`\\epsilon s_0^{1/2-1/q}\\|w_j\\|_q`, or None),
        ``within_bound`` / ``within_budget`` (per-neuron booleans), ``worst_ratio``
        (:math:`\\max_j e_j / \\text{rhs}_j`), ``worst_budget_ratio``
        (the same against the budget), ``q``, ``keep_fraction``, ``epsilon``, ``rtol``.
    """

    name: str
    lhs: torch.Tensor
    rhs: torch.Tensor
    relation: str
    holds: bool
    details: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.holds)

    def __str__(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        worst = self.details["worst_ratio"]
        return f"{self.name}: max_j e_j / bound_j = {worst:.4g} ({verdict})"


def lq_bound_check(
    weight: torch.Tensor,
    mask: torch.Tensor,
    q: float = 0.5,
    *,
    epsilon: float | None = None,
    keep_fraction: float = 0.5,
    rtol: float = 1e-9,
) -> LqBoundCheck:
    r"""Check that a pruned layer's per-neuron error respects the l_q bound behind the adaptive rule.

    For each neuron j (row of ``weight.reshape(out, -1)``) with :math:`s_j` kept weights, the best
    s-term error obeys Stechkin's bound :math:`\|w_j - H_{s}(w_j)\|_2 \le s^{1/2-1/q}\|w_j\|_q`
    (:math:`0 < q < 2`; Foucart & Rauhut, Prop. 2.3), so a mask that keeps each neuron's largest
    weights must give :math:`e_j = \|w_j - m_j \odot w_j\|_2 \le s_j^{1/2-1/q}\|w_j\|_q`. With
    ``epsilon`` (the budget multiplier of :func:`lq_adaptive_mask`, e.g. ``info["epsilon"]`` of
    :func:`~latentkit.pruning.prune`) it also checks the rule's own budget
    :math:`e_j \le \epsilon\, s_0^{1/2-1/q}\|w_j\|_q`, :math:`s_0 = \max(1, \mathrm{round}(
    \text{keep\_fraction}\cdot d))`.

    Parameters
    ----------
    weight : Tensor (out, ...)
        Dense weight (``weight_orig`` of a pruned layer).
    mask : Tensor, shape of ``weight``
        Keep mask (nonzero = kept).
    q : float in (0, 1)
    epsilon : float > 0, optional
    keep_fraction : float in [0, 1]
        The nominal kept fraction the rule used (``1 - amount`` for :func:`prune`).
    rtol : float >= 0
        Relative tolerance of the comparisons (round-off).

    Returns
    -------
    LqBoundCheck
    """
    w = as_tensor(weight, "weight", min_dim=1)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor; got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(w.shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from weight shape {tuple(w.shape)}")
    q = check_positive(q, "q")
    if not q < 1:
        raise ValueError(f"q must lie in (0, 1); got {q}")
    keep_fraction = check_fraction(keep_fraction, "keep_fraction")
    a = _rows(w, 0).abs()
    kept = (mask.reshape(a.shape) != 0).to(a.device)
    err = torch.sqrt((a * a * (~kept)).sum(dim=1))
    s = kept.sum(dim=1).to(torch.float64)
    lq = _lq_rows(a, q)
    bound = torch.where(s > 0, s.clamp_min(1) ** (0.5 - 1.0 / q) * lq, torch.full_like(lq, math.inf))
    within_bound = err <= bound * (1 + rtol)
    budget, worst_budget = None, None
    within_budget = torch.ones_like(within_bound)
    if epsilon is not None:
        eps = check_positive(epsilon, "epsilon", allow_inf=True)
        budget = eps * _budget_base(a, q, keep_fraction)
        within_budget = err <= budget * (1 + rtol) + 1e-300
        pos = budget > 0
        worst_budget = float(
            torch.where(pos, err / torch.where(pos, budget, torch.ones_like(budget)), 0 * err).max()
        )
    finite = torch.isfinite(bound) & (bound > 0)
    ratio = torch.where(
        finite, err / torch.where(finite, bound, torch.ones_like(bound)), torch.zeros_like(err)
    )
    details = {
        "kept": s.to(torch.int64), "budget": budget, "within_bound": within_bound,
        "within_budget": within_budget, "worst_ratio": float(ratio.max().item()), "q": q,
        "keep_fraction": keep_fraction, "epsilon": epsilon, "rtol": rtol, "worst_budget_ratio": worst_budget,
    }  # fmt: skip
    holds = bool(within_bound.all()) and bool(within_budget.all())
    name = "per-neuron error <= s_j^(1/2-1/q) ||w_j||_q" + (" and <= epsilon * budget" if epsilon else "")
    return LqBoundCheck(name, err, bound, "<=", holds, details)
