"""Vector latent laws: isotropic and diagonal Gaussians, the multivariate Student-t, and
Gamma draws driven by an explicit generator.

Examples
--------
>>> import torch
>>> from latentkit.latent.laws import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(3), 2.0)
>>> tuple(p.event_shape)
(3,)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch.distributions import Distribution, constraints

from .._validation import check_positive, check_same_device
from ..linalg import DiagonalCovariance, IsotropicCovariance, TrilCovariance, check_tril, solve_tril
from ._args import _check_same_dtype, _like_arg, _loc_arg, _matrix_arg, _scalar_or_tensor

__all__ = ["IsotropicNormal", "DiagonalNormal", "MultivariateStudentT", "sample_standard_gamma"]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# random numbers with an explicit generator
# --------------------------------------------------------------------------------------------
def sample_standard_gamma(
    alpha: float,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
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
def _vector_loc(loc: Any) -> torch.Tensor:
    """``loc`` as the mean vector (d,) of a law on vectors; ``ValueError`` for any other shape."""
    loc = _loc_arg(loc, min_dim=1)
    if loc.dim() != 1:
        raise ValueError(f"loc must be a vector (d,); got shape {tuple(loc.shape)}")
    return loc


class _VectorLaw(Distribution):
    """Shared pieces: one event of size ``d``, no batch dimensions, sampling with a generator."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def sample(
        self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
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
        if tuple(value.shape[value.dim() - n :]) != tuple(self.event_shape) or value.dim() < n:
            raise ValueError(
                f"value must end with event shape {tuple(self.event_shape)}; got {tuple(value.shape)}"
            )
        check_same_device(value, self.loc, "value", "loc")
        if self._validate_args:
            self._validate_sample(value)
        return value.to(self.loc.dtype)


