"""Checks of the bounds: Pinsker (TV from KL), the softmax loss gap, the margin bound on the accuracy
drop, and the Laplace/Fisher AP3 as a second-order loss increase.

Examples
--------
>>> import torch
>>> from latentkit.theory.bounds import check_pinsker
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> q = IsotropicNormal(torch.ones(2, dtype=torch.float64), 1.0)
>>> check_pinsker(p, q, num_samples=2000).holds
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.distributions import Distribution, kl_divergence

from .. import divergence
from .._validation import check_int, check_positive
from ..latent import fit_laplace_linear, latent_space
from ._laws import check_pair, check_shared_covariance, covariance_eigen_range, is_gaussian, location
from .check import Check, close
from .linear import cross_entropy, linear_inputs, logits, shared_bias

__all__ = [
    "check_pinsker",
    "check_softmax_loss_bound",
    "check_margin_bound",
    "check_laplace_second_order",
]


# --------------------------------------------------------------------------------------------------
# total variation
# --------------------------------------------------------------------------------------------------
def _shares_covariance(p: Distribution, q: Distribution) -> bool:
    if not (is_gaussian(p) and is_gaussian(q)):
        return False
    try:
        check_shared_covariance(p, q)
    except ValueError:
        return False
    return True


def _tv_monte_carlo(p: Distribution, q: Distribution, num_samples: int, seed: int) -> tuple[float, float]:
    """:math:`\\mathrm{TV} = \\mathbb E_p[(1 - q(X)/p(X))_+]` from ``num_samples`` draws of p, and its
    standard error."""
    dev = location(p).device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        x = p.sample((num_samples,))
    log_ratio = (q.log_prob(x) - p.log_prob(x)).to(torch.float64)
    vals = torch.clamp(1.0 - torch.exp(log_ratio), min=0.0)
    return float(vals.mean()), float(vals.std() / math.sqrt(num_samples))


def check_pinsker(
    p: Distribution,
    q: Distribution,
    *,
    num_samples: int = 200_000,
    seed: int = 0,
) -> Check:
    """Pinsker's inequality :math:`\\mathrm{TV}(p, q) \\le \\sqrt{\\mathrm{KL}(p\\Vert q)/2}`.

    TV is exact for Gaussian latents with a shared covariance (it depends only on the Mahalanobis distance
    :math:`\\Delta = \\sqrt{2\\,\\mathrm{KL}}`: :math:`\\mathrm{TV} = 2\\Phi(\\Delta/2) - 1 =
    \\mathrm{erf}(\\sqrt{\\mathrm{KL}}/2)`); otherwise it is the Monte Carlo estimate
    :math:`\\mathbb E_p[(1 - q(X)/p(X))_+]` from ``num_samples`` draws of p, and the check allows three
    standard errors. ``rhs`` is Pinsker's bound from :func:`latentkit.divergence.tv_bounds`;
    ``details["bretagnolle_huber"]`` is :math:`\\sqrt{1 - e^{-\\mathrm{KL}}}` (tighter for large KL).

    Parameters
    ----------
    p, q : Distribution
        Same event shape, dtype and device, with a registered exact KL.
    num_samples : int >= 100
    seed : int >= 0
    """
    check_pair(p, q)
    num_samples = check_int(num_samples, "num_samples", minimum=100)
    seed = check_int(seed, "seed", minimum=0)
    kl = max(float(kl_divergence(p, q)), 0.0)
    pinsker, bh = (float(b) for b in divergence.tv_bounds(kl))
    if _shares_covariance(p, q):
        tv, stderr, method = math.erf(math.sqrt(kl) / 2.0), 0.0, "exact (shared-covariance Gaussians)"
    else:
        tv, stderr = _tv_monte_carlo(p, q, num_samples, seed)
        method = f"Monte Carlo ({num_samples} samples of p)"
    holds = tv - 3 * stderr <= pinsker * (1 + 1e-12)
    return Check(
        name="Pinsker: TV <= sqrt(KL / 2)",
        lhs=tv,
        rhs=pinsker,
        relation="<=",
        holds=holds,
        details={
            "kl": kl,
            "tv_stderr": stderr,
            "method": method,
            "bretagnolle_huber": bh,
            "bh_holds": tv - 3 * stderr <= bh * (1 + 1e-12),
        },
    )


# --------------------------------------------------------------------------------------------------
# a linear softmax last layer
# --------------------------------------------------------------------------------------------------
def _bound_latent(latent_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The latent_space arguments of the AP3 side of the softmax bound (identity projection, Gaussian)."""
    kw: dict[str, Any] = {"family": "gaussian", "covariance": "isotropic", "scale": 1.0}
    if latent_kwargs is not None:
        if not isinstance(latent_kwargs, Mapping):
            raise TypeError(
                f"latent_kwargs must be a dict of latent_space arguments; got {type(latent_kwargs).__name__}"
            )
        kw.update(dict(latent_kwargs))
    if kw.get("projection", "identity") != "identity":
        raise ValueError("the AP3 bound needs the identity projection (AP2 = ||W - W~||_F^2)")
    if kw.get("family", "gaussian") != "gaussian":
        raise ValueError("the AP3 bound uses the Gaussian eigenvalue sandwich: family must be 'gaussian'")
    return kw


