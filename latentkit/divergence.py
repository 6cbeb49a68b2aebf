"""Divergences between latent laws: KL (closed forms and exact Student-t), Monte Carlo KL,
Hellinger, Wasserstein-2 and total-variation bounds.

Importing this module registers, with :func:`torch.distributions.kl.register_kl`, the KL
divergence of every pair among :class:`~latentkit.latent.IsotropicNormal`,
:class:`~latentkit.latent.DiagonalNormal`, :class:`~latentkit.latent.MatrixNormal`,
:class:`torch.distributions.MultivariateNormal`,
:class:`torch.distributions.LowRankMultivariateNormal` (torch's own pairs among the last two
are left to torch; :func:`kl` computes them in float64 too) and
:class:`~latentkit.latent.MultivariateStudentT` with itself (equal scale and ``df``), so
``torch.distributions.kl_divergence(p, q)`` works.

Every Gaussian KL uses

``KL(N(m_p, S_p) || N(m_q, S_q)) = 1/2 [tr(S_q^{-1} S_p) + (m_q - m_p)^T S_q^{-1} (m_q - m_p) - d
+ log det S_q - log det S_p]``

evaluated in float64 with the structure of each covariance: no ``d x d`` matrix is formed for
isotropic, diagonal, low-rank (Woodbury identity and matrix determinant lemma) or Kronecker
(``tr(A kron B) = tr A tr B``, ``log det(U kron V) = c log det U + r log det V``,
``kron(U, V) vec(X) = vec(U X V^T)``) covariances. Results are 0-dim float64 tensors on the
laws' device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch
from scipy import integrate
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal
from torch.distributions.kl import register_kl

from ._validation import check_int, check_positive, check_same_device
from .latent import DiagonalNormal, IsotropicNormal, MatrixNormal, MultivariateStudentT, _Factor

__all__ = [
    "kl",
    "gaussian_kl",
    "student_t_kl",
    "student_t_kl_from_distance",
    "kl_monte_carlo",
    "MonteCarloKL",
    "hellinger",
    "wasserstein2",
    "tv_bounds",
    "TVBounds",
    "UnsupportedKLError",
]

_F64 = torch.float64
_BLOCK_ELEMS = 1 << 21  # column blocks of n x b float64 matrices: <= 16 MB each
_DENSE_LIMIT = 4096  # largest d for which hellinger/wasserstein2 fall back to dense matrices


class UnsupportedKLError(ValueError, NotImplementedError):
    """This pair of laws has no exact KL here (use :func:`kl_monte_carlo`)."""


# --------------------------------------------------------------------------------------------
# a common float64 view of every Gaussian family
# --------------------------------------------------------------------------------------------
class _G:
    """Float64 view of a Gaussian: ``kind`` in iso / diag / full / lowrank / kron."""

    def __init__(self, dist: Distribution) -> None:
        self.dist = dist
        if isinstance(dist, IsotropicNormal):
            self.kind = "iso"
            self.loc = dist.loc.to(_F64)
            self.s2 = dist.scale.to(_F64) ** 2
        elif isinstance(dist, DiagonalNormal):
            self.kind = "diag"
            self.loc = dist.loc.to(_F64)
            self.var = dist.scale.to(_F64) ** 2
        elif isinstance(dist, MatrixNormal):
            self.kind = "kron"
            self.loc = dist.loc.to(_F64).reshape(-1)
            self.r, self.c = dist.loc.shape
            self.row, self.col = dist._row.to(_F64), dist._col.to(_F64)
        elif isinstance(dist, LowRankMultivariateNormal):
            _no_batch(dist)
            self.kind = "lowrank"
            self.loc = dist.loc.to(_F64)
            self.W = dist.cov_factor.to(_F64)
            self.D = dist.cov_diag.to(_F64)
            self._cap = None
        elif isinstance(dist, MultivariateNormal):
            _no_batch(dist)
            self.kind = "full"
            self.loc = dist.loc.to(_F64)
            self.L = dist._unbroadcasted_scale_tril.to(_F64)
        else:
            raise TypeError(f"not a Gaussian latent law: {type(dist).__name__}")
        self.d = self.loc.shape[0]

    # ---- low-rank capacitance: C = I + W^T D^{-1} W = Lc Lc^T
    def cap(self) -> torch.Tensor:
        if self._cap is None:
            Wd = self.W / self.D[:, None]
            C = Wd.T @ self.W
            C.diagonal().add_(1.0)
            self._cap = torch.linalg.cholesky(C)
        return self._cap

    def logdet(self) -> torch.Tensor:
        k = self.kind
        if k == "iso":
            return self.d * torch.log(self.s2)
        if k == "diag":
            return torch.log(self.var).sum()
        if k == "full":
            return 2.0 * torch.log(torch.diagonal(self.L)).sum()
        if k == "lowrank":  # matrix determinant lemma
            return torch.log(self.D).sum() + 2.0 * torch.log(torch.diagonal(self.cap())).sum()
        return self.c * self.row.logdet().to(self.loc) + self.r * self.col.logdet().to(self.loc)

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:
        """``sum over columns of v^T S^{-1} v`` for ``V`` (d, m)."""
        k = self.kind
        if k == "iso":
            return (V**2).sum() / self.s2
        if k == "diag":
            return (V**2 / self.var[:, None]).sum()
        if k == "full":
            return (torch.linalg.solve_triangular(self.L, V, upper=False) ** 2).sum()
        if k == "lowrank":  # Woodbury
            VD = V / self.D[:, None]
            Y = torch.linalg.solve_triangular(self.cap(), self.W.T @ VD, upper=False)
            return (V * VD).sum() - (Y**2).sum()
        tot = V.new_zeros(())
        m = V.shape[1]
        b = max(1, _BLOCK_ELEMS // max(self.d, 1))
        for j in range(0, m, b):
            X = V[:, j:j + b].T.reshape(-1, self.r, self.c)
            Y = self.row.half_solve(X)
            Z = self.col.half_solve(Y.transpose(-1, -2))
            tot = tot + (Z**2).sum()
        return tot

    def diag_cov(self) -> torch.Tensor:
        k = self.kind
        if k == "iso":
            return self.s2.expand(self.d)
        if k == "diag":
            return self.var
        if k == "full":
            return (self.L**2).sum(1)
        if k == "lowrank":
            return (self.W**2).sum(1) + self.D
        return torch.outer(_factor_diag(self.row, self.loc), _factor_diag(self.col, self.loc)).reshape(-1)

    def inv_diag(self) -> torch.Tensor:
        """``diag(S^{-1})`` (d,)."""
        k = self.kind
        if k == "iso":
            return (1.0 / self.s2).expand(self.d)
        if k == "diag":
            return 1.0 / self.var
        if k == "full":
            Li = torch.linalg.solve_triangular(self.L, torch.eye(self.d, dtype=_F64, device=self.loc.device), upper=False)
            return (Li**2).sum(0)
        if k == "lowrank":
            B = torch.linalg.solve_triangular(self.cap(), (self.W / self.D[:, None]).T, upper=False)
            return 1.0 / self.D - (B**2).sum(0)
        return torch.outer(_factor_inv_diag(self.row, self.loc), _factor_inv_diag(self.col, self.loc)).reshape(-1)

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        """``S M`` for ``M`` (d, m)."""
        k = self.kind
        if k == "iso":
            return self.s2 * M
        if k == "diag":
            return self.var[:, None] * M
        if k == "full":
            return self.L @ (self.L.T @ M)
        if k == "lowrank":
            return self.W @ (self.W.T @ M) + self.D[:, None] * M
        X = M.T.reshape(-1, self.r, self.c)
        Y = _factor_cov_apply(self.row, X)
        Y = _factor_cov_apply(self.col, Y.transpose(-1, -2)).transpose(-1, -2)
        return Y.reshape(M.shape[1], -1).T

    def dense_factor(self) -> torch.Tensor:
        """A square ``F`` with ``S = F F^T`` (d x d): small ``d`` only."""
        k = self.kind
        dev = self.loc.device
        if k == "iso":
            return torch.sqrt(self.s2) * torch.eye(self.d, dtype=_F64, device=dev)
        if k == "diag":
            return torch.diag(torch.sqrt(self.var))
        if k == "full":
            return self.L
        if k == "lowrank":
            return torch.linalg.cholesky(self.dense_cov())
        return torch.kron(_factor_half_dense(self.row, self.loc), _factor_half_dense(self.col, self.loc))

    def dense_cov(self) -> torch.Tensor:
        k = self.kind
        if k == "lowrank":
            return self.W @ self.W.T + torch.diag(self.D)
        if k == "diag":
            return torch.diag(self.var)
        F = self.dense_factor()
        return F @ F.T

    def same_cov(self, other: "_G") -> bool:
        if self.kind != other.kind or self.d != other.d:
            return False
        k = self.kind
        if k == "iso":
            return bool(self.s2 == other.s2)
        if k == "diag":
            return bool(torch.equal(self.var, other.var))
        if k == "full":
            return bool(torch.equal(self.L, other.L))
        if k == "lowrank":
            return bool(torch.equal(self.W, other.W) and torch.equal(self.D, other.D))
        return (self.r, self.c) == (other.r, other.c) and self.row.same_as(other.row) and self.col.same_as(other.col)


def _no_batch(dist: Distribution) -> None:
    if len(dist.batch_shape) != 0:
        raise ValueError(f"batched laws are not supported; got batch_shape {tuple(dist.batch_shape)}")


def _eye_like(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=_F64, device=like.device)


def _factor_diag(f: _Factor, like: torch.Tensor) -> torch.Tensor:
    if f.kind == "identity":
        return like.new_ones(f.n)
    if f.kind == "cov":
        return (f.L**2).sum(1)
    return torch.diagonal(torch.cholesky_inverse(f.L))


def _factor_inv_diag(f: _Factor, like: torch.Tensor) -> torch.Tensor:
    if f.kind == "identity":
        return like.new_ones(f.n)
    if f.kind == "prec":
        return (f.L**2).sum(1)
    Li = torch.linalg.solve_triangular(f.L, _eye_like(f.n, like), upper=False)
    return (Li**2).sum(0)


def _factor_half_dense(f: _Factor, like: torch.Tensor) -> torch.Tensor:
    if f.kind == "identity":
        return _eye_like(f.n, like)
    return f.half_apply(_eye_like(f.n, like)).contiguous()


def _factor_cov_apply(f: _Factor, X: torch.Tensor) -> torch.Tensor:
    """``S S^T X`` for ``X`` (..., n, m)."""
    if f.kind == "identity":
        return X
    if f.kind == "cov":
        return f.L @ (f.L.transpose(-1, -2) @ X)
    Y = torch.linalg.solve_triangular(f.L, X, upper=False)
    return torch.linalg.solve_triangular(f.L.transpose(-1, -2), Y, upper=True)


def _tril_solve_blocked(L: torch.Tensor, B: torch.Tensor, j0: int, step: int = 512) -> torch.Tensor:
    """Solve ``L[j0:, j0:] X = B`` by row blocks (forward substitution with matrix panels), reading
    ``L`` through views so that its trailing block is never copied."""
    n = L.shape[0]
    X = torch.empty_like(B)
    for i in range(j0, n, step):
        e = min(i + step, n)
        rhs = B[i - j0:e - j0]
        if i > j0:
            rhs = rhs - L[i:e, j0:i] @ X[: i - j0]
        X[i - j0:e - j0] = torch.linalg.solve_triangular(L[i:e, i:e], rhs, upper=False)
    return X


def _factor_trace(fq: _Factor, fp: _Factor, like: torch.Tensor) -> torch.Tensor:
    """``tr(S_q^{-1} S_p) = ||half_q^{-1} half_p||_F^2`` in column blocks (bounded memory)."""
    if fq.same_as(fp):
        return torch.tensor(float(fq.n), dtype=_F64, device=like.device)
    if fp.kind == "identity":
        return _factor_inv_diag(fq, like).sum()
    if fq.kind == "identity":
        return _factor_diag(fp, like).sum()
    n = fp.n
    b = max(1, _BLOCK_ELEMS // n)
    tot = like.new_zeros(())
    if fq.kind == "cov" and fp.kind == "cov":
        # both lower triangular: columns j.. of L_p vanish above row j, and so does L_q^{-1} L_p
        for j in range(0, n, b):
            blk = _tril_solve_blocked(fq.L, fp.L[j:, j:j + b], j)
            tot = tot + (blk**2).sum()
        return tot
    for j in range(0, n, b):
        E = torch.zeros(n, min(b, n - j), dtype=_F64, device=like.device)
        E[torch.arange(j, j + E.shape[1]), torch.arange(E.shape[1])] = 1.0
        tot = tot + (fq.half_solve(fp.half_apply(E)) ** 2).sum()
    return tot


def _trace_term(p: _G, q: _G) -> torch.Tensor:
    """``tr(S_q^{-1} S_p)`` without d x d matrices unless one side is already dense."""
    if q.kind == "iso":
        return p.diag_cov().sum() / q.s2
    if q.kind == "diag":
        return (p.diag_cov() / q.var).sum()
    if p.kind in ("iso", "diag"):
        return (p.diag_cov() * q.inv_diag()).sum()
    if p.kind == "lowrank":
        return (p.D * q.inv_diag()).sum() + q.inv_quad(p.W)
    if p.kind == "full":
        return q.inv_quad(p.L)
    # p Kronecker
    if q.kind == "kron":
        return _factor_trace(q.row, p.row, q.loc) * _factor_trace(q.col, p.col, q.loc)
    if q.kind == "lowrank":  # Woodbury: tr(D^-1 S_p) - tr(B^T S_p B), B = D^-1 W Lc^-T
        B = torch.linalg.solve_triangular(q.cap(), (q.W / q.D[:, None]).T, upper=False).T
        return (p.diag_cov() / q.D).sum() - (B * p.matmul(B)).sum()
    return q.inv_quad(p.dense_factor())  # q full: d is small enough for a dense factor


def _check_pair(p: Distribution, q: Distribution) -> None:
    ep, eq = tuple(p.event_shape), tuple(q.event_shape)
    if isinstance(p, MatrixNormal) and isinstance(q, MatrixNormal):
        if ep != eq:
            raise ValueError(f"MatrixNormal laws must have the same event shape; got {ep} and {eq}")
    dp, dq = math.prod(ep), math.prod(eq)
    if dp != dq:
        raise ValueError(f"the laws have different event sizes: {dp} ({ep}) and {dq} ({eq})")
    lp, lq = getattr(p, "loc", None), getattr(q, "loc", None)
    if isinstance(lp, torch.Tensor) and isinstance(lq, torch.Tensor):
        check_same_device(lp, lq, "p.loc", "q.loc")


def _finish(val: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(val)):
        raise ValueError("KL is not finite: a covariance is singular or ill-conditioned; add a jitter")
    # float64 roundoff can make KL(p, p') a hair below 0 when p' = p up to rounding
    if float(val) < 0 and float(val) > -1e-9 * float(scale):
        val = torch.zeros_like(val)
    return val


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
    gp, gq = _G(p), _G(q)
    dm = (gq.loc - gp.loc)[:, None]
    maha = gq.inv_quad(dm)
    if gp.same_cov(gq):
        return _finish(0.5 * maha, maha.abs() + 1.0)
    tr = _trace_term(gp, gq)
    ldq, ldp = gq.logdet(), gp.logdet()
    val = 0.5 * (tr + maha - gp.d + ldq - ldp)
    return _finish(val, tr.abs() + maha.abs() + ldq.abs() + ldp.abs() + gp.d)


# --------------------------------------------------------------------------------------------
# Student-t
# --------------------------------------------------------------------------------------------
def student_t_kl_from_distance(delta: float, df: float, dim: int, *, epsrel: float = 1e-10) -> float:
    r"""KL between ``t_nu(m_p, S)`` and ``t_nu(m_q, S)`` in ``d`` dimensions, as a function of
    the Mahalanobis distance ``delta = |L^{-1}(m_p - m_q)|`` (``S = L L^T``).

    Derivation. With ``X = m_p + L Z``, ``Z = G / sqrt(W/nu)``, ``G ~ N(0, I_d)``,
    ``W ~ chi^2_nu``, and a rotation taking ``L^{-1}(m_q - m_p)`` to ``delta e_1``:
    ``KL = (nu+d)/2 E[log(W + |G - delta sqrt(W/nu) e_1|^2) - log(W + |G|^2)]``.
    Frullani's ``log x = int_0^inf (e^{-t} - e^{-tx}) dt / t`` with the Laplace transforms of
    ``chi^2_nu`` and of the noncentral ``chi^2_d`` gives the exact one-dimensional integral

    ``KL = (nu+d)/2 int_0^inf (1+2t)^{-(nu+d)/2} [1 - (1 + 2 delta^2 t / (nu (1+2t)^2))^{-nu/2}] dt / t``.

    With ``u = (nu+d)/2 log(1+2t)`` it becomes ``int_0^inf e^{-u} h(u) du`` with
    ``h(0) = delta^2/2``; it is evaluated with adaptive Gauss-Kronrod quadrature
    (:func:`scipy.integrate.quad`, relative tolerance ``epsrel``; split where
    the bracket saturates). Deterministic, symmetric in ``p`` and ``q``, and ``-> delta^2/2``
    (the Gaussian value) as ``nu -> inf``.

    Parameters
    ----------
    delta : float >= 0
    df : float > 0
    dim : int >= 1
    epsrel : float
        Relative tolerance passed to the quadrature (default 1e-10; the result is accurate to
        better than 1e-8 relative over the tested range, see the tests).
    """
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        delta = float(delta)
    if not (delta >= 0 and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number >= 0; got {delta!r}")
    nu = check_positive(df, "df")
    d = check_int(dim, "dim", minimum=1)
    if delta == 0.0:
        return 0.0
    n2 = 0.5 * (nu + d)
    a = delta * delta / nu
    half_nu = 0.5 * nu
    log1p, expm1, exp = math.log1p, math.expm1, math.exp

    def h(u: float) -> float:
        s = u / n2  # s = log(1 + 2t)
        if s < 1e-300:
            return 0.5 * delta * delta
        om = -expm1(-s)  # 1 - e^{-s} = 2t / (1+2t)
        x = a * exp(-s) * om  # 2 delta^2 t / (nu (1+2t)^2)
        return -expm1(-half_nu * log1p(x)) / om * exp(-u)

    # the bracket saturates where x ~ 1, i.e. s ~ 1/a for large delta: split there
    pts = []
    if a > 4.0:
        pts.append(n2 * min(1.0 / a, 1.0))
    total, lo = 0.0, 0.0
    for b in pts + [None]:
        if b is None:
            val, _ = integrate.quad(h, lo, math.inf, epsabs=0.0, epsrel=epsrel, limit=200)
        else:
            val, _ = integrate.quad(h, lo, b, epsabs=0.0, epsrel=epsrel, limit=200)
            lo = b
        total += val
    return float(total)


def _same_scale(p: MultivariateStudentT, q: MultivariateStudentT) -> bool:
    tol = 1e-12
    if p.is_isotropic and q.is_isotropic:
        sp, sq = float(p.scale), float(q.scale)
        return abs(sp - sq) <= tol * max(sp, sq)
    if not p.is_isotropic and not q.is_isotropic:
        Lp, Lq = p._scale_tril.to(_F64), q._scale_tril.to(_F64)
        return bool(((Lp - Lq).abs() <= tol * Lp.abs().max()).all())
    iso, full = (p, q) if p.is_isotropic else (q, p)
    L = full._scale_tril.to(_F64)
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
    if not isinstance(p, MultivariateStudentT) or not isinstance(q, MultivariateStudentT):
        raise TypeError("student_t_kl needs two MultivariateStudentT laws")
    _check_pair(p, q)
    if abs(p.df - q.df) > 1e-12 * max(p.df, q.df):
        raise UnsupportedKLError(
            f"exact Student-t KL needs equal df; got {p.df:g} and {q.df:g}. Use kl_monte_carlo(p, q)"
        )
    if not _same_scale(p, q):
        raise UnsupportedKLError("exact Student-t KL needs equal scale matrices; use kl_monte_carlo(p, q)")
    diff = (q.loc.to(_F64) - p.loc.to(_F64))
    if p.is_isotropic:
        m2 = float((diff**2).sum()) / float(p.scale.to(_F64)) ** 2
    else:
        z = torch.linalg.solve_triangular(p._scale_tril.to(_F64), diff[:, None], upper=False)
        m2 = float((z**2).sum())
    val = student_t_kl_from_distance(math.sqrt(m2), p.df, p.dim, epsrel=epsrel)
    return torch.tensor(val, dtype=_F64, device=p.loc.device)


def kl(p: Distribution, q: Distribution) -> torch.Tensor:
    """``KL(p || q)`` for any supported pair, float64, 0-dim tensor (see the module docstring).

    Unlike :func:`torch.distributions.kl_divergence` it also uses float64 and structure for
    torch's own ``MultivariateNormal`` / ``LowRankMultivariateNormal`` pairs.
    """
    if isinstance(p, MultivariateStudentT) and isinstance(q, MultivariateStudentT):
        return student_t_kl(p, q)
    if isinstance(p, MultivariateStudentT) or isinstance(q, MultivariateStudentT):
        raise UnsupportedKLError(
            f"no closed-form KL between {type(p).__name__} and {type(q).__name__}; use kl_monte_carlo(p, q)"
        )
    return gaussian_kl(p, q)


_GAUSS = (IsotropicNormal, DiagonalNormal, MatrixNormal, MultivariateNormal, LowRankMultivariateNormal)
_OURS = (IsotropicNormal, DiagonalNormal, MatrixNormal)


def _register() -> None:
    for P in _GAUSS:
        for Q in _GAUSS:
            if P in _OURS or Q in _OURS:
                register_kl(P, Q)(gaussian_kl)
    register_kl(MultivariateStudentT, MultivariateStudentT)(student_t_kl)

    def _mixed(p: Distribution, q: Distribution) -> torch.Tensor:
        return kl(p, q)

    for G in _GAUSS:
        register_kl(MultivariateStudentT, G)(_mixed)
        register_kl(G, MultivariateStudentT)(_mixed)


_register()


# --------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------
@dataclass
class MonteCarloKL:
    """Result of :func:`kl_monte_carlo`.

    Attributes
    ----------
    estimate : float
        Mean over repeats of the per-repeat sample mean of ``log p(x) - log q(x)``, ``x ~ p``.
    stderr : float
        Standard error of ``estimate``: std of the per-repeat means / sqrt(repeats) when
        ``repeats > 1``, else std of the log-ratios / sqrt(num_samples).
    num_samples : int
        Samples per repeat.
    repeats : int
    per_repeat : Tensor (repeats,)
        The per-repeat means (float64, CPU).
    """

    estimate: float
    stderr: float
    num_samples: int
    repeats: int
    per_repeat: torch.Tensor


def _draw(p: Distribution, n: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    if isinstance(p, (IsotropicNormal, DiagonalNormal, MatrixNormal, MultivariateStudentT)):
        return p.sample((n,), generator=generator)
    if generator is None:
        return p.sample((n,))
    if isinstance(p, LowRankMultivariateNormal):
        _no_batch(p)
        W, D = p.cov_factor, p.cov_diag
        z1 = torch.randn(n, W.shape[1], generator=generator, dtype=W.dtype, device=W.device)
        z2 = torch.randn(n, D.shape[0], generator=generator, dtype=W.dtype, device=W.device)
        return p.loc + z1 @ W.T + z2 * D.sqrt()
    if isinstance(p, MultivariateNormal):
        _no_batch(p)
        L = p._unbroadcasted_scale_tril
        z = torch.randn(n, L.shape[0], generator=generator, dtype=L.dtype, device=L.device)
        return p.loc + z @ L.T
    raise TypeError(f"cannot sample {type(p).__name__} with an explicit generator; pass generator=None")


def kl_monte_carlo(
    p: Distribution,
    q: Distribution,
    num_samples: int = 600_000,
    repeats: int = 100,
    generator: Optional[torch.Generator] = None,
    batch_size: Optional[int] = None,
) -> MonteCarloKL:
    r"""Monte Carlo ``KL(p || q) ~ 1/n sum_i [log p(x_i) - log q(x_i)]``, ``x_i ~ p``.

    The reference code's estimator: ``repeats`` independent estimates with ``num_samples``
    samples each, averaged. Works for any pair of laws with ``log_prob`` and the same event
    size (e.g. Student-t laws with different scales; a MatrixNormal against a vector law, through
    the row-major ``vec``).

    Parameters
    ----------
    p, q : Distribution
    num_samples, repeats : int >= 1
    generator : torch.Generator, optional
        Drives every draw (on the laws' device) for reproducibility; ``None`` uses torch's global RNG.
    batch_size : int, optional
        Samples drawn at once; default ``max(1, 2**21 // d)`` (about 16 MB of float64 samples),
        so memory does not grow with ``num_samples``.

    Returns
    -------
    MonteCarloKL
        The per-sample log-ratios are accumulated in float64.
    """
    if not isinstance(p, Distribution) or not isinstance(q, Distribution):
        raise TypeError("p and q must be torch.distributions.Distribution objects")
    _check_pair(p, q)
    q_shape = tuple(q.event_shape)  # a MatrixNormal's samples are reshaped (row-major) for a vector law
    n = check_int(num_samples, "num_samples", minimum=1)
    R = check_int(repeats, "repeats", minimum=1)
    d = max(1, math.prod(tuple(p.event_shape)))
    bs = max(1, _BLOCK_ELEMS // d) if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator or None")
    means = torch.empty(R, dtype=_F64)
    tot_sq = 0.0
    with torch.no_grad():
        for r in range(R):
            s = None
            s2 = None
            done = 0
            while done < n:
                m = min(bs, n - done)
                x = _draw(p, m, generator)
                lr = p.log_prob(x).to(_F64) - q.log_prob(x.reshape((m,) + q_shape)).to(_F64)
                s = lr.sum() if s is None else s + lr.sum()
                s2 = (lr * lr).sum() if s2 is None else s2 + (lr * lr).sum()
                done += m
            means[r] = float(s) / n
            tot_sq += float(s2)
    est = float(means.mean())
    if R > 1:
        se = float(means.std(unbiased=True)) / math.sqrt(R)
    else:
        var = max(tot_sq / n - est * est, 0.0) * n / max(n - 1, 1)
        se = math.sqrt(var / n)
    if not math.isfinite(est):
        raise ValueError("Monte Carlo KL is not finite (q gives zero density to samples of p?)")
    return MonteCarloKL(est, se, n, R, means)


# --------------------------------------------------------------------------------------------
# Hellinger, Wasserstein-2, TV bounds
# --------------------------------------------------------------------------------------------
def _dense_ok(g: _G, what: str) -> None:
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
    gp, gq = _G(p), _G(q)
    dm = (gq.loc - gp.loc)[:, None]
    if gp.same_cov(gq):
        logbc = -0.125 * gp.inv_quad(dm)
    elif gp.kind in ("iso", "diag") and gq.kind in ("iso", "diag"):
        vp, vq = gp.diag_cov(), gq.diag_cov()
        vm = 0.5 * (vp + vq)
        logbc = 0.25 * torch.log(vp).sum() + 0.25 * torch.log(vq).sum() - 0.5 * torch.log(vm).sum() \
            - 0.125 * (dm[:, 0] ** 2 / vm).sum()
    elif gp.kind == "kron" and gq.kind == "kron" and (gp.row.same_as(gq.row) or gp.col.same_as(gq.col)):
        shared_row = gp.row.same_as(gq.row)
        fs = gp.row if shared_row else gp.col
        fa, fb = (gp.col, gq.col) if shared_row else (gp.row, gq.row)
        n_other = gp.r if shared_row else gp.c  # multiplicity of the varying factor's log det
        Va, Vb = _factor_dense(fa, gp.loc), _factor_dense(fb, gp.loc)
        Vm = 0.5 * (Va + Vb)
        ldm, Lm = _logdet_psd(Vm, "mean factor")
        lda, _ = _logdet_psd(Va, "factor")
        ldb, _ = _logdet_psd(Vb, "factor")
        # S_m = kron(U, Vm) (shared row) or kron(Um, V) (shared col)
        mrow = _Factor("cov", Lm.shape[0], Lm)
        G = MatrixNormal._from_factors(gp.loc.reshape(gp.r, gp.c), fs, mrow) if shared_row else \
            MatrixNormal._from_factors(gp.loc.reshape(gp.r, gp.c), mrow, fs)
        maha = G._maha(dm[:, 0].reshape(gp.r, gp.c))
        logbc = n_other * (0.25 * lda + 0.25 * ldb - 0.5 * ldm) - 0.125 * maha
    else:
        _dense_ok(gp, "hellinger")
        Sp, Sq = gp.dense_cov(), gq.dense_cov()
        Sm = 0.5 * (Sp + Sq)
        ldm, Lm = _logdet_psd(Sm, "(S_p + S_q)/2")
        z = torch.linalg.solve_triangular(Lm, dm, upper=False)
        logbc = 0.25 * gp.logdet() + 0.25 * gq.logdet() - 0.5 * ldm - 0.125 * (z**2).sum()
    h2 = -math.expm1(min(float(logbc), 0.0))
    return math.sqrt(max(h2, 0.0))


def _factor_dense(f: _Factor, like: torch.Tensor) -> torch.Tensor:
    return _eye_like(f.n, like) if f.kind == "identity" else f.dense().contiguous()


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
    gp, gq = _G(p), _G(q)
    m2 = ((gq.loc - gp.loc) ** 2).sum()
    if gp.same_cov(gq):
        w2 = m2
    elif gp.kind in ("iso", "diag") and gq.kind in ("iso", "diag"):
        w2 = m2 + ((torch.sqrt(gp.diag_cov()) - torch.sqrt(gq.diag_cov())) ** 2).sum()
    elif gp.kind == "kron" and gq.kind == "kron":
        Up, Vp = _factor_dense(gp.row, gp.loc), _factor_dense(gp.col, gp.loc)
        Uq, Vq = _factor_dense(gq.row, gp.loc), _factor_dense(gq.col, gp.loc)
        cross = _trace_sqrt_product(Up, Uq) * _trace_sqrt_product(Vp, Vq)
        w2 = m2 + torch.trace(Up) * torch.trace(Vp) + torch.trace(Uq) * torch.trace(Vq) - 2.0 * cross
    else:
        _dense_ok(gp, "wasserstein2")
        Sp, Sq = gp.dense_cov(), gq.dense_cov()
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
