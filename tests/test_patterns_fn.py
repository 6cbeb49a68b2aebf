"""Tests of AP3_fn, its exact-Fisher quadratic and the OBD saliency (latentkit.patterns.function)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Categorical, kl_divergence

from latentkit.patterns import ap3_fn, ap3_fn_quadratic, obd_saliency, predictive_kl


def layer(seed=0, n=50, d=6, c=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(c, d, generator=g, dtype=dtype)
    b = torch.randn(c, generator=g, dtype=dtype)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    return W, b, X


def test_ap3_fn_against_categorical_kl():
    W, b, X = layer()
    Wt = W * (W.abs() > 0.5)
    bt = b * 0.5
    ref = kl_divergence(Categorical(logits=X @ W.T + b), Categorical(logits=X @ Wt.T + bt)).mean()
    assert ap3_fn(W, Wt, X, bias=b, pruned_bias=bt) == pytest.approx(float(ref), rel=1e-10)
    ref = kl_divergence(Categorical(logits=X @ W.T + b), Categorical(logits=X @ Wt.T + b)).mean()
    assert ap3_fn(W, Wt, X, bias=b) == pytest.approx(float(ref), rel=1e-10)
    assert ap3_fn(W, W.clone(), X, bias=b) == 0.0


def test_ap3_fn_forward_pass_equals_cached_features():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(5, 6), nn.Tanh())
    dense = nn.Sequential(body, nn.Linear(6, 3)).double()
    pruned = nn.Sequential(body, nn.Linear(6, 3)).double()
    with torch.no_grad():
        pruned[1].weight.copy_(dense[1].weight * (dense[1].weight.abs() > 0.3))
        pruned[1].bias.copy_(dense[1].bias)
    x = torch.randn(40, 5, dtype=torch.float64)
    feats = body(x).detach()
    exact = ap3_fn(dense[1].weight, pruned[1].weight, feats, bias=dense[1].bias)
    dense.train()
    assert ap3_fn(dense, pruned, x) == pytest.approx(exact, rel=1e-12)
    batches = [(x[:15], torch.zeros(15)), (x[15:], torch.zeros(25))]  # labels are ignored
    assert ap3_fn(dense, pruned, batches) == pytest.approx(exact, rel=1e-12)
    assert dense.training and pruned.training  # training flags restored


def test_quadratic_against_materialised_fisher():
    W, b, X = layer(seed=3, n=30, d=4, c=3)
    D = 0.1 * torch.randn(3, 5, dtype=torch.float64)
    Wt, bt = W + D[:, :4], b + D[:, 4]
    Xt = torch.cat([X, torch.ones(30, 1, dtype=torch.float64)], 1)
    P = torch.softmax(X @ W.T + b, 1)
    F = sum(torch.kron(torch.diag(p) - torch.outer(p, p), torch.outer(x, x)) for p, x in zip(P, Xt)) / 30
    v = D.reshape(-1)  # row-major vec
    assert ap3_fn_quadratic(W, Wt, X, bias=b, pruned_bias=bt) == pytest.approx(
        float(0.5 * v @ F @ v), rel=1e-10
    )
    # the OBD saliency is the same quadratic with the diagonal of F (bias fixed)
    v0 = (Wt - W).reshape(-1)
    F0 = sum(torch.kron(torch.diag(p) - torch.outer(p, p), torch.outer(x, x)) for p, x in zip(P, X)) / 30
    obd = float(0.5 * (torch.diagonal(F0) * v0**2).sum())
    assert obd_saliency(W, Wt, features=X, bias=b) == pytest.approx(obd, rel=1e-10)
    fisher = torch.diagonal(F0).reshape(3, 4)
    assert obd_saliency(W, Wt, fisher=fisher) == pytest.approx(obd, rel=1e-10)


def test_quadratic_is_the_second_order_term():
    W, b, X = layer(seed=5)
    D = torch.randn_like(W)
    for eps in (1e-2, 1e-3):
        exact = ap3_fn(W, W + eps * D, X, bias=b)
        quad = ap3_fn_quadratic(W, W + eps * D, X, bias=b)
        assert exact / quad == pytest.approx(1.0, abs=20 * eps)


def test_predictive_kl_is_stable_for_huge_logits():
    z = torch.tensor([[1000.0, 0.0, -1000.0]], dtype=torch.float64)
    zt = torch.tensor([[999.0, 0.0, -1000.0]], dtype=torch.float64)
    assert torch.isfinite(predictive_kl(z, zt)).all()
    assert float(predictive_kl(z, z)) == 0.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.0, 3.0), keep=st.floats(0.0, 1.0))
def test_ap3_fn_nonnegative_and_zero_iff_equal_predictions(seed, scale, keep):
    W, b, X = layer(seed=seed, n=20)
    g = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(W.shape, generator=g, dtype=torch.float64) < keep
    Wt = W * mask * (1 + scale)
    value = ap3_fn(W, Wt, X, bias=b)
    assert value >= 0.0 and ap3_fn_quadratic(W, Wt, X, bias=b) >= 0.0
    same = torch.allclose(torch.softmax(X @ W.T + b, 1), torch.softmax(X @ Wt.T + b, 1), atol=0, rtol=0)
    assert (value == 0.0) == same or (not same and value < 1e-15)
    # adding a constant to every logit of a row leaves the predictions and AP3_fn at 0
    assert ap3_fn(W, W, X, bias=b, pruned_bias=b + 3.0) == pytest.approx(0.0, abs=1e-12)


def test_validation():
    W, b, X = layer()
    with pytest.raises(ValueError, match="features must have 6 columns"):
        ap3_fn(W, W, X[:, :3])
    with pytest.raises(ValueError, match="shape"):
        ap3_fn(W, W[:2], X)
    with pytest.raises(TypeError, match="both be nn.Module"):
        ap3_fn(nn.Linear(6, 4), W, X)
    with pytest.raises(TypeError, match="bias/pruned_bias apply to weights only"):
        ap3_fn(nn.Linear(6, 4), nn.Linear(6, 4), X.float(), bias=b)
    with pytest.raises(TypeError, match="inputs must be a tensor or an iterable"):
        ap3_fn(nn.Linear(6, 4), nn.Linear(6, 4), 3)
    with pytest.raises(ValueError, match="no rows"):
        ap3_fn(nn.Linear(6, 4), nn.Linear(6, 4), [])
    with pytest.raises(ValueError, match="bias must have shape"):
        ap3_fn_quadratic(W, W, X, bias=b[:2])
    with pytest.raises(TypeError, match="exactly one of fisher"):
        obd_saliency(W, W)
    with pytest.raises(ValueError, match="fisher must be >= 0"):
        obd_saliency(W, W, fisher=-torch.ones_like(W))
    with pytest.raises(ValueError, match="NaN|finite"):
        ap3_fn(W, W * float("nan"), X)
