"""Numerical checks of the lemmas and bounds behind AP2 / AP3, one function per claim.

Every function returns a :class:`Check`: the two sides of the inequality (or the two values of the
identity), the relation, whether it held, and the intermediate quantities in ``details``; never a bare
boolean. The book's theory chapter derives each claim and runs these functions.

=======================================  ======================================================================
function                                 claim
=======================================  ======================================================================
:func:`check_gaussian_kl`                latentkit's KL = dense closed form (SciPy) = torch's full-covariance KL
:func:`check_kl_decomposition`           KL = mean term + covariance term (the latter independent of the means)
:func:`check_eigen_sandwich`             shared covariance: AP2/(2 lmax) <= AP3 <= AP2/(2 lmin)
:func:`check_ap2_implies_ap3`            AP2 <= eps  =>  AP3 <= eps / (2 lmin)
:func:`check_ap3_implies_ap2`            AP3 <= eps  =>  AP2 <= 2 lmax eps
:func:`check_isotropic_proportionality`  Sigma = s^2 I: AP3 = AP2 / (2 s^2)
:func:`check_student_t_limit`            Student-t AP3 -> Gaussian AP3 as df -> infinity
:func:`check_monte_carlo_rate`           Monte Carlo KL error ~ n^(-1/2)
:func:`check_pinsker`                    TV <= sqrt(KL / 2) (and Bretagnolle-Huber)
:func:`check_softmax_loss_bound`         ``|L(W) - L(W~)| <= sqrt2 E||x|| ||W - W~||_F``
                                         ``<= sqrt2 E||x|| sqrt(2 lmax AP3)``
:func:`check_margin_bound`               accuracy drop ``<= P(correct and margin <= 2 ||(W - W~) x||_inf)``
:func:`check_laplace_second_order`       Laplace/Fisher AP3 ~= second-order loss increase
=======================================  ======================================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal, kl_divergence

from .latent import DiagonalNormal, IsotropicNormal, MatrixNormal, fold_bias, relocate
from ._validation import (
    as_tensor,
    check_int,
    check_nonnegative,
    check_positive,
    check_same_device,
    check_same_shape,
    make_generator,
)

__all__ = [
    "Check",
    "checks_table",
    "covariance_eigen_range",
    "check_gaussian_kl",
    "check_kl_decomposition",
    "check_eigen_sandwich",
    "check_ap2_implies_ap3",
    "check_ap3_implies_ap2",
    "check_isotropic_proportionality",
    "check_student_t_limit",
    "check_monte_carlo_rate",
    "check_pinsker",
    "check_softmax_loss_bound",
    "check_margin_bound",
    "check_laplace_second_order",
    "softmax_cross_entropy",
]

RELATIONS = ("<=", ">=", "==", "~=", "in")

Number = Union[float, Tuple[float, float]]


@dataclass(frozen=True)
class Check:
    """The outcome of one numerical check of a claim.

    A ``Check`` is truthy exactly when it holds; ``str(check)`` prints it with 4 significant digits.

    Attributes
    ----------
    name : str
        The claim, in words.
    lhs, rhs : float or (float, float)
        The two sides. For ``relation == "in"``, ``rhs`` is an interval ``(lower, upper)``.
    relation : {"<=", ">=", "==", "~=", "in"}
        ``"=="``: equal up to floating-point round-off (tolerance in ``details``); ``"~="``: approximately
        equal within a stated tolerance (``details["rtol"]`` / ``details["atol"]``); ``"in"``:
        ``lower <= lhs <= upper``.
    holds : bool
        Whether ``lhs relation rhs`` held (with the stated tolerance).
    details : dict
        Intermediate quantities (eigenvalues, per-df values, tolerances, ...).
    """

    name: str
    lhs: Number
    rhs: Number
    relation: str
    holds: bool
    details: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS}; got {self.relation!r}")

    def __bool__(self) -> bool:
        return bool(self.holds)

    def __str__(self) -> str:
        return f"{self.name}: {_fmt(self.lhs)} {self.relation} {_fmt(self.rhs)} -> {'holds' if self.holds else 'FAILS'}"

    def as_row(self) -> Dict[str, Any]:
        """A flat dict (name, lhs, relation, rhs, holds) for a table; intervals are printed as strings."""
        return {
            "claim": self.name,
            "lhs": self.lhs if not isinstance(self.lhs, tuple) else _fmt(self.lhs),
            "relation": self.relation,
            "rhs": self.rhs if not isinstance(self.rhs, tuple) else _fmt(self.rhs),
            "holds": bool(self.holds),
        }


def _fmt(x: Number) -> str:
    if isinstance(x, tuple):
        return "[" + ", ".join(f"{v:.4g}" for v in x) + "]"
    return f"{x:.4g}"


def checks_table(checks: Sequence[Check]) -> "Any":
    """A pandas DataFrame with one row per :class:`Check` (claim, lhs, relation, rhs, holds)."""
    import pandas as pd

    for c in checks:
        if not isinstance(c, Check):
            raise TypeError(f"checks_table expects Check objects; got {type(c).__name__}")
    return pd.DataFrame([c.as_row() for c in checks])


def _close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


# --------------------------------------------------------------------------------------------------
# helpers on latent distributions
# --------------------------------------------------------------------------------------------------
def _is_gaussian(dist: Distribution) -> bool:
    return isinstance(dist, (IsotropicNormal, DiagonalNormal, MatrixNormal, MultivariateNormal, LowRankMultivariateNormal))


def _check_dist(dist: Any, name: str) -> Distribution:
    if not isinstance(dist, Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution (e.g. from latent_space); "
                        f"got {type(dist).__name__}")
    if len(dist.batch_shape) != 0:
        raise ValueError(f"{name} must have an empty batch_shape; got {tuple(dist.batch_shape)}")
    return dist


def _flat_mean(dist: Distribution) -> torch.Tensor:
    return dist.mean.reshape(-1).to(torch.float64)


def _dense_gaussian(dist: Distribution, max_dim: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """Mean (d,) and dense covariance (d, d), float64, of a latentkit Gaussian (small d only)."""
    d = int(np.prod(dist.event_shape)) if len(dist.event_shape) else 1
    if d > max_dim:
        raise ValueError(f"a dense covariance of dimension {d} > max_dim={max_dim} is not built; use a smaller layer")
    if isinstance(dist, MatrixNormal):
        dist = dist.to_multivariate_normal()
    mean = _flat_mean(dist)
    if isinstance(dist, (IsotropicNormal, DiagonalNormal)):
        cov = torch.diag(dist.variance.reshape(-1).to(torch.float64))
    elif isinstance(dist, (MultivariateNormal, LowRankMultivariateNormal)):
        cov = dist.covariance_matrix.to(torch.float64)
    else:
        raise TypeError(f"not a latentkit Gaussian latent: {type(dist).__name__}")
    return mean, cov


def covariance_eigen_range(dist: Distribution) -> "tuple[float, float]":
    """Smallest and largest eigenvalue :math:`(\\lambda_{\\min}, \\lambda_{\\max})` of a Gaussian latent's covariance.

    Isotropic / diagonal: from the variances (O(d)); matrix-normal :math:`U \\otimes V`: products of the
    extreme eigenvalues of ``U`` and ``V`` (eigenvalues of a Kronecker product are the pairwise products);
    full and low-rank: ``torch.linalg.eigvalsh`` of the covariance (small d).

    Raises
    ------
    TypeError
        If ``dist`` is not a latentkit Gaussian latent.
    """
    _check_dist(dist, "dist")
    if isinstance(dist, (IsotropicNormal, DiagonalNormal)):
        var = dist.variance.reshape(-1).to(torch.float64)
        return float(var.min()), float(var.max())
    if isinstance(dist, MatrixNormal):
        u = torch.linalg.eigvalsh(_matrix_normal_factor(dist, "row").to(torch.float64))
        v = torch.linalg.eigvalsh(_matrix_normal_factor(dist, "col").to(torch.float64))
        return float(u.min() * v.min()), float(u.max() * v.max())
    if isinstance(dist, (MultivariateNormal, LowRankMultivariateNormal)):
        ev = torch.linalg.eigvalsh(dist.covariance_matrix.to(torch.float64))
        return float(ev.min()), float(ev.max())
    raise TypeError(f"covariance_eigen_range needs a Gaussian latent; got {type(dist).__name__}")


def _matrix_normal_factor(dist: Distribution, which: str) -> torch.Tensor:
    for attr in (f"{which}_cov", f"{which}_covariance", f"{which}_covariance_matrix"):
        val = getattr(dist, attr, None)
        if isinstance(val, torch.Tensor):
            return val
    tril = getattr(dist, f"{which}_scale_tril")
    return tril @ tril.transpose(-1, -2)


def _check_shared_covariance(p: Distribution, q: Distribution) -> None:
    """Raise ValueError unless p and q are Gaussian latents of one type with the same covariance."""
    if not (_is_gaussian(p) and _is_gaussian(q)):
        raise ValueError("this claim is about Gaussian latents; got "
                         f"{type(p).__name__} and {type(q).__name__}")
    if type(p) is not type(q):
        raise ValueError(f"p and q must be the same latent family; got {type(p).__name__} and {type(q).__name__}")
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(f"p and q have different event shapes {tuple(p.event_shape)} and {tuple(q.event_shape)}")
    if isinstance(p, (IsotropicNormal, DiagonalNormal)):
        pairs = [(p.variance, q.variance)]
    elif isinstance(p, MatrixNormal):
        pairs = [(_matrix_normal_factor(p, s), _matrix_normal_factor(q, s)) for s in ("row", "col")]
    elif isinstance(p, LowRankMultivariateNormal):
        pairs = [(p.cov_factor, q.cov_factor), (p.cov_diag, q.cov_diag)]
    else:
        pairs = [(p.scale_tril, q.scale_tril)]
    for a, b in pairs:
        if a.shape != b.shape or not torch.allclose(a.to(torch.float64), b.to(torch.float64), rtol=1e-10, atol=0.0):
            raise ValueError("p and q must share one covariance (build both with the same latent_space arguments)")


# --------------------------------------------------------------------------------------------------
# Gaussian KL
# --------------------------------------------------------------------------------------------------
def _gaussian_kl_scipy(m0: np.ndarray, s0: np.ndarray, m1: np.ndarray, s1: np.ndarray) -> float:
    """The textbook formula, evaluated independently with SciPy (Cholesky solves, log-determinants)."""
    import scipy.linalg

    d = m0.shape[0]
    c1 = scipy.linalg.cho_factor(s1, lower=True)
    c0 = scipy.linalg.cho_factor(s0, lower=True)
    trace = float(np.trace(scipy.linalg.cho_solve(c1, s0)))
    dm = m1 - m0
    maha = float(dm @ scipy.linalg.cho_solve(c1, dm))
    logdet1 = 2.0 * float(np.sum(np.log(np.diag(c1[0]))))
    logdet0 = 2.0 * float(np.sum(np.log(np.diag(c0[0]))))
    return 0.5 * (trace + maha - d + logdet1 - logdet0)


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
        d <= max_dim.
    """
    from . import divergence  # noqa: F401

    _check_dist(p, "p")
    _check_dist(q, "q")
    rtol = check_positive(rtol, "rtol")
    max_dim = check_int(max_dim, "max_dim", minimum=1)
    if not (_is_gaussian(p) and _is_gaussian(q)):
        raise ValueError(f"check_gaussian_kl needs Gaussian latents; got {type(p).__name__} and {type(q).__name__}")
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(f"p and q have different event shapes {tuple(p.event_shape)} and {tuple(q.event_shape)}")
    ours = float(kl_divergence(p, q))
    m0, s0 = _dense_gaussian(p, max_dim)
    m1, s1 = _dense_gaussian(q, max_dim)
    direct = _gaussian_kl_scipy(m0.cpu().numpy(), s0.cpu().numpy(), m1.cpu().numpy(), s1.cpu().numpy())
    torch_full = float(kl_divergence(MultivariateNormal(m0, covariance_matrix=s0), MultivariateNormal(m1, covariance_matrix=s1)))
    atol = check_nonnegative(atol, "atol")
    holds = _close(ours, direct, rtol, atol) and _close(ours, torch_full, rtol, atol)
    return Check(
        name="Gaussian KL: latentkit = closed form (SciPy) = torch full covariance",
        lhs=ours,
        rhs=direct,
        relation="==",
        holds=holds,
        details={"torch_full": torch_full, "rtol": rtol, "atol": atol, "dimension": int(m0.numel()),
                 "latent": type(p).__name__},
    )


