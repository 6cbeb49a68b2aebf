"""Benchmark: seconds per trial of the quick grid, split into dense training, features, fine-tuning
and measures, against the previous code path, in one run.

    python benchmarks/bench_grid.py [--config quick] [--networks alexnet vgg16 resnet50]
                                    [--datasets standin10 standin100] [--parallel]

For each (network, dataset) of trial 0, one group is computed twice, on one torch thread each:

* **now**: the config as shipped (dense curves on the test set only, ``dense_history: test``;
  evaluation batches of 128);
* **before**: the previous path (``dense_history: full``: training and test set evaluated after
  every dense epoch; evaluation batches of 1024).

Each run is split into dense training (:func:`latentkit.grid.training.train_dense`), features
(:meth:`latentkit.grid.engines.DenseGroup.load`: penultimate features of both sets, Laplace fits,
the dense metrics), fine-tuning (the engine without its measures) and measures (AP2, every AP3, the
extra and function-space measures; ``of_which_fn``: the function-space part alone). The sum
over the groups is the serial seconds per trial.

With ``--parallel`` the grid of trial 0 (the networks and datasets given) is also run end to end
from an empty cache with the serial executor and with the local process pool
(:class:`latentkit.grid.executors.ProcessExecutor`, one thread per worker, ``os.cpu_count()``
workers), and the two tables are checked to be bit-identical. The speed-up per trial is
``before (serial) / now (parallel wall)``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from latentkit.grid import load_config, make_plan, run_grid
from latentkit.grid.cache import CacheStore, config_hash
from latentkit.grid.data import dataset_views
from latentkit.grid.engines import ENGINE_CLASSES, DenseGroup
from latentkit.grid.executors import ProcessExecutor, SerialExecutor
from latentkit.grid.keys import dense_key
from latentkit.grid.run import TIMING_COLUMNS
from latentkit.grid.training import train_dense

PARTS = ("dense", "features", "finetune", "measures")


class _Timed:
    """Wraps a callable and adds its wall time to ``self.seconds``."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t


def time_group(config: Any, network: str, dataset: str, store: CacheStore | None = None) -> dict[str, float]:
    """Seconds of one group (trial 0) split into :data:`PARTS` (one torch thread).

    ``store``: the cache the group's dense network is written to (kept for the caller, as
    ``benchmarks/bench_floor.py`` counts the same group's FLOPs from it); default a temporary one.
    """
    if store is None:
        with tempfile.TemporaryDirectory() as tmp:
            return time_group(config, network, dataset, CacheStore(Path(tmp) / "cache"))
    plan = make_plan(config, network, dataset, 0, "cpu")
    views = dataset_views(plan)  # loading the data is not dense training
    t = time.perf_counter()
    state, history = train_dense(plan, views)
    dense = time.perf_counter() - t
    store.put_torch("dense", config_hash(dense_key(plan)), {"state_dict": state, "history": history})
    t = time.perf_counter()
    group = DenseGroup.load(plan, store)
    feats = time.perf_counter() - t
    group.measure, group.fn = _Timed(group.measure), _Timed(group.fn)
    t = time.perf_counter()
    ENGINE_CLASSES[plan.engine]().run(group)
    engine = time.perf_counter() - t
    measures = group.measure.seconds + group.fn.seconds
    return {
        "dense": dense,
        "features": feats,
        "finetune": engine - measures,
        "measures": measures,
        "of_which_fn": group.fn.seconds,  # ap3_fn, ap3_fn_quadratic, obd (batched over the cells)
    }


def split_table(config: Any, networks: list[str], datasets: list[str]) -> pd.DataFrame:
    """One row per (network, dataset, path) with the seconds of :data:`PARTS` and their total."""
    before = config.replace(dense_history="full", eval_batch_size=1024)
    rows = []
    for net in networks:
        for ds in datasets:
            for path, cfg in (("now", config), ("before", before)):
                sec = time_group(cfg, net, ds)
                total = sum(sec[k] for k in PARTS)
                rows.append({"network": net, "dataset": ds, "path": path, **sec, "total": total})
                print(
                    f"  {net}/{ds} {path}: " + ", ".join(f"{k} {v:.1f}s" for k, v in sec.items()), flush=True
                )
    return pd.DataFrame(rows)


def parallel_check(config: Any) -> dict[str, float]:
    """Wall seconds of the trial-0 grid serial and on the local pool; tables bit-identical (asserted)."""
    one = config.replace(trials=1)
    out: dict[str, float] = {}
    tables = {}
    for name, ex in (("serial", SerialExecutor()), ("parallel", ProcessExecutor())):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            tables[name] = run_grid(one, Path(tmp) / "out", executor=ex).drop(columns=list(TIMING_COLUMNS))
            out[name] = time.perf_counter() - t
    pd.testing.assert_frame_equal(tables["serial"], tables["parallel"], check_exact=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="quick")
    ap.add_argument("--networks", nargs="+", default=None)
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--parallel", action="store_true", help="also time serial vs the local process pool")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    networks, datasets = args.networks or config.networks, args.datasets or config.datasets
    config = config.replace(networks=networks, datasets=datasets)
    print(f"seconds per trial ({args.config}: {networks} x {datasets}, 1 thread, {os.cpu_count()} cores)")
    table = split_table(config, networks, datasets)
    per_trial = table.groupby("path")[[*PARTS, "of_which_fn", "total"]].sum()
    print(per_trial.round(1).to_string())
    now, before = per_trial.loc["now", "total"], per_trial.loc["before", "total"]
    print(f"serial speed-up per trial (before / now): {before / now:.2f}x")
    if args.parallel:
        wall = parallel_check(config)
        print(
            f"trial 0 end to end: serial {wall['serial']:.1f}s, local pool {wall['parallel']:.1f}s "
            f"(tables bit-identical); speed-up per trial against the previous path: "
            f"{before / wall['parallel']:.2f}x"
        )


if __name__ == "__main__":
    main()
