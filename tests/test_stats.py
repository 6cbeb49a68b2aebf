"""Tests of latentkit.stats against independent computations (scipy.stats, brute-force bootstraps),
its hostile-input behaviour (issue 12), and the torch-free contract of the statistics layer."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from latentkit import claims, plots, stats
from latentkit.stats import (
    bootstrap_spearman,
    correlations,
    correlations_by_level,
    kendall_rows,
    reference_rescale,
    spearman_rows,
    summarize,
)

METHODS = ["lowest", "random", "highest"]
SPARSITIES = [0.1, 0.3, 0.5, 0.8]


def table(trials=2, epochs=3, seed=1, networks=("n",)):
    """A results table in run_grid's format: AP2 grows with method and sparsity, PD = 10 AP2 + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for net in networks:
        for mi, m in enumerate(METHODS):
            for s in SPARSITIES:
                for t in range(trials):
                    for e in range(epochs):
                        ap = (mi + 1) * s * (1 + 0.1 * rng.normal()) / (1 + e)
                        rows.append(
                            {
                                "network": net,
                                "dataset": "d",
                                "method": m,
                                "sparsity": s,
                                "trial": t,
                                "epoch": e,
                                "scale": "quick",
                                "ap2": ap,
                                "ap3_x": ap**2 + rng.normal() * 0.01,
                                "test_acc": 90 - ap,
                                "pd_train": 9 * ap,
                                "pd_test": 10 * ap + rng.normal() * 0.01,
                            }
                        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- torch-free layer
@pytest.mark.parametrize(
    "module",
    [
        "latentkit.stats",
        "latentkit.claims",
        "latentkit.plots",
        "latentkit.report",
        "latentkit.options",
        "latentkit._checks",
    ],
)
def test_statistics_layer_does_not_import_torch(module):
    code = (
        f"import sys, {module}; assert 'torch' not in sys.modules, [m for m in sys.modules if 'torch' in m]"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- row-wise correlations
def test_row_correlations_match_scipy_with_ties_and_long_rows():
    rng = np.random.default_rng(0)
    for n in (7, 300):  # short rows: sign matrices; long rows (> 256): scipy's tau-b per row
        x = rng.integers(0, 5, size=(6, n)).astype(float)
        y = x + rng.normal(size=(6, n))
        y[2] = np.round(y[2])
        sp, kt = spearman_rows(x, y), kendall_rows(x, y)
        for r in range(6):
            assert sp[r] == pytest.approx(sps.spearmanr(x[r], y[r]).statistic, abs=1e-12)
            assert kt[r] == pytest.approx(sps.kendalltau(x[r], y[r]).statistic, abs=1e-12)
    assert np.isnan(spearman_rows(np.ones((1, 4)), np.arange(4.0)[None]))[0]


# ----------------------------------------------------------------------------- correlations
def test_correlations_against_scipy_and_a_brute_force_bootstrap():
    df = table()
    res = correlations(df, measures=["ap2"], n_boot=50, seed=3)
    pts = df[df.epoch == 2].groupby(["method", "sparsity"], sort=False)[["ap2", "pd_test"]].mean()
    x, y = pts["ap2"].to_numpy(), pts["pd_test"].to_numpy()
    r = res.iloc[0]
    assert r["n"] == 12 and r["level"] == "cells"
    assert r["spearman"] == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert r["kendall_p"] == pytest.approx(sps.kendalltau(x, y).pvalue, abs=1e-12)
    idx = np.random.default_rng(3).integers(0, 12, size=(50, 12))  # the first draw of the seeded generator
    boot = np.array([sps.spearmanr(x[i], y[i]).statistic for i in idx])
    boot = boot[np.isfinite(boot)]
    assert r["spearman_low"] == pytest.approx(np.quantile(boot, 0.025), abs=1e-12)
    assert r["spearman_high"] == pytest.approx(np.quantile(boot, 0.975), abs=1e-12)
    # levels: one point per (cell, epoch); one correlation per cell across its epochs
    assert correlations(df, level="epochs", n_boot=10)["n"].iloc[0] == 36
    within = correlations(df, level="within", n_boot=10, measures=["ap2"])
    assert len(within) == 12 and (within["n"] == 3).all()


def test_correlations_nan_policy():
    df = table()
    bad = df.copy()
    rows = list(df.index[df.epoch == 0][:2])  # rows 0 and 3: epoch 0
    bad.loc[rows, "pd_test"] = np.nan
    with pytest.raises(ValueError, match=r"column 'pd_test' .*NaN.* 2 row\(s\) \(index 0, 3\)"):
        correlations(bad, level="epochs", n_boot=10)
    with pytest.raises(ValueError, match="unknown nan_policy"):
        correlations(bad, nan_policy="ignore")
    # omit = the same computation on the table without those rows, for that (measure, target) pair
    got = correlations(bad, measures=["ap2"], level="epochs", n_boot=20, nan_policy="omit")
    want = correlations(bad.drop(index=rows), measures=["ap2"], level="epochs", n_boot=20)
    pd.testing.assert_frame_equal(got, want)
    assert np.isfinite(got[["spearman", "spearman_low", "spearman_high"]].to_numpy()).all()
    # a NaN in rows the level does not pool (cells at the last epoch) changes nothing
    pd.testing.assert_frame_equal(correlations(bad, n_boot=10), correlations(df, n_boot=10))


def test_correlations_hostile_input():
    df = table()
    with pytest.raises(ValueError, match="no rows"):
        correlations(df.iloc[:0], n_boot=10)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pd_test', 'epoch'\]"):
        correlations(df.drop(columns=["pd_test", "epoch"]), n_boot=10)
    with pytest.raises(ValueError, match="column 'ap9'"):
        correlations(df, measures=["ap9"])
    with pytest.raises(TypeError, match="n_boot must be an integer"):
        correlations(df, n_boot=True)
    with pytest.raises(TypeError, match="ci must be a real number"):
        correlations(df, ci="0.9")
    with pytest.raises(TypeError, match="seed must be an integer"):
        correlations(df, seed=1.5)
    with pytest.raises(TypeError, match="measures must be a list"):
        correlations(df, measures="ap2")
    with pytest.raises(TypeError, match="targets must be a list"):
        correlations(df, targets="pd_test")
    with pytest.raises(TypeError, match="by must be a list"):
        correlations(df, by="network")
    with pytest.raises(TypeError, match="DataFrame"):
        correlations(df.to_dict())
    with pytest.raises(ValueError, match="no rows at epoch 7"):
        correlations(df, epoch=7)


def test_correlations_by_level_is_one_correlations_call_per_level():
    df = table()
    got = correlations_by_level(
        df,
        ("cells@0", "cells", "epochs"),
        measures=["ap2"],
        n_boot={"cells@0": 20, "cells": 30, "epochs": 10},
    )
    parts = [
        correlations(df, measures=["ap2"], level="cells", epoch=0, n_boot=20).assign(level="cells@0"),
        correlations(df, measures=["ap2"], level="cells", n_boot=30).assign(level="cells"),
        correlations(df, measures=["ap2"], level="epochs", n_boot=10).assign(level="epochs"),
    ]
    pd.testing.assert_frame_equal(got, pd.concat(parts, ignore_index=True))
    with pytest.raises(ValueError, match="levels repeat"):
        correlations_by_level(df, ["cells", "cells"], n_boot=10)
    with pytest.raises(ValueError, match="levels must be"):
        correlations_by_level(df, ["trials"], n_boot=10)
    with pytest.raises(ValueError, match="non-empty list"):
        correlations_by_level(df, "cells", n_boot=10)
    with pytest.raises(ValueError, match=r"no entry for level\(s\) \['epochs'\]"):
        correlations_by_level(df, ["cells", "epochs"], n_boot={"cells": 10})
    # the claims' levels are these, on PD rounded to PD_DECIMALS, with the last epoch named
    lv = claims.correlation_levels(df, ["cells"], n_boot=10)
    assert list(lv["level"].unique()) == ["cells@2"]


# ----------------------------------------------------------------------------- bootstrap Spearman
def test_bootstrap_spearman_against_brute_force():
    rng = np.random.default_rng(5)
    x, r = rng.normal(size=15), rng.normal(size=15)
    y = x + 0.5 * rng.normal(size=15)
    got = bootstrap_spearman(x, y, reference=r, n_boot=200, seed=7)
    idx = np.random.default_rng(7).integers(0, 15, size=(200, 15))
    bx = np.array([sps.spearmanr(x[i], y[i]).statistic for i in idx])
    br = np.array([sps.spearmanr(r[i], y[i]).statistic for i in idx])
    assert got["n"] == 15
    assert got["spearman"] == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert got["spearman_low"] == pytest.approx(np.nanpercentile(bx, 2.5), abs=1e-12)
    assert got["spearman_high"] == pytest.approx(np.nanpercentile(bx, 97.5), abs=1e-12)
    assert got["diff_mean"] == pytest.approx(np.nanmean(bx - br), abs=1e-12)
    assert got["diff_low"] == pytest.approx(np.nanpercentile(bx - br, 2.5), abs=1e-12)
    # same seed, same resamples; a reference equal to x gives a difference of exactly 0
    same = bootstrap_spearman(x, y, reference=x, n_boot=200, seed=7)
    assert same["spearman_low"] == got["spearman_low"] and same["diff_low"] == same["diff_high"] == 0.0
    assert "diff_mean" not in bootstrap_spearman(pd.Series(x), list(y), n_boot=20)


def test_bootstrap_spearman_hostile_input():
    x = np.arange(5.0)
    with pytest.raises(ValueError, match="same length"):
        bootstrap_spearman(x, x[:4])
    with pytest.raises(ValueError, match="at least 3"):
        bootstrap_spearman(x[:2], x[:2])
    with pytest.raises(ValueError, match="y holds NaN"):
        bootstrap_spearman(x, np.r_[x[:4], np.nan])
    with pytest.raises(TypeError, match="x must"):
        bootstrap_spearman("01234", x)
    with pytest.raises(TypeError, match="reference must hold real numbers"):
        bootstrap_spearman(x, x, reference=np.array(list("abcde")))
    with pytest.raises(TypeError, match="n_boot must be an integer"):
        bootstrap_spearman(x, x, n_boot=True)
    with pytest.raises(TypeError, match="ci must be a real number"):
        bootstrap_spearman(x, x, ci="0.9")


# ----------------------------------------------------------------------------- summaries
def test_summarize_is_the_trial_mean_at_one_epoch():
    df = table(trials=3)
    got = summarize(df)
    sub = df[df.epoch == 2]
    for (m, s), g in sub.groupby(["method", "sparsity"]):
        row = got[(got.method == m) & (got.sparsity == s)].iloc[0]
        assert row["pd_test"] == pytest.approx(g["pd_test"].sum() / 3, rel=1e-14)
    assert list(got.columns) == [
        "network",
        "dataset",
        "method",
        "sparsity",
        "ap2",
        "ap3_x",
        "test_acc",
        "pd_train",
        "pd_test",
    ]
    assert len(summarize(df, epoch=0)) == 12
    with pytest.raises(ValueError, match="no rows at epoch 9"):
        summarize(df, epoch=9)
    with pytest.raises(ValueError, match="no rows"):
        summarize(df.iloc[:0])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['test_acc'\]"):
        summarize(df.drop(columns=["test_acc"]))
    with pytest.raises(TypeError, match="epoch must be an integer"):
        summarize(df, epoch="2")


def test_reference_rescale_hostile_input():
    df = table()
    out = reference_rescale(df)
    mx = df.groupby(["network", "dataset", "method", "trial"])["ap2"].transform("max")
    np.testing.assert_allclose(out["ap2_ref"], df["ap2"] * 3.8 / mx, rtol=1e-15)
    with pytest.raises(ValueError, match="no rows"):
        reference_rescale(df.iloc[:0])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['trial'\]"):
        reference_rescale(df.drop(columns=["trial"]))
    with pytest.raises(TypeError, match="by must be a list"):
        reference_rescale(df, by="method")
    with pytest.raises(TypeError, match="target must be a real number"):
        reference_rescale(df, target=True)
    with pytest.raises(TypeError, match="column must be"):
        reference_rescale(df, column=3)


# ----------------------------------------------------------------------------- claims' settled series
def test_settled_and_settled_cells_against_brute_force():
    assert claims.settled([5, 1, 1.05, 1.0], k=2, rtol=0.1)  # window range 0.05 <= 0.1 * 4
    assert not claims.settled([5, 1, 2, 1.0], k=2, rtol=0.1)
    assert claims.settled([5, 1, 2, 1.0], k=2, rtol=0.1, atol=1.0)
    with pytest.raises(ValueError, match="finite"):
        claims.settled([1.0, np.nan])
    with pytest.raises(TypeError, match="k must be an integer"):
        claims.settled([1.0, 2.0], k=True)
    df = table(trials=2, epochs=8)
    got = claims.settled_cells(df, ["ap2", "pd_test"], settle_epochs=3, settle_rtol=0.2, settle_pd_atol=0.05)
    assert len(got) == 12 and list(got.columns) == [
        "network",
        "dataset",
        "method",
        "sparsity",
        "ap2",
        "pd_test",
    ]
    for r in got.itertuples():
        g = (
            df[(df.method == r.method) & (df.sparsity == r.sparsity)]
            .groupby("epoch")[["ap2", "pd_test"]]
            .mean()
        )
        for col, atol in (("ap2", 0.0), ("pd_test", 0.05)):
            x = g[col].to_numpy()
            want = (x[-4:].max() - x[-4:].min()) <= max(0.2 * (x.max() - x.min()), atol)
            assert getattr(r, col) == want
    with pytest.raises(TypeError, match="measures must be a list"):
        claims.settled_cells(df, "ap2")
    with pytest.raises(ValueError, match="no rows"):
        claims.settled_cells(df.iloc[:0], ["ap2"])


# ----------------------------------------------------------------------------- claims, plots: the boundary
def test_claims_and_plots_refuse_empty_or_incomplete_tables():
    df = table()
    with pytest.raises(ValueError, match="no rows"):
        claims.paper_claims(df.iloc[:0], n_boot=10)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pd_test'\]"):
        claims.paper_claims(df.drop(columns=["pd_test"]), n_boot=10)
    with pytest.raises(TypeError, match="measures must be a list"):
        claims.paper_claims(df, measures="ap2", n_boot=10)
    with pytest.raises(TypeError, match="n_boot must be an integer"):
        claims.paper_claims(df, n_boot=True)
    with pytest.raises(TypeError, match="ci must be a real number"):
        claims.paper_claims(df, ci="0.9", n_boot=10)
    with pytest.raises(ValueError, match="no rows"):
        plots.ap_pd_curves(df.iloc[:0])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['spearman_low', 'spearman_high'\]"):
        plots.correlation_forest(
            pd.DataFrame({"measure": ["ap2"], "target": ["pd_test"], "level": ["cells"], "spearman": [0.5]})
        )
    assert stats.NAN_POLICIES == ("raise", "omit")


def test_plots_refuse_strings_for_lists_and_numbers():
    df = table()
    with pytest.raises(TypeError, match="measures must be a list of names"):
        plots.ap_pd_curves(df, measures="ap2")
    with pytest.raises(TypeError, match="methods must be a list of names"):
        plots.ap_pd_curves(df, methods="lowest")
    with pytest.raises(TypeError, match="epochs must be an integer"):
        plots.ap_pd_scatter(df, epochs=["0"])
    with pytest.raises(TypeError, match="epochs must be a list"):
        plots.ap_pd_scatter(df, epochs="0")
    with pytest.raises(TypeError, match="datasets must be a list of names"):
        plots.ap_pd_scatter(df, datasets="d")
