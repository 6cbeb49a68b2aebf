"""Cancellation-free pieces for laws that are close to each other (Hellinger, W2) and rescaling.

When ``S_q = S_p + D`` with a small ``D``, the textbook formulas subtract nearly equal numbers
(``log det`` differences, ``tr S_p + tr S_q - 2 tr(...)^{1/2}``) and lose every digit. Here:

* ``D`` is formed from the *parameters* (``L_q L_q^T - L_p L_p^T = dL L_q^T + L_p dL^T`` with
  ``dL = L_q - L_p``, exact by Sterbenz when the factors are close), not by subtracting two dense
  covariances;
* Hellinger's log-determinant part uses the eigenvalues ``e_i`` of the whitened difference
  ``L_p^{-1} D L_p^{-T}``: ``1/4 log det S_p + 1/4 log det S_q - 1/2 log det S_m =
  -1/4 sum_i log1p(e_i^2 / (4 (1 + e_i)))``, every term >= 0;
* W2's covariance part is ``tr(X S_p^{-1} X)`` with ``X = (S_p^{1/2} S_q S_p^{1/2})^{1/2} - S_p``,
  which equals ``tr S_p + tr S_q - 2 tr(S_p^{1/2} S_q S_p^{1/2})^{1/2}`` (from the diagonal of
  ``S_p X + X S_p + X^2 = S_p^{1/2} D S_p^{1/2}`` in the eigenbasis of ``S_p``) and is a sum of
  squares; ``X`` solves that equation by a fixed point when ``D`` is small.
"""

from __future__ import annotations

import torch

from ..linalg import (
    CovarianceOperator,
    DiagonalCovariance,
    IsotropicCovariance,
    KroneckerCovariance,
    KroneckerFactor,
    LowRankCovariance,
    TrilCovariance,
)

__all__ = [
    "std_vector",
    "factor_difference",
    "covariance_difference",
    "hellinger_logdet_term",
    "transport_residual",
    "w2_covariance_term",
]


def std_vector(op: CovarianceOperator) -> torch.Tensor:
    """Standard deviations (d,) of an isotropic or diagonal operator, from its stored scale."""
    if isinstance(op, IsotropicCovariance):
        return op.scale.expand(op.d)
    if isinstance(op, DiagonalCovariance):
        return op.scale
    raise TypeError(f"not an isotropic/diagonal operator: {type(op).__name__}")


def _tril_difference(Lp: torch.Tensor, Lq: torch.Tensor) -> torch.Tensor:
    """``L_q L_q^T - L_p L_p^T = dL L_q^T + L_p dL^T`` (``dL = L_q - L_p``)."""
    dL = Lq - Lp
    return dL @ Lq.T + Lp @ dL.T


def factor_difference(fp: KroneckerFactor, fq: KroneckerFactor, like: torch.Tensor) -> torch.Tensor:
    """``V_q - V_p`` (dense n x n) for two Kronecker factors, from their parameters when possible."""
    if fp.kind == "identity" and fq.kind == "identity":
        return torch.zeros(fp.n, fp.n, dtype=like.dtype, device=like.device)
    if fp.kind == "cov" and fq.kind == "cov":
        return _tril_difference(fp.L, fq.L)
    if fp.kind == "prec" and fq.kind == "prec":  # V_q - V_p = V_q (P_p - P_q) V_p
        return fq.dense() @ -_tril_difference(fp.L, fq.L) @ fp.dense()
    return fq.dense_like(like) - fp.dense_like(like)