def _layer_pair(
    weight: Any, weight_pruned: Any, features: Any, labels: Any, bias: Any, bias_pruned: Any
) -> tuple[torch.Tensor, ...]:
    """(W, W~, X, y, z, z~): the bias folded in when ``bias_pruned`` is given, else shared."""
    fold = bias_pruned is not None
    W, Wp, X, y = linear_inputs(
        weight, weight_pruned, features, labels, bias if fold else None, bias_pruned if fold else None
    )
    b = shared_bias(bias, W) if not fold else None
    return W, Wp, X, y, logits(X, W, b), logits(X, Wp, b)


def check_softmax_loss_bound(
    weight: Any,
    weight_pruned: Any,
    features: Any,
    labels: Any,
    bias: Any = None,
    bias_pruned: Any = None,
    *,
    latent_kwargs: Mapping[str, Any] | None = None,
) -> Check:
    """Loss gap of a linear softmax layer:
    :math:`|L(W)-L(\\tilde W)| \\le \\sqrt2\\,\\mathbb E\\lVert x\\rVert\\,\\lVert W-\\tilde W\\rVert_F
    \\le \\sqrt2\\,\\mathbb E\\lVert x\\rVert\\sqrt{2\\lambda_{\\max}\\mathrm{AP3}}`.

    With logits :math:`z = Wx` and :math:`\\ell(z) = -\\log\\mathrm{softmax}(z)_y`,
    :math:`\\nabla_z\\ell = p - e_y` and :math:`\\lVert p - e_y\\rVert_2^2 = (1-p_y)^2 + \\sum_{k\\ne y}p_k^2
    \\le 2(1-p_y)^2 \\le 2`; by the mean value theorem
    :math:`|\\ell(Wx)-\\ell(\\tilde Wx)| \\le \\sqrt2\\lVert (W-\\tilde W)x\\rVert \\le
    \\sqrt2\\lVert W-\\tilde W\\rVert_F\\lVert x\\rVert`; average over the data. Finally
    :math:`\\lVert W-\\tilde W\\rVert_F^2 = \\mathrm{AP2} \\le 2\\lambda_{\\max}\\mathrm{AP3}`
    (eigenvalue sandwich, identity projection, shared covariance).

    ``lhs`` = :math:`|L(W)-L(\\tilde W)|`,
    ``rhs`` = :math:`\\sqrt2\\,\\mathbb E\\lVert x\\rVert\\lVert W-\\tilde W\\rVert_F`
    (relation ``"<="``); ``details``: both losses, E||x||, the Frobenius norm, the tighter per-sample
    bound :math:`\\sqrt2\\,\\mathbb E\\lVert (W-\\tilde W)x\\rVert`, AP3 of the latent, its lmax, the
    AP3 bound and ``chain_holds`` (Frobenius bound <= AP3 bound). ``holds`` requires both inequalities.

    Parameters
    ----------
    weight, weight_pruned : Tensor (C, in)
    features : Tensor (n, in)
    labels : Tensor (n,), integer
    bias, bias_pruned : Tensor (C,) or None
        With ``bias_pruned`` given, the bias is folded in (x -> [x, 1], W -> [W, b]) and all norms
        are of the folded quantities; otherwise the bias is shared.
    latent_kwargs : dict, optional
        Arguments of :func:`latentkit.latent.latent_space` for the AP3 side (default: Gaussian,
        isotropic, scale 1). Projection must be "identity".
    """
    kw = _bound_latent(latent_kwargs)
    W, Wp, X, y, z, zp = _layer_pair(weight, weight_pruned, features, labels, bias, bias_pruned)
    loss, loss_p = cross_entropy(z, y), cross_entropy(zp, y)
    D = W - Wp
    mean_norm = float(X.norm(dim=1).mean())
    fro = float(D.norm())
    bound = math.sqrt(2.0) * mean_norm * fro
    per_sample = math.sqrt(2.0) * float((X @ D.T).norm(dim=1).mean())
    p = latent_space(W, **kw)
    q = latent_space(Wp, **kw)
    ap3_value = max(float(kl_divergence(p, q)), 0.0)
    _, lmax = covariance_eigen_range(p)
    ap3_bound = math.sqrt(2.0) * mean_norm * math.sqrt(2.0 * lmax * ap3_value)
    lhs = abs(loss - loss_p)
    chain = bound <= ap3_bound * (1 + 1e-9) + 1e-12
    holds = lhs <= per_sample * (1 + 1e-12) + 1e-15 and per_sample <= bound * (1 + 1e-12) + 1e-15 and chain
    return Check(
        name="softmax loss gap <= sqrt2 E||x|| ||W - W~||_F <= sqrt2 E||x|| sqrt(2 lmax AP3)",
        lhs=lhs,
        rhs=bound,
        relation="<=",
        holds=bool(holds),
        details={
            "loss_dense": loss,
            "loss_pruned": loss_p,
            "mean_feature_norm": mean_norm,
            "frobenius": fro,
            "per_sample_bound": per_sample,
            "ap3": ap3_value,
            "lmax": lmax,
            "ap3_bound": ap3_bound,
            "chain_holds": chain,
            "bias_folded": bias_pruned is not None,
            "latent": kw,
        },
    )


