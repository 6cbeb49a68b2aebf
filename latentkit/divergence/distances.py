"""Hellinger and Wasserstein-2 distances between Gaussian latent laws; TV bounds from a KL."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch.distributions import Distribution

from ..linalg import KroneckerCovariance, KroneckerFactor
from ._common import _DENSE_LIMIT, GaussianView, _check_pair

__all__ = ["hellinger", "wasserstein2", "tv_bounds", "TVBounds"]


def _dense_ok(g: GaussianView, what: str) -> None:
    if g.d > _DENSE_LIMIT:
        raise ValueError(
            f"{what} for this pair of covariance structures needs dense d x d matrices and d={g.d} > {_DENSE_LIMIT}"
        )


def _logdet_psd(M: torch.Tensor, name: str) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) != 0:
        raise ValueError(f"{name} is not positive definite")
    return 2.0 * torch.log(torch.diagonal(L)).sum(), L


def hellinger(p: Distribution, q: Distribution) -> float:
    r"""Hellinger distance ``H(p, q)`` between two Gaussian latent laws, in [0, 1].

    ``H^2 = 1 - BC`` with the Bhattacharyya coefficient
    ``BC = det(S_p)^{1/4} det(S_q)^{1/4} / det(S_m)^{1/2} exp(-1/8 dm^T S_m^{-1} dm)``,
    ``S_m = (S_p + S_q)/2``. Closed forms without ``d x d`` matrices when the covariances are
    equal (``H^2 = 1 - exp(-dm^T S^{-1} dm / 8)``), both isotropic/diagonal, or both Kronecker
    with a shared factor; other pairs use dense matrices (``d <= 4096``).

    Returns
    -------
    float
        ``H`` (not squared).
    """
    _check_pair(p, q)
    gp, gq = GaussianView(p), GaussianView(q)
    dm = (gq.loc - gp.loc)[:, None]
    if gp.cov.same_as(gq.cov):
        logbc = -0.125 * gp.cov.inv_quad(dm)
    elif gp.kind in ("iso", "diag") and gq.kind in ("iso", "diag"):
        vp, vq = gp.cov.diagonal(), gq.cov.diagonal()
        vm = 0.5 * (vp + vq)
        logbc = (
            0.25 * torch.log(vp).sum()
            + 0.25 * torch.log(vq).sum()
            - 0.5 * torch.log(vm).sum()
            - 0.125 * (dm[:, 0] ** 2 / vm).sum()
        )
    elif (
        gp.kind == "kron"
        and gq.kind == "kron"
        and (gp.cov.row.same_as(gq.cov.row) or gp.cov.col.same_as(gq.cov.col))
    ):
        cp, cq = gp.cov, gq.cov
        shared_row = cp.row.same_as(cq.row)
        fs = cp.row if shared_row else cp.col
        fa, fb = (cp.col, cq.col) if shared_row else (cp.row, cq.row)
        n_other = cp.r if shared_row else cp.c  # multiplicity of the varying factor's log det
        Va, Vb = fa.dense_like(gp.loc), fb.dense_like(gp.loc)
        Vm = 0.5 * (Va + Vb)
        ldm, Lm = _logdet_psd(Vm, "mean factor")
        lda, _ = _logdet_psd(Va, "factor")
        ldb, _ = _logdet_psd(Vb, "factor")
        # S_m = kron(U, Vm) (shared row) or kron(Um, V) (shared col)
        mfac = KroneckerFactor("cov", Lm.shape[0], Lm)
        Sm = KroneckerCovariance(fs, mfac, gp.loc) if shared_row else KroneckerCovariance(mfac, fs, gp.loc)
        maha = Sm.mahalanobis(dm[:, 0].reshape(cp.r, cp.c))
        logbc = n_other * (0.25 * lda + 0.25 * ldb - 0.5 * ldm) - 0.125 * maha
    else:
        _dense_ok(gp, "hellinger")
        Sp, Sq = gp.cov.dense(), gq.cov.dense()
        Sm = 0.5 * (Sp + Sq)
        ldm, Lm = _logdet_psd(Sm, "(S_p + S_q)/2")
        z = torch.linalg.solve_triangular(Lm, dm, upper=False)
        logbc = 0.25 * gp.cov.logdet() + 0.25 * gq.cov.logdet() - 0.5 * ldm - 0.125 * (z**2).sum()
    h2 = -math.expm1(min(float(logbc), 0.0))
    return math.sqrt(max(h2, 0.0))


def _trace_sqrt_product(Sp: torch.Tensor, Sq: torch.Tensor) -> torch.Tensor:
    """``tr (S_p^{1/2} S_q S_p^{1/2})^{1/2}`` = sum of sqrt of eigenvalues of ``L_p^T S_q L_p``."""
    Lp = torch.linalg.cholesky(Sp)
    ev = torch.linalg.eigvalsh(Lp.T @ Sq @ Lp)
    return torch.sqrt(ev.clamp_min(0.0)).sum()


def wasserstein2(p: Distribution, q: Distribution) -> float:
    r"""2-Wasserstein distance between two Gaussian latent laws.

    ``W2^2 = |m_p - m_q|^2 + tr(S_p) + tr(S_q) - 2 tr (S_p^{1/2} S_q S_p^{1/2})^{1/2}``.
    Without ``d x d`` matrices: equal covariances (``W2 = |dm|``), isotropic/diagonal pairs
    (``sum (s_p - s_q)^2``), two Kronecker laws (the square-root term factorises into an
    ``r x r`` and a ``c x c`` part). Other pairs use dense matrices (``d <= 4096``).

    Returns
    -------
    float
        ``W2`` (not squared), in the units of the weights.
    """
    _check_pair(p, q)
    gp, gq = GaussianView(p), GaussianView(q)
    m2 = ((gq.loc - gp.loc) ** 2).sum()
    if gp.cov.same_as(gq.cov):
        w2 = m2
    elif gp.kind in ("iso", "diag") and gq.kind in ("iso", "diag"):
        w2 = m2 + ((torch.sqrt(gp.cov.diagonal()) - torch.sqrt(gq.cov.diagonal())) ** 2).sum()
    elif gp.kind == "kron" and gq.kind == "kron":
        Up, Vp = gp.cov.row.dense_like(gp.loc), gp.cov.col.dense_like(gp.loc)
        Uq, Vq = gq.cov.row.dense_like(gp.loc), gq.cov.col.dense_like(gp.loc)
        cross = _trace_sqrt_product(Up, Uq) * _trace_sqrt_product(Vp, Vq)
        w2 = m2 + torch.trace(Up) * torch.trace(Vp) + torch.trace(Uq) * torch.trace(Vq) - 2.0 * cross
    else:
        _dense_ok(gp, "wasserstein2")
        Sp, Sq = gp.cov.dense(), gq.cov.dense()
        w2 = m2 + torch.trace(Sp) + torch.trace(Sq) - 2.0 * _trace_sqrt_product(Sp, Sq)
    return math.sqrt(max(float(w2), 0.0))


class TVBounds(NamedTuple):
    """Upper bounds on the total-variation distance implied by a KL value.

    ``pinsker = sqrt(KL/2)`` (may exceed 1), ``bretagnolle_huber = sqrt(1 - exp(-KL))``;
    ``best`` is the smaller of the two (and of 1).
    """

    pinsker: float
    bretagnolle_huber: float

    @property
    def best(self) -> float:
        return min(self.pinsker, self.bretagnolle_huber, 1.0)


def tv_bounds(kl: Any) -> TVBounds:
    r"""Total-variation bounds from ``KL(p || q)``.

    ``TV(p, q) <= sqrt(KL/2)`` (Pinsker) and ``TV(p, q) <= sqrt(1 - exp(-KL))``
    (Bretagnolle-Huber; tighter for large KL). ``TV = sup_A |p(A) - q(A)|`` in [0, 1].

    Parameters
    ----------
    kl : float >= 0 (``inf`` allowed) or a 1-element tensor
    """
    if isinstance(kl, torch.Tensor):
        if kl.numel() != 1:
            raise TypeError(f"kl must be a scalar; got a tensor of shape {tuple(kl.shape)}")
        kl = float(kl)
    if isinstance(kl, bool) or not isinstance(kl, (int, float)):
        try:
            kl = float(kl)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"kl must be a real number; got {type(kl).__name__}") from exc
    kl = float(kl)
    if math.isnan(kl) or kl < 0:
        raise ValueError(f"kl must be >= 0; got {kl!r}")
    return TVBounds(math.sqrt(kl / 2.0), math.sqrt(-math.expm1(-kl)))
