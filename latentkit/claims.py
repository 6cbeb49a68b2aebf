r"""The paper's testable claims (paper notes, section 5, claims 2-7) as verdicts on a results table.

:func:`paper_claims` takes the tidy table of :func:`latentkit.experiments.run_grid` and returns one
row per (claim, measure) with the evidence (numbers) and a verdict:

* ``"holds"`` -- every sub-test passed (claim 7: at least ``min_agreement`` of the pairs agree),
* ``"fails"`` -- none passed (claim 7: at most half of the pairs agree, no better than chance),
* ``"mixed"`` -- some did,
* ``"n/a"`` -- the table cannot test it (a method or a second sparsity missing, too few epochs,
  undefined correlations).

A *sub-test* is one (network, dataset) group and, depending on the claim, one correlation level, one
method, one sparsity, one epoch or one cell; ``passed`` / ``tests`` count them. All values are trial
means per (network, dataset, method, sparsity, epoch), as the paper plots them. The claims:

2. AP2 and every AP3 correlate positively with PD, across the method x sparsity grid (right after
   pruning and at the last epoch) and across cells and epochs: Spearman's :math:`\rho` from
   :func:`latentkit.experiments.correlations` (through :func:`correlation_levels`); a sub-test
   passes if the lower end of its bootstrap CI is > 0. ``statistic`` = median :math:`\rho`.
3. AP2 tracks PD at least as well as AP3 (the reviewers' objection): for each AP3,
   :math:`\Delta = \rho(\mathrm{AP2}, \mathrm{PD}) - \rho(\mathrm{AP3}, \mathrm{PD})` with a *paired*
   percentile bootstrap (the same resampled points for both measures); a sub-test passes unless the
   CI lies entirely below 0 (AP3 significantly better). ``statistic`` = median :math:`\Delta`.
4. AP2, each AP3 and PD grow with sparsity, for each method, right after pruning (epoch 0) and at
   the last epoch: a sequence (ordered by sparsity) passes if every step is
   :math:`\ge -\text{monotone\_rtol} \cdot \max|x|` and the last value exceeds the first.
   ``statistic`` = fraction of monotone sequences.
5. At equal sparsity, lowest magnitude < random < highest magnitude, for AP2 and for PD, at epoch 0
   and at the last epoch: passes if :math:`x_{low} \le x_{rand} \le x_{high}` and
   :math:`x_{low} < x_{high}` (ties, e.g. two PDs of 0 pp, do not break the order).
   ``statistic`` = fraction ordered.
6. (a) AP3(t) and PD(t) settle together during fine-tuning: for each cell, a series has settled if
   its range over the last ``settle_epochs`` epochs (epochs :math:`T-k..T`) is at most
   ``settle_rtol`` times its range over the whole run (or at most an absolute tolerance:
   ``settle_pd_atol`` pp for PD, which is quantised to :math:`100/n_{test}` pp; 0 for AP3); a cell
   passes if both AP3 and PD settled. Needs :math:`T > k`. (b) low-sparsity lowest-magnitude nets
   return to about zero PD: each lowest-magnitude cell with sparsity :math:`\le`
   ``recover_max_sparsity`` passes if its final PD is < ``recover_pp``.
   ``statistic`` = fraction of cells passing. (c) a stricter reading of "together": within each
   cell, AP(t) and PD(t) co-move over the epochs ``0..T`` -- Spearman's :math:`\rho` across the
   cell's epochs (:func:`latentkit.experiments.correlations`, ``level="within"``) with its
   bootstrap CI above 0; for AP2 and every AP3. ``statistic`` = median :math:`\rho` over cells;
   cells whose PD never changes (undefined :math:`\rho`) are not counted.
7. Where the AP ordering and the PD ordering disagree: every pair of cells comparable in the
   paper's sense (same sparsity, different methods; or same method, different sparsities) at
   epoch 0 and at the last epoch is concordant (AP and PD order it the same way), discordant, or
   tied (either difference 0, not counted). See :func:`ordering_disagreements`. ``statistic`` =
   fraction of discordant pairs.

PD is computed as :math:`|acc_{dense} - acc|` from float accuracies, so two PDs of one test image
can differ in their last bits; every function here first rounds the PD column to
:data:`PD_DECIMALS` (9) decimals, and claims 4, 5 and 7 also treat values that agree to a relative
:data:`TIE_RTOL` (``1e-9``) as equal.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ._validation import check_columns, check_fraction, check_int, check_nonnegative
from .experiments import correlations, spearman_rows

__all__ = ["VERDICTS", "TIE_RTOL", "PD_DECIMALS", "paper_claims", "ordering_disagreements", "correlation_levels",
           "resolve_levels"]

#: The possible verdicts of :func:`paper_claims`.
VERDICTS = ("holds", "fails", "mixed", "n/a")

_KEYS = ["network", "dataset", "method", "sparsity", "epoch"]
#: PD columns are rounded to this many decimals (of a percentage point) before anything is ranked:
#: ``|acc_dense - acc|`` from float accuracies gives 0.0999999999999943 and 0.1000000000000085 for
#: one test image each, which a rank correlation would count as different. One test image is
#: >= 1e-7 pp for any test set under 1e9 images, so the rounding never merges distinct PDs.
PD_DECIMALS = 9
#: Values closer than this (relative) are equal: a PD of one test image computed as
#: ``|acc_dense - acc|`` from two different accuracies differs in the last bits.
TIE_RTOL = 1e-9
_PAPER_METHODS = ("lowest", "random", "highest")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _round_pd(df: pd.DataFrame, target: str) -> pd.DataFrame:
    """``df`` with its ``target`` column rounded to :data:`PD_DECIMALS` (a copy; ``df`` is untouched)."""
    check_columns(df, [target], "results table")
    return df.assign(**{target: df[target].round(PD_DECIMALS)})


def _select(df: pd.DataFrame, network: Optional[str], dataset: Optional[str], measures: Optional[Sequence[str]],
            target: str) -> Tuple[pd.DataFrame, List[str]]:
    """Validate, filter to ``network``/``dataset`` and return (trial means, measures)."""
    check_columns(df, _KEYS + ["ap2", target], "results table")
    df = _round_pd(df, target)
    if measures is None:
        measures = ["ap2"] + [c for c in df.columns if str(c).startswith("ap3_")]
    measures = list(measures)
    if not measures:
        raise ValueError("measures must name at least one AP column")
    check_columns(df, measures, "results table")
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


def _label(mean: pd.DataFrame):
    """Group label function: ``dataset`` alone when the table holds one network."""
    one_net = mean["network"].nunique() == 1
    return (lambda n, d: f"{d}") if one_net else (lambda n, d: f"{n}/{d}")


def _verdict(passed: int, tests: int, hold_fraction: float = 1.0, fail_fraction: float = 0.0) -> str:
    if tests == 0:
        return "n/a"
    f = passed / tests
    if f >= hold_fraction:
        return "holds"
    if f <= fail_fraction:
        return "fails"
    return "mixed"


def _row(claim: str, statement: str, measure: str, passed: int, tests: int, statistic: float, evidence: str,
         hold_fraction: float = 1.0, fail_fraction: float = 0.0) -> Dict[str, Any]:
    return {"claim": claim, "statement": statement, "measure": measure, "passed": int(passed),
            "tests": int(tests), "statistic": float(statistic), "evidence": evidence,
            "verdict": _verdict(passed, tests, hold_fraction, fail_fraction)}


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


def _failures(items: List[str], limit: int = 3) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; not: " + "; ".join(items[:limit]) + more


def _epochs(mean: pd.DataFrame) -> List[int]:
    last = int(mean["epoch"].max())
    return [0, last] if last > 0 and (mean["epoch"] == 0).any() else [last]


# --------------------------------------------------------------------------------------------
# correlation levels (public)
# --------------------------------------------------------------------------------------------
def resolve_levels(levels: Sequence[str], last_epoch: int) -> List[Tuple[str, str, Optional[int]]]:
    """Parse correlation levels into ``(name, kind, epoch)``.

    ``"cells"`` (the method x sparsity grid at the last epoch) becomes ``"cells@<last>"``;
    ``"cells@<e>"`` is the grid at epoch ``e``; ``"epochs"`` is every (cell, epoch) point.
    """
    if isinstance(levels, str) or len(levels) == 0:
        raise ValueError(f"levels must be a non-empty list of 'cells', 'cells@<epoch>', 'epochs'; got {levels!r}")
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


def correlation_levels(df: pd.DataFrame, levels: Sequence[str] = ("cells@0", "cells", "epochs"), *,
                       measures: Optional[Sequence[str]] = None, target: str = "pd_test", n_boot: int = 1000,
                       ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    r"""Spearman/Kendall correlations of each AP measure with PD at several levels, in one table.

    Calls :func:`latentkit.experiments.correlations` (grouped by network and dataset) once per
    level, on the table with ``target`` rounded to :data:`PD_DECIMALS` decimals (so that equal PDs
    tie), and concatenates; the ``level`` column names the epoch of the grid levels:

    * ``"cells@<e>"`` -- one point per (method, sparsity) cell at fine-tuning epoch ``e``
      (``"cells@0"``: right after pruning, where PD spans its widest range);
    * ``"cells"`` -- the same at the last epoch (named ``"cells@<last>"`` in the output);
    * ``"epochs"`` -- one point per (cell, epoch).

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.experiments.run_grid`
    levels : sequence of str
    measures, target : AP columns (default ``ap2`` and every ``ap3_*``) and the PD column
    n_boot, ci, seed : the percentile bootstrap of :func:`~latentkit.experiments.correlations`

    Returns
    -------
    DataFrame with the columns of :func:`~latentkit.experiments.correlations`.
    """
    check_columns(df, ["epoch"], "results table")
    df = _round_pd(df, target)
    out = []
    for name, kind, epoch in resolve_levels(levels, int(df["epoch"].max())):
        c = correlations(df, measures=measures, targets=(target,), level=kind, epoch=epoch, n_boot=n_boot, ci=ci,
                         seed=seed)
        out.append(c.assign(level=name))
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------------------------
# claim 7's pairs (public)
# --------------------------------------------------------------------------------------------
def ordering_disagreements(df: pd.DataFrame, network: Optional[str] = None, dataset: Optional[str] = None, *,
                           measures: Optional[Sequence[str]] = None, target: str = "pd_test",
                           epochs: Optional[Sequence[int]] = None, all_pairs: bool = False) -> pd.DataFrame:
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
    df : DataFrame from :func:`latentkit.experiments.run_grid`
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
    cols = ["network", "dataset", "epoch", "measure", "comparison", "method_a", "sparsity_a", "method_b",
            "sparsity_b", "ap_a", "ap_b", "pd_a", "pd_b", "relation"]
    rows = []
    for (net, ds, ep), g in mean[mean["epoch"].isin(epochs)].groupby(["network", "dataset", "epoch"], sort=False):
        recs = g.to_dict("records")
        for m in measures:
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
                    rows.append([net, ds, int(ep), m, comp, a["method"], float(a["sparsity"]), b["method"],
                                 float(b["sparsity"]), float(a[m]), float(b[m]), float(a[target]),
                                 float(b[target]), rel])
    out = pd.DataFrame(rows, columns=cols)
    if not all_pairs:
        out = out[out["relation"] == "disagree"].reset_index(drop=True)
    return out


# --------------------------------------------------------------------------------------------
# the claims
# --------------------------------------------------------------------------------------------
def _given_correlations(corr: pd.DataFrame, mean: pd.DataFrame, measures: List[str], target: str,
                        levels: Sequence[str]) -> pd.DataFrame:
    """The rows of a precomputed correlation table that claims 2 and 3 need (all must be there)."""
    check_columns(corr, ["network", "dataset", "level", "measure", "target", "spearman", "spearman_low",
                         "spearman_high"], "correlation table")
    corr = corr[corr["level"].isin(levels) & (corr["target"] == target) & corr["measure"].isin(measures)]
    need = {(n, ds, lv, m) for n, ds in mean[["network", "dataset"]].drop_duplicates().itertuples(index=False)
            for lv in levels for m in measures}
    have = set(corr[["network", "dataset", "level", "measure"]].itertuples(index=False, name=None))
    missing = sorted(need - have)
    if missing:
        raise ValueError(f"the correlation table lacks {len(missing)} (network, dataset, level, measure) "
                         f"row(s) for target {target!r}, e.g. {missing[:3]}")
    if len(have) != len(corr):
        raise ValueError("the correlation table has duplicate (network, dataset, level, measure) rows")
    return corr[corr.apply(lambda r: (r["network"], r["dataset"], r["level"], r["measure"]) in need, axis=1)]


def _claim2(d: pd.DataFrame, mean: pd.DataFrame, measures: List[str], target: str, levels: Sequence[str],
            names: List[str], n_boot: int, ci: float, seed: int, corr: Optional[pd.DataFrame]
            ) -> Tuple[List[Dict[str, Any]], pd.DataFrame]:
    lab = _label(mean)
    if corr is None:
        corr = correlation_levels(d, levels, measures=measures, target=target, n_boot=n_boot, ci=ci, seed=seed)
    else:
        corr = _given_correlations(corr, mean, measures, target, names)
    rows = []
    for m in measures:
        c = corr[corr["measure"] == m]
        ok = c[np.isfinite(c["spearman"])]
        passed = int((ok["spearman_low"] > 0).sum())
        ev = "; ".join(f"{lab(r.network, r.dataset)} {r.level}: rho={_g(r.spearman)} "
                       f"[{_g(r.spearman_low)}, {_g(r.spearman_high)}]" if np.isfinite(r.spearman)
                       else f"{lab(r.network, r.dataset)} {r.level}: undefined ({r.note})"
                       for r in c.itertuples())
        rows.append(_row("2", f"{m} correlates positively with {target}", m, passed, len(ok),
                         float(np.median(ok["spearman"])) if len(ok) else float("nan"), ev))
    return rows, corr


def _points(mean: pd.DataFrame, level: str) -> pd.DataFrame:
    """The points of :func:`latentkit.experiments.correlations` at a resolved ``level`` (trial means)."""
    if level.startswith("cells@"):
        return mean[mean["epoch"] == int(level[6:])]
    return mean


def _claim3(mean: pd.DataFrame, corr: pd.DataFrame, measures: List[str], target: str, levels: Sequence[str],
            n_boot: int, ci: float, seed: int) -> List[Dict[str, Any]]:
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
                lo, hi = (np.quantile(delta, alpha), np.quantile(delta, 1 - alpha)) if len(delta) else (np.nan,) * 2
                tests += 1
                passed += int(not hi < 0)
                diffs.append(r2 - r3)
                ev.append(f"{lab(net, ds)} {lv}: d_rho={_g(r2 - r3)} [{_g(lo)}, {_g(hi)}]")
        rows.append(_row("3", f"ap2 tracks {target} at least as well as {m}", f"ap2 vs {m}", passed, tests,
                         float(np.median(diffs)) if diffs else float("nan"), "; ".join(ev)))
    return rows


def _claim4(mean: pd.DataFrame, measures: List[str], target: str, epochs: List[int],
            monotone_rtol: float) -> List[Dict[str, Any]]:
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
        rows.append(_row("4", f"{m} grows with sparsity for each method", m, passed, tests,
                         passed / tests if tests else float("nan"), ev))
    return rows


def _claim5(mean: pd.DataFrame, target: str, epochs: List[int]) -> List[Dict[str, Any]]:
    lab = _label(mean)
    rows = []
    for m in ("ap2", target):
        passed, tests, bad = 0, 0, []
        for (net, ds, s), g in mean.groupby(["network", "dataset", "sparsity"], sort=False):
            for e in epochs:
                v = g[g["epoch"] == e].set_index("method")[m]
                if not all(k in v.index for k in _PAPER_METHODS):
                    continue
                lo, ra, hi = (float(v[k]) for k in _PAPER_METHODS)
                ok = _le(lo, ra) and _le(ra, hi) and _lt(lo, hi)
                tests += 1
                passed += ok
                if not ok:
                    bad.append(f"{lab(net, ds)} {_pct(s)} t={e} (lowest {_g(lo)}, random {_g(ra)}, highest {_g(hi)})")
        ev = f"lowest <= random <= highest at {passed}/{tests} (sparsity, epoch)" + _failures(bad)
        rows.append(_row("5", f"lowest < random < highest magnitude in {m} at equal sparsity", m, passed, tests,
                         passed / tests if tests else float("nan"), ev))
    return rows


def _settled(x: np.ndarray, k: int, rtol: float, atol: float) -> bool:
    window = x[-(k + 1):]
    return bool(np.ptp(window) <= max(rtol * np.ptp(x), atol))


def _claim6(mean: pd.DataFrame, measures: List[str], target: str, settle_epochs: int, settle_rtol: float,
            settle_pd_atol: float, recover_max_sparsity: float, recover_pp: float) -> List[Dict[str, Any]]:
    lab = _label(mean)
    rows = []
    last = int(mean["epoch"].max())
    for m in [x for x in measures if x.startswith("ap3_")]:
        passed, tests, bad, n_ap, n_pd = 0, 0, [], 0, 0
        if last > settle_epochs:
            for (net, ds, meth, s), g in mean.groupby(["network", "dataset", "method", "sparsity"], sort=False):
                g = g.sort_values("epoch")
                a = _settled(g[m].to_numpy(float), settle_epochs, settle_rtol, 0.0)
                p = _settled(g[target].to_numpy(float), settle_epochs, settle_rtol, settle_pd_atol)
                tests += 1
                passed += a and p
                n_ap += a
                n_pd += p
                if not (a and p):
                    bad.append(f"{lab(net, ds)} {meth} {_pct(s)} ({m} {'settled' if a else 'moving'}, "
                               f"{target} {'settled' if p else 'moving'})")
        ev = (f"over epochs {last - settle_epochs}..{last}: {m} settled in {n_ap}/{tests} cells, {target} in "
              f"{n_pd}/{tests}, both in {passed}/{tests}" + _failures(bad)) if tests else \
            f"needs more than {settle_epochs} fine-tuning epochs (table has {last})"
        rows.append(_row("6a", f"{m} and {target} settle together during fine-tuning", f"{m}, {target}",
                         passed, tests, passed / tests if tests else float("nan"), ev))
    fin = mean[(mean["epoch"] == last) & (mean["method"] == "lowest") & (mean["sparsity"] <= recover_max_sparsity)]
    vals = fin[target].to_numpy(float)
    passed = int((vals < recover_pp).sum())
    ev = (f"final {target} (t={last}): " + "; ".join(f"{lab(r.network, r.dataset)} {_pct(r.sparsity)}: "
                                                     f"{_g(getattr(r, target))} pp" for r in fin.itertuples())
          if len(fin) else f"no lowest-magnitude cell with sparsity <= {recover_max_sparsity}")
    rows.append(_row("6b", f"lowest magnitude at sparsity <= {_pct(recover_max_sparsity)} returns to "
                           f"|{target}| < {recover_pp:g} pp", target, passed, len(fin),
                     passed / len(fin) if len(fin) else float("nan"), ev))
    return rows


def _claim6c(d: pd.DataFrame, mean: pd.DataFrame, measures: List[str], target: str, n_boot: int, ci: float,
             seed: int) -> List[Dict[str, Any]]:
    lab = _label(mean)
    w = correlations(d, measures=measures, targets=(target,), level="within", n_boot=n_boot, ci=ci, seed=seed)
    rows = []
    for m in measures:
        c = w[w["measure"] == m]
        ok = c[np.isfinite(c["spearman"])]
        passed = int((ok["spearman_low"] > 0).sum())
        parts = [f"{lab(n, ds)} {meth}: median rho={_g(g['spearman'].median())} ({int((g['spearman_low'] > 0).sum())}"
                 f"/{len(g)} CI > 0)" for (n, ds, meth), g in ok.groupby(["network", "dataset", "method"], sort=False)]
        undefined = len(c) - len(ok)
        ev = "; ".join(parts) + (f"; {undefined} cell(s) undefined (constant series)" if undefined else "")
        rows.append(_row("6c", f"{m}(t) moves with {target}(t) during fine-tuning, within each cell", m, passed,
                         len(ok), float(ok["spearman"].median()) if len(ok) else float("nan"), ev))
    return rows


def _claim7(d: pd.DataFrame, measures: List[str], target: str, epochs: List[int],
            min_agreement: float) -> List[Dict[str, Any]]:
    pairs = ordering_disagreements(d, measures=measures, target=target, epochs=epochs, all_pairs=True)
    rows = []
    for m in measures:
        p = pairs[pairs["measure"] == m]
        agree = int((p["relation"] == "agree").sum())
        dis = p[p["relation"] == "disagree"]
        tests = agree + len(dis)
        by = dis["comparison"].value_counts()
        per_epoch = ", ".join(f"t={e}: {int((g['relation'] == 'disagree').sum())}/{int((g['relation'] != 'tie').sum())}"
                              for e, g in p.groupby("epoch"))
        ev = (f"{len(dis)}/{tests} comparable pairs disagree ({per_epoch}; {int((p['relation'] == 'tie').sum())} "
              f"ties left out): same sparsity {int(by.get('same sparsity', 0))}, "
              f"same method {int(by.get('same method', 0))}")
        rows.append(_row("7", f"{m} orders comparable cells as {target} does", m, agree, tests,
                         len(dis) / tests if tests else float("nan"), ev, hold_fraction=min_agreement,
                         fail_fraction=0.5))
    return rows


def paper_claims(df: pd.DataFrame, network: Optional[str] = None, dataset: Optional[str] = None, *,
                 measures: Optional[Sequence[str]] = None, target: str = "pd_test",
                 levels: Sequence[str] = ("cells@0", "cells", "epochs"), n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0,
                 monotone_rtol: float = 0.0, settle_epochs: int = 5, settle_rtol: float = 0.1,
                 settle_pd_atol: float = 0.5, recover_max_sparsity: float = 0.3, recover_pp: float = 1.0,
                 min_agreement: float = 0.9, corr: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    r"""Test the paper's claims 2-7 (notes, section 5) on a results table; one row per (claim, measure).

    The claims, their sub-tests and statistics are described in the module docstring; the verdict
    is ``"holds"`` if every sub-test passed, ``"fails"`` if none did, ``"mixed"`` otherwise and
    ``"n/a"`` when nothing could be tested (claim 7: ``"holds"`` if at least ``min_agreement`` of the
    comparable pairs agree, ``"fails"`` at 50 % or less).

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.experiments.run_grid`
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
    rows += _claim6(mean, measures, target, settle_epochs, settle_rtol, settle_pd_atol, recover_max_sparsity,
                    recover_pp)
    rows += _claim6c(d, mean, measures, target, n_boot, ci, seed)
    rows += _claim7(d, measures, target, epochs, min_agreement)
    return pd.DataFrame(rows, columns=["claim", "statement", "measure", "passed", "tests", "statistic",
                                       "evidence", "verdict"])
