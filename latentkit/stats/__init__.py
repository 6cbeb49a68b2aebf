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
  :func:`reference_rescale` (the reference code's per-run rescaling of AP2);
* :mod:`~latentkit.stats.generalization` -- the field's tests of "does measure X predict the
  accuracy change": :func:`granulated_kendall` (Kendall's :math:`\tau` and Jiang et al.'s
  granulated :math:`\Psi`), :func:`conditional_mutual_information` (their CMI given subsets of the
  hyperparameters), :func:`sign_error` (Dziugaite et al.'s robust sign-error, mean and worst
  environment), :func:`seed_noise`;
* :mod:`~latentkit.stats.resampling` -- one paired, hierarchical bootstrap plan for every measure
  (:func:`resampling_plan`, :func:`paired_bootstrap`, :func:`statistics_of`);
* :mod:`~latentkit.stats.comparison` -- :func:`measure_table` (tau, Psi, CMI, sign-error side by
  side with paired intervals) and the baselines (:data:`BASELINES`, :func:`add_random_measure`);
* :mod:`~latentkit.stats.tracking` -- :func:`within_cell_tau` (does a measure move with the target
  during fine-tuning?), :func:`tau_by_group`, :func:`budget_choices` (the label-free sparsity choice
  on cached curves).

Missing values: a NaN in a measure or target makes :func:`correlations` raise (``nan_policy="raise"``,
the default: a rank correlation with a NaN is undefined, and a bootstrap over the resamples that
miss the NaN row would report a finite interval around it) or drop the rows that hold it for that
(measure, target) pair (``nan_policy="omit"``).

Examples
--------
>>> from latentkit.stats import bootstrap_spearman
>>> r = bootstrap_spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], n_boot=200)
>>> round(r['spearman'], 3)
0.8
"""

from __future__ import annotations

from .comparison import BASELINES, add_random_measure, measure_table
from .correlation import (
    NAN_POLICIES,
    bootstrap_spearman,
    correlations,
    correlations_by_level,
    kendall_rows,
    spearman_rows,
)
from .generalization import (
    AXES,
    CMIResult,
    GranulatedKendall,
    SignError,
    conditional_mutual_information,
    granulated_kendall,
    seed_noise,
    sign_error,
)
from .resampling import CELLS, STATISTICS, ResamplingPlan, paired_bootstrap, resampling_plan, statistics_of
from .summaries import REFERENCE_AP2_MAX, reference_rescale, summarize
from .tracking import budget_choices, tau_by_group, within_cell_tau

__all__ = [
    "AXES",
    "BASELINES",
    "CELLS",
    "CMIResult",
    "GranulatedKendall",
    "NAN_POLICIES",
    "STATISTICS",
    "ResamplingPlan",
    "SignError",
    "add_random_measure",
    "conditional_mutual_information",
    "granulated_kendall",
    "measure_table",
    "paired_bootstrap",
    "resampling_plan",
    "seed_noise",
    "sign_error",
    "statistics_of",
    "bootstrap_spearman",
    "correlations",
    "correlations_by_level",
    "kendall_rows",
    "REFERENCE_AP2_MAX",
    "reference_rescale",
    "spearman_rows",
    "summarize",
    "budget_choices",
    "tau_by_group",
    "within_cell_tau",
]
