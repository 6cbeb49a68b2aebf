r"""Does a measure track the accuracy change over time, over a sweep, under a budget? (torch-free)

The fine-tuning chapter's questions beyond the pooled statistics of :mod:`~latentkit.stats.comparison`:

* :func:`within_cell_tau` -- inside each cell and trial, Kendall's :math:`\tau_b` between the measure
  and the target over the fine-tuning epochs, averaged over cells (the ``epoch`` part
  :math:`\psi_{\text{epoch}}` of Jiang et al.'s granulated coefficient), with a paired, hierarchical
  bootstrap interval (trials, then cells): *does the measure move with PD during fine-tuning?*
* :func:`tau_by_group` -- Kendall's :math:`\tau_b` per group (e.g. per compression ratio of a sweep);
* :func:`budget_choices` -- the label-free sparsity choice of
  :func:`latentkit.pruning.sparsity_for_budget` applied to cached divergence curves, next to the
  accuracy loss it leads to.

Examples
--------
>>> import pandas as pd
>>> from latentkit.stats.tracking import tau_by_group
>>> df = pd.DataFrame({'g': ['a'] * 4, 'ap2': [1, 2, 3, 4],
...                    'pd_test': [1, 2, 4, 3]})
>>> tau_by_group(df, ['ap2'], 'pd_test', ['g']).shape[0]
1
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sstats

from .._checks import check_fraction, check_int, check_nonnegative
from ._common import _names
from .resampling import CELLS, _quantiles, resampling_plan

__all__ = ["budget_choices", "tau_by_group", "within_cell_tau"]


def _cell_taus(df: pd.DataFrame, measures: list[str], target: str, groups: list[str], time: str):
    """Per group: tau_b over ``time`` of each measure with the target; ``valid`` = target not constant."""
    d = df.sort_values(groups + [time], kind="stable").reset_index(drop=True)
    keys = d.groupby(groups, sort=False).ngroup().to_numpy()
    sizes = np.bincount(keys)
    if len(set(sizes)) != 1:
        got = sorted(set(sizes))
        raise ValueError(f"every group must have the same number of {time!r} values; got {got}")
    g, e = len(sizes), int(sizes[0])
    y = d[target].to_numpy(float).reshape(g, e)
    m = d[measures].to_numpy(float).reshape(g, e, len(measures))
    i, j = np.triu_indices(e, 1)
    sy = np.sign(y[:, i] - y[:, j])
    sm = np.sign(m[:, i, :] - m[:, j, :])
    num = np.einsum("gpk,gp->gk", sm, sy)
    den = np.sqrt((sm**2).sum(1) * (sy**2).sum(1)[:, None])
    tau = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    valid = (sy**2).sum(1) > 0
    return tau, valid, d.drop_duplicates(groups)[groups].reset_index(drop=True)


def within_cell_tau(
    df: pd.DataFrame,
    measures: Sequence[str],
    target: str = "pd_test",
    *,
    cells: Sequence[str] = CELLS,
    time: str = "epoch",
    trial: str | None = "trial",
    n_boot: int = 200,
    seed: int | None = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    r"""Mean within-cell Kendall :math:`\tau_b` over time of each measure with the target, with a paired CI.

    For every (cell, trial) :math:`g` with a non-constant target over ``time``,

    .. math::

        \tau_g = \frac{\sum_{s<t} \operatorname{sign}(m_s - m_t)\operatorname{sign}(y_s - y_t)}
                      {\sqrt{\sum_{s<t} \operatorname{sign}(m_s - m_t)^2
                             \sum_{s<t} \operatorname{sign}(y_s - y_t)^2}},
        \qquad \bar\tau = \frac{1}{|G|}\sum_g \tau_g

    (a measure constant in :math:`g` scores 0 there; groups with a constant target are left out).
    :math:`\bar\tau` is the ``epoch`` term :math:`\psi_{\text{epoch}}` of
    :func:`~latentkit.stats.granulated_kendall`. The interval resamples trials, then cells within
    a trial (one plan shared by every measure), so measures with identical ranks inside every cell
    get identical rows; ``frac_positive`` is the share of cells with :math:`\tau_g > 0`.

    Parameters
    ----------
    df : DataFrame
        A results table: every (cell, trial) has the same ``time`` values, one row each.
    measures : list of str
    target : str
    cells : list of str
        Columns of one cell.
    time : str
        The column that varies inside a cell (default ``"epoch"``).
    trial : str or None
    n_boot : int >= 1
    seed : int >= 0 or None
    ci : float in (0, 1)

    Returns
    -------
    DataFrame: ``measure``, ``tau``, ``tau_low``, ``tau_high``, ``frac_positive``, ``n_cells``.

    Raises
    ------
    ValueError
        Missing columns, NaN values, groups of different lengths, no group with a varying target.
    """
    measures, cells = _names(measures, "measures"), _names(cells, "cells")
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    groups = cells + ([trial] if trial is not None else [])
    missing = [c for c in measures + [target, time] + groups if c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}")
    if df[measures + [target]].isna().any().any():
        raise ValueError("measures and target must not hold NaN")
    tau, valid, keys = _cell_taus(df, measures, target, groups, time)
    if not valid.any():
        raise ValueError(f"target {target!r} is constant over {time!r} in every cell")
    tau, keys = tau[valid], keys[valid].reset_index(drop=True)
    plan = resampling_plan(keys, n_boot, seed, (trial,) if trial is not None else (), cells)
    boot = np.array([tau[rows].mean(0) for rows in plan.rows])
    lo, hi = _quantiles(boot, ci)
    return pd.DataFrame(
        {
            "measure": measures,
            "tau": tau.mean(0),
            "tau_low": lo,
            "tau_high": hi,
            "frac_positive": (tau > 0).mean(0),
            "n_cells": len(tau),
        }
    )


def tau_by_group(df: pd.DataFrame, measures: Sequence[str], target: str, by: Sequence[str]) -> pd.DataFrame:
    r"""Kendall's :math:`\tau_b` (``scipy.stats.kendalltau``) of each measure with the target per group.

    Returns one row per group: the ``by`` columns, ``n`` and one column per measure (NaN where the
    target or the measure is constant in the group).
    """
    measures, by = _names(measures, "measures"), _names(by, "by")
    rows = []
    for key, g in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key), n=len(g))
        for m in measures:
            if g[m].nunique() < 2 or g[target].nunique() < 2:
                row[m] = float("nan")
            else:
                row[m] = float(_sstats.kendalltau(g[m], g[target]).statistic)
        rows.append(row)
    return pd.DataFrame(rows, columns=by + ["n"] + measures)


def budget_choices(
    df: pd.DataFrame,
    measure: str,
    budgets: Sequence[float],
    *,
    loss: str = "loss",
    by: Sequence[str] = ("dataset", "trial"),
    sparsity: str = "sparsity",
    max_loss: float = 1.0,
) -> pd.DataFrame:
    r"""The largest sparsity whose divergence stays under each budget, and the loss it leads to.

    Per group (``by``) the rows are one divergence curve :math:`d(s)` (``measure``, label-free) and
    the accuracy loss :math:`\ell(s)` (``loss``, in pp; e.g. :math:`-\Delta` at the last epoch).
    The chosen sparsity is the rule of :func:`latentkit.pruning.sparsity_for_budget`: the largest
    evaluated :math:`s` with :math:`d(s') \le \beta` for every :math:`s' \le s` (0 if none, with
    loss 0). The *oracle* is the largest :math:`s` with :math:`\ell(s') \le` ``max_loss`` for every
    :math:`s' \le s` (0 if none). ``ok`` says whether the choice keeps the loss under ``max_loss``.

    Returns
    -------
    DataFrame: the ``by`` columns, ``budget``, ``chosen``, ``divergence``, ``loss``, ``oracle``, ``ok``.
    """
    by = _names(by, "by")
    max_loss = check_nonnegative(max_loss, "max_loss")
    rows = []
    for key, g in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values(sparsity)
        s, d, ell = (g[c].to_numpy(float) for c in (sparsity, measure, loss))
        good = np.cumprod(ell <= max_loss).astype(bool)
        oracle = float(s[good][-1]) if good.any() else 0.0
        for b in budgets:
            b = check_nonnegative(b, "budget")
            under = np.cumprod(d <= b).astype(bool)
            k = int(np.flatnonzero(under)[-1]) if under.any() else -1
            chosen, dv, lv = (float(s[k]), float(d[k]), float(ell[k])) if k >= 0 else (0.0, 0.0, 0.0)
            row = dict(zip(by, key), budget=b, chosen=chosen, divergence=dv, loss=lv, oracle=oracle)
            rows.append({**row, "ok": lv <= max_loss})
    return pd.DataFrame(rows, columns=by + ["budget", "chosen", "divergence", "loss", "oracle", "ok"])
