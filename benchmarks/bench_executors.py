"""Benchmark: the serial vs the Ray-local executor on the first groups of the quick grid.

    python benchmarks/bench_executors.py [--networks alexnet] [--datasets standin10 standin100]
                                         [--workers 2] [--trials 1]

The shipped quick config (latentkit/configs/quick.yaml), restricted to the networks and datasets
given (default: AlexNet on both stand-ins, the grid's first two groups), with
``threads_per_group: 1`` in both runs so that both compute the same numbers: first serially (one
group after the other, one torch thread), then on a local Ray with ``--workers`` CPUs (one group
per CPU, one thread each). Each run starts from an empty cache in a temporary folder (never
``results/``). Prints both wall times, the ratio serial / Ray, and whether the two tables are
bit-identical (timing columns aside). Ray's start-up (a few seconds) is included in its time:
what a user waits for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from latentkit.grid import TIMING_COLUMNS, load_config, run_grid
from latentkit.grid.executors import RayExecutor


def measure(
    networks: Sequence[str], datasets: Sequence[str], *, workers: int = 2, trials: int = 1
) -> dict[str, Any]:
    """Wall seconds of the serial and the Ray-local run, their ratio and whether the tables agree."""
    config = load_config(
        "quick",
        name="bench_executors",
        networks=list(networks),
        datasets=list(datasets),
        trials=trials,
        threads_per_group=1,
    )
    times: dict[str, float] = {}
    tables: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory(prefix="latentkit-bench-executors-") as tmp:
        for label, executor in (("serial", "serial"), ("ray", RayExecutor(num_cpus=workers))):
            t0 = time.perf_counter()
            tables[label] = run_grid(config, Path(tmp) / label, executor=executor)
            times[label] = time.perf_counter() - t0
    a, b = (tables[k].drop(columns=list(TIMING_COLUMNS)) for k in ("serial", "ray"))
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        identical = True
    except AssertionError:
        identical = False
    groups = len(networks) * len(datasets) * trials
    return {
        "groups": groups,
        "serial_s": times["serial"],
        "ray_s": times["ray"],
        "ratio": times["serial"] / times["ray"],
        "identical": identical,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: run :func:`measure` and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["alexnet"])
    parser.add_argument("--datasets", nargs="+", default=["standin10", "standin100"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=1)
    args = parser.parse_args(argv)
    r = measure(args.networks, args.datasets, workers=args.workers, trials=args.trials)
    print(f"{r['groups']} groups of the quick grid, 1 torch thread per group")
    print(f"serial                    : {r['serial_s']:8.1f} s")
    print(f"Ray local, {args.workers} workers      : {r['ray_s']:8.1f} s")
    print(f"ratio serial / Ray        : {r['ratio']:8.2f}x")
    print(f"tables bit-identical      : {r['identical']}")


if __name__ == "__main__":
    main()
