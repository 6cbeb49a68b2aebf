"""Tests of the AP3_fn theory checks (latentkit.theory.function): second-order expansion with the
exact Fisher, the K-FAC (Laplace) approximation and the margin/AP3_fn accuracy bound."""

import pytest
import torch

from latentkit.patterns import ap3_fn
from latentkit.theory import (
    check_ap3_fn_accuracy_bound,
    check_ap3_fn_expansion,
    check_kfac_ap3_fn,
    checks_table,
)


def layer(seed=0, n=300, d=6, c=4):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(c, d, generator=g, dtype=torch.float64)
    b = torch.randn(c, generator=g, dtype=torch.float64)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return W, b, X


def trained_layer(seed=1, n=400, d=8, c=3, steps=300):
    """A softmax layer fitted by gradient descent to a linearly generated labelling."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (X @ torch.randn(d, c, generator=g, dtype=torch.float64)).argmax(1)
    W = torch.zeros(c, d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([W, b], lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(X @ W.T + b, y).backward()
        opt.step()
    return W.detach(), b.detach(), X, y


def magnitude(W, s):
    k = int(s * W.numel())
    if k == 0:
        return W.clone()
    thr = W.abs().flatten().kthvalue(k).values
    return W * (W.abs() > thr)


@pytest.mark.parametrize("seed", [0, 3])
def test_expansion_ratio_tends_to_one_with_cubic_error(seed):
    W, b, X = layer(seed)
    c = check_ap3_fn_expansion(W, X, bias=b, seed=seed)
    assert c.holds and c.rhs == 1.0
    r = c.details["ratios"]
    assert abs(r[-1] - 1) < abs(r[0] - 1)
    assert 2.5 < c.details["error_order"] < 3.5


def test_expansion_on_a_trained_layer_along_the_pruning_direction():
    W, b, X, _ = trained_layer()
    D = torch.cat([magnitude(W, 0.5) - W, torch.zeros(3, 1, dtype=torch.float64)], 1)
    c = check_ap3_fn_expansion(W, X, direction=D, bias=b)
    assert c.holds, c.details
    with pytest.raises(ValueError, match="direction must have shape"):
        check_ap3_fn_expansion(W, X, direction=D[:, :-1], bias=b)


def test_kfac_equals_exact_fisher_iff_p_is_constant():
    W, b, X = layer(2)
    Wt = magnitude(W, 0.5)
    rows_equal = W[:1].repeat(4, 1)  # every class has the same logit: p = uniform for every x
    same = check_kfac_ap3_fn(rows_equal, Wt, X)
    assert same.holds and same.details["p_spread"] == 0.0
    assert same.details["latent_ap3"] == pytest.approx(same.rhs, rel=1e-6)  # damped latent ~ K-FAC
    differ = check_kfac_ap3_fn(W, Wt, X, bias=b)
    assert not differ.holds and differ.details["p_spread"] > 0.1
    assert differ.details["dropped_term"] == pytest.approx(differ.lhs - differ.rhs)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_accuracy_bound_holds_on_random_layers(seed, sparsity):
    W, b, X = layer(seed)
    labels = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(seed))
    c = check_ap3_fn_accuracy_bound(W, magnitude(W, sparsity), X, bias=b, labels=labels)
    assert c.holds and c.lhs <= c.details["pinsker_fraction"] <= c.rhs <= 1.0
    assert abs(c.details["accuracy_change"]) <= c.lhs + 1e-12
    assert c.details["ap3_fn"] == pytest.approx(ap3_fn(W, magnitude(W, sparsity), X, bias=b))


@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.8])
def test_accuracy_bound_holds_on_a_trained_layer(sparsity):
    W, b, X, y = trained_layer()
    c = check_ap3_fn_accuracy_bound(W, magnitude(W, sparsity), X, bias=b, labels=y)
    assert c.holds and c.details["accuracy_bound_holds"]
    assert c.rhs < 1.0 or sparsity == 0.8  # informative where the pruning is mild


def test_no_change_gives_zero_and_table():
    W, b, X = layer(5)
    c = check_ap3_fn_accuracy_bound(W, W.clone(), X, bias=b)
    assert c.lhs == 0.0 and c.details["ap3_fn"] == 0.0
    assert len(checks_table([c, check_ap3_fn_expansion(W, X)])) == 2


def test_validation():
    W, b, X = layer()
    with pytest.raises(ValueError, match="weight must be \\(C, in\\)"):
        check_ap3_fn_accuracy_bound(W, W, X[:, :2])
    with pytest.raises(ValueError, match="pruned_bias given without bias"):
        check_ap3_fn_accuracy_bound(W, W, X, pruned_bias=b)
    with pytest.raises(ValueError, match="labels must have 300"):
        check_ap3_fn_accuracy_bound(W, W, X, labels=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="rtol must be a positive"):
        check_kfac_ap3_fn(W, W, X, rtol=0.0)
