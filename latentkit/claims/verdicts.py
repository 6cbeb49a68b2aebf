r"""The paper's claims 2-7 as verdicts: one function per claim, :func:`paper_claims` runs them all.

The claims, their sub-tests and statistics are described in :mod:`latentkit.claims`.

Examples
--------
>>> from latentkit.claims import verdicts
>>> verdicts.__all__
['paper_claims']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_columns, check_fraction, check_int, check_nonnegative
from ..options import PAPER_METHODS
from ..stats import correlations, spearman_rows
from ._common import _epochs, _failures, _g, _label, _le, _lt, _pct, _round_pd, _row, _select
from .tables import correlation_levels, ordering_disagreements, paper_roles, resolve_levels, settled_cells

__all__ = ["paper_claims"]

_Rows = list[dict[str, Any]]


def _given_correlations(
    corr: pd.DataFrame, mean: pd.DataFrame, measures: list[str], target: str, levels: Sequence[str]
) -> pd.DataFrame:
    """The rows of a precomputed correlation table that claims 2 and 3 need (all must be there)."""
    check_columns(
        corr,
        ["network", "dataset", "level", "measure", "target", "spearman", "spearman_low", "spearman_high"],
        "corr (the correlation table)",
    )
    corr = corr[corr["level"].isin(levels) & (corr["target"] == target) & corr["measure"].isin(measures)]
    need = {
        (n, ds, lv, m)
        for n, ds in mean[["network", "dataset"]].drop_duplicates().itertuples(index=False)
        for lv in levels
        for m in measures
    }
    have = set(corr[["network", "dataset", "level", "measure"]].itertuples(index=False, name=None))
    missing = sorted(need - have)
    if missing:
        raise ValueError(
            f"the correlation table lacks {len(missing)} (network, dataset, level, measure) "
            f"row(s) for target {target!r}, e.g. {missing[:3]}"
        )
    if len(have) != len(corr):
        raise ValueError("the correlation table has duplicate (network, dataset, level, measure) rows")
    return corr[corr.apply(lambda r: (r["network"], r["dataset"], r["level"], r["measure"]) in need, axis=1)]


def _claim2(
    d: pd.DataFrame,
    mean: pd.DataFrame,
    measures: list[str],
    target: str,
    levels: Sequence[str],
    names: list[str],
    n_boot: int,
    ci: float,
    seed: int,
    corr: pd.DataFrame | None,
) -> tuple[_Rows, pd.DataFrame]:
    lab = _label(mean)
    if corr is None:
        corr = correlation_levels(
            d, levels, measures=measures, target=target, n_boot=n_boot, ci=ci, seed=seed
        )
    else:
        corr = _given_correlations(corr, mean, measures, target, names)
    rows = []
    for m in measures:
        c = corr[corr["measure"] == m]
        ok = c[np.isfinite(c["spearman"])]
        passed = int((ok["spearman_low"] > 0).sum())
        ev = "; ".join(
            f"{lab(r.network, r.dataset)} {r.level}: rho={_g(r.spearman)} "
            f"[{_g(r.spearman_low)}, {_g(r.spearman_high)}]"
            if np.isfinite(r.spearman)
            else f"{lab(r.network, r.dataset)} {r.level}: undefined ({r.note})"
            for r in c.itertuples()
        )
        rows.append(
            _row(
                "2",
                f"{m} correlates positively with {target}",
                m,
                passed,
                len(ok),
                float(np.median(ok["spearman"])) if len(ok) else float("nan"),
                ev,
            )
        )
    return rows, corr


def _points(mean: pd.DataFrame, level: str) -> pd.DataFrame:
    """The points of :func:`latentkit.stats.correlations` at a resolved ``level`` (trial means)."""
    if level.startswith("cells@"):
        return mean[mean["epoch"] == int(level[6:])]
    return mean


def _claim3(
    mean: pd.DataFrame,
    corr: pd.DataFrame,
    measures: list[str],
    target: str,
    levels: Sequence[str],
    n_boot: int,
    ci: float,
    seed: int,
) -> _Rows:
    lab = _label(mean)
    rng = np.random.default_rng(seed)
    alpha = (1 - ci) / 2
    rows = []
    for m in [x for x in measures if x != "ap2"]:
        diffs, passed, tests, ev = [], 0, 0, []
        for lv in levels:
            pts = _points(mean, lv)
            for (net, ds), g in pts.groupby(["network", "dataset"], sort=False):
                sel = corr[(corr["network"] == net) & (corr["dataset"] == ds) & (corr["level"] == lv)]
                r2 = sel.loc[sel["measure"] == "ap2", "spearman"].iloc[0]
                r3 = sel.loc[sel["measure"] == m, "spearman"].iloc[0]
                if not (np.isfinite(r2) and np.isfinite(r3)):
                    ev.append(f"{lab(net, ds)} {lv}: undefined")
                    continue
                x2, x3, y = (g[c].to_numpy(float) for c in ("ap2", m, target))
                idx = rng.integers(0, len(y), size=(n_boot, len(y)))
                delta = spearman_rows(x2[idx], y[idx]) - spearman_rows(x3[idx], y[idx])
                delta = delta[np.isfinite(delta)]
                lo, hi = (
                    (np.quantile(delta, alpha), np.quantile(delta, 1 - alpha))
                    if len(delta)
                    else (np.nan,) * 2
                )
                tests += 1
                passed += int(not hi < 0)
                diffs.append(r2 - r3)
                ev.append(f"{lab(net, ds)} {lv}: d_rho={_g(r2 - r3)} [{_g(lo)}, {_g(hi)}]")
        rows.append(
            _row(
                "3",
                f"ap2 tracks {target} at least as well as {m}",
                f"ap2 vs {m}",
                passed,
                tests,
                float(np.median(diffs)) if diffs else float("nan"),
                "; ".join(ev),
            )
        )
    return rows


def _claim4(
    mean: pd.DataFrame, measures: list[str], target: str, epochs: list[int], monotone_rtol: float
) -> _Rows:
    lab = _label(mean)
    rows = []
    for m in measures + [target]:
        passed, tests, bad = 0, 0, []
        for (net, ds, meth), g in mean.groupby(["network", "dataset", "method"], sort=False):
            for e in epochs:
                x = g[g["epoch"] == e].sort_values("sparsity")[m].to_numpy(float)
                if len(x) < 2:
                    continue
                tol = monotone_rtol * np.abs(x).max()
                ok = bool(all(_le(x[i], x[i + 1] + tol) for i in range(len(x) - 1)) and _lt(x[0], x[-1]))
                tests += 1
                passed += ok
                if not ok:
                    bad.append(f"{lab(net, ds)} {meth} t={e} (" + ", ".join(_g(v) for v in x) + ")")
        ev = f"monotone in sparsity: {passed}/{tests} (method, epoch) sequences" + _failures(bad)
        rows.append(
            _row(
                "4",
                f"{m} grows with sparsity for each method",
                m,
                passed,
                tests,
                passed / tests if tests else float("nan"),
                ev,
            )
        )
    return rows


def _claim5(mean: pd.DataFrame, target: str, epochs: list[int]) -> _Rows:
    """Claim 5 on the methods that play the paper's three roles in each group (:func:`paper_roles`)."""
    lab = _label(mean)
    rows = []
    for m in ("ap2", target):
        passed, tests, bad = 0, 0, []
        used: dict[tuple[str, ...], None] = {}  # the (lowest, random, highest) methods tested, in order
        for (net, ds, s), g in mean.groupby(["network", "dataset", "sparsity"], sort=False):
            for e in epochs:
                v = g[g["epoch"] == e].set_index("method")[m]
                roles = paper_roles(v.index)
                if len(roles) < len(PAPER_METHODS):
                    continue
                names = tuple(roles[k] for k in PAPER_METHODS)
                used[names] = None
                lo, ra, hi = (float(v[k]) for k in names)
                ok = _le(lo, ra) and _le(ra, hi) and _lt(lo, hi)
                tests += 1
                passed += ok
                if not ok:
                    values = ", ".join(f"{k} {_g(x)}" for k, x in zip(names, (lo, ra, hi), strict=True))
                    bad.append(f"{lab(net, ds)} {_pct(s)} t={e} ({values})")
        order = " / ".join(" <= ".join(names) for names in (used or {PAPER_METHODS: None}))
        ev = f"{order} at {passed}/{tests} (sparsity, epoch)" + _failures(bad)
        rows.append(
            _row(
                "5",
                f"lowest < random < highest magnitude in {m} at equal sparsity",
                m,
                passed,
                tests,
                passed / tests if tests else float("nan"),
                ev,
            )
        )
    return rows


