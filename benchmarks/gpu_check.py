"""GPU check (issue 10, section 5): everything latentkit can only measure on a CUDA device, in < 5 minutes.

1. the CUDA-only tests (``pytest -m cuda``);
2. the pruning benchmark (:mod:`benchmarks.bench_pruning`, VGG16 at 138M parameters) on CUDA, peak
   memory from ``torch.cuda.max_memory_allocated``;
3. a tiny paper path on CUDA: ``paper.yaml`` and ``reference.yaml`` made small (a miniature CIFAR10
   archive in torchvision's on-disk format, a few images, one dense and one fine-tuning epoch, no
   ImageNet weights) through the full torchvision AlexNet at 224 px with the exact engine and
   train-mode fine-tuning. The engines run in float32 without autocast (they do not support it);
   the script says so.

Each figure is printed as one line ``gpu_check: <what>: <value>``. On a machine without CUDA it
prints one line saying that no GPU is available and exits 0.

Usage:  python benchmarks/gpu_check.py [--skip-tests] [--skip-bench]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))


def say(what: str, value: object) -> None:
    """One figure per line, flushed (the output goes into the performance chapter's recorded runs)."""
    print(f"gpu_check: {what}: {value}", flush=True)


def cuda_tests() -> int:
    """Run ``pytest -m cuda`` and print its summary line; return its exit code."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [line for line in out.stdout.strip().splitlines() if line.strip()]
    say("pytest -m cuda", f"{lines[-1] if lines else out.stderr.strip()[-200:]} (exit {out.returncode})")
    say("pytest -m cuda seconds", f"{time.perf_counter() - t0:.1f}")
    return out.returncode


def pruning_benchmark() -> None:
    """The four cases of :mod:`benchmarks.bench_pruning` on CUDA (one subprocess each)."""
    from benchmarks.bench_pruning import measure, summarize

    res = measure("full", device="cuda", threads=1)
    rows, scopes = summarize(res)
    for r in rows:
        say(
            f"prune VGG16 {r['case']}",
            f"{r['seconds']:.3f} s, peak {r['peak_gib']:.2f} GiB (torch.cuda.max_memory_allocated), "
            f"growth {r['growth']:.2f}x model, transient {r['transient']:.2f}x",
        )
    for s in scopes:
        say(
            f"prune VGG16 {s['scope']} ours/torch",
            f"time {s['time_ratio']:.2f}x, memory growth {s['growth_ratio']:.2f}x, "
            f"same zeros {s['same_zeros']}",
        )


def write_mini_cifar10(root: Path, n: int = 64, seed: int = 0) -> None:
    """A miniature CIFAR10 archive (torchvision's on-disk layout), with torchvision's MD5s pointed at it."""
    import hashlib

    import torchvision.datasets as tvd

    folder = root / tvd.CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    md5 = {}
    names = [f for f, _ in tvd.CIFAR10.train_list + tvd.CIFAR10.test_list]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = tvd.CIFAR10.meta["filename"]
    (folder / meta).write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    md5[meta] = hashlib.md5((folder / meta).read_bytes()).hexdigest()
    tvd.CIFAR10.train_list = [[f, md5[f]] for f, _ in tvd.CIFAR10.train_list]
    tvd.CIFAR10.test_list = [[f, md5[f]] for f, _ in tvd.CIFAR10.test_list]
    tvd.CIFAR10.meta = {**tvd.CIFAR10.meta, "md5": md5[meta]}


def paper_path(root: Path, device: str = "cuda") -> None:
    """``paper`` and ``reference`` at a tiny size on ``device``: AlexNet, 224 px, exact engine, train mode."""
    from latentkit.grid import load_config, run_grid

    small = dict(
        networks=["alexnet"],
        datasets=["cifar10"],
        sparsities=[0.5],
        trials=1,
        dense_epochs=1,
        finetune_epochs=1,
        max_train_samples=64,
        max_test_samples=32,
        weights=None,
        data_root=str(root / "data"),
        device=device,
        num_workers=2,
        dense_batch_size=32,
        finetune_batch_size=32,
        eval_batch_size=64,
    )
    say("autocast", "not supported by the grid's engines (float32 throughout); measured without it")
    for name, extra in (
        ("paper", {}),
        ("reference", {"reference_mc_samples": 60_000, "reference_mc_repeats": 10}),
    ):
        cfg = load_config(name, **small, **extra)
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        df = run_grid(cfg, root / name)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = f", peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else ""
        say(f"paper path {name} on {device}", f"{len(df)} rows in {seconds:.1f} s{peak}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-tests", action="store_true", help="do not run pytest -m cuda")
    ap.add_argument("--skip-bench", action="store_true", help="do not run the pruning benchmark")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no GPU available (torch.cuda.is_available() is False): nothing measured")
        return 0
    t0 = time.perf_counter()
    say("device", f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    rc = 0 if args.skip_tests else cuda_tests()
    if not args.skip_bench:
        pruning_benchmark()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_mini_cifar10(root / "data")
        os.environ.setdefault("LATENTKIT_DATA", str(root / "data"))
        paper_path(root)
    say("total seconds", f"{time.perf_counter() - t0:.1f}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
