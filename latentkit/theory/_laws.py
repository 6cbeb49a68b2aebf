"""Validation and structure of the latent laws the theory checks take (private to :mod:`latentkit.theory`).

One place for what every check asks of its ``p`` and ``q``: a :class:`~torch.distributions.Distribution`
with an empty batch shape, the same event shape, Gaussian where the claim is about Gaussians, a shared
covariance where the claim assumes one, and the extreme eigenvalues of that covariance.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal

from ..divergence import covariance_operator
from ..latent import DiagonalNormal, IsotropicNormal, MatrixNormal, MultivariateStudentT

__all__ = ["covariance_eigen_range"]

#: The Gaussian latent laws (latentkit's structured ones and torch's dense/low-rank ones).
GAUSSIAN_LAWS = (IsotropicNormal, DiagonalNormal, MatrixNormal, MultivariateNormal, LowRankMultivariateNormal)


def is_gaussian(dist: Distribution) -> bool:
    """Whether ``dist`` is one of :data:`GAUSSIAN_LAWS`."""
    return isinstance(dist, GAUSSIAN_LAWS)


def check_dist(dist: Any, name: str) -> Distribution:
    """Return ``dist`` if it is a Distribution with an empty batch shape, else raise TypeError/ValueError."""
    if not isinstance(dist, Distribution):
        raise TypeError(
            f"{name} must be a torch.distributions.Distribution (e.g. from latent_space); "
            f"got {type(dist).__name__}"
        )
    if len(dist.batch_shape) != 0:
        raise ValueError(f"{name} must have an empty batch_shape; got {tuple(dist.batch_shape)}")
    return dist


def check_pair(p: Any, q: Any, *, same_event: bool = True) -> tuple[Distribution, Distribution]:
    """Validate ``p`` and ``q`` (see :func:`check_dist`): same device, same dtype and, with
    ``same_event``, the same event shape (TypeError/ValueError naming the argument otherwise)."""
    check_dist(p, "p")
    check_dist(q, "q")
    if same_event:
        check_same_event(p, q)
    mp, mq = location(p), location(q)
    if mp.device != mq.device:
        raise ValueError(f"p is on {mp.device} but q is on {mq.device}; build both latents on one device")
    if mp.dtype != mq.dtype:
        raise TypeError(f"p and q must have the same dtype; got {mp.dtype} and {mq.dtype}")
    return p, q


def location(dist: Distribution) -> torch.Tensor:
    """The location tensor of a latent law (its ``loc``; ``mean`` for other laws), for device and dtype.

    ``loc`` rather than ``mean`` so that a Student-t law with df <= 1 (no mean) is still accepted.
    """
    if isinstance(dist, (*GAUSSIAN_LAWS, MultivariateStudentT)):
        return dist.loc
    return dist.mean


def check_same_event(p: Distribution, q: Distribution) -> None:
    """Raise ValueError unless ``p`` and ``q`` have the same event shape."""
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(
            f"p and q have different event shapes {tuple(p.event_shape)} and {tuple(q.event_shape)}"
        )


def flat_mean(dist: Distribution) -> torch.Tensor:
    """The mean of ``dist`` flattened to ``(d,)``, float64."""
    return dist.mean.reshape(-1).to(torch.float64)


def covariance_eigen_range(dist: Distribution) -> tuple[float, float]:
    """Smallest and largest eigenvalue :math:`(\\lambda_{\\min}, \\lambda_{\\max})` of a Gaussian latent's
    covariance.

    Isotropic / diagonal: from the variances (O(d)); matrix-normal :math:`U \\otimes V`: products of the
    extreme eigenvalues of ``U`` and ``V`` (eigenvalues of a Kronecker product are the pairwise products);
    full and low-rank: ``torch.linalg.eigvalsh`` of the dense covariance (small d). The covariance comes
    from :func:`latentkit.divergence.covariance_operator`, the one home of a law's covariance structure.

    Raises
    ------
    TypeError
        If ``dist`` is not a latentkit Gaussian latent.
    """
    check_dist(dist, "dist")
    if not is_gaussian(dist):
        raise TypeError(f"covariance_eigen_range needs a Gaussian latent; got {type(dist).__name__}")
    if isinstance(dist, MatrixNormal):
        u = torch.linalg.eigvalsh(dist.row_cov.to(torch.float64))
        v = torch.linalg.eigvalsh(dist.col_cov.to(torch.float64))
        return float(u.min() * v.min()), float(u.max() * v.max())
    op = covariance_operator(dist)
    if op.kind in ("iso", "diag"):
        var = op.diagonal().reshape(-1).to(torch.float64)
        return float(var.min()), float(var.max())
    ev = torch.linalg.eigvalsh(op.dense().to(torch.float64))
    return float(ev.min()), float(ev.max())


def _covariance_parts(dist: Distribution) -> list[torch.Tensor]:
    """The tensors that determine the covariance of a Gaussian latent of ``dist``'s family."""
    if isinstance(dist, (IsotropicNormal, DiagonalNormal)):
        return [dist.variance]
    if isinstance(dist, MatrixNormal):
        return [dist.row_cov, dist.col_cov]
    if isinstance(dist, LowRankMultivariateNormal):
        return [dist.cov_factor, dist.cov_diag]
    return [dist.scale_tril]


def check_shared_covariance(p: Distribution, q: Distribution) -> None:
    """Raise ValueError unless p and q are Gaussian latents of one type with the same covariance."""
    if not (is_gaussian(p) and is_gaussian(q)):
        raise ValueError(
            f"this claim is about Gaussian latents; got {type(p).__name__} and {type(q).__name__}"
        )
    if type(p) is not type(q):
        raise ValueError(
            f"p and q must be the same latent family; got {type(p).__name__} and {type(q).__name__}"
        )
    check_same_event(p, q)
    for a, b in zip(_covariance_parts(p), _covariance_parts(q)):
        same = a.shape == b.shape and torch.allclose(
            a.to(torch.float64), b.to(torch.float64), rtol=1e-10, atol=0.0
        )
        if not same:
            raise ValueError(
                "p and q must share one covariance (build both with the same latent_space arguments)"
            )
