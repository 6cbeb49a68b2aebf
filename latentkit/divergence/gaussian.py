"""Gaussian KL for every pair of covariance structures, without d x d matrices where possible."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ..linalg import trace_inv_product
from ._common import GaussianView, _check_pair, _finish

__all__ = ["gaussian_kl"]


def gaussian_kl(p: Distribution, q: Distribution) -> torch.Tensor:
    r"""``KL(p || q)`` for two Gaussian latent laws of any supported structure (float64).

    ``1/2 [tr(S_q^{-1} S_p) + dm^T S_q^{-1} dm - d + log det S_q - log det S_p]`` with
    ``dm = m_q - m_p`` (row-major ``vec`` for :class:`MatrixNormal`). When both laws share the
    same covariance parameters the trace and log-det terms are exactly ``d`` and ``0``
    (AP3 with a shared covariance is ``1/2 dm^T S^{-1} dm``).

    Parameters
    ----------
    p, q : IsotropicNormal | DiagonalNormal | MultivariateNormal | LowRankMultivariateNormal | MatrixNormal
        Same event size (same event shape for two MatrixNormal), same device, no batch shape.

    Returns
    -------
    Tensor
        0-dim float64 tensor on the laws' device.
    """
    _check_pair(p, q)
    gp, gq = GaussianView(p), GaussianView(q)
    dm = (gq.loc - gp.loc)[:, None]
    maha = gq.cov.inv_quad(dm)
    if gp.cov.same_as(gq.cov):
        return _finish(0.5 * maha, maha.abs() + 1.0)
    tr = trace_inv_product(gp.cov, gq.cov)
    ldq, ldp = gq.cov.logdet(), gp.cov.logdet()
    val = 0.5 * (tr + maha - gp.d + ldq - ldp)
    return _finish(val, tr.abs() + maha.abs() + ldq.abs() + ldp.abs() + gp.d)
