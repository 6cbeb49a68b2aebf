"""Boundary checks shared by the statistics modules (torch-free): tables, column names, seeds, vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_int


def _require_table(df: Any, columns: Sequence[str], name: str = "df") -> pd.DataFrame:
    """``df`` if it is a non-empty DataFrame holding ``columns``; else an error naming ``name``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame; got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"column {missing[0]!r} not in the table {name}: missing column(s) {missing}; "
            f"columns: {list(df.columns)}"
        )
    if len(df) == 0:
        raise ValueError(f"{name} has no rows (an empty results table)")
    return df


def _names(value: Any, name: str) -> list[str]:
    """A list of column names from a sequence of strings (a bare string is refused: it is not a list)."""
    if isinstance(value, str) or not isinstance(value, Sequence | pd.Index | np.ndarray):
        raise TypeError(f"{name} must be a list of column names; got {type(value).__name__} {value!r}")
    out = list(value)
    bad = [v for v in out if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must hold column names (strings); got {bad!r}")
    return out


def _seed(seed: Any) -> int | None:
    return None if seed is None else check_int(seed, "seed", minimum=0)


def _vector(v: Any, name: str) -> np.ndarray:
    """``v`` as a finite 1-D float64 array (a TypeError for non-numbers, a ValueError for NaN/inf)."""
    if isinstance(v, str | bytes | bool) or np.isscalar(v):
        raise TypeError(f"{name} must be a 1-D array of numbers; got {type(v).__name__}")
    a = np.asarray(v)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
    a = a.astype(float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(
            f"{name} holds NaN or infinite values at positions {np.flatnonzero(~np.isfinite(a))[:10]}"
        )
    return a
