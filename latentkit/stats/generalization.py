r"""The field's tests of "does measure X predict the outcome Y" (Jiang et al. 2020; Dziugaite et al. 2020).

A *run* is one row of a tidy results table (one network, dataset, method, sparsity, trial, epoch);
the *measure* and the *target* (e.g. ``delta_test`` or ``pd_test``) are two of its columns and the
*axes* are the hyperparameter columns. Trials are never averaged: a run is one trained network, and
two runs are *coupled* (compared in :func:`granulated_kendall` and :func:`sign_error`) only within
one trial (same dense network, same seed), so every statistic here depends on the measure only
through the signs :math:`\operatorname{sign}(m_i - m_j)` of its differences: a strictly increasing
transform of a measure gives exactly the same numbers.

* :func:`granulated_kendall` -- Kendall's :math:`\tau` over all runs and the granulated
  coefficient :math:`\Psi` (Jiang et al. 2020, "Fantastic Generalization Measures");
* :func:`conditional_mutual_information` -- their normalised conditional mutual information
  between :math:`V_m = \operatorname{sign}(m_i - m_j)` and :math:`V_y = \operatorname{sign}(y_i - y_j)`,
  minimum over the conditioning sets of at most ``max_size`` hyperparameters;
* :func:`sign_error` -- the robust sign-error of Dziugaite et al. 2020 ("In search of robust
  measures of generalization"): coupled pairs outside the seed noise, mean and worst environment.

The ``_*_arrays`` kernels take a row table and a matrix of measure columns, so
:mod:`latentkit.stats.resampling` evaluates every measure on the same resampled rows at once.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({'method': ['a', 'a', 'b', 'b'],
...                    'sparsity': [0.1, 0.5, 0.1, 0.5],
...                    'ap2': [1.0, 2.0, 1.5, 3.0],
...                    'pd_test': [0.5, 2.0, 1.0, 4.0]})
>>> from latentkit.stats.generalization import granulated_kendall
>>> axes = ('method', 'sparsity')
>>> r = granulated_kendall(df, 'ap2', 'pd_test', axes=axes, trial=None)
>>> type(r).__name__
'GranulatedKendall'
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _sps

from .._checks import check_int, check_nonnegative, check_positive
from ._common import _names, _require_table

__all__ = [
    "AXES",
    "CMIResult",
    "GranulatedKendall",
    "SignError",
    "conditional_mutual_information",
    "granulated_kendall",
    "seed_noise",
    "sign_error",
]

#: The hyperparameter axes of a results table (Jiang et al.'s axes for pruning runs).
AXES = ("method", "sparsity", "network", "dataset", "epoch")


# --------------------------------------------------------------------------------------------
# boundary checks and pair construction
# --------------------------------------------------------------------------------------------
def _column(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a column name (str); got {type(value).__name__} {value!r}")
    return value


def _check_runs(
    df: Any, measures: list[str], target: str, axes: list[str], trial: str | None, extra: Sequence[str] = ()
) -> pd.DataFrame:
    """Validate a results table: columns present, numeric finite measure/target, unique runs."""
    if trial is not None:
        _column(trial, "trial")
    ids = list(dict.fromkeys(axes + list(extra) + ([trial] if trial is not None else [])))
    _require_table(df, measures + [target] + ids)
    for c, what in [(m, "measure") for m in measures] + [(target, "target")]:
        col = df[c]
        if col.dtype == bool or not pd.api.types.is_numeric_dtype(col):
            raise TypeError(f"{what} column {c!r} must hold numbers; got dtype {col.dtype}")
        if not np.isfinite(col.to_numpy(float)).all():
            raise ValueError(f"{what} column {c!r} has NaN or infinite values: drop those rows first")
    dup = df.duplicated(ids) if ids else pd.Series(False, index=df.index)
    if dup.any():
        raise ValueError(
            f"the rows of df are not unique in {ids}: {int(dup.sum())} repeat a run (another column "
            "varies, e.g. epoch: filter it or add it to axes)"
        )
    return df


def _codes(df: pd.DataFrame, cols: Sequence[str], cache: dict[str, Any] | None = None) -> np.ndarray:
    """One integer code per row for the combination of ``cols`` (0 for every row when empty),
    numbered in order of first appearance: ``df.groupby(cols, sort=False, dropna=False).ngroup()``
    (tested equal), from ``pandas.factorize`` per column and numpy. ``cache`` (a dict for one
    ``df``) keeps each column's factorisation: the statistics ask for many combinations of the same
    columns of one table, for every bootstrap resample."""
    if not cols:
        return np.zeros(len(df), dtype=np.int64)
    cache = {} if cache is None else cache
    code = np.zeros(len(df), dtype=np.int64)
    for col in cols:
        if col not in cache:
            c, uniques = pd.factorize(df[col], use_na_sentinel=False)
            cache[col] = (c.astype(np.int64), max(len(uniques), 1))
        c, radix = cache[col]
        code = _first_appearance(code * radix + c)  # renumbered: the radix product stays below len(df)
    return code


def _first_appearance(code: np.ndarray) -> np.ndarray:
    """``code`` renumbered 0, 1, ... in order of first appearance."""
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def _pairs_within(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs ``i < j`` (positions) of rows that share ``code``."""
    order = np.argsort(code, kind="stable")
    sc = code[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    sizes = np.diff(np.r_[starts, len(sc)])
    left, right = [], []
    for n in np.unique(sizes[sizes > 1]):
        i, j = np.triu_indices(int(n), 1)
        base = starts[sizes == n][:, None]
        left.append(order[(base + i).ravel()])
        right.append(order[(base + j).ravel()])
    if not left:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(left), np.concatenate(right)


def _coupled(
    df: pd.DataFrame, axis: str, fixed: list[str], cache: dict[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of rows equal in every column of ``fixed`` and different in ``axis``, and their group
    ids (``cache``: as :func:`_codes`)."""
    code = _codes(df, fixed, cache)
    i, j = _pairs_within(code)
    values = df[axis].to_numpy()
    keep = values[i] != values[j]
    return i[keep], j[keep], code[i[keep]]


def _sign(a: np.ndarray) -> np.ndarray:
    return np.sign(a).astype(np.int8)


# --------------------------------------------------------------------------------------------
# granulated Kendall coefficient
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GranulatedKendall:
    r"""Kendall's :math:`\tau` over all runs and the granulated coefficient :math:`\Psi`.

    Attributes
    ----------
    measure, target : str
    tau : float
        Kendall's :math:`\tau_b` over all runs.
    psi : dict of str to float
        :math:`\psi_i` per axis (NaN where no group varies in that axis).
    Psi : float
        Mean of the finite :math:`\psi_i`.
    n_runs : int
    n_groups : dict of str to int
        Groups averaged in each :math:`\psi_i`.
    """

    measure: str
    target: str
    tau: float
    psi: dict[str, float]
    Psi: float
    n_runs: int
    n_groups: dict[str, int] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """One row: ``measure, target, n_runs, tau, psi_<axis>... , Psi``."""
        row = {"measure": self.measure, "target": self.target, "n_runs": self.n_runs, "tau": self.tau}
        row.update({f"psi_{a}": v for a, v in self.psi.items()})
        row["Psi"] = self.Psi
        return pd.DataFrame([row])


def _tau_all(m: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each column of ``m`` (n, k) with ``y`` (NaN for a constant column)."""
    out = np.full(m.shape[1], np.nan)
    if np.ptp(y) == 0:
        return out
    for c in range(m.shape[1]):
        if np.ptp(m[:, c]) > 0:
            out[c] = _sps.kendalltau(m[:, c], y).statistic
    return out


def _psi_arrays(
    df: pd.DataFrame,
    m: np.ndarray,
    y: np.ndarray,
    axes: list[str],
    trial: str | None,
    cache: dict[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    r"""Per axis, :math:`\psi_i` of every measure column (mean over groups of the in-group tau-b;
    ``cache``: as :func:`_codes`)."""
    psi, groups = {}, {}
    base = [trial] if trial is not None else []
    cache = {} if cache is None else cache
    for a in axes:
        i, j, g = _coupled(df, a, base + [b for b in axes if b != a], cache)
        sy = _sign(y[i] - y[j]).astype(float)
        sm = _sign(m[i] - m[j]).astype(float)
        _, gid = np.unique(g, return_inverse=True)
        ng = int(gid.max()) + 1 if len(gid) else 0
        den_y = np.bincount(gid, sy * sy, ng)
        valid = den_y > 0  # a group whose target is constant has nothing to predict: left out
        groups[a] = int(valid.sum())
        if not valid.any():
            psi[a] = np.full(m.shape[1], np.nan)
            continue
        vals = np.empty((ng, m.shape[1]))
        for c in range(m.shape[1]):
            num = np.bincount(gid, sm[:, c] * sy, ng)
            den = np.sqrt(np.bincount(gid, sm[:, c] ** 2, ng) * den_y)
            vals[:, c] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        psi[a] = vals[valid].mean(0)
    return psi, groups


def granulated_kendall(
    df: pd.DataFrame,
    measure: str,
    target: str,
    axes: Sequence[str] = AXES,
    *,
    trial: str | None = "trial",
) -> GranulatedKendall:
    r"""Kendall's :math:`\tau` and the granulated Kendall coefficient :math:`\Psi` of Jiang et al. 2020.

    Over all runs, :math:`\tau = \tau_b(m, y)` (``scipy.stats.kendalltau``). For an axis :math:`i`,
    the runs are split into groups that agree on every other axis (and on the trial): inside such
    a group only axis :math:`i` varies, and

    .. math::

        \tau_g = \frac{\sum_{a<b \in g} s^m_{ab} s^y_{ab}}
                      {\sqrt{\sum_{a<b} (s^m_{ab})^2 \sum_{a<b} (s^y_{ab})^2}},
        \quad s^v_{ab} = \operatorname{sign}(v_a - v_b),\qquad
        \psi_i = \frac{1}{|G_i|} \sum_{g \in G_i} \tau_g,\qquad
        \Psi = \frac{1}{n_{axes}} \sum_i \psi_i .

    A group whose target is constant is left out of :math:`G_i` (nothing to rank); a measure
    constant inside a group orders none of its pairs and scores :math:`\tau_g = 0` there. An axis
    with no group of two or more runs has :math:`\psi_i` = NaN and is left out of :math:`\Psi`.
    Measure = target gives :math:`\tau = \Psi = 1`; measure = -target gives -1.

    Parameters
    ----------
    df : DataFrame
        One row per run, unique in ``axes`` + ``trial``.
    measure, target : str
        Numeric columns without NaN.
    axes : list of str
        Hyperparameter columns (default :data:`AXES`).
    trial : str or None
        Trial column: runs are grouped only within one trial (``None``: no trial column).

    Returns
    -------
    GranulatedKendall

    Raises
    ------
    TypeError
        ``df`` not a DataFrame, non-string names, non-numeric columns.
    ValueError
        Missing columns, NaN values, repeated runs, an empty ``axes``.
    """
    measure, target = _column(measure, "measure"), _column(target, "target")
    axes = _names(axes, "axes")
    if not axes:
        raise ValueError("axes must name at least one hyperparameter column")
    _check_runs(df, [measure], target, axes, trial)
    df = df.reset_index(drop=True)
    m, y = df[[measure]].to_numpy(float), df[target].to_numpy(float)
    psi, groups = _psi_arrays(df, m, y, axes, trial)
    per = {a: float(v[0]) for a, v in psi.items()}
    finite = [v for v in per.values() if np.isfinite(v)]
    return GranulatedKendall(
        measure=measure,
        target=target,
        tau=float(_tau_all(m, y)[0]),
        psi=per,
        Psi=float(np.mean(finite)) if finite else float("nan"),
        n_runs=len(df),
        n_groups=groups,
    )


# --------------------------------------------------------------------------------------------
# conditional mutual information
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CMIResult:
    r"""Normalised conditional mutual information, minimum over the conditioning sets.

    Attributes
    ----------
    measure, target : str
    cmi : float
        :math:`\min_S \hat I(V_m; V_y \mid S) / \hat H(V_y \mid S)` over the sets with a defined value.
    argmin : tuple of str
        The conditioning set that attains the minimum.
    table : DataFrame
        One row per set: ``given`` (tuple), ``size``, ``n_pairs``, ``mi``, ``entropy``, ``cmi``.
    """

    measure: str
    target: str
    cmi: float
    argmin: tuple[str, ...]
    table: pd.DataFrame


def _subsets(given: list[str], max_size: int) -> list[tuple[str, ...]]:
    return [s for k in range(max_size + 1) for s in itertools.combinations(given, k)]


def _cmi_arrays(
    df: pd.DataFrame,
    m: np.ndarray,
    y: np.ndarray,
    subsets: list[tuple[str, ...]],
    cache: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per subset: pair counts, MI (k measures), H(V_y | S), normalised CMI (bits) (``cache``: as
    :func:`_codes`)."""
    cache = {} if cache is None else cache
    i, j = np.triu_indices(len(df), 1)
    sy = _sign(y[i] - y[j])
    keep = sy != 0  # a target tie has no order to predict: the pair is left out
    i, j, sy = i[keep], j[keep], sy[keep]
    sm = _sign(m[i] - m[j])  # (pairs, k); a measure tie is the third value 0 of V_m
    n_s, k = len(subsets), m.shape[1]
    counts, mi, ent = np.zeros(n_s, np.int64), np.full((n_s, k), np.nan), np.full(n_s, np.nan)
    for s, cols in enumerate(subsets):
        code = _codes(df, cols, cache)
        same = code[i] == code[j]
        if not same.any():
            continue
        _, stratum = np.unique(code[i][same], return_inverse=True)
        counts[s] = int(same.sum())
        mi[s], ent[s] = _conditional_mi(stratum, sm[same], sy[same])
    with np.errstate(invalid="ignore", divide="ignore"):
        cmi = np.where(ent[:, None] > 0, mi / np.where(ent[:, None] > 0, ent[:, None], 1.0), np.nan)
    return counts, mi, ent, cmi


def _conditional_mi(stratum: np.ndarray, sm: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, float]:
    r"""``I(V_m; V_y | S)`` per measure column and ``H(V_y | S)`` in bits, both pair orientations.

    Each unordered pair counts once as :math:`(V_m, V_y)` and once as :math:`(-V_m, -V_y)`, so the
    estimate does not depend on the order of the rows.
    """
    ns = int(stratum.max()) + 1
    total = 2.0 * len(sy)
    yi = (sy > 0).astype(np.int64)  # V_y in {-1, +1} -> 0/1; flipped orientation -> 1 - yi
    hy = np.bincount(stratum * 2 + yi, minlength=2 * ns) + np.bincount(stratum * 2 + 1 - yi, minlength=2 * ns)
    hy = hy.reshape(ns, 2).astype(float)
    ps = hy.sum(1) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        py_s = hy / hy.sum(1, keepdims=True)
        h_y = float(-(ps[:, None] * np.where(py_s > 0, py_s * np.log2(py_s), 0.0)).sum())
    mis = np.empty(sm.shape[1])
    for c in range(sm.shape[1]):
        mv = sm[:, c].astype(np.int64) + 1  # 0, 1, 2
        joint = np.bincount(stratum * 6 + mv * 2 + yi, minlength=6 * ns)
        joint = joint + np.bincount(stratum * 6 + (2 - mv) * 2 + 1 - yi, minlength=6 * ns)
        p = joint.reshape(ns, 3, 2) / total
        pm = p.sum(2, keepdims=True)
        py = p.sum(1, keepdims=True)
        pss = p.sum((1, 2), keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log2(p * pss / (pm * py)), 0.0)
        mis[c] = max(float(terms.sum()), 0.0)
    return mis, h_y


def conditional_mutual_information(
    df: pd.DataFrame,
    measure: str,
    target: str,
    given: Sequence[str] = AXES,
    max_size: int = 2,
) -> CMIResult:
    r"""Jiang et al.'s conditional mutual information between the orders of measure and target.

    Over unordered pairs of runs :math:`(a, b)`, :math:`V_y = \operatorname{sign}(y_a - y_b)` and
    :math:`V_m = \operatorname{sign}(m_a - m_b)`. For a set :math:`S` of hyperparameters
    (every subset of ``given`` with :math:`|S| \le` ``max_size``, the empty set included), the
    pairs are those whose two runs take the *same* values on every column of :math:`S`; the value
    they share is the stratum :math:`s`. From the empirical joint table of :math:`(s, V_m, V_y)`,

    .. math::

        \hat I(V_m; V_y \mid S) = \sum_{s, u, v} p(s, u, v)
            \log_2 \frac{p(s)\, p(s, u, v)}{p(s, u)\, p(s, v)}, \qquad
        \mathrm{CMI}_S = \frac{\hat I(V_m; V_y \mid S)}{\hat H(V_y \mid S)},

    and the result is :math:`\min_S \mathrm{CMI}_S` over the sets where :math:`\hat H(V_y \mid S) > 0`.
    Ties: a pair with :math:`y_a = y_b` is left out (no order to predict); a measure tie is the third
    value :math:`V_m = 0`. Each pair counts in both orientations (:math:`(V_m, V_y)` and
    :math:`(-V_m, -V_y)`), so the result does not depend on the row order. Measure = target (or
    -target) gives 1; a measure that is a function of the columns of :math:`S` alone is constant on
    every pair sharing them, so :math:`\mathrm{CMI}_S = 0`.

    Parameters
    ----------
    df : DataFrame
        One row per run (all trials: pairs of runs of different trials are compared too).
    measure, target : str
        Numeric columns without NaN.
    given : list of str
        The hyperparameter columns to condition on.
    max_size : int >= 0
        Largest conditioning set (Jiang et al.: 2).

    Returns
    -------
    CMIResult

    Raises
    ------
    TypeError
        ``df`` not a DataFrame, non-string names, non-numeric columns, a non-integer ``max_size``.
    ValueError
        Missing columns, NaN values, ``max_size`` larger than ``len(given)``, no set with a defined
        value (e.g. a constant target).
    """
    measure, target = _column(measure, "measure"), _column(target, "target")
    given = _names(given, "given")
    max_size = check_int(max_size, "max_size", minimum=0, maximum=len(given))
    _require_table(df, [measure, target] + given)
    _check_runs(df, [measure], target, [], None)  # types and NaN (repeated rows are allowed here)
    df = df.reset_index(drop=True)
    subsets = _subsets(given, max_size)
    counts, mi, ent, cmi = _cmi_arrays(df, df[[measure]].to_numpy(float), df[target].to_numpy(float), subsets)
    table = pd.DataFrame(
        {
            "given": subsets,
            "size": [len(s) for s in subsets],
            "n_pairs": counts,
            "mi": mi[:, 0],
            "entropy": ent,
            "cmi": cmi[:, 0],
        }
    )
    if not np.isfinite(cmi[:, 0]).any():
        raise ValueError(f"the CMI is undefined for every set: target {target!r} has no ordered pair")
    best = int(np.nanargmin(cmi[:, 0]))
    return CMIResult(measure, target, float(cmi[best, 0]), subsets[best], table)


# --------------------------------------------------------------------------------------------
# robust sign-error
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignError:
    r"""The robust sign-error of one measure.

    Attributes
    ----------
    measure, target : str
    mean : float
        Mean sign-error over every kept coupled pair.
    worst : float
        The largest per-environment mean.
    per_environment : DataFrame
        Environment columns, ``n_pairs``, ``sign_error`` (the distribution across environments).
    threshold : float
        Pairs with :math:`|y_a - y_b| \le` ``threshold`` were dropped.
    n_pairs, n_dropped : int
    """

    measure: str
    target: str
    mean: float
    worst: float
    per_environment: pd.DataFrame
    threshold: float
    n_pairs: int
    n_dropped: int


def seed_noise(df: pd.DataFrame, target: str, cells: Sequence[str]) -> float:
    r"""Pooled seed SD of ``target`` across the trials of each cell.

    :math:`\hat\sigma = \sqrt{\sum_c \sum_t (y_{ct} - \bar y_c)^2 / \sum_c (n_c - 1)}`.
    ``cells`` are the columns of one cell (every axis); its rows are its trials.

    Raises
    ------
    ValueError
        No cell has two trials (the seed noise cannot be estimated: pass a float ``noise``).
    """
    g = df.groupby(list(cells), sort=False, dropna=False)[target]
    dof = float((g.count() - 1).clip(lower=0).sum())
    if dof == 0:
        raise ValueError(
            "no cell of df has two trials, so the seed noise cannot be estimated: pass noise=<float>"
        )
    ss = float(((df[target] - g.transform("mean")) ** 2).sum())
    return float(np.sqrt(ss / dof))


def _sign_error_arrays(
    df: pd.DataFrame,
    m: np.ndarray,
    y: np.ndarray,
    axes: list[str],
    env: list[str],
    trial: str | None,
    threshold: float,
    cache: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per-pair sign errors (pairs, k) and their environment codes, kept and dropped counts
    (``cache``: as :func:`_codes`)."""
    base = ([trial] if trial is not None else []) + env
    vary = [a for a in axes if a not in env]
    errs, envs, dropped = [], [], 0
    cache = {} if cache is None else cache
    env_code = _codes(df, env, cache)
    for a in vary:
        i, j, _ = _coupled(df, a, base + [b for b in vary if b != a], cache)
        dy = y[i] - y[j]
        keep = np.abs(dy) > threshold
        dropped += int((~keep).sum())
        i, j, dy = i[keep], j[keep], dy[keep]
        prod = np.sign(m[i] - m[j]) * np.sign(dy)[:, None]
        errs.append(np.where(prod < 0, 1.0, np.where(prod > 0, 0.0, 0.5)))
        envs.append(env_code[i])
    e = np.concatenate(errs) if errs else np.zeros((0, m.shape[1]))
    c = np.concatenate(envs) if envs else np.zeros(0, np.int64)
    return e, c, len(c), dropped


def sign_error(
    df: pd.DataFrame,
    measure: str,
    target: str,
    axes: Sequence[str] = AXES,
    environment: Sequence[str] = ("network", "dataset"),
    noise: float | None = None,
    *,
    noise_factor: float = 1.0,
    trial: str | None = "trial",
) -> SignError:
    r"""The robust sign-error of Dziugaite et al. 2020, mean and worst case over environments.

    Coupled pairs are two runs of the same trial and the same environment (``environment``
    columns) that differ in exactly one of the other ``axes``. A pair is dropped when its target
    difference is within the seed noise, :math:`|y_a - y_b| \le \delta`; a kept pair's error is

    .. math::

        e_{ab} = \mathbb 1[\operatorname{sign}(m_a - m_b) \ne \operatorname{sign}(y_a - y_b)],
        \quad e_{ab} = 1/2 \text{ for a measure tie } m_a = m_b \text{ (a coin flip)}.

    The threshold :math:`\delta` is ``noise`` if given (a float >= 0, in the target's units), else
    :math:`\delta = c \sqrt 2\, \hat\sigma` with :math:`c` = ``noise_factor`` and :math:`\hat\sigma`
    the pooled SD of the target across the trials of one cell (:func:`seed_noise`): one seed SD of
    the difference of two independent runs. The result holds the mean over all kept pairs, the
    mean per environment and its maximum (the worst case). Measure = target gives 0, measure =
    -target gives 1, a constant measure 1/2.

    Parameters
    ----------
    df : DataFrame
        One row per run, unique in ``axes`` + ``environment`` + ``trial``.
    measure, target : str
    axes : list of str
        Hyperparameter columns (the environment columns among them are held fixed).
    environment : list of str
        Columns of one environment (default network and dataset).
    noise : float >= 0, optional
        The threshold :math:`\delta` itself (skips the estimate).
    noise_factor : float > 0
        :math:`c` in the estimated threshold.
    trial : str or None
        The trial column (pairs are coupled within a trial).

    Returns
    -------
    SignError

    Raises
    ------
    TypeError
        Wrong types of ``df``, names, ``noise`` or ``noise_factor``.
    ValueError
        Missing columns, NaN values, repeated runs, no cell with two trials when ``noise`` is
        None, no kept pair.
    """
    measure, target = _column(measure, "measure"), _column(target, "target")
    axes, env = _names(axes, "axes"), _names(environment, "environment")
    noise_factor = check_positive(noise_factor, "noise_factor")
    _check_runs(df, [measure], target, axes, trial, env)
    df = df.reset_index(drop=True)
    cells = list(dict.fromkeys(axes + env))
    if noise is None:
        threshold = noise_factor * np.sqrt(2.0) * seed_noise(df, target, cells)
    else:
        threshold = check_nonnegative(noise, "noise")
    e, c, n, dropped = _sign_error_arrays(
        df, df[[measure]].to_numpy(float), df[target].to_numpy(float), axes, env, trial, threshold
    )
    if n == 0:
        raise ValueError(f"no coupled pair has a target difference above the noise threshold {threshold:g}")
    per = _per_environment(df, env, c, e[:, 0])
    return SignError(
        measure,
        target,
        float(e[:, 0].mean()),
        float(per["sign_error"].max()),
        per,
        float(threshold),
        n,
        dropped,
    )


def _per_environment(df: pd.DataFrame, env: list[str], code: np.ndarray, err: np.ndarray) -> pd.DataFrame:
    """Mean sign-error and pair count per environment (codes number environments by first appearance)."""
    n = np.bincount(code)
    s = np.bincount(code, err)
    present = np.flatnonzero(n)
    out = pd.DataFrame({"n_pairs": n[present], "sign_error": s[present] / n[present]})
    if not env:
        return out
    envs = df[env].drop_duplicates().reset_index(drop=True).iloc[present].reset_index(drop=True)
    return pd.concat([envs, out], axis=1)
