"""Reference mode (issue 10, section 1): each part of the authors' protocol pinned on small fixed inputs.

Every expected value is derived here independently of latentkit (plain NumPy, the reference's
formulas as described in ../shared/reference/paper.md), never by calling the code under test twice.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_grid
from torch import nn

from latentkit.grid import load_config, make_plan, run_grid
from latentkit.grid.engines import reference_trainable, running_epoch
from latentkit.grid.keys import cell_key, dense_key
from latentkit.grid.measures import parse_ap3, reference_gauss_ap3, reference_t_ap3
from latentkit.latent import latent_space, project
from latentkit.options import GRID_METHODS, PRUNING_METHODS
from latentkit.patterns import ap3
from latentkit.pruning import MaskedOptimizer, prune
from latentkit.zoo import TensorImageDataset, load_dataset
from latentkit.zoo import cifar as cifar_mod

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def _weights(shape, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def _reference_chunk_means(flat: np.ndarray, k: int) -> list[np.ndarray]:
    """The reference's grouping, written out: chunks flat[i : i + d // k] for i in range(0, d, d // k)."""
    step = len(flat) // k
    return [flat[i : i + step] for i in range(0, len(flat), step)]


# ------------------------------------------------------------------------------ 1. chunk means
@pytest.mark.parametrize(
    ("shape", "sizes"),
    [((10, 4096), [409] * 100 + [60]), ((10, 2048), [204] * 100 + [80]), ((4, 250), [10] * 100)],
)
def test_chunk_means_reference_remainder(shape, sizes):
    w = _weights(shape)
    chunks = _reference_chunk_means(w.numpy().reshape(-1), 100)
    assert [len(c) for c in chunks] == sizes
    got = project(w, "chunk_means", 100, remainder="reference")
    np.testing.assert_allclose(got.numpy(), [c.mean() for c in chunks], rtol=0, atol=1e-14)


def test_chunk_means_default_policy_unchanged():
    w = _weights((10, 4096))
    split = [c.mean() for c in np.array_split(w.numpy().reshape(-1), 100)]  # 60 of 410, 40 of 409
    np.testing.assert_allclose(project(w, "chunk_means", 100).numpy(), split, atol=1e-14)
    assert torch.equal(project(w, "chunk_means", 100), project(w, "chunk_means", 100, remainder="split"))
    with pytest.raises(ValueError, match="unknown remainder 'tail'"):
        project(w, "chunk_means", 100, remainder="tail")


def test_remainder_reaches_latent_space_and_ap3():
    w = _weights((10, 2048), seed=1)
    wp = torch.where(w.abs() < 0.7, torch.zeros_like(w), w)
    kw = dict(projection="chunk_means", num_chunks=100, remainder="reference")
    assert latent_space(w, "student_t", **kw).loc.shape == (101,)
    # Gaussian, scale s: AP3 = ||m - m~||^2 / (2 s^2) with the reference's chunk means
    m = np.array([c.mean() for c in _reference_chunk_means(w.numpy().reshape(-1), 100)])
    mp = np.array([c.mean() for c in _reference_chunk_means(wp.numpy().reshape(-1), 100)])
    expected = ((m - mp) ** 2).sum() / (2 * 0.5**2)
    assert ap3(w, wp, "gaussian", "isotropic", scale=0.5, **kw) == pytest.approx(expected, rel=1e-12)
    spec = parse_ap3([{"name": "t_ref", "family": "student_t", **kw}])[0]
    assert spec.kwargs["remainder"] == "reference"


