"""Benchmark of latentkit.divergence at the paper's sizes.

Usage::

    python benchmarks/bench_divergence.py [--quick] [--threads N]

Part 1 - Student-t AP3 at the reference setting: a 10 x 4096 last layer (random weights,
N(0, 0.01^2), seeded; no trained weights ship offline), pruned 50% by magnitude, projected to
100 chunk means, latent laws t_4(chunk means, I). The exact method (one-dimensional quadrature,
:func:`latentkit.divergence.student_t_kl`) is timed against :func:`kl_monte_carlo` with the
reference's 600,000 samples (ONE repeat timed; the reference runs 100 repeats per estimate, so the
reported ratio multiplies that time by 100). Both values are compared with a high-precision value
(the same exact integral evaluated by mpmath at 30 digits with a different quadrature,
tanh-sinh, in the original variable t). Under --quick the Monte Carlo runs 50,000 samples and its
600,000-sample time is extrapolated linearly (labelled).

Part 2 - Gaussian AP3 on a 409,600-dimensional layer (VGG16 / CIFAR100: 100 x 4096) for
isotropic, diagonal and Kronecker (100 x 4096) covariances. Each case runs in a fresh subprocess;
the peak extra resident memory is measured by resetting the kernel's high-water mark
(``echo 5 > /proc/self/clear_refs``) after the inputs exist and reading ``VmHWM - VmRSS`` after
the computation (falls back to ``resource.getrusage`` maxrss deltas where clear_refs is not
available; tracemalloc cannot see torch's allocations).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from latentkit.divergence import kl, kl_monte_carlo, student_t_kl, student_t_kl_from_distance  # noqa: E402
from latentkit.latent import MatrixNormal, latent_space  # noqa: E402

F64 = torch.float64


# ----------------------------------------------------------------------------------------- memory
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{key}:\s+(\d+)", fh.read()).group(1))


class PeakMemory:
    """Peak extra resident memory (MB) of a block of code, see the module docstring."""

    def __enter__(self) -> "PeakMemory":
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.method = "VmHWM reset via /proc/self/clear_refs"
            self.base = _status_kb("VmRSS")
        except OSError:
            import resource

            self.method = "getrusage maxrss delta (lower bound)"
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc) -> None:
        if self.method.startswith("VmHWM"):
            self.extra_mb = (_status_kb("VmHWM") - self.base) / 1024.0
        else:
            import resource

            self.extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.base) / 1024.0


# ----------------------------------------------------------------------------------------- part 1
def reference_layer(seed: int, rows: int = 10, cols: int = 4096, mean: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return mean + 0.01 * torch.randn(rows, cols, generator=g)


def prune(w: torch.Tensor, how: str, amount: float = 0.5) -> torch.Tensor:
    k = int(round(amount * w.numel()))
    a = w.abs().reshape(-1)
    idx = torch.argsort(a, descending=(how == "highest"))[:k]
    m = torch.ones_like(a)
    m[idx] = 0
    return w * m.reshape(w.shape)


def high_precision(delta: float, nu: float, d: int) -> float:
    try:
        import mpmath as mp
    except ImportError:  # pragma: no cover - mpmath ships with sympy; fall back to a tighter tolerance
        return student_t_kl_from_distance(delta, nu, d, epsrel=1e-13)
    mp.mp.dps = 30
    de, n, dd = mp.mpf(delta), mp.mpf(nu), mp.mpf(d)

    def g(t):
        return (1 + 2 * t) ** (-(n + dd) / 2) * (1 - (1 + 2 * de**2 * t / (n * (1 + 2 * t) ** 2)) ** (-n / 2)) / t

    s, a = 1 / (n + dd), n / de**2
    pts = sorted({mp.mpf(0), s, 10 * s, 100 * s, a, 10 * a, mp.mpf(1), mp.inf})
    return float((n + dd) / 2 * mp.quad(g, pts))


def part1(quick: bool) -> None:
    nu, k = 4.0, 100
    n_mc = 50_000 if quick else 600_000
    rows = [
        ("lowest 50%, N(0,.01^2) weights (reference)", reference_layer(0), "lowest"),
        ("highest 50%, N(0,.01^2) weights", reference_layer(0), "highest"),
        ("lowest 50%, N(.05,.01^2) weights (larger KL)", reference_layer(1, mean=0.05), "lowest"),
    ]
    print(f"\n## 1. Student-t AP3: 10 x 4096 layer -> {k} chunk means, t_{nu:g}(loc, I)")
    print(f"Monte Carlo: {n_mc:,} samples x 1 repeat timed"
          + (" (quick: time extrapolated linearly to 600,000)" if quick else "") + "; the reference runs 100 repeats.\n")
    hdr = (f"{'case':46s} {'reference KL':>13s} {'exact':>13s} {'rel.err':>9s} {'t_exact':>9s} "
           f"{'MC (1 rep)':>13s} {'MC stderr':>10s} {'rel.err':>9s} {'t_MC/600k':>9s} {'ratio x1':>9s} {'ratio x100':>11s}")
    print(hdr)
    print("-" * len(hdr))
    g = torch.Generator().manual_seed(1234)
    ratios = []
    for name, w, how in rows:
        wt = prune(w, how)
        p = latent_space(w, "student_t", projection="chunk_means", num_chunks=k, df=nu)
        q = latent_space(wt, "student_t", projection="chunk_means", num_chunks=k, df=nu)
        exact = float(student_t_kl(p, q))  # warm-up
        reps = 50 if quick else 200
        t0 = time.perf_counter()
        for _ in range(reps):
            exact = float(student_t_kl(p, q))
        t_exact = (time.perf_counter() - t0) / reps
        delta = float((p.loc - q.loc).norm())
        ref = high_precision(delta, nu, k)
        t0 = time.perf_counter()
        mc = kl_monte_carlo(p, q, num_samples=n_mc, repeats=1, generator=g)
        t_mc = (time.perf_counter() - t0) * (600_000 / n_mc)
        r1, r100 = t_mc / t_exact, 100 * t_mc / t_exact
        ratios.append(r100)
        print(f"{name:46s} {ref:13.6e} {exact:13.6e} {abs(exact - ref) / ref:9.1e} {t_exact * 1e3:7.3f}ms "
              f"{mc.estimate:13.6e} {mc.stderr:10.2e} {abs(mc.estimate - ref) / ref:9.1e} {t_mc:8.2f}s "
              f"{r1:9.0f} {r100:11.0f}")
        if name.endswith("(reference)"):
            se100 = mc.stderr * math.sqrt(n_mc / 600_000) / 10.0
            print(f"{'':46s} reference estimator (100 x 600k) would have stderr ~ {se100:.2e} "
                  f"= {se100 / ref:.0%} of the KL")
    print(f"\nspeed-up of the exact method over the reference's estimator (100 repeats x 600,000 samples): "
          f"min {min(ratios):,.0f}x (goal >= 10,000x)")


# ----------------------------------------------------------------------------------------- part 2
def _case(name: str, r: int = 100, c: int = 4096, warm_up: bool = True) -> dict:
    """Runs in a subprocess: build the two laws, then time/measure AP3 = KL(P(w) || P(w~)).

    A warm-up on a 4 x 8 layer first pages in the library code that the computation touches
    (shared-library pages count as resident memory), so the peak measures data, not code.
    """
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    if warm_up:
        _case(name, 4, 8, warm_up=False)
    g = torch.Generator().manual_seed(0)
    w = 0.01 * torch.randn(r, c, generator=g)  # float32 weights, as a trained layer would be
    wt = prune(w, "lowest")
    if name.startswith("kronecker"):
        U = torch.randn(r, r, generator=g, dtype=F64)
        U = U @ U.T / r + torch.eye(r, dtype=F64)
        Lv = torch.tril(torch.randn(c, c, generator=g, dtype=F64), -1) * (0.5 / math.sqrt(c))
        Lv.diagonal().copy_(0.5 + torch.rand(c, generator=g, dtype=F64))
        if name == "kronecker_diff":
            U2 = torch.randn(r, r, generator=g, dtype=F64)
            U2 = U2 @ U2.T / r + torch.eye(r, dtype=F64)
            Lv2 = Lv.clone()
            Lv2.diagonal().mul_(1.1)
        else:
            U2, Lv2 = U, Lv
        sd = None
    elif name == "diagonal":
        sd = (0.005 + 0.01 * torch.rand(r * c, generator=g, dtype=F64)).to(w.dtype)
        sd2 = (0.005 + 0.01 * torch.rand(r * c, generator=g, dtype=F64)).to(w.dtype)

    def build():
        if name == "isotropic":
            return latent_space(w, scale=0.01), latent_space(wt, scale=0.01)
        if name == "isotropic_diff":
            return latent_space(w, scale=0.01), latent_space(wt, scale=0.02)
        if name == "diagonal":
            return (latent_space(w, covariance="diagonal", scale=sd),
                    latent_space(wt, covariance="diagonal", scale=sd2))
        return (MatrixNormal(w.to(F64), row_cov=U, col_scale_tril=Lv),
                MatrixNormal(wt.to(F64), row_cov=U2, col_scale_tril=Lv2))

    import gc

    gc.collect()
    with PeakMemory() as mem:
        p, q = build()
        val = float(kl(p, q))
        del p, q
    t_kl, t_all = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        p, q = build()
        t1 = time.perf_counter()
        float(kl(p, q))
        t2 = time.perf_counter()
        t_kl.append(t2 - t1)
        t_all.append(t2 - t0)
        del p, q
    return {"case": name, "d": r * c, "kl": val, "t_kl": min(t_kl), "t_all": min(t_all),
            "extra_mb": mem.extra_mb, "method": mem.method}


def part2(quick: bool, threads: int) -> None:
    cases = ["isotropic", "isotropic_diff", "diagonal", "kronecker"] + ([] if quick else ["kronecker_diff"])
    labels = {
        "isotropic": "isotropic, shared s (AP3)",
        "isotropic_diff": "isotropic, s_p != s_q",
        "diagonal": "diagonal, different diagonals",
        "kronecker": "Kronecker 100x4096, shared U,V (AP3)",
        "kronecker_diff": "Kronecker, different U,V (O(c^3))",
    }
    print("\n## 2. Gaussian AP3 on a 409,600-dim layer (100 x 4096, float32 weights -> float64 laws)\n")
    hdr = f"{'case':38s} {'KL':>12s} {'t_KL':>9s} {'t_build+KL':>11s} {'peak extra':>11s}"
    print(hdr)
    print("-" * len(hdr))
    method = None
    for name in cases:
        env = dict(os.environ, BENCH_THREADS=str(threads))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", name], capture_output=True,
                             text=True, env=env, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        method = res["method"]
        print(f"{labels[name]:38s} {res['kl']:12.6g} {res['t_kl'] * 1e3:7.1f}ms {res['t_all'] * 1e3:9.1f}ms "
              f"{res['extra_mb']:8.1f} MB")
    print(f"\nt_KL: best of 3 calls of kl(p, q); t_build+KL: best of 3, building both laws from the weights "
          f"(float32 -> float64, checks) + KL;\npeak extra: resident memory above the inputs (weights, covariance "
          f"factors) during the first build+KL ({method}); goal < 1 s, < 100 MB.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer Monte Carlo samples; runs in < 30 s")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machines)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(_case(args.case)))
        return
    torch.set_num_threads(args.threads)
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        aff = os.cpu_count()
    print(f"# latentkit divergence benchmark{' (--quick)' if args.quick else ''}")
    print(f"machine: {platform.machine()} {platform.processor() or ''} | cpu_count {os.cpu_count()} "
          f"(usable {aff}) | torch {torch.__version__} | threads {torch.get_num_threads()} | "
          f"python {platform.python_version()} | CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    t0 = time.perf_counter()
    part1(args.quick)
    part2(args.quick, args.threads)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
