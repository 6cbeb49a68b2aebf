"""Monte Carlo KL, the reference code's estimator, for any pair of laws with ``log_prob``.

Examples
--------
>>> import torch
>>> from latentkit.divergence.monte_carlo import kl_monte_carlo
>>> from latentkit.latent import IsotropicNormal
>>> p = IsotropicNormal(torch.zeros(2, dtype=torch.float64), 1.0)
>>> r = kl_monte_carlo(p, p, num_samples=100, repeats=2)
>>> type(r).__name__
'MonteCarloKL'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Distribution, LowRankMultivariateNormal, MultivariateNormal

from .._validation import check_int
from ..latent import DiagonalNormal, IsotropicNormal, MatrixNormal, MultivariateStudentT
from ..linalg import BLOCK_ELEMS
from ._common import _F64, _check_pair, _no_batch

__all__ = ["MonteCarloKL", "kl_monte_carlo"]


@dataclass
class MonteCarloKL:
    """Result of :func:`kl_monte_carlo`.

    Attributes
    ----------
    estimate : float
        Mean over repeats of the per-repeat sample mean of ``log p(x) - log q(x)``, ``x ~ p``.
    stderr : float
        Standard error of ``estimate``: std of the per-repeat means / sqrt(repeats) when
        ``repeats > 1``, else std of the log-ratios / sqrt(num_samples).
    num_samples : int
        Samples per repeat.
    repeats : int
    per_repeat : Tensor (repeats,)
        The per-repeat means (float64, CPU).
    """

    estimate: float
    stderr: float
    num_samples: int
    repeats: int
    per_repeat: torch.Tensor


def _draw(p: Distribution, n: int, generator: torch.Generator | None) -> torch.Tensor:
    if isinstance(p, (IsotropicNormal, DiagonalNormal, MatrixNormal, MultivariateStudentT)):
        return p.sample((n,), generator=generator)
    if generator is None:
        return p.sample((n,))
    if isinstance(p, LowRankMultivariateNormal):
        _no_batch(p)
        W, D = p.cov_factor, p.cov_diag
        z1 = torch.randn(n, W.shape[1], generator=generator, dtype=W.dtype, device=W.device)
        z2 = torch.randn(n, D.shape[0], generator=generator, dtype=W.dtype, device=W.device)
        return p.loc + z1 @ W.T + z2 * D.sqrt()
    if isinstance(p, MultivariateNormal):
        _no_batch(p)
        L = p._unbroadcasted_scale_tril
        z = torch.randn(n, L.shape[0], generator=generator, dtype=L.dtype, device=L.device)
        return p.loc + z @ L.T
    raise TypeError(f"cannot sample {type(p).__name__} with an explicit generator; pass generator=None")


def kl_monte_carlo(
    p: Distribution,
    q: Distribution,
    num_samples: int = 600_000,
    repeats: int = 100,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> MonteCarloKL:
    r"""Monte Carlo ``KL(p || q) ~ 1/n sum_i [log p(x_i) - log q(x_i)]``, ``x_i ~ p``.

    The reference code's estimator: ``repeats`` independent estimates with ``num_samples``
    samples each, averaged. Works for any pair of laws with ``log_prob`` and the same event
    size (e.g. Student-t laws with different scales; a MatrixNormal against a vector law, through
    the row-major ``vec``).

    Parameters
    ----------
    p, q : Distribution
    num_samples : int >= 2
        Samples per repeat (at least 2, so that the standard error is an estimate and not 0).
    repeats : int >= 1
    generator : torch.Generator, optional
        Drives every draw (on the laws' device) for reproducibility; ``None`` uses torch's global RNG.
    batch_size : int, optional
        Samples drawn at once; default ``max(1, 2**21 // d)`` (about 16 MB of float64 samples),
        so memory does not grow with ``num_samples``.

    Returns
    -------
    MonteCarloKL
        The per-sample log-ratios are accumulated in float64.
    """
    if not isinstance(p, Distribution) or not isinstance(q, Distribution):
        raise TypeError("p and q must be torch.distributions.Distribution objects")
    _check_pair(p, q)
    q_shape = tuple(q.event_shape)  # a MatrixNormal's samples are reshaped (row-major) for a vector law
    n = check_int(num_samples, "num_samples", minimum=1)
    if n < 2:
        raise ValueError("num_samples must be >= 2: a single sample gives no standard error; got 1")
    R = check_int(repeats, "repeats", minimum=1)
    d = max(1, math.prod(tuple(p.event_shape)))
    bs = max(1, BLOCK_ELEMS // d) if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator or None")
    means = torch.empty(R, dtype=_F64)
    tot_sq = 0.0
    with torch.no_grad():
        for r in range(R):
            s = None
            s2 = None
            done = 0
            while done < n:
                m = min(bs, n - done)
                x = _draw(p, m, generator)
                lr = p.log_prob(x).to(_F64) - q.log_prob(x.reshape((m,) + q_shape)).to(_F64)
                s = lr.sum() if s is None else s + lr.sum()
                s2 = (lr * lr).sum() if s2 is None else s2 + (lr * lr).sum()
                done += m
            means[r] = float(s) / n
            tot_sq += float(s2)
    est = float(means.mean())
    if R > 1:
        se = float(means.std(unbiased=True)) / math.sqrt(R)
    else:
        var = max(tot_sq / n - est * est, 0.0) * n / max(n - 1, 1)
        se = math.sqrt(var / n)
    if not math.isfinite(est):
        raise ValueError("Monte Carlo KL is not finite (q gives zero density to samples of p?)")
    return MonteCarloKL(est, se, n, R, means)