def check_kl_decomposition(p: Distribution, q: Distribution, *, rtol: float = 1e-8, atol: float = 1e-10) -> Check:
    r"""KL between Gaussians = a mean term + a covariance term that does not depend on the means.

    .. math:: \mathrm{KL}(\mathcal N(m_0,\Sigma_0)\Vert\mathcal N(m_1,\Sigma_1))
              = \underbrace{\tfrac12 (m_1-m_0)^\top\Sigma_1^{-1}(m_1-m_0)}_{\mathrm{KL}(\mathcal N(m_0,\Sigma_1)\Vert\mathcal N(m_1,\Sigma_1))}
              + \underbrace{\tfrac12\big[\mathrm{tr}(\Sigma_1^{-1}\Sigma_0) - d + \ln\det\Sigma_1 - \ln\det\Sigma_0\big]}_{\mathrm{KL}(\mathcal N(m_0,\Sigma_0)\Vert\mathcal N(m_0,\Sigma_1))}

    ``lhs`` = KL(p || q), ``rhs`` = mean term + covariance term, each computed by latentkit's KL on latents
    of the same structure (q's covariance moved to p's mean, and so on); relation ``"=="`` up to ``rtol``
    (relative) or ``atol`` (absolute, nats: round-off in the O(d) trace and log-det terms is absolute).
    ``details``: both terms, and the covariance term recomputed at the origin (``covariance_term_at_zero``,
    equal: it does not depend on the means).
    """
    from . import divergence  # noqa: F401

    _check_dist(p, "p")
    _check_dist(q, "q")
    rtol = check_positive(rtol, "rtol")
    atol = check_nonnegative(atol, "atol")
    if not (_is_gaussian(p) and _is_gaussian(q)) or type(p) is not type(q):
        raise ValueError(f"check_kl_decomposition needs two Gaussian latents of one family; got "
                         f"{type(p).__name__} and {type(q).__name__}")
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(f"p and q have different event shapes {tuple(p.event_shape)} and {tuple(q.event_shape)}")
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
        holds=_close(total, mean_term + cov_term, rtol, atol),
        details={"mean_term": mean_term, "covariance_term": cov_term, "covariance_term_at_zero": cov_zero,
                 "rtol": rtol, "atol": atol},
    )


