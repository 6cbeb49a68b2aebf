"""Tests for latentkit.patterns: AP2, AP3, the AP tests and the per-layer table.

Every value is compared with an independent computation (NumPy brute force, SciPy quadrature or the
textbook Gaussian KL), and every documented failure path is exercised.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from latentkit.modules import effective_weight as layer_weight
from latentkit.patterns import PatternTest, ap2, ap3, has_ap2, has_ap3, layer_table

torch.set_num_threads(1)


def magnitude_prune(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Brute-force lowest-magnitude pruning (test helper, independent of latentkit.pruning)."""
    k = int(round(sparsity * w.numel()))
    out = w.clone().reshape(-1)
    if k:
        out[torch.argsort(out.abs())[:k]] = 0
    return out.reshape(w.shape)


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, 13, generator=g, dtype=torch.float64)
    return w, magnitude_prune(w, 0.4)


# ---------------------------------------------------------------------------------------------- AP2
def test_ap2_identity_is_squared_frobenius(pair):
    w, v = pair
    expected = float(np.sum((w.numpy() - v.numpy()) ** 2))
    assert ap2(w, v) == pytest.approx(expected, rel=1e-12)
    assert ap2(w, v, projection="rows") == pytest.approx(expected, rel=1e-12)
    # float32 input, float64 accumulation
    assert ap2(w.float(), v.float()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("k", [1, 5, 10, 91])
def test_ap2_chunk_means_against_numpy(pair, k):
    w, v = pair  # 91 weights: k = 10 leaves a remainder
    cw = np.array([c.mean() for c in np.array_split(w.numpy().ravel(), k)])
    cv = np.array([c.mean() for c in np.array_split(v.numpy().ravel(), k)])
    assert ap2(w, v, projection="chunk_means", num_chunks=k) == pytest.approx(
        float(np.sum((cw - cv) ** 2)), rel=1e-10
    )


def test_ap2_normalizations(pair):
    w, v = pair
    raw = ap2(w, v)
    assert ap2(w, v, normalize="dense_norm") == pytest.approx(raw / float((w**2).sum()), rel=1e-12)
    assert ap2(w, v, normalize="numel") == pytest.approx(raw / w.numel(), rel=1e-12)
    # no hidden rescaling: doubling the weights multiplies AP2 by 4, relative AP2 unchanged
    assert ap2(2 * w, 2 * v) == pytest.approx(4 * raw, rel=1e-12)
    assert ap2(2 * w, 2 * v, normalize="dense_norm") == pytest.approx(
        ap2(w, v, normalize="dense_norm"), rel=1e-12
    )


def test_ap2_errors(pair):
    w, v = pair
    with pytest.raises(ValueError, match="same shape"):
        ap2(w, v[:, :-1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        ap2(w, torch.full_like(v, float("nan")))
    with pytest.raises(ValueError, match="NaN or infinite"):
        ap2(torch.full_like(w, float("inf")), v)
    with pytest.raises(TypeError, match="floating dtype"):
        ap2(w.long(), v.long())
    with pytest.raises(TypeError):
        ap2("weights", v)
    with pytest.raises(ValueError, match="normalize"):
        ap2(w, v, normalize="max")
    with pytest.raises(ValueError, match="dense_norm"):
        ap2(torch.zeros(3), torch.zeros(3), normalize="dense_norm")
    with pytest.raises(ValueError):
        ap2(w, v, projection="chunk_means", num_chunks=w.numel() + 1)
    with pytest.raises(ValueError):
        ap2(w, v, projection="nope")


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 60),
    s1=st.floats(0.0, 1.0),
    s2=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_ap2_properties(d, s1, s2, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    lo, hi = sorted((s1, s2))
    a, b = magnitude_prune(w, lo), magnitude_prune(w, hi)
    assert ap2(w, w) == 0.0
    assert ap2(w, a) >= 0
    assert ap2(w, a) == pytest.approx(ap2(a, w), rel=1e-12)  # symmetric
    assert ap2(w, a) <= ap2(w, b) + 1e-12  # more magnitude pruning never moves the layer less
    assert ap2(w, b) <= float((w**2).sum()) + 1e-12


# ---------------------------------------------------------------------------------------------- AP3
@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_ap3_isotropic_is_scaled_ap2(pair, scale):
    w, v = pair
    assert ap3(w, v, scale=scale) == pytest.approx(ap2(w, v) / (2 * scale**2), rel=1e-10)
    assert ap3(w, v, scale=scale, projection="chunk_means", num_chunks=10) == pytest.approx(
        ap2(w, v, projection="chunk_means", num_chunks=10) / (2 * scale**2), rel=1e-10
    )


def test_ap3_of_identical_layers_is_zero(pair):
    w, _ = pair
    assert ap3(w, w) == 0.0
    assert ap3(w, w.clone(), family="student_t", df=4.0) == pytest.approx(0.0, abs=1e-10)


def test_ap3_gaussian_full_fit_matches_textbook_formula(pair):
    """A fitted full covariance (Ledoit-Wolf) shared by both sides: AP3 = 1/2 D^T S^-1 D."""
    from latentkit.latent import latent_space, ledoit_wolf

    w, v = pair
    d = w.numel()
    g = torch.Generator().manual_seed(1)
    snaps = w.reshape(1, -1) + 0.3 * torch.randn(40, d, generator=g, dtype=torch.float64)
    fit = ledoit_wolf(snaps)
    p = latent_space(w, covariance="full", fit=fit)
    cov = p.covariance_matrix.numpy()
    dvec = (w - v).reshape(-1).numpy()
    expected = 0.5 * float(dvec @ scipy.linalg.solve(cov, dvec, assume_a="pos"))
    assert ap3(w, v, covariance="full", fit=fit) == pytest.approx(expected, rel=1e-7)


def _t_kl_1d(delta: float, df: float) -> float:
    """KL between two 1-D Student-t laws (scale 1) by SciPy quadrature: brute force."""
    p, q = scipy.stats.t(df, loc=0.0), scipy.stats.t(df, loc=delta)
    val, _ = scipy.integrate.quad(
        lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)),
        -np.inf,
        np.inf,
        epsabs=1e-13,
        epsrel=1e-11,
        limit=400,
    )
    return val


@pytest.mark.parametrize("df", [1.0, 4.0, 30.0])
def test_ap3_student_t_one_dimensional_against_quadrature(df):
    w = torch.tensor([0.7], dtype=torch.float64)
    v = torch.tensor([0.0], dtype=torch.float64)
    assert ap3(w, v, family="student_t", df=df) == pytest.approx(_t_kl_1d(0.7, df), rel=1e-5)


def test_ap3_student_t_is_symmetric_and_below_gaussian(pair):
    w, v = pair
    kw = dict(family="student_t", df=4.0, projection="chunk_means", num_chunks=10)
    a, b = ap3(w, v, **kw), ap3(v, w, **kw)
    assert a == pytest.approx(b, rel=1e-6)
    assert 0 < a < ap3(w, v, projection="chunk_means", num_chunks=10)


def test_ap3_errors(pair):
    w, v = pair
    with pytest.raises(ValueError, match="same shape"):
        ap3(w, v.reshape(-1)[:-1])
    with pytest.raises(ValueError):
        ap3(w, v, family="cauchy")
    with pytest.raises(ValueError):
        ap3(w, v, covariance="banded")
    with pytest.raises(ValueError):
        ap3(w, v, family="student_t", df=0.0)
    with pytest.raises(ValueError):
        ap3(w, v, family="student_t", df=-1.0)
    with pytest.raises(ValueError):
        ap3(w, v, scale=0.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ap3(w, torch.full_like(v, float("nan")))


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 40), scale=st.floats(0.05, 5.0), seed=st.integers(0, 10_000))
def test_ap3_properties(d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    v = magnitude_prune(w, 0.5)
    value = ap3(w, v, scale=scale)
    assert value >= 0 and math.isfinite(value)
    assert value == pytest.approx(float(((w - v) ** 2).sum()) / (2 * scale**2), rel=1e-9, abs=1e-300)


# ------------------------------------------------------------------------------------- has_ap2/3
def test_pattern_tests(pair):
    w, v = pair
    a2, a3 = ap2(w, v), ap3(w, v, scale=2.0)
    t = has_ap2(w, v, a2)
    assert isinstance(t, PatternTest) and t and t.holds and t.value == a2 and t.eps == a2 and t.kind == "AP2"
    assert not has_ap2(w, v, a2 * 0.999)
    assert has_ap3(w, v, a3, scale=2.0)
    assert not has_ap3(w, v, a3 * 0.999, scale=2.0)
    assert has_ap2(w, w, 0.0) and has_ap3(w, w, 0.0)
    assert has_ap2(w, v, 1.0, normalize="dense_norm")


@pytest.mark.parametrize("fn", [has_ap2, has_ap3])
def test_pattern_tests_reject_bad_eps(pair, fn):
    w, v = pair
    with pytest.raises(ValueError, match="eps"):
        fn(w, v, -1e-3)
    with pytest.raises(ValueError, match="eps"):
        fn(w, v, float("nan"))
    with pytest.raises(TypeError, match="eps"):
        fn(w, v, "small")


# ---------------------------------------------------------------------------------------- table
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.act = nn.ReLU()
        self.fc1 = nn.Linear(12, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.act(self.conv(x)).flatten(1))))


