r"""The public building blocks of the claims: correlation levels, claim 7's pairs, settled series,
and which method of a table plays which of the paper's roles.

Each works on a results table of :func:`latentkit.grid.run_grid` (or, :func:`paper_roles`, on its
methods) and is what :func:`latentkit.claims.paper_claims` builds its verdicts from, so a chapter can
show the numbers behind a verdict with the same code.

Examples
--------
>>> from latentkit.claims.tables import paper_roles, resolve_levels
>>> resolve_levels(['cells@0', 'cells', 'epochs'], 5)
[('cells@0', 'cells', 0), ('cells@5', 'cells', 5), ('epochs', 'epochs', None)]
>>> paper_roles(['lowest', 'highest_reference', 'random_reference'])
{'lowest': 'lowest', 'random': 'random_reference', 'highest': 'highest_reference'}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_columns, check_int, check_nonnegative
from ..options import PAPER_METHODS, REFERENCE_ROLES
from ..stats import correlations_by_level
from ._common import _KEYS, _epochs, _round_pd, _same, _select

__all__ = [
    "correlation_levels",
    "ordering_disagreements",
    "paper_roles",
    "resolve_levels",
    "settled",
    "settled_cells",
]


def paper_roles(methods: Iterable[str]) -> dict[str, str]:
    """Which of ``methods`` plays each of the paper's roles ``lowest``, ``random``, ``highest``.

    A paper method (:data:`latentkit.options.PAPER_METHODS`) plays its own role; a method of the
    reference code plays the role :data:`latentkit.options.REFERENCE_ROLES` gives it
    (``random_reference`` -> ``random``, ``highest_reference`` -> ``highest``). Where both the
    paper's method and a reference method of one role are present, the **paper's own method is
    preferred** (a table with ``random`` and ``random_reference`` uses ``random``). Other methods
    (``structured``, ...) play no role.

    Parameters
    ----------
    methods : iterable of str
        The methods present, e.g. a results table's ``method`` column (repeats are fine).

    Returns
    -------
    dict of str to str
        Role -> the method that plays it, in the paper's order (lowest, random, highest); a role
        no method plays is left out, so claim 5 can be tested iff the dict has 3 entries.

    Raises
    ------
    TypeError
        ``methods`` is a single string, not iterable, or holds a non-string.

    Examples
    --------
    >>> paper_roles(['random_reference', 'random', 'lowest'])
    {'lowest': 'lowest', 'random': 'random'}
    """
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise TypeError(f"methods must be an iterable of method names (not a single string); got {methods!r}")
    present = set()
    for m in methods:
        if not isinstance(m, str):
            raise TypeError(f"methods must hold method names (str); got {type(m).__name__} {m!r}")
        present.add(m)
    roles = {}
    for role in PAPER_METHODS:
        candidates = [role] + [m for m, r in REFERENCE_ROLES.items() if r == role]
        chosen = next((m for m in candidates if m in present), None)
        if chosen is not None:
            roles[role] = chosen
    return roles


def resolve_levels(levels: Sequence[str], last_epoch: int) -> list[tuple[str, str, int | None]]:
    """Parse correlation levels into ``(name, kind, epoch)``.

    ``"cells"`` (the method x sparsity grid at the last epoch) becomes ``"cells@<last>"``;
    ``"cells@<e>"`` is the grid at epoch ``e``; ``"epochs"`` is every (cell, epoch) point.
    """
    if isinstance(levels, str) or len(levels) == 0:
        raise ValueError(
            f"levels must be a non-empty list of 'cells', 'cells@<epoch>', 'epochs'; got {levels!r}"
        )
    out = []
    for lv in levels:
        if lv == "epochs":
            out.append(("epochs", "epochs", None))
        elif lv == "cells":
            out.append((f"cells@{last_epoch}", "cells", last_epoch))
        elif isinstance(lv, str) and lv.startswith("cells@") and lv[6:].isdigit():
            out.append((lv, "cells", int(lv[6:])))
        else:
            raise ValueError(f"levels must be 'cells', 'cells@<epoch>' or 'epochs'; got {lv!r}")
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"levels repeat: {names}")
    return out


def correlation_levels(
    df: pd.DataFrame,
    levels: Sequence[str] = ("cells@0", "cells", "epochs"),
    *,
    measures: Sequence[str] | None = None,
    target: str = "pd_test",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    r"""Spearman/Kendall correlations of each AP measure with PD at several levels, in one table.

    Calls :func:`latentkit.stats.correlations_by_level` (one :func:`~latentkit.stats.correlations`
    per level, grouped by network and dataset), on the table with ``target`` rounded to
    :data:`PD_DECIMALS` decimals (so that equal PDs tie), and concatenates; the ``level`` column
    names the epoch of the grid levels:

    * ``"cells@<e>"`` -- one point per (method, sparsity) cell at fine-tuning epoch ``e``
      (``"cells@0"``: right after pruning, where PD spans its widest range);
    * ``"cells"`` -- the same at the last epoch (named ``"cells@<last>"`` in the output);
    * ``"epochs"`` -- one point per (cell, epoch).

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    levels : sequence of str
    measures, target : AP columns (default ``ap2`` and every ``ap3_*``) and the PD column
    n_boot, ci, seed : the percentile bootstrap of :func:`~latentkit.stats.correlations`

    Returns
    -------
    DataFrame with the columns of :func:`~latentkit.stats.correlations`.
    """
    check_columns(df, ["epoch"], "df (the results table)")
    df = _round_pd(df, target)
    names = [name for name, _, _ in resolve_levels(levels, int(df["epoch"].max()))]
    return correlations_by_level(
        df, names, measures=measures, targets=(target,), n_boot=n_boot, ci=ci, seed=seed
    )


def ordering_disagreements(
    df: pd.DataFrame,
    network: str | None = None,
    dataset: str | None = None,
    *,
    measures: Sequence[str] | None = None,
    target: str = "pd_test",
    epochs: Sequence[int] | None = None,
    all_pairs: bool = False,
) -> pd.DataFrame:
    r"""Pairs of cells that an AP measure and PD order differently (claim 7).

    Two cells are *comparable* in the paper's sense when they share the sparsity (different
    methods) or the method (different sparsities), within one (network, dataset) and epoch. For a
    pair ``(a, b)`` with :math:`\Delta_{AP} = AP_b - AP_a` and :math:`\Delta_{PD} = PD_b - PD_a`
    (trial means), the relation is ``"agree"`` if :math:`\Delta_{AP} \Delta_{PD} > 0`,
    ``"disagree"`` if :math:`< 0` and ``"tie"`` if either difference is 0 (up to a relative
    :data:`TIE_RTOL`: two PDs of one test image each are equal even when float rounding of
    :math:`|acc_{dense} - acc|` makes their last bits differ).

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    network, dataset : str, optional
        Restrict to one network / dataset (must be in the table).
    measures : list of str, optional
        AP columns (default ``ap2`` and every ``ap3_*`` column).
    target : str
        PD column (default ``"pd_test"``).
    epochs : list of int, optional
        Epochs compared (default ``0`` and the last one); each must be in the table.
    all_pairs : bool
        Return every comparable pair with its ``relation`` instead of the disagreeing ones only.

    Returns
    -------
    DataFrame
        One row per pair: ``network, dataset, epoch, measure, comparison`` (``"same sparsity"`` /
        ``"same method"``), ``method_a, sparsity_a, method_b, sparsity_b``, ``ap_a, ap_b, pd_a,
        pd_b``, ``relation``. Cells are ordered so that ``ap_a <= ap_b`` (AP says *a* is closer to
        the dense network); a disagreement then has ``pd_a > pd_b``.
    """
    mean, measures = _select(df, network, dataset, measures, target)
    avail = set(mean["epoch"].astype(int))
    epochs = _epochs(mean) if epochs is None else [check_int(e, "epoch", minimum=0) for e in epochs]
    missing = [e for e in epochs if e not in avail]
    if missing:
        raise ValueError(f"epoch(s) {missing} not in the table; it holds epochs {sorted(avail)}")
    cols = [
        "network",
        "dataset",
        "epoch",
        "measure",
        "comparison",
        "method_a",
        "sparsity_a",
        "method_b",
        "sparsity_b",
        "ap_a",
        "ap_b",
        "pd_a",
        "pd_b",
        "relation",
    ]
    sub = mean[mean["epoch"].isin(epochs)]
    rows = [
        [net, ds, int(ep), m, *pair]
        for (net, ds, ep), g in sub.groupby(["network", "dataset", "epoch"], sort=False)
        for m in measures
        for pair in _pairs(g.to_dict("records"), m, target)
    ]
    out = pd.DataFrame(rows, columns=cols)
    if not all_pairs:
        out = out[out["relation"] == "disagree"].reset_index(drop=True)
    return out


def _pairs(recs: list[dict[str, Any]], m: str, target: str) -> Iterator[list[Any]]:
    """The comparable pairs of one (network, dataset, epoch): ``comparison, method_a, ..., relation``."""
    for i in range(len(recs)):
        for j in range(i + 1, len(recs)):
            a, b = recs[i], recs[j]
            if a["sparsity"] == b["sparsity"]:
                comp = "same sparsity"
            elif a["method"] == b["method"]:
                comp = "same method"
            else:
                continue
            if a[m] > b[m]:
                a, b = b, a
            tie = _same(a[m], b[m]) or _same(a[target], b[target])
            rel = "tie" if tie else ("agree" if b[target] > a[target] else "disagree")
            yield [
                comp,
                a["method"],
                float(a["sparsity"]),
                b["method"],
                float(b["sparsity"]),
                float(a[m]),
                float(b[m]),
                float(a[target]),
                float(b[target]),
                rel,
            ]


# --------------------------------------------------------------------------------------------
# claim 6a's settled series (public)
# --------------------------------------------------------------------------------------------
def settled(x: Any, k: int = 5, rtol: float = 0.1, atol: float = 0.0) -> bool:
    r"""Whether a series has settled: its range over the last ``k + 1`` values is small.

    :math:`\operatorname{ptp}(x_{T-k..T}) \le \max(\mathrm{rtol} \cdot \operatorname{ptp}(x_{0..T}),
    \mathrm{atol})` with :math:`\operatorname{ptp}` = max - min (claim 6a; a series shorter than
    ``k + 1`` is its own window).

    Parameters
    ----------
    x : 1-D sequence of finite numbers, in epoch order
    k : int >= 1
        Window of the last ``k`` epochs (``k + 1`` values, epochs ``T-k..T``).
    rtol, atol : float >= 0
        Relative (to the whole run's range) and absolute tolerances.
    """
    x = np.asarray(x, float)
    if x.ndim != 1 or len(x) == 0 or not np.isfinite(x).all():
        raise ValueError(f"x must be a non-empty 1-D series of finite numbers; got shape {x.shape}")
    k = check_int(k, "k", minimum=1)
    rtol, atol = check_nonnegative(rtol, "rtol"), check_nonnegative(atol, "atol")
    return bool(np.ptp(x[-(k + 1) :]) <= max(rtol * np.ptp(x), atol))


def settled_cells(
    df: pd.DataFrame,
    measures: Sequence[str],
    *,
    target: str = "pd_test",
    settle_epochs: int = 5,
    settle_rtol: float = 0.1,
    settle_pd_atol: float = 0.5,
) -> pd.DataFrame:
    r"""For each (network, dataset, method, sparsity) cell, which series have settled (claim 6a).

    The series of a cell is its trial mean per epoch, in epoch order; a column has settled when
    :func:`settled` holds with ``k = settle_epochs``, ``rtol = settle_rtol`` and ``atol =
    settle_pd_atol`` for the ``target`` column (PD is quantised to :math:`100/n_{test}` pp), 0 for
    the others.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    measures : list of str
        Columns to test (AP measures and, if wanted, ``target`` itself).
    target : str
        The PD column that gets the absolute tolerance.
    settle_epochs, settle_rtol, settle_pd_atol
        As in :func:`latentkit.claims.paper_claims`.

    Returns
    -------
    DataFrame
        ``network, dataset, method, sparsity`` (sorted) and one boolean column per measure.

    Raises
    ------
    TypeError, ValueError
        ``df`` not a DataFrame, ``measures`` a string, missing columns, an empty table, NaN
        values, bad tolerances.
    """
    if isinstance(measures, str):
        raise TypeError(f"measures must be a list of column names, not the string {measures!r}")
    measures = list(measures)
    check_columns(df, _KEYS + measures, "df (the results table)")
    for m in measures:
        if not np.isfinite(df[m].to_numpy(float)).all():
            raise ValueError(f"column {m!r} holds NaN or infinite values")
    k = check_int(settle_epochs, "settle_epochs", minimum=1)
    rtol, atol = (
        check_nonnegative(settle_rtol, "settle_rtol"),
        check_nonnegative(settle_pd_atol, "settle_pd_atol"),
    )
    cell = _KEYS[:-1]
    mean = df.groupby(_KEYS, sort=True)[measures].mean().reset_index()
    rows = []
    for key, g in mean.groupby(cell, sort=False):
        r = dict(zip(cell, key, strict=True))
        r.update({m: settled(g[m], k, rtol, atol if m == target else 0.0) for m in measures})
        rows.append(r)
    return pd.DataFrame(rows, columns=cell + measures)
