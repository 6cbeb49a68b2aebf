"""Config validation (declarative constraints, the AP3-spec parser), shipped configs, the cost model,
and corrupted-content cell files of latentkit.grid."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_grid

from latentkit import zoo
from latentkit.grid import (
    CacheStore,
    ExperimentConfig,
    GroupPlan,
    config_hash,
    config_path,
    cost_table,
    default_out,
    load_config,
    make_plan,
    parse_ap3_spec,
    run_grid,
    shipped_configs,
    validation,
)
from latentkit.grid import run as run_mod
from latentkit.grid.keys import cell_key

torch.set_num_threads(1)

TINY = tiny_grid("tiny_cfg", methods=["lowest", "random"])


# ----------------------------------------------------------------------------- declarative validation
def test_every_field_has_a_constraint():
    fields = [f.name for f in dataclasses.fields(ExperimentConfig)]
    assert sorted(fields) == sorted(validation.CONSTRAINTS)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "g", "damping": 0.1}, "key 'damping' needs fit: laplace"),
        (
            {"name": "g", "covariance": "kronecker", "fit": "laplace", "dampin": 0.1},
            r"unknown key\(s\) \['dampin'\]",
        ),
        ({"name": "g", "colour": 3}, r"ap3 latent 'g' is invalid: unknown key\(s\) \['colour'\]"),
        ({"name": "g", "fit": "laplace", "damping": -1.0}, "damping must be a number > 0"),
        ({"name": "g", "fit": "fisher"}, "fit must be 'laplace' or absent"),
        ({"name": "g", "family": "cauchy"}, "unknown ap3 family 'cauchy'"),
        ({"family": "gaussian"}, "must be a mapping with a 'name'"),
    ],
)
def test_ap3_spec_errors_name_the_key(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_ap3_spec(spec)
    with pytest.raises(ValueError, match=match):
        load_config({**TINY, "ap3": [spec]})


def test_ap3_spec_parsed_once_for_validation_and_measurement():
    spec = parse_ap3_spec({"name": "k", "family": "gaussian", "covariance": "kronecker", "fit": "laplace"})
    assert spec.column == "ap3_k" and spec.fit == "laplace" and spec.damping == 1e-3
    assert spec.kwargs == {"family": "gaussian", "covariance": "kronecker"}
    plan = make_plan(
        load_config(
            {**TINY, "ap3": [{"name": "k", "covariance": "kronecker", "fit": "laplace", "damping": 0.01}]}
        ),
        "alexnet",
        "standin10",
        0,
    )
    assert plan.ap3_specs[0].damping == 0.01 and "damping" not in plan.ap3_specs[0].kwargs


def test_renamed_scale_key_is_an_error():
    with pytest.raises(ValueError, match="config key 'scale' was renamed to 'preset'"):
        ExperimentConfig.from_dict({**TINY, "scale": "quick"})
    assert ExperimentConfig.from_dict({**TINY, "preset": "paper"}).preset == "paper"


@pytest.mark.parametrize(
    "changes, err, match",
    [
        (dict(preset="huge"), ValueError, "unknown preset 'huge'"),
        (dict(dense_augment=1), TypeError, "dense_augment must be true or false"),
        (dict(data_root=""), ValueError, "data_root must be a non-empty string"),
        (dict(max_test_samples=0), ValueError, "max_test_samples must be >= 1"),
        (dict(width={"lenet": 1.0}), ValueError, "unknown network 'lenet'"),
        (dict(networks="alexnet"), ValueError, "networks must be a non-empty list"),
        (dict(datasets=["standin10", "standin10"]), ValueError, "datasets has duplicates"),
        (dict(ap3={"name": "x"}), ValueError, "ap3 must be a list"),
    ],
)
def test_constraint_table_errors(changes, err, match):
    with pytest.raises(err, match=match):
        load_config({**TINY, **changes})


def test_validation_runs_once_per_run_grid(tmp_path, monkeypatch):
    calls = []
    real = validation.validate_config
    monkeypatch.setattr(validation, "validate_config", lambda c: calls.append(1) or real(c))
    run_grid(ExperimentConfig.from_dict(TINY), tmp_path)
    assert len(calls) == 1


def test_group_plan_is_frozen_and_resolved():
    cfg = load_config("quick")
    plan = make_plan(cfg, "vgg16", "standin100", 0)
    assert isinstance(plan, GroupPlan) and plan.dense_epochs == 12 and plan.dense_lr == 0.02
    assert plan.device == torch.device("cpu") and plan.cells[0] == ("lowest", 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.trial = 1


# ----------------------------------------------------------------------------- shipped configs, defaults
def test_shipped_configs_by_name(tmp_path, monkeypatch):
    assert set(shipped_configs()) >= {"quick", "paper"}
    assert config_path("quick").parent.name == "configs" and config_path("quick").is_file()
    assert load_config("paper", trials=1).trials == 1
    with pytest.raises(ValueError, match="unknown shipped config 'medium'"):
        config_path("medium")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config("medium")
    monkeypatch.chdir(tmp_path)
    assert default_out(load_config("quick")) == tmp_path / "results" / "quick"
    # a file of the same name in the working directory wins over the shipped config
    (tmp_path / "quick").write_text(json.dumps({**TINY, "name": "local"}))
    assert load_config("quick").name == "local"


# ----------------------------------------------------------------------------- cost model
def _chapter_cost(cfg, flops, in_features, tflops=25.0):
    """The paper-scale chapter's cost model, verbatim (the reference for plan.cost_table)."""
    LOADER_IMAGES_S = 1_000.0 * cfg.num_workers
    N_TRAIN, N_TEST = 50_000, 10_000
    HOUR = 3600.0

    def pass_seconds(images, flops_per_image, tflops=tflops):
        return images * max(flops_per_image / (tflops * 1e12), 1.0 / LOADER_IMAGES_S)

    def head_flops(net, dataset):
        K = len(cfg.methods) * len(cfg.sparsities)
        C = zoo.dataset_num_classes(dataset)
        F = in_features[net]
        return 4 * K * C * F, 2 * K * C * F

    rows = []
    for net in cfg.networks:
        f = flops[net]
        r = {"network": net, "dense": 0.0, "fine-tune exact": 0.0, "fine-tune cached": 0.0}
        for ds in cfg.datasets:
            groups = cfg.trials
            cells = groups * len(cfg.methods) * len(cfg.sparsities)
            E, T = cfg.per_network("dense_epochs", net, ds), cfg.finetune_epochs
            evaluation = pass_seconds(N_TRAIN + N_TEST, f["forward"], tflops)
            dense = E * (pass_seconds(N_TRAIN, f["dense step"], tflops) + evaluation)
            exact = (T + 1) * evaluation + T * pass_seconds(N_TRAIN, f["fine-tuning step"], tflops)
            step, ev = head_flops(net, ds)
            cached = evaluation + (T * N_TRAIN * step + (T + 1) * (N_TRAIN + N_TEST) * ev) / (tflops * 1e12)
            r["dense"] += groups * dense / HOUR
            r["fine-tune exact"] += cells * exact / HOUR
            r["fine-tune cached"] += groups * cached / HOUR
        r["evaluation bound by"] = "loader" if f["forward"] / (tflops * 1e12) < 1 / LOADER_IMAGES_S else "GPU"
        rows.append(r)
    df = pd.DataFrame(rows).set_index("network")
    df["total, exact engine"] = df["dense"] + df["fine-tune exact"]
    df["total, cached engine"] = df["dense"] + df["fine-tune cached"]
    total = df.drop(columns="evaluation bound by").sum().rename("all")
    return pd.concat([df, total.to_frame().T]).fillna({"evaluation bound by": ""})


