"""Checks of the Gaussian claims: the KL closed form, its decomposition, and the shared-covariance
relations between AP2 and AP3 (eigenvalue sandwich, the two implications, isotropic proportionality).

Examples
--------
>>> import torch
>>> from latentkit.theory.gaussian import check_kl_decomposition
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> q = IsotropicNormal(torch.ones(2, dtype=torch.float64), 2.0)
>>> check_kl_decomposition(p, q).holds
True
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch.distributions import Distribution, MultivariateNormal, kl_divergence

from .. import divergence
from .._validation import check_int, check_nonnegative, check_positive
from ..latent import relocate
from ..patterns import ap2, ap3
from ._laws import (
    check_pair,
    check_shared_covariance,
    covariance_eigen_range,
    flat_mean,
    is_gaussian,
)
from .check import Check, close

__all__ = [
    "check_gaussian_kl",
    "check_kl_decomposition",
    "check_eigen_sandwich",
    "check_ap2_implies_ap3",
    "check_ap3_implies_ap2",
    "check_isotropic_proportionality",
]


def _gaussian_kl_scipy(m0: np.ndarray, s0: np.ndarray, m1: np.ndarray, s1: np.ndarray) -> float:
    """The textbook formula, evaluated independently with SciPy (Cholesky solves, log-determinants).

    .. math:: \\tfrac12\\big[\\mathrm{tr}(\\Sigma_1^{-1}\\Sigma_0) + (m_1-m_0)^\\top\\Sigma_1^{-1}(m_1-m_0)
              - d + \\ln\\det\\Sigma_1 - \\ln\\det\\Sigma_0\\big]

    This is the *independent* side of :func:`check_gaussian_kl`: it shares no code with latentkit's KL.
    """
    d = m0.shape[0]
    c1 = scipy.linalg.cho_factor(s1, lower=True)
    c0 = scipy.linalg.cho_factor(s0, lower=True)
    trace = float(np.trace(scipy.linalg.cho_solve(c1, s0)))
    dm = m1 - m0
    maha = float(dm @ scipy.linalg.cho_solve(c1, dm))
    logdet1 = 2.0 * float(np.sum(np.log(np.diag(c1[0]))))
    logdet0 = 2.0 * float(np.sum(np.log(np.diag(c0[0]))))
    return 0.5 * (trace + maha - d + logdet1 - logdet0)


def _check_gaussian_pair(p: Any, q: Any, what: str, *, same_family: bool = False) -> None:
    check_pair(p, q)
    if not (is_gaussian(p) and is_gaussian(q)) or (same_family and type(p) is not type(q)):
        kind = "two Gaussian latents of one family" if same_family else "Gaussian latents"
        raise ValueError(f"{what} needs {kind}; got {type(p).__name__} and {type(q).__name__}")


def check_gaussian_kl(
    p: Distribution, q: Distribution, *, rtol: float = 1e-6, atol: float = 1e-10, max_dim: int = 2000
) -> Check:
    """latentkit's Gaussian KL agrees with the closed form and with torch's full-covariance KL.

    .. math:: \\mathrm{KL}(\\mathcal N(m_0,\\Sigma_0)\\Vert\\mathcal N(m_1,\\Sigma_1)) = \\tfrac12\\big[
              \\mathrm{tr}(\\Sigma_1^{-1}\\Sigma_0) + (m_1-m_0)^\\top\\Sigma_1^{-1}(m_1-m_0) - d
              + \\ln\\det\\Sigma_1 - \\ln\\det\\Sigma_0\\big]

    ``lhs``: ``torch.distributions.kl_divergence(p, q)`` as registered by latentkit for the latents'
    structure (isotropic, diagonal, low-rank, Kronecker, full); ``rhs``: the formula above with dense
    matrices and SciPy Cholesky factorisations; ``details["torch_full"]``: torch's own KL between the
    equivalent dense :class:`~torch.distributions.MultivariateNormal` laws. Holds when all three agree to
    ``rtol`` (relative) or ``atol`` (absolute, nats: the trace and log-det terms are O(d) numbers whose
    difference can be a tiny KL, so round-off is absolute).

    Parameters
    ----------
    p, q : Distribution
        Gaussian latents (from :func:`latentkit.latent.latent_space` or torch), same event shape,
        dtype and device, d <= max_dim.
    rtol : float > 0
    atol : float >= 0
    max_dim : int >= 1
        Largest dimension for which the dense d x d covariances are built.

    Raises
    ------
    TypeError, ValueError
        Not Distributions, not Gaussian, different event shapes, dtypes or devices, bad tolerances.
    """
    _check_gaussian_pair(p, q, "check_gaussian_kl")
    rtol = check_positive(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    max_dim = check_int(max_dim, "max_dim", minimum=1)
    ours = float(kl_divergence(p, q))
    m0, s0 = divergence.dense_moments(p, max_dim)
    m1, s1 = divergence.dense_moments(q, max_dim)
    direct = _gaussian_kl_scipy(m0.cpu().numpy(), s0.cpu().numpy(), m1.cpu().numpy(), s1.cpu().numpy())
    torch_full = float(
        kl_divergence(
            MultivariateNormal(m0, covariance_matrix=s0), MultivariateNormal(m1, covariance_matrix=s1)
        )
    )
    holds = close(ours, direct, rtol, atol) and close(ours, torch_full, rtol, atol)
    return Check(
        name="Gaussian KL: latentkit = closed form (SciPy) = torch full covariance",
        lhs=ours,
        rhs=direct,
        relation="==",
        holds=holds,
        details={
            "torch_full": torch_full,
            "rtol": rtol,
            "atol": atol,
            "dimension": int(m0.numel()),
            "latent": type(p).__name__,
        },
    )


def check_kl_decomposition(
    p: Distribution, q: Distribution, *, rtol: float = 1e-8, atol: float = 1e-10
) -> Check:
    r"""KL between Gaussians = a mean term + a covariance term that does not depend on the means.

    .. math:: \mathrm{KL}(\mathcal N(m_0,\Sigma_0)\Vert\mathcal N(m_1,\Sigma_1))
              = \underbrace{\tfrac12 (m_1-m_0)^\top\Sigma_1^{-1}(m_1-m_0)}_{
              \mathrm{KL}(\mathcal N(m_0,\Sigma_1)\Vert\mathcal N(m_1,\Sigma_1))}
              + \underbrace{\tfrac12\big[\mathrm{tr}(\Sigma_1^{-1}\Sigma_0) - d + \ln\det\Sigma_1
              - \ln\det\Sigma_0\big]}_{\mathrm{KL}(\mathcal N(m_0,\Sigma_0)\Vert\mathcal N(m_0,\Sigma_1))}

    ``lhs`` = KL(p || q), ``rhs`` = mean term + covariance term, each computed by latentkit's KL on latents
    of the same structure (q's covariance moved to p's mean, and so on); relation ``"=="`` up to ``rtol``
    (relative) or ``atol`` (absolute, nats: round-off in the O(d) trace and log-det terms is absolute).
    ``details``: both terms, and the covariance term recomputed at the origin (``covariance_term_at_zero``,
    equal: it does not depend on the means).

    Parameters
    ----------
    p, q : Distribution
        Gaussian latents of one family, same event shape, dtype and device.
    rtol : float > 0
    atol : float >= 0
    """
    _check_gaussian_pair(p, q, "check_kl_decomposition", same_family=True)
    rtol = check_positive(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    total = float(kl_divergence(p, q))
    q_at_p = relocate(q, p.mean)
    mean_term = float(kl_divergence(q_at_p, q))
    cov_term = float(kl_divergence(p, q_at_p))
    zero = torch.zeros_like(p.mean)
    cov_zero = float(kl_divergence(relocate(p, zero), relocate(q, zero)))
    return Check(
        name="Gaussian KL = mean term + covariance term",
        lhs=total,
        rhs=mean_term + cov_term,
        relation="==",
        holds=close(total, mean_term + cov_term, rtol, atol),
        details={
            "mean_term": mean_term,
            "covariance_term": cov_term,
            "covariance_term_at_zero": cov_zero,
            "rtol": rtol,
            "atol": atol,
        },
    )


def _ap2_ap3_shared(p: Distribution, q: Distribution) -> tuple[float, float, float, float]:
    """AP2 = ||m_p - m_q||^2, AP3 = KL(p || q) (clipped at 0) and the shared covariance's (lmin, lmax)."""
    check_pair(p, q)
    check_shared_covariance(p, q)
    ap2_value = float(torch.sum((flat_mean(p) - flat_mean(q)) ** 2))
    ap3_value = max(float(kl_divergence(p, q)), 0.0)
    lmin, lmax = covariance_eigen_range(p)
    if not lmin > 0:
        raise ValueError(f"the shared covariance is not positive definite (smallest eigenvalue {lmin:.3g})")
    return ap2_value, ap3_value, lmin, lmax