@pytest.fixture
def models():
    torch.manual_seed(0)
    dense = Net().double()
    pruned = copy.deepcopy(dense)
    prune.l1_unstructured(pruned.fc1, "weight", amount=0.5)
    prune.random_unstructured(pruned.conv, "weight", amount=0.25)
    return dense, pruned


def test_layer_table_with_torch_prune(models):
    dense, pruned = models
    table = layer_table(dense, pruned)
    assert list(table["layer"]) == ["conv", "fc1", "fc2"]
    assert list(table["parameters"]) == [54, 96, 32]
    assert table.loc[1, "sparsity"] == pytest.approx(0.5)
    assert table.loc[0, "zeros"] == round(0.25 * 54)
    assert table.loc[2, "sparsity"] == 0.0 and table.loc[2, "ap2"] == 0.0
    brute = float(((dense.fc1.weight - pruned.fc1.weight_orig * pruned.fc1.weight_mask) ** 2).sum().detach())
    assert table.loc[1, "ap2"] == pytest.approx(brute, rel=1e-12)
    assert table.loc[1, "ap3"] == pytest.approx(brute / 2, rel=1e-10)
    assert table.loc[1, "shape"] == (8, 12) and table.loc[0, "type"] == "Conv2d"


def test_layer_table_same_without_torch_prune(models):
    dense, pruned = models
    manual = copy.deepcopy(dense)
    with torch.no_grad():
        manual.fc1.weight.copy_(pruned.fc1.weight)
        manual.conv.weight.copy_(pruned.conv.weight)
    a, b = layer_table(dense, pruned), layer_table(dense, manual)
    np.testing.assert_allclose(a["ap2"], b["ap2"], rtol=1e-12)
    np.testing.assert_allclose(a["sparsity"], b["sparsity"])