# ------------------------------------------------------------------------------ 2. random masks
def _legacy_mask(numel: int, p: float, seed: int = 42) -> np.ndarray:
    """The reference's mask through NumPy's *global* legacy state (saved and restored around it)."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        idx = np.random.choice(numel, round(p * numel), replace=False)
    finally:
        np.random.set_state(state)
    keep = np.ones(numel, dtype=bool)
    keep[idx] = False
    return keep


@pytest.mark.parametrize(
    ("shape", "p"), [((10, 4096), 0.3), ((7, 13), 0.5), ((100, 409), 0.8), ((5, 3), 0.1)]
)
def test_random_reference_is_the_legacy_numpy_mask(shape, p):
    layer = nn.Linear(shape[1], shape[0])
    before = np.random.get_state()[1].copy()
    result = prune(layer, "random_reference", p, seed=123)  # the call's seed is not the mask's
    assert np.array_equal(np.random.get_state()[1], before), "the global NumPy state was touched"
    mask = next(iter(result.masks.values())).numpy().astype(bool)
    # unravelled row-major: flat index i is entry (i // in, i % in)
    assert np.array_equal(mask.reshape(-1), _legacy_mask(layer.weight.numel(), p))
    again = prune(nn.Linear(shape[1], shape[0]), "random_reference", p, seed=7)
    assert torch.equal(next(iter(again.masks.values())), next(iter(result.masks.values())))


def test_random_reference_registered_at_the_end():
    assert PRUNING_METHODS[-1] == "random_reference" and GRID_METHODS[-1] == "random_reference"
    assert PRUNING_METHODS[:7] == (
        "lowest",
        "highest",
        "highest_reference",
        "random",
        "structured",
        "lq_adaptive",
        "spectral",
    )
    layer = nn.Linear(20, 5)
    m = next(iter(prune(layer, "random_reference", 0.4, legacy_seed=3).masks.values()))
    assert np.array_equal(m.numpy().astype(bool).reshape(-1), _legacy_mask(100, 0.4, seed=3))
    with pytest.raises(TypeError, match="legacy_seed"):
        prune(nn.Linear(4, 2), "random_reference", 0.5, legacy_seed="42")


# ------------------------------------------------------------------------------ 3. normalisation
def test_paper_normalization_per_dataset():
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    c10 = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert cifar_mod.paper_normalization("cifar10") == imagenet
    assert cifar_mod.paper_normalization("cifar100") == imagenet
    assert cifar_mod.paper_normalization("cifar10", "reference") == imagenet
    assert cifar_mod.paper_normalization("cifar100", "reference") == c10
    with pytest.raises(ValueError, match="unknown normalization 'cifar'"):
        load_dataset("standin10", "test", normalization="cifar")


class _FakeCIFAR:
    """Stands in for torchvision's CIFAR classes: keeps the transform it was given."""

    def __init__(self, root, train, transform, download):
        self.transform = transform


@pytest.mark.parametrize(
    ("name", "normalization", "mean"),
    [
        ("cifar100", "reference", (0.4914, 0.4822, 0.4465)),
        ("cifar100", "imagenet", (0.485, 0.456, 0.406)),
        ("cifar10", "reference", (0.485, 0.456, 0.406)),
    ],
)
def test_load_dataset_uses_the_normalization(monkeypatch, tmp_path, name, normalization, mean):
    monkeypatch.setattr(cifar_mod, "_cifar_class", lambda _name: _FakeCIFAR)
    ds = load_dataset(name, "test", root=tmp_path, download=True, scale="paper", normalization=normalization)
    norm = ds.transform.transforms[-1]
    assert tuple(norm.mean) == mean


# ------------------------------------------------------------------------------ 4. fine-tuning
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(16, 8)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)
        return self.fc(self.drop(torch.relu(self.fc1(h))))


def test_reference_finetuning_trains_biases_and_shifts_only(monkeypatch):
    torch.manual_seed(0)
    model = _Tiny()
    prune(model, "lowest", 0.5, layers="last")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params, handles = reference_trainable(model, "fc")
    opt = MaskedOptimizer(torch.optim.SGD(params, lr=0.1, momentum=0.9), model=model)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g)
    ds = TensorImageDataset(
        x, y, classes=["a", "b", "c"], name="tiny", split="train", synthetic=True, description="tiny"
    )
    plan = SimpleNamespace(device=torch.device("cpu"), num_workers=0, channels_last=False)
    model.train()
    loss, acc = running_epoch(model, opt, ds, 16, 0.1, torch.Generator().manual_seed(1), None, plan)
    after = model.state_dict()
    for name in ("conv.bias", "bn.bias", "fc1.bias", "fc.bias", "bn.running_mean", "bn.running_var"):
        assert not torch.equal(after[name], before[name]), f"{name} should train"
    for name in ("conv.weight", "bn.weight", "fc1.weight"):
        assert torch.equal(after[name], before[name]), f"{name} should not change"
    mask = after["fc.weight_mask"].bool()
    assert (model.fc.weight[~mask] == 0).all(), "pruned weights must stay zero"
    assert not torch.equal(after["fc.weight_orig"][mask], before["fc.weight_orig"][mask])
    assert 0.0 <= acc <= 100.0 and 100.0 * round(acc * 40 / 100) / 40 == pytest.approx(acc)
    assert math.isfinite(loss)
    for h in handles:
        h.remove()