def check_eigen_sandwich(p: Distribution, q: Distribution, *, rtol: float = 1e-9) -> Check:
    """Shared covariance: :math:`\\mathrm{AP2}/(2\\lambda_{\\max}) \\le \\mathrm{AP3} \\le
    \\mathrm{AP2}/(2\\lambda_{\\min})`.

    With :math:`P(w)=\\mathcal N(\\mu,\\Sigma)`, :math:`P(\\tilde w)=\\mathcal N(\\tilde\\mu,\\Sigma)` and
    :math:`D=\\mu-\\tilde\\mu`, :math:`\\mathrm{AP3}=\\tfrac12 D^\\top\\Sigma^{-1}D` and the Rayleigh quotient
    of :math:`\\Sigma^{-1}` lies in :math:`[1/\\lambda_{\\max}, 1/\\lambda_{\\min}]`.

    ``lhs`` = AP3 (latentkit KL), ``rhs`` = ``(lower, upper)``, relation ``"in"`` (with relative slack
    ``rtol`` for round-off). ``details``: ap2, lmin, lmax, and where AP3 sits in the interval
    (``position`` = 0 at the lower end, 1 at the upper end; NaN when the interval is a single point, as
    for an isotropic covariance where lmin = lmax).

    Parameters
    ----------
    p, q : Distribution
        Gaussian latents of one family sharing a covariance (e.g. ``latent_space(w, ...)`` and
        ``latent_space(w_pruned, ...)`` with the same arguments). ValueError otherwise.
    rtol : float >= 0
    """
    rtol = check_nonnegative(rtol, "rtol")
    a2, a3, lmin, lmax = _ap2_ap3_shared(p, q)
    lower, upper = a2 / (2 * lmax), a2 / (2 * lmin)
    slack = rtol * max(upper, 1e-300)
    holds = lower - slack <= a3 <= upper + slack
    position = (a3 - lower) / (upper - lower) if upper > lower else float("nan")
    return Check(
        name="eigenvalue sandwich AP2/(2 lmax) <= AP3 <= AP2/(2 lmin)",
        lhs=a3,
        rhs=(lower, upper),
        relation="in",
        holds=holds,
        details={
            "ap2": a2,
            "ap3": a3,
            "lmin": lmin,
            "lmax": lmax,
            "condition_number": lmax / lmin,
            "position": position,
            "rtol": rtol,
        },
    )


