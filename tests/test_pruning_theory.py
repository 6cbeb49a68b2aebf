"""latentkit.pruning: masked fine-tuning, soft sparsity, spectral pruning, Qian-Klabjan simulation."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

from latentkit import pruning as P


def mlp(seed=0, sizes=(12, 16, 10, 6)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


OPTIMIZERS = {
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
    "sgd_wd": lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=0.5),
    "adam_wd": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    "adamw_amsgrad": lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
}


def _train(model, opt, steps=100):
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(16, 12, generator=g)
        y = torch.randn(16, 6, generator=g)
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()


# ---------------------------------------------------------------- fine-tuning


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_masked_optimizer_keeps_pruned_weights_zero(name):
    m = mlp()
    P.prune(m, "lowest", 0.5, layers="all")
    start = {n: mod.weight_orig.detach().clone() for n, mod in P.prunable_layers(m)}
    opt = P.MaskedOptimizer(OPTIMIZERS[name](m.parameters()), model=m)
    _train(m, opt)
    for n, mod in P.prunable_layers(m):
        pruned = mod.weight_mask == 0
        assert (mod.weight_orig[pruned] == 0).all()
        assert ((mod.weight_orig * mod.weight_mask)[pruned] == 0).all()
        assert not torch.equal(mod.weight_orig[~pruned], start[n][~pruned])  # it did train
        for v in opt.state[mod.weight_orig].values():
            if isinstance(v, torch.Tensor) and v.shape == pruned.shape:
                assert (v[pruned] == 0).all()
        torch_prune.remove(mod, "weight")
        assert (mod.weight[pruned] == 0).all()


@pytest.mark.parametrize("name", ["sgd_nesterov_wd", "adam_wd"])
def test_plain_parameter_masks_and_control(name):
    """Without latentkit the zeros come back (control); with MaskedOptimizer they do not."""
    torch.manual_seed(0)
    mask = (torch.rand(6, 10) > 0.5).float()
    for wrapped in (False, True):
        m = mlp()
        with torch.no_grad():
            m[-1].weight.mul_(mask)
        base = OPTIMIZERS[name](m.parameters())
        opt = P.MaskedOptimizer(base, {m[-1].weight: mask}) if wrapped else base
        _train(m, opt, steps=20)
        revived = bool((m[-1].weight[mask == 0] != 0).any())
        assert revived is (not wrapped)


def test_masked_optimizer_closure_and_errors():
    m = mlp()
    P.prune(m, "lowest", 0.5)
    opt = P.MaskedOptimizer(torch.optim.LBFGS(m.parameters(), lr=0.1), model=m)
    x, y = torch.randn(8, 12), torch.randn(8, 6)

    def closure():
        opt.zero_grad()
        loss = ((m(x) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    lin = P.last_layer(m)[1]
    assert (lin.weight_orig[lin.weight_mask == 0] == 0).all()
    assert opt.param_groups[0]["lr"] == 0.1
    opt.remove()
    with pytest.raises(ValueError, match="nothing to mask"):
        P.MaskedOptimizer(torch.optim.SGD(mlp().parameters(), lr=0.1), model=mlp())
    with pytest.raises(ValueError, match="give masks"):
        P.MaskedOptimizer(torch.optim.SGD(mlp().parameters(), lr=0.1))
    with pytest.raises(TypeError, match="Optimizer"):
        P.MaskedOptimizer("sgd", model=m)
    w = mlp()[0].weight
    with pytest.raises(ValueError, match="shape"):
        P.MaskedOptimizer(torch.optim.SGD([w], lr=0.1), {w: torch.ones(3)})


def test_freeze_all_but_only_last_layer_weights_move():
    m = mlp()
    name, lin = P.last_layer(m)
    P.prune(m, "lowest", 0.5)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    params = P.freeze_all_but(m, [name + ".weight"])
    assert params == [lin.weight_orig]
    opt = P.MaskedOptimizer(torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01), model=m)
    _train(m, opt, steps=10)
    for n, p in m.named_parameters():
        if n == name + ".weight_orig":
            assert not torch.equal(p, before[n])
        else:
            assert torch.equal(p, before[n]) and not p.requires_grad
    assert P.freeze_all_but(m, [m[0]]) == [m[0].weight, m[0].bias]
    with pytest.raises(ValueError, match="no parameter named"):
        P.freeze_all_but(m, ["zzz.weight"])
    with pytest.raises(TypeError, match="names, parameters or modules"):
        P.freeze_all_but(m, [3])
    with pytest.raises(ValueError, match="empty"):
        P.freeze_all_but(m, [])


# ---------------------------------------------------------------- soft sparsity


def _np_lq(a, q):
    return np.sum(np.abs(a) ** q) ** (1 / q)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 30), st.integers(0, 10_000), st.floats(0.2, 0.9))
def test_lq_and_pq_index_against_numpy(d, seed, q):
    rng = np.random.default_rng(seed)
    w = rng.standard_t(2, size=(5, d))
    t = torch.tensor(w)
    n_eff = (_np_lq(w.ravel(), q) / np.abs(w).sum()) ** (q / (1 - q))
    assert float(P.lq_index(t, q)) == pytest.approx(1 - n_eff / w.size, rel=1e-9, abs=1e-12)
    rows = P.lq_index(t, q, dim=0).numpy()
    for j in range(5):
        ne = (_np_lq(w[j], q) / np.abs(w[j]).sum()) ** (q / (1 - q))
        assert rows[j] == pytest.approx(1 - ne / d, rel=1e-9, abs=1e-12)
    pq = 1 - w.size ** (1 / 2 - 1) * np.abs(w).sum() / np.linalg.norm(w.ravel())
    assert float(P.pq_index(t)) == pytest.approx(pq, rel=1e-9, abs=1e-12)
    pr = P.pq_index(t, p=0.5, q=1.5, dim=0).numpy()
    for j in range(5):
        ref = 1 - d ** (1 / 1.5 - 2) * _np_lq(w[j], 0.5) / _np_lq(w[j], 1.5)
        assert pr[j] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert float(P.lq_norm(t, q)) == pytest.approx(_np_lq(w.ravel(), q), rel=1e-9)


def test_soft_sparsity_special_values_and_errors():
    flat = torch.ones(8)
    one = torch.zeros(8)
    one[3] = 2.0
    k3 = torch.tensor([0, 1.0, 0, -1, 0, 0, 1, 0])
    assert float(P.lq_index(flat)) == pytest.approx(0.0, abs=1e-12)
    assert float(P.lq_index(one)) == pytest.approx(1 - 1 / 8)
    assert float(P.lq_index(k3)) == pytest.approx(1 - 3 / 8)
    assert float(P.pq_index(flat)) == pytest.approx(0.0, abs=1e-12)
    assert float(P.pq_index(one)) == pytest.approx(1 - 8**-0.5)
    z = torch.zeros(2, 4)
    assert torch.equal(P.lq_index(z, dim=0), torch.ones(2, dtype=torch.float64))
    assert float(P.pq_index(z)) == 1.0
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        P.lq_index(flat, q=1.0)
    with pytest.raises(ValueError, match="p < q"):
        P.pq_index(flat, p=2, q=1)
    with pytest.raises(ValueError, match="NaN"):
        P.lq_index(torch.tensor([1.0, float("nan")]))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 25), st.integers(0, 10_000), st.floats(0.2, 0.95))
def test_best_s_term_error_and_lq_bound(d, seed, q):
    rng = np.random.default_rng(seed)
    w = rng.standard_cauchy(size=d)
    e = P.best_s_term_error(torch.tensor(w), dim=None).numpy()
    srt = np.sort(np.abs(w))[::-1]
    for s in range(d + 1):
        assert e[s] == pytest.approx(np.sqrt(np.sum(srt[s:] ** 2)), rel=1e-9, abs=1e-12)
        if s >= 1:  # Yang et al.: ||w - H_s(w)||_2 <= s^(1/2 - 1/q) ||w||_q
            assert e[s] <= s ** (0.5 - 1 / q) * _np_lq(w, q) * (1 + 1e-9)


def test_soft_sparsity_table():
    m = mlp()
    P.prune(m, "lowest", 0.8, layers="all")
    tab = P.soft_sparsity(m)
    assert list(tab["layer"]) == ["0", "2", "4"]
    w = (m[4].weight_orig * m[4].weight_mask).detach()
    assert tab["lq_index"].iloc[-1] == pytest.approx(float(P.lq_index(w)))


# ---------------------------------------------------------------- spectral


def _random_cov(F, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, F)) @ rng.normal(size=(F, F))
    return X.T @ X / 50


def test_degrees_of_freedom_against_numpy():
    S = _random_cov(7, 0)
    for lam in (1e-3, 0.5, 10.0):
        mu = np.linalg.eigvalsh(S)
        ref = np.trace(S @ np.linalg.inv(S + lam * np.eye(7)))
        assert P.degrees_of_freedom(torch.tensor(S), lam) == pytest.approx(ref, rel=1e-9)
        assert P.degrees_of_freedom(torch.tensor(S), lam) == pytest.approx(np.sum(mu / (mu + lam)), rel=1e-9)
    with pytest.raises(ValueError, match="symmetric"):
        P.degrees_of_freedom(torch.tensor(S + np.triu(np.ones((7, 7)), 1)), 1.0)
    with pytest.raises(ValueError, match="square"):
        P.degrees_of_freedom(torch.ones(2, 3), 1.0)
    with pytest.raises(ValueError, match="positive"):
        P.degrees_of_freedom(torch.tensor(S), 0.0)


def _np_err(S, J, lam):
    if not J:
        return np.trace(S)
    SFJ = S[:, J]
    return np.trace(S) - np.trace(SFJ @ np.linalg.solve(S[np.ix_(J, J)] + lam * np.eye(len(J)), SFJ.T))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_selection_matches_brute_force_greedy(seed):
    F, lam = 7, 0.3
    S = _random_cov(F, seed)
    sel = P.greedy_spectral_selection(torch.tensor(S), F, lam)
    J = []
    for step in range(F):
        cands = [j for j in range(F) if j not in J]
        errs = [_np_err(S, J + [j], lam) for j in cands]
        J.append(cands[int(np.argmin(errs))])
        assert sel.errors[step + 1] == pytest.approx(min(errs), rel=1e-8)
    assert sel.selected == J
    assert all(b <= a + 1e-10 for a, b in zip(sel.errors, sel.errors[1:]))  # monotone in |J|
    for m in range(1, F + 1):  # greedy is never better than the exhaustive optimum
        best = min(_np_err(S, list(c), lam) for c in itertools.combinations(range(F), m))
        assert best <= sel.errors[m] + 1e-9
        assert P.ridge_reconstruction_error(torch.tensor(S), sel.selected[:m], lam) == pytest.approx(
            sel.errors[m], rel=1e-8
        )


def test_spectral_prune_rewires_next_layer():
    m = mlp(3, sizes=(8, 24, 5))
    x = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    dense = copy.deepcopy(m)
    with torch.no_grad():
        h = torch.relu(m[0](x)).double()
    S = h.T @ h / h.shape[0]
    W2 = m[2].weight.detach().double().clone()
    res = P.prune(m, "spectral", 0.25, layers=["0"], inputs=x)
    info = res.info["spectral"]["0"]
    J = info["selected"]
    assert len(J) == 18 and info["next_layer"] == "2"
    lam = info["lam"]
    A = S[:, J] @ torch.linalg.inv(S[J][:, J] + lam * torch.eye(18, dtype=torch.float64))
    assert torch.allclose(info["reconstruction"], A, atol=1e-8)
    assert torch.allclose(m[2].weight_orig.detach()[:, J].double(), W2 @ A, atol=1e-5)
    rows_kept = (res.masks["0"].sum(1) > 0).nonzero().flatten().tolist()
    assert sorted(rows_kept) == sorted(J)
    assert info["degrees_of_freedom"] == pytest.approx(P.degrees_of_freedom(S, lam))
    assert list(res.report["layer"]) == ["0", "2", "(total)"]
    # the rewired net is closer to the dense one than plain node removal without rewiring
    with torch.no_grad():
        naive = copy.deepcopy(dense)
        drop = [j for j in range(24) if j not in J]
        naive[2].weight[:, drop] = 0
        e_rew = (m(x) - dense(x)).pow(2).mean()
        e_naive = (naive(x) - dense(x)).pow(2).mean()
    assert e_rew < e_naive


def test_spectral_conv_and_errors():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    x = torch.randn(4, 3, 6, 6)
    res = P.prune(m, "spectral", 3, layers=["0"], inputs=x)
    assert len(res.info["spectral"]["0"]["selected"]) == 5
    assert int((res.masks["2"].sum((0, 2, 3)) == 0).sum()) == 3
    with pytest.raises(ValueError, match="already pruned"):
        P.prune(m, "spectral", 1, layers=["0"], inputs=x)
    with pytest.raises(ValueError, match="example inputs"):
        P.prune(mlp(), "spectral", 0.5, layers=["0"])
    with pytest.raises(ValueError, match="following"):
        P.prune(mlp(), "spectral", 0.5, inputs=torch.randn(4, 12))
    with pytest.raises(ValueError, match="scope='layer'"):
        P.prune(mlp(), "spectral", 0.5, layers=["0"], scope="global", inputs=torch.randn(4, 12))


# ---------------------------------------------------------------- Qian-Klabjan simulation


def test_qian_klabjan_scaling():
    df = P.qian_klabjan_simulation(
        widths=(16, 1024),
        prune_fractions=(0.5,),
        thresholds=(0.25, 1.0),
        trials=8,
        n_inputs=64,
        ascent_steps=3,
        seed=0,
    )
    assert set(df.columns) >= {
        "method",
        "width",
        "parameter",
        "sparsity",
        "trial",
        "gap",
        "output_sup",
        "relative_gap",
    }
    g = df.groupby(["method", "width", "parameter"])["gap"].mean()
    assert g["random", 1024, 0.5] < 0.5 * g["random", 16, 0.5]  # shrinks with width (~ n^-1/2)
    assert g["magnitude", 1024, 1.0] > g["magnitude", 1024, 0.25]  # grows with threshold
    sp = df[(df.method == "random") & (df.width == 1024)]["sparsity"]
    assert abs(sp.mean() - 0.5) < 0.05
    again = P.qian_klabjan_simulation(
        widths=(16,),
        prune_fractions=(0.5,),
        thresholds=(),
        methods=("random",),
        trials=8,
        n_inputs=64,
        ascent_steps=3,
        seed=0,
    )
    assert np.allclose(again["gap"], df[(df.method == "random") & (df.width == 16)]["gap"])
    with pytest.raises(ValueError, match="unknown method"):
        P.qian_klabjan_simulation(methods=("lowest",))
    with pytest.raises(ValueError, match="prune fraction"):
        P.qian_klabjan_simulation(prune_fractions=(1.0,))
