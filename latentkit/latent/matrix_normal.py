"""The matrix normal law ``MN(M, U, V)`` with Kronecker-structured covariance.

Examples
--------
>>> import torch
>>> from latentkit.latent.matrix_normal import MatrixNormal
>>> p = MatrixNormal(torch.zeros(2, 3), torch.eye(2), torch.eye(3))
>>> tuple(p.event_shape), tuple(p.sample().shape)
((2, 3), (2, 3))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import Distribution, MultivariateNormal, constraints

from .._validation import check_same_device
from ..linalg import KroneckerCovariance, KroneckerFactor, check_tril, cholesky
from ._args import _check_same_dtype, _loc_arg, _matrix_arg

__all__ = ["MatrixNormal"]

_LOG_2PI = math.log(2.0 * math.pi)


def _make_factor(n: int, cov: Any, tril: Any, prec: Any, side: str, like: torch.Tensor) -> KroneckerFactor:
    given = [(k, v) for k, v in (("cov", cov), ("scale_tril", tril), ("precision", prec)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of {side}_cov, {side}_scale_tril, {side}_precision")
    if not given:
        return KroneckerFactor("identity", n)
    kind, val = given[0]
    M = _matrix_arg(val, f"{side}_{kind}", like)
    check_same_device(like, M, "loc", f"{side}_{kind}")
    _check_same_dtype(like, M, "loc", f"{side}_{kind}")
    if M.dim() != 2 or tuple(M.shape) != (n, n):
        raise ValueError(f"{side}_{kind} must be {n} x {n} to match loc; got {tuple(M.shape)}")
    if kind == "scale_tril":
        return KroneckerFactor("cov", n, check_tril(M, f"{side}_scale_tril", n))
    L = cholesky(M, f"{side}_{kind}")
    return KroneckerFactor("cov" if kind == "cov" else "prec", n, L)


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
    validate_args : bool, optional
        ``True``: check ``loc`` against ``arg_constraints`` now and every ``log_prob`` value against
        ``support``, as torch distributions do. ``None``/``False`` (default): no extra checks
        (the constructor always validates its arguments).

    Notes
    -----
    ``log p(X) = -1/2 tr(U^{-1} (X-M) V^{-1} (X-M)^T) - rc/2 log 2 pi - c/2 log det U - r/2 log det V``.
    Only ``r x r`` and ``c x c`` matrices are ever formed.
    """

    arg_constraints: dict = {"loc": constraints.independent(constraints.real, 2)}
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
        validate_args: bool | None = None,
    ) -> None:
        loc = _loc_arg(loc, min_dim=2)
        if loc.dim() != 2:
            raise ValueError(f"loc must be a matrix (r, c); got shape {tuple(loc.shape)}")
        r, c = loc.shape
        self.loc = loc
        self._row = _make_factor(r, row_cov, row_scale_tril, row_precision, "row", loc)
        self._col = _make_factor(c, col_cov, col_scale_tril, col_precision, "col", loc)
        super().__init__(torch.Size(), torch.Size([r, c]), validate_args=bool(validate_args))

    @classmethod
    def from_factors(cls, loc: torch.Tensor, row: KroneckerFactor, col: KroneckerFactor) -> MatrixNormal:
        """A matrix normal from already-validated Kronecker factors (no copy, no check)."""
        obj = cls.__new__(cls)
        obj.loc, obj._row, obj._col = loc, row, col
        Distribution.__init__(obj, torch.Size(), torch.Size(loc.shape), validate_args=False)
        return obj

    @property
    def row_factor(self) -> KroneckerFactor:
        """The row covariance ``U`` as a :class:`~latentkit.linalg.KroneckerFactor`."""
        return self._row

    @property
    def col_factor(self) -> KroneckerFactor:
        """The column covariance ``V`` as a :class:`~latentkit.linalg.KroneckerFactor`."""
        return self._col

    @property
    def covariance_operator(self) -> KroneckerCovariance:
        """``kron(U, V)`` as a :class:`~latentkit.linalg.KroneckerCovariance` (law's dtype)."""
        return KroneckerCovariance(self._row, self._col, self.loc)

    @property
    def dim(self) -> int:
        return int(self.loc.numel())

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    def _dense_or_eye(self, f: KroneckerFactor) -> torch.Tensor:
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
        du = (
            torch.diagonal(self.row_cov)
            if self._row.kind != "identity"
            else self.loc.new_ones(self.loc.shape[0])
        )
        dv = (
            torch.diagonal(self.col_cov)
            if self._col.kind != "identity"
            else self.loc.new_ones(self.loc.shape[1])
        )
        return du[:, None] * dv[None, :]

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """Dense ``kron(U, V)`` (rc x rc), for small sizes only."""
        return torch.kron(self.row_cov.contiguous(), self.col_cov.contiguous())

    def to_multivariate_normal(self) -> MultivariateNormal:
        """The same law as a :class:`torch.distributions.MultivariateNormal` on ``vec(X)`` (small sizes)."""
        return MultivariateNormal(
            self.loc.reshape(-1),
            scale_tril=torch.kron(self.row_scale_tril.contiguous(), self.col_scale_tril.contiguous()),
        )

    def _maha(self, D: torch.Tensor) -> torch.Tensor:
        """``tr(U^{-1} D V^{-1} D^T)`` for ``D`` of shape ``(..., r, c)``."""
        return self.covariance_operator.mahalanobis(D)

    def _logdet(self) -> torch.Tensor:
        return self.covariance_operator.logdet()

    def rsample(
        self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        Z = torch.randn(shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        Y = self._row.half_apply(Z)  # S_U Z
        Y = self._col.half_apply(Y.transpose(-1, -2)).transpose(-1, -2)  # S_U Z S_V^T
        return self.loc + Y

    def sample(
        self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError("value must be a torch.Tensor")
        if value.dim() < 2 or tuple(value.shape[-2:]) != tuple(self.loc.shape):
            raise ValueError(
                f"value must end with event shape {tuple(self.loc.shape)}; got {tuple(value.shape)}"
            )
        check_same_device(value, self.loc, "value", "loc")
        if self._validate_args:
            self._validate_sample(value)
        D = value.to(self.loc.dtype) - self.loc
        return -0.5 * self._maha(D) - 0.5 * self.dim * _LOG_2PI - 0.5 * self._logdet()

    def entropy(self) -> torch.Tensor:
        return 0.5 * self.dim * (1.0 + _LOG_2PI) + 0.5 * self._logdet()

    def __repr__(self) -> str:
        r, c = self.loc.shape
        return (
            f"MatrixNormal(r={r}, c={c}, row={self._row.kind}, col={self._col.kind}, dtype={self.loc.dtype})"
        )
