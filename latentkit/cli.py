"""Command line: run a grid from a config file, and write its report.

``python -m latentkit run CONFIG [--out DIR] [--engine cached|exact] [--quiet]``
    Runs (or resumes) :func:`latentkit.experiments.run_grid` with a tqdm progress bar, then prints
    a summary: trial means at the last epoch and the Spearman/Kendall correlations (with
    bootstrap confidence intervals) between each AP measure and PD_test across the grid's cells.
``python -m latentkit report DIR [--n-boot N]``
    Reads ``DIR/results.csv`` (and ``DIR/dense.csv``) and writes ``DIR/report/``: ``summary.csv``,
    ``correlations.csv`` (levels cells / epochs / within), ``claims.csv`` (the paper's claims as
    verdicts), ``summary.txt`` and the book's figures (``curves_<network>_<dataset>.png``: AP and
    PD over the fine-tuning epochs; ``dense_curves_<network>.png``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

__all__ = ["main", "write_report"]


def _fmt(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _cmd_run(args: argparse.Namespace) -> int:
    import torch

    from .experiments import correlations, load_config, run_grid, summarize

    overrides = {}
    if args.engine:
        overrides["engine"] = args.engine
    config = load_config(args.config, **overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("results") / config.name
    t0 = time.perf_counter()
    df = run_grid(config, out, progress=not args.quiet, verbose=not args.quiet)
    elapsed = time.perf_counter() - t0
    print(f"\n{len(df)} rows ({df.groupby(['network', 'dataset', 'method', 'sparsity', 'trial']).ngroups} cells) "
          f"in {elapsed:.1f} s -> {out / 'results.csv'}")
    print("\nLast epoch, trial means (accuracy in %, PD in percentage points):")
    print(_fmt(summarize(df)))
    corr = correlations(df, level="cells", n_boot=200)
    cols = ["network", "dataset", "measure", "n", "spearman", "spearman_low", "spearman_high",
            "kendall", "kendall_low", "kendall_high"]
    print("\nCorrelation with PD_test across the grid's cells (last epoch, 95% bootstrap CI):")
    print(_fmt(corr[cols]))
    return 0


def write_report(out_dir: "str | Path", n_boot: int = 1000) -> List[Path]:
    """Write tables and figures of a finished grid in ``out_dir/report``; return the files written.

    The figures are the book's own (:mod:`latentkit.plots`) and the verdicts those of
    :func:`latentkit.claims.paper_claims`, so a report and a chapter show the same thing. The
    matplotlib backend is left alone (headless shells pick a non-interactive one themselves).
    """
    import matplotlib.pyplot as plt

    from . import plots
    from .claims import paper_claims
    from .experiments import correlations, summarize

    out_dir = Path(out_dir)
    path = out_dir / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python -m latentkit run CONFIG --out {out_dir}` first")
    df = pd.read_csv(path)
    rep = out_dir / "report"
    rep.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    summary = summarize(df)
    summary.to_csv(rep / "summary.csv", index=False)
    written.append(rep / "summary.csv")
    corr = pd.concat([correlations(df, level=lv, n_boot=n_boot, targets=("pd_test", "pd_train"))
                      for lv in ("cells", "epochs", "within")], ignore_index=True)
    corr.to_csv(rep / "correlations.csv", index=False)
    written.append(rep / "correlations.csv")
    verdicts = paper_claims(df, n_boot=n_boot)
    verdicts.to_csv(rep / "claims.csv", index=False)
    written.append(rep / "claims.csv")
    with open(rep / "summary.txt", "w") as f:
        f.write("Last epoch, trial means (accuracy in %, PD in percentage points)\n")
        f.write(_fmt(summary) + "\n\nCorrelations with PD (cells and epochs levels)\n")
        f.write(_fmt(corr[corr["level"] != "within"].drop(columns=["note"])) + "\n")
        f.write("\nThe paper's claims (latentkit.claims.paper_claims)\n")
        f.write(_fmt(verdicts[["claim", "measure", "passed", "tests", "verdict"]]) + "\n")
    written.append(rep / "summary.txt")

    scale = str(df["scale"].iloc[0]) if "scale" in df.columns else None
    figures = [(f"curves_{net}_{ds}.png", lambda net=net, ds=ds: plots.ap_pd_curves(df, net, ds, scale=scale))
               for net, ds in df.groupby(["network", "dataset"], sort=False).groups]
    dense_path = out_dir / "dense.csv"
    if dense_path.is_file():
        dense = pd.read_csv(dense_path)
        figures += [(f"dense_curves_{net}.png", lambda net=net: plots.dense_curves(dense, net, scale=scale))
                    for net in dict.fromkeys(dense["network"])]
    for name, draw in figures:
        fig = draw()
        fig.savefig(rep / name, dpi=100)
        plt.close(fig)
        written.append(rep / name)
    return written


def _cmd_report(args: argparse.Namespace) -> int:
    files = write_report(args.dir, n_boot=args.n_boot)
    for f in files:
        print(f)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m latentkit`` / the ``latentkit`` script."""
    parser = argparse.ArgumentParser(prog="latentkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume a grid from a YAML/JSON config")
    run.add_argument("config")
    run.add_argument("--out", default=None, help="output folder (default results/<config name>)")
    run.add_argument("--engine", choices=["cached", "exact"], default=None, help="override the config's engine")
    run.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    run.add_argument("--quiet", action="store_true", help="no progress bar or training log")
    run.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="write tables and figures of a finished grid")
    rep.add_argument("dir")
    rep.add_argument("--n-boot", type=int, default=1000)
    rep.set_defaults(func=_cmd_report)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"latentkit: error: {exc}", file=sys.stderr)
        return 2
