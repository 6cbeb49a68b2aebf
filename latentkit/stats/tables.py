r"""Tables of bootstrap Spearman correlations, formatted for reading.

:func:`spearman_interval_table` puts :func:`~latentkit.stats.bootstrap_spearman` of every measure
against every target in one table, each entry ``"rho [low, high]"`` (Spearman's :math:`\rho` on all
points and its percentile-bootstrap interval), and optionally paired differences
:math:`\rho^*(x, y) - \rho^*(r, y)` against a reference measure :math:`r` on the same resamples.

Examples
--------
>>> import pandas as pd
>>> from latentkit.stats.tables import spearman_interval_table
>>> f = pd.DataFrame({'AP2': [1, 2, 3, 4, 5], 'PD': [1, 3, 2, 4, 5]})
>>> spearman_interval_table(f, ['AP2'], ['PD'], n_boot=100).shape
(1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .._checks import check_columns, check_int
from .correlation import bootstrap_spearman

__all__ = ["spearman_interval_table"]


def _names(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (Sequence, Mapping, pd.Index)):
        raise TypeError(f"{name} must be a list of column names; got {type(value).__name__}")
    out = list(value)
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def _check_paired(paired: Any) -> dict[str, tuple[str, str]]:
    if paired is None:
        return {}
    if not isinstance(paired, Mapping):
        raise TypeError(f"paired must map a column label to (target, reference); got {type(paired).__name__}")
    out = {}
    for label, pair in paired.items():
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(
                f"paired[{label!r}] must be a (target, reference) pair of column names; got {pair!r}"
            )
        out[str(label)] = (pair[0], pair[1])
    return out


def spearman_interval_table(
    frame: pd.DataFrame,
    measures: Sequence[str],
    targets: Sequence[str],
    *,
    paired: Mapping[str, tuple[str, str]] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    index: str = "measure",
) -> pd.DataFrame:
    r"""Spearman :math:`\rho` of each measure with each target, with bootstrap intervals, as text.

    Entry ``(m, t)`` is ``f"{rho:.3f} [{low:.2f}, {high:.2f}]"`` from
    ``bootstrap_spearman(frame[m], frame[t], n_boot=n_boot, seed=seed)``: :math:`\rho(m, t)` on all
    points and the 2.5 and 97.5 percentiles of :math:`\rho^*_b` over ``n_boot`` resamples. Each
    ``paired`` column ``label: (t, r)`` holds ``f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"`` of the
    paired difference :math:`\Delta^*_b = \rho^*_b(m, t) - \rho^*_b(r, t)` (same resamples for both,
    ``bootstrap_spearman(..., reference=frame[r])``). Every call uses the same ``seed``, so every
    entry is computed on the same resamples.

    Parameters
    ----------
    frame : DataFrame
        One row per point; holds every measure, target and reference column.
    measures, targets : sequences of column names
        Rows and columns of the table, in this order.
    paired : mapping label -> (target, reference), optional
        Extra columns of paired differences to a reference measure.
    n_boot : int >= 10
    seed : int >= 0
    index : str
        Name of the index (the measures).

    Returns
    -------
    DataFrame
        Index ``measures`` (named ``index``), columns ``targets`` then the ``paired`` labels; strings.

    Raises
    ------
    TypeError
        ``frame`` is not a DataFrame, or a list argument is a bare string.
    ValueError
        Missing columns (named), an empty list; ``bootstrap_spearman``'s own checks.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame; got {type(frame).__name__}")
    measures, targets = _names(measures, "measures"), _names(targets, "targets")
    pairs = _check_paired(paired)
    check_int(n_boot, "n_boot", minimum=10)
    needed = list(dict.fromkeys([*measures, *targets, *(c for p in pairs.values() for c in p)]))
    check_columns(frame, needed, "frame")
    rows = []
    for name in measures:
        row: dict[str, Any] = {index: name}
        for t in targets:
            r = bootstrap_spearman(frame[name], frame[t], n_boot=n_boot, seed=seed)
            row[t] = f"{r['spearman']:.3f} [{r['spearman_low']:.2f}, {r['spearman_high']:.2f}]"
        for label, (t, ref) in pairs.items():
            d = bootstrap_spearman(frame[name], frame[t], reference=frame[ref], n_boot=n_boot, seed=seed)
            row[label] = f"{d['diff_mean']:+.2f} [{d['diff_low']:+.2f}, {d['diff_high']:+.2f}]"
        rows.append(row)
    return pd.DataFrame(rows).set_index(index)