def _implication(
    name: str,
    *,
    premise_value: float,
    conclusion_value: float,
    eps: float | None,
    bound_factor: float,
    rtol: float,
    details: dict[str, Any],
) -> Check:
    """``premise_value <= eps`` implies ``conclusion_value <= bound_factor * eps``, as a Check.

    ``eps=None`` uses ``eps = premise_value`` (the tightest instance whose premise holds); a failed
    premise makes the implication hold vacuously (``details["vacuous"]``).
    """
    eps = premise_value if eps is None else check_nonnegative(eps, "eps")
    premise = premise_value <= eps
    bound = bound_factor * eps
    conclusion = conclusion_value <= bound * (1 + rtol) + 1e-300
    return Check(
        name=name,
        lhs=conclusion_value,
        rhs=bound,
        relation="<=",
        holds=(not premise) or conclusion,
        details={**details, "eps": eps, "premise": premise, "conclusion": conclusion, "vacuous": not premise},
    )


def check_ap2_implies_ap3(
    p: Distribution, q: Distribution, eps: float | None = None, *, rtol: float = 1e-9
) -> Check:
    """AP2 with tolerance eps implies AP3 with tolerance :math:`\\varepsilon/(2\\lambda_{\\min})` (shared
    covariance).

    ``lhs`` = AP3, ``rhs`` = eps / (2 lmin), relation ``"<="``. If the premise AP2 <= eps fails the
    implication holds vacuously (``details["premise"] = False``). ``eps=None`` uses eps = AP2, the
    tightest instance whose premise holds.

    Parameters
    ----------
    p, q : Distribution
        Gaussian latents of one family sharing a covariance.
    eps : float >= 0 or None
    rtol : float >= 0
        Relative slack on the conclusion (round-off).
    """
    rtol = check_nonnegative(rtol, "rtol")
    eps = None if eps is None else check_nonnegative(eps, "eps")
    a2, a3, lmin, _ = _ap2_ap3_shared(p, q)
    return _implication(
        "AP2(eps) => AP3(eps / (2 lmin))",
        premise_value=a2,
        conclusion_value=a3,
        eps=eps,
        bound_factor=1.0 / (2 * lmin),
        rtol=rtol,
        details={"ap2": a2, "lmin": lmin},
    )


