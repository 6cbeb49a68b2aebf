"""Tests of the field's methodology in latentkit.stats (issue 9): Kendall/Psi, CMI, sign-error,
paired hierarchical bootstrap and measure_table on constructed tables with known answers."""

import itertools
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats as sps

from latentkit.stats import (
    add_random_measure,
    conditional_mutual_information,
    granulated_kendall,
    kendall_rows,
    measure_table,
    paired_bootstrap,
    resampling_plan,
    seed_noise,
    sign_error,
)

AXES = ["method", "sparsity", "network", "dataset"]


def runs(trials=3, seed=0, noise=0.3):
    """Runs of a full grid: y grows with sparsity and method plus seed noise; r is independent."""
    rng = np.random.default_rng(seed)
    rows = []
    grid = itertools.product(["a", "b"], ["x", "y"], ["lo", "rnd", "hi"], [0.1, 0.3, 0.5, 0.8], range(trials))
    for net, ds, m, s, t in grid:
        mi = {"lo": 0, "rnd": 1, "hi": 2}[m]
        y = 5 * s + mi + noise * rng.normal()
        rows.append(dict(network=net, dataset=ds, method=m, sparsity=s, trial=t, y=y, r=rng.normal()))
    df = pd.DataFrame(rows)
    df["same"] = df["y"]
    df["neg"] = -df["y"]
    df["design"] = 10 * df["sparsity"] + df["method"].map({"lo": 0, "rnd": 1, "hi": 2})
    return df


def test_known_answers_kendall_psi():
    df = runs()
    g = granulated_kendall(df, "same", "y", axes=AXES)
    assert g.tau == pytest.approx(1.0) and g.Psi == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in g.psi.values())
    g = granulated_kendall(df, "neg", "y", axes=AXES)
    assert g.tau == pytest.approx(-1.0) and g.Psi == pytest.approx(-1.0)
    g = granulated_kendall(runs(trials=6, seed=3), "r", "y", axes=AXES)
    assert abs(g.tau) < 0.1 and abs(g.Psi) < 0.15
    assert list(g.to_frame().columns) == ["measure", "target", "n_runs", "tau"] + [
        f"psi_{a}" for a in AXES
    ] + ["Psi"]


def test_psi_brute_force_against_scipy():
    df = runs(seed=5)
    g = granulated_kendall(df, "r", "y", axes=AXES)
    assert g.tau == pytest.approx(sps.kendalltau(df["r"], df["y"]).statistic)
    for a in AXES:
        others = ["trial"] + [b for b in AXES if b != a]
        taus = [sps.kendalltau(grp["r"], grp["y"]).statistic for _, grp in df.groupby(others)]
        assert g.psi[a] == pytest.approx(np.mean(taus)), a
        assert g.n_groups[a] == len(taus)
    assert g.Psi == pytest.approx(np.mean(list(g.psi.values())))


def test_cmi_known_answers():
    df = runs()
    assert conditional_mutual_information(df, "same", "y", given=AXES).cmi == pytest.approx(1.0)
    assert conditional_mutual_information(df, "neg", "y", given=AXES).cmi == pytest.approx(1.0)
    c = conditional_mutual_information(df, "design", "y", given=AXES)
    assert c.cmi == pytest.approx(0.0, abs=1e-12) and set(c.argmin) == {"method", "sparsity"}
    unconditional = c.table.loc[c.table["size"] == 0, "cmi"].item()
    assert unconditional > 0.2  # the design alone "predicts" y across cells
    big = runs(trials=8, seed=2)
    assert conditional_mutual_information(big, "r", "y", given=AXES).cmi < 0.02
    assert len(c.table) == 1 + 4 + 6


def test_cmi_brute_force_unconditional():
    df = runs(trials=1, seed=7).iloc[:30]
    m, y = df["r"].to_numpy(), df["y"].to_numpy()
    joint = {}
    for i, j in itertools.combinations(range(len(df)), 2):
        for sgn in (1, -1):
            key = (sgn * np.sign(m[i] - m[j]), sgn * np.sign(y[i] - y[j]))
            joint[key] = joint.get(key, 0) + 1
    n = sum(joint.values())
    pm = {u: sum(v for k, v in joint.items() if k[0] == u) / n for u in (-1, 0, 1)}
    py = {u: sum(v for k, v in joint.items() if k[1] == u) / n for u in (-1, 1)}
    mi = sum(v / n * np.log2(v / n / (pm[k[0]] * py[k[1]])) for k, v in joint.items())
    h = -sum(p * np.log2(p) for p in py.values())
    c = conditional_mutual_information(df, "r", "y", given=["method"], max_size=0)
    assert c.cmi == pytest.approx(mi / h)