# --------------------------------------------------------------------------------------------------
# shared covariance: sandwich, implications, isotropic proportionality
# --------------------------------------------------------------------------------------------------
def _ap2_ap3_shared(p: Distribution, q: Distribution) -> "tuple[float, float, float, float]":
    from . import divergence  # noqa: F401

    _check_dist(p, "p")
    _check_dist(q, "q")
    _check_shared_covariance(p, q)
    ap2_value = float(torch.sum((_flat_mean(p) - _flat_mean(q)) ** 2))
    ap3_value = max(float(kl_divergence(p, q)), 0.0)
    lmin, lmax = covariance_eigen_range(p)
    if not lmin > 0:
        raise ValueError(f"the shared covariance is not positive definite (smallest eigenvalue {lmin:.3g})")
    return ap2_value, ap3_value, lmin, lmax


def check_eigen_sandwich(p: Distribution, q: Distribution, *, rtol: float = 1e-9) -> Check:
    """Shared covariance: :math:`\\mathrm{AP2}/(2\\lambda_{\\max}) \\le \\mathrm{AP3} \\le \\mathrm{AP2}/(2\\lambda_{\\min})`.

    With :math:`P(w)=\\mathcal N(\\mu,\\Sigma)`, :math:`P(\\tilde w)=\\mathcal N(\\tilde\\mu,\\Sigma)` and
    :math:`D=\\mu-\\tilde\\mu`, :math:`\\mathrm{AP3}=\\tfrac12 D^\\top\\Sigma^{-1}D` and the Rayleigh quotient
    of :math:`\\Sigma^{-1}` lies in :math:`[1/\\lambda_{\\max}, 1/\\lambda_{\\min}]`.

    ``lhs`` = AP3 (latentkit KL), ``rhs`` = ``(lower, upper)``, relation ``"in"`` (with relative slack
    ``rtol`` for round-off). ``details``: ap2, lmin, lmax, and where AP3 sits in the interval
    (``position`` = 0 at the lower end, 1 at the upper end).

    Parameters
    ----------
    p, q : Distribution
        Gaussian latents of one family sharing a covariance (e.g. ``latent_space(w, ...)`` and
        ``latent_space(w_pruned, ...)`` with the same arguments). ValueError otherwise.
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
        details={"ap2": a2, "ap3": a3, "lmin": lmin, "lmax": lmax, "condition_number": lmax / lmin,
                 "position": position, "rtol": rtol},
    )


def _implication(name: str, *, premise_value: float, conclusion_value: float, eps: Optional[float],
                 bound_factor: float, rtol: float, details: Dict[str, Any]) -> Check:
    """``premise_value <= eps`` implies ``conclusion_value <= bound_factor * eps``, as a Check.

    ``eps=None`` uses ``eps = premise_value`` (the tightest instance whose premise holds); a failed
    premise makes the implication hold vacuously (``details["vacuous"]``).
    """
    rtol = check_nonnegative(rtol, "rtol")
    eps = premise_value if eps is None else check_nonnegative(eps, "eps")
    premise = premise_value <= eps
    bound = bound_factor * eps
    conclusion = conclusion_value <= bound * (1 + rtol) + 1e-300
    return Check(name=name, lhs=conclusion_value, rhs=bound, relation="<=", holds=(not premise) or conclusion,
                 details={**details, "eps": eps, "premise": premise, "conclusion": conclusion,
                          "vacuous": not premise})


def check_ap2_implies_ap3(p: Distribution, q: Distribution, eps: Optional[float] = None, *, rtol: float = 1e-9) -> Check:
    """AP2 with tolerance eps implies AP3 with tolerance :math:`\\varepsilon/(2\\lambda_{\\min})` (shared covariance).

    ``lhs`` = AP3, ``rhs`` = eps / (2 lmin), relation ``"<="``. If the premise AP2 <= eps fails the
    implication holds vacuously (``details["premise"] = False``). ``eps=None`` uses eps = AP2, the
    tightest instance whose premise holds.
    """
    a2, a3, lmin, lmax = _ap2_ap3_shared(p, q)
    return _implication("AP2(eps) => AP3(eps / (2 lmin))", premise_value=a2, conclusion_value=a3,
                        eps=eps, bound_factor=1.0 / (2 * lmin), rtol=rtol,
                        details={"ap2": a2, "lmin": lmin})


def check_ap3_implies_ap2(p: Distribution, q: Distribution, eps: Optional[float] = None, *, rtol: float = 1e-9) -> Check:
    """AP3 with tolerance eps implies AP2 with tolerance :math:`2\\lambda_{\\max}\\varepsilon` (shared covariance).

    ``lhs`` = AP2, ``rhs`` = 2 lmax eps, relation ``"<="``; vacuous when AP3 > eps
    (``details["premise"] = False``). ``eps=None`` uses eps = AP3.
    """
    a2, a3, lmin, lmax = _ap2_ap3_shared(p, q)
    return _implication("AP3(eps) => AP2(2 lmax eps)", premise_value=a3, conclusion_value=a2,
                        eps=eps, bound_factor=2 * lmax, rtol=rtol,
                        details={"ap3": a3, "lmax": lmax})


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
    ``scale`` is the standard deviation s.
    """
    from .patterns import ap2, ap3

    scale = check_positive(scale, "scale")
    rtol = check_positive(rtol, "rtol")
    a2 = ap2(w, w_pruned, projection=projection, num_chunks=num_chunks)
    a3 = ap3(w, w_pruned, family="gaussian", covariance="isotropic", scale=scale,
             projection=projection, num_chunks=num_chunks)
    rhs = a2 / (2 * scale**2)
    return Check(
        name="isotropic latent: AP3 = AP2 / (2 s^2)",
        lhs=a3,
        rhs=rhs,
        relation="==",
        holds=_close(a3, rhs, rtol, atol=1e-300),
        details={"ap2": a2, "scale": scale, "rtol": rtol, "projection": projection},
    )