def _claim6(
    mean: pd.DataFrame,
    measures: list[str],
    target: str,
    settle_epochs: int,
    settle_rtol: float,
    settle_pd_atol: float,
    recover_max_sparsity: float,
    recover_pp: float,
) -> _Rows:
    ap3 = [x for x in measures if x.startswith("ap3_")]
    last = int(mean["epoch"].max())
    st = None
    if ap3 and last > settle_epochs:
        st = settled_cells(
            mean,
            ap3 + [target],
            target=target,
            settle_epochs=settle_epochs,
            settle_rtol=settle_rtol,
            settle_pd_atol=settle_pd_atol,
        )
    rows = [_claim6a(mean, st, m, target, settle_epochs) for m in ap3]
    return rows + [_claim6b(mean, target, recover_max_sparsity, recover_pp)]


def _claim6a(
    mean: pd.DataFrame, st: pd.DataFrame | None, m: str, target: str, settle_epochs: int
) -> dict[str, Any]:
    """Claim 6a for one AP3 ``m``: the cells of ``st`` (:func:`settled_cells`) where both settled."""
    lab, last = _label(mean), int(mean["epoch"].max())
    passed, tests, bad, n_ap, n_pd = 0, 0, [], 0, 0
    for r in [] if st is None else st.to_dict("records"):
        a, p = bool(r[m]), bool(r[target])
        tests += 1
        passed += a and p
        n_ap += a
        n_pd += p
        if not (a and p):
            bad.append(
                f"{lab(r['network'], r['dataset'])} {r['method']} {_pct(r['sparsity'])} ({m} "
                f"{'settled' if a else 'moving'}, {target} {'settled' if p else 'moving'})"
            )
    ev = (
        (
            f"over epochs {last - settle_epochs}..{last}: {m} settled in {n_ap}/{tests} cells, {target} in "
            f"{n_pd}/{tests}, both in {passed}/{tests}" + _failures(bad)
        )
        if tests
        else f"needs more than {settle_epochs} fine-tuning epochs (table has {last})"
    )
    return _row(
        "6a",
        f"{m} and {target} settle together during fine-tuning",
        f"{m}, {target}",
        passed,
        tests,
        passed / tests if tests else float("nan"),
        ev,
    )


