"""Structured covariance operators: the one home of the linear algebra of the latent laws.

A covariance ``S`` (``d x d``) is never formed when ``d`` is large; an operator stores its structure
and offers what the laws and the divergences need:

============================  ===================  ===========================================
operator                      ``S``                storage
============================  ===================  ===========================================
:class:`IsotropicCovariance`  ``s^2 I_d``          ``s`` (0-dim)
:class:`DiagonalCovariance`   ``diag(s^2)``        ``s`` (d,)
:class:`TrilCovariance`       ``L L^T``            lower-triangular ``L`` (d, d)
:class:`LowRankCovariance`    ``W W^T + diag(D)``  ``W`` (d, k), ``D`` (d,)
:class:`KroneckerCovariance`  ``kron(U, V)``       two :class:`KroneckerFactor` (r x r, c x c)
============================  ===================  ===========================================

Every operator has ``logdet()`` (``log det S``), ``inv_quad(V)`` (``sum_j v_j^T S^{-1} v_j``),
``diagonal()``, ``inv_diagonal()`` (``diag S^{-1}``), ``matmul(M)`` (``S M``), ``dense_factor()``
(a square ``F`` with ``S = F F^T``, small ``d``), ``dense()`` and ``same_as(other)``;
:func:`trace_inv_product` gives ``tr(S_q^{-1} S_p)`` for any pair with bounded memory.

Identities used (row-major ``vec``): ``kron(U, V) vec(X) = vec(U X V^T)``,
``log det kron(U, V) = c log det U + r log det V``, the Woodbury identity
``(D + W W^T)^{-1} = D^{-1} - D^{-1} W C^{-1} W^T D^{-1}`` with the capacitance
``C = I + W^T D^{-1} W`` and the matrix determinant lemma ``det(D + W W^T) = det D det C``.

Bottom layer: imports torch only (no other latentkit module).

Examples
--------
>>> import torch
>>> from latentkit.linalg import DiagonalCovariance
>>> c = DiagonalCovariance(torch.tensor([1.0, 4.0]))
>>> round(float(c.logdet()), 4)
2.7726
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "BLOCK_ELEMS",
    "cholesky",
    "check_tril",
    "solve_tril",
    "tril_solve_blocked",
    "KroneckerFactor",
    "CovarianceOperator",
    "IsotropicCovariance",
    "DiagonalCovariance",
    "TrilCovariance",
    "LowRankCovariance",
    "KroneckerCovariance",
    "trace_inv_product",
]

#: Column blocks of ``n x b`` float64 matrices hold at most this many entries (16 MB).
BLOCK_ELEMS = 1 << 21


# --------------------------------------------------------------------------------------------
# dense triangular helpers
# --------------------------------------------------------------------------------------------
def cholesky(mat: torch.Tensor, name: str) -> torch.Tensor:
    """Cholesky factor ``L`` (``mat = L L^T``) of a symmetric positive-definite matrix.

    Raises
    ------
    ValueError
        Not square, not symmetric (to ``1e3 eps max|mat|``), or not positive definite; the message
        names ``name``.
    """
    if mat.dim() != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {tuple(mat.shape)}")
    scale = mat.abs().max().clamp_min(torch.finfo(mat.dtype).tiny)
    tol = 1e3 * torch.finfo(mat.dtype).eps * scale
    if bool(((mat - mat.T).abs() > tol).any()):
        raise ValueError(f"{name} must be symmetric")
    L, info = torch.linalg.cholesky_ex(mat)
    if int(info) != 0:
        raise ValueError(
            f"{name} is not positive definite (Cholesky failed at column {int(info)}); "
            "add a jitter/damping to its diagonal"
        )
    return L


def check_tril(L: torch.Tensor, name: str, n: int | None = None) -> torch.Tensor:
    """Return ``L`` if it is an ``n x n`` lower-triangular matrix with a positive diagonal.

    The strictly upper part is checked in row blocks, so no ``n x n`` copy is made.
    """
    if L.dim() != 2 or L.shape[0] != L.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {tuple(L.shape)}")
    if n is not None and L.shape[0] != n:
        raise ValueError(f"{name} must be {n} x {n}; got {tuple(L.shape)}")
    if not bool((torch.diagonal(L) > 0).all()):
        raise ValueError(f"{name} must be lower triangular with a positive diagonal (a Cholesky factor)")
    n_rows = L.shape[0]
    b = max(1, (1 << 20) // max(n_rows, 1))
    for i in range(0, n_rows, b):
        if bool(torch.triu(L[i : i + b], diagonal=i + 1).any()):
            raise ValueError(f"{name} must be lower triangular (its strictly upper part is not zero)")
    return L


def solve_tril(L: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``L^{-1} X`` for a lower-triangular ``L`` (batched over leading dimensions of ``X``)."""
    return torch.linalg.solve_triangular(L, X, upper=False)


