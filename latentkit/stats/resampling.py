r"""Paired, hierarchical bootstrap of results tables (torch-free).

One :class:`ResamplingPlan` is drawn once -- trials with replacement, then the cells of each drawn
trial with replacement (a cell keeps all its rows, e.g. its epochs) -- and applied to every measure,
so two measures whose values have the same order on every row get identical statistics and
identical intervals, and the intervals include the seed variance between trials.

* :func:`resampling_plan` -- draw the plan;
* :func:`paired_bootstrap` -- one statistic (``"tau"``, ``"Psi"``, ``"cmi"``, ``"sign_error"``,
  ``"sign_error_worst"`` or a callable) of several measures on the plan's resamples, with
  percentile intervals.

The named statistics are those of :mod:`latentkit.stats.generalization`; :func:`statistics_of`
evaluates all of them for a matrix of measures at once (one pass of pair construction).

Examples
--------
>>> from latentkit.stats.resampling import STATISTICS
>>> sorted(STATISTICS)
['Psi', 'cmi', 'sign_error', 'sign_error_worst', 'tau']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_fraction, check_int
from ._common import _names, _require_table, _seed
from .generalization import (
    AXES,
    _check_runs,
    _cmi_arrays,
    _column,
    _psi_arrays,
    _sign_error_arrays,
    _subsets,
    _tau_all,
)

__all__ = ["CELLS", "STATISTICS", "ResamplingPlan", "paired_bootstrap", "resampling_plan", "statistics_of"]

#: The columns of one cell of a trial (its rows -- epochs -- are drawn together).
CELLS = ("network", "dataset", "method", "sparsity")
#: Named statistics of :func:`paired_bootstrap` and :func:`statistics_of`.
STATISTICS = ("tau", "Psi", "cmi", "sign_error", "sign_error_worst")


@dataclass(frozen=True)
class ResamplingPlan:
    """Row positions of every bootstrap resample, and the replicate label of each drawn trial.

    Attributes
    ----------
    rows : list of numpy.ndarray
        Positions (``df.iloc``) of the rows of each resample.
    replicate : list of numpy.ndarray
        Per resampled row, the index of the trial draw it came from (a trial drawn twice gives two
        replicates, coupled separately).
    n_rows : int
        Rows of the table the plan was drawn for.
    trial : str or None
        The trial column the replicate labels replace in :meth:`apply`.
    """

    rows: list[np.ndarray]
    replicate: list[np.ndarray]
    n_rows: int
    trial: str | None

    def apply(self, df: pd.DataFrame, b: int) -> pd.DataFrame:
        """Resample ``b`` of ``df`` (the trial column holds the replicate label)."""
        if len(df) != self.n_rows:
            raise ValueError(f"the plan was drawn for {self.n_rows} rows; df has {len(df)}")
        out = df.iloc[self.rows[b]].reset_index(drop=True)
        if self.trial is not None:
            out[self.trial] = self.replicate[b]
        return out


def _cell_rows(df: pd.DataFrame, trial: str | None, cells: list[str]) -> list[list[np.ndarray]]:
    """Per trial (in order of appearance), the row positions of each of its cells."""
    tcode = df.groupby(trial, sort=False).ngroup().to_numpy() if trial is not None else np.zeros(len(df), int)
    ccode = df.groupby(cells, sort=False, dropna=False).ngroup().to_numpy() if cells else np.arange(len(df))
    out = []
    for t in range(int(tcode.max()) + 1):
        pos = np.flatnonzero(tcode == t)
        out.append([pos[ccode[pos] == c] for c in pd.unique(ccode[pos])])
    return out


def resampling_plan(
    df: pd.DataFrame,
    n_boot: int = 1000,
    seed: int | None = 0,
    hierarchical: Sequence[str] = ("trial",),
    cells: Sequence[str] = CELLS,
) -> ResamplingPlan:
    r"""Draw a hierarchical bootstrap plan: trials with replacement, then cells within each trial.

    For resample :math:`b`: draw :math:`T` trials from the :math:`T` trials of ``df`` with
    replacement; inside each drawn trial with :math:`C_t` cells, draw :math:`C_t` cells with
    replacement; the resample is every row of every drawn cell. Trial draw :math:`r` gets the
    replicate label :math:`r` (two draws of one trial are two replicates). With
    ``hierarchical=()`` only cells are drawn (one level). Draws use ``default_rng(seed)``.

    Parameters
    ----------
    df : DataFrame
    n_boot : int >= 1
    seed : int >= 0 or None
    hierarchical : () or (trial column,)
        The trial level (at most one column).
    cells : list of str
        Columns of one cell (its rows are drawn together); empty: every row is a cell.

    Returns
    -------
    ResamplingPlan

    Raises
    ------
    TypeError, ValueError
        A bad ``df``, names or numbers (named), more than one hierarchical level.
    """
    hierarchical, cells = _names(hierarchical, "hierarchical"), _names(cells, "cells")
    if len(hierarchical) > 1:
        raise ValueError(f"hierarchical takes at most one (trial) column; got {hierarchical}")
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    _require_table(df, hierarchical + cells)
    trial = hierarchical[0] if hierarchical else None
    tree = _cell_rows(df.reset_index(drop=True), trial, cells)
    rng = np.random.default_rng(_seed(seed))
    rows, reps = [], []
    for _ in range(n_boot):
        parts, labels = [], []
        for r, t in enumerate(rng.integers(0, len(tree), len(tree))):
            for c in rng.integers(0, len(tree[t]), len(tree[t])):
                parts.append(tree[t][c])
                labels.append(np.full(len(tree[t][c]), r))
        rows.append(np.concatenate(parts))
        reps.append(np.concatenate(labels))
    return ResamplingPlan(rows, reps, len(df), trial)


def statistics_of(
    df: pd.DataFrame,
    measures: list[str],
    target: str,
    *,
    names: Sequence[str] = STATISTICS,
    axes: Sequence[str] = AXES,
    given: Sequence[str] | None = None,
    max_size: int = 2,
    environment: Sequence[str] = ("network", "dataset"),
    threshold: float = 0.0,
    trial: str | None = "trial",
) -> dict[str, np.ndarray]:
    r"""Every named statistic of every measure on one table (no validation: the kernels of the tables).

    ``tau`` and ``Psi`` as :func:`~latentkit.stats.granulated_kendall`, ``cmi`` as
    :func:`~latentkit.stats.conditional_mutual_information` (minimum over sets), ``sign_error`` and
    ``sign_error_worst`` as :func:`~latentkit.stats.sign_error` with the fixed ``threshold``.

    Returns
    -------
    dict of name to numpy.ndarray of shape (len(measures),)
    """
    axes = list(axes)
    given = axes if given is None else list(given)
    m, y = df[measures].to_numpy(float), df[target].to_numpy(float)
    cache: dict[str, Any] = {}  # the columns' codes, shared by the statistics
    out: dict[str, np.ndarray] = {}
    if "tau" in names:
        out["tau"] = _tau_all(m, y)
    if "Psi" in names:
        psi, _ = _psi_arrays(df, m, y, axes, trial, cache)
        stack = np.array(list(psi.values()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: Psi undefined
            out["Psi"] = np.nanmean(stack, axis=0)
    if "cmi" in names:
        cmi = _cmi_arrays(df, m, y, _subsets(given, max_size), cache)[3]
        out["cmi"] = np.array([np.nanmin(c) if np.isfinite(c).any() else np.nan for c in cmi.T])
    if "sign_error" in names or "sign_error_worst" in names:
        env = list(environment)
        e, code, n, _ = _sign_error_arrays(df, m, y, axes, env, trial, threshold, cache)
        cnt = np.bincount(code, minlength=1)
        present = cnt > 0
        out["sign_error"] = e.mean(0) if n else np.full(m.shape[1], np.nan)
        per = np.array(
            [np.bincount(code, e[:, c], len(cnt))[present] / cnt[present] for c in range(m.shape[1])]
        )
        out["sign_error_worst"] = per.max(1) if n else np.full(m.shape[1], np.nan)
    return {k: out[k] for k in names}


def _quantiles(values: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the (alpha, 1 - alpha) quantiles of the finite resampled values (NaN if none)."""
    alpha = (1.0 - ci) / 2
    lo, hi = np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan)
    for c in range(values.shape[1]):
        ok = values[np.isfinite(values[:, c]), c]
        if len(ok):
            lo[c], hi[c] = np.quantile(ok, alpha), np.quantile(ok, 1 - alpha)
    return lo, hi


