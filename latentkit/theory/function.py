r"""AP3_fn in theory: its second-order expansion, its K-FAC approximation, and an accuracy bound.

For a softmax layer :math:`p(x) = \operatorname{softmax}(W x)` (a bias folded into :math:`W` with
:math:`x \to [x; 1]`) and a change :math:`\tilde W = W + D`,

**Second order.** With :math:`u = D x` and :math:`A(z) = \log \sum_c e^{z_c}`,
:math:`\mathrm{KL}(p \Vert \tilde p) = A(z + u) - A(z) - p^\top u`, whose Taylor expansion in
:math:`u` starts at second order, :math:`\tfrac12 u^\top H_x u + O(\lVert u \rVert^3)` with
:math:`H_x = \nabla^2 A = \operatorname{diag} p - p p^\top`. Averaging over :math:`x` and writing
:math:`u^\top H_x u = \operatorname{vec}(D)^\top (H_x \otimes x x^\top) \operatorname{vec}(D)`
(row-major vec),

.. math::

    \mathrm{AP3_{fn}}(W, W + D) = \tfrac12 \operatorname{vec}(D)^\top F \operatorname{vec}(D)
        + O(\lVert D \rVert^3), \qquad F = \mathbb E_x[H_x \otimes x x^\top],

:math:`F` the exact Fisher of the layer (:func:`check_ap3_fn_expansion`: the ratio tends to 1 and the
error shrinks like :math:`t^3` along :math:`D = t D_0`).

**K-FAC.** The Laplace latent of :func:`latentkit.latent.fit_laplace_linear` has precision
:math:`G \otimes A` with :math:`G = \mathbb E_x H_x`, :math:`A = \mathbb E_x x x^\top`, so its AP3 is
:math:`\tfrac12 \operatorname{tr}(G D A D^\top) = \tfrac12 \operatorname{vec}(D)^\top (\mathbb E H_x
\otimes \mathbb E x x^\top) \operatorname{vec}(D)`. It replaces the expectation of the Kronecker product
by the product of expectations; the difference is
:math:`\tfrac12 \operatorname{vec}(D)^\top \operatorname{Cov\text{-}term} \operatorname{vec}(D)` with
:math:`\mathbb E[H_x \otimes x x^\top] - \mathbb E H_x \otimes \mathbb E x x^\top`: the factorisation drops
the correlation across examples between the curvature :math:`H_x` and the input outer product
:math:`x x^\top`. When :math:`p` (hence :math:`H_x`) is the same for every :math:`x`, the term vanishes and
the two quadratics coincide (:func:`check_kfac_ap3_fn`).

**Accuracy.** Let :math:`c(x) = \arg\max p(x)` and the dense margin
:math:`m_x = p_{c} - \max_{c' \ne c} p_{c'}`. If the pruned prediction is :math:`c' \ne c` then
:math:`\tilde p_{c'} \ge \tilde p_c`, so :math:`m_x \le (p_c - \tilde p_c) + (\tilde p_{c'} - p_{c'})
\le \lVert p - \tilde p \rVert_1 = 2\,\mathrm{TV}_x \le \sqrt{2\,\mathrm{KL}_x}` (Pinsker). Hence, for
every :math:`t > 0` (split on :math:`m_x \le t`, Markov on :math:`\mathrm{KL}_x` otherwise),

.. math::

    |\Delta \mathrm{acc}| \le P(\text{prediction changes}) \le P\big(m_x \le \sqrt{2\,\mathrm{KL}_x}\big)
      \le \min_{t > 0} \Big[ P(m_x \le t) + \frac{2\, \mathrm{AP3_{fn}}}{t^2} \Big],

a bound from AP3_fn and the dense network's margins alone, no labels
(:func:`check_ap3_fn_accuracy_bound`).

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> wp = w * (w.abs() > 4)
>>> from latentkit.theory.function import check_ap3_fn_accuracy_bound
>>> x = torch.eye(4, dtype=torch.float64)
>>> check_ap3_fn_accuracy_bound(w.double(), wp.double(), x).holds
True
"""

from __future__ import annotations

from typing import Any

import torch

from .._validation import as_tensor, check_positive
from ..latent import fit_laplace_linear, fold_bias
from ..patterns import ap3, ap3_fn, ap3_fn_quadratic, predictive_kl
from .check import Check, close

__all__ = ["check_ap3_fn_accuracy_bound", "check_ap3_fn_expansion", "check_kfac_ap3_fn"]


