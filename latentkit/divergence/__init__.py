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

Layout: :mod:`~latentkit.divergence.gaussian` (closed-form Gaussian KL),
:mod:`~latentkit.divergence.student_t` (exact Student-t KL), :mod:`~latentkit.divergence.monte_carlo`
and :mod:`~latentkit.divergence.distances` (Hellinger, W2, TV bounds); the covariance structures
are the operators of :mod:`latentkit.linalg`. Registration runs when this package is imported
(torch's way), not when the laws are defined.

Examples
--------
>>> import torch
>>> from latentkit.divergence import kl
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> q = IsotropicNormal(torch.ones(2, dtype=torch.float64), 1.0)
>>> round(float(kl(p, q)), 6)
1.0
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal
from torch.distributions.kl import register_kl

from ..latent import DiagonalNormal, IsotropicNormal, MatrixNormal, MultivariateStudentT
from ._common import KLOverflowError, UnsupportedKLError, covariance_operator, dense_moments
from .distances import TVBounds, hellinger, tv_bounds, wasserstein2
from .equal_scale import kl_from_squared_distance
from .gaussian import gaussian_kl
from .monte_carlo import MonteCarloKL, kl_monte_carlo
from .student_t import student_t_kl, student_t_kl_from_distance

__all__ = [
    "kl",
    "gaussian_kl",
    "student_t_kl",
    "student_t_kl_from_distance",
    "kl_from_squared_distance",
    "kl_monte_carlo",
    "MonteCarloKL",
    "hellinger",
    "wasserstein2",
    "tv_bounds",
    "TVBounds",
    "UnsupportedKLError",
    "KLOverflowError",
    "covariance_operator",
    "dense_moments",
]


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
