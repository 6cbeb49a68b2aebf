"""Benchmark: seconds per trial of the quick grid, this code against a previous commit, in one run.

    python benchmarks/bench_previous.py [--commit 1e7710d] [--trials 3]

Both sides run the way a user runs them, cold (empty results folders) and one after the other
on the same machine in one invocation of this script:

* **before**: ``python -m latentkit run configs/quick.yaml`` of ``--commit`` (default ``1e7710d``,
  the end of the first round: one trial, serial, evaluation of both sets after every dense epoch),
  checked out into a temporary ``git worktree`` and imported from there (``PYTHONPATH``); its
  config is its own ``configs/quick.yaml``;
* **now**: ``python -m latentkit run`` of this checkout on its shipped ``quick`` config with
  ``trials: --trials`` (the default executor: a pool of one single-threaded worker per core).

Each side's seconds per trial are its wall time divided by its trials; the ratio is before / now.
The two configs are not the same work: the previous one trained on scikit-learn's digits (1,438
training / 359 test images) where ``standin10`` is now 5,000 MNIST digits (4,000 / 1,000) and
``standin100`` has 2,000 test images, and the epochs and measures differ (the script prints both
configs' sizes). The ratio is therefore the speed-up a user of the book sees per trial, not a
like-for-like kernel comparison (``benchmarks/bench_grid.py`` splits the current path by part).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of ``cmd`` (its output discarded; a failure raises with its last lines)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return dt


def main(argv: list[str] | None = None) -> int:
    """Run both sides and print seconds per trial and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="1e7710d", help="the previous commit (default: end of round 1)")
    ap.add_argument("--trials", type=int, default=3, help="trials of the current quick grid")
    args = ap.parse_args(argv)
    if args.trials < 1:
        ap.error("--trials must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "previous"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.commit],
            check=True,
            capture_output=True,
        )
        try:
            env = dict(os.environ, PYTHONPATH=str(old), MPLBACKEND="Agg")
            before = _run(
                [sys.executable, "-m", "latentkit", "run", "configs/quick.yaml", "--out", str(tmp / "r_old")],
                env,
                old,
            )
            before_trials = 1
            cfg = yaml.safe_load((ROOT / "latentkit" / "configs" / "quick.yaml").read_text())
            cfg.update(trials=args.trials)
            (tmp / "quick.yaml").write_text(yaml.safe_dump(cfg))
            env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
            now = _run(
                [
                    sys.executable,
                    "-m",
                    "latentkit",
                    "run",
                    str(tmp / "quick.yaml"),
                    "--out",
                    str(tmp / "r_new"),
                ],
                env,
                tmp,
            )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True
            )
    per_before, per_now = before / before_trials, now / args.trials
    print(
        f"before ({args.commit}): {before:.1f} s for {before_trials} trial  -> {per_before:.1f} s per trial"
    )
    print(f"now    (this checkout): {now:.1f} s for {args.trials} trials -> {per_now:.1f} s per trial")
    print(f"speed-up per trial: {per_before / per_now:.2f}x (cpu_count {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
