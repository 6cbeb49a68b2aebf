r"""One table that scores measures side by side: tau, Psi, CMI and sign-error with paired CIs.

:func:`measure_table` is the function a chapter calls: for a list of measure columns it reports
Kendall's :math:`\tau`, the granulated :math:`\Psi`, the minimum conditional mutual information
and the robust sign-error (mean and worst environment), each with a percentile interval from one
paired, hierarchical :class:`~latentkit.stats.resampling.ResamplingPlan` shared by all measures.
:func:`add_random_measure` adds the seeded random baseline; the other baselines
(:data:`BASELINES`) are columns of the results table (``sparsity``, ``ap2``, ``obd`` from
:func:`latentkit.patterns.obd_saliency`).

Examples
--------
>>> import pandas as pd
>>> from latentkit.stats.comparison import add_random_measure
>>> df = pd.DataFrame({'ap2': [0.1, 0.2, 0.3]})
>>> list(add_random_measure(df).columns)
['ap2', 'random']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import check_fraction, check_int, check_nonnegative, check_positive
from ._common import _names, _seed
from .generalization import AXES, _check_runs, _column, seed_noise
from .resampling import CELLS, STATISTICS, _quantiles, resampling_plan, statistics_of

__all__ = ["BASELINES", "add_random_measure", "measure_table"]

#: The baselines every measure is reported next to (columns of a results table).
BASELINES = ("sparsity", "random", "ap2", "obd")


def add_random_measure(df: pd.DataFrame, seed: int = 0, column: str = "random") -> pd.DataFrame:
    r"""A copy of ``df`` with a seeded random baseline measure :math:`r_i \sim U(0, 1)` i.i.d. per row.

    ``default_rng(seed).random(len(df))``: a measure that knows nothing, so every score of a real
    measure should beat it (:math:`\tau, \Psi \approx 0`, CMI :math:`\approx 0`, sign-error
    :math:`\approx 1/2`).

    Raises
    ------
    TypeError
        ``df`` not a DataFrame, ``column`` not a string, a non-integer ``seed``.
    ValueError
        ``column`` already in ``df``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    column = _column(column, "column")
    if column in df.columns:
        raise ValueError(f"column {column!r} is already in df")
    return df.assign(**{column: np.random.default_rng(_seed(seed)).random(len(df))})


def measure_table(
    df: pd.DataFrame,
    measures: Sequence[str],
    target: str,
    *,
    axes: Sequence[str] = AXES,
    given: Sequence[str] | None = None,
    max_size: int = 2,
    environment: Sequence[str] = ("network", "dataset"),
    noise: float | None = None,
    noise_factor: float = 1.0,
    trial: str | None = "trial",
    cells: Sequence[str] = CELLS,
    n_boot: int = 200,
    seed: int | None = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    r"""Score each measure by :math:`\tau`, :math:`\Psi`, CMI and sign-error, with paired intervals.

    Per measure :math:`m` and the ``target`` :math:`y`:

    * ``tau`` -- Kendall's :math:`\tau_b(m, y)` over all runs, ``Psi`` -- the granulated coefficient
      (:func:`~latentkit.stats.granulated_kendall` over ``axes``, coupled within a trial);
    * ``cmi`` -- :math:`\min_{|S| \le \text{max\_size}} I(V_m; V_y \mid S) / H(V_y \mid S)`
      (:func:`~latentkit.stats.conditional_mutual_information`, ``given`` defaults to ``axes``);
    * ``sign_error``, ``sign_error_worst`` -- mean and worst environment of
      :func:`~latentkit.stats.sign_error`. The noise threshold
      :math:`\delta = c\sqrt 2\,\hat\sigma` (or ``noise``) is estimated once on ``df`` and held
      fixed in every resample.

    The intervals are percentiles of the statistic over one hierarchical plan
    (:func:`~latentkit.stats.resampling_plan`: trials, then ``cells`` within a trial) shared by every
    measure and statistic, so measures with the same order on every row get identical rows.

    Parameters
    ----------
    df : DataFrame
        One row per run, unique in ``axes`` + ``environment`` + ``trial``.
    measures : list of str
    target : str
    axes, given, max_size, environment, noise, noise_factor, trial
        As in the three statistics.
    cells : list of str
        Columns of one resampled cell.
    n_boot : int >= 1
    seed : int >= 0 or None
    ci : float in (0, 1)

    Returns
    -------
    DataFrame, one row per measure: ``measure``, ``n_runs``, then ``<stat>``, ``<stat>_low``,
    ``<stat>_high`` for ``tau, Psi, cmi, sign_error, sign_error_worst``.

    Raises
    ------
    TypeError, ValueError
        As the statistics: bad names, missing columns, NaN values, repeated runs, bad numbers.
    """
    measures, target = _names(measures, "measures"), _column(target, "target")
    if not measures:
        raise ValueError("measures must name at least one column")
    axes, env = _names(axes, "axes"), _names(environment, "environment")
    given = axes if given is None else _names(given, "given")
    max_size = check_int(max_size, "max_size", minimum=0, maximum=len(given))
    noise_factor = check_positive(noise_factor, "noise_factor")
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    _check_runs(df, measures, target, axes + given, trial, env)
    df = df.reset_index(drop=True)
    if noise is None:
        threshold = noise_factor * np.sqrt(2.0) * seed_noise(df, target, list(dict.fromkeys(axes + env)))
    else:
        threshold = check_nonnegative(noise, "noise")
    kw = dict(axes=axes, given=given, max_size=max_size, environment=env, threshold=threshold, trial=trial)
    value = statistics_of(df, measures, target, **kw)
    plan = resampling_plan(df, n_boot, seed, (trial,) if trial is not None else (), cells)
    boot = [statistics_of(plan.apply(df, b), measures, target, **kw) for b in range(n_boot)]
    out = pd.DataFrame({"measure": measures, "n_runs": len(df)})
    for name in STATISTICS:
        lo, hi = _quantiles(np.array([b[name] for b in boot]), ci)
        out[name], out[f"{name}_low"], out[f"{name}_high"] = value[name], lo, hi
    return out
