"""Shared helpers of :mod:`latentkit.claims`: PD rounding, trial means, ties, verdict rows, formatting."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_columns
from ..options import VERDICTS

_HOLDS, _FAILS, _MIXED, _NA = VERDICTS
_KEYS = ["network", "dataset", "method", "sparsity", "epoch"]
#: PD columns are rounded to this many decimals (of a percentage point) before anything is ranked:
#: ``|acc_dense - acc|`` from float accuracies gives 0.0999999999999943 and 0.1000000000000085 for
#: one test image each, which a rank correlation would count as different. One test image is
#: >= 1e-7 pp for any test set under 1e9 images, so the rounding never merges distinct PDs.
PD_DECIMALS = 9
#: Values closer than this (relative) are equal: a PD of one test image computed as
#: ``|acc_dense - acc|`` from two different accuracies differs in the last bits.
TIE_RTOL = 1e-9


#: Targets computed from integer counts in tables of cache version 2 on (``delta = 100 (c - c_dense)
#: / n``, ``pd = |delta|``): target -> the count columns that make it exact.
COUNTED_TARGETS = {
    "pd_test": ("test_correct", "n_test", "dense_test_correct"),
    "delta_test": ("test_correct", "n_test", "dense_test_correct"),
    "pd_train": ("train_correct", "n_train", "dense_train_correct"),
    "delta_train": ("train_correct", "n_train", "dense_train_correct"),
}


def counted(df: pd.DataFrame, target: str) -> bool:
    """Whether ``df``'s ``target`` comes from integer counts (its count columns are present), so
    equal accuracy changes are already bit-equal and need no rounding."""
    return target in COUNTED_TARGETS and all(c in df.columns for c in COUNTED_TARGETS[target])


def _round_pd(df: pd.DataFrame, target: str) -> pd.DataFrame:
    """``df`` with its ``target`` column rounded to :data:`PD_DECIMALS` (a copy; ``df`` is untouched).

    A target computed from counts (:func:`counted`: tables with ``test_correct`` etc.) is left as it
    is: :math:`100 (c - c_{dense}) / n` is the same float for the same counts, so there is nothing
    to round. Older tables (float accuracies subtracted) are rounded as before.
    """
    check_columns(df, [target], "df (the results table)")
    if counted(df, target):
        return df.copy()
    return df.assign(**{target: df[target].round(PD_DECIMALS)})


def _select(
    df: pd.DataFrame, network: str | None, dataset: str | None, measures: Sequence[str] | None, target: str
) -> tuple[pd.DataFrame, list[str]]:
    """Validate, filter to ``network``/``dataset`` and return (trial means, measures)."""
    if not isinstance(target, str):
        raise TypeError(f"target must be a column name (str); got {type(target).__name__}")
    if isinstance(measures, str):
        raise TypeError(f"measures must be a list of column names, not the string {measures!r}")
    check_columns(df, _KEYS + ["ap2", target], "df (the results table)")
    df = _round_pd(df, target)
    if measures is None:
        measures = ["ap2"] + [c for c in df.columns if str(c).startswith("ap3_")]
    measures = list(measures)
    if not measures:
        raise ValueError("measures must name at least one AP column")
    check_columns(df, measures, "df (the results table)")
    if target in measures:
        raise ValueError(f"target {target!r} is also listed among the measures")
    for col, val in (("network", network), ("dataset", dataset)):
        if val is not None:
            present = list(pd.unique(df[col]))
            if val not in present:
                raise ValueError(f"{col} {val!r} is not in the table; it holds {present}")
            df = df[df[col] == val]
    cols = list(dict.fromkeys(["ap2"] + measures + [target]))
    for c in cols:
        if not np.isfinite(df[c].to_numpy(float)).all():
            raise ValueError(f"column {c!r} holds NaN or infinite values")
    mean = df.groupby(_KEYS, sort=True)[cols].mean().reset_index()
    return mean, measures


def _label(mean: pd.DataFrame) -> Callable[[str, str], str]:
    """Group label function: ``dataset`` alone when the table holds one network."""
    one_net = mean["network"].nunique() == 1
    return (lambda n, d: f"{d}") if one_net else (lambda n, d: f"{n}/{d}")


def _verdict(passed: int, tests: int, hold_fraction: float = 1.0, fail_fraction: float = 0.0) -> str:
    """One of :data:`VERDICTS`: ``n/a`` without tests, else holds/fails/mixed by the fraction passed."""
    if tests == 0:
        return _NA
    f = passed / tests
    return _HOLDS if f >= hold_fraction else _FAILS if f <= fail_fraction else _MIXED


def _row(
    claim: str,
    statement: str,
    measure: str,
    passed: int,
    tests: int,
    statistic: float,
    evidence: str,
    hold_fraction: float = 1.0,
    fail_fraction: float = 0.0,
) -> dict[str, Any]:
    """One row of the verdict table."""
    return {
        "claim": claim,
        "statement": statement,
        "measure": measure,
        "passed": int(passed),
        "tests": int(tests),
        "statistic": float(statistic),
        "evidence": evidence,
        "verdict": _verdict(passed, tests, hold_fraction, fail_fraction),
    }


def _same(a: float, b: float) -> bool:
    """``a == b`` up to :data:`TIE_RTOL` (relative) or 1e-12 (absolute)."""
    return abs(a - b) <= max(TIE_RTOL * max(abs(a), abs(b)), 1e-12)


def _le(a: float, b: float) -> bool:
    return a <= b or _same(a, b)


def _lt(a: float, b: float) -> bool:
    return a < b and not _same(a, b)


def _g(x: float) -> str:
    return f"{x:.3g}"


def _pct(s: float) -> str:
    return f"{100 * float(s):.4g} %"


def _failures(items: list[str], limit: int = 3) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; not: " + "; ".join(items[:limit]) + more


def _epochs(mean: pd.DataFrame) -> list[int]:
    last = int(mean["epoch"].max())
    return [0, last] if last > 0 and (mean["epoch"] == 0).any() else [last]
