"""The chapters' former cell helpers, now package functions, against independent computations.

latentkit.pruning.{evaluate_classifier, pruned_copy, penalized_cross_entropy, fit_lbfgs,
finetune_steps}, latentkit.divergence.kl_from_squared_distance,
latentkit.stats.tables.spearman_interval_table and latentkit.book.run_cli.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, optimize
from scipy import stats as sps
from torch import nn

from latentkit import pruning as P
from latentkit.book import CliRun, run_cli
from latentkit.divergence import kl_from_squared_distance, student_t_kl_from_distance
from latentkit.stats.tables import spearman_interval_table


def _data(n: int = 40, d: int = 5, c: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    model = nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, c)).double()
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model, x, y


def _np_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


# ------------------------------------------------------------------------------------ evaluate_classifier
def test_evaluate_classifier_matches_numpy_and_sets_eval_mode():
    model, x, y = _data()
    model.train()
    with torch.no_grad():
        logits = model(x).numpy()
    metrics = P.evaluate_classifier(model, x, y)
    assert isinstance(metrics, P.ClassifierMetrics)
    assert metrics.loss == pytest.approx(_np_cross_entropy(logits, y.numpy()), rel=1e-12)
    assert metrics.accuracy == np.mean(logits.argmax(1) == y.numpy())
    loss, acc = metrics  # unpacks like the chapters' (loss, accuracy) pairs
    assert (loss, acc) == (metrics.loss, metrics.accuracy)
    assert not model.training


def test_evaluate_classifier_uses_running_statistics_of_batchnorm():
    _, x, y = _data()
    model = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3)).double()
    with torch.no_grad():
        model[1].running_mean.fill_(2.0)
    expected = model.eval()(x).detach().numpy()
    model.train()
    assert P.evaluate_classifier(model, x, y).loss == pytest.approx(_np_cross_entropy(expected, y.numpy()))


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("model is a string", TypeError, "model"),
        ("inputs is a list", TypeError, "inputs"),
        ("labels is a list", TypeError, "labels"),
        ("float labels", ValueError, "labels"),
        ("2-d labels", ValueError, "labels"),
        ("one label short", ValueError, "same number"),
        ("no samples", ValueError, "empty"),
    ],
)
def test_evaluate_classifier_validates(case, error, match):
    model, x, y = _data()
    args = {
        "model is a string": ("net", x, y),
        "inputs is a list": (model, x.tolist(), y),
        "labels is a list": (model, x, y.tolist()),
        "float labels": (model, x, y.double()),
        "2-d labels": (model, x, y[:, None]),
        "one label short": (model, x, y[:-1]),
        "no samples": (model, x[:0], y[:0]),
    }[case]
    with pytest.raises(error, match=match):
        P.evaluate_classifier(*args)


def test_evaluate_classifier_refuses_non_logits():
    _, x, y = _data()
    with pytest.raises(ValueError, match="logits"):
        P.evaluate_classifier(nn.Flatten(0), x, y)


# ------------------------------------------------------------------------------------------- pruned_copy
def test_pruned_copy_prunes_a_copy_like_prune_on_a_deepcopy():
    model, _, _ = _data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned, result = P.pruned_copy(model, "random", 0.5, seed=3)
    reference = copy.deepcopy(model)
    expected = P.prune(reference, "random", 0.5, seed=3)
    assert pruned is not model
    assert model.state_dict().keys() == before.keys()  # no weight_orig / weight_mask on the original
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched
    assert set(result.masks) == set(expected.masks) == {"2"}
    assert torch.equal(result.masks["2"], expected.masks["2"])
    assert torch.equal(P.effective_weight(pruned[2]), P.effective_weight(reference[2]))
    assert int((P.effective_weight(pruned[2]) == 0).sum()) == round(0.5 * model[2].weight.numel())


def test_pruned_copy_forwards_layers_and_refuses_non_modules():
    model, _, _ = _data()
    _, result = P.pruned_copy(model, "lowest", 0.25, layers="all")
    assert set(result.masks) == {"0", "2"}
    with pytest.raises(TypeError, match="model"):
        P.pruned_copy("net", "lowest", 0.5)
    with pytest.raises(ValueError):
        P.pruned_copy(model, "no such method", 0.5)


# ------------------------------------------------------------------------------- penalized_cross_entropy
def test_penalized_cross_entropy_matches_numpy():
    model, x, y = _data()
    with torch.no_grad():
        logits = model(x).numpy()
    w0, w2 = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    lam = 0.03
    value = P.penalized_cross_entropy(
        model, x, y, weight_decay=lam, penalized=[model[0].weight, model[2].weight]
    )
    expected = _np_cross_entropy(logits, y.numpy()) + lam / 2 * ((w0**2).sum() + (w2**2).sum())
    assert value.requires_grad
    assert float(value.detach()) == pytest.approx(expected, rel=1e-12)
    plain = P.penalized_cross_entropy(model, x, y)
    assert float(plain) == pytest.approx(_np_cross_entropy(logits, y.numpy()), rel=1e-12)
    one = P.penalized_cross_entropy(model, x, y, weight_decay=lam, penalized=model[2].weight)
    assert float(one) == pytest.approx(_np_cross_entropy(logits, y.numpy()) + lam / 2 * (w2**2).sum())


def test_penalized_cross_entropy_validates():
    model, x, y = _data()
    with pytest.raises(ValueError, match="penalized"):
        P.penalized_cross_entropy(model, x, y, weight_decay=0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        P.penalized_cross_entropy(model, x, y, weight_decay=-1.0, penalized=model[2].weight)
    with pytest.raises(TypeError, match="penalized"):
        P.penalized_cross_entropy(model, x, y, weight_decay=0.1, penalized="2.weight")
    with pytest.raises(TypeError, match="penalized"):
        P.penalized_cross_entropy(model, x, y, weight_decay=0.1, penalized=[1.0])


# ------------------------------------------------------------------------------------------------ fit_lbfgs
def test_fit_lbfgs_reaches_the_minimum_scipy_finds():
    _, x, y = _data(n=60, d=4, c=3, seed=1)
    model = nn.Sequential(nn.Linear(4, 3)).double()
    nn.init.zeros_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    lam = 0.1
    final = P.fit_lbfgs(
        model,
        x,
        y,
        weight_decay=lam,
        penalized=model[0].weight,
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )
    xs, ys = x.numpy(), y.numpy()

    def objective(theta: np.ndarray) -> float:
        w, b = theta[:12].reshape(3, 4), theta[12:]
        return _np_cross_entropy(xs @ w.T + b, ys) + lam / 2 * (w**2).sum()

    ref = optimize.minimize(objective, np.zeros(15), method="BFGS", options={"gtol": 1e-10})
    assert final == pytest.approx(ref.fun, rel=1e-9)
    theta = np.concatenate([model[0].weight.detach().numpy().ravel(), model[0].bias.detach().numpy()])
    np.testing.assert_allclose(theta, ref.x, atol=1e-5)


def test_fit_lbfgs_validates_before_optimizing():
    model, x, y = _data()
    before = model[2].weight.detach().clone()
    with pytest.raises(ValueError, match="penalized"):
        P.fit_lbfgs(model, x, y, weight_decay=0.1)
    with pytest.raises(ValueError, match="same number"):
        P.fit_lbfgs(model, x, y[:-1])
    assert torch.equal(model[2].weight, before)


# ------------------------------------------------------------------------------------------ finetune_steps
def test_finetune_steps_is_the_seeded_minibatch_loop():
    model, x, y = _data()
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert P.finetune_steps(model, opt, x, y, steps=7, batch_size=5, seed=4) is opt
    # the loop written out
    g = torch.Generator().manual_seed(4)
    opt2 = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    twin.eval()
    for _ in range(7):
        idx = torch.randint(0, len(x), (5,), generator=g)
        opt2.zero_grad()
        nn.functional.cross_entropy(twin(x[idx]), y[idx]).backward()
        opt2.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert not model.training


def test_finetune_steps_with_a_masked_optimizer_keeps_pruned_weights_zero():
    model, x, y = _data()
    pruned, _ = P.pruned_copy(model, "lowest", 0.6)
    params = P.freeze_all_but(pruned, ["2.weight"])
    opt = P.MaskedOptimizer(torch.optim.SGD(params, lr=0.5, momentum=0.9, weight_decay=1e-2), model=pruned)
    P.finetune_steps(pruned, opt, x, y, steps=10, batch_size=8, seed=0, train=True)
    mask = pruned[2].weight_mask == 0
    assert pruned.training
    assert int((pruned[2].weight_orig[mask] != 0).sum()) == 0
    assert not torch.equal(pruned[2].weight_orig[~mask], model[2].weight[~mask])  # survivors moved


def test_finetune_steps_validates():
    model, x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="optimizer"):
        P.finetune_steps(model, "sgd", x, y)
    with pytest.raises(ValueError, match="steps"):
        P.finetune_steps(model, opt, x, y, steps=0)
    with pytest.raises(TypeError, match="batch_size"):
        P.finetune_steps(model, opt, x, y, batch_size=2.5)
    with pytest.raises(TypeError, match="train"):
        P.finetune_steps(model, opt, x, y, train=1)


# -------------------------------------------------------------------------------- kl_from_squared_distance
def _t_kl_1d_quadrature(delta: float, nu: float) -> float:
    p, q = sps.t(nu, loc=0.0), sps.t(nu, loc=delta)
    f = lambda u: p.pdf(u) * (p.logpdf(u) - q.logpdf(u))  # noqa: E731
    return integrate.quad(f, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-11, limit=200)[0]


@pytest.mark.parametrize(("d2", "nu"), [(0.25, 1.0), (1.0, 4.0), (9.0, 2.5), (4.0, 30.0)])
def test_kl_from_squared_distance_is_the_one_dimensional_t_kl(d2, nu):
    assert kl_from_squared_distance(d2, nu, 1) == pytest.approx(
        _t_kl_1d_quadrature(math.sqrt(d2), nu), rel=1e-7
    )


def test_kl_from_squared_distance_gaussian_limit_and_identity():
    for d2 in [0.0, 0.3, 12.5]:
        assert kl_from_squared_distance(d2, math.inf, 7) == 0.5 * d2
        assert kl_from_squared_distance(d2, np.inf, 7) == 0.5 * d2
        assert kl_from_squared_distance(d2, 5.0, 7) == student_t_kl_from_distance(math.sqrt(d2), 5.0, 7)
    # nu -> inf approaches the Gaussian value Delta^2 / 2 from below
    values = [kl_from_squared_distance(3.0, nu, 10) for nu in [1.0, 10.0, 1e3, 1e6]]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((-1.0, 4.0, 3), ValueError, "distance_sq"),
        ((math.inf, 4.0, 3), ValueError, "distance_sq"),
        (("1", 4.0, 3), TypeError, "distance_sq"),
        ((1.0, 0.0, 3), ValueError, "df"),
        ((1.0, math.nan, 3), ValueError, "df"),
        ((1.0, True, 3), TypeError, "df"),
        ((1.0, 4.0, 0), ValueError, "dim"),
        ((1.0, 4.0, 2.0), TypeError, "dim"),
    ],
)
def test_kl_from_squared_distance_validates(args, error, match):
    with pytest.raises(error, match=match):
        kl_from_squared_distance(*args)


# ------------------------------------------------------------------------------ spearman_interval_table
def test_spearman_interval_table_matches_a_hand_bootstrap():
    rng = np.random.default_rng(5)
    n, n_boot = 30, 200
    frame = pd.DataFrame({"a": rng.normal(size=n), "t1": rng.normal(size=n)})
    frame["b"] = frame["t1"] + 0.5 * rng.normal(size=n)
    frame["t2"] = frame["a"] + frame["b"]
    table = spearman_interval_table(
        frame,
        ["a", "b"],
        ["t1", "t2"],
        paired={"t2: minus a": ("t2", "a")},
        n_boot=n_boot,
        seed=2,
        index="pattern",
    )
    assert list(table.index) == ["a", "b"] and table.index.name == "pattern"
    assert list(table.columns) == ["t1", "t2", "t2: minus a"]
    idx = np.random.default_rng(2).integers(0, n, size=(n_boot, n))

    def boot(x: str, t: str) -> np.ndarray:
        return np.array([sps.spearmanr(frame[x].to_numpy()[i], frame[t].to_numpy()[i])[0] for i in idx])

    for m in ["a", "b"]:
        for t in ["t1", "t2"]:
            rho = sps.spearmanr(frame[m], frame[t])[0]
            lo, hi = np.percentile(boot(m, t), [2.5, 97.5])
            assert table.loc[m, t] == f"{rho:.3f} [{lo:.2f}, {hi:.2f}]"
        diff = boot(m, "t2") - boot("a", "t2")
        lo, hi = np.percentile(diff, [2.5, 97.5])
        assert table.loc[m, "t2: minus a"] == f"{diff.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]"
    assert table.loc["a", "t2: minus a"] == "+0.00 [+0.00, +0.00]"


def test_spearman_interval_table_validates():
    frame = pd.DataFrame({"a": np.arange(10.0), "t": np.arange(10.0) ** 2})
    with pytest.raises(TypeError, match="frame"):
        spearman_interval_table(frame.to_dict(), ["a"], ["t"])
    with pytest.raises(TypeError, match="measures"):
        spearman_interval_table(frame, "a", ["t"])
    with pytest.raises(ValueError, match="targets"):
        spearman_interval_table(frame, ["a"], [])
    with pytest.raises(ValueError, match="missing"):
        spearman_interval_table(frame, ["a", "nope"], ["t"])
    with pytest.raises(TypeError, match="paired"):
        spearman_interval_table(frame, ["a"], ["t"], paired={"x": "t"})
    with pytest.raises(ValueError, match="n_boot"):
        spearman_interval_table(frame, ["a"], ["t"], n_boot=5)


# -------------------------------------------------------------------------------------------------- run_cli
def test_run_cli_runs_the_command_line_in_a_fresh_interpreter(tmp_path):
    out = run_cli("plan", "--help", cwd=tmp_path, env={"COLUMNS": "100"})
    assert isinstance(out, CliRun)
    assert out.stdout.startswith("usage: latentkit plan")
    assert max(len(line) for line in out.stdout.splitlines()) <= 100
    assert out.seconds > 0
    with pytest.raises(RuntimeError, match="exited with status 2"):
        run_cli("no-such-command", cwd=tmp_path)


def test_run_cli_validates_arguments():
    with pytest.raises(TypeError, match="args"):
        run_cli("plan", 3)
    with pytest.raises(TypeError, match="env"):
        run_cli("--help", env={"COLUMNS": 100})
