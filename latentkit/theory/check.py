"""The outcome of one numerical check of a claim, and a table of several.

Every check of :mod:`latentkit.theory` returns a :class:`Check`: the two sides of the inequality (or
the two values of the identity), the relation, whether it held, and the intermediate quantities in
``details``; never a bare boolean.

Examples
--------
>>> from latentkit.theory.check import RELATIONS
>>> sorted(RELATIONS)
['<=', '==', '>=', 'in', '~=']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Check", "RELATIONS", "checks_table"]

#: The relations a :class:`Check` may state between its two sides.
RELATIONS = ("<=", ">=", "==", "~=", "in")

Number = float | tuple[float, float]


@dataclass(frozen=True)
class Check:
    """The outcome of one numerical check of a claim.

    A ``Check`` is truthy exactly when it holds; ``str(check)`` prints it with 4 significant digits.

    Attributes
    ----------
    name : str
        The claim, in words.
    lhs, rhs : float or (float, float)
        The two sides. For ``relation == "in"``, ``rhs`` is an interval ``(lower, upper)``.
    relation : {"<=", ">=", "==", "~=", "in"}
        ``"=="``: equal up to floating-point round-off (tolerance in ``details``); ``"~="``: approximately
        equal within a stated tolerance (``details["rtol"]`` / ``details["atol"]``); ``"in"``:
        ``lower <= lhs <= upper``.
    holds : bool
        Whether ``lhs relation rhs`` held (with the stated tolerance).
    details : dict
        Intermediate quantities (eigenvalues, per-df values, tolerances, ...).
    """

    name: str
    lhs: Number
    rhs: Number
    relation: str
    holds: bool
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS}; got {self.relation!r}")

    def __bool__(self) -> bool:
        return bool(self.holds)

    def __str__(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        return f"{self.name}: {_fmt(self.lhs)} {self.relation} {_fmt(self.rhs)} -> {verdict}"

    def as_row(self) -> dict[str, Any]:
        """A flat dict (name, lhs, relation, rhs, holds) for a table; intervals are printed as strings."""
        return {
            "claim": self.name,
            "lhs": self.lhs if not isinstance(self.lhs, tuple) else _fmt(self.lhs),
            "relation": self.relation,
            "rhs": self.rhs if not isinstance(self.rhs, tuple) else _fmt(self.rhs),
            "holds": bool(self.holds),
        }


_COLUMNS = ("claim", "lhs", "relation", "rhs", "holds")


def _fmt(x: Number) -> str:
    if isinstance(x, tuple):
        return "[" + ", ".join(f"{v:.4g}" for v in x) + "]"
    return f"{x:.4g}"


def checks_table(checks: Sequence[Check]) -> pd.DataFrame:
    """A pandas DataFrame with one row per :class:`Check` (claim, lhs, relation, rhs, holds).

    Raises
    ------
    TypeError
        If ``checks`` is not a sequence of :class:`Check` objects.
    """
    if isinstance(checks, (str, bytes, Check)) or not hasattr(checks, "__iter__"):
        raise TypeError(f"checks must be a sequence of Check objects; got {type(checks).__name__}")
    checks = list(checks)
    for c in checks:
        if not isinstance(c, Check):
            raise TypeError(f"checks_table expects Check objects; got {type(c).__name__}")
    return pd.DataFrame([c.as_row() for c in checks], columns=list(_COLUMNS))


def close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    """``|a - b| <= atol + rtol * max(|a|, |b|)`` (False when either side is NaN)."""
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def finite_or_raise(value: float, what: str) -> float:
    """Return ``value`` if finite, else raise ``ValueError`` naming ``what`` (never a silent NaN)."""
    if not math.isfinite(value):
        raise ValueError(f"{what} is not finite ({value}); the inputs overflow or are degenerate")
    return value
