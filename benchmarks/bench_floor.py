"""Benchmark: how far the quick grid's seconds per trial are from this machine's fp32 arithmetic floor.

    python benchmarks/bench_floor.py [--config quick] [--previous-workload] [--previous-seconds S]

One trial (trial 0) of the grid is run serially on one torch thread, split as in
``benchmarks/bench_grid.py`` into dense training, features, fine-tuning and measures, and the
floating-point work of every part is counted (``torch.utils.flop_counter.FlopCounterMode``:
convolutions, matrix products, their backward passes; element-wise work is not counted, so the
floor below is a lower bound):

* dense training: the FLOPs of one training step and of one evaluation batch of the group's
  network, times the steps and evaluated images of :func:`latentkit.grid.training.train_dense`;
* features, fine-tuning and measures: the group's :meth:`~latentkit.grid.engines.DenseGroup.load`
  and engine run again under the counter.

The reference rate is one core's single-precision matrix product (``torch.mm`` of 2048 x 2048
matrices, best of 5). Each part is printed with its seconds, GFLOP, GFLOP/s and percentage of that
rate; the **floor** is the trial's GFLOP divided by the rate (and by the cores, for the local pool
of one single-threaded worker per core). ``--previous-seconds S`` (a previous code path's seconds
per trial on the same workload, e.g. from ``benchmarks/bench_previous.py``) prints ``S / floor``:
the largest speed-up any fp32 implementation of the same work could reach on this machine.

``--previous-workload`` runs the workload ``bench_previous`` rebuilds from the previous commit
(its epochs and learning rates, the digits, 1,000 ``standin100`` test images).

Lower precision is the one lever the floor does not bound: the script also times one dense
training step per network under ``torch.autocast("cpu", dtype=torch.bfloat16)`` against fp32 and
prints the ratio. The shipped configs train in fp32 (bfloat16 would change every result, and on
CPUs without native bfloat16 instructions the speed-up measured here would not carry over).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_grid import PARTS, time_group
from benchmarks.bench_previous import previous_workload
from latentkit import zoo
from latentkit.grid import load_config, make_plan
from latentkit.grid.cache import CacheStore
from latentkit.grid.data import dataset_views, prepare_model, to_input
from latentkit.grid.engines import ENGINE_CLASSES, DenseGroup

ROOT = Path(__file__).resolve().parents[1]


def sgemm_rate(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one ``torch.mm`` of two ``n x n`` float32 matrices on the current threads (best of
    ``repeats``; ``2 n^3`` FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _model(plan: Any) -> torch.nn.Module:
    net = zoo.build_model(plan.network, zoo.dataset_num_classes(plan.dataset), seed=0, **plan.model_kwargs)
    return prepare_model(net, plan.channels_last, plan.device)


def step_flops(plan: Any, shape: tuple[int, ...], batch: int, train: bool) -> int:
    """FLOPs of one training step (forward and backward) or one evaluation forward of ``batch`` images
    of ``shape`` (channels, height, width)."""
    model = _model(plan).train(train)
    x = to_input(torch.randn(batch, *shape), plan.channels_last)
    y = torch.zeros(batch, dtype=torch.int64)
    counter = FlopCounterMode(display=False)
    with counter:
        if train:
            F.cross_entropy(model(x), y).backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def dense_flops(plan: Any, views: dict[str, Any]) -> int:
    """FLOPs of :func:`train_dense`: every training step, the test set after every epoch and the
    training set after the epochs the plan's ``dense_history`` evaluates it."""
    epochs, bs = int(plan.dense_epochs), int(plan.dense_batch_size)
    n_tr, n_te = len(views["train_dense"]), len(views["test_eval"])
    shape = tuple(views["test_eval"][0][0].shape)
    full, last = divmod(n_tr, bs)
    train = epochs * (
        full * step_flops(plan, shape, bs, True) + (step_flops(plan, shape, last, True) if last else 0)
    )
    per_image = step_flops(plan, shape, 1, False)
    train_evals = epochs if plan.dense_history == "full" else 1
    return train + per_image * (epochs * n_te + train_evals * len(views["train_eval"]))


