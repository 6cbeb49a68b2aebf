"""Latent spaces of weights: projections, latent distributions and covariance fits.

A layer's weights ``w`` are mapped by a projection ``P`` to a vector (or a matrix) that becomes
the *mean* of a probability distribution, the layer's latent law. Two layers (dense and pruned)
are then compared through a divergence between their latent laws (see
:mod:`latentkit.divergence`).

Conventions
-----------
* **vec order.** Matrices are vectorised row-major (C order), ``vec(X)[i * c + j] = X[i, j]``,
  i.e. ``X.reshape(-1)``. Under this convention ``X ~ MN(M, U, V)`` (row covariance ``U`` of
  size ``r x r``, column covariance ``V`` of size ``c x c``) means
  ``vec(X) ~ N(vec(M), kron(U, V))`` and ``kron(U, V) vec(X) = vec(U X V^T)``.
* **chunk means remainder.** ``project(w, "chunk_means", k)`` cuts the flattened weights into
  ``k`` contiguous chunks exactly as :func:`torch.tensor_split` / :func:`numpy.array_split` do:
  with ``d = q k + m`` the first ``m`` chunks hold ``q + 1`` weights and the others ``q``.
* **dtype/device.** Distributions keep the dtype and device of their location;
  :func:`latent_space` builds them in ``float64`` by default, on the weights' device.
* **jitter.** Whatever is added to a diagonal to make a matrix positive definite is stored in the
  returned objects (``jitter`` / ``damping`` fields); nothing is added silently.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal, constraints

from ._validation import as_tensor, check_choice, check_int, check_nonnegative, check_positive, check_same_device

__all__ = [
    "project",
    "fold_bias",
    "IsotropicNormal",
    "DiagonalNormal",
    "MatrixNormal",
    "MultivariateStudentT",
    "MultivariateNormal",
    "LowRankMultivariateNormal",
    "latent_space",
    "relocate",
    "SwagFit",
    "fit_swag",
    "LaplaceFit",
    "fit_laplace_linear",
    "LedoitWolfFit",
    "ledoit_wolf",
    "sample_standard_gamma",
    "PROJECTIONS",
    "FAMILIES",
    "COVARIANCES",
]

PROJECTIONS = ("identity", "chunk_means", "rows")
FAMILIES = ("gaussian", "student_t")
COVARIANCES = ("isotropic", "diagonal", "full", "lowrank", "kronecker")

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# small private helpers
# --------------------------------------------------------------------------------------------
def _check_same_dtype(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} has dtype {a.dtype} but {name_b} has dtype {b.dtype}; use one dtype")


def _scalar_or_tensor(value: Any, name: str, like: torch.Tensor) -> torch.Tensor:
    """A positive scalar (Python number or 1-element tensor) as a 0-dim tensor like ``like``."""
    if isinstance(value, torch.Tensor):
        check_same_device(like, value, "loc", name)
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar; got shape {tuple(value.shape)}")
        if value.is_floating_point() and value.dtype != like.dtype:
            _check_same_dtype(like, value, "loc", name)
        check_positive(value, name)
        return value.reshape(()).to(like.dtype)
    v = check_positive(value, name)
    return torch.tensor(v, dtype=like.dtype, device=like.device)


def _matrix_arg(x: Any, name: str) -> torch.Tensor:
    """``as_tensor`` for matrices (at least 2-D; the finite check runs block-wise there)."""
    return as_tensor(x, name, min_dim=2)


def _cholesky(mat: torch.Tensor, name: str) -> torch.Tensor:
    """Cholesky factor of a symmetric positive-definite matrix, or a clear ``ValueError``."""
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


def _check_tril(L: torch.Tensor, name: str, n: Optional[int] = None) -> torch.Tensor:
    if L.dim() != 2 or L.shape[0] != L.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {tuple(L.shape)}")
    if n is not None and L.shape[0] != n:
        raise ValueError(f"{name} must be {n} x {n}; got {tuple(L.shape)}")
    if not bool((torch.diagonal(L) > 0).all()):
        raise ValueError(f"{name} must be lower triangular with a positive diagonal (a Cholesky factor)")
    # strictly-upper part must be zero; checked in row blocks so that no n x n copy is made
    n_rows = L.shape[0]
    b = max(1, (1 << 20) // max(n_rows, 1))
    for i in range(0, n_rows, b):
        if bool(torch.triu(L[i:i + b], diagonal=i + 1).any()):
            raise ValueError(f"{name} must be lower triangular (its strictly upper part is not zero)")
    return L


def _solve_tril(L: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    return torch.linalg.solve_triangular(L, X, upper=False)


# --------------------------------------------------------------------------------------------
# projections
# --------------------------------------------------------------------------------------------
def project(weight: Any, projection: str = "identity", num_chunks: int = 100) -> torch.Tensor:
    """Project a weight tensor to the latent location.

    Parameters
    ----------
    weight : Tensor, any shape with ``d`` entries
        The layer's weights (kept on their device and dtype).
    projection : {"identity", "chunk_means", "rows"}
        * ``identity``: ``vec(w)``, shape ``(d,)`` (row-major flatten).
        * ``chunk_means``: ``(k,)`` means of ``k = num_chunks`` contiguous chunks of ``vec(w)``
          (the reference code's trick). Remainder policy: with ``d = q k + m``, the first ``m``
          chunks have ``q + 1`` entries, the rest ``q`` (as :func:`torch.tensor_split`).
        * ``rows``: ``(out, d_in)`` with ``w.reshape(w.shape[0], -1)``, one row per output
          neuron / channel.
    num_chunks : int
        ``k`` for ``chunk_means``; ``1 <= k <= d``.

    Returns
    -------
    Tensor
        The projected weights.

    Raises
    ------
    ValueError
        Unknown projection, NaN/inf weights, ``num_chunks`` outside ``[1, d]``.
    """
    projection = check_choice(projection, "projection", PROJECTIONS)
    w = as_tensor(weight, "weight", min_dim=1)
    if projection == "identity":
        return w.reshape(-1)
    if projection == "rows":
        return w.reshape(w.shape[0], -1)
    k = check_int(num_chunks, "num_chunks", minimum=1)
    flat = w.reshape(-1)
    d = flat.numel()
    if k > d:
        raise ValueError(f"num_chunks={k} exceeds the number of weights d={d}")
    q, m = divmod(d, k)
    head = flat[: m * (q + 1)].reshape(m, q + 1).mean(dim=1) if m else flat.new_empty(0)
    tail = flat[m * (q + 1):].reshape(k - m, q).mean(dim=1)
    return torch.cat([head, tail])


def fold_bias(weight: Any, bias: Any) -> torch.Tensor:
    """``[W, b]``: a linear layer's weight ``(C, in)`` with its bias ``(C,)`` as a last column.

    The result ``(C, in + 1)`` is the matrix whose latent law :func:`fit_laplace_linear` (with
    ``bias=True``) describes.
    """
    W = as_tensor(weight, "weight", min_dim=2)
    b = as_tensor(bias, "bias", min_dim=1)
    check_same_device(W, b, "weight", "bias")
    _check_same_dtype(W, b, "weight", "bias")
    if W.dim() != 2 or b.dim() != 1 or b.shape[0] != W.shape[0]:
        raise ValueError(f"weight must be (C, in) and bias (C,); got {tuple(W.shape)} and {tuple(b.shape)}")
    return torch.cat([W, b[:, None]], dim=1)


# --------------------------------------------------------------------------------------------
# random numbers with an explicit generator
# --------------------------------------------------------------------------------------------
def sample_standard_gamma(
    alpha: float,
    shape: Sequence[int],
    *,
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float64,
    device: Union[str, torch.device] = "cpu",
) -> torch.Tensor:
    """Draws from Gamma(alpha, 1), driven by ``generator`` (Marsaglia-Tsang, vectorised).

    :func:`torch.distributions.Gamma.sample` takes no generator; this does, so Student-t and
    chi-square draws are reproducible from a ``torch.Generator`` on any device. For
    ``alpha < 1`` it uses ``Gamma(alpha) = Gamma(alpha + 1) U^(1/alpha)``.
    """
    alpha = check_positive(alpha, "alpha")
    shape = torch.Size(shape)
    n = shape.numel()
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    dd = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * dd)
    parts, got = [], 0
    while got < n:
        m = int((n - got) * 1.08) + 32
        x = torch.randn(m, generator=generator, dtype=dtype, device=device)
        u = torch.rand(m, generator=generator, dtype=dtype, device=device)
        v = (1.0 + c * x) ** 3
        ok = v > 0
        vs = torch.where(ok, v, torch.ones_like(v))
        ok &= torch.log(u) < 0.5 * x * x + dd - dd * vs + dd * torch.log(vs)
        acc = (dd * vs)[ok]
        parts.append(acc)
        got += acc.numel()
    out = torch.cat(parts)[:n]
    if boost:
        u = torch.rand(n, generator=generator, dtype=dtype, device=device)
        out = out * u.pow(1.0 / alpha)
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# Gaussian families with structure
# --------------------------------------------------------------------------------------------
class _VectorLaw(Distribution):
    """Shared pieces: one event of size ``d``, no batch dimensions, sampling with a generator."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def sample(self, sample_shape: Sequence[int] = torch.Size(), generator: Optional[torch.Generator] = None) -> torch.Tensor:  # noqa: D401
        """Draw samples of shape ``sample_shape + event_shape`` (optionally from ``generator``)."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    @property
    def dim(self) -> int:
        """Event size ``d``."""
        return int(torch.Size(self.event_shape).numel())

    def _check_value(self, value: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"value must be a torch.Tensor; got {type(value).__name__}")
        n = len(self.event_shape)
        if tuple(value.shape[value.dim() - n:]) != tuple(self.event_shape) or value.dim() < n:
            raise ValueError(f"value must end with event shape {tuple(self.event_shape)}; got {tuple(value.shape)}")
        check_same_device(value, self.loc, "value", "loc")
        return value.to(self.loc.dtype)


class IsotropicNormal(_VectorLaw):
    r"""Gaussian ``N(loc, scale^2 I_d)``.

    Parameters
    ----------
    loc : Tensor (d,)
        Mean.
    scale : positive float or 0-dim tensor
        Standard deviation ``s`` of every coordinate (covariance ``s^2 I``).

    Notes
    -----
    ``log p(x) = -|x - loc|^2 / (2 s^2) - d log s - d/2 log(2 pi)``;
    entropy ``d/2 (1 + log 2 pi) + d log s``.
    """

    def __init__(self, loc: Any, scale: Any = 1.0, validate_args: Optional[bool] = None) -> None:
        loc = as_tensor(loc, "loc", min_dim=1)
        if loc.dim() != 1:
            raise ValueError(f"loc must be a vector (d,); got shape {tuple(loc.shape)}")
        self.loc = loc
        self.scale = _scalar_or_tensor(scale, "scale", loc)
        super().__init__(torch.Size(), torch.Size([loc.shape[0]]), validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return (self.scale**2).expand(self.loc.shape)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """Dense ``s^2 I`` (d x d), for small ``d`` only."""
        return self.scale**2 * torch.eye(self.dim, dtype=self.loc.dtype, device=self.loc.device)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), generator: Optional[torch.Generator] = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.event_shape
        eps = torch.randn(shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        x = self._check_value(value)
        q = ((x - self.loc) ** 2).sum(-1) / self.scale**2
        return -0.5 * q - self.dim * (torch.log(self.scale) + 0.5 * _LOG_2PI)

    def entropy(self) -> torch.Tensor:
        return self.dim * (0.5 * (1.0 + _LOG_2PI) + torch.log(self.scale))

    def __repr__(self) -> str:
        return f"IsotropicNormal(d={self.dim}, scale={float(self.scale):.4g}, dtype={self.loc.dtype})"


class DiagonalNormal(_VectorLaw):
    r"""Gaussian ``N(loc, diag(scale^2))``.

    Parameters
    ----------
    loc : Tensor (d,)
    scale : Tensor (d,) or positive scalar
        Per-coordinate standard deviations (a scalar is broadcast).

    Notes
    -----
    ``log p(x) = -1/2 sum_i (x_i - loc_i)^2 / s_i^2 - sum_i log s_i - d/2 log(2 pi)``.
    """

    def __init__(self, loc: Any, scale: Any = 1.0, validate_args: Optional[bool] = None) -> None:
        loc = as_tensor(loc, "loc", min_dim=1)
        if loc.dim() != 1:
            raise ValueError(f"loc must be a vector (d,); got shape {tuple(loc.shape)}")
        if isinstance(scale, torch.Tensor) and scale.numel() > 1 or not isinstance(scale, (numbers.Real, torch.Tensor)):
            s = as_tensor(scale, "scale", min_dim=1)
            check_same_device(loc, s, "loc", "scale")
            _check_same_dtype(loc, s, "loc", "scale")
            if tuple(s.shape) != tuple(loc.shape):
                raise ValueError(f"scale must have the shape of loc {tuple(loc.shape)}; got {tuple(s.shape)}")
            if not bool((s > 0).all()):
                raise ValueError("scale (standard deviations) must be positive")
        else:
            s = _scalar_or_tensor(scale, "scale", loc).expand(loc.shape)
        self.loc = loc
        self.scale = s
        super().__init__(torch.Size(), torch.Size([loc.shape[0]]), validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return self.scale**2

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """Dense ``diag(scale^2)`` (d x d), for small ``d`` only."""
        return torch.diag(self.scale**2)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), generator: Optional[torch.Generator] = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.event_shape
        eps = torch.randn(shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        x = self._check_value(value)
        q = (((x - self.loc) / self.scale) ** 2).sum(-1)
        return -0.5 * q - torch.log(self.scale).sum() - 0.5 * self.dim * _LOG_2PI

    def entropy(self) -> torch.Tensor:
        return 0.5 * self.dim * (1.0 + _LOG_2PI) + torch.log(self.scale).sum()

    def __repr__(self) -> str:
        return f"DiagonalNormal(d={self.dim}, dtype={self.loc.dtype})"


class _Factor:
    """One Kronecker factor, as a covariance ``S S^T`` of size ``n x n``.

    kinds: ``identity`` (``S = I``), ``cov`` (``S = L``, the Cholesky factor of the covariance),
    ``prec`` (``L`` is the Cholesky factor of the *precision*, ``S = L^{-T}``).
    """

    def __init__(self, kind: str, n: int, L: Optional[torch.Tensor] = None) -> None:
        self.kind, self.n, self.L = kind, n, L

    # --- S^{-1} X and S X, X of shape (..., n, m)
    def half_solve(self, X: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return X
        if self.kind == "cov":
            return _solve_tril(self.L, X)
        return self.L.transpose(-1, -2) @ X

    def half_apply(self, X: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return X
        if self.kind == "cov":
            return self.L @ X
        return torch.linalg.solve_triangular(self.L.transpose(-1, -2), X, upper=True)

    def logdet(self) -> torch.Tensor:
        """``log det`` of the covariance factor."""
        if self.kind == "identity":
            return torch.zeros((), dtype=torch.float64)
        ld = 2.0 * torch.log(torch.diagonal(self.L)).sum()
        return ld if self.kind == "cov" else -ld

    def dense(self) -> torch.Tensor:
        if self.kind == "identity":
            raise RuntimeError("identity factor has no stored matrix")
        if self.kind == "cov":
            return self.L @ self.L.T
        return torch.cholesky_inverse(self.L)

    def scale_tril(self) -> torch.Tensor:
        if self.kind == "cov":
            return self.L
        return torch.linalg.cholesky(self.dense())

    def same_as(self, other: "_Factor") -> bool:
        if self.kind != other.kind or self.n != other.n:
            return False
        if self.kind == "identity":
            return True
        return self.L is other.L or (self.L.shape == other.L.shape and self.L.device == other.L.device
                                     and bool(torch.equal(self.L.to(torch.float64), other.L.to(torch.float64))))

    def to(self, dtype: torch.dtype) -> "_Factor":
        return _Factor(self.kind, self.n, None if self.L is None else self.L.to(dtype))


def _make_factor(n: int, cov: Any, tril: Any, prec: Any, side: str, like: torch.Tensor) -> _Factor:
    given = [(k, v) for k, v in (("cov", cov), ("scale_tril", tril), ("precision", prec)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of {side}_cov, {side}_scale_tril, {side}_precision")
    if not given:
        return _Factor("identity", n)
    kind, val = given[0]
    M = _matrix_arg(val, f"{side}_{kind}")
    check_same_device(like, M, "loc", f"{side}_{kind}")
    _check_same_dtype(like, M, "loc", f"{side}_{kind}")
    if M.dim() != 2 or tuple(M.shape) != (n, n):
        raise ValueError(f"{side}_{kind} must be {n} x {n} to match loc; got {tuple(M.shape)}")
    if kind == "scale_tril":
        return _Factor("cov", n, _check_tril(M, f"{side}_scale_tril", n))
    L = _cholesky(M, f"{side}_{kind}")
    return _Factor("cov" if kind == "cov" else "prec", n, L)


class MatrixNormal(Distribution):
    r"""Matrix normal ``X ~ MN(M, U, V)`` with event shape ``(r, c)``.

    ``vec(X) ~ N(vec(M), kron(U, V))`` with row-major ``vec`` (``X.reshape(-1)``); ``U`` (r x r)
    is the row covariance (between output neurons), ``V`` (c x c) the column covariance.

    Parameters
    ----------
    loc : Tensor (r, c)
        Mean matrix ``M``.
    row_cov, col_cov : Tensor, optional
        ``U`` and ``V`` (symmetric positive definite). ``None`` (and no other form) means identity.
    row_scale_tril, col_scale_tril : Tensor, optional
        Cholesky factors of ``U`` / ``V`` instead.
    row_precision, col_precision : Tensor, optional
        ``U^{-1}`` / ``V^{-1}`` instead (e.g. Kronecker-factored Laplace factors ``G``, ``A``).

    Notes
    -----
    ``log p(X) = -1/2 tr(U^{-1} (X-M) V^{-1} (X-M)^T) - rc/2 log 2 pi - c/2 log det U - r/2 log det V``.
    Only ``r x r`` and ``c x c`` matrices are ever formed.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(
        self,
        loc: Any,
        row_cov: Any = None,
        col_cov: Any = None,
        row_scale_tril: Any = None,
        col_scale_tril: Any = None,
        *,
        row_precision: Any = None,
        col_precision: Any = None,
        validate_args: Optional[bool] = None,
    ) -> None:
        loc = as_tensor(loc, "loc", min_dim=2)
        if loc.dim() != 2:
            raise ValueError(f"loc must be a matrix (r, c); got shape {tuple(loc.shape)}")
        r, c = loc.shape
        self.loc = loc
        self._row = _make_factor(r, row_cov, row_scale_tril, row_precision, "row", loc)
        self._col = _make_factor(c, col_cov, col_scale_tril, col_precision, "col", loc)
        super().__init__(torch.Size(), torch.Size([r, c]), validate_args=False)

    @classmethod
    def _from_factors(cls, loc: torch.Tensor, row: _Factor, col: _Factor) -> "MatrixNormal":
        obj = cls.__new__(cls)
        obj.loc, obj._row, obj._col = loc, row, col
        Distribution.__init__(obj, torch.Size(), torch.Size(loc.shape), validate_args=False)
        return obj

    @property
    def dim(self) -> int:
        return int(self.loc.numel())

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    def _dense_or_eye(self, f: _Factor) -> torch.Tensor:
        if f.kind == "identity":
            return torch.eye(f.n, dtype=self.loc.dtype, device=self.loc.device)
        return f.dense()

    @property
    def row_cov(self) -> torch.Tensor:
        """``U`` (r x r), dense."""
        return self._dense_or_eye(self._row)

    @property
    def col_cov(self) -> torch.Tensor:
        """``V`` (c x c), dense."""
        return self._dense_or_eye(self._col)

    @property
    def row_scale_tril(self) -> torch.Tensor:
        return self._dense_or_eye(self._row) if self._row.kind == "identity" else self._row.scale_tril()

    @property
    def col_scale_tril(self) -> torch.Tensor:
        return self._dense_or_eye(self._col) if self._col.kind == "identity" else self._col.scale_tril()

    @property
    def variance(self) -> torch.Tensor:
        """``Var X_ij = U_ii V_jj``, shape ``(r, c)``."""
        du = torch.diagonal(self.row_cov) if self._row.kind != "identity" else self.loc.new_ones(self.loc.shape[0])
        dv = torch.diagonal(self.col_cov) if self._col.kind != "identity" else self.loc.new_ones(self.loc.shape[1])
        return du[:, None] * dv[None, :]

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """Dense ``kron(U, V)`` (rc x rc), for small sizes only."""
        return torch.kron(self.row_cov.contiguous(), self.col_cov.contiguous())

    def to_multivariate_normal(self) -> MultivariateNormal:
        """The same law as a :class:`torch.distributions.MultivariateNormal` on ``vec(X)`` (small sizes)."""
        return MultivariateNormal(self.loc.reshape(-1), scale_tril=torch.kron(self.row_scale_tril.contiguous(), self.col_scale_tril.contiguous()))

    def _maha(self, D: torch.Tensor) -> torch.Tensor:
        """``tr(U^{-1} D V^{-1} D^T)`` for ``D`` of shape ``(..., r, c)``."""
        Y = self._row.half_solve(D)  # S_U^{-1} D
        Z = self._col.half_solve(Y.transpose(-1, -2))  # S_V^{-1} (S_U^{-1} D)^T
        return (Z**2).sum((-1, -2))

    def _logdet(self) -> torch.Tensor:
        r, c = self.loc.shape
        return (c * self._row.logdet().to(self.loc) + r * self._col.logdet().to(self.loc))

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), generator: Optional[torch.Generator] = None) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        Z = torch.randn(shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        Y = self._row.half_apply(Z)  # S_U Z
        Y = self._col.half_apply(Y.transpose(-1, -2)).transpose(-1, -2)  # S_U Z S_V^T
        return self.loc + Y

    def sample(self, sample_shape: Sequence[int] = torch.Size(), generator: Optional[torch.Generator] = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError("value must be a torch.Tensor")
        if value.dim() < 2 or tuple(value.shape[-2:]) != tuple(self.loc.shape):
            raise ValueError(f"value must end with event shape {tuple(self.loc.shape)}; got {tuple(value.shape)}")
        check_same_device(value, self.loc, "value", "loc")
        D = value.to(self.loc.dtype) - self.loc
        return -0.5 * self._maha(D) - 0.5 * self.dim * _LOG_2PI - 0.5 * self._logdet()

    def entropy(self) -> torch.Tensor:
        return 0.5 * self.dim * (1.0 + _LOG_2PI) + 0.5 * self._logdet()

    def __repr__(self) -> str:
        r, c = self.loc.shape
        return f"MatrixNormal(r={r}, c={c}, row={self._row.kind}, col={self._col.kind}, dtype={self.loc.dtype})"


# --------------------------------------------------------------------------------------------
# multivariate Student-t
# --------------------------------------------------------------------------------------------
class MultivariateStudentT(_VectorLaw):
    r"""Multivariate Student-t ``t_nu(loc, Sigma)`` with ``Sigma = L L^T`` (scale, not covariance).

    ``X = loc + L Z sqrt(nu / W)`` with ``Z ~ N(0, I_d)`` and ``W ~ chi^2_nu`` independent.

    Parameters
    ----------
    loc : Tensor (d,)
    scale_tril : Tensor (d, d), optional
        Lower-triangular ``L`` with positive diagonal.
    df : positive float
        Degrees of freedom ``nu`` (required; may be passed third positionally).
    scale : positive float, optional
        Isotropic scale ``s`` (``Sigma = s^2 I``), stored as a scalar (no ``d x d`` matrix).
        If neither ``scale_tril`` nor ``scale`` is given, ``Sigma = I`` (the reference code's choice).

    Notes
    -----
    ``log p(x) = lgamma((nu+d)/2) - lgamma(nu/2) - d/2 log(nu pi) - log det L
    - (nu+d)/2 log(1 + m/nu)`` with ``m = |L^{-1}(x - loc)|^2``.
    Entropy (closed form): ``-lgamma((nu+d)/2) + lgamma(nu/2) + d/2 log(nu pi) + log det L
    + (nu+d)/2 [psi((nu+d)/2) - psi(nu/2)]``.
    Mean ``loc`` (``nu > 1``); covariance ``nu/(nu-2) Sigma`` (``nu > 2``).
    """

    def __init__(
        self,
        loc: Any,
        scale_tril: Any = None,
        df: Any = None,
        scale: Any = None,
        validate_args: Optional[bool] = None,
    ) -> None:
        loc = as_tensor(loc, "loc", min_dim=1)
        if loc.dim() != 1:
            raise ValueError(f"loc must be a vector (d,); got shape {tuple(loc.shape)}")
        if df is None:
            raise TypeError("MultivariateStudentT needs df (degrees of freedom)")
        self.df = check_positive(df, "df")
        d = loc.shape[0]
        if scale_tril is not None and scale is not None:
            raise ValueError("give either scale_tril or scale, not both")
        self.loc = loc
        if scale_tril is not None:
            L = _matrix_arg(scale_tril, "scale_tril")
            check_same_device(loc, L, "loc", "scale_tril")
            _check_same_dtype(loc, L, "loc", "scale_tril")
            self._scale_tril: Optional[torch.Tensor] = _check_tril(L, "scale_tril", d)
            self.scale: Optional[torch.Tensor] = None
        else:
            self._scale_tril = None
            self.scale = _scalar_or_tensor(1.0 if scale is None else scale, "scale", loc)
        super().__init__(torch.Size(), torch.Size([d]), validate_args=False)

    @property
    def is_isotropic(self) -> bool:
        return self._scale_tril is None

    @property
    def scale_tril(self) -> torch.Tensor:
        """``L`` (dense ``s I`` for an isotropic law, so small ``d`` only)."""
        if self._scale_tril is not None:
            return self._scale_tril
        return self.scale * torch.eye(self.dim, dtype=self.loc.dtype, device=self.loc.device)

    @property
    def mean(self) -> torch.Tensor:
        if self.df <= 1:
            raise ValueError(f"the mean of a Student-t law is undefined for df <= 1 (df={self.df})")
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        if self.df <= 2:
            raise ValueError(f"the variance of a Student-t law is infinite/undefined for df <= 2 (df={self.df})")
        f = self.df / (self.df - 2.0)
        if self._scale_tril is None:
            return (f * self.scale**2).expand(self.loc.shape)
        return f * (self._scale_tril**2).sum(-1)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        if self.df <= 2:
            raise ValueError(f"the covariance of a Student-t law is infinite/undefined for df <= 2 (df={self.df})")
        L = self.scale_tril
        return self.df / (self.df - 2.0) * (L @ L.T)

    def _half_logdet(self) -> torch.Tensor:
        if self._scale_tril is None:
            return self.dim * torch.log(self.scale)
        return torch.log(torch.diagonal(self._scale_tril)).sum()

    def mahalanobis(self, value: torch.Tensor) -> torch.Tensor:
        """``|L^{-1}(x - loc)|^2`` over the last dimension."""
        diff = value - self.loc
        if self._scale_tril is None:
            return (diff**2).sum(-1) / self.scale**2
        shp = diff.shape
        z = _solve_tril(self._scale_tril, diff.reshape(-1, self.dim).T)
        return (z**2).sum(0).reshape(shp[:-1])

    def rsample(self, sample_shape: Sequence[int] = torch.Size(), generator: Optional[torch.Generator] = None) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        z = torch.randn(sample_shape + self.event_shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        w = 2.0 * sample_standard_gamma(0.5 * self.df, sample_shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        if self._scale_tril is None:
            y = self.scale * z
        else:
            y = z @ self._scale_tril.T
        return self.loc + y * torch.sqrt(self.df / w).unsqueeze(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        x = self._check_value(value)
        m = self.mahalanobis(x)
        nu, d = self.df, self.dim
        const = math.lgamma(0.5 * (nu + d)) - math.lgamma(0.5 * nu) - 0.5 * d * math.log(nu * math.pi)
        return const - self._half_logdet() - 0.5 * (nu + d) * torch.log1p(m / nu)

    def entropy(self) -> torch.Tensor:
        nu, d = self.df, self.dim
        from scipy.special import digamma  # scalar constants only

        const = (-math.lgamma(0.5 * (nu + d)) + math.lgamma(0.5 * nu) + 0.5 * d * math.log(nu * math.pi)
                 + 0.5 * (nu + d) * (float(digamma(0.5 * (nu + d))) - float(digamma(0.5 * nu))))
        return const + self._half_logdet()

    def __repr__(self) -> str:
        sc = f"scale={float(self.scale):.4g}" if self._scale_tril is None else "scale_tril"
        return f"MultivariateStudentT(d={self.dim}, df={self.df:g}, {sc}, dtype={self.loc.dtype})"


# --------------------------------------------------------------------------------------------
# covariance fits
# --------------------------------------------------------------------------------------------
@dataclass
class SwagFit:
    r"""SWAG moments of weight snapshots (Maddox et al., 2019).

    Attributes
    ----------
    mean : Tensor (d,)
        ``theta_bar = 1/T sum_t theta_t``.
    diag_var : Tensor (d,)
        ``max(mean(theta^2) - theta_bar^2, 0)`` (before jitter).
    deviations : Tensor (d, K)
        ``D_hat``, columns ``theta_t - theta_bar`` for the last ``K = rank`` snapshots.
    jitter : float
        Added to every variance below (stated, never hidden).
    num_snapshots, rank : int
    projection, num_chunks : str, int
        The projection the snapshots went through (must match the latent).

    Notes
    -----
    SWAG covariance: ``Sigma = 1/2 diag(diag_var) + D_hat D_hat^T / (2 (K - 1)) + jitter I``;
    SWAG-diagonal: ``diag(diag_var) + jitter I``.
    """

    mean: torch.Tensor
    diag_var: torch.Tensor
    deviations: torch.Tensor
    jitter: float
    num_snapshots: int
    rank: int
    projection: str = "identity"
    num_chunks: int = 100

    def diagonal_variance(self) -> torch.Tensor:
        """SWAG-diagonal variances ``diag_var + jitter`` (d,)."""
        return self.diag_var + self.jitter

    def lowrank_factors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(cov_factor (d, K), cov_diag (d,))`` with ``Sigma = F F^T + diag(cov_diag)``."""
        K = self.deviations.shape[1]
        return self.deviations / math.sqrt(2.0 * (K - 1)), 0.5 * self.diag_var + self.jitter

    def covariance(self) -> torch.Tensor:
        """Dense SWAG covariance (d x d): small ``d`` only."""
        F, D = self.lowrank_factors()
        return F @ F.T + torch.diag(D)


def fit_swag(
    snapshots: Sequence[Any],
    rank: Optional[int] = None,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    jitter: Optional[float] = None,
) -> SwagFit:
    r"""Fit SWAG moments (mean, diagonal variance, low-rank deviations) to weight snapshots.

    Parameters
    ----------
    snapshots : sequence of T >= 2 tensors of one shape
        The layer's weights at successive SGD iterates (e.g. the end of each epoch).
    rank : int, optional
        ``K``, number of most recent deviations kept (``2 <= K <= T``); default ``min(20, T)``.
    projection, num_chunks
        Applied to every snapshot first (see :func:`project`); use the latent's projection.
    jitter : float, optional
        Added to the variances; default ``1e-6 * mean(diag_var)`` (or ``1e-12`` if that is 0).

    Returns
    -------
    SwagFit
        See its docstring for the covariance formulas; positive definite thanks to ``jitter > 0``.
    """
    if isinstance(snapshots, torch.Tensor) or not isinstance(snapshots, Sequence) or len(snapshots) < 2:
        raise ValueError("snapshots must be a sequence (list/tuple) of at least 2 weight tensors")
    first = as_tensor(snapshots[0], "snapshots[0]", min_dim=1)
    X = []
    for i, s in enumerate(snapshots):
        t = as_tensor(s, f"snapshots[{i}]", min_dim=1)
        if tuple(t.shape) != tuple(first.shape):
            raise ValueError(f"snapshots[{i}] has shape {tuple(t.shape)}, expected {tuple(first.shape)}")
        check_same_device(first, t, "snapshots[0]", f"snapshots[{i}]")
        X.append(project(t, projection, num_chunks).reshape(-1).to(torch.float64))
    X = torch.stack(X)  # (T, d)
    T = X.shape[0]
    K = min(20, T) if rank is None else check_int(rank, "rank", minimum=2, maximum=T)
    mean = X.mean(0)
    diag_var = ((X**2).mean(0) - mean**2).clamp_min(0.0)
    if jitter is None:
        jitter = max(1e-6 * float(diag_var.mean()), 1e-12)
    else:
        jitter = check_positive(jitter, "jitter")
    dev = (X[-K:] - mean).T.contiguous()
    return SwagFit(mean, diag_var, dev, float(jitter), T, K, projection, int(num_chunks))


@dataclass
class LaplaceFit:
    r"""Kronecker-factored Laplace / Fisher (K-FAC) factors of a linear softmax layer.

    For logits ``z = W x~`` with ``W`` of shape ``(C, in+1)`` (``x~ = [x, 1]`` when ``bias``),
    the Fisher = Gauss-Newton of the mean cross-entropy w.r.t. ``vec_rowmajor(W)`` is
    ``E[(diag(p) - p p^T) kron x~ x~^T]``, approximated by ``kron(G, A)`` (exact for one example).

    Attributes
    ----------
    A : Tensor (in+1, in+1)
        ``E[x~ x~^T]``.
    G : Tensor (C, C)
        ``E[diag(p) - p p^T]``, singular (rank ``<= C - 1``: softmax is invariant to adding the
        same number to every logit), hence ``damping``.
    damping : float
        Added to the diagonal of both factors: the latent's precision is
        ``kron(G + damping I, A + damping I)`` (= ``kron(G, A) + damping (I kron A + G kron I)
        + damping^2 I``).
    bias : bool
    num_samples : int
    """

    A: torch.Tensor
    G: torch.Tensor
    damping: float
    bias: bool
    num_samples: int

    @property
    def A_damped(self) -> torch.Tensor:
        return self.A + self.damping * torch.eye(self.A.shape[0], dtype=self.A.dtype, device=self.A.device)

    @property
    def G_damped(self) -> torch.Tensor:
        return self.G + self.damping * torch.eye(self.G.shape[0], dtype=self.G.dtype, device=self.G.device)

    @property
    def weight_shape(self) -> Tuple[int, int]:
        """Shape ``(C, in + bias)`` of the matrix the factors describe."""
        return (self.G.shape[0], self.A.shape[0])

    def precision(self, damped: bool = True) -> torch.Tensor:
        """Dense ``kron(G, A)`` (damped by default); small layers only."""
        return torch.kron(self.G_damped, self.A_damped) if damped else torch.kron(self.G, self.A)

    def quadratic(self, delta: Any, damped: bool = False) -> float:
        """``1/2 vec(D)^T kron(G, A) vec(D) = 1/2 tr(G D A D^T)``: second-order loss increase."""
        D = as_tensor(delta, "delta", min_dim=2).to(torch.float64)
        if tuple(D.shape) != self.weight_shape:
            raise ValueError(f"delta must have shape {self.weight_shape}; got {tuple(D.shape)}")
        G, A = (self.G_damped, self.A_damped) if damped else (self.G, self.A)
        return 0.5 * float(((G @ D) * (D @ A)).sum())


def fit_laplace_linear(
    features: Any,
    logits: Any,
    bias: bool = True,
    damping: float = 1e-3,
) -> LaplaceFit:
    r"""K-FAC factors of a linear softmax (last) layer from a batch of its inputs and outputs.

    Parameters
    ----------
    features : Tensor (n, in)
        Inputs ``x`` of the layer.
    logits : Tensor (n, C)
        Its outputs; ``p = softmax(logits)``.
    bias : bool
        Fold the bias in (append a constant 1 to ``x``), so the factors describe ``[W, b]``
        (see :func:`fold_bias`).
    damping : float > 0
        Added to both factors' diagonals. Required: ``G`` is singular (rank ``C - 1``).

    Returns
    -------
    LaplaceFit
        ``A = 1/n sum x~ x~^T``, ``G = 1/n sum (diag(p) - p p^T)`` (float64), ``damping``.
        The latent built from it (``latent_space(fold_bias(W, b), covariance="kronecker",
        fit=...)``) is ``MN(W, (G + damping I)^{-1}, (A + damping I)^{-1})``: its precision for
        ``vec_rowmajor(W)`` is ``kron(G_d, A_d)`` and the KL between two such latents is
        ``1/2 tr(G_d D A_d D^T)``, a second-order estimate of the mean cross-entropy increase
        caused by ``D = W - W~``.
    """
    X = as_tensor(features, "features", min_dim=2)
    Z = as_tensor(logits, "logits", min_dim=2)
    if X.dim() != 2 or Z.dim() != 2:
        raise ValueError(f"features must be (n, in) and logits (n, C); got {tuple(X.shape)} and {tuple(Z.shape)}")
    if X.shape[0] != Z.shape[0]:
        raise ValueError(f"features and logits must have the same number of rows; got {X.shape[0]} and {Z.shape[0]}")
    check_same_device(X, Z, "features", "logits")
    if not isinstance(bias, bool):
        raise TypeError("bias must be a bool")
    damping = check_positive(damping, "damping")
    n = X.shape[0]
    X = X.to(torch.float64)
    if bias:
        X = torch.cat([X, X.new_ones(n, 1)], dim=1)
    P = torch.softmax(Z.to(torch.float64), dim=1)
    A = X.T @ X / n
    G = torch.diag(P.mean(0)) - P.T @ P / n
    A = 0.5 * (A + A.T)
    G = 0.5 * (G + G.T)
    return LaplaceFit(A, G, float(damping), bias, int(n))


@dataclass
class LedoitWolfFit:
    r"""Ledoit-Wolf shrunk covariance ``(1 - a) S + a mu I`` (+ ``jitter I`` if it was needed).

    Attributes
    ----------
    covariance : Tensor (d, d)
    shrinkage : float
        ``a`` in [0, 1].
    mean : Tensor (d,)
    jitter : float
        Extra diagonal added to reach positive definiteness (0 when not needed).
    num_samples : int
    """

    covariance: torch.Tensor
    shrinkage: float
    mean: torch.Tensor
    jitter: float
    num_samples: int


def ledoit_wolf(samples: Any, *, assume_centered: bool = False, jitter: Optional[float] = None) -> LedoitWolfFit:
    r"""Ledoit-Wolf (2004) shrinkage estimate of a covariance from few samples.

    ``S = X_c^T X_c / n`` (``X_c`` centred unless ``assume_centered``), ``mu = tr(S)/d``,
    ``delta = ||S - mu I||_F^2 / d``, ``beta = min(delta, 1/(d n^2) sum_k ||x_k x_k^T - S||_F^2)``,
    shrinkage ``a = beta / delta`` and estimate ``(1 - a) S + a mu I`` (same as
    :class:`sklearn.covariance.LedoitWolf`).

    Parameters
    ----------
    samples : Tensor (n, d), n >= 2
    jitter : float, optional
        ``None``: add nothing if the estimate is positive definite, else the smallest of
        ``mu * 10^-12, 10^-11, ...`` that makes it so. A float: add exactly that.

    Returns
    -------
    LedoitWolfFit
    """
    X = as_tensor(samples, "samples", min_dim=2)
    if X.dim() != 2 or X.shape[0] < 2:
        raise ValueError(f"samples must be (n, d) with n >= 2; got {tuple(X.shape)}")
    X = X.to(torch.float64)
    n, d = X.shape
    mean = X.mean(0) if not assume_centered else X.new_zeros(d)
    Xc = X - mean
    S = Xc.T @ Xc / n
    mu = float(torch.trace(S)) / d
    X2 = Xc**2
    beta_ = float((X2.T @ X2).sum())
    delta_ = float((S**2).sum())
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * float(torch.trace(S)) + d * mu**2) / d
    beta = min(beta, delta)
    a = 0.0 if beta == 0 else beta / delta
    cov = (1.0 - a) * S + a * mu * torch.eye(d, dtype=torch.float64, device=X.device)
    eye = torch.eye(d, dtype=torch.float64, device=X.device)
    if jitter is not None:
        j = check_nonnegative(jitter, "jitter")
        cov = cov + j * eye
        _cholesky(cov, "Ledoit-Wolf covariance (+ jitter)")
    else:
        j = 0.0
        base = mu if mu > 0 else 1.0
        for k in range(-12, 1):
            if int(torch.linalg.cholesky_ex(cov + j * eye)[1]) == 0:
                break
            j = base * 10.0**k
        else:
            raise ValueError("could not make the Ledoit-Wolf estimate positive definite")
        cov = cov + j * eye
    return LedoitWolfFit(cov, float(a), mean, float(j), int(n))


# --------------------------------------------------------------------------------------------
# single entry point
# --------------------------------------------------------------------------------------------

def relocate(dist: Distribution, loc: Any) -> Distribution:
    r"""The same latent law moved to a new location: covariance / scale / df / factors kept exactly.

    For ``p = N(m, S)`` returns ``N(loc, S)`` (likewise ``t_nu(loc, Sigma)`` and ``MN(loc, U, V)``);
    ``loc`` is reshaped to the law's event shape. Used to split a KL into its mean and covariance
    parts, e.g. ``KL(p || q) = KL(relocate(q, p.loc) || q) + KL(p || relocate(q, p.loc))`` for Gaussians.

    Raises
    ------
    TypeError
        If ``dist`` is not one of latentkit's latent families (or torch's full / low-rank Gaussian).
    ValueError
        If ``loc`` does not have as many entries as the law's event, or is not finite.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a torch Distribution; got {type(dist).__name__}")
    old = dist.loc
    loc = as_tensor(loc, "loc").to(device=old.device, dtype=old.dtype)
    if loc.numel() != old.numel():
        raise ValueError(f"loc has {loc.numel()} entries but the law's event has {old.numel()}")
    loc = loc.reshape(old.shape)
    if isinstance(dist, IsotropicNormal):
        return IsotropicNormal(loc, dist.scale)
    if isinstance(dist, DiagonalNormal):
        return DiagonalNormal(loc, dist.variance.sqrt())
    if isinstance(dist, MatrixNormal):
        return MatrixNormal._from_factors(loc, dist._row, dist._col)
    if isinstance(dist, MultivariateStudentT):
        if dist.is_isotropic:
            return MultivariateStudentT(loc, df=dist.df, scale=dist.scale)
        return MultivariateStudentT(loc, dist.scale_tril, dist.df)
    if isinstance(dist, LowRankMultivariateNormal):
        return LowRankMultivariateNormal(loc, dist.cov_factor, dist.cov_diag)
    if isinstance(dist, MultivariateNormal):
        return MultivariateNormal(loc, scale_tril=dist.scale_tril)
    raise TypeError(f"not a latentkit latent law: {type(dist).__name__}")

def latent_space(
    weight: Any,
    family: str = "gaussian",
    covariance: str = "isotropic",
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    scale: Any = 1.0,
    df: float = 4.0,
    fit: Any = None,
    jitter: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> Distribution:
    r"""The latent law of a layer: a distribution whose mean is the projected weights.

    Parameters
    ----------
    weight : Tensor
        The layer's weights (any shape; for a :class:`LaplaceFit` with ``bias=True`` pass
        ``fold_bias(W, b)``).
    family : {"gaussian", "student_t"}
    covariance : {"isotropic", "diagonal", "full", "lowrank", "kronecker"}
        Structure of the covariance (Gaussian) or scale matrix (Student-t: ``isotropic``/``full``).
    projection, num_chunks
        See :func:`project`. ``kronecker`` uses the matrix ``w.reshape(w.shape[0], -1)`` and needs
        ``projection`` ``identity`` or ``rows``.
    scale : float or Tensor
        Fixed standard deviation ``s`` (the paper's choice) when ``fit`` is ``None``:
        isotropic ``s^2 I``; diagonal ``diag(s^2)`` (``s`` scalar or ``(d,)``); full ``s^2 I``
        stored densely; kronecker ``U = s^2 I_r``, ``V = I_c``; Student-t scale ``s I``.
    df : float
        Student-t degrees of freedom.
    fit : SwagFit | LaplaceFit | LedoitWolfFit, optional
        Where the covariance comes from:

        ======================  ==========================================================
        ``SwagFit``             diagonal (SWAG-diag), lowrank (SWAG), full (SWAG, dense)
        ``LaplaceFit``          kronecker ``MN(W, G_d^{-1}, A_d^{-1})``; full (dense, small)
        ``LedoitWolfFit``       full, diagonal (its diagonal); Student-t full (scale matrix)
        ======================  ==========================================================
    jitter : float >= 0
        Extra ``jitter * I`` added to the covariance built here (diagonal, full, lowrank's
        diagonal, Student-t scale matrix). Not used for Kronecker latents (the fit's damping
        plays that role); must be 0 there.
    dtype : torch.dtype
        Dtype of the returned law (float64 by default); device is the weights' device.

    Returns
    -------
    torch.distributions.Distribution
        ``IsotropicNormal``, ``DiagonalNormal``, ``MultivariateNormal``,
        ``LowRankMultivariateNormal``, ``MatrixNormal`` or ``MultivariateStudentT``.
    """
    family = check_choice(family, "family", FAMILIES)
    covariance = check_choice(covariance, "covariance", COVARIANCES)
    jitter = check_nonnegative(jitter, "jitter")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    if fit is not None and not isinstance(fit, (SwagFit, LaplaceFit, LedoitWolfFit)):
        raise TypeError(f"fit must be a SwagFit, LaplaceFit or LedoitWolfFit; got {type(fit).__name__}")
    w = as_tensor(weight, "weight", min_dim=1)
    dev = w.device

    def unsupported() -> ValueError:
        return ValueError(
            f"covariance={covariance!r} with family={family!r} and fit={type(fit).__name__ if fit else None} "
            "is not supported; see latent_space's docstring for the supported combinations"
        )

    def to(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=dev, dtype=dtype)

    if covariance == "kronecker":
        if family != "gaussian":
            raise unsupported()
        if projection == "chunk_means":
            raise ValueError("covariance='kronecker' needs a matrix: use projection 'identity' or 'rows'")
        check_choice(projection, "projection", PROJECTIONS)
        if jitter:
            raise ValueError("jitter must be 0 for covariance='kronecker' (use the fit's damping or scale)")
        M = to(project(w, "rows"))
        if fit is None:
            s = check_positive(scale, "scale")
            return MatrixNormal(M, row_cov=s * s * torch.eye(M.shape[0], dtype=dtype, device=dev))
        if isinstance(fit, LaplaceFit):
            if tuple(M.shape) != fit.weight_shape:
                hint = " (bias folded: pass fold_bias(W, b))" if fit.bias else ""
                raise ValueError(f"weight matrix has shape {tuple(M.shape)} but the fit describes {fit.weight_shape}{hint}")
            return MatrixNormal(M, row_precision=to(fit.G_damped), col_precision=to(fit.A_damped))
        raise unsupported()

    x = to(project(w, projection, num_chunks)).reshape(-1)
    d = x.shape[0]
    eye = lambda: torch.eye(d, dtype=dtype, device=dev)  # noqa: E731

    def check_fit_dim(n: int) -> None:
        if n != d:
            raise ValueError(
                f"the fit describes {n} coordinates but the projected weights have {d}; "
                "use the same projection/num_chunks for the fit and the latent"
            )

    if family == "student_t":
        if covariance == "isotropic" and fit is None:
            if jitter:
                s = math.sqrt(check_positive(scale, "scale") ** 2 + jitter)
                return MultivariateStudentT(x, df=df, scale=s)
            return MultivariateStudentT(x, df=df, scale=scale)
        if covariance == "full":
            if fit is None:
                s = check_positive(scale, "scale")
                cov = s * s * eye()
            elif isinstance(fit, LedoitWolfFit):
                check_fit_dim(fit.covariance.shape[0])
                cov = to(fit.covariance)
            elif isinstance(fit, SwagFit):
                check_fit_dim(fit.mean.shape[0])
                cov = to(fit.covariance())
            else:
                raise unsupported()
            cov = cov + jitter * eye()
            return MultivariateStudentT(x, scale_tril=_cholesky(cov, "scale matrix"), df=df)
        raise unsupported()

    # gaussian
    if covariance == "isotropic":
        if fit is not None:
            raise unsupported()
        s = check_positive(scale, "scale")
        return IsotropicNormal(x, math.sqrt(s * s + jitter))
    if covariance == "diagonal":
        if fit is None:
            if isinstance(scale, (numbers.Real,)) or (isinstance(scale, torch.Tensor) and scale.numel() == 1):
                s = check_positive(scale, "scale")
                return DiagonalNormal(x, math.sqrt(s * s + jitter))
            s = to(as_tensor(scale, "scale", min_dim=1)).reshape(-1)
            if s.shape[0] != d:
                raise ValueError(f"scale must have {d} entries; got {s.shape[0]}")
            if not bool((s > 0).all()):
                raise ValueError("scale (standard deviations) must be positive")
            return DiagonalNormal(x, torch.sqrt(s * s + jitter))
        if isinstance(fit, SwagFit):
            check_fit_dim(fit.mean.shape[0])
            return DiagonalNormal(x, torch.sqrt(to(fit.diagonal_variance()) + jitter))
        if isinstance(fit, LedoitWolfFit):
            check_fit_dim(fit.covariance.shape[0])
            return DiagonalNormal(x, torch.sqrt(to(torch.diagonal(fit.covariance)) + jitter))
        raise unsupported()
    if covariance == "full":
        if fit is None:
            s = check_positive(scale, "scale")
            return MultivariateNormal(x, scale_tril=math.sqrt(s * s + jitter) * eye())
        if isinstance(fit, LaplaceFit):
            check_fit_dim(fit.G.shape[0] * fit.A.shape[0])
            P = to(fit.precision(damped=True))
            _cholesky(P, "Laplace precision")
            if jitter:
                raise ValueError("jitter must be 0 with a LaplaceFit (its damping plays that role)")
            return MultivariateNormal(x, precision_matrix=P)
        if isinstance(fit, LedoitWolfFit):
            check_fit_dim(fit.covariance.shape[0])
            cov = to(fit.covariance)
        elif isinstance(fit, SwagFit):
            check_fit_dim(fit.mean.shape[0])
            cov = to(fit.covariance())
        else:
            raise unsupported()
        return MultivariateNormal(x, scale_tril=_cholesky(cov + jitter * eye(), "covariance"))
    if covariance == "lowrank":
        if isinstance(fit, SwagFit):
            check_fit_dim(fit.mean.shape[0])
            F, D = fit.lowrank_factors()
            return LowRankMultivariateNormal(x, cov_factor=to(F), cov_diag=to(D) + jitter)
        raise ValueError("covariance='lowrank' needs fit=fit_swag(...) (a mean, diagonal and low-rank deviations)")
    raise unsupported()  # pragma: no cover


# Register the KL divergences of these laws with torch.distributions.kl_divergence as soon as
# the laws exist (latentkit.divergence imports the names defined above).
from . import divergence as _divergence  # noqa: E402,F401  (import for its side effect)