def _claim6b(
    mean: pd.DataFrame, target: str, recover_max_sparsity: float, recover_pp: float
) -> dict[str, Any]:
    lab, last = _label(mean), int(mean["epoch"].max())
    fin = mean[
        (mean["epoch"] == last) & (mean["method"] == "lowest") & (mean["sparsity"] <= recover_max_sparsity)
    ]
    vals = fin[target].to_numpy(float)
    passed = int((vals < recover_pp).sum())
    ev = (
        f"final {target} (t={last}): "
        + "; ".join(
            f"{lab(r.network, r.dataset)} {_pct(r.sparsity)}: {_g(getattr(r, target))} pp"
            for r in fin.itertuples()
        )
        if len(fin)
        else f"no lowest-magnitude cell with sparsity <= {recover_max_sparsity}"
    )
    return _row(
        "6b",
        f"lowest magnitude at sparsity <= {_pct(recover_max_sparsity)} returns to "
        f"|{target}| < {recover_pp:g} pp",
        target,
        passed,
        len(fin),
        passed / len(fin) if len(fin) else float("nan"),
        ev,
    )


def _claim6c(
    d: pd.DataFrame, mean: pd.DataFrame, measures: list[str], target: str, n_boot: int, ci: float, seed: int
) -> _Rows:
    lab = _label(mean)
    w = correlations(d, measures=measures, targets=(target,), level="within", n_boot=n_boot, ci=ci, seed=seed)
    rows = []
    for m in measures:
        c = w[w["measure"] == m]
        ok = c[np.isfinite(c["spearman"])]
        passed = int((ok["spearman_low"] > 0).sum())
        parts = [
            f"{lab(n, ds)} {meth}: median rho={_g(g['spearman'].median())} "
            f"({int((g['spearman_low'] > 0).sum())}/{len(g)} CI > 0)"
            for (n, ds, meth), g in ok.groupby(["network", "dataset", "method"], sort=False)
        ]
        undefined = len(c) - len(ok)
        ev = "; ".join(parts) + (f"; {undefined} cell(s) undefined (constant series)" if undefined else "")
        rows.append(
            _row(
                "6c",
                f"{m}(t) moves with {target}(t) during fine-tuning, within each cell",
                m,
                passed,
                len(ok),
                float(ok["spearman"].median()) if len(ok) else float("nan"),
                ev,
            )
        )
    return rows


