"""Tests for latentkit.grid (the grid, its cache, the two engines) and the CLI's run/report.

Small grids on a subset of the offline stand-in (scikit-learn digits) keep the file fast; every
number is compared with an independent computation (torch.optim.SGD + autograd for the batched
engine, scipy.stats for the correlations, torch's CosineAnnealingLR for the schedule).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, run_latentkit, subprocess_env, tiny_grid, without_timings, write_config

from latentkit import grid as E
from latentkit.grid import (
    ExperimentConfig,
    config_path,
    cosine_lr,
    finetune_cached,
    load_config,
    make_plan,
    run_grid,
)
from latentkit.grid import run as run_mod
from latentkit.grid import training as training_mod
from latentkit.grid.data import dataset_views
from latentkit.grid.engines import prune_copy
from latentkit.grid.training import dense_model

torch.set_num_threads(1)

TINY = tiny_grid(
    "tiny",
    methods=["lowest", "highest", "random"],
    sparsities=[0.3, 0.8],
    trials=2,
    dense_epochs=2,
    finetune_epochs=3,
    max_train_samples=240,
    max_test_samples=120,
)


def tiny(**kw) -> ExperimentConfig:
    return ExperimentConfig.from_dict({**TINY, **kw})


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted run of the tiny grid (shared by the determinism and resume tests)."""
    out = tmp_path_factory.mktemp("ref")
    return out, run_grid(tiny(), out)


# ----------------------------------------------------------------------------- table structure
def test_table_structure(reference_run):
    out, df = reference_run
    cfg = tiny()
    n_cells = len(cfg.methods) * len(cfg.sparsities) * cfg.trials
    assert len(df) == n_cells * (cfg.finetune_epochs + 1)
    assert not df.duplicated(list(E.ID_COLUMNS)).any()
    assert sorted(df["epoch"].unique()) == list(range(cfg.finetune_epochs + 1))
    for col in (
        "ap2",
        "ap3_gauss_iso",
        "ap3_t_chunks",
        "ap3_laplace_kron",
        "train_acc",
        "test_acc",
        "train_loss",
        "test_loss",
        "pd_train",
        "pd_test",
        "sparsity_achieved",
        "wall_time_s",
    ):
        assert col in df.columns and df[col].notna().all(), col
    # PD is |dense - pruned| in percentage points
    np.testing.assert_allclose(df["pd_test"], (df["dense_test_acc"] - df["test_acc"]).abs())
    # masked entries never revive; the mask has the asked sparsity (round(s * numel) entries)
    numel = 10 * 512
    np.testing.assert_allclose(df["mask_sparsity"], np.round(df["sparsity"] * numel) / numel)
    assert (df["sparsity_achieved"] >= df["mask_sparsity"] - 1e-12).all()
    # isotropic Gaussian AP3 with scale 1 is AP2 / 2 (the paper's latent)
    np.testing.assert_allclose(df["ap3_gauss_iso"], df["ap2"] / 2, rtol=1e-9)
    # at epoch 0, pruning the largest weights moves the layer more than pruning the smallest
    e0 = df[df["epoch"] == 0].groupby(["method", "sparsity"])["ap2"].mean()
    for s in cfg.sparsities:
        assert e0[("lowest", s)] < e0[("random", s)] < e0[("highest", s)]
    assert (
        (out / "results.csv").is_file() and (out / "dense.csv").is_file() and (out / "config.yaml").is_file()
    )
    saved = pd.read_csv(out / "results.csv")
    assert list(saved.columns) == list(df.columns) and len(saved) == len(df)
    dense = pd.read_csv(out / "dense.csv")
    assert len(dense) == cfg.trials * 2 and set(dense["epoch"]) == {1, 2}


def test_epoch0_matches_independent_pruned_forward(reference_run):
    """Epoch-0 accuracy equals a full forward of the dense model with its last layer pruned by hand."""
    out, df = reference_run
    cfg = tiny()
    store = E.CacheStore(out / "cache")
    plan = make_plan(cfg, "alexnet", "standin10", 0, torch.device("cpu"))
    views = dataset_views(plan)
    model, _ = dense_model(plan, store, views)
    w = model.classifier[6].weight.detach().clone()
    k = int(round(0.8 * w.numel()))
    keep = torch.ones(w.numel())
    keep[torch.argsort(w.abs().flatten())[:k]] = 0
    with torch.no_grad():
        model.classifier[6].weight.mul_(keep.view_as(w))
        x = views["test_eval"].images.contiguous(memory_format=torch.channels_last)
        acc = float((model(x).argmax(1) == views["test_eval"].targets).double().mean()) * 100
    row = df[(df.method == "lowest") & (df.sparsity == 0.8) & (df.trial == 0) & (df.epoch == 0)].iloc[0]
    assert row["test_acc"] == pytest.approx(acc, abs=1e-9)


