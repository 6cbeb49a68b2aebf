r"""Rank correlations of results tables with percentile bootstrap intervals (torch-free).

* :func:`spearman_rows`, :func:`kendall_rows` -- row-wise Spearman :math:`\rho` and Kendall
  :math:`\tau_b` of ``(R, n)`` arrays, vectorised for bootstraps;
* :func:`correlations`, :func:`correlations_by_level` -- Spearman and Kendall correlations of AP
  measures with PD per group, at one or several pooling levels;
* :func:`bootstrap_spearman` -- one Spearman :math:`\rho` with its bootstrap interval and the paired
  interval of a difference.

Examples
--------
>>> from latentkit.stats.correlation import spearman_rows
>>> import numpy as np
>>> x, y = np.array([[1.0, 2.0, 3.0]]), np.array([[3.0, 2.0, 1.0]])
>>> spearman_rows(x, y).round(3).tolist()
[-1.0]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _sps

from .._checks import check_choice, check_fraction, check_int
from ..options import CORRELATION_LEVELS
from ._common import _names, _require_table, _seed, _vector

#: What :func:`correlations` does with NaN values in a measure or target column.
NAN_POLICIES = ("raise", "omit")
#: spearman, spearman_p, spearman_low, spearman_high, then the same for kendall.
_CORR_KEYS = tuple(f"{c}{s}" for c in ("spearman", "kendall") for s in ("", "_p", "_low", "_high"))


# --------------------------------------------------------------------------------------------
# row-wise rank correlations
# --------------------------------------------------------------------------------------------
def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Mid-ranks of each row of ``a`` (ties share the mean of their ranks), as ``scipy.stats.rankdata``."""
    return _sps.rankdata(a, axis=1)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Pearson correlation of each row pair: :math:`\sum \bar a \bar b / \sqrt{\sum \bar a^2 \sum \bar b^2}`.

    :math:`\bar a = a - \operatorname{mean}(a)`; NaN for a constant row (zero denominator).
    """
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Spearman's :math:`\rho` of each row pair of ``x, y`` (R, n).

    :math:`\rho = \operatorname{corr}(\operatorname{rank}(x), \operatorname{rank}(y))` with mid-ranks
    for ties, as ``scipy.stats.spearmanr``; NaN where a row is constant.

    Returns
    -------
    numpy.ndarray of shape (R,)
    """
    return _pearson_rows(_rank_rows(x), _rank_rows(y))