def _folded(weight: Any, features: Any, bias: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 ``W`` (C, in[+1]) and ``X`` (n, in[+1]) with the bias folded in when given."""
    W = as_tensor(weight, "weight", min_dim=2).detach().to(torch.float64)
    X = as_tensor(features, "features", min_dim=2).detach().to(torch.float64)
    if W.dim() != 2 or X.dim() != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(
            f"weight must be (C, in) and features (n, in); got {tuple(W.shape)}, {tuple(X.shape)}"
        )
    if bias is not None:
        W = fold_bias(W, as_tensor(bias, "bias", min_dim=1).detach().to(torch.float64))
        X = torch.cat([X, X.new_ones(X.shape[0], 1)], 1)
    return W, X


def check_ap3_fn_expansion(
    weight: Any,
    features: Any,
    direction: Any = None,
    bias: Any = None,
    *,
    steps: tuple[float, ...] = (1e-1, 1e-2, 1e-3),
    rtol: float = 1e-2,
    seed: int = 0,
) -> Check:
    r"""AP3_fn(W, W + t D) = 1/2 vec(tD)^T F vec(tD) + O(t^3) with the exact Fisher F.

    For each ``t`` in ``steps``: ``exact`` = :func:`~latentkit.patterns.ap3_fn` and ``quadratic`` =
    :func:`~latentkit.patterns.ap3_fn_quadratic` at :math:`\tilde W = W + t D` (``direction`` D, default
    a seeded standard normal, the bias folded in). ``lhs`` = exact / quadratic at the smallest
    ``t``, ``rhs`` = 1, relation ``"~="`` within ``rtol``. ``details``: ratios and errors
    :math:`|\text{exact} - \text{quadratic}|` per step, and ``error_order``, the slope of
    :math:`\log \text{error}` in :math:`\log t` between the last two steps (3 for an :math:`O(t^3)`
    remainder).

    Parameters
    ----------
    weight : torch.Tensor or array-like, shape (C, in)
        The dense layer's weight matrix (``C`` classes, ``in`` features).
    features : torch.Tensor or array-like, shape (n, in)
        The layer's inputs, one row per example.
    direction : torch.Tensor or array-like, shape (C, in) or (C, in + 1), optional
        The direction :math:`D` (the bias column included when ``bias`` is given); None draws a seeded
        standard normal.
    bias : torch.Tensor or array-like, shape (C,), optional
        The dense layer's bias; None for a layer without bias.
    """
    rtol = check_positive(rtol, "rtol")
    W, X = _folded(weight, features, bias)
    if direction is None:
        g = torch.Generator().manual_seed(int(seed))
        D = torch.randn(W.shape, generator=g, dtype=torch.float64)
    else:
        D = as_tensor(direction, "direction", min_dim=2).detach().to(torch.float64)
        if D.shape != W.shape:
            raise ValueError(
                f"direction must have shape {tuple(W.shape)} (bias column included); got {tuple(D.shape)}"
            )
    steps = tuple(sorted((check_positive(t, "steps") for t in steps), reverse=True))
    ratios, errors = [], []
    for t in steps:
        exact = ap3_fn(W, W + t * D, X)
        quad = ap3_fn_quadratic(W, W + t * D, X)
        ratios.append(exact / quad if quad > 0 else float("nan"))
        errors.append(abs(exact - quad))
    order = float("nan")
    if len(steps) > 1 and errors[-1] > 0 and errors[-2] > 0:
        order = float(
            torch.log(torch.tensor(errors[-2] / errors[-1])) / torch.log(torch.tensor(steps[-2] / steps[-1]))
        )
    return Check(
        name="AP3_fn = 1/2 vec(D)^T F vec(D) + O(|D|^3) (exact Fisher)",
        lhs=ratios[-1],
        rhs=1.0,
        relation="~=",
        holds=close(ratios[-1], 1.0, rtol),
        details={"steps": steps, "ratios": ratios, "errors": errors, "error_order": order, "rtol": rtol},
    )


def check_kfac_ap3_fn(
    weight: Any,
    pruned: Any,
    features: Any,
    bias: Any = None,
    *,
    damping: float = 1e-9,
    rtol: float = 1e-6,
) -> Check:
    r"""The Laplace (K-FAC) AP3 equals the exact-Fisher quadratic of AP3_fn iff the factorisation is exact.

    ``lhs`` = :math:`\tfrac12 \operatorname{vec}(D)^\top F \operatorname{vec}(D)` (exact Fisher,
    :func:`~latentkit.patterns.ap3_fn_quadratic`), ``rhs`` = :math:`\tfrac12 \operatorname{tr}(G D A D^\top)`
    (K-FAC, undamped, from :func:`~latentkit.latent.fit_laplace_linear`), relation ``"~="`` within
    ``rtol``: it holds when :math:`H_x = \operatorname{diag} p - p p^\top` does not vary with
    :math:`x`, and fails otherwise by the dropped correlation term. ``details``: the AP3 of the
    two Kronecker latents (:func:`~latentkit.patterns.ap3`, ``damping`` on both factors), the spread
    :math:`\max_x \lVert p(x) - \bar p \rVert_\infty`, the ratio K-FAC / exact and the dropped term
    (exact - K-FAC).

    Parameters
    ----------
    weight : torch.Tensor or array-like, shape (C, in)
        The dense layer's weight matrix (``C`` classes, ``in`` features).
    pruned : torch.Tensor or array-like, shape (C, in)
        The pruned weight matrix (same shape, dtype and device as ``weight``).
    features : torch.Tensor or array-like, shape (n, in)
        The layer's inputs, one row per example.
    bias : torch.Tensor or array-like, shape (C,), optional
        The dense layer's bias; None for a layer without bias.
    """
    rtol = check_positive(rtol, "rtol")
    damping = check_positive(damping, "damping")
    W, X = _folded(weight, features, bias)
    Wt, _ = _folded(pruned, features, bias)
    exact = ap3_fn_quadratic(W, Wt, X)
    raw = X[:, :-1] if bias is not None else X
    z = X @ W.T
    fit = fit_laplace_linear(raw, z, bias=bias is not None, damping=damping)
    kfac = float(fit.quadratic(Wt - W, damped=False))
    latent_ap3 = ap3(W, Wt, covariance="kronecker", fit=fit)
    p = torch.softmax(z, 1)
    return Check(
        name="K-FAC (Laplace) AP3 = exact-Fisher quadratic of AP3_fn",
        lhs=exact,
        rhs=kfac,
        relation="~=",
        holds=close(exact, kfac, rtol, atol=1e-15),
        details={
            "latent_ap3": latent_ap3,
            "p_spread": float((p - p.mean(0)).abs().max()),
            "kfac_over_exact": kfac / exact if exact > 0 else float("nan"),
            "dropped_term": exact - kfac,
            "damping": damping,
            "rtol": rtol,
        },
    )


def _margins(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Dense prediction and probability margin :math:`p_c - \max_{c' \ne c} p_{c'}` per row."""
    top = torch.topk(p, 2, dim=1)
    return top.indices[:, 0], top.values[:, 0] - top.values[:, 1]


def check_ap3_fn_accuracy_bound(
    weight: Any,
    pruned: Any,
    features: Any,
    bias: Any = None,
    pruned_bias: Any = None,
    labels: Any = None,
) -> Check:
    r"""Changed predictions (and the accuracy change) <= min_t [P(m_x <= t) + 2 AP3_fn / t^2].

    ``lhs`` = the fraction of inputs whose prediction changes (with ``labels``, also
    :math:`|\Delta\mathrm{acc}| \le` it, in ``details``), ``rhs`` = :math:`\min_t [F_m(t) + 2\,
    \mathrm{AP3_{fn}} / t^2]` (capped at 1) with :math:`F_m` the empirical CDF of the dense margins,
    minimised over :math:`t` at the margins themselves (where the step function jumps) -- see the
    module docstring for the derivation. ``details``: AP3_fn, the intermediate Pinsker bound
    :math:`P(m_x \le \sqrt{2\,\mathrm{KL}_x})`, the minimising ``t``, the accuracy change.

    Parameters
    ----------
    weight : torch.Tensor or array-like, shape (C, in)
        The dense layer's weight matrix (``C`` classes, ``in`` features).
    pruned : torch.Tensor or array-like, shape (C, in)
        The pruned weight matrix (same shape, dtype and device as ``weight``).
    features : torch.Tensor or array-like, shape (n, in)
        The layer's inputs, one row per example.
    bias : torch.Tensor or array-like, shape (C,), optional
        The dense layer's bias; None for a layer without bias.
    pruned_bias : torch.Tensor or array-like, shape (C,), optional
        The pruned layer's bias; None keeps ``bias``.
    labels : torch.Tensor or array-like, shape (n,), optional
        True classes of ``features``: the accuracy change is reported in ``details`` too.
    """
    W, X = _folded(weight, features, bias)
    Wt, _ = _folded(pruned, features, pruned_bias if pruned_bias is not None else bias)
    if bias is None and pruned_bias is not None:
        raise ValueError("pruned_bias given without bias")
    z, zt = X @ W.T, X @ Wt.T
    kl = predictive_kl(z, zt)
    a = float(kl.mean())
    c, m = _margins(torch.softmax(z, 1))
    changed = zt.argmax(1) != c
    lhs = float(changed.double().mean())
    pinsker = float((m <= torch.sqrt(2 * kl)).double().mean())
    ms = torch.sort(m).values
    cdf = torch.arange(1, len(ms) + 1, dtype=torch.float64) / len(ms)
    pos = ms > 0
    cand = torch.where(pos, cdf + 2 * a / torch.where(pos, ms, torch.ones_like(ms)) ** 2, torch.ones_like(ms))
    k = int(torch.argmin(cand))
    rhs = min(float(cand[k]), 1.0)
    details = {"ap3_fn": a, "pinsker_fraction": pinsker, "t": float(ms[k]), "changed_fraction": lhs}
    if labels is not None:
        y = torch.as_tensor(labels).reshape(-1).to(c.device)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"labels must have {X.shape[0]} entries; got {y.shape[0]}")
        acc, acc_t = float((c == y).double().mean()), float((zt.argmax(1) == y).double().mean())
        details.update(accuracy_change=acc_t - acc, accuracy_bound_holds=abs(acc_t - acc) <= rhs)
    return Check(
        name="changed predictions <= min_t P(margin <= t) + 2 AP3_fn / t^2",
        lhs=lhs,
        rhs=rhs,
        relation="<=",
        holds=lhs <= pinsker <= rhs + 1e-12 and lhs <= rhs,
        details=details,
    )
