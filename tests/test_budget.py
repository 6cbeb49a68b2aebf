"""Tests of the label-free sparsity choice latentkit.pruning.sparsity_for_budget (issue 9 item 7)."""

import numpy as np
import pytest
import torch
from torch import nn

from latentkit.patterns import ap3_fn
from latentkit.pruning import prune, sparsity_for_budget


def test_exact_answer_ap2_grid_and_bisection():
    w = torch.arange(1.0, 11.0, dtype=torch.float64).reshape(1, 10)  # AP2(k lowest) = 1 + 4 + ... + k^2
    grid = [0.1, 0.2, 0.3, 0.4, 0.5]
    c = sparsity_for_budget(w, budget=14.5, measure="ap2", sparsities=grid)
    assert c.sparsity == pytest.approx(0.3) and c.divergence == pytest.approx(14.0)
    assert c.curve["divergence"].tolist() == pytest.approx([0, 1, 5, 14, 30, 55])
    b = sparsity_for_budget(w, budget=14.5, measure="ap2", sparsities="bisection")
    assert b.sparsity == pytest.approx(0.3) and b.divergence == pytest.approx(14.0)
    assert len(b.curve) <= 2 + int(np.ceil(np.log2(11)))
    assert sparsity_for_budget(w, budget=0.5, measure="ap2", sparsities=grid).sparsity == 0.0
    assert sparsity_for_budget(w, budget=1e9, measure="ap2", sparsities="bisection").sparsity == 1.0


def test_monotone_curve_for_magnitude_pruning_ap3_fn():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 20, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    X = torch.randn(200, 20, generator=g, dtype=torch.float64)
    c = sparsity_for_budget(W, budget=0.05, features=X, bias=b)
    d = c.curve["divergence"].to_numpy()
    assert (np.diff(d[:12]) >= -1e-12).all()  # magnitude pruning: AP3_fn grows with the sparsity (here)
    assert c.divergence <= 0.05
    nxt = c.curve[c.curve["sparsity"] > c.sparsity]
    assert nxt.empty or nxt["divergence"].iloc[0] > 0.05
    # the curve's value equals ap3_fn of the pruned weight at that sparsity
    lin = nn.Linear(20, 5).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    prune(lin, "lowest", c.sparsity)
    assert ap3_fn(W, lin.weight, X, bias=b) == pytest.approx(c.divergence, rel=1e-10)


def test_model_and_ap3():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(64, 6)
    before = [p.detach().clone() for p in model.parameters()]
    c = sparsity_for_budget(model, budget=0.02, features=x, sparsities=[0.2, 0.4, 0.6])
    assert 0.0 <= c.sparsity <= 0.6 and list(c.curve.columns) == ["sparsity", "divergence"]
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))  # untouched
    a = sparsity_for_budget(
        model, budget=1.0, measure="ap3", sparsities=[0.2, 0.4], ap3_kwargs={"scale": 1.0}
    )
    assert a.measure == "ap3" and a.curve["divergence"].is_monotonic_increasing


def test_validation():
    w = torch.ones(2, 3)
    with pytest.raises(ValueError, match="needs features"):
        sparsity_for_budget(w, budget=1.0)
    with pytest.raises(ValueError, match="budget must be a finite number >= 0"):
        sparsity_for_budget(w, budget=-1.0, measure="ap2")
    with pytest.raises(ValueError, match="unknown measure"):
        sparsity_for_budget(w, budget=1.0, measure="pd")
    with pytest.raises(ValueError, match="unknown sparsities"):
        sparsity_for_budget(w, budget=1.0, measure="ap2", sparsities="grid")
    with pytest.raises(ValueError, match="sparsities must lie in"):
        sparsity_for_budget(w, budget=1.0, measure="ap2", sparsities=[0.5, 1.0])
    with pytest.raises(TypeError, match="bias applies to a weight tensor only"):
        sparsity_for_budget(nn.Linear(3, 2), budget=1.0, measure="ap2", bias=torch.ones(2))
    with pytest.raises(ValueError, match="dense must be a \\(C, in\\) weight"):
        sparsity_for_budget(torch.ones(2, 3, 4), budget=1.0, measure="ap2")
