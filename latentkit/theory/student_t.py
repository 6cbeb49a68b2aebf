"""Check of the Student-t limit: the Student-t AP3 tends to the Gaussian AP3 as df grows.

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> wp = w * (w.abs() > 4)
>>> from latentkit.theory.student_t import check_student_t_limit
>>> check_student_t_limit(w.double(), wp.double(), dfs=(4.0, 4096.0)).holds
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._validation import check_positive
from ..patterns import ap3
from .check import Check

__all__ = ["check_student_t_limit"]


def _check_dfs(dfs: Any) -> list[float]:
    """At least two positive finite degrees of freedom, sorted."""
    if isinstance(dfs, (str, bytes)) or not hasattr(dfs, "__len__"):
        raise TypeError(f"dfs must be a sequence of degrees of freedom; got {type(dfs).__name__}")
    if len(dfs) < 2:
        raise ValueError("dfs must hold at least two degrees of freedom")
    return sorted(check_positive(df, "df") for df in dfs)


def check_student_t_limit(
    w: Any,
    w_pruned: Any,
    dfs: Sequence[float] = (1.0, 2.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0),
    scale: float = 1.0,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    rtol: float = 0.01,
) -> Check:
    """Student-t AP3 tends to the Gaussian AP3 as the degrees of freedom grow.

    For each df, AP3_t(df) = KL between ``MultivariateStudentT(P(w), s I, df)`` and the same law at
    ``P(w~)`` (exact reduction in :mod:`latentkit.divergence`, deterministic); the limit is the Gaussian
    value :math:`\\lVert P(w)-P(\\tilde w)\\rVert^2/(2s^2)`.

    ``lhs`` = AP3_t at the largest df, ``rhs`` = Gaussian AP3, relation ``"~="``. Holds when the relative
    gap :math:`|\\mathrm{AP3}_t - \\mathrm{AP3}_{\\mathcal N}| / \\mathrm{AP3}_{\\mathcal N}` at the largest
    df is <= ``rtol`` and the gaps do not increase along the (sorted) dfs (1e-9 slack); when the Gaussian
    AP3 is 0 the gaps are the absolute values. ``details``: dfs, values, relative gaps, monotone flag.

    Parameters
    ----------
    w, w_pruned : Tensor
        Dense and pruned weights (same shape, floating, finite).
    dfs : sequence of float > 0
        At least two degrees of freedom.
    scale : float > 0
        The latent scale s (isotropic).
    projection, num_chunks
        Passed to :func:`latentkit.patterns.ap3`.
    rtol : float > 0
    """
    rtol = check_positive(rtol, "rtol")
    scale = check_positive(scale, "scale")
    dfs = _check_dfs(dfs)
    common = dict(scale=scale, projection=projection, num_chunks=num_chunks)
    gauss = ap3(w, w_pruned, family="gaussian", covariance="isotropic", **common)
    values = [ap3(w, w_pruned, family="student_t", covariance="isotropic", df=df, **common) for df in dfs]
    if gauss == 0.0:
        gaps = [abs(v) for v in values]
    else:
        gaps = [abs(v - gauss) / gauss for v in values]
    monotone = all(gaps[i + 1] <= gaps[i] * (1 + 1e-9) + 1e-12 for i in range(len(gaps) - 1))
    return Check(
        name="Student-t AP3 -> Gaussian AP3 as df grows",
        lhs=values[-1],
        rhs=gauss,
        relation="~=",
        holds=bool(gaps[-1] <= rtol and monotone),
        details={
            "dfs": list(dfs),
            "values": values,
            "relative_gaps": gaps,
            "monotone": monotone,
            "rtol": rtol,
            "scale": scale,
            "projection": projection,
        },
    )
