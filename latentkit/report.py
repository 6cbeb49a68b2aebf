"""The report of a finished grid: tables, verdicts and the book's figures, written next to its results.

:func:`write_report` reads ``DIR/results.csv`` (and ``DIR/dense.csv`` if present), the files
:func:`latentkit.grid.run_grid` writes, and writes ``DIR/report/``:

* ``summary.csv`` -- trial means at the last epoch (:func:`latentkit.stats.summarize`);
* ``correlations.csv`` -- Spearman/Kendall correlations of every AP measure with ``pd_test`` and
  ``pd_train`` at the levels cells / epochs / within (:func:`latentkit.stats.correlations`);
* ``claims.csv`` -- the paper's claims as verdicts (:func:`latentkit.claims.paper_claims`);
* ``summary.txt`` -- the three tables as text;
* ``curves_<network>_<dataset>.png`` (AP and PD over the fine-tuning epochs,
  :func:`latentkit.plots.ap_pd_curves`) and ``dense_curves_<network>.png``
  (:func:`latentkit.plots.dense_curves`).

The figures and verdicts are the book's own, so a report and a chapter show the same thing. No
torch: the report needs only the results tables (``python -m latentkit report DIR`` calls it).

Examples
--------
>>> import pandas as pd
>>> from latentkit.report import format_table
>>> print(format_table(pd.DataFrame({'rho': [0.5, -0.25]})))
  rho
  0.5
-0.25
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from . import plots
from ._checks import check_int
from .claims import paper_claims
from .options import CORRELATION_LEVELS
from .stats import correlations, summarize

__all__ = ["format_table", "write_report"]

#: Columns the report needs in ``results.csv`` (``ap3_*`` measures and ``scale`` are optional).
_RESULT_COLUMNS = (
    "network",
    "dataset",
    "method",
    "sparsity",
    "epoch",
    "ap2",
    "test_acc",
    "pd_train",
    "pd_test",
)


def format_table(df: pd.DataFrame) -> str:
    """``df`` as text without its index, floats with 4 significant digits (``{:.4g}``)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _write_text(rep: Path, summary: pd.DataFrame, corr: pd.DataFrame, verdicts: pd.DataFrame) -> Path:
    """``summary.txt``: the summary, the cells/epochs correlations and the verdicts as text."""
    path = rep / "summary.txt"
    with open(path, "w") as f:
        f.write("Last epoch, trial means (accuracy in %, PD in percentage points)\n")
        f.write(format_table(summary) + "\n\nCorrelations with PD (cells and epochs levels)\n")
        f.write(format_table(corr[corr["level"] != "within"].drop(columns=["note"])) + "\n")
        f.write("\nThe paper's claims (latentkit.claims.paper_claims)\n")
        f.write(format_table(verdicts[["claim", "measure", "passed", "tests", "verdict"]]) + "\n")
    return path


def _figures(df: pd.DataFrame, dense_path: Path) -> list[tuple[str, Callable[[], Figure]]]:
    """(file name, drawing function) of every figure: one AP/PD curve per (network, dataset), one
    dense-training figure per network of ``dense.csv`` (when it exists)."""
    scale = str(df["scale"].iloc[0]) if "scale" in df.columns else None
    figures: list[tuple[str, Callable[[], Figure]]] = [
        (f"curves_{net}_{ds}.png", lambda net=net, ds=ds: plots.ap_pd_curves(df, net, ds, scale=scale))
        for net, ds in df.groupby(["network", "dataset"], sort=False).groups
    ]
    if dense_path.is_file():
        dense = pd.read_csv(dense_path)
        figures += [
            (f"dense_curves_{net}.png", lambda net=net: plots.dense_curves(dense, net, scale=scale))
            for net in dict.fromkeys(dense["network"])
        ]
    return figures


def _read_results(path: Path) -> pd.DataFrame:
    """The results table in ``path``, or a ValueError naming the file (empty, no rows, missing columns)."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path} is empty: not a results table of run_grid") from exc
    missing = [c for c in _RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is missing column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{path} has no rows")
    return df


def write_report(out_dir: str | os.PathLike, n_boot: int = 1000) -> list[Path]:
    """Write tables and figures of a finished grid in ``out_dir/report``; return the files written.

    Parameters
    ----------
    out_dir : path
        The grid's output folder (holding ``results.csv`` and, optionally, ``dense.csv``).
    n_boot : int >= 10
        Bootstrap resamples of the correlations' confidence intervals and of the claims.

    Returns
    -------
    list of pathlib.Path
        ``summary.csv``, ``correlations.csv``, ``claims.csv``, ``summary.txt``, then the figures
        (``curves_<network>_<dataset>.png`` per group, ``dense_curves_<network>.png``), in that order.

    Raises
    ------
    TypeError
        ``out_dir`` not a path, ``n_boot`` not an integer (booleans included).
    FileNotFoundError
        No ``results.csv`` in ``out_dir``.
    ValueError
        From the statistics (an empty results table, missing columns, NaN values).

    Notes
    -----
    The matplotlib backend is left alone (headless shells pick a non-interactive one themselves).
    """
    if not isinstance(out_dir, str | os.PathLike):
        raise TypeError(f"out_dir must be a path; got {type(out_dir).__name__}")
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    out_dir = Path(out_dir)
    path = out_dir / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `python -m latentkit run CONFIG --out {out_dir}` first"
        )
    df = _read_results(path)
    rep = out_dir / "report"
    rep.mkdir(parents=True, exist_ok=True)
    summary = summarize(df)
    summary.to_csv(rep / "summary.csv", index=False)
    corr = pd.concat(
        [
            correlations(df, level=lv, n_boot=n_boot, targets=("pd_test", "pd_train"))
            for lv in CORRELATION_LEVELS
        ],
        ignore_index=True,
    )
    corr.to_csv(rep / "correlations.csv", index=False)
    verdicts = paper_claims(df, n_boot=n_boot)
    verdicts.to_csv(rep / "claims.csv", index=False)
    written = [rep / "summary.csv", rep / "correlations.csv", rep / "claims.csv"]
    written.append(_write_text(rep, summary, corr, verdicts))
    for name, draw in _figures(df, out_dir / "dense.csv"):
        fig = draw()
        fig.savefig(rep / name, dpi=100)
        plt.close(fig)
        written.append(rep / name)
    return written
