"""Numerical checks of the lemmas and bounds behind AP2 / AP3, one function per claim.

Every function returns a :class:`Check`: the two sides of the inequality (or the two values of the
identity), the relation, whether it held, and the intermediate quantities in ``details``; never a bare
boolean. The book's theory chapter derives each claim and runs these functions.

=======================================  ==================================================================
function                                 claim
=======================================  ==================================================================
:func:`check_gaussian_kl`                latentkit's KL = dense closed form (SciPy) = torch's full-cov. KL
:func:`check_kl_decomposition`           KL = mean term + covariance term (the latter free of the means)
:func:`check_eigen_sandwich`             shared covariance: AP2/(2 lmax) <= AP3 <= AP2/(2 lmin)
:func:`check_ap2_implies_ap3`            AP2 <= eps  =>  AP3 <= eps / (2 lmin)
:func:`check_ap3_implies_ap2`            AP3 <= eps  =>  AP2 <= 2 lmax eps
:func:`check_isotropic_proportionality`  Sigma = s^2 I: AP3 = AP2 / (2 s^2)
:func:`check_student_t_limit`            Student-t AP3 -> Gaussian AP3 as df -> infinity
:func:`check_monte_carlo_rate`           Monte Carlo KL error ~ n^(-1/2)
:func:`check_pinsker`                    TV <= sqrt(KL / 2) (and Bretagnolle-Huber)
:func:`check_softmax_loss_bound`         ``|L(W) - L(W~)| <= sqrt2 E||x|| ||W - W~||_F``
                                         ``<= sqrt2 E||x|| sqrt(2 lmax AP3)``
:func:`check_margin_bound`               accuracy drop ``<= P(correct and margin <= 2 ||(W - W~) x||_inf)``
:func:`check_laplace_second_order`       Laplace/Fisher AP3 ~= second-order loss increase
:func:`check_ap3_fn_expansion`           ``AP3_fn = 1/2 vec(D)^T F vec(D) + O(|D|^3)``, F the exact Fisher
:func:`check_kfac_ap3_fn`                K-FAC (Laplace) AP3 = that quadratic iff p does not vary with x
:func:`check_ap3_fn_accuracy_bound`      changed predictions <= min_t P(margin <= t) + 2 AP3_fn / t^2
=======================================  ==================================================================

Modules, by subject: :mod:`~latentkit.theory.check` (the :class:`Check` record and
:func:`checks_table`), :mod:`~latentkit.theory.gaussian` (KL closed form, decomposition, the
shared-covariance relations), :mod:`~latentkit.theory.student_t`, :mod:`~latentkit.theory.monte_carlo`,
:mod:`~latentkit.theory.bounds` (Pinsker, softmax loss, margin, Laplace second order) with the linear
softmax layer's inputs in :mod:`~latentkit.theory.linear`, :mod:`~latentkit.theory.function` (AP3_fn:
second-order expansion, K-FAC, accuracy bound); private validation of the latent laws in
``_laws``.

Examples
--------
>>> import torch
>>> from latentkit.theory import check_gaussian_kl
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> q = IsotropicNormal(torch.ones(2, dtype=torch.float64), 2.0)
>>> check_gaussian_kl(p, q).holds
True
"""

from __future__ import annotations

from ._laws import covariance_eigen_range
from .bounds import check_laplace_second_order, check_margin_bound, check_pinsker, check_softmax_loss_bound
from .check import RELATIONS, Check, checks_table
from .function import check_ap3_fn_accuracy_bound, check_ap3_fn_expansion, check_kfac_ap3_fn
from .gaussian import (
    check_ap2_implies_ap3,
    check_ap3_implies_ap2,
    check_eigen_sandwich,
    check_gaussian_kl,
    check_isotropic_proportionality,
    check_kl_decomposition,
)
from .linear import softmax_cross_entropy
from .monte_carlo import check_monte_carlo_rate
from .student_t import check_student_t_limit

__all__ = [
    "Check",
    "RELATIONS",
    "checks_table",
    "covariance_eigen_range",
    "check_gaussian_kl",
    "check_kl_decomposition",
    "check_eigen_sandwich",
    "check_ap2_implies_ap3",
    "check_ap3_implies_ap2",
    "check_isotropic_proportionality",
    "check_student_t_limit",
    "check_monte_carlo_rate",
    "check_pinsker",
    "check_softmax_loss_bound",
    "check_margin_bound",
    "check_laplace_second_order",
    "check_ap3_fn_expansion",
    "check_kfac_ap3_fn",
    "check_ap3_fn_accuracy_bound",
    "softmax_cross_entropy",
]