def test_sign_error_known_answers_and_noise():
    df = runs()
    s = sign_error(df, "same", "y", axes=AXES)
    assert s.mean == 0.0 and s.worst == 0.0
    assert sign_error(df, "neg", "y", axes=AXES).mean == 1.0
    assert sign_error(df, "design", "y", axes=AXES, noise=0.0).mean < 0.2
    const = df.assign(c=1.0)
    assert sign_error(const, "c", "y", axes=AXES, noise=0.0).mean == 0.5
    sigma = seed_noise(df, "y", AXES)
    resid = df["y"] - df.groupby(AXES)["y"].transform("mean")
    assert sigma == pytest.approx(np.sqrt((resid**2).sum() / (len(df) - len(df) / 3)))
    assert s.threshold == pytest.approx(np.sqrt(2) * sigma)
    assert len(s.per_environment) == 4 and s.per_environment["n_pairs"].sum() == s.n_pairs
    total = sign_error(df, "r", "y", axes=AXES, noise=0.0)
    assert total.n_dropped == 0 and total.n_pairs == s.n_pairs + s.n_dropped
    assert total.worst == pytest.approx(total.per_environment["sign_error"].max())


def test_sign_error_brute_force():
    df = runs(trials=2, seed=4)
    s = sign_error(df, "r", "y", axes=AXES, noise=0.5)
    errs = []
    for (_, a), (_, b) in itertools.combinations(df.iterrows(), 2):
        same_env = a["network"] == b["network"] and a["dataset"] == b["dataset"] and a["trial"] == b["trial"]
        differ = sum(a[c] != b[c] for c in ["method", "sparsity"])
        if same_env and differ == 1 and abs(a["y"] - b["y"]) > 0.5:
            errs.append(float(np.sign(a["r"] - b["r"]) != np.sign(a["y"] - b["y"])))
    assert s.n_pairs == len(errs) and s.mean == pytest.approx(np.mean(errs))


def test_monotone_transform_identical_everything():
    df = runs(seed=11)
    df["r3"] = np.exp(3 * df["r"]) + 7.0  # strictly increasing transform of r
    t = measure_table(df, ["r", "r3"], "y", axes=AXES, n_boot=30, seed=1)
    a, b = t.iloc[0].drop("measure"), t.iloc[1].drop("measure")
    pd.testing.assert_series_equal(a, b, check_names=False)
    p = paired_bootstrap(df, ["r", "r3"], "y", statistic="cmi", given=AXES, n_boot=20)
    assert p["low"].nunique() == 1 and p["high"].nunique() == 1 and p["value"].nunique() == 1
    p = paired_bootstrap(
        df, ["r", "r3"], "y", statistic=lambda d, m, y: sps.kendalltau(d[m], d[y])[0], n_boot=20
    )
    assert p["low"].nunique() == 1 and p["high"].nunique() == 1


def test_measure_table_matches_the_single_functions():
    df = add_random_measure(runs(seed=2), seed=3)
    t = measure_table(df, ["random", "design"], "y", axes=AXES, n_boot=20).set_index("measure")
    g = granulated_kendall(df, "design", "y", axes=AXES)
    assert t.loc["design", "tau"] == pytest.approx(g.tau) and t.loc["design", "Psi"] == pytest.approx(g.Psi)
    assert t.loc["design", "cmi"] == pytest.approx(
        conditional_mutual_information(df, "design", "y", AXES).cmi
    )
    s = sign_error(df, "random", "y", axes=AXES)
    assert t.loc["random", "sign_error"] == pytest.approx(s.mean)
    assert t.loc["random", "sign_error_worst"] == pytest.approx(s.worst)
    assert (t["tau_low"] <= t["tau"] + 1e-12).all() and (t["tau"] <= t["tau_high"] + 1e-12).all()


