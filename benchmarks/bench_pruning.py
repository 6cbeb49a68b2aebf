"""Benchmark: prune every Linear/Conv of VGG16 (random init, 138M parameters) to 50%.

Cases (each in a fresh subprocess, so peak memory is not polluted by the others):
  ours_layer    latentkit.pruning.prune(model, "lowest", 0.5, layers="all", scope="layer")
  torch_layer   torch.nn.utils.prune.l1_unstructured(module, "weight", 0.5) for each layer
  ours_global   latentkit.pruning.prune(model, "lowest", 0.5, layers="all", scope="global")
  torch_global  torch.nn.utils.prune.global_unstructured(..., L1Unstructured, amount=0.5)

Reported per case: wall time of the pruning call; peak resident memory during the run (CPU:
VmHWM after resetting it through /proc/self/clear_refs just before pruning, falling back to
resource.getrusage's ru_maxrss; GPU: torch.cuda.max_memory_allocated), as a multiple of the model's
own parameter bytes; the resident memory after pruning (the torch.nn.utils.prune layout keeps
weight_orig + weight_mask + weight: 2x the model on top of it, for any method); the growth of
memory during pruning, (peak - before) / model, and the transient = growth - 2 (the algorithm's own
working memory; freed memory often stays resident, so "after" is not a useful CPU measure). Then the
ratios ours / torch.

Usage:  python benchmarks/bench_pruning.py [--quick] [--device cpu|cuda] [--threads N]
  --quick: VGG11 features + a narrow classifier (about 16M parameters), runs in well under a minute.
"""

# Importable (the book's performance appendix calls them at a small size): ``measure(size, device,
# threads)`` runs the four cases (one subprocess each) and returns their raw measurements;
# ``summarize(res)`` turns them into one row per case and one per scope (ratios ours / torch);
# ``run_case(case, size, device, threads)`` is one case in this process. Sizes: "full" (VGG16),
# "quick" (as --quick), "small" (latentkit's quick-scale VGG16 at width 1/4 with a 1000-way head,
# about 3.1M parameters, in a few seconds). (Kept out of the docstring: it is the --help text.)
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CASES = ("ours_layer", "torch_layer", "ours_global", "torch_global")
SIZES = ("full", "quick", "small")
MODEL_LABEL = {"full": "VGG16", "quick": "VGG11 (narrow classifier)", "small": "narrow VGG16 (width 1/4)"}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _size(size) -> str:
    """``True``/``False`` (the old ``quick`` flag) or a name in :data:`SIZES`."""
    if isinstance(size, bool):
        return "quick" if size else "full"
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}; got {size!r}")
    return size


def build(size="full"):
    import torch
    import torchvision

    size = _size(size)
    torch.manual_seed(0)
    if size == "small":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from latentkit.zoo import build_model

        m = build_model("vgg16", 1000, scale="quick", width=0.25, seed=0)
    elif size == "quick":
        m = torchvision.models.vgg11(weights=None)
        m.classifier = torch.nn.Sequential(
            torch.nn.Linear(25088, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 1000),
        )
    else:
        m = torchvision.models.vgg16(weights=None)
    return m