def kendall_rows(x: np.ndarray, y: np.ndarray, chunk: int = 64) -> np.ndarray:
    r"""Kendall's :math:`\tau_b` of each row pair of ``x, y`` (R, n), vectorised.

    :math:`\tau_b = \sum_{i<j} s^x_{ij} s^y_{ij} / \sqrt{\sum_{i<j} (s^x_{ij})^2 \sum_{i<j} (s^y_{ij})^2}`
    with :math:`s_{ij} = \operatorname{sign}(v_i - v_j)` (ties count 0), as ``scipy.stats.kendalltau``;
    NaN where a row is constant. Rows longer than 256 use scipy's :math:`O(n \log n)` algorithm per
    row; shorter ones the sign matrices, ``chunk`` rows at a time (at most :math:`2^{24}` signs).

    Returns
    -------
    numpy.ndarray of shape (R,)
    """
    out = np.empty(x.shape[0])
    if x.shape[1] > 256:  # long rows: scipy's O(n log n) tau-b per row beats the O(n^2) sign matrices
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(x.shape[0]):
                out[i] = _sps.kendalltau(x[i], y[i]).statistic
        return out
    # at most ~2**24 pair signs per array at once (memory stays ~128 MB for long rows; same result)
    chunk = max(1, min(int(chunk), (1 << 24) // max(1, x.shape[1] ** 2)))
    for i in range(0, x.shape[0], chunk):
        sx = np.sign(x[i : i + chunk, :, None] - x[i : i + chunk, None, :])
        sy = np.sign(y[i : i + chunk, :, None] - y[i : i + chunk, None, :])
        num = (sx * sy).sum((1, 2))
        den = np.sqrt((sx * sx).sum((1, 2)) * (sy * sy).sum((1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i : i + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def _kendall_resamples(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    r"""Kendall's :math:`\tau_b` of every bootstrap resample ``(x[idx[r]], y[idx[r]])``, equal bit for
    bit to ``kendall_rows(x[idx], y[idx])`` for ``len(x) <= 256`` (tested), without its sign tensors.

    A resample's pair signs are entries of the points' sign matrices :math:`S^x_{ij} =
    \operatorname{sign}(x_i - x_j)`, so with :math:`c_r` the multiplicity of each point in resample
    :math:`r`, :math:`\sum_{p,q} s^x_{pq} s^y_{pq} = c_r^\top (S^x \circ S^y) c_r` and
    :math:`\sum_{p,q} (s^x_{pq})^2 = c_r^\top |S^x| c_r`: integers, computed exactly in float64, hence
    the same numerator and denominator as the sign tensors' sums.
    """
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    counts = np.zeros((idx.shape[0], len(x)))
    np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    num = ((counts @ (sx * sy)) * counts).sum(1)
    den = np.sqrt(((counts @ np.abs(sx)) * counts).sum(1) * ((counts @ np.abs(sy)) * counts).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


# --------------------------------------------------------------------------------------------
# correlation with a percentile bootstrap interval
# --------------------------------------------------------------------------------------------
def _corr_with_ci(
    x: np.ndarray, y: np.ndarray, n_boot: int, ci: float, rng: np.random.Generator
) -> dict[str, Any]:
    r"""Spearman and Kendall correlation of ``x, y`` with percentile bootstrap intervals.

    ``n_boot`` resamples of the points with replacement (indices drawn from ``rng``); the interval
    is the :math:`(\alpha, 1 - \alpha)` quantiles, :math:`\alpha = (1 - ci) / 2`, of the finite
    resampled values (constant resamples are dropped and counted in ``note``).
    """
    n = len(x)
    res: dict[str, Any] = {"n": n}
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    if n < 3 or constant:
        res.update(dict.fromkeys(_CORR_KEYS, float("nan")))
        res["note"] = "fewer than 3 points" if n < 3 else "constant input: correlation undefined"
        return res
    sr = _sps.spearmanr(x, y)
    kt = _sps.kendalltau(x, y)
    res.update(spearman=float(sr.statistic), spearman_p=float(sr.pvalue))
    res.update(kendall=float(kt.statistic), kendall_p=float(kt.pvalue))
    idx = rng.integers(0, n, size=(n_boot, n))
    bx, by = x[idx], y[idx]
    alpha = (1.0 - ci) / 2
    notes = []
    for name in ("spearman", "kendall"):
        if name == "spearman":
            vals = spearman_rows(bx, by)
        else:  # the sign-tensor rows for up to 256 points, from the points' sign matrices (same bits)
            vals = _kendall_resamples(x, y, idx) if n <= 256 else kendall_rows(bx, by)
        ok = vals[np.isfinite(vals)]
        if len(ok) < n_boot:
            notes.append(f"{n_boot - len(ok)} constant {name} resamples dropped")
        res[f"{name}_low"] = float(np.quantile(ok, alpha)) if len(ok) else float("nan")
        res[f"{name}_high"] = float(np.quantile(ok, 1 - alpha)) if len(ok) else float("nan")
    res["note"] = "; ".join(notes)
    return res


def _check_nan(data: pd.DataFrame, cols: Sequence[str], nan_policy: str) -> None:
    """Raise (``nan_policy="raise"``) naming the first column with NaN values and its rows."""
    if nan_policy != "raise":
        return
    for c in cols:
        bad = data.index[data[c].isna().to_numpy()]
        if len(bad):
            shown = ", ".join(map(str, bad[:10])) + (f" (+{len(bad) - 10} more)" if len(bad) > 10 else "")
            raise ValueError(
                f"column {c!r} of df has NaN values in {len(bad)} row(s) (index {shown}); a rank correlation "
                "with a missing value is undefined: drop those rows or pass nan_policy='omit'"
            )


def _level_points(df: pd.DataFrame, level: str, epoch: Any) -> tuple[pd.DataFrame, list[str]]:
    """The rows a ``level`` pools and the columns that identify one point of it."""
    if level != "cells":
        return df, ["method", "sparsity", "epoch"]
    e = int(df["epoch"].max()) if epoch is None else check_int(epoch, "epoch", minimum=0)
    data = df[df["epoch"] == e]
    if data.empty:
        raise ValueError(f"no rows at epoch {e}")
    return data, ["method", "sparsity"]


def correlations(
    df: pd.DataFrame,
    measures: Sequence[str] | None = None,
    targets: Sequence[str] = ("pd_test",),
    level: str = "cells",
    by: Sequence[str] = ("network", "dataset"),
    epoch: int | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int | None = 0,
    *,
    nan_policy: str = "raise",
) -> pd.DataFrame:
    r"""Spearman and Kendall correlations between AP measures and PD, with bootstrap CIs.

    For each group of ``by`` and each (measure, target), the points of ``level`` are trial means
    and the correlation is Spearman's :math:`\rho` (``scipy.stats.spearmanr``) and Kendall's
    :math:`\tau_b` (``scipy.stats.kendalltau``) with their p-values; the interval is the percentile
    bootstrap over points: ``n_boot`` resamples with replacement, quantiles
    :math:`\alpha, 1 - \alpha` with :math:`\alpha = (1 - ci) / 2`.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    measures : list of str, optional
        Column names (default ``ap2`` and every ``ap3_*`` column).
    targets : list of str
        PD columns (default ``("pd_test",)``; ``pd_train`` too if wanted).
    level : {"cells", "epochs", "within"}
        ``"cells"``: one point per (method, sparsity) at ``epoch`` (default: the last), averaged
        over trials -- "across the grid"; ``"epochs"``: one point per (method, sparsity, epoch),
        trial-averaged -- "across cells and epochs"; ``"within"``: for each (method, sparsity)
        separately, across its epochs (trial-averaged) -- does AP settle with PD?
    by : list of str
        Grouping columns (one correlation per group).
    epoch : int, optional
        The epoch for ``level="cells"`` (default the largest in the table).
    n_boot, ci, seed : int >= 10, float in (0, 1), int >= 0 or None
        Percentile bootstrap over points (resampling points with replacement).
    nan_policy : {"raise", "omit"}
        A NaN in a measure or target column: ``"raise"`` (default) a ValueError naming the column
        and the rows; ``"omit"`` drop those rows for that (measure, target) pair only.

    Returns
    -------
    DataFrame with ``by`` (+ ``method``, ``sparsity`` for ``within``), ``level``, ``measure``,
    ``target``, ``n``, ``spearman``, ``spearman_p``, ``spearman_low``, ``spearman_high``,
    ``kendall``, ``kendall_p``, ``kendall_low``, ``kendall_high``, ``note``. Undefined
    correlations (constant input, fewer than 3 points) are NaN with the reason in ``note``.

    Raises
    ------
    TypeError
        ``df`` not a DataFrame, ``measures``/``targets``/``by`` not lists of names, a non-integer
        ``n_boot``/``epoch``/``seed`` or a non-number ``ci`` (booleans and strings included).
    ValueError
        An empty table, missing columns (named), an unknown ``level``/``nan_policy``, no rows at
        ``epoch``, NaN values with ``nan_policy="raise"``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    check_choice(level, "level", CORRELATION_LEVELS)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    rng = np.random.default_rng(_seed(seed))
    if measures is None:
        measures = ["ap2"] + [c for c in df.columns if str(c).startswith("ap3_")]
    measures, targets, by = _names(measures, "measures"), _names(targets, "targets"), _names(by, "by")
    _require_table(df, measures + targets + by + ["method", "sparsity", "epoch"])
    data, point_keys = _level_points(df, level, epoch)
    _check_nan(data, measures + targets, nan_policy)
    cols = list(dict.fromkeys(measures + targets))
    avg = data.groupby(by + point_keys, sort=False)[cols].mean().reset_index()
    group_keys = by + (["method", "sparsity"] if level == "within" else [])
    groups = _groups(avg, group_keys)
    per_pair = {}
    if nan_policy == "omit":  # each (measure, target) pair keeps the rows where both are present
        for m, t in ((m, t) for m in measures for t in targets):
            sub = data[data[m].notna() & data[t].notna()]
            per_pair[m, t] = _groups(
                sub.groupby(by + point_keys, sort=False)[[m, t]].mean().reset_index(), group_keys
            )
    rows = []
    for gval, g in groups.items():
        for m in measures:
            for t in targets:
                pts = per_pair[m, t].get(gval, g.iloc[:0]) if per_pair else g
                r = dict(zip(group_keys, gval, strict=True))
                r.update({"level": level, "measure": m, "target": t})
                r.update(_corr_with_ci(pts[m].to_numpy(float), pts[t].to_numpy(float), n_boot, ci, rng))
                rows.append(r)
    return pd.DataFrame(rows)


def _groups(tab: pd.DataFrame, keys: list[str]) -> dict[tuple, pd.DataFrame]:
    """The groups of ``tab`` by ``keys`` in order of appearance, keyed by tuples (``{(): tab}``: no keys)."""
    if not keys:
        return {(): tab}
    return {(k if isinstance(k, tuple) else (k,)): g for k, g in tab.groupby(keys, sort=False)}


# --------------------------------------------------------------------------------------------
# several levels at once
# --------------------------------------------------------------------------------------------
def _parse_level(name: Any) -> tuple[str, int | None]:
    """``(kind, epoch)`` of a level name: ``cells`` (last epoch), ``cells@<e>``, ``epochs``, ``within``."""
    if name in CORRELATION_LEVELS:
        return name, None
    if isinstance(name, str) and name.startswith("cells@") and name[6:].isdigit():
        return "cells", int(name[6:])
    raise ValueError(f"levels must be 'cells', 'cells@<epoch>', 'epochs' or 'within'; got {name!r}")


def correlations_by_level(
    df: pd.DataFrame,
    levels: Sequence[str] = ("cells@0", "cells", "epochs"),
    *,
    measures: Sequence[str] | None = None,
    targets: Sequence[str] = ("pd_test",),
    by: Sequence[str] = ("network", "dataset"),
    n_boot: int | Mapping[str, int] = 1000,
    ci: float = 0.95,
    seed: int | None = 0,
    nan_policy: str = "raise",
) -> pd.DataFrame:
    r""":func:`correlations` at several pooling levels, concatenated, the ``level`` column naming each.

    Each level is one call of :func:`correlations` with the same ``seed`` (so a level's numbers do
    not depend on which other levels are asked for):

    * ``"cells@<e>"`` -- one point per (method, sparsity) cell at fine-tuning epoch ``e``;
    * ``"cells"`` -- the same at the last epoch of the table (the name stays ``"cells"``);
    * ``"epochs"`` -- one point per (cell, epoch); ``"within"`` -- per cell, across its epochs.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    levels : list of str
        Level names, in the order of the output rows (no repeats).
    measures, targets, by, ci, seed, nan_policy
        As in :func:`correlations`.
    n_boot : int or mapping of level name to int
        Bootstrap resamples, one number for every level or one per level name (e.g.
        ``{"cells@0": 1000, "cells": 1000, "epochs": 300}``: Kendall's bootstrap is
        :math:`O(n^2)` in the number of points, and ``epochs`` has the most).

    Returns
    -------
    DataFrame with the columns of :func:`correlations`, levels one after the other.

    Raises
    ------
    TypeError, ValueError
        As :func:`correlations`; ``levels`` empty, a string, repeated or unknown; ``n_boot`` a
        mapping that lacks a level.
    """
    if isinstance(levels, str) or not isinstance(levels, Sequence) or len(levels) == 0:
        raise ValueError(f"levels must be a non-empty list of level names; got {levels!r}")
    parsed = [(name, *_parse_level(name)) for name in levels]
    if len(set(levels)) != len(levels):
        raise ValueError(f"levels repeat: {list(levels)}")
    if isinstance(n_boot, Mapping):
        missing = [name for name in levels if name not in n_boot]
        if missing:
            raise ValueError(f"n_boot has no entry for level(s) {missing}; it has {list(n_boot)}")
    parts = []
    for name, kind, epoch in parsed:
        nb = n_boot[name] if isinstance(n_boot, Mapping) else n_boot
        c = correlations(
            df,
            measures,
            targets,
            level=kind,
            by=by,
            epoch=epoch,
            n_boot=nb,
            ci=ci,
            seed=seed,
            nan_policy=nan_policy,
        )
        parts.append(c.assign(level=name))
    return pd.concat(parts, ignore_index=True)


def bootstrap_spearman(
    x: Any,
    y: Any,
    *,
    reference: Any = None,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> dict[str, float]:
    r"""Spearman's :math:`\rho(x, y)` with a percentile bootstrap interval, and a paired difference.

    ``n_boot`` resamples of the ``n`` points with replacement, the indices drawn at once as
    ``default_rng(seed).integers(0, n, size=(n_boot, n))``; :math:`\rho^*_b` = Spearman of resample
    ``b`` (:func:`spearman_rows`; NaN for a constant resample, left out of the percentiles). The
    interval is the ``(100 - 100 ci) / 2`` and ``100 - (100 - 100 ci) / 2`` percentiles of
    :math:`\rho^*` (2.5 and 97.5 for ``ci = 0.95``).

    With ``reference`` (another measure ``r`` of the same points) the *paired* difference
    :math:`\Delta^*_b = \rho^*_b(x, y) - \rho^*_b(r, y)` uses the same resampled points for both
    measures, so what they share cancels; ``diff_mean`` is the mean of :math:`\Delta^*` and
    ``diff_low``/``diff_high`` its percentile interval (an interval above 0: ``x`` tracks ``y``
    better than ``r``).

    Parameters
    ----------
    x, y : 1-D arrays of n >= 3 finite numbers
    reference : 1-D array of n finite numbers, optional
    n_boot : int >= 10
    ci : float in (0, 1)
    seed : int >= 0 or numpy.random.Generator
        Same seed and ``n``, same resamples: every call with the same seed pairs with every other.

    Returns
    -------
    dict
        ``n``, ``spearman`` (``scipy.stats.spearmanr`` on all points), ``spearman_low``,
        ``spearman_high``; with ``reference`` also ``diff_mean``, ``diff_low``, ``diff_high``.

    Raises
    ------
    TypeError
        Non-numeric arrays, a non-integer ``n_boot``, a non-number ``ci``, a bad ``seed``.
    ValueError
        Arrays of different lengths, fewer than 3 points, NaN/inf values.
    """
    arrays = {"x": _vector(x, "x"), "y": _vector(y, "y")}
    if reference is not None:
        arrays["reference"] = _vector(reference, "reference")
    n = len(arrays["x"])
    bad = {k: len(v) for k, v in arrays.items() if len(v) != n}
    if bad:
        raise ValueError(f"x, y and reference must have the same length; got x {n} and {bad}")
    if n < 3:
        raise ValueError(f"x and y need at least 3 points; got {n}")
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    rng = (
        seed
        if isinstance(seed, np.random.Generator)
        else np.random.default_rng(check_int(seed, "seed", minimum=0))
    )
    idx = rng.integers(0, n, size=(n_boot, n))
    q = (100 - 100 * ci) / 2
    xv, yv = arrays["x"], arrays["y"]
    boot = spearman_rows(xv[idx], yv[idx])
    lo, hi = np.nanpercentile(boot, [q, 100 - q])
    out = {
        "n": n,
        "spearman": float(_sps.spearmanr(xv, yv)[0]),
        "spearman_low": float(lo),
        "spearman_high": float(hi),
    }
    if reference is not None:
        diff = boot - spearman_rows(arrays["reference"][idx], yv[idx])
        lo, hi = np.nanpercentile(diff, [q, 100 - q])
        out.update({"diff_mean": float(np.nanmean(diff)), "diff_low": float(lo), "diff_high": float(hi)})
    return out