# --------------------------------------------------------------------------------------------------
# Student-t and Monte Carlo
# --------------------------------------------------------------------------------------------------
def check_student_t_limit(
    w: Any,
    w_pruned: Any,
    dfs: Sequence[float] = (1.0, 2.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0),
    scale: float = 1.0,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    rtol: float = 0.01,
) -> Check:
    """Student-t AP3 tends to the Gaussian AP3 as the degrees of freedom grow.

    For each df, AP3_t(df) = KL between ``MultivariateStudentT(P(w), s I, df)`` and the same law at
    ``P(w~)`` (exact reduction in :mod:`latentkit.divergence`, deterministic); the limit is the Gaussian
    value :math:`\\lVert P(w)-P(\\tilde w)\\rVert^2/(2s^2)`.

    ``lhs`` = AP3_t at the largest df, ``rhs`` = Gaussian AP3, relation ``"~="``. Holds when the relative
    gap at the largest df is <= ``rtol`` and the gaps do not increase along the (sorted) dfs (1e-9 slack).
    ``details``: dfs, values, relative gaps, monotone flag.
    """
    from .patterns import ap3

    rtol = check_positive(rtol, "rtol")
    scale = check_positive(scale, "scale")
    if len(dfs) < 2:
        raise ValueError("dfs must hold at least two degrees of freedom")
    dfs = sorted(check_positive(df, "df") for df in dfs)
    common = dict(scale=scale, projection=projection, num_chunks=num_chunks)
    gauss = ap3(w, w_pruned, family="gaussian", covariance="isotropic", **common)
    values = [ap3(w, w_pruned, family="student_t", covariance="isotropic", df=df, **common) for df in dfs]
    if gauss == 0.0:
        gaps = [abs(v) for v in values]
    else:
        gaps = [abs(v - gauss) / gauss for v in values]
    monotone = all(gaps[i + 1] <= gaps[i] * (1 + 1e-9) + 1e-12 for i in range(len(gaps) - 1))
    return Check(
        name="Student-t AP3 -> Gaussian AP3 as df grows",
        lhs=values[-1],
        rhs=gauss,
        relation="~=",
        holds=bool(gaps[-1] <= rtol and monotone),
        details={"dfs": list(dfs), "values": values, "relative_gaps": gaps, "monotone": monotone,
                 "rtol": rtol, "scale": scale, "projection": projection},
    )