def paired_bootstrap(
    df: pd.DataFrame,
    measures: Sequence[str],
    target: str,
    statistic: str | Callable[[pd.DataFrame, str, str], float] = "tau",
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
    hierarchical: Sequence[str] = ("trial",),
    cells: Sequence[str] = CELLS,
    plan: ResamplingPlan | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    r"""One statistic of several measures with paired, hierarchical percentile bootstrap intervals.

    Every measure is evaluated on the *same* resamples (``plan``, or :func:`resampling_plan` with
    ``n_boot``, ``seed``, ``hierarchical``, ``cells``); the interval is the
    :math:`(\alpha, 1-\alpha)` quantiles, :math:`\alpha = (1 - ci)/2`, of the finite resampled values.
    The statistics of :mod:`latentkit.stats.generalization` depend on a measure only through the
    signs of its differences, so a strictly increasing transform of a measure gets the same value
    and the same interval.

    Parameters
    ----------
    df : DataFrame
    measures : list of str
    target : str
    statistic : {"tau", "Psi", "cmi", "sign_error", "sign_error_worst"} or callable
        A callable is called as ``statistic(resampled_df, measure, target) -> float``.
    n_boot, seed, ci, hierarchical, cells
        The plan (ignored where ``plan`` is given) and the interval level.
    plan : ResamplingPlan, optional
        A plan drawn once and shared by several calls.
    **kwargs
        For a named statistic, the keywords of :func:`statistics_of` (``axes``, ``given``,
        ``max_size``, ``environment``, ``threshold``, ``trial``).

    Returns
    -------
    DataFrame with ``measure``, ``statistic``, ``value`` (on ``df``), ``low``, ``high``, ``n_boot``.

    Raises
    ------
    TypeError, ValueError
        Bad names, columns, numbers, an unknown statistic, a plan drawn for another table.
    """
    measures, target = _names(measures, "measures"), _column(target, "target")
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    trial = kwargs.get("trial", "trial")
    _check_runs(df, measures, target, [], None)
    if isinstance(statistic, str) and statistic in STATISTICS:  # the columns it reads, named if missing
        axes = list(kwargs.get("axes", AXES))
        need = {
            "tau": [],
            "Psi": axes,
            "cmi": list(kwargs.get("given") or axes),
        }.get(statistic, axes + list(kwargs.get("environment", ("network", "dataset"))))
        _require_table(df, list(dict.fromkeys(need + ([trial] if trial and statistic != "cmi" else []))))
    df = df.reset_index(drop=True)
    if plan is None:
        plan = resampling_plan(df, n_boot, seed, hierarchical if trial is not None else (), cells)
    elif not isinstance(plan, ResamplingPlan):
        raise TypeError(f"plan must be a ResamplingPlan; got {type(plan).__name__}")
    if callable(statistic):
        name = getattr(statistic, "__name__", "statistic")

        def evaluate(d: pd.DataFrame) -> np.ndarray:
            return np.array([float(statistic(d, mm, target)) for mm in measures])
    elif isinstance(statistic, str) and statistic in STATISTICS:
        name = statistic

        def evaluate(d: pd.DataFrame) -> np.ndarray:
            return statistics_of(d, measures, target, names=(statistic,), **kwargs)[statistic]
    else:
        raise ValueError(f"statistic must be one of {list(STATISTICS)} or a callable; got {statistic!r}")
    value = evaluate(df)
    boot = np.array([evaluate(plan.apply(df, b)) for b in range(len(plan.rows))])
    lo, hi = _quantiles(boot, ci)
    return pd.DataFrame(
        {
            "measure": measures,
            "statistic": name,
            "value": value,
            "low": lo,
            "high": hi,
            "n_boot": len(plan.rows),
        }
    )
