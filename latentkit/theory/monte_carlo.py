"""Check of the Monte Carlo KL estimator's rate: its error shrinks like n^(-1/2).

Examples
--------
>>> import torch
>>> from latentkit.theory.monte_carlo import check_monte_carlo_rate
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> q = IsotropicNormal(torch.ones(2, dtype=torch.float64), 1.0)
>>> check_monte_carlo_rate(p, q, sample_sizes=(100, 400), repeats=4).name
'Monte Carlo KL error ~ n^(-1/2)'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.distributions import Distribution, kl_divergence

from .. import divergence
from .._validation import check_int, check_positive, make_generator
from ._laws import check_pair, location
from .check import Check

__all__ = ["check_monte_carlo_rate"]


def _check_sizes(sample_sizes: Any) -> list[int]:
    """At least two distinct sample sizes >= 2, sorted."""
    if isinstance(sample_sizes, (str, bytes)) or not hasattr(sample_sizes, "__len__"):
        raise TypeError(f"sample_sizes must be a sequence of integers; got {type(sample_sizes).__name__}")
    if len(sample_sizes) < 2:
        raise ValueError("sample_sizes must hold at least two sizes")
    sizes = sorted(check_int(n, "sample size", minimum=2) for n in sample_sizes)
    if len(set(sizes)) != len(sizes):
        raise ValueError("sample_sizes must be distinct")
    return sizes


def _exact_kl(p: Distribution, q: Distribution) -> float:
    """The registered exact KL, or NaN when the pair has none."""
    try:
        return float(kl_divergence(p, q))
    except NotImplementedError:
        return float("nan")


def check_monte_carlo_rate(
    p: Distribution,
    q: Distribution,
    sample_sizes: Sequence[int] = (500, 2000, 8000, 32000),
    repeats: int = 40,
    *,
    seed: int | None = 0,
    atol: float = 0.1,
) -> Check:
    """The Monte Carlo KL estimator's error shrinks like :math:`n^{-1/2}`.

    For each sample size n, :func:`latentkit.divergence.kl_monte_carlo` with ``repeats`` independent
    repeats gives the spread of the n-sample estimate :math:`\\hat{\\mathrm{KL}}_n = \\frac1n\\sum_i
    [\\log p(x_i) - \\log q(x_i)]`, :math:`x_i \\sim p`; a least-squares line through
    (log n, log spread) has slope ``lhs``, compared with ``rhs = -1/2`` (relation ``"~="``, absolute
    tolerance ``atol``). ``details`` also holds the estimates and, when a closed form/exact value is
    registered, the exact KL and the errors.

    Parameters
    ----------
    p, q : Distribution
        Laws with ``log_prob``, the same event shape, dtype and device.
    sample_sizes : sequence of int >= 2
        At least two distinct sizes.
    repeats : int >= 2
    seed : int >= 0 or None
        Seeds the draws (None: torch's global RNG).
    atol : float > 0
    """
    check_pair(p, q, same_event=False)  # a MatrixNormal may face a vector law (row-major vec)
    repeats = check_int(repeats, "repeats", minimum=2)
    atol = check_positive(atol, "atol")
    sizes = _check_sizes(sample_sizes)
    gen = make_generator(seed, device=location(p).device)
    estimates, stderrs, spreads = [], [], []
    for n in sizes:
        mc = divergence.kl_monte_carlo(p, q, num_samples=n, repeats=repeats, generator=gen)
        estimates.append(float(mc.estimate))
        stderrs.append(float(mc.stderr))
        # standard deviation of a single n-sample estimate, from the per-repeat means
        spreads.append(float(mc.per_repeat.std()))
    if not all(s > 0 and math.isfinite(s) for s in spreads):
        raise ValueError(
            f"the Monte Carlo spread is not positive and finite at every sample size ({spreads}); "
            "p and q are identical or degenerate, so there is no rate to measure"
        )
    slope = float(np.polyfit(np.log(sizes), np.log(spreads), 1)[0])
    exact = _exact_kl(p, q)
    return Check(
        name="Monte Carlo KL error ~ n^(-1/2)",
        lhs=slope,
        rhs=-0.5,
        relation="~=",
        holds=abs(slope + 0.5) <= atol,
        details={
            "sample_sizes": sizes,
            "repeats": repeats,
            "estimates": estimates,
            "stderrs": stderrs,
            "spread": spreads,
            "exact": exact,
            "errors": [abs(e - exact) for e in estimates],
            "atol": atol,
        },
    )