# ----------------------------------------------------------------------------- determinism, cache, resume
def test_same_config_twice_bit_identical(reference_run, tmp_path):
    _, df = reference_run
    again = run_grid(tiny(), tmp_path / "again")
    pd.testing.assert_frame_equal(without_timings(df), without_timings(again), check_exact=True)


def test_cached_cells_are_not_recomputed(reference_run, monkeypatch):
    out, df = reference_run

    def boom(*a, **k):
        raise AssertionError("a cached cell was recomputed")

    monkeypatch.setattr(run_mod, "group_rows", boom)
    monkeypatch.setattr(training_mod, "train_dense", boom)
    pd.testing.assert_frame_equal(run_grid(tiny(), out), df, check_exact=True)


def test_corrupted_cache_detected_and_recomputed(reference_run, tmp_path):
    import shutil

    src, df = reference_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    cells = sorted((out / "cache" / "cells").glob("*.json"))
    dense = sorted((out / "cache" / "dense").glob("*.pt"))
    raw = bytearray(cells[0].read_bytes())
    raw[-10] ^= 0x55  # flip bits in the payload
    cells[0].write_bytes(bytes(raw))
    cells[1].write_bytes(cells[1].read_bytes()[:40])  # truncated
    dense[0].write_bytes(dense[0].read_bytes()[:-100])
    with pytest.warns(RuntimeWarning, match="corrupted cache file"):
        again = run_grid(tiny(), out)
    pd.testing.assert_frame_equal(without_timings(df), without_timings(again), check_exact=True)
    assert all(E.CacheStore(out / "cache").get("cells", p.stem, ".json") is not None for p in cells[:2])


def test_cache_store_roundtrip_and_atomicity(tmp_path):
    store = E.CacheStore(tmp_path)
    store.put_json("k", "a", {"x": [1.5, 2]})
    assert store.get_json("k", "a") == {"x": [1.5, 2]}
    assert store.get_json("k", "missing") is None
    assert not list((tmp_path / "k").glob("*.tmp"))  # no temporary file left behind
    store.put_torch("t", "b", {"w": torch.arange(3.0)})
    assert torch.equal(store.get_torch("t", "b")["w"], torch.arange(3.0))
    (tmp_path / "k" / "a.json").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        assert store.get_json("k", "a") is None
    assert not (tmp_path / "k" / "a.json").exists()