@pytest.mark.parametrize("tflops", [12.5, 25.0, 75.0])
def test_cost_table_equals_the_chapters_model(tflops):
    paper = load_config("paper")
    # FLOP counts of the chapter's output (GFLOP/image) and the true head widths
    flops = {
        "alexnet": (1.421e9, 4.122e9, 1.422e9),
        "vgg16": (30.93e9, 92.63e9, 30.93e9),
        "resnet50": (8.175e9, 24.29e9, 8.175e9),
    }
    in_features = {"alexnet": 4096, "vgg16": 4096, "resnet50": 2048}
    costs = pd.DataFrame(
        {
            n: {
                "forward": a,
                "dense step": b,
                "fine-tuning step": c,
                "in_features": in_features[n],
                "state_bytes": 1,
            }
            for n, (a, b, c) in flops.items()
        }
    ).T
    chapter = {n: dict(zip(("forward", "dense step", "fine-tuning step"), v)) for n, v in flops.items()}
    got = cost_table(paper, costs, tflops=tflops)
    want = _chapter_cost(paper, chapter, in_features, tflops)
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)
    if tflops == 25.0:  # the chapter's printed totals
        assert round(got.loc["all", "total, exact engine"], 1) == 133.6
        assert round(got.loc["all", "total, cached engine"], 2) == 57.41
    assert math.isfinite(got.loc["all", "dense"])
    with pytest.raises(ValueError, match="tflops must be a positive"):
        cost_table(paper, costs, tflops=0.0)


# ----------------------------------------------------------------------------- cell files with wrong content
@pytest.mark.parametrize(
    "payload", [{"key": "x"}, {"rows": []}, [1, 2], {"key": {"other": 1}, "rows": [{"a": 1}]}]
)
def test_cell_file_with_valid_checksum_but_wrong_content_is_recomputed(tmp_path, payload):
    cfg = ExperimentConfig.from_dict(TINY)
    df = run_grid(cfg, tmp_path)
    plan = make_plan(cfg, "alexnet", "standin10", 0)
    digest = config_hash(cell_key(plan, "lowest", 0.5))
    store = CacheStore(tmp_path / "cache")
    store.put_json("cells", digest, payload)  # checksum valid, content not a cell of this key
    computed = []
    real = run_mod.group_rows
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_mod, "group_rows", lambda *a, **k: computed.append(1) or real(*a, **k))
        with pytest.warns(RuntimeWarning, match="valid checksum but not a cell of this key"):
            again = run_grid(cfg, tmp_path)
    assert computed == [1]
    cols = [c for c in df.columns if c != "wall_time_s"]
    pd.testing.assert_frame_equal(df[cols], again[cols], check_exact=True)
    assert store.get_json("cells", digest)["rows"][0]["method"] == "lowest"
    assert Path(tmp_path / "results.csv").is_file()


def test_dense_file_with_valid_checksum_but_wrong_content_is_retrained(tmp_path):
    from latentkit.grid.keys import dense_key

    cfg = ExperimentConfig.from_dict(TINY)
    df = run_grid(cfg, tmp_path)
    digest = config_hash(dense_key(make_plan(cfg, "alexnet", "standin10", 0)))
    store = CacheStore(tmp_path / "cache")
    store.put_torch("dense", digest, {"weights": torch.zeros(2)})  # checksum valid, no state_dict / history
    for p in (tmp_path / "cache" / "cells").glob("*.json"):
        p.unlink()  # the cells must be recomputed from the dense network
    with pytest.warns(RuntimeWarning, match="valid checksum but not a dense network entry"):
        again = run_grid(cfg, tmp_path)
    cols = [c for c in df.columns if c != "wall_time_s"]
    pd.testing.assert_frame_equal(df[cols], again[cols], check_exact=True)
    assert "state_dict" in store.get_torch("dense", digest)
