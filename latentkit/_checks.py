"""Torch-free input checks (scalars, choices, tables) shared by every public function of latentkit.

The bottom of the import layers: it imports neither torch nor anything from latentkit, so the
torch-free modules (``options``, ``stats``, ``claims``, ``plots``, ``report``) can validate their
arguments with the same messages as the tensor code. A ``torch.Tensor`` scalar is still accepted
where a number is expected: it can only be passed when torch is already imported, so the check looks
torch up in ``sys.modules`` instead of importing it. :mod:`latentkit._validation` re-exports these.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_choice",
    "check_columns",
    "check_fraction",
    "check_int",
    "check_nonnegative",
    "check_positive",
]


def _torch_tensor_type() -> Any:
    """``torch.Tensor`` if torch is imported (a tensor can exist only then), else ``None``."""
    torch = sys.modules.get("torch")
    return None if torch is None else torch.Tensor


def _check_real(value: Any, name: str) -> float:
    tensor = _torch_tensor_type()
    is_tensor = tensor is not None and isinstance(value, tensor)
    if isinstance(value, bool) or not (isinstance(value, (numbers.Real, np.generic)) or is_tensor):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    if is_tensor:
        if value.numel() != 1:
            raise TypeError(f"{name} must be a scalar; got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    return v


def check_positive(value: Any, name: str, *, allow_inf: bool = False) -> float:
    """Return ``float(value)`` if it is a real number > 0, else raise."""
    v = _check_real(value, name)
    if not v > 0 or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return v


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``float(value)`` if it is a finite real number >= 0, else raise."""
    v = _check_real(value, name)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return v


def check_fraction(value: Any, name: str, *, low_open: bool = False, high_open: bool = False) -> float:
    """Return ``float(value)`` if it lies in [0, 1] (ends open as asked), else raise."""
    v = _check_real(value, name)
    lo_ok = v > 0 if low_open else v >= 0
    hi_ok = v < 1 if high_open else v <= 1
    if not (lo_ok and hi_ok):
        lo = "(0" if low_open else "[0"
        hi = "1)" if high_open else "1]"
        raise ValueError(f"{name} must lie in {lo}, {hi}; got {value!r}")
    return v


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``int(value)`` if it is an integer within [minimum, maximum], else raise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {v}")
    return v


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (strings), else raise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(choices)}; got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")
    return value


def check_columns(df: Any, required: Sequence[str], name: str = "table") -> Any:
    """Return ``df`` if it is a pandas DataFrame holding every column of ``required``, else raise.

    Raises
    ------
    TypeError
        If ``df`` is not a ``pandas.DataFrame``.
    ValueError
        If columns are missing (the message names them and lists the columns present), or if
        ``df`` has no rows.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame; got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s) {missing}; it has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError(f"{name} has no rows")
    return df
