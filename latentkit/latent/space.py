"""The single entry point :func:`latent_space` (a registry of builders) and :func:`relocate`.

:func:`latent_space` looks the pair ``(family, covariance)`` up in :data:`BUILDERS`, a dict from
the vocabularies of :mod:`latentkit.options` to small builder functions; a pair that is not there
(or a fit a builder does not take) is refused with one message. A new structure is one builder and
one registry entry.

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> wp = w * (w.abs() > 4)
>>> from latentkit.latent.space import latent_pair
>>> p, q = latent_pair(w, wp)
>>> tuple(p.event_shape) == tuple(q.event_shape)
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal

from .._validation import as_tensor, check_choice, check_nonnegative, check_positive
from ..linalg import cholesky
from ..options import COVARIANCES, FAMILIES, PROJECTIONS
from .fits import LaplaceFit, LedoitWolfFit, SwagFit
from .laws import DiagonalNormal, IsotropicNormal, MultivariateStudentT
from .matrix_normal import MatrixNormal
from .projection import fold_bias, project

__all__ = ["latent_space", "latent_pair", "relocate", "BUILDERS"]


def relocate(dist: Distribution, loc: Any) -> Distribution:
    r"""The same latent law moved to a new location: covariance / scale / df / factors kept exactly.

    For ``p = N(m, S)`` returns ``N(loc, S)`` (likewise ``t_nu(loc, Sigma)`` and ``MN(loc, U, V)``);
    ``loc`` is reshaped to the law's event shape. Used to split a KL into its mean and covariance
    parts, e.g. ``KL(p || q) = KL(relocate(q, p.loc) || q) + KL(p || relocate(q, p.loc))`` for Gaussians.

    Parameters
    ----------
    dist : torch.distributions.Distribution
        A latent law of :mod:`latentkit.latent` (or torch's full / low-rank Gaussian).
    loc : torch.Tensor or array-like
        The new location, with as many entries as the law's event (reshaped to its event shape).

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
        return MatrixNormal.from_factors(loc, dist.row_factor, dist.col_factor)
    if isinstance(dist, MultivariateStudentT):
        if dist.is_isotropic:
            return MultivariateStudentT(loc, df=dist.df, scale=dist.scale)
        return MultivariateStudentT(loc, dist.scale_tril, dist.df)
    if isinstance(dist, LowRankMultivariateNormal):
        return LowRankMultivariateNormal(loc, dist.cov_factor, dist.cov_diag)
    if isinstance(dist, MultivariateNormal):
        return MultivariateNormal(loc, scale_tril=dist.scale_tril)
    raise TypeError(f"not a latentkit latent law: {type(dist).__name__}")


@dataclass(frozen=True)
class _Request:
    """The validated arguments of one :func:`latent_space` call, as the builders see them."""

    weight: torch.Tensor
    family: str
    covariance: str
    projection: str
    num_chunks: int
    scale: Any
    df: float
    fit: Any
    jitter: float
    dtype: torch.dtype

    def to(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in the requested dtype, on the weights' device."""
        return t.to(device=self.weight.device, dtype=self.dtype)

    def eye(self, d: int) -> torch.Tensor:
        return torch.eye(d, dtype=self.dtype, device=self.weight.device)

    def unsupported(self) -> ValueError:
        fit = type(self.fit).__name__ if self.fit else None
        return ValueError(
            f"covariance={self.covariance!r} with family={self.family!r} and fit={fit} "
            "is not supported; see latent_space's docstring for the supported combinations"
        )

    def check_fit_dim(self, n: int, d: int) -> None:
        if n != d:
            raise ValueError(
                f"the fit describes {n} coordinates but the projected weights have {d}; "
                "use the same projection/num_chunks for the fit and the latent"
            )

    def fitted_covariance(self, d: int) -> torch.Tensor:
        """Dense covariance of a Ledoit-Wolf or SWAG fit (``unsupported`` for another fit)."""
        if isinstance(self.fit, LedoitWolfFit):
            self.check_fit_dim(self.fit.covariance.shape[0], d)
            return self.to(self.fit.covariance)
        if isinstance(self.fit, SwagFit):
            self.check_fit_dim(self.fit.mean.shape[0], d)
            return self.to(self.fit.covariance())
        raise self.unsupported()


_Builder = Callable[[_Request, torch.Tensor | None], Distribution]


def _gaussian_kronecker(req: _Request, _x: torch.Tensor | None) -> Distribution:
    """``MN(W, s^2 I, I)`` or, from a :class:`LaplaceFit`, ``MN(W, G_d^{-1}, A_d^{-1})``."""
    if req.projection == "chunk_means":
        raise ValueError("covariance='kronecker' needs a matrix: use projection 'identity' or 'rows'")
    check_choice(req.projection, "projection", PROJECTIONS)
    if req.jitter:
        raise ValueError("jitter must be 0 for covariance='kronecker' (use the fit's damping or scale)")
    M = req.to(project(req.weight, "rows"))
    fit = req.fit
    if fit is None:
        s = check_positive(req.scale, "scale")
        return MatrixNormal(M, row_cov=s * s * req.eye(M.shape[0]))
    if isinstance(fit, LaplaceFit):
        if tuple(M.shape) != fit.weight_shape:
            hint = " (bias folded: pass fold_bias(W, b))" if fit.bias else ""
            raise ValueError(
                f"weight matrix has shape {tuple(M.shape)} but the fit describes {fit.weight_shape}{hint}"
            )
        return MatrixNormal(M, row_precision=req.to(fit.G_damped), col_precision=req.to(fit.A_damped))
    raise req.unsupported()


def _student_t_isotropic(req: _Request, x: torch.Tensor) -> Distribution:
    """``t_nu(x, s^2 I)`` (``s^2 + jitter`` with a jitter)."""
    if req.fit is not None:
        raise req.unsupported()
    if req.jitter:
        s = math.sqrt(check_positive(req.scale, "scale") ** 2 + req.jitter)
        return MultivariateStudentT(x, df=req.df, scale=s)
    return MultivariateStudentT(x, df=req.df, scale=req.scale)


def _student_t_full(req: _Request, x: torch.Tensor) -> Distribution:
    """``t_nu(x, Sigma + jitter I)``, ``Sigma = s^2 I`` or a Ledoit-Wolf / SWAG covariance."""
    d = x.shape[0]
    if req.fit is None:
        s = check_positive(req.scale, "scale")
        cov = s * s * req.eye(d)
    else:
        cov = req.fitted_covariance(d)
    cov = cov + req.jitter * req.eye(d)
    return MultivariateStudentT(x, scale_tril=cholesky(cov, "scale matrix"), df=req.df)


def _gaussian_isotropic(req: _Request, x: torch.Tensor) -> Distribution:
    """``N(x, (s^2 + jitter) I)``."""
    if req.fit is not None:
        raise req.unsupported()
    s = check_positive(req.scale, "scale")
    return IsotropicNormal(x, math.sqrt(s * s + req.jitter))


def _gaussian_diagonal(req: _Request, x: torch.Tensor) -> Distribution:
    """``N(x, diag(s^2) + jitter I)`` from ``scale``, a SWAG-diagonal or a Ledoit-Wolf diagonal."""
    fit, jitter, d = req.fit, req.jitter, x.shape[0]
    if fit is None:
        scale = req.scale
        if isinstance(scale, (numbers.Real,)) or (isinstance(scale, torch.Tensor) and scale.numel() == 1):
            s = check_positive(scale, "scale")
            return DiagonalNormal(x, math.sqrt(s * s + jitter))
        s = req.to(as_tensor(scale, "scale", min_dim=1)).reshape(-1)
        if s.shape[0] != d:
            raise ValueError(f"scale must have {d} entries; got {s.shape[0]}")
        if not bool((s > 0).all()):
            raise ValueError("scale (standard deviations) must be positive")
        return DiagonalNormal(x, torch.sqrt(s * s + jitter))
    if isinstance(fit, SwagFit):
        req.check_fit_dim(fit.mean.shape[0], d)
        return DiagonalNormal(x, torch.sqrt(req.to(fit.diagonal_variance()) + jitter))
    if isinstance(fit, LedoitWolfFit):
        req.check_fit_dim(fit.covariance.shape[0], d)
        return DiagonalNormal(x, torch.sqrt(req.to(torch.diagonal(fit.covariance)) + jitter))
    raise req.unsupported()


def _gaussian_full(req: _Request, x: torch.Tensor) -> Distribution:
    """Dense ``N(x, S)``: ``s^2 I``, a Laplace precision, or a Ledoit-Wolf / SWAG covariance."""
    fit, jitter, d = req.fit, req.jitter, x.shape[0]
    if fit is None:
        s = check_positive(req.scale, "scale")
        return MultivariateNormal(x, scale_tril=math.sqrt(s * s + jitter) * req.eye(d))
    if isinstance(fit, LaplaceFit):
        req.check_fit_dim(fit.G.shape[0] * fit.A.shape[0], d)
        P = req.to(fit.precision(damped=True))
        cholesky(P, "Laplace precision")
        if jitter:
            raise ValueError("jitter must be 0 with a LaplaceFit (its damping plays that role)")
        return MultivariateNormal(x, precision_matrix=P)
    cov = req.fitted_covariance(d)
    return MultivariateNormal(x, scale_tril=cholesky(cov + jitter * req.eye(d), "covariance"))


def _gaussian_lowrank(req: _Request, x: torch.Tensor) -> Distribution:
    """SWAG ``N(x, F F^T + diag(D) + jitter I)`` (no d x d matrix)."""
    fit = req.fit
    if isinstance(fit, SwagFit):
        req.check_fit_dim(fit.mean.shape[0], x.shape[0])
        F, D = fit.lowrank_factors()
        return LowRankMultivariateNormal(x, cov_factor=req.to(F), cov_diag=req.to(D) + req.jitter)
    raise ValueError(
        "covariance='lowrank' needs fit=fit_swag(...) (a mean, diagonal and low-rank deviations)"
    )


#: ``(family, covariance) -> builder(request, projected location)``; pairs not listed are refused.
BUILDERS: dict[tuple[str, str], _Builder] = {
    ("gaussian", "isotropic"): _gaussian_isotropic,
    ("gaussian", "diagonal"): _gaussian_diagonal,
    ("gaussian", "full"): _gaussian_full,
    ("gaussian", "lowrank"): _gaussian_lowrank,
    ("gaussian", "kronecker"): _gaussian_kronecker,
    ("student_t", "isotropic"): _student_t_isotropic,
    ("student_t", "full"): _student_t_full,
}
#: Covariances whose builder takes the weight matrix itself (no vector projection first).
_MATRIX_COVARIANCES = ("kronecker",)


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
    remainder: str = "split",
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
    projection, num_chunks, remainder
        See :func:`project` (``remainder``: chunk means' remainder policy, ``"split"`` or
        ``"reference"``). ``kronecker`` uses the matrix ``w.reshape(w.shape[0], -1)`` and needs
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
    req = _Request(w, family, covariance, projection, num_chunks, scale, df, fit, jitter, dtype)
    builder = BUILDERS.get((family, covariance))
    if covariance in _MATRIX_COVARIANCES:
        if builder is None:
            raise req.unsupported()
        return builder(req, None)
    x = req.to(project(w, projection, num_chunks, remainder=remainder)).reshape(-1)
    if builder is None:
        raise req.unsupported()
    return builder(req, x)


def latent_pair(
    weight: Any, pruned: Any, *, bias: Any = None, **kwargs: Any
) -> tuple[Distribution, Distribution]:
    r"""The latent laws of a dense and a pruned layer built with the same settings (the paper's setting).

    ``(latent_space(w, **kwargs), latent_space(w~, **kwargs))``; with ``bias`` (C,) given, it is folded
    into both as a last column first (:func:`~latentkit.latent.fold_bias`: :math:`[W, b]`,
    :math:`[\tilde W, b]`), as a latent fitted on :math:`[W, b]` (a Laplace fit with ``bias=True``)
    needs. With a shared covariance the AP3 of the pair is
    :math:`\tfrac12 D^\top \Sigma^{-1} D` with :math:`D` the change of the projected weights.

    Parameters
    ----------
    weight, pruned : Tensor of one shape
        Dense and pruned weights.
    bias : Tensor (C,), optional
        Folded into both (the bias is not pruned, so it adds nothing to :math:`D`).
    **kwargs
        :func:`latent_space` arguments (family, covariance, scale, df, fit, projection, ...).

    Returns
    -------
    (Distribution, Distribution)
    """
    if bias is not None:
        weight, pruned = fold_bias(weight, bias), fold_bias(pruned, bias)
    return latent_space(weight, **kwargs), latent_space(pruned, **kwargs)
