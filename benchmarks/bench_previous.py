"""Benchmark: seconds per trial of the quick grid, this code against a previous commit, in one run.

    python benchmarks/bench_previous.py [--commit 1e7710d] [--trials 3]

Every side runs the way a user runs it, cold (empty results folders) and one after the other
on the same machine in one invocation of this script:

* **before**: ``python -m latentkit run configs/quick.yaml`` of ``--commit`` (default ``1e7710d``,
  the end of the first round: one trial, serial, evaluation of both sets after every dense epoch),
  checked out into a temporary ``git worktree`` and imported from there (``PYTHONPATH``); its
  config is its own ``configs/quick.yaml``; ``--previous-threads 1`` runs it on one torch thread, as
  the previous book executed it (its chapters ran the grid serially in a one-thread kernel);
* **now, the previous workload**: ``python -m latentkit run`` of this checkout on its shipped
  ``quick`` config changed back to the previous workload (:func:`previous_workload`: the digits,
  1,000 ``standin100`` test images, the previous epochs, learning rates and no warm-up), with
  ``trials: --trials`` (the default executor: a pool of one single-threaded worker per core);
* **now**: the same on the shipped ``quick`` config as it is.

Each side's seconds per trial are its wall time divided by its trials; the ratios are before /
now. The same-workload ratio is the speed-up of the code; today's config is more work per trial
(``standin10`` is now 5,000 MNIST digits, 4,000 training / 1,000 test images instead of the digits'
1,438 / 359, ``standin100`` has 2,000 test images, VGG16 on ``standin100`` trains 12 epochs, and
the function-space measures are new), so its ratio is what a reader of the book sees per trial.
``benchmarks/bench_grid.py`` splits the current path by part.
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


def previous_workload(previous_config: dict) -> dict:
    """The previous workload in today's config, from the previous ``configs/quick.yaml``: its
    epochs and learning rates, no warm-up, scikit-learn's digits (then ``standin10``, now
    ``standin10_digits``) and 1,000 ``standin100`` test images; everything else as shipped now."""
    return dict(
        datasets=["standin10_digits", "standin100"],
        max_test_samples=1000,
        dense_epochs=previous_config["dense_epochs"],
        dense_lr=previous_config["dense_lr"],
        dense_warmup_epochs=0,
    )


def _now(tmp: Path, name: str, changes: dict) -> float:
    """Wall seconds of ``python -m latentkit run`` of this checkout on the shipped quick config
    with ``changes``, from an empty results folder."""
    cfg = yaml.safe_load((ROOT / "latentkit" / "configs" / "quick.yaml").read_text())
    cfg.update(name=name, **changes)
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "latentkit", "run", str(tmp / f"{name}.yaml"), "--out", str(tmp / name)]
    return _run(cmd, env, tmp)


def main(argv: list[str] | None = None) -> int:
    """Run the three sides and print seconds per trial and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="1e7710d", help="the previous commit (default: end of round 1)")
    ap.add_argument("--trials", type=int, default=3, help="trials of the current quick grid")
    ap.add_argument(
        "--previous-threads",
        type=int,
        default=None,
        help="torch threads of the previous run (default its CLI's; 1 = how the previous book ran it)",
    )
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
            cmd = [sys.executable, "-m", "latentkit", "run", "configs/quick.yaml", "--out", str(tmp / "old")]
            if args.previous_threads:
                cmd += ["--threads", str(args.previous_threads)]
            before = _run(cmd, env, old)  # the previous quick config has one trial
            workload = previous_workload(yaml.safe_load((old / "configs" / "quick.yaml").read_text()))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True
            )
        same = _now(tmp, "previous_workload", dict(workload, trials=args.trials))
        now = _now(tmp, "quick_now", dict(trials=args.trials))
    n = args.trials
    threads = f"{args.previous_threads} thread(s)" if args.previous_threads else "its default threads"
    print(f"before ({args.commit}, its quick config, 1 trial, {threads}): {before:.1f} s per trial")
    print(f"now, the previous workload ({n} trials in {same:.1f} s): {same / n:.1f} s per trial")
    print(f"now, today's quick config ({n} trials in {now:.1f} s): {now / n:.1f} s per trial")
    print(f"speed-up per trial, same workload: {before / (same / n):.2f}x")
    print(f"speed-up per trial, today's (larger) workload: {before / (now / n):.2f}x")
    print(f"(cpu_count {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
