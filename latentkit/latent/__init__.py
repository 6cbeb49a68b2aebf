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

Layout
------
:mod:`~latentkit.latent.projection` (``project``, ``fold_bias``),
:mod:`~latentkit.latent.laws` (``IsotropicNormal``, ``DiagonalNormal``, ``MultivariateStudentT``,
``sample_standard_gamma``), :mod:`~latentkit.latent.matrix_normal` (``MatrixNormal``),
:mod:`~latentkit.latent.fits` (SWAG, Laplace/K-FAC, Ledoit-Wolf) and
:mod:`~latentkit.latent.space` (``latent_space``, a registry of builders, and ``relocate``). The
covariance structures live in :mod:`latentkit.linalg`; every law exposes its covariance (or scale
matrix) as a linalg operator (``covariance_operator`` / ``scale_operator``; ``row_factor`` and
``col_factor`` for :class:`MatrixNormal`). The KL divergences are registered with
:func:`torch.distributions.kl_divergence` when :mod:`latentkit.divergence` is imported (as torch
registers its own pairs when ``torch.distributions`` is imported); this package does not import it,
so the layers run one way.

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> from latentkit.latent import latent_space
>>> p = latent_space(w, 'gaussian', 'isotropic')
>>> type(p).__name__, tuple(p.event_shape)
('IsotropicNormal', (12,))
"""

from __future__ import annotations

from torch.distributions import LowRankMultivariateNormal, MultivariateNormal

from ..options import COVARIANCES, FAMILIES, PROJECTIONS
from .fits import LaplaceFit, LedoitWolfFit, SwagFit, fit_laplace_linear, fit_swag, ledoit_wolf
from .laws import DiagonalNormal, IsotropicNormal, MultivariateStudentT, sample_standard_gamma
from .matrix_normal import MatrixNormal
from .projection import fold_bias, project
from .space import latent_pair, latent_space, relocate

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
    "latent_pair",
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