def run_case(case: str, size, device: str, threads: int) -> dict:
    import torch
    from torch.nn.utils import prune as tp

    torch.set_num_threads(threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from latentkit.modules import prunable_layers
    from latentkit.pruning import prune

    model = build(size).to(device)
    layers = prunable_layers(model)
    model_bytes = sum(m.weight.numel() * m.weight.element_size() for _, m in layers)
    all_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    n_params = sum(p.numel() for p in model.parameters())
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_kib("VmRSS") * 1024
        reset_ok = _reset_peak()
    t0 = time.perf_counter()
    if case == "ours_layer":
        prune(model, "lowest", 0.5, layers="all", scope="layer")
    elif case == "ours_global":
        prune(model, "lowest", 0.5, layers="all", scope="global")
    elif case == "torch_layer":
        for _, m in layers:
            tp.l1_unstructured(m, "weight", amount=0.5)
    elif case == "torch_global":
        tp.global_unstructured(
            [(m, "weight") for _, m in layers], pruning_method=tp.L1Unstructured, amount=0.5
        )
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        after = torch.cuda.memory_allocated()
        how = "torch.cuda.max_memory_allocated"
    else:
        after = _rss_kib("VmRSS") * 1024
        if reset_ok:
            peak = _rss_kib("VmHWM") * 1024
            how = "VmHWM after clear_refs"
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            how = "ru_maxrss (process lifetime)"
    zeros = sum(int((m.weight_mask == 0).sum()) for _, m in layers)
    return {
        "case": case,
        "seconds": dt,
        "model_bytes": model_bytes,
        "all_param_bytes": all_bytes,
        "n_params": n_params,
        "base": base,
        "peak": peak,
        "after": after,
        "zeros": zeros,
        "how": how,
    }


def measure(size="full", device: str = "cpu", threads: int = 1, cases=CASES) -> dict:
    """Run each case in a fresh subprocess (clean peak memory); return ``{case: run_case's dict}``."""
    size = _size(size)
    res = {}
    for case in cases:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--case",
            case,
            "--device",
            device,
            "--threads",
            str(threads),
        ]
        cmd += {"full": [], "quick": ["--quick"], "small": ["--size", "small"]}[size]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        res[case] = json.loads(out.strip().splitlines()[-1])
    return res


def summarize(res: dict) -> tuple[list, list]:
    """Rows per case (seconds, growth, transient, peak_gib, zeros) and per scope (ours / torch ratios)."""
    mb = res["ours_layer"]["model_bytes"]
    rows = []
    for case, r in res.items():
        g = (r["peak"] - r["base"]) / mb
        rows.append(
            {
                "case": case,
                "seconds": r["seconds"],
                "growth": g,
                "transient": g - 2.0,
                "peak_gib": r["peak"] / 2**30,
                "zeros": r["zeros"],
            }
        )
    scopes = []
    for scope in ("layer", "global"):
        if f"ours_{scope}" not in res or f"torch_{scope}" not in res:
            continue
        o, t = res[f"ours_{scope}"], res[f"torch_{scope}"]
        go, gt = (o["peak"] - o["base"]) / mb, (t["peak"] - t["base"]) / mb
        scopes.append(
            {
                "scope": scope,
                "time_ratio": o["seconds"] / t["seconds"],
                "growth_ratio": go / gt,
                "transient_ours": go - 2,
                "transient_torch": gt - 2,
                "same_zeros": o["zeros"] == t["zeros"],
            }
        )
    return rows, scopes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--size", choices=SIZES, default=None, help=argparse.SUPPRESS)  # overrides --quick
    args = ap.parse_args()
    size = args.size or ("quick" if args.quick else "full")
    if args.case:
        print(json.dumps(run_case(args.case, size, args.device, args.threads)))
        return
    res = measure(size, args.device, args.threads)
    r0 = res["ours_layer"]
    mb = r0["model_bytes"]
    print(
        f"model: {MODEL_LABEL[size]}, {r0['n_params'] / 1e6:.1f}M parameters, "
        f"pruned weights {mb / 2**20:.0f} MiB; device {args.device}, {args.threads} thread(s); "
        f"memory: {r0['how']}"
    )
    print(
        "growth = (peak - memory before pruning) / model; the torch.nn.utils.prune layout itself "
        "stores a mask and"
    )
    print(
        "a masked copy per weight (growth 2.0); transient = growth - 2.0 is the pruning algorithm's "
        "working memory"
    )
    print(
        f"{'case':<13} {'time s':>8} {'growth/model':>13} {'transient/model':>16} "
        f"{'peak GiB':>9} {'zeros':>12}"
    )
    rows, scopes = summarize(res)
    for r in rows:
        print(
            f"{r['case']:<13} {r['seconds']:>8.2f} {r['growth']:>13.2f} {r['transient']:>16.2f} "
            f"{r['peak_gib']:>9.2f} {r['zeros']:>12d}"
        )
    for sc in scopes:
        print(
            f"{sc['scope']:>6} scope: time ours/torch = {sc['time_ratio']:.3f}, "
            f"growth ours/torch = {sc['growth_ratio']:.3f}, "
            f"transient ours = {sc['transient_ours']:.2f}x model "
            f"vs torch {sc['transient_torch']:.2f}x, same zero count: {sc['same_zeros']}"
        )


if __name__ == "__main__":
    main()
