"""Gaussian KL for every pair of covariance structures, without d x d matrices where possible.

Examples
--------
>>> import torch
>>> from latentkit.divergence.gaussian import gaussian_kl
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> q = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 2.0)
>>> round(float(gaussian_kl(p, q)), 6)
0.636294
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..linalg import CovarianceOperator, DiagonalCovariance, IsotropicCovariance, trace_inv_product
from ._common import _DENSE_LIMIT, GaussianView, KLOverflowError, _check_law, _check_pair, _finish, balanced
from ._stable import covariance_difference, std_vector

__all__ = ["gaussian_kl"]


def gaussian_kl(p: Distribution, q: Distribution) -> torch.Tensor:
    r"""``KL(p || q)`` for two Gaussian latent laws of any supported structure (float64).

    ``1/2 [tr(S_q^{-1} S_p) + dm^T S_q^{-1} dm - d + log det S_q - log det S_p]`` with
    ``dm = m_q - m_p`` (row-major ``vec`` for :class:`MatrixNormal`). When both laws share the
    same covariance parameters the trace and log-det terms are exactly ``d`` and ``0``
    (AP3 with a shared covariance is ``1/2 dm^T S^{-1} dm``).

    Extremes. Isotropic/diagonal pairs are evaluated per coordinate from the standard deviations
    (``1/2 sum [u - log1p(u) + (dm/s_q)^2]``, ``u = (s_p/s_q)^2 - 1``), so the KL is finite whenever
    it is representable (a variance below ``1e-308`` is never formed) and keeps its relative accuracy
    as the laws approach each other; for other structures with nearly equal covariances (``d <= 4096``)
    the covariance part is ``sum_i [e_i - log1p(e_i)]`` over the eigenvalues of the whitened
    difference. Measured against 50-digit mpmath (tests): relative error below ``1e-13`` at
    ``S_q = (1 + eps) S_p`` for ``eps`` down to ``1e-10``, and below ``1e-12`` for diagonal laws over
    standard deviations ``1e-300 .. 1e300``. A KL beyond float64 raises :class:`KLOverflowError`.

    Parameters
    ----------
    p, q : IsotropicNormal | DiagonalNormal | MultivariateNormal | LowRankMultivariateNormal | MatrixNormal
        Same event size (same event shape for two MatrixNormal), same device, no batch shape.

    Returns
    -------
    Tensor
        0-dim float64 tensor on the laws' device.
    """
    _check_law(p, "p")
    _check_law(q, "q")
    _check_pair(p, q)
    gp, gq, _ = balanced(GaussianView(p), GaussianView(q))
    dm = (gq.loc - gp.loc)[:, None]
    if _scales_extreme(gp.cov) or _scales_extreme(gq.cov):
        if not (isinstance(gp.cov, _DIAG_OPS) and isinstance(gq.cov, _DIAG_OPS)):
            raise ValueError(
                "a covariance has variances outside the float64 range (standard deviations below 1e-150 "
                "or above 1e150) and the other law is not isotropic/diagonal; rescale both laws by one factor"
            )
        return _finish(_diag_kl_stable(gp, gq, dm[:, 0]), torch.ones((), dtype=gp.loc.dtype))
    maha = gq.cov.inv_quad(dm)
    if gp.cov.same_as(gq.cov):
        if isinstance(gq.cov, _DIAG_OPS) and bool(((dm != 0) & (dm.abs() < 1.5e-154)).any()):
            # dm^2 went subnormal: (dm / s)^2 keeps the digits
            return _finish(_diag_kl_stable(gp, gq, dm[:, 0]), torch.ones((), dtype=gp.loc.dtype))
        _check_overflow(maha, maha.new_zeros(()))
        return _finish(0.5 * maha, maha.abs() + 1.0)
    if isinstance(gp.cov, _DIAG_OPS) and isinstance(gq.cov, _DIAG_OPS):
        val = _diag_kl_stable(gp, gq, dm[:, 0])
        return _finish(val, val.abs() + 1.0)
    tr = trace_inv_product(gp.cov, gq.cov)
    ldq, ldp = gq.cov.logdet(), gp.cov.logdet()
    _check_overflow(tr + maha, ldq - ldp)
    cov_part = tr - gp.d + ldq - ldp
    if gp.d <= _DENSE_LIMIT and bool(cov_part.abs() < _NEAR * gp.d):
        # nearly equal covariances: tr - d + log det ratio cancels; use the whitened difference
        return _finish(0.5 * (maha + _near_cov_part(gp, gq)), maha.abs() + 1.0)
    val = 0.5 * (tr + maha - gp.d + ldq - ldp)
    return _finish(val, tr.abs() + maha.abs() + ldq.abs() + ldp.abs() + gp.d)


#: Covariance part ``tr - d + log det ratio`` below ``_NEAR * d``: the laws' covariances are close.
_NEAR = 1e-3


def _near_cov_part(gp: GaussianView, gq: GaussianView) -> torch.Tensor:
    r"""``tr(S_q^{-1} S_p) - d - log det(S_q^{-1} S_p) = sum_i [e_i - log1p(e_i)]`` (each term >= 0),
    ``e_i`` the eigenvalues of ``L_q^{-1} (S_p - S_q) L_q^{-T}`` with ``S_p - S_q`` formed from the
    parameters (dense, ``d <= 4096``)."""
    Lq = torch.linalg.cholesky(gq.cov.dense())
    Dpq = covariance_difference(gq.cov, gp.cov)  # S_p - S_q
    Y = torch.linalg.solve_triangular(Lq, Dpq, upper=False)
    E = torch.linalg.solve_triangular(Lq, Y.T, upper=False)
    e = torch.linalg.eigvalsh(0.5 * (E + E.T))
    return _x_minus_log1p(e, torch.log1p(e)).sum()


_DIAG_OPS = (IsotropicCovariance, DiagonalCovariance)


def _x_minus_log1p(u: torch.Tensor, log_r2: torch.Tensor) -> torch.Tensor:
    """``u - log1p(u)`` (>= 0) with ``1 + u = r^2``: the series ``sum_k>=2 (-u)^k / k`` for ``|u| < 0.1``
    (no cancellation), else ``u - log r^2`` with ``log r^2`` from the ratio (no ``1 + u`` rounding)."""
    small = u.abs() < 0.1
    us = torch.where(small, u, torch.zeros_like(u))
    series = torch.zeros_like(u)
    power = us * us
    for k in range(2, 20):
        series = series + power / k
        power = power * -us
    return torch.where(small, series, u - log_r2)


def _diag_kl_stable(gp: GaussianView, gq: GaussianView, dm: torch.Tensor) -> torch.Tensor:
    r"""Isotropic/diagonal pair from the standard deviations, never forming a variance:
    ``1/2 sum_i [u_i - log1p(u_i) + (dm_i / s_q,i)^2]``, ``u = r^2 - 1 = ((s_p - s_q)/s_q)(r + 1)``,
    ``r = s_p / s_q``. Every term is >= 0, so the KL keeps its relative accuracy as the laws approach
    each other, and it is finite whenever the KL is (``s_p = 1e-200``, ``s_q = 1``: ``r^2``
    underflows harmlessly and ``-log r`` is 460.5 nats per coordinate)."""
    sp, sq = std_vector(gp.cov), std_vector(gq.cov)
    r = sp / sq
    u = ((sp - sq) / sq) * (r + 1.0)
    z = dm / sq
    val = 0.5 * (_x_minus_log1p(u, 2.0 * torch.log(r)).sum() + (z * z).sum())
    _check_overflow(val, val.new_zeros(()))
    return val


#: Standard deviations outside this range have variances that under/overflow float64.
_SAFE_STD = (1e-150, 1e150)


def _scales_extreme(op: CovarianceOperator) -> bool:
    """True for an isotropic/diagonal operator whose variances leave the normal float64 range."""
    if not isinstance(op, (IsotropicCovariance, DiagonalCovariance)):
        return False
    s = op.scale
    return bool(((s < _SAFE_STD[0]) | (s > _SAFE_STD[1])).any())


def _check_overflow(positive_terms: torch.Tensor, logdet_terms: torch.Tensor) -> None:
    """:class:`KLOverflowError` (a clear message) when a KL term is infinite with finite log-determinants."""
    if bool(torch.isinf(positive_terms)) and bool(torch.isfinite(logdet_terms)):
        raise KLOverflowError(
            "KL overflows float64: the Mahalanobis/trace term exceeds 1.8e308 (the laws are too far apart "
            "relative to their covariances for the KL to be representable)"
        )
