"""Tests for the additive extensions of latentkit.grid used by the fine-tuning chapter.

``extra_measures``, ``random_mask_seed``, ``layers="all"`` (exact engine), ``run_grid(dense_dir=)``
and :func:`reference_rescale`. Every extension must leave the cache keys of configs that do not
use it unchanged (the book's stored results depend on them). Values are checked against direct
computations (torch / numpy), on a tiny grid of the digits stand-in.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import tiny_grid

from latentkit import grid as E
from latentkit import zoo
from latentkit.grid import ExperimentConfig, config_path, make_plan, run_grid
from latentkit.grid import engines as engines_mod
from latentkit.grid import training as training_mod
from latentkit.grid.data import dataset_views
from latentkit.grid.engines import prune_copy
from latentkit.grid.keys import cell_key, cell_key_base, cell_seed
from latentkit.grid.training import dense_model, features
from latentkit.pruning import degrees_of_freedom, lq_index, pq_index

torch.set_num_threads(1)

TINY = tiny_grid(
    "tiny_ext",
    methods=["lowest", "random"],
    sparsities=[0.3, 0.8],
    trials=2,
    finetune_epochs=2,
    max_train_samples=160,
    max_test_samples=80,
)


def tiny(**kw) -> ExperimentConfig:
    return ExperimentConfig.from_dict({**TINY, **kw})


# the keys and seeds are functions of a group's plan (latentkit.grid.plan.GroupPlan)
def _cell_key(cfg, network, dataset, method, sparsity, trial):
    return cell_key(make_plan(cfg, network, dataset, trial, "cpu"), method, sparsity)


def _cell_key_base(cfg, network, dataset, method, sparsity, trial):
    return cell_key_base(make_plan(cfg, network, dataset, trial, "cpu"), method, sparsity)


def _cell_seed(cfg, network, dataset, method, sparsity, trial):
    return cell_seed(make_plan(cfg, network, dataset, trial, "cpu"), method, sparsity)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    return out, run_grid(tiny(), out)


# ----------------------------------------------------------------------------- cache keys
def test_defaults_leave_hashes_unchanged():
    cfg = tiny()
    for trial in range(2):
        key = _cell_key(cfg, "alexnet", "standin10", "random", 0.3, trial)
        assert key == _cell_key_base(cfg, "alexnet", "standin10", "random", 0.3, trial)
        assert "extra_measures" not in key and "random_mask_seed" not in key
    # a pinned hash of the quick config's first cell (computed before the extensions existed)
    q = E.load_config(config_path("quick"))
    base = E.config_hash(_cell_key_base(q, "alexnet", "standin10", "lowest", 0.1, 0))
    assert E.config_hash(_cell_key(q, "alexnet", "standin10", "lowest", 0.1, 0)) == base
    # non-default values do change the key
    k1 = _cell_key(tiny(extra_measures=["lq"]), "alexnet", "standin10", "random", 0.3, 0)
    k2 = _cell_key(tiny(random_mask_seed=3), "alexnet", "standin10", "random", 0.3, 0)
    assert E.config_hash(k1) != E.config_hash(_cell_key(cfg, "alexnet", "standin10", "random", 0.3, 0))
    assert k1["extra_measures"] == ["lq"] and k2["random_mask_seed"] == 3


# ----------------------------------------------------------------------------- extra measures
def test_extra_measures_match_direct_computation(base_run, tmp_path):
    out0, df0 = base_run
    cfg = tiny(extra_measures=["lq", "pq", "logit_change", "dof_change"])
    df = run_grid(cfg, tmp_path, dense_dir=out0)
    # the dense networks were taken from the base run, so everything else is identical
    same = [c for c in df0.columns if c not in E.TIMING_COLUMNS]
    pd.testing.assert_frame_equal(df[same], df0[same])
    # recompute from the dense model and the pruned weights at epoch 0 (pruned = w * mask)
    plan = make_plan(cfg, "alexnet", "standin10", 0, torch.device("cpu"))
    views = dataset_views(plan)
    store = E.CacheStore(tmp_path / "cache")
    dense, _ = dense_model(plan, store, views)
    _, layer = zoo.classifier_layer(dense)
    W = layer.weight.detach().double()
    X = features(dense, views["train_eval"], plan).double()
    for method, s in (("lowest", 0.3), ("random", 0.8)):
        seed = _cell_seed(cfg, "alexnet", "standin10", method, s, 0)
        _, lname, res = prune_copy(dense, method, s, seed, whole=False)
        Wp = (W * res.masks[lname].double()).float().double()
        row = df[(df.method == method) & (df.sparsity == s) & (df.trial == 0) & (df.epoch == 0)].iloc[0]
        assert row["lq_index"] == pytest.approx(float(lq_index(Wp, q=0.5)), rel=1e-9)
        assert row["pq_index"] == pytest.approx(float(pq_index(Wp, p=1.0, q=2.0)), rel=1e-9)
        # logit change: mean over inputs of ||(W - W~) x||^2 (brute force)
        direct = float(((X @ (W - Wp).T) ** 2).sum(1).mean())
        assert row["logit_change"] == pytest.approx(direct, rel=1e-6)
        S = X.T @ X / X.shape[0]
        lam = float(torch.trace(W @ S @ W.T)) / W.shape[0]
        dof = abs(degrees_of_freedom(W @ S @ W.T, lam) - degrees_of_freedom(Wp @ S @ Wp.T, lam))
        assert row["dof_change"] == pytest.approx(dof, rel=1e-6, abs=1e-9)
    assert (df["logit_change"] >= 0).all() and df["lq_index"].between(0, 1).all()


# ----------------------------------------------------------------------------- fixed random mask
def test_fixed_random_mask_is_identical_across_trials():
    per_trial = tiny()
    fixed = tiny(random_mask_seed=7)
    s_fixed = {_cell_seed(fixed, "alexnet", "standin10", "random", 0.3, t) for t in range(3)}
    s_trial = {_cell_seed(per_trial, "alexnet", "standin10", "random", 0.3, t) for t in range(3)}
    assert len(s_fixed) == 1 and len(s_trial) == 3
    # the masks themselves, on two different dense layers (trials train different networks)
    from latentkit.pruning import prune

    masks = []
    for trial in range(2):
        g = torch.Generator().manual_seed(trial)
        lay = torch.nn.Sequential(torch.nn.Linear(50, 10))
        with torch.no_grad():
            lay[0].weight.copy_(torch.randn(10, 50, generator=g))
        seed = _cell_seed(fixed, "alexnet", "standin10", "random", 0.3, trial)
        masks.append(prune(lay, "random", 0.3, seed=seed).masks["0"])
    assert torch.equal(masks[0], masks[1])


def test_fixed_random_mask_in_grid(base_run, tmp_path):
    out0, df0 = base_run
    df = run_grid(tiny(random_mask_seed=0, methods=["random"], sparsities=[0.8]), tmp_path, dense_dir=out0)
    assert set(df.trial) == {0, 1} and (df["mask_sparsity"] > 0.79).all()


# ----------------------------------------------------------------------------- layers = all
def test_layers_all_keeps_pruned_weights_zero(base_run, tmp_path, monkeypatch):
    out0, _ = base_run
    cfg = tiny(
        layers="all", engine="exact", methods=["lowest"], sparsities=[0.5], trials=1, finetune_epochs=1
    )
    seen = {}
    real = prune_copy

    def spy(*a, **k):
        model, name, res = real(*a, **k)
        seen["model"], seen["res"] = model, res
        return model, name, res

    monkeypatch.setattr(engines_mod, "prune_copy", spy)
    df = run_grid(cfg, tmp_path, dense_dir=out0)
    assert len(df) == 2 and "ap2_all" in df.columns
    model, res = seen["model"], seen["res"]
    assert len(res.masks) > 3  # every conv/linear layer
    from latentkit.pruning import effective_weight

    for name, mask in res.masks.items():
        w = effective_weight(model.get_submodule(name))
        assert torch.all(w[mask == 0] == 0), name
        assert (mask == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert (df["ap2_all"] >= df["ap2"] - 1e-9).all()
    assert (df["sparsity_achieved"] >= 0.5 - 1e-9).all()


# ----------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(extra_measures=["lq", "foo"]), "unknown extra measure 'foo'"),
        (dict(extra_measures="lq"), "extra_measures must be a list"),
        (dict(extra_measures=["lq", "lq"]), "extra_measures has duplicates"),
        (dict(random_mask_seed="fixed"), "random_mask_seed must be 'per_trial' or a non-negative int"),
        (dict(random_mask_seed=-1), "random_mask_seed must be >= 0"),
        (dict(random_mask_seed=True), "random_mask_seed must be"),
        (dict(layers="first"), "layers='first'"),
        (dict(layers="all"), "needs engine='exact'"),
    ],
)
def test_bad_values_fail_before_training(changes, match, tmp_path, monkeypatch):
    monkeypatch.setattr(
        training_mod, "train_dense", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained"))
    )
    with pytest.raises(ValueError, match=match):
        run_grid(tiny(**changes), tmp_path)
    assert not (tmp_path / "cache").exists()
