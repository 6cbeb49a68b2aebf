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

Importable (the book's performance appendix calls them at a small size):
``measure_student_t(n_mc, reps, ...)`` returns part 1's measurements as dicts and
``measure_gaussian(cases, rows, cols, threads)`` part 2's (one subprocess per case).
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
from latentkit.pruning import effective_weight  # noqa: E402
from latentkit.pruning import prune as prune_model  # noqa: E402

F64 = torch.float64


# ----------------------------------------------------------------------------------------- memory
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{key}:\s+(\d+)", fh.read()).group(1))


class PeakMemory:
    """Peak extra resident memory (MB) of a block of code, see the module docstring."""

    def __enter__(self) -> PeakMemory:
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
    """``w`` (out, in) with ``amount`` of its entries removed by latentkit's ``lowest``/``highest``
    magnitude pruning."""
    net = torch.nn.Sequential(torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=w.dtype))
    with torch.no_grad():
        net[0].weight.copy_(w)
    prune_model(net, how, amount, layers="last")
    return effective_weight(net[0]).detach()


def high_precision(delta: float, nu: float, d: int) -> float:
    try:
        import mpmath as mp
    except ImportError:  # pragma: no cover - mpmath ships with sympy; fall back to a tighter tolerance
        return student_t_kl_from_distance(delta, nu, d, epsrel=1e-13)
    mp.mp.dps = 30
    de, n, dd = mp.mpf(delta), mp.mpf(nu), mp.mpf(d)

    def g(t):
        return (
            (1 + 2 * t) ** (-(n + dd) / 2)
            * (1 - (1 + 2 * de**2 * t / (n * (1 + 2 * t) ** 2)) ** (-n / 2))
            / t
        )

    s, a = 1 / (n + dd), n / de**2
    pts = sorted({mp.mpf(0), s, 10 * s, 100 * s, a, 10 * a, mp.mpf(1), mp.inf})
    return float((n + dd) / 2 * mp.quad(g, pts))


STUDENT_T_CASES = (
    ("lowest 50%, N(0,.01^2) weights (reference)", 0, 0.0, "lowest"),
    ("highest 50%, N(0,.01^2) weights", 0, 0.0, "highest"),
    ("lowest 50%, N(.05,.01^2) weights (larger KL)", 1, 0.05, "lowest"),
)