def test_layer_weight_sees_in_place_updates_of_weight_orig(models):
    _, pruned = models
    with torch.no_grad():
        pruned.fc1.weight_orig.add_(1.0)  # no forward pass: module.weight is stale
    expected = pruned.fc1.weight_orig * pruned.fc1.weight_mask
    assert torch.equal(layer_weight(pruned.fc1), expected.detach())
    assert int((layer_weight(pruned.fc1) == 0).sum()) == 48


def test_layer_table_specs_and_layers(models):
    dense, pruned = models
    table = layer_table(
        dense,
        pruned,
        layers=["fc1"],
        normalize="dense_norm",
        ap3_specs={
            "ap3_s2": {"scale": 2.0},
            "ap3_t": {"family": "student_t", "df": 4.0, "projection": "chunk_means", "num_chunks": 4},
        },
    )
    assert list(table.columns) == [
        "layer",
        "type",
        "shape",
        "parameters",
        "zeros",
        "sparsity",
        "ap2",
        "ap3_s2",
        "ap3_t",
    ]
    w, v = dense.fc1.weight.detach(), layer_weight(pruned.fc1)
    assert table.loc[0, "ap2"] == pytest.approx(ap2(w, v, normalize="dense_norm"))
    assert table.loc[0, "ap3_s2"] == pytest.approx(ap3(w, v, scale=2.0))
    assert table.loc[0, "ap3_t"] == pytest.approx(
        ap3(w, v, family="student_t", df=4.0, projection="chunk_means", num_chunks=4)
    )