def tril_solve_blocked(L: torch.Tensor, B: torch.Tensor, j0: int, step: int = 512) -> torch.Tensor:
    """Solve ``L[j0:, j0:] X = B`` by row blocks (forward substitution with matrix panels).

    ``L`` is read through views, so its trailing block is never copied.
    """
    n = L.shape[0]
    X = torch.empty_like(B)
    for i in range(j0, n, step):
        e = min(i + step, n)
        rhs = B[i - j0 : e - j0]
        if i > j0:
            rhs = rhs - L[i:e, j0:i] @ X[: i - j0]
        X[i - j0 : e - j0] = torch.linalg.solve_triangular(L[i:e, i:e], rhs, upper=False)
    return X


def _eye(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.eye(n, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# one Kronecker factor
# --------------------------------------------------------------------------------------------
class KroneckerFactor:
    """One Kronecker factor, a covariance ``H H^T`` of size ``n x n`` through its half ``H``.

    Parameters
    ----------
    kind : {"identity", "cov", "prec"}
        ``identity``: ``H = I``; ``cov``: ``H = L``, the Cholesky factor of the covariance;
        ``prec``: ``L`` is the Cholesky factor of the *precision*, ``H = L^{-T}``.
    n : int
    L : Tensor (n, n), optional
        Lower triangular with a positive diagonal (``None`` for ``identity``).
    """

    def __init__(self, kind: str, n: int, L: torch.Tensor | None = None) -> None:
        self.kind, self.n, self.L = kind, n, L

    def half_solve(self, X: torch.Tensor) -> torch.Tensor:
        """``H^{-1} X`` for ``X`` of shape ``(..., n, m)``."""
        if self.kind == "identity":
            return X
        if self.kind == "cov":
            return solve_tril(self.L, X)
        return self.L.transpose(-1, -2) @ X

    def half_apply(self, X: torch.Tensor) -> torch.Tensor:
        """``H X`` for ``X`` of shape ``(..., n, m)``."""
        if self.kind == "identity":
            return X
        if self.kind == "cov":
            return self.L @ X
        return torch.linalg.solve_triangular(self.L.transpose(-1, -2), X, upper=True)

    def cov_apply(self, X: torch.Tensor) -> torch.Tensor:
        """``H H^T X`` for ``X`` of shape ``(..., n, m)``."""
        if self.kind == "identity":
            return X
        if self.kind == "cov":
            return self.L @ (self.L.transpose(-1, -2) @ X)
        Y = torch.linalg.solve_triangular(self.L, X, upper=False)
        return torch.linalg.solve_triangular(self.L.transpose(-1, -2), Y, upper=True)

    def logdet(self) -> torch.Tensor:
        """``log det(H H^T)`` (float64 zero on the CPU for ``identity``)."""
        if self.kind == "identity":
            return torch.zeros((), dtype=torch.float64)
        ld = 2.0 * torch.log(torch.diagonal(self.L)).sum()
        return ld if self.kind == "cov" else -ld

    def dense(self) -> torch.Tensor:
        """``H H^T`` (n x n); an ``identity`` factor stores no matrix."""
        if self.kind == "identity":
            raise RuntimeError("identity factor has no stored matrix")
        if self.kind == "cov":
            return self.L @ self.L.T
        return torch.cholesky_inverse(self.L)

    def dense_like(self, like: torch.Tensor) -> torch.Tensor:
        """``H H^T`` (n x n), the identity in ``like``'s dtype and device for ``identity``."""
        if self.kind == "identity":
            return _eye(self.n, like.dtype, like.device)
        return self.dense().contiguous()

    def scale_tril(self) -> torch.Tensor:
        """The Cholesky factor of ``H H^T``."""
        if self.kind == "cov":
            return self.L
        return torch.linalg.cholesky(self.dense())

    def diagonal(self, like: torch.Tensor) -> torch.Tensor:
        """``diag(H H^T)`` (n,), in ``like``'s dtype/device for ``identity``."""
        if self.kind == "identity":
            return like.new_ones(self.n)
        if self.kind == "cov":
            return (self.L**2).sum(1)
        return torch.diagonal(torch.cholesky_inverse(self.L))

    def inv_diagonal(self, like: torch.Tensor) -> torch.Tensor:
        """``diag((H H^T)^{-1})`` (n,)."""
        if self.kind == "identity":
            return like.new_ones(self.n)
        if self.kind == "prec":
            return (self.L**2).sum(1)
        Li = torch.linalg.solve_triangular(self.L, _eye(self.n, torch.float64, like.device), upper=False)
        return (Li**2).sum(0)

    def half_dense(self, like: torch.Tensor) -> torch.Tensor:
        """``H`` as a dense (n, n) matrix."""
        if self.kind == "identity":
            return _eye(self.n, torch.float64, like.device)
        return self.half_apply(_eye(self.n, torch.float64, like.device)).contiguous()

    def same_as(self, other: KroneckerFactor) -> bool:
        """True when both factors store the same parameters (exactly)."""
        if self.kind != other.kind or self.n != other.n:
            return False
        if self.kind == "identity":
            return True
        return self.L is other.L or (
            self.L.shape == other.L.shape
            and self.L.device == other.L.device
            and bool(torch.equal(self.L.to(torch.float64), other.L.to(torch.float64)))
        )

    def to(self, dtype: torch.dtype) -> KroneckerFactor:
        """The same factor with ``L`` in ``dtype``."""
        return KroneckerFactor(self.kind, self.n, None if self.L is None else self.L.to(dtype))

    def scaled(self, c: float, like: torch.Tensor) -> KroneckerFactor:
        """The factor of ``c^2 H H^T``."""
        if self.kind == "identity":
            return KroneckerFactor("cov", self.n, c * _eye(self.n, like.dtype, like.device))
        return KroneckerFactor(self.kind, self.n, self.L * c if self.kind == "cov" else self.L / c)

    def trace_inv_product(self, fp: KroneckerFactor, like: torch.Tensor) -> torch.Tensor:
        """``tr((H_q H_q^T)^{-1} H_p H_p^T) = ||H_q^{-1} H_p||_F^2`` (``self`` is ``q``), in column
        blocks of bounded memory."""
        fq = self
        if fq.same_as(fp):
            return torch.tensor(float(fq.n), dtype=torch.float64, device=like.device)
        if fp.kind == "identity":
            return fq.inv_diagonal(like).sum()
        if fq.kind == "identity":
            return fp.diagonal(like).sum()
        n = fp.n
        b = max(1, BLOCK_ELEMS // n)
        tot = like.new_zeros(())
        if fq.kind == "cov" and fp.kind == "cov":
            # both lower triangular: columns j.. of L_p vanish above row j, and so does L_q^{-1} L_p
            for j in range(0, n, b):
                blk = tril_solve_blocked(fq.L, fp.L[j:, j : j + b], j)
                tot = tot + (blk**2).sum()
            return tot
        for j in range(0, n, b):
            E = torch.zeros(n, min(b, n - j), dtype=torch.float64, device=like.device)
            E[torch.arange(j, j + E.shape[1]), torch.arange(E.shape[1])] = 1.0
            tot = tot + (fq.half_solve(fp.half_apply(E)) ** 2).sum()
        return tot


# --------------------------------------------------------------------------------------------
# covariance operators
# --------------------------------------------------------------------------------------------
class CovarianceOperator:
    """A ``d x d`` symmetric positive-definite covariance ``S`` stored through its structure.

    Subclasses implement every method below without forming ``S`` (except :meth:`dense` and
    :meth:`dense_factor`, meant for small ``d``). ``kind`` names the structure
    (``iso``, ``diag``, ``full``, ``lowrank``, ``kron``).
    """

    kind: str = ""
    d: int = 0

    def to(self, dtype: torch.dtype) -> CovarianceOperator:
        """The same operator with its parameters cast to ``dtype``."""
        raise NotImplementedError

    def logdet(self) -> torch.Tensor:
        """``log det S`` (0-dim)."""
        raise NotImplementedError

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:
        """``sum_j v_j^T S^{-1} v_j`` over the columns of ``V`` (d, m)."""
        raise NotImplementedError

    def diagonal(self) -> torch.Tensor:
        """``diag S`` (d,)."""
        raise NotImplementedError

    def inv_diagonal(self) -> torch.Tensor:
        """``diag S^{-1}`` (d,)."""
        raise NotImplementedError

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        """``S M`` for ``M`` (d, m)."""
        raise NotImplementedError

    def dense_factor(self) -> torch.Tensor:
        """A square ``F`` (d, d) with ``S = F F^T`` (small ``d`` only)."""
        raise NotImplementedError

    def dense(self) -> torch.Tensor:
        """``S`` as a dense (d, d) matrix (small ``d`` only)."""
        F = self.dense_factor()
        return F @ F.T

    def same_as(self, other: CovarianceOperator) -> bool:
        """True when ``other`` has the same structure and exactly the same parameters."""
        raise NotImplementedError

    def trace(self) -> torch.Tensor:
        """``tr S``."""
        return self.diagonal().sum()

    def scaled(self, c: float) -> CovarianceOperator:
        """The operator of ``c^2 S`` (``c`` a power of two keeps every parameter exact)."""
        raise NotImplementedError

    def log_std(self) -> float:
        """``log det(S) / (2 d)``, the log of the geometric-mean standard deviation, from the stored
        parameters (finite even when a variance would under/overflow)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d})"


class IsotropicCovariance(CovarianceOperator):
    """``S = s^2 I_d`` from the standard deviation ``s`` (0-dim tensor)."""

    kind = "iso"

    def __init__(self, scale: torch.Tensor, d: int) -> None:
        self.scale, self.d = scale, int(d)
        self.s2 = scale**2

    def to(self, dtype: torch.dtype) -> IsotropicCovariance:
        return IsotropicCovariance(self.scale.to(dtype), self.d)

    def logdet(self) -> torch.Tensor:
        return self.d * torch.log(self.s2)

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:
        return (V**2).sum() / self.s2

    def diagonal(self) -> torch.Tensor:
        return self.s2.expand(self.d)

    def inv_diagonal(self) -> torch.Tensor:
        return (1.0 / self.s2).expand(self.d)

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        return self.s2 * M

    def dense_factor(self) -> torch.Tensor:
        return torch.sqrt(self.s2) * _eye(self.d, self.s2.dtype, self.s2.device)

    def same_as(self, other: CovarianceOperator) -> bool:
        return isinstance(other, IsotropicCovariance) and self.d == other.d and bool(self.s2 == other.s2)

    def scaled(self, c: float) -> IsotropicCovariance:
        return IsotropicCovariance(self.scale * c, self.d)

    def log_std(self) -> float:
        return float(torch.log(self.scale))


class DiagonalCovariance(CovarianceOperator):
    """``S = diag(s^2)`` from the standard deviations ``s`` (d,)."""

    kind = "diag"

    def __init__(self, scale: torch.Tensor) -> None:
        self.scale, self.d = scale, int(scale.shape[0])
        self.var = scale**2

    def to(self, dtype: torch.dtype) -> DiagonalCovariance:
        return DiagonalCovariance(self.scale.to(dtype))

    def logdet(self) -> torch.Tensor:
        return torch.log(self.var).sum()

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:
        return (V**2 / self.var[:, None]).sum()

    def diagonal(self) -> torch.Tensor:
        return self.var

    def inv_diagonal(self) -> torch.Tensor:
        return 1.0 / self.var

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        return self.var[:, None] * M

    def dense_factor(self) -> torch.Tensor:
        return torch.diag(torch.sqrt(self.var))

    def dense(self) -> torch.Tensor:
        return torch.diag(self.var)

    def same_as(self, other: CovarianceOperator) -> bool:
        return (
            isinstance(other, DiagonalCovariance)
            and self.d == other.d
            and bool(torch.equal(self.var, other.var))
        )

    def scaled(self, c: float) -> DiagonalCovariance:
        return DiagonalCovariance(self.scale * c)

    def log_std(self) -> float:
        return float(torch.log(self.scale).mean())


class TrilCovariance(CovarianceOperator):
    """``S = L L^T`` from a lower-triangular ``L`` (d, d) with a positive diagonal."""

    kind = "full"

    def __init__(self, L: torch.Tensor) -> None:
        self.L, self.d = L, int(L.shape[0])

    def to(self, dtype: torch.dtype) -> TrilCovariance:
        return TrilCovariance(self.L.to(dtype))

    def logdet(self) -> torch.Tensor:
        return 2.0 * torch.log(torch.diagonal(self.L)).sum()

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:
        return (torch.linalg.solve_triangular(self.L, V, upper=False) ** 2).sum()

    def diagonal(self) -> torch.Tensor:
        return (self.L**2).sum(1)

    def inv_diagonal(self) -> torch.Tensor:
        Li = torch.linalg.solve_triangular(self.L, _eye(self.d, torch.float64, self.L.device), upper=False)
        return (Li**2).sum(0)

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        return self.L @ (self.L.T @ M)

    def dense_factor(self) -> torch.Tensor:
        return self.L

    def same_as(self, other: CovarianceOperator) -> bool:
        return isinstance(other, TrilCovariance) and self.d == other.d and bool(torch.equal(self.L, other.L))

    def scaled(self, c: float) -> TrilCovariance:
        return TrilCovariance(self.L * c)

    def log_std(self) -> float:
        return float(torch.log(torch.diagonal(self.L)).mean())


class LowRankCovariance(CovarianceOperator):
    """``S = W W^T + diag(D)`` from ``W`` (d, k) and a positive ``D`` (d,)."""

    kind = "lowrank"

    def __init__(self, W: torch.Tensor, D: torch.Tensor) -> None:
        self.W, self.D, self.d = W, D, int(D.shape[0])
        self._cap: torch.Tensor | None = None

    def to(self, dtype: torch.dtype) -> LowRankCovariance:
        return LowRankCovariance(self.W.to(dtype), self.D.to(dtype))

    def cap(self) -> torch.Tensor:
        """Cholesky factor ``L_c`` of the capacitance ``C = I + W^T D^{-1} W`` (cached)."""
        if self._cap is None:
            Wd = self.W / self.D[:, None]
            C = Wd.T @ self.W
            C.diagonal().add_(1.0)
            self._cap = torch.linalg.cholesky(C)
        return self._cap

    def woodbury_half(self) -> torch.Tensor:
        """``B = D^{-1} W L_c^{-T}`` (d, k): ``S^{-1} = D^{-1} - B B^T``."""
        return torch.linalg.solve_triangular(self.cap(), (self.W / self.D[:, None]).T, upper=False).T

    def logdet(self) -> torch.Tensor:  # matrix determinant lemma
        return torch.log(self.D).sum() + 2.0 * torch.log(torch.diagonal(self.cap())).sum()

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:  # Woodbury
        VD = V / self.D[:, None]
        Y = torch.linalg.solve_triangular(self.cap(), self.W.T @ VD, upper=False)
        return (V * VD).sum() - (Y**2).sum()

    def diagonal(self) -> torch.Tensor:
        return (self.W**2).sum(1) + self.D

    def inv_diagonal(self) -> torch.Tensor:
        B = torch.linalg.solve_triangular(self.cap(), (self.W / self.D[:, None]).T, upper=False)
        return 1.0 / self.D - (B**2).sum(0)

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        return self.W @ (self.W.T @ M) + self.D[:, None] * M

    def dense(self) -> torch.Tensor:
        return self.W @ self.W.T + torch.diag(self.D)

    def dense_factor(self) -> torch.Tensor:
        return torch.linalg.cholesky(self.dense())

    def same_as(self, other: CovarianceOperator) -> bool:
        return (
            isinstance(other, LowRankCovariance)
            and self.d == other.d
            and bool(torch.equal(self.W, other.W) and torch.equal(self.D, other.D))
        )

    def scaled(self, c: float) -> LowRankCovariance:
        return LowRankCovariance(self.W * c, self.D * (c * c))

    def log_std(self) -> float:
        return 0.5 * float(self.logdet()) / self.d


class KroneckerCovariance(CovarianceOperator):
    """``S = kron(U, V)`` (row-major ``vec``) from a row factor ``U`` (r x r) and a column factor
    ``V`` (c x c); ``like`` gives the dtype and device of the results."""

    kind = "kron"

    def __init__(self, row: KroneckerFactor, col: KroneckerFactor, like: torch.Tensor) -> None:
        self.row, self.col = row, col
        self.r, self.c = row.n, col.n
        self.d = self.r * self.c
        self._like = like.new_zeros(())

    def to(self, dtype: torch.dtype) -> KroneckerCovariance:
        return KroneckerCovariance(self.row.to(dtype), self.col.to(dtype), self._like.to(dtype))

    def logdet(self) -> torch.Tensor:
        return self.c * self.row.logdet().to(self._like) + self.r * self.col.logdet().to(self._like)

    def mahalanobis(self, D: torch.Tensor) -> torch.Tensor:
        """``tr(U^{-1} D V^{-1} D^T)`` for ``D`` of shape ``(..., r, c)``."""
        Y = self.row.half_solve(D)
        Z = self.col.half_solve(Y.transpose(-1, -2))
        return (Z**2).sum((-1, -2))

    def inv_quad(self, V: torch.Tensor) -> torch.Tensor:
        tot = V.new_zeros(())
        m = V.shape[1]
        b = max(1, BLOCK_ELEMS // max(self.d, 1))
        for j in range(0, m, b):
            X = V[:, j : j + b].T.reshape(-1, self.r, self.c)
            Y = self.row.half_solve(X)
            Z = self.col.half_solve(Y.transpose(-1, -2))
            tot = tot + (Z**2).sum()
        return tot

    def diagonal(self) -> torch.Tensor:
        return torch.outer(self.row.diagonal(self._like), self.col.diagonal(self._like)).reshape(-1)

    def inv_diagonal(self) -> torch.Tensor:
        return torch.outer(self.row.inv_diagonal(self._like), self.col.inv_diagonal(self._like)).reshape(-1)

    def matmul(self, M: torch.Tensor) -> torch.Tensor:
        X = M.T.reshape(-1, self.r, self.c)
        Y = self.row.cov_apply(X)
        Y = self.col.cov_apply(Y.transpose(-1, -2)).transpose(-1, -2)
        return Y.reshape(M.shape[1], -1).T

    def dense_factor(self) -> torch.Tensor:
        return torch.kron(self.row.half_dense(self._like), self.col.half_dense(self._like))

    def same_as(self, other: CovarianceOperator) -> bool:
        return (
            isinstance(other, KroneckerCovariance)
            and (self.r, self.c) == (other.r, other.c)
            and self.row.same_as(other.row)
            and self.col.same_as(other.col)
        )

    def scaled(self, c: float) -> KroneckerCovariance:
        """``c^2 kron(U, V) = kron(c_r^2 U, c_c^2 V)``, ``c_r c_c = c``: ``c_r`` (a power of two) brings
        ``U`` near unit scale, so neither factor under/overflows on its own."""
        c_r = math.ldexp(1.0, -round(float(self.row.logdet()) / (2 * self.r) / math.log(2.0)))
        c_c = c / c_r
        row = self.row if c_r == 1.0 else self.row.scaled(c_r, self._like)
        col = self.col if c_c == 1.0 else self.col.scaled(c_c, self._like)
        return KroneckerCovariance(row, col, self._like)

    def log_std(self) -> float:
        return 0.5 * (float(self.row.logdet()) / self.r + float(self.col.logdet()) / self.c)


def trace_inv_product(p: CovarianceOperator, q: CovarianceOperator) -> torch.Tensor:
    r"""``tr(S_q^{-1} S_p)`` without ``d x d`` matrices unless one side is already dense.

    Kronecker pairs factorise, ``tr(kron(U_q, V_q)^{-1} kron(U_p, V_p)) = tr(U_q^{-1} U_p)
    tr(V_q^{-1} V_p)``; a low-rank ``q`` uses Woodbury, ``tr(D^{-1} S_p) - tr(B^T S_p B)``.
    """
    if isinstance(q, IsotropicCovariance):
        return p.diagonal().sum() / q.s2
    if isinstance(q, DiagonalCovariance):
        return (p.diagonal() / q.var).sum()
    if isinstance(p, (IsotropicCovariance, DiagonalCovariance)):
        return (p.diagonal() * q.inv_diagonal()).sum()
    if isinstance(p, LowRankCovariance):
        return (p.D * q.inv_diagonal()).sum() + q.inv_quad(p.W)
    if isinstance(p, TrilCovariance):
        return q.inv_quad(p.L)
    # p Kronecker
    if isinstance(q, KroneckerCovariance):
        like = q._like
        return q.row.trace_inv_product(p.row, like) * q.col.trace_inv_product(p.col, like)
    if isinstance(q, LowRankCovariance):
        B = q.woodbury_half()
        return (p.diagonal() / q.D).sum() - (B * p.matmul(B)).sum()
    return q.inv_quad(p.dense_factor())  # q full: d is small enough for a dense factor
