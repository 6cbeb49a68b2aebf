"""Exact KL between multivariate Student-t laws of equal scale and degrees of freedom.

Examples
--------
>>> from latentkit.divergence.student_t import student_t_kl_from_distance
>>> student_t_kl_from_distance(0.0, 3.0, 2)
0.0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from scipy import integrate
from scipy.special import digamma

from .._validation import check_int, check_positive
from ..latent import MultivariateStudentT
from ._common import _F64, UnsupportedKLError, _check_pair

__all__ = ["student_t_kl", "student_t_kl_from_distance"]


#: ``a = delta^2 / nu`` at or below which the convergent power series is used (it converges for ``a < 4``).
_SERIES_MAX_A = 2.0
#: ``-log`` of the relative size of the remainder at which the asymptotic expansion takes over.
_ASYMPTOTIC_LOG_TOL = 17.0 * math.log(10.0)
_LOG2 = math.log(2.0)


def _check_delta(delta: Any) -> float:
    """``delta`` as a finite float >= 0 (a real number or a 1-element tensor; not bool or str)."""
    if isinstance(delta, torch.Tensor):
        if delta.numel() != 1 or delta.is_complex():
            raise TypeError(f"delta must be a real scalar; got a tensor of shape {tuple(delta.shape)}")
        delta = delta.item()
    if isinstance(delta, bool) or not isinstance(delta, (numbers.Real, np.generic)):
        raise TypeError(f"delta must be a real number; got {type(delta).__name__}")
    delta = float(delta)
    if not (delta >= 0 and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number >= 0; got {delta!r}")
    return delta


def _kl_series(a: float, m: float, n2: float) -> float:
    r"""``n2 sum_k (-1)^{k+1} (m)_k / k! a^k B(k, n2 + k)`` (``m = nu/2``, ``n2 = (nu+d)/2``).

    Term ratio ``-a (m+k) k (n2+k) / ((k+1)(n2+2k)(n2+2k+1)) -> -a/4``: alternating and decreasing
    for ``a <= 2``, so the truncation error is below the first omitted term.
    """
    t = m * a / (n2 + 1.0)
    total, k = t, 1
    while abs(t) > 1e-18 * abs(total) and k < 10_000:
        t *= -a * (m + k) * k * (n2 + k) / ((k + 1.0) * (n2 + 2.0 * k) * (n2 + 2.0 * k + 1.0))
        total += t
        k += 1
    return n2 * total


def _softplus(z: float) -> float:
    """``log(1 + e^z)`` without overflow."""
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def _kl_quadrature(log_a: float, m: float, n2: float, epsrel: float) -> float:
    r"""The exact integral in ``y = log t``, all in logs (``log a`` may exceed the float range).

    ``KL = n2 int_R (1+2e^y)^{-n2} [1 - (1 + x(y))^{-m}] dy``, ``log x = log 2a + y - 2 log(1+2e^y)``:
    the integrand rises from 0 to about 1 near ``y = -log 2a`` and decays like ``e^{-n2 y}`` beyond
    0, so the pieces below, between and above those two points are smooth.
    """

    def g(y: float) -> float:
        lp = _softplus(y + _LOG2)  # log(1 + 2 e^y)
        return math.exp(-n2 * lp) * -math.expm1(-m * _softplus(_LOG2 + log_a + y - 2.0 * lp))

    knee = -(_LOG2 + log_a)
    cuts = sorted({knee, 0.0})
    total, lo = 0.0, knee - 60.0  # the integrand is below e^{-60} to the left of knee - 60
    for b in cuts + [math.inf]:
        val, _ = integrate.quad(g, lo, b, epsabs=0.0, epsrel=epsrel, limit=200)
        total, lo = total + val, b
    return n2 * total


def _kl_asymptotic(log_a: float, nu: float, d: int) -> float:
    r"""``n2 [log a + psi(nu/2) - psi(n2) + (nu + d - 4) / ((nu - 2) a)]`` (correction for ``nu > 2``)."""
    n2 = 0.5 * (nu + d)
    val = log_a + float(digamma(0.5 * nu)) - float(digamma(n2))
    if nu > 2.0 and log_a < 700.0:
        val += (nu + d - 4.0) / (nu - 2.0) * math.exp(-log_a)
    return n2 * val


def _asymptotic_ok(log_a: float, nu: float) -> bool:
    """True when the remainder ``~ a^{-p} log a`` of :func:`_kl_asymptotic` is below ``1e-17``.

    ``p = min(2, nu/2)``: the next power terms are ``O(a^{-2})`` and the small-``W`` part of the
    expectation contributes ``O(a^{-nu/2} log a)`` (``E[W^{-k}]`` is infinite for ``k >= nu/2``).
    """
    if log_a <= 1.0:
        return False
    p = min(2.0, 0.5 * nu) if nu > 2.0 else 0.5 * nu
    return p * log_a - math.log1p(log_a) > _ASYMPTOTIC_LOG_TOL


def student_t_kl_from_distance(delta: float, df: float, dim: int, *, epsrel: float = 1e-10) -> float:
    r"""KL between ``t_nu(m_p, S)`` and ``t_nu(m_q, S)`` in ``d`` dimensions, as a function of
    the Mahalanobis distance ``delta = |L^{-1}(m_p - m_q)|`` (``S = L L^T``).

    Derivation. With ``X = m_p + L Z``, ``Z = G / sqrt(W/nu)``, ``G ~ N(0, I_d)``,
    ``W ~ chi^2_nu``, and a rotation taking ``L^{-1}(m_q - m_p)`` to ``delta e_1``:
    ``KL = (nu+d)/2 E[log(W + |G - delta sqrt(W/nu) e_1|^2) - log(W + |G|^2)]``.
    Frullani's ``log x = int_0^inf (e^{-t} - e^{-tx}) dt / t`` with the Laplace transforms of
    ``chi^2_nu`` and of the noncentral ``chi^2_d`` gives the exact one-dimensional integral

    ``KL = (nu+d)/2 int_0^inf (1+2t)^{-(nu+d)/2} [1 - (1 + 2 delta^2 t / (nu (1+2t)^2))^{-nu/2}] dt / t``.

    It is evaluated in one of three ways (``a = delta^2 / nu``, ``m = nu/2``, ``n2 = (nu+d)/2``):

    * ``a <= 2``: the convergent series ``KL = n2 sum_{k>=1} (-1)^{k+1} (m)_k / k! a^k
      B(k, n2 + k)`` (expand the bracket in powers of ``x = 2at/(1+2t)^2 <= a/4`` and integrate
      term by term; converges for ``a < 4``). Its first term is ``delta^2/2 (nu+d)/(nu+d+2)``.
    * large ``a``: the asymptotic expansion ``KL = n2 [log a + psi(nu/2) - psi(n2)
      + (nu+d-4)/((nu-2) a)] + O(a^{-2}) + O(a^{-nu/2} log a)`` (``E log chi^2_k = psi(k/2) +
      log 2`` for the leading term; the ``1/a`` term, for ``nu > 2``, from ``E[1/W] = 1/(nu-2)``),
      once ``a^{-p} log a < 1e-17`` with ``p = min(2, nu/2)`` (``nu/2`` for ``nu <= 2``).
    * in between: adaptive Gauss-Kronrod quadrature (:func:`scipy.integrate.quad`, relative
      tolerance ``epsrel``) in ``y = log t`` with every factor in logs, split at ``y = -log 2a`` and 0.

    Accuracy, measured against 50-digit mpmath references (tests; the series summed and the integral
    integrated in 50 digits): relative error below ``1e-14`` (worst measured ``1.6e-15``) for every
    finite ``delta`` from ``1e-150`` to ``1.8e308``, ``df`` in ``[0.1, 1000]`` and ``dim`` in
    ``[1, 10^4]``; below ``delta ~ 1e-154`` the value itself (``~ delta^2/2``) leaves the normal
    float range and underflows gracefully to subnormals and 0. Deterministic, symmetric in ``p``
    and ``q``, and ``-> delta^2/2`` (the Gaussian value) as ``nu -> inf``.

    Parameters
    ----------
    delta : float >= 0
        A real number (or a 1-element tensor); strings and booleans are refused (``TypeError``).
    df : float > 0
    dim : int >= 1
    epsrel : float
        Relative tolerance passed to the quadrature (default 1e-10).
    """
    delta = _check_delta(delta)
    nu = check_positive(df, "df")
    d = check_int(dim, "dim", minimum=1)
    epsrel = check_positive(epsrel, "epsrel")
    if delta == 0.0:
        return 0.0
    m, n2 = 0.5 * nu, 0.5 * (nu + d)
    log_a = 2.0 * math.log(delta) - math.log(nu)
    if log_a <= math.log(_SERIES_MAX_A):  # a = delta^2/nu directly: exp(log a) would cost |log a| ulps
        return _kl_series(delta * delta / nu, m, n2)
    if _asymptotic_ok(log_a, nu):
        return _kl_asymptotic(log_a, nu, d)
    return _kl_quadrature(log_a, m, n2, epsrel)


def _same_scale(p: MultivariateStudentT, q: MultivariateStudentT) -> bool:
    tol = 1e-12
    if p.is_isotropic and q.is_isotropic:
        sp, sq = float(p.scale), float(q.scale)
        return abs(sp - sq) <= tol * max(sp, sq)
    if not p.is_isotropic and not q.is_isotropic:
        Lp, Lq = p.scale_tril.to(_F64), q.scale_tril.to(_F64)
        return bool(((Lp - Lq).abs() <= tol * Lp.abs().max()).all())
    iso, full = (p, q) if p.is_isotropic else (q, p)
    L = full.scale_tril.to(_F64)
    s = float(iso.scale)
    return bool(((L - s * torch.eye(L.shape[0], dtype=_F64, device=L.device)).abs() <= tol * s).all())


def student_t_kl(p: MultivariateStudentT, q: MultivariateStudentT, *, epsrel: float = 1e-10) -> torch.Tensor:
    r"""Exact ``KL(p || q)`` between multivariate Student-t laws with equal scale and ``df``.

    By affine invariance and rotational symmetry it depends only on
    ``delta = |L^{-1}(m_p - m_q)|``, ``nu`` and ``d``; it is computed deterministically by a
    one-dimensional quadrature (see :func:`student_t_kl_from_distance` for the formula),
    not by Monte Carlo. Also registered for :func:`torch.distributions.kl_divergence`.

    Raises
    ------
    UnsupportedKLError (a ValueError)
        Different scales or ``df``: no exact reduction; use :func:`kl_monte_carlo`.
    """
    for law, name in ((p, "p"), (q, "q")):
        if not isinstance(law, MultivariateStudentT):
            raise TypeError(
                f"student_t_kl needs two MultivariateStudentT laws; {name} is a {type(law).__name__}"
            )
    _check_pair(p, q)
    if abs(p.df - q.df) > 1e-12 * max(p.df, q.df):
        raise UnsupportedKLError(
            f"exact Student-t KL needs equal df; got {p.df:g} and {q.df:g}. Use kl_monte_carlo(p, q)"
        )
    if not _same_scale(p, q):
        raise UnsupportedKLError("exact Student-t KL needs equal scale matrices; use kl_monte_carlo(p, q)")
    diff = q.loc.to(_F64) - p.loc.to(_F64)
    if p.is_isotropic:
        m2 = float((diff**2).sum()) / float(p.scale.to(_F64)) ** 2
    else:
        z = torch.linalg.solve_triangular(p.scale_tril.to(_F64), diff[:, None], upper=False)
        m2 = float((z**2).sum())
    val = student_t_kl_from_distance(math.sqrt(m2), p.df, p.dim, epsrel=epsrel)
    return torch.tensor(val, dtype=_F64, device=p.loc.device)
