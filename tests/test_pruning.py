"""Tests of latentkit.pruning: exact counts, ties, methods, torch.nn.utils.prune compatibility,
composition, errors. Independent references: numpy lexsort / brute force."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune

from latentkit import pruning as P
from latentkit.pruning import _select

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def mlp(seed=0, sizes=(12, 16, 10, 6), dtype=torch.float32):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(dtype)


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 4),
    )


def np_k_smallest(scores_list, k, cands=None):
    """Reference: the k smallest (score, global position) pairs, as boolean arrays."""
    flat = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in scores_list])
    pos = np.arange(flat.size)
    if cands is not None:
        c = np.concatenate([np.asarray(x).ravel() != 0 for x in cands])
        flat = np.where(c, flat, np.inf)
    order = np.lexsort((pos, flat))
    sel = np.zeros(flat.size, bool)
    sel[order[:k]] = True
    out, i = [], 0
    for s in scores_list:
        n = np.asarray(s).size
        out.append(sel[i : i + n].reshape(np.asarray(s).shape))
        i += n
    return out


# ---------------------------------------------------------------- selection engine


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=4),
    st.integers(0, 10_000),
    st.booleans(),
    st.sampled_from([torch.float32, torch.float64]),
    st.integers(1, 7),
)
def test_select_smallest_matches_lexsort(sizes, seed, ties, dtype, chunk):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 4, n).astype(float) if ties else np.abs(rng.normal(size=n)) for n in sizes]
    total = sum(sizes)
    k = int(rng.integers(0, total + 1))
    srcs = [_select.tensor_source(torch.tensor(a, dtype=dtype)) for a in arrays]
    got = _select.select_smallest(srcs, k, chunk=chunk)
    ref = np_k_smallest([np.asarray(torch.tensor(a, dtype=dtype)) for a in arrays], k)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g.numpy(), r)


def test_select_with_candidates_and_chunks():
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(size=1000))
    cand = rng.random(1000) < 0.6
    k = 250
    got = _select.select_smallest([_select.tensor_source(torch.tensor(a), torch.tensor(cand))], k, chunk=64)[
        0
    ]
    ref = np_k_smallest([a], k, [cand])[0]
    np.testing.assert_array_equal(got.numpy(), ref)
    assert not (got.numpy() & ~cand).any()


# ---------------------------------------------------------------- magnitude methods


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 1.0, 7, 0])
def test_lowest_exact_count_and_matches_torch(amount):
    m = mlp()
    ref = copy.deepcopy(m)
    res = P.prune(m, "lowest", amount, layers="all")
    for (name, mod), (_, rmod) in zip(P.prunable_layers(m), P.prunable_layers(ref)):
        n = mod.weight.numel()
        k = amount if isinstance(amount, int) else round(amount * n)
        assert int((res.masks[name] == 0).sum()) == k
        torch_prune.l1_unstructured(rmod, "weight", amount=amount)
        assert torch.equal(mod.weight_mask, rmod.weight_mask)  # continuous weights: no ties
    rep = res.report
    assert list(rep.columns) == ["layer", "shape", "parameters", "zeros", "sparsity"]
    assert rep["zeros"].iloc[-1] == sum(int((v == 0).sum()) for v in res.masks.values())


def test_ties_are_deterministic_lower_index_first():
    def model():
        lin = nn.Linear(4, 3, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[1.0, -1, 2, 1], [1, 3, -1, 2], [2, 1, 1, 3]]))
        return nn.Sequential(lin)

    res = P.prune(model(), "lowest", 3)
    # six entries with |w| = 1 at flat positions 0,1,3,4,6,9,10: the first three are pruned
    assert torch.equal(torch.nonzero(res.masks["0"].flatten() == 0).flatten(), torch.tensor([0, 1, 3]))
    res2 = P.prune(model(), "highest", 2)
    # largest |w| = 3 at positions 5 and 11 -> both pruned
    assert torch.equal(torch.nonzero(res2.masks["0"].flatten() == 0).flatten(), torch.tensor([5, 11]))
    res3 = P.prune(model(), "highest", 4)
    # next: |w| = 2 at 2, 7, 8 -> the highest-ranked under (score, position) are 7 and 8
    assert torch.equal(torch.nonzero(res3.masks["0"].flatten() == 0).flatten(), torch.tensor([5, 7, 8, 11]))


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("method", ["lowest", "highest"])
def test_scope_against_numpy(scope, method):
    m = mlp(1)
    ws = [mod.weight.detach().numpy().copy() for _, mod in P.prunable_layers(m)]
    amount = 0.4
    res = P.prune(m, method, amount, layers="all", scope=scope)
    sign = 1 if method == "lowest" else -1
    groups = [[i] for i in range(len(ws))] if scope == "layer" else [list(range(len(ws)))]
    for g in groups:
        scores = [np.abs(ws[i]) for i in g]
        n = sum(s.size for s in scores)
        k = round(amount * n)
        if method == "lowest":
            pruned = np_k_smallest(scores, k)
        else:  # k largest under (score, position) = complement of the n - k smallest
            pruned = [~s for s in np_k_smallest(scores, n - k)]
        for i, p in zip(g, pruned):
            name = P.prunable_layers(m)[i][0]
            np.testing.assert_array_equal(res.masks[name].numpy() == 0, p)
    assert sign in (1, -1)


def test_highest_vs_highest_reference():
    a, b = mlp(2), mlp(2)
    w0 = P.last_layer(a)[1].weight.detach().clone()
    ra = P.prune(a, "highest", 0.3)
    rb = P.prune(b, "highest_reference", 0.3)
    name, la = P.last_layer(a)
    lb = P.last_layer(b)[1]
    assert torch.equal(ra.masks[name], rb.masks[name])
    keep = ra.masks[name].bool()
    # correct: survivors untouched, pruned ones are the largest magnitudes
    assert torch.equal(la.weight[keep], w0[keep])
    assert w0.abs()[~keep].min() >= w0.abs()[keep].max()
    # reference: survivors replaced by |w| - max|w| (all <= 0)
    expect = w0.abs() - w0.abs().max()
    assert torch.allclose(lb.weight[keep], expect[keep])
    assert (lb.weight[keep] <= 0).all()
    assert (lb.weight[~keep] == 0).all()


def test_random_seeded_and_exact():
    m1, m2, m3 = mlp(), mlp(), mlp()
    r1 = P.prune(m1, "random", 0.5, layers="all", seed=5)
    r2 = P.prune(m2, "random", 0.5, layers="all", seed=5)
    r3 = P.prune(m3, "random", 0.5, layers="all", seed=6)
    for k in r1.masks:
        assert torch.equal(r1.masks[k], r2.masks[k])
        assert int((r1.masks[k] == 0).sum()) == round(0.5 * r1.masks[k].numel())
    assert any(not torch.equal(r1.masks[k], r3.masks[k]) for k in r1.masks)
    # seed=None: reproducible under torch.manual_seed
    torch.manual_seed(11)
    ra = P.prune(mlp(), "random", 0.5)
    torch.manual_seed(11)
    rb = P.prune(mlp(), "random", 0.5)
    assert all(torch.equal(ra.masks[k], rb.masks[k]) for k in ra.masks)


# ---------------------------------------------------------------- structured, lq, composition


@pytest.mark.parametrize("norm", [1, 2])
def test_structured_rows_and_channels(norm):
    m = cnn()
    res = P.prune(m, "structured", 0.5, layers="all", norm=norm)
    for name, mod in P.prunable_layers(m):
        w = mod.weight_orig.detach()
        rows = w.reshape(w.shape[0], -1)
        score = rows.abs().sum(1) if norm == 1 else rows.norm(dim=1)
        k = round(0.5 * w.shape[0])
        pruned_rows = set(np.argsort(score.numpy(), kind="stable")[:k].tolist())
        mask_rows = res.masks[name].reshape(w.shape[0], -1)
        got = {i for i in range(w.shape[0]) if (mask_rows[i] == 0).all()}
        assert got == pruned_rows
        assert all((mask_rows[i] == 1).all() for i in range(w.shape[0]) if i not in got)
    assert res.info["rows_pruned"]["0"] == 4


def test_structured_errors():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    with pytest.raises(ValueError, match="at least"):
        P.prune(m, "structured", 0.5, layers=["1"])
    with pytest.raises(ValueError, match="at least"):
        P.prune(nn.Sequential(nn.Linear(4, 4)), "structured", 0.5, dim=2)
    with pytest.raises(ValueError, match="norm"):
        P.prune(nn.Sequential(nn.Linear(4, 4)), "structured", 0.5, norm=3)


def test_lq_adaptive_exact_and_rule():
    m = mlp(4, sizes=(30, 20, 8))
    w = P.last_layer(m)[1].weight.detach().clone()
    res = P.prune(m, "lq_adaptive", 0.6, q=0.5)
    name = P.last_layer(m)[0]
    mask = res.masks[name]
    assert int((mask == 0).sum()) == round(0.6 * w.numel())
    eps = res.info["epsilon"][name]
    # the same mask from the explicit rule with the achieved epsilon: per row, the fewest largest weights
    # meeting ||w - H_s(w)|| <= eps * s0^(1/2-1/q) ||w||_q (brute force in numpy)
    wn = w.double().numpy()
    d = wn.shape[1]
    s0 = max(1, round(0.4 * d))
    for j in range(wn.shape[0]):
        a = np.abs(wn[j])
        lq = (np.sum(a**0.5)) ** 2
        budget = eps * s0 ** (0.5 - 2.0) * lq
        srt = np.sort(a)[::-1]
        errs = [np.sqrt(np.sum(srt[s:] ** 2)) for s in range(d + 1)]
        s_j = min(s for s in range(d + 1) if errs[s] <= budget * (1 + 1e-12))
        assert int(mask[j].sum()) == s_j
        kept = np.sort(a[mask[j].numpy() == 1])
        assert kept.size == 0 or kept.min() >= np.sort(a)[::-1][:s_j].min()
    explicit = P.lq_adaptive_mask(w, eps * (1 + 1e-12), q=0.5, keep_fraction=0.4)
    assert torch.equal(explicit.bool(), mask.bool())


def test_composition_with_torch_pruning():
    m = mlp()
    name, lin = P.last_layer(m)
    torch_prune.random_unstructured(lin, "weight", amount=0.5)
    before = lin.weight_mask.clone()
    res = P.prune(m, "lowest", 0.5)
    after = res.masks[name]
    assert ((after == 1) <= (before == 1)).all()  # pruned stays pruned
    n_alive = int(before.sum())
    assert int(after.sum()) == n_alive - round(0.5 * n_alive)
    # the newly pruned ones are the smallest |w| among the survivors
    w = lin.weight_orig.detach().abs()
    newly = (before == 1) & (after == 0)
    assert w[newly].max() <= w[after == 1].min()
    with pytest.raises(ValueError, match="already pruned"):
        P.prune(m, "lowest", 0.1, existing="error")
    res2 = P.prune(m, "lowest", 0.25, existing="replace")
    assert int((res2.masks[name] == 0).sum()) == round(0.25 * lin.weight.numel())
    with pytest.raises(ValueError, match="larger than"):
        P.prune(m, "lowest", 10_000)


def test_prune_remove_keeps_dense_tensor():
    m = mlp()
    P.prune(m, "lowest", 0.5, layers="all")
    x = torch.randn(5, 12)
    y = m(x)
    dense = {n: mod.weight.detach().clone() for n, mod in P.prunable_layers(m)}
    for n, mod in P.prunable_layers(m):
        torch_prune.remove(mod, "weight")
        assert torch.equal(mod.weight, dense[n])
        assert "weight_orig" not in dict(mod.named_parameters()) and not hasattr(mod, "weight_mask")
    assert torch.equal(m(x), y)


def test_errors():
    m = mlp()
    with pytest.raises(ValueError, match="amount"):
        P.prune(m, "lowest", 1.5)
    with pytest.raises(ValueError, match="amount"):
        P.prune(m, "lowest", -0.1)
    with pytest.raises(ValueError, match="amount"):
        P.prune(m, "lowest", -3)
    with pytest.raises(TypeError, match="amount"):
        P.prune(m, "lowest", True)
    with pytest.raises(ValueError, match="unknown method"):
        P.prune(m, "smallest", 0.5)
    with pytest.raises(ValueError, match="no prunable layer"):
        P.prune(m, "lowest", 0.5, layers=lambda n, mod: False)
    with pytest.raises(ValueError, match="no module named"):
        P.prune(m, "lowest", 0.5, layers=["nope"])
    with pytest.raises(ValueError, match="no weight"):
        P.prune(m, "lowest", 0.5, layers=["1"])
    with pytest.raises(ValueError, match="no nn.Linear"):
        P.last_layer(nn.Sequential(nn.Conv2d(1, 1, 1)))
    with pytest.raises(TypeError, match="unexpected option"):
        P.prune(m, "lowest", 0.5, q=0.5)
    with pytest.raises(ValueError, match="unknown scope"):
        P.prune(m, "lowest", 0.5, scope="model")
    with pytest.raises(TypeError, match="nn.Module"):
        P.prune(torch.zeros(3), "lowest", 0.5)
    pm = mlp()
    torch.nn.utils.parametrize.register_parametrization(pm[-1], "weight", nn.Identity())
    with pytest.raises(ValueError, match="parametriz"):
        P.prune(pm, "lowest", 0.5)
    bad = mlp()
    torch_prune.l1_unstructured(bad[-1], "weight", 0.5)
    bad[-1].weight_mask.mul_(0.5)
    with pytest.raises(ValueError, match="not binary"):
        P.prune(bad, "lowest", 0.1)


def test_layer_specs():
    m = cnn()
    assert [n for n, _ in P.select_layers(m, "all")] == ["0", "2", "6"]
    assert [n for n, _ in P.select_layers(m, "last")] == ["6"]
    assert [n for n, _ in P.select_layers(m, ["6", "0"])] == ["0", "6"]
    assert [n for n, _ in P.select_layers(m, lambda n, mod: isinstance(mod, nn.Conv2d))] == ["0", "2"]


def test_float64_and_half_weights():
    m = mlp(dtype=torch.float64)
    r = P.prune(m, "lowest", 0.5, layers="all", scope="global")
    assert abs(r.sparsity - 0.5) < 1e-2
    h = mlp().half()
    r = P.prune(h, "lowest", 0.5)
    assert int((r.masks["4"] == 0).sum()) == 30


@CUDA
@pytest.mark.parametrize("method", ["lowest", "highest", "random", "structured", "lq_adaptive"])
def test_cuda_matches_cpu(method):
    a = mlp()
    b = copy.deepcopy(a).cuda()
    ra = P.prune(a, method, 0.5, layers="all", seed=0)
    rb = P.prune(b, method, 0.5, layers="all", seed=0)
    for k in ra.masks:
        assert rb.masks[k].device.type == "cuda"
        assert int((rb.masks[k] == 0).sum()) == int((ra.masks[k] == 0).sum())
        if method != "random":  # generators differ between devices
            assert torch.equal(ra.masks[k], rb.masks[k].cpu())