def check_monte_carlo_rate(
    p: Distribution,
    q: Distribution,
    sample_sizes: Sequence[int] = (500, 2000, 8000, 32000),
    repeats: int = 40,
    *,
    seed: int = 0,
    atol: float = 0.1,
) -> Check:
    """The Monte Carlo KL estimator's error shrinks like :math:`n^{-1/2}`.

    For each sample size n, :func:`latentkit.divergence.kl_monte_carlo` with ``repeats`` independent
    repeats gives the spread of the n-sample estimate; a least-squares line through
    (log n, log stderr) has slope ``lhs``, compared with ``rhs = -1/2`` (relation ``"~="``, absolute
    tolerance ``atol``). ``details`` also holds the estimates and, when a closed form/exact value is
    registered, the exact KL and the errors.
    """
    from . import divergence

    _check_dist(p, "p")
    _check_dist(q, "q")
    repeats = check_int(repeats, "repeats", minimum=2)
    atol = check_positive(atol, "atol")
    if len(sample_sizes) < 2:
        raise ValueError("sample_sizes must hold at least two sizes")
    sizes = sorted(check_int(n, "sample size", minimum=2) for n in sample_sizes)
    if len(set(sizes)) != len(sizes):
        raise ValueError("sample_sizes must be distinct")
    gen = make_generator(seed, device=p.mean.device)
    estimates, stderrs, spreads = [], [], []
    for n in sizes:
        mc = divergence.kl_monte_carlo(p, q, num_samples=n, repeats=repeats, generator=gen)
        estimates.append(float(mc.estimate))
        stderrs.append(float(mc.stderr))
        spreads.append(_mc_spread(mc, repeats))
    slope = float(np.polyfit(np.log(sizes), np.log(spreads), 1)[0])
    try:
        exact = float(kl_divergence(p, q))
    except NotImplementedError:
        exact = float("nan")
    return Check(
        name="Monte Carlo KL error ~ n^(-1/2)",
        lhs=slope,
        rhs=-0.5,
        relation="~=",
        holds=abs(slope + 0.5) <= atol,
        details={"sample_sizes": sizes, "repeats": repeats, "estimates": estimates, "stderrs": stderrs,
                 "spread": spreads, "exact": exact,
                 "errors": [abs(e - exact) for e in estimates], "atol": atol},
    )


