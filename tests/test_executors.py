"""Executors of the grid (issue 10, section 3): serial and Ray give the same table; resume; validation.

The Ray tests start a local Ray with 2 CPUs (one group per CPU, ``threads_per_group: 1``) and shut
it down at the end; they are skipped when Ray (the optional extra ``latentkit[ray]``) is not
installed.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from conftest import tiny_grid, without_timings, write_config

from latentkit import cli
from latentkit.grid import ExperimentConfig, load_config, make_plan, run_grid
from latentkit.grid import run as run_mod
from latentkit.grid.executors import (
    RayExecutor,
    SerialExecutor,
    make_executor,
    task_resources,
)
from latentkit.grid.keys import cell_key, dense_key
from latentkit.grid.run import run_group

SMALL = tiny_grid(
    "exec",
    methods=["lowest", "random"],
    trials=2,
    finetune_epochs=2,
    max_train_samples=96,
    max_test_samples=48,
    threads_per_group=1,
)


def small(**kw) -> ExperimentConfig:
    return ExperimentConfig.from_dict({**SMALL, **kw})


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run_grid(small(), out)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip(
        "ray", reason="Ray is an optional extra (pip install 'latentkit[ray]'); the Ray executor is untested"
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ----------------------------------------------------------------------------- serial executor
def test_serial_executor_is_the_default_and_keeps_the_thread_count(serial_run, tmp_path):
    out, df = serial_run
    before = torch.get_num_threads()
    again = run_grid(small(), tmp_path / "explicit", executor="serial")
    pd.testing.assert_frame_equal(without_timings(df), without_timings(again), check_exact=True)
    assert torch.get_num_threads() == before  # threads_per_group is restored after each group
    assert list(df["trial"].unique()) == [0, 1]


def test_run_group_reads_finished_cells_and_computes_only_missing_groups(serial_run, tmp_path):
    src, df = serial_run
    out = tmp_path / "partial"
    shutil.copytree(src, out)
    cfg = small()
    plan1 = make_plan(cfg, "alexnet", "standin10", 1)
    from latentkit.grid.cache import config_hash

    victim = out / "cache" / "cells" / f"{config_hash(cell_key(plan1, 'random', 0.5))}.json"
    victim.unlink()
    args = (cfg.to_dict(), str(out), "alexnet", "standin10")
    assert run_group(*args, 0)["computed"] == 0  # group 0 fully cached: nothing recomputed
    summary = run_group(*args, 1)
    assert summary == {"network": "alexnet", "dataset": "standin10", "trial": 1, "cells": 2, "computed": 1}
    resumed = run_grid(cfg, out)
    pd.testing.assert_frame_equal(without_timings(df), without_timings(resumed), check_exact=True)
    # the cells that were cached are read, not recomputed: even their timing is the first run's
    kept = ~((resumed["trial"] == 1) & (resumed["method"] == "random"))
    pd.testing.assert_frame_equal(df[kept], resumed[kept], check_exact=True)


def test_driver_assembles_from_cache_and_refuses_a_missing_cell(serial_run, tmp_path):
    class Forgetful(SerialExecutor):
        """An executor whose workers 'died' without writing anything."""

        def map(self, fn, tasks, resources, on_done):
            return []

    with pytest.raises(RuntimeError, match="missing from the cache"):
        run_grid(small(), tmp_path / "empty", executor=Forgetful())


# ----------------------------------------------------------------------------- validation
def test_executor_option_validated(tmp_path, monkeypatch):
    assert isinstance(make_executor(None), SerialExecutor)
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert make_executor("ray", address="auto") == RayExecutor(address="auto")
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("dask")
    with pytest.raises(TypeError, match="executor must be"):
        make_executor(3)
    with pytest.raises(ValueError, match="need executor='ray'"):
        make_executor("serial", address="auto")
    with pytest.raises(ValueError, match="num_cpus must be"):
        RayExecutor(num_cpus=0)
    with pytest.raises(ValueError, match="cannot be given with address"):
        RayExecutor(address="auto", num_cpus=2)
    with pytest.raises(TypeError, match="address must be"):
        RayExecutor(address=5)

    def boom(*a, **k):
        raise AssertionError("trained before the executor was checked")

    monkeypatch.setattr(run_mod, "group_rows", boom)
    with pytest.raises(ValueError, match="executor must be one of"):
        run_grid(small(), tmp_path / "bad", executor="threads")
    assert not (tmp_path / "bad").exists()


def test_task_resources():
    assert task_resources("cpu", None) == {"num_cpus": 1, "num_gpus": 0}
    assert task_resources("cuda", 4) == {"num_cpus": 4, "num_gpus": 1}
    assert task_resources("cuda:1", None)["num_gpus"] == 1
    assert task_resources("auto", None)["num_gpus"] == "auto"


def test_threads_per_group_validated_and_keyed_only_when_set():
    with pytest.raises(ValueError, match="threads_per_group"):
        small(threads_per_group=0).validate(check_data=False)
    with pytest.raises((TypeError, ValueError), match="threads_per_group"):
        small(threads_per_group=1.5).validate(check_data=False)
    unset = make_plan(small(threads_per_group=None), "alexnet", "standin10", 0)
    assert (
        "threads" not in dense_key(unset)
        and "threads_per_group" not in small(threads_per_group=None).to_dict()
    )
    one = make_plan(small(), "alexnet", "standin10", 0)
    assert dense_key(one)["threads"] == 1 and cell_key(one, "lowest", 0.5)["dense"]["threads"] == 1
    assert "threads_per_group" not in load_config("paper").to_dict()  # unset: left out of the dict
    assert load_config("quick").to_dict()["threads_per_group"] == 1  # the quick grid fixes it (issue 9)


def test_cli_executor_errors(capsys):
    assert cli.main(["run", "quick", "--executor", "dask"]) == 2
    assert "executor must be one of" in capsys.readouterr().err
    assert cli.main(["run", "quick", "--address", "auto"]) == 2
    assert "--address needs --executor ray" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Ray
@pytest.mark.slow
def test_ray_local_matches_serial_bit_for_bit(serial_run, ray_local, tmp_path):
    _, df = serial_run
    got = run_grid(small(), tmp_path / "ray", executor="ray", progress=True)
    pd.testing.assert_frame_equal(without_timings(df), without_timings(got), check_exact=True)
    assert ray_local.is_initialized()  # an already running Ray is used and left running


@pytest.mark.slow
def test_ray_resumes_a_partially_filled_cache(serial_run, ray_local, tmp_path):
    src, df = serial_run
    out = tmp_path / "partial_ray"
    shutil.copytree(src, out)
    cells = sorted((out / "cache" / "cells").glob("*.json"))
    cells[0].unlink()
    got = run_grid(small(), out, executor="ray")
    pd.testing.assert_frame_equal(without_timings(df), without_timings(got), check_exact=True)
    assert len(list((out / "cache" / "cells").glob("*.json"))) == len(cells)


@pytest.mark.slow
def test_cli_run_with_ray_resumes_from_the_cache(serial_run, ray_local, tmp_path, capsys):

    src, df = serial_run
    out = tmp_path / "cli_ray"
    shutil.copytree(src, out)
    cfg = write_config(tmp_path / "small.json", small())
    assert cli.main(["run", str(cfg), "--out", str(out), "--executor", "ray", "--quiet"]) == 0
    assert f"{len(df)} rows (4 cells)" in capsys.readouterr().out
    got = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(got, pd.read_csv(src / "results.csv"), check_exact=True)