def check_ap3_implies_ap2(
    p: Distribution, q: Distribution, eps: float | None = None, *, rtol: float = 1e-9
) -> Check:
    """AP3 with tolerance eps implies AP2 with tolerance :math:`2\\lambda_{\\max}\\varepsilon` (shared
    covariance).

    ``lhs`` = AP2, ``rhs`` = 2 lmax eps, relation ``"<="``; vacuous when AP3 > eps
    (``details["premise"] = False``). ``eps=None`` uses eps = AP3.

    Parameters
    ----------
    p, q : Distribution
        Gaussian latents of one family sharing a covariance.
    eps : float >= 0 or None
    rtol : float >= 0
        Relative slack on the conclusion (round-off).
    """
    rtol = check_nonnegative(rtol, "rtol")
    eps = None if eps is None else check_nonnegative(eps, "eps")
    a2, a3, _, lmax = _ap2_ap3_shared(p, q)
    return _implication(
        "AP3(eps) => AP2(2 lmax eps)",
        premise_value=a3,
        conclusion_value=a2,
        eps=eps,
        bound_factor=2 * lmax,
        rtol=rtol,
        details={"ap3": a3, "lmax": lmax},
    )


def _over_two_variances(a2: float, scale: float) -> float:
    """:math:`\\mathrm{AP2} / (2 s^2)`, without a Python OverflowError or a division by an underflowed
    (zero or subnormal) :math:`s^2` at extreme scales (then computed as ``a2 / 2 / s / s``)."""
    try:
        s2 = scale**2
    except OverflowError:
        s2 = math.inf
    return a2 / (2 * s2) if sys.float_info.min <= s2 < math.inf else a2 / 2 / scale / scale


def check_isotropic_proportionality(
    w: Any,
    w_pruned: Any,
    scale: float = 1.0,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    rtol: float = 1e-9,
) -> Check:
    """Isotropic latent :math:`\\Sigma = s^2 I`: :math:`\\mathrm{AP3} = \\mathrm{AP2} / (2 s^2)` exactly.

    ``lhs`` = :func:`latentkit.patterns.ap3` (gaussian, isotropic, ``scale=s``), ``rhs`` =
    :func:`latentkit.patterns.ap2` / (2 s^2), relation ``"=="`` (relative tolerance ``rtol``).

    Parameters
    ----------
    w, w_pruned : Tensor
        Dense and pruned weights (same shape, floating, finite).
    scale : float > 0
        The latent standard deviation s.
    projection, num_chunks
        Passed to :func:`latentkit.patterns.ap2` / :func:`latentkit.patterns.ap3`.
    rtol : float > 0
    """
    scale = check_positive(scale, "scale")
    rtol = check_positive(rtol, "rtol")
    a2 = ap2(w, w_pruned, projection=projection, num_chunks=num_chunks)
    a3 = ap3(
        w,
        w_pruned,
        family="gaussian",
        covariance="isotropic",
        scale=scale,
        projection=projection,
        num_chunks=num_chunks,
    )
    rhs = _over_two_variances(a2, scale)
    return Check(
        name="isotropic latent: AP3 = AP2 / (2 s^2)",
        lhs=a3,
        rhs=rhs,
        relation="==",
        holds=close(a3, rhs, rtol, atol=1e-300),
        details={"ap2": a2, "scale": scale, "rtol": rtol, "projection": projection},
    )