def _mc_spread(mc: Any, repeats: int) -> float:
    """Standard deviation of a single n-sample estimate, from a MonteCarloKL result."""
    per = getattr(mc, "repeats_estimates", None)
    if per is None:
        per = getattr(mc, "per_repeat", None)
    if isinstance(per, torch.Tensor) and per.numel() > 1:
        return float(per.to(torch.float64).std())
    return float(mc.stderr) * math.sqrt(repeats)


# --------------------------------------------------------------------------------------------------
# total variation
# --------------------------------------------------------------------------------------------------
def check_pinsker(
    p: Distribution,
    q: Distribution,
    *,
    num_samples: int = 200_000,
    seed: int = 0,
) -> Check:
    """Pinsker's inequality :math:`\\mathrm{TV}(p, q) \\le \\sqrt{\\mathrm{KL}(p\\Vert q)/2}`.

    TV is exact for Gaussian latents with a shared covariance (it depends only on the Mahalanobis distance
    :math:`\\Delta = \\sqrt{2\\,\\mathrm{KL}}`: :math:`\\mathrm{TV} = 2\\Phi(\\Delta/2) - 1 = \\mathrm{erf}(\\sqrt{\\mathrm{KL}}/2)`);
    otherwise it is the Monte Carlo estimate :math:`\\mathbb E_p[(1 - q(X)/p(X))_+]` from ``num_samples``
    draws of p, and the check allows three standard errors. ``rhs`` is Pinsker's bound from
    :func:`latentkit.divergence.tv_bounds`; ``details["bretagnolle_huber"]`` is
    :math:`\\sqrt{1 - e^{-\\mathrm{KL}}}` (tighter for large KL).
    """
    from . import divergence

    _check_dist(p, "p")
    _check_dist(q, "q")
    num_samples = check_int(num_samples, "num_samples", minimum=100)
    kl = max(float(kl_divergence(p, q)), 0.0)
    pinsker, bh = (float(b) for b in divergence.tv_bounds(kl))
    shared = False
    if _is_gaussian(p) and _is_gaussian(q):
        try:
            _check_shared_covariance(p, q)
            shared = True
        except ValueError:
            shared = False
    if shared:
        tv, stderr, method = math.erf(math.sqrt(kl) / 2.0), 0.0, "exact (shared-covariance Gaussians)"
    else:
        dev = p.mean.device
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            x = p.sample((num_samples,))
        log_ratio = (q.log_prob(x) - p.log_prob(x)).to(torch.float64)
        vals = torch.clamp(1.0 - torch.exp(log_ratio), min=0.0)
        tv, stderr = float(vals.mean()), float(vals.std() / math.sqrt(num_samples))
        method = f"Monte Carlo ({num_samples} samples of p)"
    holds = tv - 3 * stderr <= pinsker * (1 + 1e-12)
    return Check(
        name="Pinsker: TV <= sqrt(KL / 2)",
        lhs=tv,
        rhs=pinsker,
        relation="<=",
        holds=holds,
        details={"kl": kl, "tv_stderr": stderr, "method": method, "bretagnolle_huber": bh,
                 "bh_holds": tv - 3 * stderr <= bh * (1 + 1e-12)},
    )


# --------------------------------------------------------------------------------------------------
# a linear softmax last layer
# --------------------------------------------------------------------------------------------------
def _linear_inputs(
    weight: Any, weight_pruned: Any, features: Any, labels: Any, bias: Any, bias_pruned: Any
) -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]":
    """Validate and return float64 (W, W~, X, y), with the bias folded in as a last column when given."""

    W = as_tensor(weight, "weight", min_dim=2).to(torch.float64)
    Wp = as_tensor(weight_pruned, "weight_pruned", min_dim=2).to(torch.float64)
    if W.dim() != 2:
        raise ValueError(f"weight must be a (classes, in_features) matrix; got shape {tuple(W.shape)}")
    check_same_shape(W, Wp, "weight", "weight_pruned")
    check_same_device(W, Wp, "weight", "weight_pruned")
    X = as_tensor(features, "features", min_dim=2).to(torch.float64)
    if X.dim() != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(f"features must be (n, {W.shape[1]}) to match weight {tuple(W.shape)}; got {tuple(X.shape)}")
    check_same_device(W, X, "weight", "features")
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(np.asarray(labels))
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"labels must be an integer tensor of class indices; got {labels.dtype}")
    y = labels.to(device=X.device, dtype=torch.int64).reshape(-1)
    if y.numel() != X.shape[0]:
        raise ValueError(f"labels must have one entry per feature row ({X.shape[0]}); got {y.numel()}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= W.shape[0]):
        raise ValueError(f"labels must lie in [0, {W.shape[0] - 1}]")
    if bias is None and bias_pruned is not None:
        raise ValueError("bias_pruned given without bias")
    if bias is not None:
        b = as_tensor(bias, "bias", min_dim=1).to(torch.float64).reshape(-1)
        if b.numel() != W.shape[0]:
            raise ValueError(f"bias must have {W.shape[0]} entries; got {b.numel()}")
        bp = b if bias_pruned is None else as_tensor(bias_pruned, "bias_pruned", min_dim=1).to(torch.float64).reshape(-1)
        check_same_shape(b, bp, "bias", "bias_pruned")
        W, Wp = fold_bias(W, b), fold_bias(Wp, bp)
        X = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)
    return W, Wp, X, y