class _IndependentNormal(_VectorLaw):
    """A Gaussian with independent coordinates, ``loc + scale * eps`` (``scale`` scalar or (d,))."""

    @property
    def mean(self) -> torch.Tensor:
        """``loc``."""
        return self.loc

    def rsample(
        self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Reparametrised samples ``loc + scale * eps``, ``eps ~ N(0, I)`` from ``generator``."""
        shape = torch.Size(sample_shape) + self.event_shape
        eps = torch.randn(shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + self.scale * eps


class IsotropicNormal(_IndependentNormal):
    r"""Gaussian ``N(loc, scale^2 I_d)``.

    Parameters
    ----------
    loc : Tensor (d,)
        Mean.
    scale : positive float or 0-dim tensor
        Standard deviation ``s`` of every coordinate (covariance ``s^2 I``).
    validate_args : bool, optional
        ``True``: check the parameters against ``arg_constraints`` now and every ``log_prob``
        value against ``support``, as torch distributions do. ``None``/``False`` (default): no
        extra checks (the constructor always validates its arguments).

    Notes
    -----
    ``log p(x) = -|x - loc|^2 / (2 s^2) - d log s - d/2 log(2 pi)``;
    entropy ``d/2 (1 + log 2 pi) + d log s``.
    """

    arg_constraints = {"loc": constraints.real_vector, "scale": constraints.positive}

    def __init__(self, loc: Any, scale: Any = 1.0, validate_args: bool | None = None) -> None:
        loc = _vector_loc(loc)
        self.loc = loc
        self.scale = _scalar_or_tensor(scale, "scale", loc)
        super().__init__(torch.Size(), torch.Size([loc.shape[0]]), validate_args=bool(validate_args))

    @property
    def variance(self) -> torch.Tensor:
        return (self.scale**2).expand(self.loc.shape)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """Dense ``s^2 I`` (d x d), for small ``d`` only."""
        return self.scale**2 * torch.eye(self.dim, dtype=self.loc.dtype, device=self.loc.device)

    @property
    def covariance_operator(self) -> IsotropicCovariance:
        """``s^2 I`` as a :class:`~latentkit.linalg.IsotropicCovariance` (law's dtype, no d x d matrix)."""
        return IsotropicCovariance(self.scale, self.dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        x = self._check_value(value)
        q = ((x - self.loc) ** 2).sum(-1) / self.scale**2
        return -0.5 * q - self.dim * (torch.log(self.scale) + 0.5 * _LOG_2PI)

    def entropy(self) -> torch.Tensor:
        return self.dim * (0.5 * (1.0 + _LOG_2PI) + torch.log(self.scale))

    def __repr__(self) -> str:
        return f"IsotropicNormal(d={self.dim}, scale={float(self.scale):.4g}, dtype={self.loc.dtype})"


class DiagonalNormal(_IndependentNormal):
    r"""Gaussian ``N(loc, diag(scale^2))``.

    Parameters
    ----------
    loc : Tensor (d,)
    scale : Tensor (d,) or positive scalar
        Per-coordinate standard deviations (a scalar is broadcast).
    validate_args : bool, optional
        ``True``: check the parameters against ``arg_constraints`` now and every ``log_prob``
        value against ``support``, as torch distributions do. ``None``/``False`` (default): no
        extra checks (the constructor always validates its arguments).

    Notes
    -----
    ``log p(x) = -1/2 sum_i (x_i - loc_i)^2 / s_i^2 - sum_i log s_i - d/2 log(2 pi)``.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "scale": constraints.independent(constraints.positive, 1),
    }

    def __init__(self, loc: Any, scale: Any = 1.0, validate_args: bool | None = None) -> None:
        loc = _vector_loc(loc)
        if (
            isinstance(scale, torch.Tensor)
            and scale.numel() > 1
            or not isinstance(scale, (numbers.Real, torch.Tensor))
        ):
            s = _like_arg(scale, "scale", loc)
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
        super().__init__(torch.Size(), torch.Size([loc.shape[0]]), validate_args=bool(validate_args))

    @property
    def variance(self) -> torch.Tensor:
        return self.scale**2

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """Dense ``diag(scale^2)`` (d x d), for small ``d`` only."""
        return torch.diag(self.scale**2)

    @property
    def covariance_operator(self) -> DiagonalCovariance:
        """``diag(s^2)`` as a :class:`~latentkit.linalg.DiagonalCovariance` (law's dtype)."""
        return DiagonalCovariance(self.scale)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        x = self._check_value(value)
        q = (((x - self.loc) / self.scale) ** 2).sum(-1)
        return -0.5 * q - torch.log(self.scale).sum() - 0.5 * self.dim * _LOG_2PI

    def entropy(self) -> torch.Tensor:
        return 0.5 * self.dim * (1.0 + _LOG_2PI) + torch.log(self.scale).sum()

    def __repr__(self) -> str:
        return f"DiagonalNormal(d={self.dim}, dtype={self.loc.dtype})"


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
    validate_args : bool, optional
        ``True``: check the parameters against ``arg_constraints`` now and every ``log_prob``
        value against ``support``, as torch distributions do. ``None``/``False`` (default): no
        extra checks (the constructor always validates its arguments).

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
        validate_args: bool | None = None,
    ) -> None:
        loc = _vector_loc(loc)
        if df is None:
            raise TypeError("MultivariateStudentT needs df (degrees of freedom)")
        self.df = check_positive(df, "df")
        d = loc.shape[0]
        if scale_tril is not None and scale is not None:
            raise ValueError("give either scale_tril or scale, not both")
        self.loc = loc
        if scale_tril is not None:
            L = _matrix_arg(scale_tril, "scale_tril", loc)
            check_same_device(loc, L, "loc", "scale_tril")
            _check_same_dtype(loc, L, "loc", "scale_tril")
            self._scale_tril: torch.Tensor | None = check_tril(L, "scale_tril", d)
            self.scale: torch.Tensor | None = None
        else:
            self._scale_tril = None
            self.scale = _scalar_or_tensor(1.0 if scale is None else scale, "scale", loc)
        super().__init__(torch.Size(), torch.Size([d]), validate_args=bool(validate_args))

    @property
    def arg_constraints(self) -> dict:  # type: ignore[override]
        """``loc`` real; ``scale`` positive (isotropic) or ``scale_tril`` a Cholesky factor."""
        if self._scale_tril is None:
            return {"loc": constraints.real_vector, "scale": constraints.positive}
        return {"loc": constraints.real_vector, "scale_tril": constraints.lower_cholesky}

    @property
    def is_isotropic(self) -> bool:
        """True when the scale matrix is ``s^2 I`` (stored as the scalar ``s``)."""
        return self._scale_tril is None

    @property
    def scale_operator(self) -> IsotropicCovariance | TrilCovariance:
        """The scale matrix ``Sigma`` as a :mod:`latentkit.linalg` operator (law's dtype)."""
        if self._scale_tril is None:
            return IsotropicCovariance(self.scale, self.dim)
        return TrilCovariance(self._scale_tril)

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
            raise ValueError(
                f"the variance of a Student-t law is infinite/undefined for df <= 2 (df={self.df})"
            )
        f = self.df / (self.df - 2.0)
        if self._scale_tril is None:
            return (f * self.scale**2).expand(self.loc.shape)
        return f * (self._scale_tril**2).sum(-1)

    @property
    def covariance_matrix(self) -> torch.Tensor:
        if self.df <= 2:
            raise ValueError(
                f"the covariance of a Student-t law is infinite/undefined for df <= 2 (df={self.df})"
            )
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
        z = solve_tril(self._scale_tril, diff.reshape(-1, self.dim).T)
        return (z**2).sum(0).reshape(shp[:-1])

    def rsample(
        self, sample_shape: Sequence[int] = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        z = torch.randn(
            sample_shape + self.event_shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device
        )
        w = 2.0 * sample_standard_gamma(
            0.5 * self.df, sample_shape, generator=generator, dtype=self.loc.dtype, device=self.loc.device
        )
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

        const = (
            -math.lgamma(0.5 * (nu + d))
            + math.lgamma(0.5 * nu)
            + 0.5 * d * math.log(nu * math.pi)
            + 0.5 * (nu + d) * (float(digamma(0.5 * (nu + d))) - float(digamma(0.5 * nu)))
        )
        return const + self._half_logdet()

    def __repr__(self) -> str:
        sc = f"scale={float(self.scale):.4g}" if self._scale_tril is None else "scale_tril"
        return f"MultivariateStudentT(d={self.dim}, df={self.df:g}, {sc}, dtype={self.loc.dtype})"
