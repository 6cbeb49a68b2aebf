r"""Sentences built from the numbers, so that a chapter's prose is true for whatever data it renders.

The benchmark chapters are one template rendered per network; whatever a sentence says about the
results ("holds in 5 of 6 sub-tests", "3 of 12 cells end above the dense network") is produced here
from the same tables the cells show, and glued into the prose with ``myst_nb.glue``. Nothing here
imports torch.

The signed accuracy change ``delta_test`` (pp, pruned minus dense, from integer counts) is positive
when a pruned network ends *above* its dense network: a gain. PD = ``|delta_test|`` reads a gain as
a loss; :func:`accuracy_change_summary` and :func:`sign_disagreements` say where the two differ.

Examples
--------
>>> from latentkit.claims.prose import SHORT_NAMES
>>> type(SHORT_NAMES).__name__
'dict'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_columns

__all__ = [
    "CLAIM_UNITS",
    "SHORT_NAMES",
    "accuracy_change_summary",
    "change_sentence",
    "correlation_sentence",
    "correlation_text",
    "count_phrase",
    "dense_accuracy",
    "short_name",
    "sign_disagreements",
    "verdict_overview",
    "verdict_sentence",
]

#: Short names of the measures, for sentences (the figures use :func:`latentkit.plots.measure_label`).
SHORT_NAMES: dict[str, str] = {
    "ap2": "AP2",
    "ap3_gauss_iso": "isotropic-Gaussian AP3",
    "ap3_t_chunks": "Student-t AP3",
    "ap3_laplace_kron": "Kronecker-Laplace AP3",
    "ap3_fn": "AP3_fn",
    "ap3_fn_quadratic": "quadratic AP3_fn",
    "obd": "OBD saliency",
    "pd_test": "PD",
    "delta_test": "accuracy change",
}
#: Names of the pruning methods in sentences: the paper's three and the reference code's stand-ins for
#: them (:data:`latentkit.options.REFERENCE_ROLES`), named after their role (the same words as
#: :data:`latentkit.plots.METHOD_LABELS`); other methods keep their own name.
_METHODS = {
    "lowest": "lowest magnitude",
    "highest": "highest magnitude",
    "random": "random",
    "highest_reference": "highest magnitude (reference code)",
    "random_reference": "random (reference code, seed 42)",
}
#: What the sub-tests of a claim count, for :func:`verdict_sentence` (default ``"sub-tests"``).
CLAIM_UNITS: dict[str, str] = {
    "6a": "cells",
    "6b": "cells",
    "6c": "cells",
    "7": "comparable pairs ordered alike",
}
_LEVELS = {"cells@0": "right after pruning", "cells": "after fine-tuning", "epochs": "pooled over epochs"}


def short_name(measure: str) -> str:
    """Short name of a measure or of a verdict's ``measure`` entry.

    ``"ap2"`` -> ``"AP2"``, ``"ap2 vs ap3_fn"`` -> ``"AP2 vs AP3_fn"``, ``"ap3_fn, pd_test"`` ->
    ``"AP3_fn with PD"`` (claim 6a's pairs); unknown names unchanged.
    """
    text = str(measure)
    sep = " vs " if " vs " in text else ", "
    names = [SHORT_NAMES.get(p.strip(), p.strip()) for p in text.split(sep)]
    return (" vs " if sep == " vs " else " with ").join(names)


def count_phrase(passed: int, total: int, unit: str = "sub-tests") -> str:
    """``"all 6 sub-tests"``, ``"none of the 6 sub-tests"``, ``"4 of 6 sub-tests"``.

    ``"no sub-tests"`` when ``total`` is 0, ``"the one sub-test"`` for one of one.
    """
    passed, total = int(passed), int(total)
    if passed < 0 or total < 0 or passed > total:
        raise ValueError(f"need 0 <= passed <= total; got {passed} of {total}")
    if total == 0:
        return f"no {unit}"
    if passed == total:
        return f"all {total} {unit}" if total > 1 else f"the one {unit.rstrip('s')}"
    if passed == 0:
        return f"none of the {total} {unit}"
    return f"{passed} of {total} {unit}"


def dense_accuracy(dense: pd.DataFrame, *, decimals: int = 1) -> pd.DataFrame:
    """Final dense test accuracy per (network, dataset) as mean +- sd over the trials.

    ``dense`` is :func:`latentkit.grid.dense_table` (one row per trial and epoch). Returns columns
    ``network, dataset, epochs, trials, mean, sd`` (percent; ``sd`` with ``ddof=1``, 0 for one trial)
    and ``text`` (``"98.9 ± 0.3 %"``; one trial: ``"98.9 % (one trial)"``).
    """
    check_columns(dense, ["network", "dataset", "epoch", "test_acc"], "dense (the dense table)")
    d = dense if "trial" in dense.columns else dense.assign(trial=0)
    last = d[d["epoch"] == d.groupby(["network", "dataset", "trial"])["epoch"].transform("max")]
    rows = []
    for (net, ds), g in last.groupby(["network", "dataset"], sort=False):
        acc = g["test_acc"].to_numpy(float)
        sd = float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0
        text = (
            f"{acc.mean():.{decimals}f} ± {sd:.{decimals}f} %"
            if len(acc) > 1
            else f"{acc.mean():.{decimals}f} % (one trial)"
        )
        rows.append(
            {
                "network": net,
                "dataset": ds,
                "epochs": int(g["epoch"].max()),
                "trials": len(acc),
                "mean": float(acc.mean()),
                "sd": sd,
                "text": text,
            }
        )
    return pd.DataFrame(rows)


def _cells(df: pd.DataFrame, epoch: int) -> pd.DataFrame:
    """Trial means of ``delta_test`` / ``pd_test`` per (network, dataset, method, sparsity) at ``epoch``."""
    d = df[df["epoch"] == epoch]
    return (
        d.groupby(["network", "dataset", "method", "sparsity"], sort=False)[["delta_test", "pd_test"]]
        .mean()
        .reset_index()
    )


def _cell_name(row: Any) -> str:
    return f"{_METHODS.get(row.method, row.method)} at {100 * float(row.sparsity):.4g} %"


def accuracy_change_summary(df: pd.DataFrame, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Where the pruned networks end relative to their dense network, per dataset and epoch.

    On trial means of the signed change ``delta_test`` per cell: ``cells``, ``gains`` (delta > 0:
    *above* the dense network), ``losses`` (delta < 0), ``unchanged`` (delta = 0), the largest loss and
    the largest gain with their cells (``worst``/``worst_cell``, ``best``/``best_cell``), one row per
    (network, dataset, epoch). Default epochs: 0 and the last.
    """
    check_columns(df, ["network", "dataset", "method", "sparsity", "epoch", "delta_test", "pd_test"], "df")
    epochs = [0, int(df["epoch"].max())] if epochs is None else [int(e) for e in epochs]
    rows = []
    for e in epochs:
        cells = _cells(df, e)
        for (net, ds), g in cells.groupby(["network", "dataset"], sort=False):
            lo = g.loc[g["delta_test"].idxmin()]
            hi = g.loc[g["delta_test"].idxmax()]
            rows.append(
                {
                    "network": net,
                    "dataset": ds,
                    "epoch": e,
                    "cells": len(g),
                    "gains": int((g["delta_test"] > 0).sum()),
                    "losses": int((g["delta_test"] < 0).sum()),
                    "unchanged": int((g["delta_test"] == 0).sum()),
                    "worst": float(lo["delta_test"]),
                    "worst_cell": _cell_name(lo),
                    "best": float(hi["delta_test"]),
                    "best_cell": _cell_name(hi),
                }
            )
    return pd.DataFrame(rows)


def change_sentence(row: Any) -> str:
    """One sentence from a row of :func:`accuracy_change_summary` (a Series or a namedtuple).

    Parameters
    ----------
    row : pandas.Series or namedtuple
        One row of :func:`accuracy_change_summary`.
    """
    get = row.get if isinstance(row, dict | pd.Series) else lambda k: getattr(row, k)
    n, gains, losses, same = (int(get(k)) for k in ("cells", "gains", "losses", "unchanged"))
    e = int(get("epoch"))
    when = "right after pruning (*t* = 0)" if e == 0 else f"after {e} fine-tuning epochs"
    parts = []

    def verb(k: int, plural: str, singular: str) -> str:
        return singular if k == 1 else plural

    if losses:
        parts.append(
            f"{count_phrase(losses, n, 'cells')} {verb(losses, 'end', 'ends')} below the dense "
            "network (the largest loss: "
            f"{get('worst'):+.2f} pp, {get('worst_cell')})"
        )
    if gains:
        parts.append(
            f"{count_phrase(gains, n, 'cells')} {verb(gains, 'end', 'ends')} *above* it "
            "(the largest gain: "
            f"{get('best'):+.2f} pp, {get('best_cell')})"
        )
    if same:
        parts.append(
            f"{count_phrase(same, n, 'cells')} {verb(same, 'have', 'has')} exactly its test accuracy"
        )
    text = "; ".join(parts)
    return f"{when[0].upper()}{when[1:]}, {text}."


def sign_disagreements(df: pd.DataFrame, epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """Pairs of cells that PD and the signed loss (``-delta_test``) order differently.

    Per (network, dataset, epoch), over all pairs of cells (trial means of ``pd_test`` and of
    ``delta_test``): ``pairs``, ``discordant`` (PD says one cell is worse, the signed change says it
    is better) and ``with_gain`` (pairs containing a cell whose mean change is > 0). With one trial a
    discordant pair always contains a gain; with several, a cell that gains in some trials and loses
    in others also makes pairs discordant (the mean of ``|delta|`` is not ``|mean delta|``). Ties in
    either quantity are not discordant.
    """
    check_columns(df, ["network", "dataset", "method", "sparsity", "epoch", "delta_test"], "df")
    epochs = [0, int(df["epoch"].max())] if epochs is None else [int(e) for e in epochs]
    rows = []
    for e in epochs:
        cells = _cells(df, e)
        for (net, ds), g in cells.groupby(["network", "dataset"], sort=False):
            pd_v = g["pd_test"].to_numpy(float)
            loss = -g["delta_test"].to_numpy(float)
            i, j = np.triu_indices(len(g), k=1)
            disc = np.sign(pd_v[i] - pd_v[j]) * np.sign(loss[i] - loss[j]) < 0
            gain = (loss[i] < 0) | (loss[j] < 0)
            rows.append(
                {
                    "network": net,
                    "dataset": ds,
                    "epoch": e,
                    "pairs": len(i),
                    "discordant": int(disc.sum()),
                    "with_gain": int(gain.sum()),
                }
            )
    return pd.DataFrame(rows)


def correlation_text(corr: pd.DataFrame, measure: str, dataset: str, level: str) -> str:
    """``"ρ = 0.96 [0.82, 1.00]"`` for one row of :func:`latentkit.claims.correlation_levels`.

    ``"ρ undefined"`` when the correlation is NaN (a constant measure or PD).
    """
    sel = corr[(corr["measure"] == measure) & (corr["dataset"] == dataset) & (corr["level"] == level)]
    if sel.empty:
        raise ValueError(f"no correlation for measure={measure!r}, dataset={dataset!r}, level={level!r}")
    r = sel.iloc[0]
    if not np.isfinite(r["spearman"]):
        return "ρ undefined"
    return f"ρ = {r['spearman']:.2f} [{r['spearman_low']:.2f}, {r['spearman_high']:.2f}]"


def correlation_sentence(
    corr: pd.DataFrame, dataset: str, level: str, measures: Sequence[str] = ("ap2", "ap3_fn")
) -> str:
    """How many measures correlate significantly with PD at one level, naming the named ones.

    A measure is significantly positive (negative) when its whole bootstrap interval lies above
    (below) 0. Example: ``"Right after pruning, 6 of 7 measures are significantly positive (AP2:
    ρ = 0.96 [0.82, 1.00]; AP3_fn: ...); the highest ρ: AP2."``
    """
    g = corr[(corr["dataset"] == dataset) & (corr["level"] == level)]
    if g.empty:
        raise ValueError(f"no correlations for dataset={dataset!r}, level={level!r}")
    n = len(g)
    pos = int((g["spearman_low"] > 0).sum())
    neg = int((g["spearman_high"] < 0).sum())
    named = "; ".join(
        f"{short_name(m)}: {correlation_text(corr, m, dataset, level)}"
        for m in measures
        if m in set(g["measure"])
    )
    when = _LEVELS.get(level, level)
    if level.startswith("cells@") and level != "cells@0":
        when = f"after {level[len('cells@') :]} fine-tuning epochs"
    text = (
        f"{when[0].upper()}{when[1:]}, {count_phrase(pos, n, 'measures')} "
        "correlate significantly positively with PD"
    )
    if neg:
        text += f" and {count_phrase(neg, n, 'measures')} significantly negatively"
    if named:
        text += f" ({named})"
    finite = g[np.isfinite(g["spearman"])]
    if len(finite):
        best = finite.loc[finite["spearman"].idxmax()]
        text += f"; the highest ρ is that of {short_name(best['measure'])} ({best['spearman']:.2f})"
    return text + "."


def verdict_sentence(verdicts: pd.DataFrame, claim: str) -> str:
    """The verdicts of one claim of :func:`latentkit.claims.paper_claims`, one clause per measure.

    Example: ``"*holds* for AP2 (all 6 sub-tests), *mixed* for AP3_fn (4 of 6 sub-tests)"``;
    measures with the same verdict and counts are grouped.
    """
    v = verdicts[verdicts["claim"].astype(str) == str(claim)]
    if v.empty:
        raise ValueError(f"no verdict for claim {claim!r}; the table holds {sorted(set(verdicts['claim']))}")
    groups: dict[tuple[str, int, int], list[str]] = {}
    for r in v.itertuples():
        groups.setdefault((r.verdict, int(r.passed), int(r.tests)), []).append(short_name(r.measure))
    clauses = []
    for (verdict, passed, tests), names in groups.items():
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        unit = CLAIM_UNITS.get(str(claim), "sub-tests")
        clauses.append(f"*{verdict}* for {who} ({count_phrase(passed, tests, unit)})")
    return "; ".join(clauses)


def verdict_overview(verdicts: pd.DataFrame) -> str:
    """Which claims hold, are mixed or fail for every measure: ``"holds for every measure: 5, 6b; ..."``.

    A claim is listed under a verdict when all its rows share it, else under "depends on the measure".
    """
    out: dict[str, list[str]] = {}
    for claim, g in verdicts.groupby(verdicts["claim"].astype(str), sort=False):
        vs = set(g["verdict"])
        key = f"{next(iter(vs))} for every measure" if len(vs) == 1 else "depends on the measure"
        out.setdefault(key, []).append(claim)
    order = ["holds for every measure", "mixed for every measure", "fails for every measure"]
    keys = [k for k in order if k in out] + [k for k in out if k not in order]
    return "; ".join(f"{k}: claim{'s' if len(out[k]) > 1 else ''} {', '.join(out[k])}" for k in keys)
