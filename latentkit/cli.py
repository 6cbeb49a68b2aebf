"""Command line: run a grid from a config file, and write its report.

``python -m latentkit run CONFIG [--out DIR] [--engine E] [--threads N] [--executor X] [--address A]``
    Runs (or resumes) :func:`latentkit.grid.run_grid` with a tqdm progress bar, then prints
    a summary: trial means at the last epoch and the Spearman/Kendall correlations (with
    bootstrap confidence intervals) between each AP measure and PD_test across the grid's cells.
    ``CONFIG`` is a YAML/JSON file or the name of a shipped config (``quick``, ``paper``).
    ``--executor ray`` runs one Ray task per (network, dataset, trial) group on a local Ray, or on
    the cluster at ``--address`` (:mod:`latentkit.grid.executors`); running the same command
    again resumes a killed run from the cache of ``--out``. ``--engine`` is ``cached`` or ``exact``,
    ``--executor`` ``serial``, ``local`` (a pool of one single-threaded worker per core) or ``ray``;
    without it, ``run_grid``'s default: ``local`` for a CPU grid of the quick preset, else
    ``serial`` (the tables are bit-identical either way). ``--quiet`` turns the progress bar off.
``python -m latentkit report DIR [--n-boot N]``
    Reads ``DIR/results.csv`` (and ``DIR/dense.csv``) and writes ``DIR/report/``: ``summary.csv``,
    ``correlations.csv`` (levels cells / epochs / within), ``claims.csv`` (the paper's claims as
    verdicts), for a reference-mode run ``reference_rescale.csv`` (AP2 rescaled to a maximum of 3.8
    per run, as the reference code plots it), ``summary.txt`` and the book's figures
    (:func:`latentkit.report.write_report`).
``python -m latentkit plan CONFIG [--tflops T] [--loader-images-per-worker R]``
    Prints what the grid costs before it runs (:func:`latentkit.grid.plan_grid`): cells, result
    rows, GPU-hours per network and phase at the stated throughput, and the disk the dense cache takes.

Every user error (a config that does not exist or does not parse, an unknown key, a bad value,
``--out`` naming a file, ``--threads`` < 1, an unknown ``--executor``, ``--address`` without
``--executor ray``) exits with status 2 and one line naming the problem.

Examples
--------
>>> import contextlib, io
>>> from latentkit.cli import main
>>> buf = io.StringIO()
>>> with contextlib.redirect_stdout(buf):
...     code = main(['plan', 'quick'])
...
>>> code
0
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import stats
from .options import ENGINES
from .report import format_table, write_report

__all__ = ["main"]


class UsageError(Exception):
    """A user error of the command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line (``latentkit: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _threads(text: str) -> int:
    """``--threads``: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads must be an integer >= 1; got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--threads must be an integer >= 1; got {n}")
    return n


def _positive(text: str) -> float:
    """A number > 0 (``--tflops``, ``--loader-images-per-worker``)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0; got {text!r}")
    return v


def _cmd_run(args: argparse.Namespace) -> int:
    import torch  # the training pipeline (torch) is loaded only by the commands that train

    from .grid import default_out, load_config, run_grid
    from .grid.executors import make_executor

    if args.address is not None and args.executor != "ray":
        raise UsageError("--address needs --executor ray")
    # None: run_grid's default (the local process pool for a CPU quick grid, else serial)
    executor = None if args.executor is None else make_executor(args.executor, address=args.address)
    overrides = {"engine": args.engine} if args.engine else {}
    config = load_config(args.config, **overrides)
    out = Path(args.out) if args.out else default_out(config)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is an existing file, not a folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    df = run_grid(config, out, progress=not args.quiet, verbose=not args.quiet, executor=executor)
    elapsed = time.perf_counter() - t0
    n_cells = df.groupby(["network", "dataset", "method", "sparsity", "trial"]).ngroups
    print(f"\n{len(df)} rows ({n_cells} cells) in {elapsed:.1f} s -> {out / 'results.csv'}")
    print("\nLast epoch, trial means (accuracy in %, PD in percentage points):")
    print(format_table(stats.summarize(df)))
    corr = stats.correlations(df, level="cells", n_boot=200)
    cols = [
        "network",
        "dataset",
        "measure",
        "n",
        "spearman",
        "spearman_low",
        "spearman_high",
        "kendall",
        "kendall_low",
        "kendall_high",
    ]
    print("\nCorrelation with PD_test across the grid's cells (last epoch, 95% bootstrap CI):")
    print(format_table(corr[cols]))
    return 0


#: Width of the tables ``plan`` prints (wider frames wrap into column blocks, as in a terminal or a page).
_WIDTH = 78


def _cmd_plan(args: argparse.Namespace) -> int:
    from .grid import config_costs, disk_table, grid_size, load_config, plan_grid

    config = load_config(args.config)
    size = grid_size(config)
    costs = config_costs(config)
    est = plan_grid(
        config, tflops=args.tflops, loader_images_per_worker=args.loader_images_per_worker, costs=costs
    )
    disk = disk_table(config, costs)
    groups = size["dense trainings (groups)"]
    print(
        f"grid {config.name!r} (preset {config.preset}): {groups} dense training{'s' * (groups != 1)}, "
        f"{size['cells']} cells, {size['result rows (cells x epochs 0..T)']} result rows"
    )
    loader = args.loader_images_per_worker * max(config.num_workers, 1)
    print(
        f"\nEstimated GPU-hours at {args.tflops:g} TFLOP/s and {loader:,.0f} images/s "
        f"(engine of the config: {config.engine}):"
    )
    print(est.to_string(float_format=lambda v: f"{v:.4g}", line_width=_WIDTH))
    hours = est.loc["all", f"total, {config.engine} engine"]
    print(
        f"\nwhole grid with the {config.engine} engine: {hours:.3g} GPU-hours "
        f"({hours / 24:.2g} days on one GPU)"
    )
    print(f"\nDisk: dense-network cache {disk['cache (GB)'].sum():.3g} GB")
    print(disk.to_string(float_format=lambda v: f"{v:.4g}", line_width=_WIDTH))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    for f in write_report(args.dir, n_boot=args.n_boot):
        print(f)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="latentkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run or resume a grid from a YAML/JSON config")
    run.add_argument("config")
    run.add_argument("--out", default=None, help="output folder (default results/<config name>)")
    run.add_argument("--engine", choices=list(ENGINES), default=None, help="override the config's engine")
    run.add_argument("--threads", type=_threads, default=None, help="torch.set_num_threads")
    run.add_argument("--quiet", action="store_true", help="no progress bar or training log")
    run.add_argument(
        "--executor",
        default=None,
        metavar="{serial,local,ray}",  # grid.executors.EXECUTORS (checked there: grid imports torch)
        help=(
            "default: a local pool of one single-threaded worker per core for a CPU grid of the quick "
            "preset, else serial; serial; local (that pool); ray: one Ray task per (network, dataset, "
            "trial) group"
        ),
    )
    run.add_argument(
        "--address", default=None, help="Ray cluster to join (with --executor ray; default: a local Ray)"
    )
    run.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="write tables and figures of a finished grid")
    rep.add_argument("dir")
    rep.add_argument("--n-boot", type=int, default=1000)
    rep.set_defaults(func=_cmd_report)
    plan = sub.add_parser("plan", help="print a grid's size, estimated GPU-hours and disk")
    plan.add_argument("config")
    plan.add_argument(
        "--tflops",
        type=_positive,
        default=25.0,
        help="sustained GPU throughput in TFLOP/s (default 25, an A100-class GPU)",
    )
    plan.add_argument(
        "--loader-images-per-worker",
        type=_positive,
        default=1000.0,
        help="images/s one DataLoader worker delivers (default 1000)",
    )
    plan.set_defaults(func=_cmd_plan)
    return parser


def _error(message: Any) -> int:
    print(f"latentkit: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m latentkit`` / the ``latentkit`` script; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as exc:
        return _error(exc)
    except (ValueError, TypeError, OSError) as exc:
        return _error(exc)
