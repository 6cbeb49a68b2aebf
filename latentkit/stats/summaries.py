r"""Summaries of results tables: trial means at one epoch, the reference code's AP2 rescaling.

Examples
--------
>>> import pandas as pd
>>> from latentkit.stats.summaries import summarize
>>> cell = {'network': 'a', 'dataset': 'd', 'method': 'm', 'sparsity': 0.5,
...         'epoch': 0}
>>> rows = [dict(cell, trial=t, pd_test=1.0 + 2 * t, pd_train=1.0 + t,
...              test_acc=0.9 - t / 10, ap2=0.1 + t / 10) for t in (0, 1)]
>>> df = pd.DataFrame(rows)
>>> round(float(summarize(df)['pd_test'].iloc[0]), 2)
2.0
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .._checks import check_int, check_positive
from ._common import _names, _require_table

_SUMMARY_KEYS = ["network", "dataset", "method", "sparsity"]


def summarize(df: pd.DataFrame, epoch: int | None = None) -> pd.DataFrame:
    r"""Trial means at one epoch per (network, dataset, method, sparsity).

    :math:`\bar x = \frac{1}{n_{trials}} \sum_{trial} x` for AP2, each AP3, test accuracy (%) and PD
    (percentage points), in the order the groups first appear.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    epoch : int >= 0, optional
        The fine-tuning epoch (default: the last one of the table).

    Returns
    -------
    DataFrame with ``network, dataset, method, sparsity, ap2, ap3_*, test_acc, pd_train, pd_test``.

    Raises
    ------
    TypeError
        ``df`` not a DataFrame, a non-integer ``epoch``.
    ValueError
        An empty table, missing columns (named), an ``epoch`` with no rows.
    """
    cols = ["ap2"] + [c for c in getattr(df, "columns", []) if str(c).startswith("ap3_")]
    cols += ["test_acc", "pd_train", "pd_test"]
    _require_table(df, _SUMMARY_KEYS + ["epoch"] + cols)
    e = int(df["epoch"].max()) if epoch is None else check_int(epoch, "epoch", minimum=0)
    sub = df[df["epoch"] == e]
    if sub.empty:
        raise ValueError(f"no rows at epoch {e}; the table holds epochs {sorted(pd.unique(df['epoch']))}")
    return sub.groupby(_SUMMARY_KEYS, sort=False)[cols].mean().reset_index()


#: The maximum the reference code rescales every run's AP2 curve to (:func:`reference_rescale`).
REFERENCE_AP2_MAX = 3.8


def reference_rescale(
    df: pd.DataFrame,
    column: str = "ap2",
    target: float = REFERENCE_AP2_MAX,
    by: Sequence[str] = ("network", "dataset", "method", "trial"),
) -> pd.DataFrame:
    r"""The reference code's per-trial rescaling of AP2 (departure 5): ``x * target / max(x)`` per group.

    The reference divides AP2 by its maximum over each run it plots and multiplies by 3.8, so
    every run's curve peaks at 3.8 whatever its absolute size. Reconstructed here to *measure*
    what it does: within a group (default one method's sparsities and epochs of one trial of one
    network/dataset, as the reference's per-method figures) the order is kept, but values of
    different groups (methods, trials) are no longer comparable.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid` (needs ``column`` and the ``by`` columns)
    column : str
        Column to rescale (default ``"ap2"``).
    target : float > 0
        The maximum of every group after rescaling (reference: 3.8).
    by : list of str
        Grouping columns.

    Returns
    -------
    DataFrame
        A copy with the new column ``<column>_ref`` = :math:`x \cdot \text{target} / \max_{group} x`.

    Raises
    ------
    TypeError
        ``df`` not a DataFrame, ``column`` not a string, ``by`` not a list of names, ``target`` not
        a number.
    ValueError
        An empty table, missing columns, NaN values, or a group whose maximum is not > 0 (nothing
        to rescale).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    if not isinstance(column, str):
        raise TypeError(f"column must be a column name (str); got {type(column).__name__}")
    target = check_positive(target, "target")
    by = _names(by, "by")
    _require_table(df, [column] + by)
    if df[column].isna().any():
        raise ValueError(f"column {column!r} has NaN values")
    mx = (
        df.groupby(by, sort=False)[column].transform("max")
        if by
        else pd.Series(df[column].max(), index=df.index)
    )
    if not (mx > 0).all():
        raise ValueError(f"a group of {by} has max({column}) <= 0: the rescaling is undefined")
    out = df.copy()
    out[f"{column}_ref"] = df[column] * (float(target) / mx)
    return out
