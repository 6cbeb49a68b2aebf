"""Benchmark: the `cached` vs the `exact` fine-tuning engine, and the whole quick grid.

    python benchmarks/bench_experiments.py [--network alexnet] [--dataset standin10] [--grid] [--threads 1]

1. One network and dataset at quick scale, 3 methods x 4 sparsities x 20 fine-tuning epochs
   (the shipped config quick, latentkit/configs/quick.yaml). The dense network is trained once and
   shared (cache copied), then the
   grid is run with each engine in a fresh output folder; AP3 latents are switched off here
   (``ap3: []``) so that the timing is the engine's (AP2 and the accuracy evaluations per epoch are
   included in both). Prints both wall times end to end and engine only (fine-tuning + per-epoch
   evaluation, from the table's ``wall_time_s``), the ratios exact / cached (goal >= 100x) and the
   largest accuracy difference between the engines (goal <= 0.1 percentage points).
2. With ``--grid``: the whole quick grid (3 networks x 2 datasets, all AP3 latents, cached engine)
   from an empty cache, the figure the book's execution budget depends on.
Times are wall-clock seconds on this machine, in one run, side by side.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from latentkit.grid import dense_table, load_config, run_grid

REPO = Path(__file__).resolve().parents[1]


def _engine_seconds(engine: str, table: pd.DataFrame) -> float:
    """Engine-only seconds from the table's ``wall_time_s`` (fine-tuning + per-epoch evaluation + AP2):
    the cached engine runs all cells as one batched program (its largest time is the total); the exact
    engine runs one loop per cell (the largest time of each cell, summed)."""
    if engine == "cached":
        return float(table["wall_time_s"].max())
    return float(table.groupby(["method", "sparsity"])["wall_time_s"].max().sum())


def measure_engines(cfg: Any, engines: Sequence[str] = ("cached", "exact"), *, verbose: bool = False) -> dict:
    """Time the fine-tuning engines on one config, side by side, from the same dense network.

    The dense network is trained once (``dense_table``) into a temporary folder; each engine then runs
    ``run_grid(cfg.replace(engine=engine), out)`` in a fresh folder holding a copy of that cache, so
    both fine-tune the same weights. The folder is deleted afterwards.

    Parameters
    ----------
    cfg : ExperimentConfig
        The grid to run (one network and dataset; ``ap3: []`` times the engine alone).
    engines : sequence of str, default ("cached", "exact")
        The engines to time, in this order.
    verbose : bool, default False
        Print one line per engine as it finishes (the script's progress).

    Returns
    -------
    dict
        ``t_dense`` (s, dense training shared by the engines), ``seconds`` (engine -> s end to end,
        ``run_grid`` incl. data, dense model and cache I/O), ``engine_only`` (engine -> s, see
        :func:`_engine_seconds`) and ``results`` (engine -> the ``run_grid`` table).
    """
    n_cells = len(cfg.methods) * len(cfg.sparsities)
    seconds, results = {}, {}
    with tempfile.TemporaryDirectory(prefix="latentkit-perf-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        dense_table(cfg, work / "base")  # trains + caches the dense network
        t_dense = time.perf_counter() - t
        for engine in engines:
            out = work / engine
            shutil.copytree(work / "base" / "cache", out / "cache")  # all start from the same dense network
            t = time.perf_counter()
            results[engine] = run_grid(cfg.replace(engine=engine), out)
            seconds[engine] = time.perf_counter() - t
            if verbose:
                print(
                    f"engine {engine:6s}: {seconds[engine]:8.2f} s for {n_cells} cells "
                    f"({len(results[engine])} rows)",
                    flush=True,
                )
    engine_only = {engine: _engine_seconds(engine, table) for engine, table in results.items()}
    return {"t_dense": t_dense, "seconds": seconds, "engine_only": engine_only, "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="alexnet")
    ap.add_argument("--dataset", default="standin10")
    ap.add_argument("--config", default="quick", help="a shipped config name or a YAML/JSON file")
    ap.add_argument("--grid", action="store_true", help="also time the whole quick grid from an empty cache")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    cfg = load_config(args.config, networks=[args.network], datasets=[args.dataset], ap3=[], trials=1)
    print(
        f"{args.network} / {args.dataset}, {cfg.preset} scale: {len(cfg.methods)} methods x "
        f"{len(cfg.sparsities)} sparsities x {cfg.finetune_epochs} epochs; torch threads {args.threads}"
    )
    m = measure_engines(cfg, verbose=True)
    print(f"dense training (shared by both engines): {m['t_dense']:.1f} s")
    times, results = m["seconds"], m["results"]
    a, b = results["cached"], results["exact"]
    ratio = times["exact"] / times["cached"]
    print(
        f"ratio exact / cached, end to end (run_grid incl. data, dense model and cache I/O): {ratio:.0f}x "
        f"(goal >= 100x)"
    )
    eng_cached, eng_exact = m["engine_only"]["cached"], m["engine_only"]["exact"]
    print(
        f"engine only: cached {eng_cached:.2f} s, exact {eng_exact:.1f} s, "
        f"ratio {eng_exact / eng_cached:.0f}x"
    )
    for col in ("train_acc", "test_acc"):
        print(
            f"max |{col} cached - exact| = {(a[col] - b[col]).abs().max():.3g} percentage points "
            f"(goal <= 0.1)"
        )
    rel_ap2 = ((a["ap2"] - b["ap2"]).abs() / b["ap2"].clip(lower=1e-12)).max()
    print(f"max relative AP2 difference: {rel_ap2:.2g}")
    if args.grid:
        _time_grid(args.config)


def _time_grid(config: str) -> None:
    """The whole grid of ``config`` from an empty cache (the book's execution budget depends on it)."""
    full = load_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "grid"
        t = time.perf_counter()
        df = run_grid(full, out)
        t_grid = time.perf_counter() - t
        dense = dense_table(full, out)
    t_dense_all = dense.groupby(["network", "dataset", "trial"])["time_s"].max()
    print(
        f"\nwhole quick grid ({len(full.networks)} networks x {len(full.datasets)} datasets x "
        f"{full.trials} trial(s), {len(df)} rows, engine {full.engine}): {t_grid:.1f} s, of which dense "
        f"training {t_dense_all.sum():.1f} s"
    )
    for (net, ds, tr), v in t_dense_all.items():
        last = dense[(dense.network == net) & (dense.dataset == ds) & (dense.trial == tr)].iloc[-1]
        print(
            f"  dense {net:8s} {ds:10s} trial {tr}: {v:6.1f} s, {int(last['epoch'])} epochs, "
            f"test accuracy {last['test_acc']:.1f} %"
        )


if __name__ == "__main__":
    main()