def measure_student_t(
    n_mc: int = 600_000,
    reps: int = 200,
    *,
    rows: int = 10,
    cols: int = 4096,
    num_chunks: int = 100,
    df: float = 4.0,
    seed: int = 1234,
    reference: bool = True,
    cases=STUDENT_T_CASES,
) -> list:
    """Exact vs Monte Carlo Student-t AP3 (part 1); one dict per case.

    ``n_mc`` Monte Carlo samples, ONE repeat timed, its time scaled linearly to 600,000 samples
    (``t_mc_600k``); the exact KL is timed as the mean of ``reps`` calls after one warm-up.
    ``ratio_x1`` = t_mc_600k / t_exact, ``ratio_x100`` = 100 x that (the reference's 100 repeats).
    ``reference``: also the 30-digit mpmath value (``ref``; else the exact value is used as ``ref``).
    Keys: case, d, delta, ref, exact, t_exact, mc, mc_stderr, n_mc, t_mc, t_mc_600k, ratio_x1,
    ratio_x100, rel_err_exact, rel_err_mc, se100 (stderr of the reference's 100 x 600k estimator).
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for name, layer_seed, mean, how in cases:
        w = reference_layer(layer_seed, rows, cols, mean=mean)
        wt = prune(w, how)
        p = latent_space(w, "student_t", projection="chunk_means", num_chunks=num_chunks, df=df)
        q = latent_space(wt, "student_t", projection="chunk_means", num_chunks=num_chunks, df=df)
        exact = float(student_t_kl(p, q))  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            exact = float(student_t_kl(p, q))
        t_exact = (time.perf_counter() - t0) / reps
        delta = float((p.loc - q.loc).norm())
        ref = high_precision(delta, df, num_chunks) if reference else exact
        t0 = time.perf_counter()
        mc = kl_monte_carlo(p, q, num_samples=n_mc, repeats=1, generator=g)
        t_mc = time.perf_counter() - t0
        t_mc_600k = t_mc * (600_000 / n_mc)
        out.append(
            {
                "case": name,
                "d": num_chunks,
                "delta": delta,
                "ref": ref,
                "exact": exact,
                "t_exact": t_exact,
                "mc": float(mc.estimate),
                "mc_stderr": float(mc.stderr),
                "n_mc": n_mc,
                "t_mc": t_mc,
                "t_mc_600k": t_mc_600k,
                "ratio_x1": t_mc_600k / t_exact,
                "ratio_x100": 100 * t_mc_600k / t_exact,
                "rel_err_exact": abs(exact - ref) / ref,
                "rel_err_mc": abs(float(mc.estimate) - ref) / ref,
                "se100": float(mc.stderr) * math.sqrt(n_mc / 600_000) / 10.0,
            }
        )
    return out


def part1(quick: bool) -> None:
    nu, k = 4.0, 100
    n_mc = 50_000 if quick else 600_000
    print(f"\n## 1. Student-t AP3: 10 x 4096 layer -> {k} chunk means, t_{nu:g}(loc, I)")
    print(
        f"Monte Carlo: {n_mc:,} samples x 1 repeat timed"
        + (" (quick: time extrapolated linearly to 600,000)" if quick else "")
        + "; the reference runs 100 repeats.\n"
    )
    hdr = (
        f"{'case':46s} {'reference KL':>13s} {'exact':>13s} {'rel.err':>9s} {'t_exact':>9s} "
        f"{'MC (1 rep)':>13s} {'MC stderr':>10s} {'rel.err':>9s} {'t_MC/600k':>9s} {'ratio x1':>9s} "
        f"{'ratio x100':>11s}"
    )
    print(hdr)
    print("-" * len(hdr))
    ratios = []
    for r in measure_student_t(n_mc, reps=50 if quick else 200, df=nu, num_chunks=k):
        name, ref, exact = r["case"], r["ref"], r["exact"]
        ratios.append(r["ratio_x100"])
        print(
            f"{name:46s} {ref:13.6e} {exact:13.6e} {r['rel_err_exact']:9.1e} {r['t_exact'] * 1e3:7.3f}ms "
            f"{r['mc']:13.6e} {r['mc_stderr']:10.2e} {r['rel_err_mc']:9.1e} {r['t_mc_600k']:8.2f}s "
            f"{r['ratio_x1']:9.0f} {r['ratio_x100']:11.0f}"
        )
        if name.endswith("(reference)"):
            se100 = r["se100"]
            print(
                f"{'':46s} reference estimator (100 x 600k) would have stderr ~ {se100:.2e} "
                f"= {se100 / ref:.0%} of the KL"
            )
    print(
        f"\nspeed-up of the exact method over the reference's estimator (100 repeats x 600,000 samples): "
        f"min {min(ratios):,.0f}x (goal >= 10,000x)"
    )


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
            return (
                latent_space(w, covariance="diagonal", scale=sd),
                latent_space(wt, covariance="diagonal", scale=sd2),
            )
        return (
            MatrixNormal(w.to(F64), row_cov=U, col_scale_tril=Lv),
            MatrixNormal(wt.to(F64), row_cov=U2, col_scale_tril=Lv2),
        )

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
    return {
        "case": name,
        "d": r * c,
        "kl": val,
        "t_kl": min(t_kl),
        "t_all": min(t_all),
        "extra_mb": mem.extra_mb,
        "method": mem.method,
    }


GAUSSIAN_CASES = ("isotropic", "isotropic_diff", "diagonal", "kronecker", "kronecker_diff")


def measure_gaussian(
    cases=GAUSSIAN_CASES[:4], rows: int = 100, cols: int = 4096, threads: int = 1, in_process: bool = False
) -> list:
    """Gaussian AP3 (part 2): one fresh subprocess per case (clean peak-memory reading).

    Returns one dict per case with keys case, d, kl, t_kl (best of 3 ``kl(p, q)``), t_all (best of 3,
    build + KL), extra_mb (peak resident memory above the inputs) and method (how memory was read).
    ``in_process=True`` runs the cases in this process instead (no interpreter start-up; the timings
    are the same, but ``extra_mb`` is then unreliable and set to NaN).
    """
    res = []
    if in_process:
        for name in cases:
            r = _case(name, rows, cols)
            r.update(extra_mb=float("nan"), method="not measured (in-process)")
            res.append(r)
        return res
    for name in cases:
        env = dict(os.environ, BENCH_THREADS=str(threads))
        cmd = [sys.executable, os.path.abspath(__file__), "--case", name]
        if (rows, cols) != (100, 4096):
            cmd += ["--rows", str(rows), "--cols", str(cols)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        res.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return res


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
    for res in measure_gaussian(cases, threads=threads):
        method = res["method"]
        print(
            f"{labels[res['case']]:38s} {res['kl']:12.6g} {res['t_kl'] * 1e3:7.1f}ms "
            f"{res['t_all'] * 1e3:9.1f}ms {res['extra_mb']:8.1f} MB"
        )
    print(
        f"\nt_KL: best of 3 calls of kl(p, q); t_build+KL: best of 3, building both laws from the weights "
        f"(float32 -> float64, checks) + KL;\npeak extra: resident memory above the inputs "
        f"(weights, covariance factors) during the first build+KL ({method}); goal < 1 s, < 100 MB."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer Monte Carlo samples; runs in < 30 s")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machines)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, default=100, help=argparse.SUPPRESS)  # layer size of --case
    ap.add_argument("--cols", type=int, default=4096, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(_case(args.case, args.rows, args.cols)))
        return
    torch.set_num_threads(args.threads)
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        aff = os.cpu_count()
    print(f"# latentkit divergence benchmark{' (--quick)' if args.quick else ''}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} | cpu_count {os.cpu_count()} "
        f"(usable {aff}) | torch {torch.__version__} | threads {torch.get_num_threads()} | "
        f"python {platform.python_version()} | CUDA {'yes' if torch.cuda.is_available() else 'no'}"
    )
    t0 = time.perf_counter()
    part1(args.quick)
    part2(args.quick, args.threads)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