def _claim7(
    d: pd.DataFrame, measures: list[str], target: str, epochs: list[int], min_agreement: float
) -> _Rows:
    pairs = ordering_disagreements(d, measures=measures, target=target, epochs=epochs, all_pairs=True)
    rows = []
    for m in measures:
        p = pairs[pairs["measure"] == m]
        agree = int((p["relation"] == "agree").sum())
        dis = p[p["relation"] == "disagree"]
        tests = agree + len(dis)
        by = dis["comparison"].value_counts()
        per_epoch = ", ".join(
            f"t={e}: {int((g['relation'] == 'disagree').sum())}/{int((g['relation'] != 'tie').sum())}"
            for e, g in p.groupby("epoch")
        )
        ev = (
            f"{len(dis)}/{tests} comparable pairs disagree ({per_epoch}; "
            f"{int((p['relation'] == 'tie').sum())} ties left out): "
            f"same sparsity {int(by.get('same sparsity', 0))}, "
            f"same method {int(by.get('same method', 0))}"
        )
        rows.append(
            _row(
                "7",
                f"{m} orders comparable cells as {target} does",
                m,
                agree,
                tests,
                len(dis) / tests if tests else float("nan"),
                ev,
                hold_fraction=min_agreement,
                fail_fraction=0.5,
            )
        )
    return rows


