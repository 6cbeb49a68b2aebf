"""latentkit.pruning under hostile input and at the extremes (issue 12): tied weights, NaN/inf weights,
non-PSD second moments, wrong argument types, float16; the seeds' algorithms completed (output-aware
spectral pruning, the l_q bound check)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from latentkit import pruning as P
from latentkit.modules import effective_weight

torch.set_num_threads(1)


# ---------------------------------------------------------------- tied weights
class Tied(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.enc = nn.Linear(6, 6)
        self.mid = nn.Linear(6, 6)
        self.dec = nn.Linear(6, 6)
        self.dec.weight = self.enc.weight  # tied

    def forward(self, x):
        return self.dec(torch.relu(self.mid(torch.relu(self.enc(x)))))


def _zeros(model):
    rep = P.sparsity_report(model)
    return dict(zip(rep["layer"], rep["zeros"]))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_tied_weights_get_one_mask_and_keep_their_count_after_100_steps(scope):
    m = Tied()
    res = P.prune(m, "random", 0.5, layers="all", scope=scope, seed=0)
    assert m.enc.weight_mask is m.dec.weight_mask
    assert m.enc.weight_orig is m.dec.weight_orig
    assert set(res.masks) == {"enc", "mid", "dec"}
    if scope == "layer":
        assert int((m.enc.weight_mask == 0).sum()) == 18  # the shared tensor pruned once, at 50 %
    before = _zeros(m)
    opt = P.MaskedOptimizer(torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1), model=m)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        x = torch.randn(16, 6, generator=g)
        opt.zero_grad()
        ((m(x) - x) ** 2).mean().backward()
        opt.step()
    assert _zeros(m) == before
    for name in ("enc", "dec"):
        w = effective_weight(getattr(m, name))
        assert int((w == 0).sum()) == before[name]  # the report counts what the optimiser kept
    assert torch.equal(effective_weight(m.enc), effective_weight(m.dec))
    kept = m.enc.weight_mask != 0
    assert bool((m.enc.weight_orig[kept] != 0).all())  # no kept weight was zeroed


def test_tied_weight_pruned_through_one_of_its_modules_and_recomposed():
    m = Tied()
    P.prune(m, "lowest", 0.25, layers=["dec"])
    assert m.enc.weight_mask is m.dec.weight_mask  # the tensor is pruned wherever it is used
    P.prune(m, "lowest", 0.5, layers=["enc"])  # compose: 9 pruned, then half of the 27 left
    assert m.enc.weight_mask is m.dec.weight_mask
    assert int((m.dec.weight_mask == 0).sum()) == 9 + round(0.5 * 27)
    P.prune(m, "random", 0.5, layers="all", existing="replace", seed=1)
    assert m.enc.weight_mask is m.dec.weight_mask
    assert int((m.dec.weight_mask == 0).sum()) == 18


def test_tied_weights_refused_by_spectral_pruning():
    m = Tied()
    with pytest.raises(ValueError, match="share one weight tensor"):
        P.prune(m, "spectral", 2, layers=["enc"], inputs=torch.randn(8, 6), next_layer="mid")


# ---------------------------------------------------------------- non-finite weights, non-PSD moments
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("method", ["lowest", "highest", "random", "structured", "lq_adaptive"])
def test_non_finite_weights_are_refused_naming_the_layer(bad, method):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        m[2].weight[1, 2] = bad
    with pytest.raises(ValueError, match=r"layer '2' \(Linear\) has NaN or infinite weights"):
        P.prune(m, method, 0.5, layers="all", seed=0)
    assert P.pruning_mask(m[0]) is None  # refused before anything was pruned


def test_degrees_of_freedom_refuses_a_matrix_that_is_not_psd():
    with pytest.raises(ValueError, match="positive semi-definite"):
        P.degrees_of_freedom(-torch.eye(3), 1.0)
    S = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)  # eigenvalues 3 and -1
    with pytest.raises(ValueError, match="smallest eigenvalue is -1"):
        P.degrees_of_freedom(S, 1.0)
    # a PSD matrix with round-off negative eigenvalues is still accepted
    x = torch.randn(3, 6, dtype=torch.float64)
    S = x.T @ x  # rank 3 of 6
    assert P.degrees_of_freedom(S, 1.0) == pytest.approx(
        float(np.sum([m / (m + 1.0) for m in np.clip(np.linalg.eigvalsh(S.numpy()), 0, None)])), rel=1e-9
    )


# ---------------------------------------------------------------- wrong types at the boundary
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="lowest", amount="0.5"), "amount must be a fraction"),
        (dict(method="lowest", amount=True), "amount must be a fraction"),
        (dict(method="lowest", amount=0.5, seed="1"), "seed must be an integer"),
        (dict(method="random", amount=0.5, seed=True), "seed must be an integer"),
        (dict(method="random", amount=0.5, seed=1.5), "seed must be an integer"),
        (dict(method="structured", amount=0.5, norm=True), "structured norm must be the number 1 or 2"),
        (dict(method="structured", amount=0.5, norm="2"), "structured norm must be the number 1 or 2"),
        (dict(method="structured", amount=0.5, dim="0"), "dim must be an integer"),
        (dict(method="lq_adaptive", amount=0.5, q="0.5"), "q must be a real number"),
        (dict(method="spectral", amount=1, layers=["0"], inputs=torch.randn(4, 4), lam="0.1"), "lam must be"),
        (
            dict(method="spectral", amount=1, layers=["0"], inputs=torch.randn(4, 4), theta=True),
            "theta must be",
        ),
        (
            dict(method="spectral", amount=1, layers=["0"], inputs=torch.randn(4, 4), theta="1"),
            "theta must be",
        ),
        (dict(method=3, amount=0.5), "method must be a string"),
        (dict(method="lowest", amount=0.5, scope=None), "scope must be a string"),
    ],
)
def test_wrong_types_raise_type_errors_naming_the_argument(kwargs, match):
    m = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(TypeError, match=match):
        P.prune(m, **kwargs)


def test_negative_theta_is_a_value_error():
    m = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(ValueError, match="theta must be a finite number >= 0"):
        P.prune(m, "spectral", 1, layers=["0"], inputs=torch.randn(4, 4), theta=-1.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["lowest", "highest", "structured", "lq_adaptive"])
def test_half_precision_weights_prune_like_float32(dtype, method):
    torch.manual_seed(0)
    half = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4)).to(dtype)
    single = copy.deepcopy(half).float()  # the same values, exactly representable in float32
    a = P.prune(half, method, 0.5, layers="all")
    b = P.prune(single, method, 0.5, layers="all")
    for n in a.masks:
        assert torch.equal(a.masks[n].bool(), b.masks[n].bool())
        assert a.masks[n].dtype == dtype


# ---------------------------------------------------------------- spectral: output-aware criterion
def _spectral_net(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 5))
    with torch.no_grad():
        m[2].weight.mul_(torch.logspace(-1.5, 1, 24))  # nodes matter unequally for the output
    return m, torch.randn(400, 8)


def test_spectral_theta_zero_reproduces_the_input_aware_result_exactly():
    m, x = _spectral_net(0)
    a, b = copy.deepcopy(m), copy.deepcopy(m)
    ra = P.prune(a, "spectral", 12, layers=["0"], inputs=x)
    rb = P.prune(b, "spectral", 12, layers=["0"], inputs=x, theta=0.0)
    assert ra.info["spectral"]["0"]["selected"] == rb.info["spectral"]["0"]["selected"]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spectral_theta_lowers_the_output_error_at_equal_size(seed):
    m, x = _spectral_net(seed)
    with torch.no_grad():
        y = m(x)
    err = {}
    for theta in (0.0, 10.0):
        mm = copy.deepcopy(m)
        res = P.prune(mm, "spectral", 12, layers=["0"], inputs=x, theta=theta)
        assert len(res.info["spectral"]["0"]["selected"]) == 12  # equal size
        with torch.no_grad():
            err[theta] = float(((mm(x) - y) ** 2).mean())
    assert err[10.0] < err[0.0]


def test_output_aware_metric_and_greedy_against_brute_force():
    torch.manual_seed(0)
    X = torch.randn(50, 6, dtype=torch.float64)
    S = X.T @ X / 50
    W = torch.randn(3, 6, dtype=torch.float64)
    M = P.output_aware_metric(W, 2.0)
    assert torch.allclose(M, torch.eye(6, dtype=torch.float64) + 2.0 * W.T @ W)
    sel = P.greedy_spectral_selection(S, 4, 0.1, metric=M)
    for i, err in enumerate(sel.errors):  # the greedy's errors are tr[M R(J)] of its prefixes
        assert err == pytest.approx(
            P.ridge_reconstruction_error(S, sel.selected[:i], 0.1, metric=M), rel=1e-9
        )
    # the first pick is the best single node under the metric (exhaustive)
    best = min(range(6), key=lambda j: P.ridge_reconstruction_error(S, [j], 0.1, metric=M))
    assert sel.selected[0] == best
    assert (
        P.greedy_spectral_selection(S, 4, 0.1).selected
        == P.greedy_spectral_selection(S, 4, 0.1, metric=torch.eye(6, dtype=torch.float64)).selected
    )


# ---------------------------------------------------------------- l_q adaptive: the bound behind the rule
def _trained_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    w_true = torch.randn(20, 10, generator=g) * (torch.rand(20, 10, generator=g) < 0.2)
    for _ in range(150):
        x = torch.randn(64, 20, generator=g)
        opt.zero_grad()
        ((model(x) - x @ w_true) ** 2).mean().backward()
        opt.step()
    return model


@pytest.mark.parametrize("kind", ["random", "trained"])
@pytest.mark.parametrize("q", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("amount", [0.3, 0.6, 0.9])
def test_lq_adaptive_respects_the_bound_that_motivated_it(kind, q, amount):
    if kind == "random":
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(40, 16))
    else:
        model = _trained_layer()
    name = P.last_layer(model)[0] if kind == "trained" else "0"
    res = P.prune(model, "lq_adaptive", amount, layers=[name], q=q)
    layer = model.get_submodule(name)
    eps = res.info["epsilon"][name]
    check = P.lq_bound_check(layer.weight_orig, layer.weight_mask, q, epsilon=eps, keep_fraction=1 - amount)
    assert check and check.holds and check.relation == "<="
    assert bool((check.lhs <= check.rhs * (1 + 1e-9)).all())
    assert check.details["worst_budget_ratio"] <= 1 + 1e-9
    # independent computation of both sides
    w = layer.weight_orig.detach().double()
    keep = layer.weight_mask != 0
    err = torch.sqrt((w * w * ~keep).sum(1))
    s = keep.sum(1).double()
    lq = (w.abs() ** q).sum(1) ** (1 / q)
    assert torch.allclose(check.lhs, err, rtol=1e-12)
    assert torch.allclose(check.rhs[s > 0], (s ** (0.5 - 1 / q) * lq)[s > 0], rtol=1e-12)


def test_lq_bound_check_detects_a_mask_over_budget_and_validates():
    torch.manual_seed(0)
    w = torch.randn(5, 30)
    mask = P.lq_adaptive_mask(w, 0.5, q=0.5)
    assert P.lq_bound_check(w, mask, 0.5, epsilon=0.5)
    too_sparse = torch.zeros_like(w)
    too_sparse[:, 0] = 1
    check = P.lq_bound_check(w, too_sparse, 0.5, epsilon=0.5)
    assert not check and check.details["worst_budget_ratio"] > 1
    assert "FAILS" in str(check)
    with pytest.raises(ValueError, match="mask shape"):
        P.lq_bound_check(w, mask[:, :3], 0.5)
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        P.lq_bound_check(w, mask.numpy(), 0.5)
    with pytest.raises(ValueError, match="q must lie in"):
        P.lq_bound_check(w, mask, 1.5)


# ---------------------------------------------------------------- the other public functions
@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: P.best_s_term_error(torch.randn(3, 4), dim="0"), TypeError, "dim must be 0 or None"),
        (lambda: P.lq_index(torch.randn(3, 4), True), TypeError, "q must be a real number"),
        (
            lambda: P.lq_tail_scores(torch.randn(3, 4), keep_fraction="0.5"),
            TypeError,
            "keep_fraction must be",
        ),
        (
            lambda: P.lq_tail_scores(torch.randn(3, 4), keep_fraction=2.0),
            ValueError,
            "keep_fraction must lie",
        ),
        (lambda: P.lq_tail_scores(torch.randn(3, 4), q=True), TypeError, "q must be a real number"),
        (
            lambda: P.lq_tail_scores(torch.randn(3, 4), candidates=torch.ones(4)),
            ValueError,
            "candidates shape",
        ),
        (lambda: P.reconstruction_matrix(torch.eye(3), [5], 1.0), ValueError, "node index must be <= 2"),
        (
            lambda: P.ridge_reconstruction_error(torch.eye(3), ["a"], 1.0),
            TypeError,
            "node index must be an integer",
        ),
        (lambda: P.ridge_reconstruction_error(torch.eye(3), [1, 1], 1.0), ValueError, "repeated"),
        (lambda: P.ridge_reconstruction_error(torch.eye(3), 1, 1.0), TypeError, "J must be a sequence"),
        (lambda: P.freeze_all_but(nn.Linear(2, 2), "weight"), TypeError, "params must be a list"),
        (lambda: P.freeze_all_but(nn.Linear(2, 2), 3), TypeError, "params must be a list"),
        (lambda: P.qian_klabjan_simulation(widths=4), TypeError, "widths must be a sequence"),
        (
            lambda: P.qian_klabjan_simulation(widths=(4,), dtype="float64"),
            TypeError,
            "dtype must be a floating",
        ),
        (
            lambda: P.qian_klabjan_simulation(widths=(4,), dtype=torch.int64),
            TypeError,
            "dtype must be a floating",
        ),
        (lambda: P.qian_klabjan_simulation(widths=(4,), mean="1"), TypeError, "mean must be a real number"),
        (
            lambda: P.qian_klabjan_simulation(widths=(4,), mean=float("nan")),
            ValueError,
            "mean must be finite",
        ),
        (
            lambda: P.input_second_moment("model", nn.Linear(2, 2), torch.ones(1, 2)),
            TypeError,
            "model must be",
        ),
        (lambda: P.unprune("fc"), TypeError, "module must be a torch.nn.Module"),
        (lambda: P.pruning_mask("fc"), TypeError, "module must be a torch.nn.Module"),
    ],
)
def test_public_functions_refuse_wrong_types_at_the_boundary(call, err, match):
    with pytest.raises(err, match=match):
        call()