def test_sigkill_mid_grid_then_resume_is_identical(reference_run, tmp_path):
    _, df = reference_run
    cfg_path = write_config(tmp_path / "tiny.json", tiny())
    out = tmp_path / "killed"
    code = (
        "import torch; torch.set_num_threads(1); from latentkit.grid import run_grid; "
        f"run_grid({str(cfg_path)!r}, {str(out)!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=subprocess_env(), cwd=str(REPO))
    cells_dir = out / "cache" / "cells"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if cells_dir.exists() and any(cells_dir.glob("*.json")):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished (or died) before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    n_done = len(list(cells_dir.glob("*.json")))
    total = len(TINY["methods"]) * len(TINY["sparsities"]) * TINY["trials"]
    assert 0 < n_done < total, n_done
    resumed = run_grid(tiny(), out)
    pd.testing.assert_frame_equal(without_timings(df), without_timings(resumed), check_exact=True)
    # A kill during a write can leave a temporary file, never a partial cell file: every .json
    # verifies, and the temporary files are ignored.
    store = E.CacheStore(out / "cache")
    assert all(store.get("cells", p.stem, ".json") is not None for p in cells_dir.glob("*.json"))


# ----------------------------------------------------------------------------- engines
def test_cached_and_exact_engines_agree(tmp_path):
    cfg = tiny(trials=1, finetune_epochs=4)
    a = run_grid(cfg.replace(engine="cached"), tmp_path / "cached")
    b = run_grid(cfg.replace(engine="exact"), tmp_path / "exact")
    assert (a["cells_in_batch"] == 6).all() and (b["cells_in_batch"] == 1).all()
    for col in ("train_acc", "test_acc", "pd_test"):
        assert (a[col] - b[col]).abs().max() <= 0.1, col
    for col in ("ap2", "ap3_t_chunks", "ap3_laplace_kron", "train_loss", "test_loss"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-4, atol=1e-7, err_msg=col)


def test_exact_engine_train_mode_runs(tmp_path):
    """The reference's train-mode fine-tuning (BatchNorm drift) on ResNet: runs, masks hold."""
    cfg = tiny(
        networks=["resnet50"],
        trials=1,
        finetune_epochs=1,
        methods=["lowest"],
        sparsities=[0.5],
        engine="exact",
        finetune_bn="train",
        dense_epochs=1,
        dense_lr=0.1,
        max_train_samples=128,
        max_test_samples=64,
    )
    df = run_grid(cfg, tmp_path)
    assert len(df) == 2 and (df["sparsity_achieved"] >= 0.5).all()


def test_finetune_cached_matches_torch_sgd():
    g = torch.Generator().manual_seed(0)
    K, C, Fd, N = 3, 4, 6, 37
    W0 = torch.randn(K, C, Fd, generator=g, dtype=torch.float64)
    b0 = torch.randn(K, C, generator=g, dtype=torch.float64)
    M = (torch.rand(K, C, Fd, generator=g) > 0.4).double()
    X = torch.randn(N, Fd, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=g)
    epochs, lr, bs, mom, wd = 3, 0.2, 8, 0.9, 0.01
    W, b = finetune_cached(
        W0, b0, M, X, y, epochs, lr, bs, mom, wd, generator=torch.Generator().manual_seed(5)
    )
    gen = torch.Generator().manual_seed(5)
    orders = [torch.randperm(N, generator=gen) for _ in range(epochs)]
    for k in range(K):  # independent: autograd + torch.optim.SGD, masked gradient
        w = (W0[k] * M[k]).clone().requires_grad_(True)
        bb = b0[k].clone().requires_grad_(True)
        opt = torch.optim.SGD([w, bb], lr=lr, momentum=mom, weight_decay=wd)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        for e in range(epochs):
            for i in range(0, N, bs):
                idx = orders[e][i : i + bs]
                loss = F.cross_entropy(X[idx] @ w.T + bb, y[idx])
                opt.zero_grad()
                loss.backward()
                w.grad.add_(wd * w.detach()).mul_(M[k]).sub_(wd * w.detach())  # mask grad + decay term
                opt.step()
            sched.step()
        torch.testing.assert_close(W[k], w.detach(), rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(b[k], bb.detach(), rtol=1e-9, atol=1e-10)
    assert bool(((W != 0) <= (M != 0)).all())


def test_finetune_cached_validation():
    with pytest.raises(ValueError, match="expected W0"):
        finetune_cached(
            torch.zeros(2, 3),
            torch.zeros(2),
            torch.zeros(2, 3),
            torch.zeros(4, 3),
            torch.zeros(4, dtype=torch.long),
            1,
            0.1,
            2,
        )
    with pytest.raises(ValueError, match="expected X"):
        finetune_cached(
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2),
            torch.ones(1, 2, 3),
            torch.zeros(4, 5),
            torch.zeros(4, dtype=torch.long),
            1,
            0.1,
            2,
        )


def test_cosine_lr_matches_torch_scheduler():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7)
    for e in range(7):
        assert cosine_lr(0.3, e, 7) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()