def test_reference_protocol_through_the_grid(tmp_path):
    cfg = tiny_grid(
        "ref_tiny",
        methods=["lowest", "random_reference"],
        engine="exact",
        finetune_bn="train",
        finetune_protocol="reference",
        extra_measures=["ap3_reference_gauss"],
    )
    df = run_grid(load_config(cfg), tmp_path)
    assert len(df) == 4 and (df["sparsity_achieved"] >= 0.5).all()
    first = df[df["epoch"] == 1]
    np.testing.assert_allclose(first["pd_train"], (first["dense_train_acc"] - first["train_acc"]).abs())
    # the reference's Gaussian AP3 is sqrt(c * AP2) with one constant c = 0.001 / sqrt(d) on every row
    ratio = df["ap3_reference_gauss"] ** 2 / df["ap2"]
    np.testing.assert_allclose(ratio, ratio.iloc[0], rtol=1e-9)
    assert 0 < ratio.iloc[0] < 0.001
    with pytest.raises(ValueError, match="finetune_protocol='reference' needs engine='exact'"):
        load_config({**cfg, "engine": "cached", "finetune_bn": "eval"})


# ------------------------------------------------------------------------------ 5. measures
def test_reference_gauss_ap3_formula():
    w = _weights((10, 4096), seed=2)
    wp = w.clone()
    wp[:, :1000] = 0
    d = w.numel()
    expected = math.sqrt(0.001 / math.sqrt(d) * float(np.sum((w.numpy() - wp.numpy()) ** 2)))
    assert reference_gauss_ap3(w, wp) == pytest.approx(expected, rel=1e-13)
    assert reference_gauss_ap3(wp, w) == pytest.approx(expected, rel=1e-13)
    assert reference_gauss_ap3(w, w) == 0.0


def _t_kl_numpy(m_p: np.ndarray, m_q: np.ndarray, df: float, n: int, seed: int) -> float:
    """KL(t(m_p, I, df) || t(m_q, I, df)) by plain NumPy Monte Carlo, x ~ t(m_p)."""
    k = len(m_p)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k))
    u = rng.chisquare(df, size=(n, 1))
    x = m_p + z / np.sqrt(u / df)
    lp = np.log1p(((x - m_p) ** 2).sum(1) / df)
    lq = np.log1p(((x - m_q) ** 2).sum(1) / df)
    return float(np.mean((df + k) / 2 * (lq - lp)))


def test_reference_t_ap3_monte_carlo():
    # weights with a positive mean, so that zeroing the smallest half moves the chunk means far
    w = _weights((10, 2048), seed=3) * 0.2 + 0.5
    wp = torch.where(w.abs() < 0.5, torch.zeros_like(w), w)
    m = np.array([c.mean() for c in _reference_chunk_means(w.numpy().reshape(-1), 100)])
    mp = np.array([c.mean() for c in _reference_chunk_means(wp.numpy().reshape(-1), 100)])
    expected = _t_kl_numpy(mp, m, 4.0, 400_000, seed=0)  # about 1.40
    got = reference_t_ap3(w, wp, samples=20_000, repeats=5)
    assert got == pytest.approx(expected, rel=0.02)
    # and the exact equal-scale Student-t KL of latentkit on the same 101 chunk means
    exact = ap3(w, wp, "student_t", projection="chunk_means", num_chunks=100, remainder="reference", df=4.0)
    assert got == pytest.approx(exact, rel=0.02)
    # deterministic for a given seed (common random numbers), different with another one
    assert reference_t_ap3(w, wp, samples=2_000, repeats=2) == reference_t_ap3(
        w, wp, samples=2_000, repeats=2
    )