def _margins(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`m = z_y - \\max_{k \\ne y} z_k` per row."""
    zy = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return zy - others.max(dim=1).values


def check_margin_bound(
    weight: Any,
    weight_pruned: Any,
    features: Any,
    labels: Any,
    bias: Any = None,
    bias_pruned: Any = None,
) -> Check:
    """Accuracy drop of a pruned linear softmax layer, bounded by the samples whose margin is small.

    With margin :math:`m(x) = z_y - \\max_{k\\ne y} z_k` of the dense logits :math:`z = Wx` and
    :math:`\\delta = (W-\\tilde W)x`, the pruned logits are :math:`\\tilde z = z - \\delta` and for every
    :math:`k\\ne y`, :math:`\\tilde z_y - \\tilde z_k = z_y - z_k - (\\delta_y - \\delta_k) \\ge m(x) -
    2\\lVert\\delta\\rVert_\\infty`. So a sample with :math:`m(x) > 2\\lVert\\delta\\rVert_\\infty` keeps its
    correct prediction, and

    .. math:: \\mathrm{acc}(W) - \\mathrm{acc}(\\tilde W) \\le
              \\Pr\\big[m(x) > 0,\\ m(x) \\le 2\\lVert (W-\\tilde W)x\\rVert_\\infty\\big]
              \\le \\Pr\\big[m(x) > 0,\\ m(x) \\le 2\\lVert W-\\tilde W\\rVert_2\\lVert x\\rVert_2\\big].

    A sample counts as correct when its margin is > 0 (ties count as errors), for both networks.
    ``lhs`` = accuracy drop (fraction), ``rhs`` = the per-sample bound (first inequality), relation
    ``"<="``; ``details["spectral_bound"]`` is the looser bound with the spectral norm, and
    ``details["flipped_outside"]`` counts correct samples that flipped although their margin exceeded
    the threshold (must be 0). The bias is shared unless ``bias_pruned`` is given (then folded in).

    Parameters
    ----------
    weight, weight_pruned : Tensor (C, in), C >= 2
    features : Tensor (n, in)
    labels : Tensor (n,), integer
    bias, bias_pruned : Tensor (C,) or None
    """
    W, Wp, X, y, z, zp = _layer_pair(weight, weight_pruned, features, labels, bias, bias_pruned)
    if W.shape[0] < 2:
        raise ValueError("a margin needs at least two classes")
    m, mp = _margins(z, y), _margins(zp, y)
    correct, correct_p = m > 0, mp > 0
    delta_inf = (z - zp).abs().max(dim=1).values
    at_risk = correct & (m <= 2 * delta_inf)
    spec = float(torch.linalg.matrix_norm(W - Wp, ord=2))
    at_risk_loose = correct & (m <= 2 * spec * X.norm(dim=1))
    flipped = correct & ~correct_p
    acc, acc_p = float(correct.double().mean()), float(correct_p.double().mean())
    rhs = float(at_risk.double().mean())
    loose = float(at_risk_loose.double().mean())
    flipped_outside = int((flipped & ~at_risk).sum())
    return Check(
        name="accuracy drop <= P(correct, margin <= 2 ||(W - W~) x||_inf)",
        lhs=acc - acc_p,
        rhs=rhs,
        relation="<=",
        holds=bool(acc - acc_p <= rhs + 1e-12 and rhs <= loose + 1e-12 and flipped_outside == 0),
        details={
            "accuracy_dense": acc,
            "accuracy_pruned": acc_p,
            "flipped": float(flipped.double().mean()),
            "flipped_outside": flipped_outside,
            "spectral_bound": loose,
            "spectral_norm": spec,
            "bias_folded": bias_pruned is not None,
        },
    )


def _second_order(
    W: torch.Tensor, Wt: torch.Tensor, X: torch.Tensor, y: torch.Tensor
) -> tuple[float, float, float, float]:
    """Loss change :math:`L(W_t) - L(W)`, its first-order term :math:`\\langle\\nabla L(W), W_t - W\\rangle`,
    the remainder (change minus first order) and the gradient norm."""
    Wg = W.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(X @ Wg.T, y)
    (grad,) = torch.autograd.grad(loss, Wg)
    loss_t = cross_entropy(logits(X, Wt, None), y)
    first = float((grad * (Wt - W)).sum())
    delta_loss = loss_t - float(loss.detach())
    return delta_loss, first, delta_loss - first, float(grad.norm())


def check_laplace_second_order(
    weight: Any,
    weight_pruned: Any,
    features: Any,
    labels: Any,
    bias: Any = None,
    *,
    step: float = 1.0,
    damping: float = 1e-6,
    rtol: float = 0.25,
) -> Check:
    """AP3 under the Laplace/Fisher latent approximates the second-order loss increase.

    The latent of a linear softmax layer fitted by :func:`latentkit.latent.fit_laplace_linear` has
    precision :math:`G\\otimes A` (``A = E[x x^T]``, ``G = E[diag(p) - p p^T]``, bias folded into x), so
    with :math:`D = W - \\tilde W`, :math:`\\mathrm{AP3} = \\tfrac12\\mathrm{tr}(G D A D^\\top)`. The exact
    Hessian of the mean cross-entropy in :math:`W` is
    :math:`\\mathbb E[(\\mathrm{diag}(p)-pp^\\top)\\otimes xx^\\top]`, so
    :math:`L(\\tilde W) - L(W) - \\langle\\nabla L(W), \\tilde W - W\\rangle = \\tfrac12\\mathbb E[(Dx)^\\top
    (\\mathrm{diag}(p)-pp^\\top)(Dx)] + O(\\lVert D\\rVert^3)`; AP3 replaces the expectation of the Kronecker
    product by the Kronecker product of expectations (K-FAC).

    The perturbation is :math:`\\tilde W_t = W + t(\\tilde W - W)` with ``t = step`` (small ``t``: the
    second-order regime). ``lhs`` = AP3 (Laplace latent), ``rhs`` = actual loss change minus its first-order
    term (zero at an optimum), relation ``"~="`` with relative tolerance ``rtol``. ``details``: the
    loss change, the first-order term, the exact quadratic form (no K-FAC), the damping.

    Parameters
    ----------
    weight, weight_pruned : Tensor (C, in)
    features : Tensor (n, in)
    labels : Tensor (n,), integers
    bias : Tensor (C,) or None
        Shared by both networks, folded into the latent when given.
    step : float > 0
    damping : float > 0
        Passed to ``fit_laplace_linear`` (``G`` is singular, so the latent needs it; the latent's
        precision is ``kron(G + damping I, A + damping I)``; ``details["undamped"]`` is the K-FAC
        quadratic form without it).
    rtol : float > 0
    """
    step = check_positive(step, "step")
    rtol = check_positive(rtol, "rtol")
    damping = check_positive(damping, "damping")
    W, Wp, X, y = linear_inputs(weight, weight_pruned, features, labels, bias, None)
    Wt = W + step * (Wp - W)
    if bias is not None:  # keep the shared bias column exactly equal
        Wt[:, -1] = W[:, -1]
    raw_x = X[:, :-1] if bias is not None else X
    z = logits(X, W, None)
    fit = fit_laplace_linear(raw_x, z, bias=bias is not None, damping=damping)
    p_lat = latent_space(W, covariance="kronecker", fit=fit)
    q_lat = latent_space(Wt, covariance="kronecker", fit=fit)
    ap3_value = max(float(kl_divergence(p_lat, q_lat)), 0.0)
    delta_loss, first, second, grad_norm = _second_order(W, Wt, X, y)
    D = Wt - W
    probs = torch.softmax(z, dim=1)
    dx = X @ D.T
    exact_quad = 0.5 * float(((probs * dx**2).sum(1) - (probs * dx).sum(1) ** 2).mean())
    return Check(
        name="Laplace/Fisher AP3 ~= second-order loss increase",
        lhs=ap3_value,
        rhs=second,
        relation="~=",
        holds=close(ap3_value, second, rtol),
        details={
            "delta_loss": delta_loss,
            "first_order": first,
            "exact_quadratic": exact_quad,
            "kfac_over_exact": ap3_value / exact_quad if exact_quad > 0 else float("nan"),
            "undamped": fit.quadratic(D, damped=False),
            "step": step,
            "damping": damping,
            "rtol": rtol,
            "gradient_norm": grad_norm,
        },
    )