def test_resampling_plan_is_hierarchical():
    df = runs(trials=3)
    plan = resampling_plan(df, n_boot=5, seed=0)
    for rows, rep in zip(plan.rows, plan.replicate, strict=True):
        assert len(np.unique(rep)) == 3  # three trial draws
        for r in np.unique(rep):
            assert df.iloc[rows[rep == r]]["trial"].nunique() == 1  # a draw holds one trial's cells
            assert len(rows[rep == r]) == 48  # as many cells as the trial has
    again = resampling_plan(df, n_boot=5, seed=0)
    assert all((a == b).all() for a, b in zip(plan.rows, again.rows, strict=True))
    with pytest.raises(ValueError, match="plan was drawn"):
        plan.apply(df.iloc[:10], 0)


def test_validation_names_the_argument():
    df = runs()
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        granulated_kendall([1, 2], "r", "y")
    with pytest.raises(TypeError, match="measure must be a column name"):
        granulated_kendall(df, 3, "y", axes=AXES)
    with pytest.raises(ValueError, match="column 'epoch'"):
        granulated_kendall(df, "r", "y")
    with pytest.raises(TypeError, match="axes must be a list"):
        granulated_kendall(df, "r", "y", axes="method")
    with pytest.raises(TypeError, match="measure column 'method' must hold numbers"):
        sign_error(df, "method", "y", axes=AXES)
    with pytest.raises(ValueError, match="NaN"):
        conditional_mutual_information(df.assign(r=np.nan), "r", "y", given=AXES)
    with pytest.raises(ValueError, match="not unique"):
        granulated_kendall(df, "r", "y", axes=["method", "sparsity"])
    with pytest.raises(ValueError, match="max_size must be <= 4"):
        conditional_mutual_information(df, "r", "y", given=AXES, max_size=5)
    with pytest.raises(ValueError, match="noise=<float>"):
        sign_error(df[df["trial"] == 0], "r", "y", axes=AXES)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        sign_error(df, "r", "y", axes=AXES, noise=-1.0)
    with pytest.raises(ValueError, match="statistic must be one of"):
        paired_bootstrap(df, ["r"], "y", statistic="rho", n_boot=2)
    with pytest.raises(ValueError, match="already in df"):
        add_random_measure(df, column="r")


def test_methodology_is_torch_free():
    code = (
        "import sys; import latentkit.stats as s; s.measure_table; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_paired_bootstrap_names_missing_columns():
    df = runs()
    with pytest.raises(ValueError, match="column 'epoch'"):
        paired_bootstrap(df, ["r"], "y", statistic="Psi", n_boot=2)
    p = paired_bootstrap(df, ["r", "same"], "y", statistic="sign_error", axes=AXES, threshold=0.0, n_boot=5)
    assert p.loc[1, "value"] == 0.0 and p.loc[1, "high"] == 0.0


# ----------------------------------------------------------------------------- fast kernels, same bits
@settings(max_examples=60, deadline=None)
@given(
    n=hs.integers(0, 40),
    seed=hs.integers(0, 2**31 - 1),
    cols=hs.lists(hs.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True),
)
def test_codes_number_groups_as_pandas_ngroup(n, seed, cols):
    from latentkit.stats.generalization import _codes

    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.choice(["x", "y", "z"], n),
            "b": rng.choice([0.1, 0.3, 0.5, 0.8], n),
            "c": rng.integers(0, 3, n),
            "d": rng.choice([1.0, np.nan], n),
        }
    )
    want = df.groupby(cols, sort=False, dropna=False).ngroup().to_numpy(np.int64)
    cache: dict = {}
    assert np.array_equal(_codes(df, cols), want)
    assert np.array_equal(_codes(df, cols, cache), want) and np.array_equal(_codes(df, cols, cache), want)


@settings(max_examples=60, deadline=None)
@given(n=hs.integers(1, 256), r=hs.integers(1, 30), seed=hs.integers(0, 2**31 - 1), digits=hs.integers(0, 2))
def test_kendall_of_resamples_is_kendall_rows_bit_for_bit(n, r, seed, digits):
    from latentkit.stats.correlation import _kendall_resamples

    rng = np.random.default_rng(seed)
    x, y = np.round(rng.normal(size=n), digits), rng.normal(size=n)
    idx = rng.integers(0, n, size=(r, n))
    np.testing.assert_array_equal(_kendall_resamples(x, y, idx), kendall_rows(x[idx], y[idx]))