def _shared_bias(bias: Any, W: torch.Tensor) -> Optional[torch.Tensor]:
    """A bias shared by both networks, validated: (C,) float64 on W's device (or None)."""
    if bias is None:
        return None
    b = as_tensor(bias, "bias", min_dim=1)
    check_same_device(W, b, "weight", "bias")
    b = b.to(torch.float64).reshape(-1)
    if b.numel() != W.shape[0]:
        raise ValueError(f"bias must have {W.shape[0]} entries; got {b.numel()}")
    return b


def softmax_cross_entropy(weight: Any, features: Any, labels: Any, bias: Any = None) -> float:
    """Mean cross-entropy :math:`L(W) = \\frac1n\\sum_i -\\log \\mathrm{softmax}(W x_i + b)_{y_i}` (float64).

    ``weight`` (C, in), ``features`` (n, in), ``labels`` (n,) integer class indices, ``bias`` (C,) or None.
    """
    W, _, X, y = _linear_inputs(weight, weight, features, labels, bias, None)
    return float(torch.nn.functional.cross_entropy(X @ W.T, y))


def check_softmax_loss_bound(
    weight: Any,
    weight_pruned: Any,
    features: Any,
    labels: Any,
    bias: Any = None,
    bias_pruned: Any = None,
    *,
    latent_kwargs: Optional[Mapping[str, Any]] = None,
) -> Check:
    """Loss gap of a linear softmax layer: :math:`|L(W)-L(\\tilde W)| \\le \\sqrt2\\,\\mathbb E\\lVert x\\rVert\\,\\lVert W-\\tilde W\\rVert_F \\le \\sqrt2\\,\\mathbb E\\lVert x\\rVert\\sqrt{2\\lambda_{\\max}\\mathrm{AP3}}`.

    With logits :math:`z = Wx` and :math:`\\ell(z) = -\\log\\mathrm{softmax}(z)_y`, :math:`\\nabla_z\\ell = p - e_y`
    and :math:`\\lVert p - e_y\\rVert_2^2 = (1-p_y)^2 + \\sum_{k\\ne y}p_k^2 \\le 2(1-p_y)^2 \\le 2`; by the mean
    value theorem :math:`|\\ell(Wx)-\\ell(\\tilde Wx)| \\le \\sqrt2\\lVert (W-\\tilde W)x\\rVert \\le
    \\sqrt2\\lVert W-\\tilde W\\rVert_F\\lVert x\\rVert`; average over the data. Finally
    :math:`\\lVert W-\\tilde W\\rVert_F^2 = \\mathrm{AP2} \\le 2\\lambda_{\\max}\\mathrm{AP3}` (eigenvalue sandwich,
    identity projection, shared covariance).

    ``lhs`` = :math:`|L(W)-L(\\tilde W)|`, ``rhs`` = :math:`\\sqrt2\\,\\mathbb E\\lVert x\\rVert\\lVert W-\\tilde W\\rVert_F`
    (relation ``"<="``); ``details``: both losses, E||x||, the Frobenius norm, the tighter per-sample bound
    :math:`\\sqrt2\\,\\mathbb E\\lVert (W-\\tilde W)x\\rVert`, AP3 of the latent, its lmax, the AP3 bound and
    ``chain_holds`` (Frobenius bound <= AP3 bound). ``holds`` requires both inequalities.

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
    from . import divergence  # noqa: F401
    from .latent import latent_space

    fold = bias_pruned is not None
    W, Wp, X, y = _linear_inputs(weight, weight_pruned, features, labels, bias if fold else None,
                                 bias_pruned if fold else None)
    b = _shared_bias(bias, W) if not fold else None
    kw = {"family": "gaussian", "covariance": "isotropic", "scale": 1.0}
    if latent_kwargs is not None:
        kw.update(dict(latent_kwargs))
    if kw.get("projection", "identity") != "identity":
        raise ValueError("the AP3 bound needs the identity projection (AP2 = ||W - W~||_F^2)")
    if kw.get("family", "gaussian") != "gaussian":
        raise ValueError("the AP3 bound uses the Gaussian eigenvalue sandwich: family must be 'gaussian'")
    z, zp = X @ W.T, X @ Wp.T
    if b is not None:
        z, zp = z + b, zp + b
    loss, loss_p = float(torch.nn.functional.cross_entropy(z, y)), float(torch.nn.functional.cross_entropy(zp, y))
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
        details={"loss_dense": loss, "loss_pruned": loss_p, "mean_feature_norm": mean_norm, "frobenius": fro,
                 "per_sample_bound": per_sample, "ap3": ap3_value, "lmax": lmax, "ap3_bound": ap3_bound,
                 "chain_holds": chain, "bias_folded": fold, "latent": kw},
    )


def _margins(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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
    2\\lVert\\delta\\rVert_\\infty`. So a sample with :math:`m(x) > 2\\lVert\\delta\\rVert_\\infty` keeps its correct
    prediction, and

    .. math:: \\mathrm{acc}(W) - \\mathrm{acc}(\\tilde W) \\le
              \\Pr\\big[m(x) > 0,\\ m(x) \\le 2\\lVert (W-\\tilde W)x\\rVert_\\infty\\big]
              \\le \\Pr\\big[m(x) > 0,\\ m(x) \\le 2\\lVert W-\\tilde W\\rVert_2\\lVert x\\rVert_2\\big].

    A sample counts as correct when its margin is > 0 (ties count as errors), for both networks.
    ``lhs`` = accuracy drop (fraction), ``rhs`` = the per-sample bound (first inequality), relation
    ``"<="``; ``details["spectral_bound"]`` is the looser bound with the spectral norm, and
    ``details["flipped_outside"]`` counts correct samples that flipped although their margin exceeded
    the threshold (must be 0). The bias is shared unless ``bias_pruned`` is given (then folded in).
    """
    fold = bias_pruned is not None
    W, Wp, X, y = _linear_inputs(weight, weight_pruned, features, labels, bias if fold else None,
                                 bias_pruned if fold else None)
    z, zp = X @ W.T, X @ Wp.T
    b = _shared_bias(bias, W) if not fold else None
    if b is not None:
        z, zp = z + b, zp + b
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
        details={"accuracy_dense": acc, "accuracy_pruned": acc_p, "flipped": float(flipped.double().mean()),
                 "flipped_outside": flipped_outside, "spectral_bound": loose, "spectral_norm": spec,
                 "bias_folded": fold},
    )


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
    precision :math:`G\\otimes A` (``A = E[x x^T]``, ``G = E[diag(p) - p p^T]``, bias folded into x), so with
    :math:`D = W - \\tilde W`, :math:`\\mathrm{AP3} = \\tfrac12\\mathrm{tr}(G D A D^\\top)`. The exact Hessian of
    the mean cross-entropy in :math:`W` is :math:`\\mathbb E[(\\mathrm{diag}(p)-pp^\\top)\\otimes xx^\\top]`, so
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
    from . import divergence  # noqa: F401
    from .latent import fit_laplace_linear, latent_space

    step = check_positive(step, "step")
    rtol = check_positive(rtol, "rtol")
    damping = check_positive(damping, "damping")
    W, Wp, X, y = _linear_inputs(weight, weight_pruned, features, labels, bias, None)
    Wt = W + step * (Wp - W)
    if bias is not None:  # keep the shared bias column exactly equal
        Wt[:, -1] = W[:, -1]
    raw_x = X[:, :-1] if bias is not None else X
    logits = X @ W.T
    fit = fit_laplace_linear(raw_x, logits, bias=bias is not None, damping=damping)
    p_lat = latent_space(W, covariance="kronecker", fit=fit)
    q_lat = latent_space(Wt, covariance="kronecker", fit=fit)
    ap3_value = max(float(kl_divergence(p_lat, q_lat)), 0.0)
    Wg = W.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(X @ Wg.T, y)
    (grad,) = torch.autograd.grad(loss, Wg)
    loss_t = float(torch.nn.functional.cross_entropy(X @ Wt.T, y))
    D = Wt - W
    first = float((grad * D).sum())
    delta_loss = loss_t - float(loss.detach())
    second = delta_loss - first
    probs = torch.softmax(logits, dim=1)
    dx = X @ D.T
    exact_quad = 0.5 * float(((probs * dx**2).sum(1) - (probs * dx).sum(1) ** 2).mean())
    return Check(
        name="Laplace/Fisher AP3 ~= second-order loss increase",
        lhs=ap3_value,
        rhs=second,
        relation="~=",
        holds=_close(ap3_value, second, rtol),
        details={"delta_loss": delta_loss, "first_order": first, "exact_quadratic": exact_quad,
                 "kfac_over_exact": ap3_value / exact_quad if exact_quad > 0 else float("nan"),
                 "undamped": fit.quadratic(D, damped=False),
                 "step": step, "damping": damping, "rtol": rtol, "gradient_norm": float(grad.norm())},
    )