# ----------------------------------------------------------------------------- bad configs
@pytest.mark.parametrize(
    "changes, err, match",
    [
        (dict(networks=["lenet"]), ValueError, "unknown network 'lenet'"),
        (dict(sparsities=[0.5, 1.0]), ValueError, r"sparsity must lie in \[0, 1\)"),
        (dict(sparsities=[1.5]), ValueError, "sparsity must lie"),
        (dict(finetune_epochs=0), ValueError, "finetune_epochs must be >= 1"),
        (dict(dense_epochs=0), ValueError, r"dense_epochs\[alexnet/standin10\] must be >= 1"),
        (dict(dense_epochs={"vgg16": 3}), ValueError, "no value for network 'alexnet'"),
        (dict(methods=["magic"]), ValueError, "unknown method 'magic'"),
        (dict(methods=["spectral"]), ValueError, "spectral"),
        (dict(engine="fast"), ValueError, "unknown engine"),
        (dict(finetune_bn="train"), ValueError, "engine='cached' fine-tunes on fixed features"),
        (dict(layers="all"), ValueError, "last layer only"),
        (dict(trials=0), ValueError, "trials must be >= 1"),
        (dict(momentum=1.0), ValueError, "momentum must lie"),
        (dict(dense_lr=-0.1), ValueError, "dense_lr"),
        (dict(ap3=[{"name": "a b"}]), ValueError, "identifier"),
        (
            dict(ap3=[{"name": "t", "family": "student_t", "df": -1.0}]),
            ValueError,
            "ap3 latent 't' is invalid",
        ),
        (
            dict(ap3=[{"name": "g", "covariance": "isotropic", "colour": 3}]),
            ValueError,
            "ap3 latent 'g' is invalid",
        ),
        (dict(weights="imagenet"), ValueError, "needs preset='paper'"),
        (dict(device="cuda:7" if not torch.cuda.is_available() else "nonsense"), ValueError, "device"),
    ],
)
def test_bad_configs_fail_before_training(changes, err, match, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(training_mod, "train_dense", boom)
    with pytest.raises(err, match=match):
        run_grid(tiny(**changes), tmp_path)
    assert not (tmp_path / "cache").exists()


def test_missing_cifar_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(
        training_mod, "train_dense", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained"))
    )
    cfg = tiny(datasets=["standin10", "cifar100"], data_root=str(tmp_path / "data"))
    with pytest.raises(
        FileNotFoundError, match=r"cifar100 not found: looked in .*cifar-100-python.*download=True"
    ):
        run_grid(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "cache").exists()


def test_config_files_and_unknown_keys(tmp_path):
    quick = load_config(config_path("quick"))
    paper = load_config(config_path("paper"))
    assert quick.preset == "quick" and quick.engine == "cached" and quick.sparsities == [0.1, 0.3, 0.5, 0.8]
    assert paper.preset == "paper" and paper.trials == 3 and paper.dense_epochs == 100
    assert paper.finetune_epochs == 20 and paper.per_network("dense_lr", "resnet50") == 0.1
    assert paper.engine == "exact" and paper.finetune_bn == "train" and paper.weights == "imagenet"
    assert {s["name"] for s in quick.ap3} == {"gauss_iso", "t_chunks", "laplace_kron"}
    p = write_config(tmp_path / "c.json", {**TINY, "finetune_epochs": 7})
    assert load_config(p).finetune_epochs == 7
    assert load_config(p, trials=5).trials == 5
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['epochs'\]"):
        ExperimentConfig.from_dict({"epochs": 3})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_config_hash_is_canonical():
    assert E.config_hash({"a": 1, "b": [0.1, 2]}) == E.config_hash({"b": [0.1, 2], "a": 1})
    assert E.config_hash({"a": 0.1}) != E.config_hash({"a": 0.1000000001})


# ----------------------------------------------------------------------------- CLI
def test_cli_run_and_report(reference_run, tmp_path):
    src, df = reference_run
    import shutil

    out = tmp_path / "cli"
    shutil.copytree(src, out)  # cached: the CLI run only reads
    cfg_path = write_config(tmp_path / "tiny.yaml", tiny())
    r = run_latentkit("run", cfg_path, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "Correlation with PD_test" in r.stdout and "spearman" in r.stdout
    r = run_latentkit("report", out, "--n-boot", "50")
    assert r.returncode == 0, r.stderr
    rep = out / "report"
    for f in (
        "summary.csv",
        "correlations.csv",
        "claims.csv",
        "summary.txt",
        "curves_alexnet_standin10.png",
        "dense_curves_alexnet.png",
    ):
        assert (rep / f).is_file(), f
    bad = run_latentkit("report", tmp_path / "none")
    assert bad.returncode == 2 and "results.csv not found" in bad.stderr


@pytest.mark.parametrize(
    "method", ["lowest", "highest", "highest_reference", "random", "structured", "lq_adaptive"]
)
def test_pruning_the_layer_alone_equals_pruning_the_network(method):
    """The cached engine prunes a copy of the last layer only; the mask and weights must be those of
    pruning the whole network (what the exact engine does)."""
    from latentkit.zoo import build_model

    for name in ("alexnet", "resnet50"):
        dense = build_model(name, 10, seed=3)
        a, lname, ra = prune_copy(dense, method, 0.3, seed=11, whole=False)
        b, lname_b, rb = prune_copy(dense, method, 0.3, seed=11, whole=True)
        assert lname == lname_b
        assert torch.equal(ra.masks[lname], rb.masks[lname])
        assert torch.equal(a.get_submodule(lname).weight, b.get_submodule(lname).weight)
        assert not hasattr(dense.get_submodule(lname), "weight_mask")  # the dense model is untouched


def test_grid_on_miniature_cifar10_archive(tmp_path, monkeypatch):
    """The grid reads real CIFAR through torchvision (miniature archive in the exact on-disk format)."""
    import torchvision
    from _cifar import accept_checksums, write_mini_cifar10

    md5 = write_mini_cifar10(tmp_path / "data", n_per_batch=20, n_test=30)
    accept_checksums(monkeypatch, torchvision.datasets.CIFAR10, md5)
    cfg = tiny(
        datasets=["cifar10"],
        data_root=str(tmp_path / "data"),
        trials=1,
        dense_epochs=1,
        finetune_epochs=1,
        max_train_samples=None,
        max_test_samples=None,
        sparsities=[0.5],
    )
    df = run_grid(cfg, tmp_path / "out")
    assert len(df) == 3 * 2 and set(df["dataset"]) == {"cifar10"}
    # accuracies are multiples of 1/30 (30 test images)
    assert np.allclose((df["test_acc"] * 30 / 100).round(9) % 1, 0)