# ------------------------------------------------------------------------------ 6. configs
def test_reference_config_and_its_keys():
    ref = load_config("reference")
    assert ref.methods == ["lowest", "highest_reference", "random_reference"]
    assert (ref.normalization, ref.finetune_protocol) == ("reference", "reference")
    assert ref.extra_measures == ["ap3_reference_gauss", "ap3_reference_t"]
    plan = make_plan(ref, "vgg16", "cifar100", 0, device="cpu")
    assert dense_key(plan)["normalization"] == "reference"
    key = cell_key(plan, "random_reference", 0.5)
    assert key["finetune_protocol"] == "reference" and "reference_mc" not in key
    small = make_plan(
        ref.replace(reference_mc_samples=100, reference_mc_repeats=2), "vgg16", "cifar10", 0, "cpu"
    )
    assert cell_key(small, "lowest", 0.1)["reference_mc"] == [100, 2]
    paper = load_config("paper")
    assert "normalization" not in paper.to_dict() and "finetune_protocol" not in paper.to_dict()
    pplan = make_plan(paper, "vgg16", "cifar100", 0, device="cpu")
    assert "normalization" not in dense_key(pplan) and "finetune_protocol" not in cell_key(
        pplan, "lowest", 0.1
    )


@pytest.mark.parametrize(
    ("change", "exc", "message"),
    [
        ({"normalization": "cifar"}, ValueError, "unknown normalization 'cifar'"),
        ({"finetune_protocol": "paper"}, ValueError, "unknown finetune_protocol 'paper'"),
        ({"reference_mc_samples": 1}, ValueError, "reference_mc_samples"),
        ({"reference_mc_repeats": 0}, ValueError, "reference_mc_repeats"),
        ({"reference_mc_repeats": True}, TypeError, "reference_mc_repeats"),
        ({"extra_measures": ["ap3_reference_z"]}, ValueError, "unknown extra measure 'ap3_reference_z'"),
        (
            {"ap3": [{"name": "t", "family": "student_t", "projection": "chunk_means", "remainder": "tail"}]},
            ValueError,
            "ap3 latent 't' is invalid: unknown remainder 'tail'",
        ),
    ],
)
def test_new_fields_are_validated(change, exc, message):
    with pytest.raises(exc, match=message):
        load_config("reference", **change)


def test_paper_small_config():
    cfg = load_config("paper_small")
    assert (cfg.networks, cfg.datasets, cfg.trials, cfg.preset, cfg.weights) == (
        ["alexnet"],
        ["cifar10"],
        1,
        "paper",
        "imagenet",
    )


def test_gpu_check_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: benchmarks/gpu_check.py would run its full check")
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().count("\n") == 0 and "no GPU" in out.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_reference_parts_on_cuda():
    """The mask, chunk means and both reference AP3s on the GPU agree with the CPU values."""
    layer = nn.Linear(2048, 10)
    cpu = next(iter(prune(layer, "random_reference", 0.3).masks.values()))
    gpu = next(iter(prune(nn.Linear(2048, 10).cuda(), "random_reference", 0.3).masks.values()))
    assert torch.equal(gpu.cpu(), cpu)
    w = _weights((10, 2048), seed=3) * 0.2 + 0.5
    wp = torch.where(w.abs() < 0.5, torch.zeros_like(w), w)
    np.testing.assert_allclose(
        project(w.cuda(), "chunk_means", 100, remainder="reference").cpu(),
        project(w, "chunk_means", 100, remainder="reference"),
        rtol=1e-12,
    )
    assert reference_gauss_ap3(w.cuda(), wp.cuda()) == pytest.approx(reference_gauss_ap3(w, wp), rel=1e-12)
    on_gpu = reference_t_ap3(w.cuda(), wp.cuda(), samples=600_000, repeats=4)
    assert on_gpu == pytest.approx(reference_t_ap3(w, wp, samples=20_000, repeats=5), rel=0.02)