def test_layer_table_errors(models):
    dense, pruned = models
    other = nn.Sequential(nn.Linear(12, 8), nn.Linear(8, 4)).double()
    with pytest.raises(ValueError, match="different architectures"):
        layer_table(dense, other)
    wider = Net().double()
    wider.fc2 = nn.Linear(8, 5).double()
    with pytest.raises(ValueError, match="weight shape"):
        layer_table(dense, wider)
    swapped = Net().double()
    swapped.fc2 = nn.Conv1d(8, 4, 1).double()
    with pytest.raises(ValueError, match="Linear in dense_model but Conv1d"):
        layer_table(dense, swapped)
    with pytest.raises(ValueError, match="unknown layer"):
        layer_table(dense, pruned, layers=["fc3"])
    with pytest.raises(TypeError, match="nn.Module"):
        layer_table(dense, {"fc1": 1})
    with pytest.raises(ValueError, match="column name"):
        layer_table(dense, pruned, ap3_specs={"ap2": {}})
    with pytest.raises(TypeError, match="dict of ap3 arguments"):
        layer_table(dense, pruned, ap3_specs={"x": 3})
    with pytest.raises(ValueError, match="layer 'conv', column 'bad'"):
        layer_table(dense, pruned, ap3_specs={"bad": {"family": "student_t", "df": -1.0}})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_patterns_on_cuda(pair):
    w, v = (t.cuda() for t in pair)
    assert ap2(w, v) == pytest.approx(ap2(*pair), rel=1e-12)
    assert ap3(w, v, scale=0.5) == pytest.approx(ap3(*pair, scale=0.5), rel=1e-10)
    assert ap3(w, v, family="student_t", df=4.0) == pytest.approx(
        ap3(*pair, family="student_t", df=4.0), rel=1e-6
    )
    with pytest.raises(ValueError, match="device"):
        ap2(w, pair[1])


