"""Helpers the theory and latent-spaces chapters call: latent_pair and pattern_values."""

import pytest
import torch

from latentkit.latent import fit_laplace_linear, fold_bias, latent_pair, latent_space
from latentkit.patterns import ap2, ap3, pattern_values


def _layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 5, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    return w, w * (w.abs() > 0.5), b


def test_latent_pair_is_two_latent_spaces():
    w, wp, _ = _layer()
    p, q = latent_pair(w, wp, scale=2.0)
    assert torch.equal(p.loc, latent_space(w, scale=2.0).loc)
    assert torch.equal(q.loc, latent_space(wp, scale=2.0).loc)


def test_latent_pair_folds_the_bias_into_both():
    w, wp, b = _layer()
    p, q = latent_pair(w, wp, bias=b, scale=1.0)
    assert p.loc.numel() == 18 and q.loc.numel() == 18
    assert torch.equal(p.loc[5::6], b) and torch.equal(q.loc[5::6], b)


def test_pattern_values_against_direct_calls():
    w, wp, b = _layer(1)
    x = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fit = fit_laplace_linear(x, x @ w.T + b, bias=True, damping=1e-3)
    specs = {
        "AP2": None,
        "AP2 chunks": {"measure": "ap2", "projection": "chunk_means", "num_chunks": 4},
        "iso": {"scale": 0.5},
        "laplace": {"covariance": "kronecker", "fit": fit, "fold_bias": True},
    }
    got = pattern_values(w, wp, specs, bias=b)
    assert list(got) == list(specs)
    d2 = float(((w - wp) ** 2).sum())  # independent: the squared Frobenius distance
    assert got["AP2"] == pytest.approx(d2, rel=1e-12)
    assert got["iso"] == pytest.approx(d2 / (2 * 0.25), rel=1e-12)
    assert got["AP2 chunks"] == ap2(w, wp, projection="chunk_means", num_chunks=4)
    want = ap3(fold_bias(w, b), fold_bias(wp, b), covariance="kronecker", fit=fit)
    assert got["laplace"] == pytest.approx(want, rel=1e-12)
    # the Laplace AP3 is 1/2 tr(G D A D^T) with the damped factors (bias column of D is 0)
    D = fold_bias(wp - w, torch.zeros(3, dtype=torch.float64))
    quad = 0.5 * torch.trace(fit.G_damped @ D @ fit.A_damped @ D.T)
    assert got["laplace"] == pytest.approx(float(quad), rel=1e-8)


def test_pattern_values_errors():
    w, wp, _ = _layer()
    with pytest.raises(ValueError, match="bias"):
        pattern_values(w, wp, {"x": {"fold_bias": True, "scale": 1.0}})
    with pytest.raises(TypeError, match="spec 'x'"):
        pattern_values(w, wp, {"x": 3})
    with pytest.raises(ValueError):
        pattern_values(w, wp, {"x": {"measure": "ap4"}})
