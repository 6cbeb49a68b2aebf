"""Shared helpers of the grid and command-line tests.

The grid, executor, reference and CLI tests each wrote out their own copy of one tiny config
(AlexNet on the digits stand-in, CPU, one epoch, a few dozen images), of "drop the timing columns
before comparing two tables" and of "write a config file, then run ``python -m latentkit``". They
live here once. Import the plain functions with ``from conftest import ...`` (pytest puts
``tests/`` on ``sys.path``, as for ``_cifar``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]

#: The smallest grid the tests run: one network, one data set, one method, one sparsity, one trial,
#: one dense and one fine-tuning epoch on 64 training / 32 test images, on the CPU.
SMALLEST_GRID: dict[str, Any] = dict(
    networks=["alexnet"],
    datasets=["standin10"],
    methods=["lowest"],
    sparsities=[0.5],
    trials=1,
    dense_epochs=1,
    finetune_epochs=1,
    max_train_samples=64,
    max_test_samples=32,
    device="cpu",
    dense_lr=0.005,
    finetune_lr=0.05,
)


def tiny_grid(name: str, **changes: Any) -> dict[str, Any]:
    """A config mapping named ``name``: :data:`SMALLEST_GRID` with ``changes`` (new keys appended)."""
    return {"name": name, **SMALLEST_GRID, **changes}


def without_timings(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the wall-clock columns (``TIMING_COLUMNS``), the part two runs must share."""
    from latentkit.grid.run import TIMING_COLUMNS

    return df.drop(columns=list(TIMING_COLUMNS))


def write_config(path: Path, config: Any) -> Path:
    """Write ``config`` (a mapping or an ``ExperimentConfig``) to ``path``: JSON for a ``.json``
    name, YAML (keys in their order) otherwise; returns ``path``."""
    d = config if isinstance(config, Mapping) else config.to_dict()
    path = Path(path)
    if path.suffix == ".json":
        path.write_text(json.dumps(dict(d)))
    else:
        path.write_text(yaml.safe_dump(dict(d), sort_keys=False))
    return path


def run_latentkit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m latentkit ARGS`` in a fresh interpreter (one thread, this checkout on the path,
    cwd = the repository root); stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "latentkit", *map(str, args)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=str(REPO),
        timeout=timeout,
    )


def subprocess_env() -> dict[str, str]:
    """The environment of a test's child interpreter: one OpenMP thread, this checkout importable."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