def group_row(config: Any, network: str, dataset: str) -> dict[str, float]:
    """Seconds (:func:`benchmarks.bench_grid.time_group`) and FLOPs of the parts of one group
    (trial 0, one thread)."""
    plan = make_plan(config, network, dataset, 0, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        store = CacheStore(Path(tmp) / "cache")
        sec = time_group(config, network, dataset, store)  # leaves the dense network in store
        flops = {"dense": dense_flops(plan, dataset_views(plan))}
        counter = FlopCounterMode(display=False)
        with counter:
            group = DenseGroup.load(plan, store)
        flops["features"] = counter.get_total_flops()
        group.measure, group.fn = _Recorded(group.measure), _Recorded(group.fn)
        counter = FlopCounterMode(display=False)
        with counter:
            ENGINE_CLASSES[plan.engine]().run(group)
        flops["measures"] = group.measure.flops() + group.fn.flops()
        flops["finetune"] = counter.get_total_flops() - flops["measures"]
    return {**{f"{k}_s": sec[k] for k in PARTS}, **{f"{k}_gflop": flops[k] / 1e9 for k in PARTS}}


class _Recorded:
    """Wraps a measure: counts its calls and keeps the first call's arguments, so that
    :meth:`flops` is the FLOPs of one call (counted afterwards, outside the engine's counter) times
    the calls (every call of a group's measure has arguments of the same shapes)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.calls, self.first = fn, 0, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.first is None:
            keep = lambda a: a.clone() if isinstance(a, torch.Tensor) else a  # noqa: E731
            self.first = (tuple(map(keep, args)), {k: keep(v) for k, v in kwargs.items()})
        self.calls += 1
        return self.fn(*args, **kwargs)

    def flops(self) -> int:
        if self.first is None:
            return 0
        counter = FlopCounterMode(display=False)
        with counter:
            self.fn(*self.first[0], **self.first[1])
        return counter.get_total_flops() * self.calls


def bf16_ratio(config: Any, network: str, dataset: str, steps: int = 20) -> float:
    """fp32 / bfloat16-autocast milliseconds of one dense training step (batch ``dense_batch_size``)."""
    plan = make_plan(config, network, dataset, 0, "cpu")
    ds = dataset_views(plan)["train_dense"]
    bs = int(plan.dense_batch_size)
    out = {}
    for bf16 in (False, True):
        model = _model(plan).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x, y = to_input(ds.images[:bs], plan.channels_last), ds.targets[:bs]
        best = math.inf
        for i in range(steps + 3):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 3:
                best = min(best, time.perf_counter() - t)
        out[bf16] = best
    return out[False] / out[True]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="quick")
    ap.add_argument("--previous-workload", action="store_true", help="bench_previous's rebuilt workload")
    ap.add_argument("--commit", default="1e7710d", help="the previous commit (with --previous-workload)")
    ap.add_argument("--previous-seconds", type=float, default=None, help="a previous path's s per trial")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="workers of the local pool")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config)
    if args.previous_workload:
        text = subprocess.run(
            ["git", "show", f"{args.commit}:configs/quick.yaml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        config = config.replace(**previous_workload(yaml.safe_load(text)))
    peak = sgemm_rate()
    print(f"one core's float32 matrix product: {peak:.0f} GFLOP/s")
    rows = []
    for net in config.networks:
        for ds in config.datasets:
            row = {"network": net, "dataset": ds, **group_row(config, net, ds)}
            rows.append(row)
            print(f"  {net}/{ds}: " + ", ".join(f"{k} {row[k + '_s']:.1f}s" for k in PARTS), flush=True)
    table = pd.DataFrame(rows)
    parts = pd.DataFrame(
        {
            "seconds": [table[f"{k}_s"].sum() for k in PARTS],
            "GFLOP": [table[f"{k}_gflop"].sum() for k in PARTS],
        },
        index=list(PARTS),
    )
    parts.loc["trial"] = parts.sum()
    parts["GFLOP/s"] = parts["GFLOP"] / parts["seconds"]
    parts["% of mm rate"] = 100 * parts["GFLOP/s"] / peak
    print(parts.round(1).to_string())
    floor = parts.loc["trial", "GFLOP"] / peak
    now = parts.loc["trial", "seconds"]
    print(
        f"floor per trial: {floor:.1f} s on one core, {floor / args.cores:.1f} s on {args.cores} cores; "
        f"now {now:.1f} s serial = {now / floor:.2f}x the floor"
    )
    if args.previous_seconds:
        print(
            f"largest fp32 speed-up over {args.previous_seconds:.1f} s per trial on {args.cores} cores: "
            f"{args.previous_seconds / (floor / args.cores):.2f}x"
        )
    for net in config.networks:
        ratio = bf16_ratio(config, net, config.datasets[0])
        print(f"bfloat16 autocast, one dense step of {net}: {ratio:.2f}x fp32")


if __name__ == "__main__":
    main()
