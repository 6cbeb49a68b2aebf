"""Pieces shared by the divergences: a float64 view of every Gaussian law, pair checks, errors."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal

from .._validation import check_int, check_same_device
from ..latent import DiagonalNormal, IsotropicNormal, MatrixNormal
from ..linalg import CovarianceOperator, LowRankCovariance, TrilCovariance

__all__ = ["UnsupportedKLError", "KLOverflowError", "GaussianView", "covariance_operator", "dense_moments"]

_F64 = torch.float64
_DENSE_LIMIT = 4096  # largest d for which hellinger/wasserstein2 fall back to dense matrices


class UnsupportedKLError(ValueError, NotImplementedError):
    """This pair of laws has no exact KL here (use :func:`kl_monte_carlo`)."""


class KLOverflowError(OverflowError, ValueError):
    """The KL of this pair exceeds the float64 range (also a ``ValueError`` for existing handlers)."""


def _no_batch(dist: Distribution) -> None:
    if len(dist.batch_shape) != 0:
        raise ValueError(f"batched laws are not supported; got batch_shape {tuple(dist.batch_shape)}")


def covariance_operator(dist: Distribution) -> CovarianceOperator:
    """The covariance of a Gaussian latent law as a :mod:`latentkit.linalg` operator (law's dtype).

    latentkit's laws give their own ``covariance_operator``; torch's ``MultivariateNormal`` becomes
    a :class:`~latentkit.linalg.TrilCovariance` and ``LowRankMultivariateNormal`` a
    :class:`~latentkit.linalg.LowRankCovariance`.

    Raises
    ------
    TypeError
        ``dist`` is not a Gaussian latent law.
    ValueError
        A torch law with a batch shape.
    """
    if isinstance(dist, (IsotropicNormal, DiagonalNormal, MatrixNormal)):
        return dist.covariance_operator
    if isinstance(dist, LowRankMultivariateNormal):
        _no_batch(dist)
        return LowRankCovariance(dist.cov_factor, dist.cov_diag)
    if isinstance(dist, MultivariateNormal):
        _no_batch(dist)
        return TrilCovariance(dist._unbroadcasted_scale_tril)
    raise TypeError(f"not a Gaussian latent law: {type(dist).__name__}")


class GaussianView:
    """Float64 view of a Gaussian law: flattened (row-major) mean ``loc`` and covariance ``cov``."""

    def __init__(self, dist: Distribution) -> None:
        self.dist = dist
        self.cov = covariance_operator(dist).to(_F64)
        self.loc = dist.loc.to(_F64).reshape(-1)
        self.kind = self.cov.kind
        self.d = self.loc.shape[0]


#: Geometric-mean standard deviations outside ``2^(+-_BALANCE_LOG2)`` are rescaled first.
_BALANCE_LOG2 = 100


def balanced(gp: GaussianView, gq: GaussianView) -> tuple[GaussianView, GaussianView, float]:
    """Both views multiplied by one power of two ``c`` (means and standard deviations; exact) so that
    ``p``'s geometric-mean standard deviation is about 1, when it is beyond ``2^+-100``; else the views
    themselves and ``c = 1`` (always for two isotropic/diagonal laws, whose formulas work per
    coordinate). KL and Hellinger are invariant under this; W2 is multiplied by ``c``."""
    if gp.kind in ("iso", "diag") and gq.kind in ("iso", "diag"):
        return gp, gq, 1.0  # their formulas work per coordinate from the standard deviations
    k = round(gp.cov.log_std() / math.log(2.0))
    if abs(k) <= _BALANCE_LOG2:
        return gp, gq, 1.0
    c = math.ldexp(1.0, -k)
    return _scaled_view(gp, c), _scaled_view(gq, c), c


def _scaled_view(g: GaussianView, c: float) -> GaussianView:
    out = GaussianView.__new__(GaussianView)
    out.dist, out.cov, out.loc = g.dist, g.cov.scaled(c), g.loc * c
    out.kind, out.d = out.cov.kind, g.d
    return out


def dense_moments(dist: Distribution, max_dim: int = _DENSE_LIMIT) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``m`` (d,) and dense covariance ``S`` (d, d), float64, of a Gaussian latent law.

    For checks against textbook formulas on small layers (``S`` is formed: ``d <= max_dim``).

    Raises
    ------
    TypeError
        ``dist`` is not a Gaussian latent law.
    ValueError
        ``d > max_dim``.
    """
    if not isinstance(dist, Distribution):
        raise TypeError(f"dist must be a torch Distribution; got {type(dist).__name__}")
    max_dim = check_int(max_dim, "max_dim", minimum=1)
    d = math.prod(tuple(dist.event_shape)) if len(dist.event_shape) else 1
    if d > max_dim:
        raise ValueError(
            f"a dense covariance of dimension {d} > max_dim={max_dim} is not built; use a smaller layer"
        )
    g = GaussianView(dist)
    return g.loc, g.cov.dense()


def _check_law(dist: Any, name: str) -> None:
    """``TypeError`` naming ``name`` unless ``dist`` is a torch distribution."""
    if not isinstance(dist, Distribution):
        raise TypeError(
            f"{name} must be a torch.distributions.Distribution (a latent law); got {type(dist).__name__}"
        )


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
        raise ValueError(
            "KL is not finite: a covariance is singular or ill-conditioned (or its variances under/overflow "
            "float64); add a jitter"
        )
    # float64 roundoff can make KL(p, p') a hair below 0 when p' = p up to rounding
    if float(val) < 0 and float(val) > -1e-9 * float(scale):
        val = torch.zeros_like(val)
    return val