def covariance_difference(p: CovarianceOperator, q: CovarianceOperator) -> torch.Tensor:
    """``S_q - S_p`` as a dense (d, d) matrix, formed from the parameters of same-structure pairs."""
    if isinstance(p, (IsotropicCovariance, DiagonalCovariance)) and isinstance(
        q, (IsotropicCovariance, DiagonalCovariance)
    ):
        sp, sq = std_vector(p), std_vector(q)
        return torch.diag((sq - sp) * (sq + sp))
    if isinstance(p, TrilCovariance) and isinstance(q, TrilCovariance):
        return _tril_difference(p.L, q.L)
    if isinstance(p, LowRankCovariance) and isinstance(q, LowRankCovariance) and p.W.shape == q.W.shape:
        dW = q.W - p.W
        return dW @ q.W.T + p.W @ dW.T + torch.diag(q.D - p.D)
    if isinstance(p, KroneckerCovariance) and isinstance(q, KroneckerCovariance) and (p.r, p.c) == (q.r, q.c):
        like = p._like
        dU = factor_difference(p.row, q.row, like)
        dV = factor_difference(p.col, q.col, like)
        return torch.kron(dU, q.col.dense_like(like)) + torch.kron(p.row.dense_like(like), dV)
    return q.dense() - p.dense()


def hellinger_logdet_term(Lp: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    r"""``1/4 log det S_p + 1/4 log det S_q - 1/2 log det((S_p + S_q)/2)`` for ``S_p = L_p L_p^T``
    and ``S_q = S_p + D``: ``-1/4 sum_i log1p(e_i^2 / (4 (1 + e_i)))``, ``e_i`` the eigenvalues of
    ``L_p^{-1} D L_p^{-T}`` (each ``(1+e)^2 / (4 (1+e)) >= 1`` by AM-GM, so every term is <= 0)."""
    Y = torch.linalg.solve_triangular(Lp, D, upper=False)
    E = torch.linalg.solve_triangular(Lp, Y.T, upper=False)
    e = torch.linalg.eigvalsh(0.5 * (E + E.T)).clamp_min(-1.0 + 1e-300)
    return -0.25 * torch.log1p(e * e / (4.0 * (1.0 + e))).sum()


def transport_residual(Sp: torch.Tensor, D: torch.Tensor, iters: int = 60) -> torch.Tensor:
    r"""``X = (S_p^{1/2} S_q S_p^{1/2})^{1/2} - S_p`` for ``S_q = S_p + D`` (dense, symmetric).

    In the eigenbasis ``S_p = Q diag(s) Q^T``, ``X`` solves ``X_ij (s_i + s_j) + (X^2)_ij = F_ij``,
    ``F = diag(sqrt s) Q^T D Q diag(sqrt s)``; the fixed point ``X <- (F - X^2) / (s_i + s_j)``
    converges when ``X`` is small next to ``S_p``. Otherwise (or if it does not settle) ``X`` comes
    from an eigendecomposition of ``S_p^{1/2} S_q S_p^{1/2}``, still accurate when the laws differ.
    """
    s, Q = torch.linalg.eigh(Sp)
    r = s.clamp_min(0.0).sqrt()
    F = r[:, None] * (Q.T @ D @ Q) * r[None, :]
    den = s[:, None] + s[None, :]
    X = F / den
    if float(X.abs().max()) < 0.25 * float(s.min()):
        for _ in range(iters):
            nxt = (F - X @ X) / den
            done = bool(((nxt - X).abs() <= 2.3e-16 * nxt.abs().max()).all())
            X = nxt
            if done:
                break
        return Q @ X @ Q.T
    A = (Q * r) @ Q.T  # S_p^{1/2}
    M = A @ (Sp + D) @ A
    mu, V = torch.linalg.eigh(0.5 * (M + M.T))
    return (V * mu.clamp_min(0.0).sqrt()) @ V.T - Sp


def w2_covariance_term(Sp: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    r"""``tr S_p + tr S_q - 2 tr(S_p^{1/2} S_q S_p^{1/2})^{1/2} = tr(X S_p^{-1} X)`` (>= 0)."""
    X = transport_residual(Sp, D)
    Lp = torch.linalg.cholesky(Sp)
    return (torch.linalg.solve_triangular(Lp, X, upper=False) ** 2).sum()