def paper_claims(
    df: pd.DataFrame,
    network: str | None = None,
    dataset: str | None = None,
    *,
    measures: Sequence[str] | None = None,
    target: str = "pd_test",
    levels: Sequence[str] = ("cells@0", "cells", "epochs"),
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    monotone_rtol: float = 0.0,
    settle_epochs: int = 5,
    settle_rtol: float = 0.1,
    settle_pd_atol: float = 0.5,
    recover_max_sparsity: float = 0.3,
    recover_pp: float = 1.0,
    min_agreement: float = 0.9,
    corr: pd.DataFrame | None = None,
) -> pd.DataFrame:
    r"""Test the paper's claims 2-7 (the book's paper chapter, section 6); one row per (claim, measure).

    The claims, their sub-tests and statistics are described in the module docstring; the verdict
    is ``"holds"`` if every sub-test passed, ``"fails"`` if none did, ``"mixed"`` otherwise and
    ``"n/a"`` when nothing could be tested (claim 7: ``"holds"`` if at least ``min_agreement`` of the
    comparable pairs agree, ``"fails"`` at 50 % or less).

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
        Needs ``network, dataset, method, sparsity, epoch, ap2``, the ``target`` column and the
        measures. Trials are averaged.
    network, dataset : str, optional
        Restrict to one network / dataset; otherwise every (network, dataset) group is a sub-test.
    measures : list of str, optional
        AP columns (default ``ap2`` and every ``ap3_*`` column); ``ap2`` is needed for claims 3 and 5.
    target : str
        PD column (default ``"pd_test"``, percentage points).
    levels : sequence of str
        Correlation levels of claims 2 and 3 (:func:`correlation_levels`): the grid right after
        pruning (``"cells@0"``), at the last epoch (``"cells"``) and every (cell, epoch) point
        (``"epochs"``).
    n_boot, ci, seed
        Bootstrap resamples (default 1000), CI level (0.95) and seed (0) of claims 2, 3 and 6c.
    monotone_rtol : float, default 0
        Claim 4: a step down of at most ``monotone_rtol * max|x|`` still counts as monotone.
    settle_epochs : int, default 5
        Claim 6a: the window :math:`T-k..T` of the last ``k`` epochs.
    settle_rtol : float, default 0.1
        Claim 6a: settled if the window's range is at most this fraction of the whole run's range.
    settle_pd_atol : float, default 0.5
        Claim 6a: ... or, for PD, at most this many percentage points.
    recover_max_sparsity : float, default 0.3
        Claim 6b: "low sparsity" means at most this.
    recover_pp : float, default 1.0
        Claim 6b: "about zero PD" means a final PD below this many percentage points.
    min_agreement : float, default 0.9
        Claim 7: fraction of concordant pairs needed for ``"holds"``.
    corr : DataFrame, optional
        A table from :func:`correlation_levels` with the same ``levels``, computed on the same
        results, to reuse instead of recomputing claim 2's correlations (the bootstrap is the
        slow part); it must hold every (network, dataset, level, measure) needed for ``target``.
        Claim 3's paired bootstrap uses ``n_boot``, ``ci`` and ``seed`` either way.

    Returns
    -------
    DataFrame
        Columns ``claim`` ("2".."7", "6a"/"6b"/"6c"), ``statement``, ``measure``, ``passed``, ``tests``,
        ``statistic`` (claim 2: median Spearman rho; 3: median rho difference AP2 - AP3; 4, 5, 6a,
        6b: fraction passing; 6c: median within-cell rho; 7: fraction of discordant pairs),
        ``evidence`` (the numbers, per group)
        and ``verdict`` (one of :data:`VERDICTS`).

    Raises
    ------
    ValueError
        Missing columns (named), NaN values, a network/dataset not in the table, bad thresholds.
    TypeError
        ``df`` not a DataFrame, non-integer ``n_boot``/``settle_epochs``.
    """
    mean, measures = _select(df, network, dataset, measures, target)
    if "ap2" not in measures:
        raise ValueError("measures must include 'ap2' (claims 3 and 5 compare against it)")
    resolved = resolve_levels(levels, int(mean["epoch"].max()))
    absent = [name for name, kind, e in resolved if kind == "cells" and e not in set(mean["epoch"])]
    if absent:
        raise ValueError(f"level(s) {absent} name epochs that are not in the table")
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    check_int(seed, "seed", minimum=0)
    monotone_rtol = check_nonnegative(monotone_rtol, "monotone_rtol")
    settle_epochs = check_int(settle_epochs, "settle_epochs", minimum=1)
    settle_rtol = check_nonnegative(settle_rtol, "settle_rtol")
    settle_pd_atol = check_nonnegative(settle_pd_atol, "settle_pd_atol")
    recover_max_sparsity = check_fraction(recover_max_sparsity, "recover_max_sparsity")
    recover_pp = check_nonnegative(recover_pp, "recover_pp")
    min_agreement = check_fraction(min_agreement, "min_agreement")
    if not min_agreement > 0.5:
        raise ValueError(f"min_agreement must exceed 0.5 (chance); got {min_agreement}")
    d = _round_pd(df, target)
    for col, val in (("network", network), ("dataset", dataset)):
        if val is not None:
            d = d[d[col] == val]
    epochs = _epochs(mean)
    names = [name for name, _, _ in resolved]
    rows, corr = _claim2(d, mean, measures, target, levels, names, n_boot, ci, seed, corr)
    rows += _claim3(mean, corr, measures, target, names, n_boot, ci, seed)
    rows += _claim4(mean, measures, target, epochs, monotone_rtol)
    rows += _claim5(mean, target, epochs)
    rows += _claim6(
        mean, measures, target, settle_epochs, settle_rtol, settle_pd_atol, recover_max_sparsity, recover_pp
    )
    rows += _claim6c(d, mean, measures, target, n_boot, ci, seed)
    rows += _claim7(d, measures, target, epochs, min_agreement)
    return pd.DataFrame(
        rows, columns=["claim", "statement", "measure", "passed", "tests", "statistic", "evidence", "verdict"]
    )
