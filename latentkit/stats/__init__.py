r"""Torch-free statistics of results tables: rank correlations, bootstrap intervals, summaries.

Everything here needs numpy, scipy and pandas only (no torch, no training code), so
:mod:`latentkit.claims`, :mod:`latentkit.plots`, :mod:`latentkit.report` and the book import it
without loading the training pipeline. A *results table* is the tidy frame of
:func:`latentkit.grid.run_grid` (one row per network, dataset, method, sparsity, trial, epoch).

Submodules (every public name is importable from :mod:`latentkit.stats`):

* :mod:`~latentkit.stats.correlation` -- row-wise rank correlations (Spearman's :math:`\rho` =
  the Pearson correlation of mid-ranks, :func:`spearman_rows`; Kendall's :math:`\tau_b`,
  :func:`kendall_rows`), :func:`correlations` (Spearman and Kendall correlations of AP measures
  with PD with percentile bootstrap intervals at one pooling level,
  :data:`latentkit.options.CORRELATION_LEVELS`), :func:`correlations_by_level` (several levels,
  ``cells@<e>``, ``cells``, ``epochs``), :func:`bootstrap_spearman` (one Spearman :math:`\rho` with
  its bootstrap interval, and the paired interval of a difference :math:`\rho(x, y) - \rho(r, y)`);
* :mod:`~latentkit.stats.summaries` -- :func:`summarize` (trial means at one epoch) and
  :func:`reference_rescale` (the reference code's per-run rescaling of AP2).

Missing values: a NaN in a measure or target makes :func:`correlations` raise (``nan_policy="raise"``,
the default: a rank correlation with a NaN is undefined, and a bootstrap over the resamples that
miss the NaN row would report a finite interval around it) or drop the rows that hold it for that
(measure, target) pair (``nan_policy="omit"``).
"""

from __future__ import annotations

from .correlation import (
    NAN_POLICIES,
    bootstrap_spearman,
    correlations,
    correlations_by_level,
    kendall_rows,
    spearman_rows,
)
from .summaries import reference_rescale, summarize

__all__ = [
    "NAN_POLICIES",
    "bootstrap_spearman",
    "correlations",
    "correlations_by_level",
    "kendall_rows",
    "reference_rescale",
    "spearman_rows",
    "summarize",
]