def test_ap_on_weights_that_require_grad_do_not_warn():
    """Measurements on live parameters (and expressions of them) return floats silently."""
    import warnings

    lin = torch.nn.Linear(6, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = ap2(lin.weight, lin.weight * 0.5)
        b = ap3(lin.weight, lin.weight * 0.5, scale=1.0)
    expected = float(((lin.weight.detach() * 0.5) ** 2).sum())
    assert a == pytest.approx(expected, rel=1e-6)
    assert b == pytest.approx(expected / 2, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# issue 12: hostile inputs at the boundary of patterns
# --------------------------------------------------------------------------------------------------
_TABLE_COLUMNS = ["layer", "type", "shape", "parameters", "zeros", "sparsity", "ap2"]


def test_layer_table_without_prunable_layers_keeps_its_columns():
    """No Linear/Conv layer (or layers=[]): an empty table that still has every column."""
    empty = layer_table(nn.Sequential(nn.ReLU(), nn.Tanh()), nn.Sequential(nn.ReLU(), nn.Tanh()))
    assert len(empty) == 0 and list(empty.columns) == _TABLE_COLUMNS + ["ap3"]
    specs = {"ap3_iso": {}, "ap3_t": {"family": "student_t", "df": 4.0}}
    chosen = layer_table(nn.Linear(3, 2), nn.Linear(3, 2), layers=[], ap3_specs=specs)
    assert len(chosen) == 0 and list(chosen.columns) == _TABLE_COLUMNS + ["ap3_iso", "ap3_t"]
    assert chosen["ap2"].tolist() == []  # selecting a column of the empty table works


def test_layer_table_wrong_argument_types_name_the_argument(models):
    dense, pruned = models
    with pytest.raises(TypeError, match="dense_model"):
        layer_table("model", pruned)
    with pytest.raises(TypeError, match="pruned_model"):
        layer_table(dense, None)
    with pytest.raises(TypeError, match="layers"):
        layer_table(dense, pruned, layers=3)
    with pytest.raises(TypeError, match="layers"):
        layer_table(dense, pruned, layers=[0])
    with pytest.raises(ValueError, match="projection"):
        layer_table(nn.ReLU(), nn.ReLU(), projection="pca")  # checked even without a layer
    with pytest.raises(TypeError, match="normalize"):
        layer_table(nn.ReLU(), nn.ReLU(), normalize=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("side", ["dense", "pruned"])
def test_layer_table_non_finite_weights_name_the_layer(models, bad, side):
    dense, pruned = models
    target = dense if side == "dense" else pruned
    with torch.no_grad():
        target.fc2.weight[0, 0] = bad  # fc2 is not pruned in either model
    with pytest.raises(ValueError, match="layer 'fc2', column 'ap2'.*NaN or infinite"):
        layer_table(dense, pruned)


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 30),
    index=st.integers(0, 29),
    bad=st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    pruned_side=st.booleans(),
    which=st.sampled_from(["ap2", "ap3", "ap3_t"]),
)
def test_ap2_ap3_refuse_nan_and_inf_weights(d, index, bad, pruned_side, which):
    w = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    v = w * 0.5
    (v if pruned_side else w)[index % d] = bad
    name = "w_pruned" if pruned_side else "w"
    fn = {
        "ap2": lambda: ap2(w, v),
        "ap3": lambda: ap3(w, v),
        "ap3_t": lambda: ap3(w, v, family="student_t", df=4.0),
    }[which]
    with pytest.raises(ValueError, match=f"^{name} contains NaN or infinite values"):
        fn()


def test_ap2_ap3_wrong_argument_types_name_the_argument(pair):
    w, v = pair
    for fn in (ap2, ap3):
        with pytest.raises(TypeError, match="^w must be"):
            fn("weights", v)
        with pytest.raises(TypeError, match="^w_pruned must be"):
            fn(w, {"weight": v})
        with pytest.raises(TypeError, match="w_pruned must have a floating dtype"):
            fn(w, torch.ones(w.shape, dtype=torch.int64))
        with pytest.raises(TypeError, match="same dtype.*float32 and torch.float64"):
            fn(w.float(), v)
        with pytest.raises(ValueError, match="^w must have at least 1 dimension"):
            fn(torch.tensor(1.0), torch.tensor(0.0))
        with pytest.raises(ValueError, match="^w is empty"):
            fn(torch.empty(0), torch.empty(0))
    with pytest.raises(TypeError, match="scale must be a real number; got bool"):
        ap3(w, v, scale=True)
    with pytest.raises(TypeError, match="scale must be a real number; got str"):
        ap3(w, v, scale="1.0")
    for fn in (has_ap2, has_ap3):
        with pytest.raises(TypeError, match="eps must be a real number; got bool"):
            fn(w, v, True)
        with pytest.raises(TypeError, match="eps must be a real number; got str"):
            fn(w, v, "0.1")


def test_ap2_overflow_is_an_error_not_inf(pair):
    w, v = pair
    with pytest.raises(ValueError, match="AP2 overflows float64"):
        ap2(w * 1e200, v)
    # float32 weights near their maximum are squared in float64: representable, so no error
    big = torch.full((3,), 3e38, dtype=torch.float32)
    assert ap2(big, big * 0) == pytest.approx(3 * 9e76, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(exponent=st.integers(-300, 300), seed=st.integers(0, 10_000))
def test_ap2_dense_norm_is_scale_free_over_the_float64_range(exponent, seed):
    """The relative AP2 does not under/overflow: same value (1e-12) at every scale 10^e, |e| <= 300."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 7, generator=g, dtype=torch.float64)
    v = magnitude_prune(w, 0.5)
    reference = float(((w - v) ** 2).sum() / (w**2).sum())
    scale = 10.0**exponent
    assert ap2(w * scale, v * scale, normalize="dense_norm") == pytest.approx(reference, rel=1e-12)


def test_ap3_against_is_ap3_bit_for_bit():
    """AP3 of many pruned layers against one dense layer (the factors of a Kronecker latent shared)
    equals the KL of two latents built separately, exactly (not approximately), for every latent the
    shipped configs use, a Laplace fit included; ap3 is the one-pair call of it."""
    from torch.distributions import kl_divergence

    from latentkit.latent import latent_space
    from latentkit.latent.fits import fit_laplace_linear
    from latentkit.patterns import AP3Against

    g = torch.Generator().manual_seed(3)
    w = torch.randn(10, 300, generator=g)
    feats = torch.randn(400, 300, generator=g)
    fit = fit_laplace_linear(feats, feats @ w.T, bias=False, damping=1e-3)
    latents = [
        dict(family="gaussian", covariance="isotropic", scale=1.0),
        dict(family="student_t", covariance="isotropic", projection="chunk_means", num_chunks=100, df=4.0),
        dict(
            family="student_t",
            covariance="isotropic",
            projection="chunk_means",
            num_chunks=100,
            remainder="reference",
        ),
        dict(family="gaussian", covariance="kronecker", fit=fit),
        dict(family="gaussian", covariance="kronecker", scale=0.3),
    ]
    for kw in latents:
        against = AP3Against(w, **kw)
        for s in (0.0, 0.1, 0.5, 0.9):
            wp = w * (torch.rand(w.shape, generator=g) >= s)
            separate = max(float(kl_divergence(latent_space(w, **kw), latent_space(wp, **kw))), 0.0)
            assert against(wp) == separate == ap3(w, wp, **kw), (kw, s)
    with pytest.raises(ValueError, match="shape"):
        AP3Against(w)(w[:5])
    with pytest.raises(TypeError):
        AP3Against(w)(w.double())
