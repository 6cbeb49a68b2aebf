"""Tests of the statistics that moved from latentkit.experiments to latentkit.stats (assertions unchanged)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from latentkit.stats import correlations, kendall_rows, reference_rescale, spearman_rows


# ----------------------------------------------------------------------------- statistics
def test_row_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, size=(20, 15)).astype(float)  # many ties
    y = x + rng.normal(size=(20, 15))
    y[3] = np.round(y[3])
    sp = spearman_rows(x, y)
    kt = kendall_rows(x, y)
    for r in range(20):
        assert sp[r] == pytest.approx(scipy.stats.spearmanr(x[r], y[r]).statistic, abs=1e-12)
        assert kt[r] == pytest.approx(scipy.stats.kendalltau(x[r], y[r]).statistic, abs=1e-12)
    const = kendall_rows(np.ones((1, 5)), np.arange(5.0)[None])
    assert np.isnan(const[0])


def test_correlations_table():
    rows = []
    rng = np.random.default_rng(1)
    for m_i, m in enumerate(["lowest", "random", "highest"]):
        for s in [0.1, 0.3, 0.5, 0.8]:
            for t in range(2):
                for e in range(3):
                    ap = (m_i + 1) * s * (1 + 0.1 * rng.normal()) / (1 + e)
                    rows.append(
                        {
                            "network": "n",
                            "dataset": "d",
                            "method": m,
                            "sparsity": s,
                            "trial": t,
                            "epoch": e,
                            "ap2": ap,
                            "ap3_x": 5.0,
                            "pd_test": 10 * ap + rng.normal() * 0.01,
                        }
                    )
    df = pd.DataFrame(rows)
    res = correlations(df, n_boot=300)
    r = res[res.measure == "ap2"].iloc[0]
    last = df[df.epoch == 2].groupby(["method", "sparsity"])[["ap2", "pd_test"]].mean()
    assert r["n"] == 12
    assert r["spearman"] == pytest.approx(scipy.stats.spearmanr(last["ap2"], last["pd_test"]).statistic)
    assert r["kendall"] == pytest.approx(scipy.stats.kendalltau(last["ap2"], last["pd_test"]).statistic)
    assert r["spearman_low"] <= r["spearman"] <= r["spearman_high"] <= 1
    const = res[res.measure == "ap3_x"].iloc[0]
    assert np.isnan(const["spearman"]) and "constant" in const["note"]
    ep = correlations(df, level="epochs", n_boot=100)
    assert ep[ep.measure == "ap2"].iloc[0]["n"] == 36
    within = correlations(df, level="within", n_boot=50, measures=["ap2"])
    assert len(within) == 12 and set(within.columns) >= {"method", "sparsity", "spearman"}
    # same seed, same CIs
    again = correlations(df, n_boot=300)
    pd.testing.assert_frame_equal(res, again)
    with pytest.raises(ValueError, match="column 'ap9'"):
        correlations(df, measures=["ap9"])
    with pytest.raises(ValueError, match="unknown level"):
        correlations(df, level="trials")


# ----------------------------------------------------------------------------- reference rescale
def test_reference_rescale():
    df = pd.DataFrame(
        {
            "network": "a",
            "dataset": "d",
            "method": ["m1"] * 3 + ["m2"] * 3,
            "trial": 0,
            "ap2": [1.0, 2.0, 4.0, 10.0, 20.0, 40.0],
        }
    )
    out = reference_rescale(df)
    np.testing.assert_allclose(out["ap2_ref"], [0.95, 1.9, 3.8, 0.95, 1.9, 3.8])
    assert "ap2_ref" not in df.columns  # a copy
    np.testing.assert_array_equal(out["ap2"], df["ap2"])
    one = reference_rescale(df, target=1.0, by=[])
    assert one["ap2_ref"].max() == pytest.approx(1.0) and one["ap2_ref"].iloc[0] == pytest.approx(1 / 40)
    with pytest.raises(ValueError, match="column 'nope' not in the table"):
        reference_rescale(df, column="nope")
    with pytest.raises(ValueError, match="target must be"):
        reference_rescale(df, target=0.0)
    with pytest.raises(ValueError, match="max\\(ap2\\) <= 0"):
        reference_rescale(df.assign(ap2=0.0))
    with pytest.raises(TypeError, match="DataFrame"):
        reference_rescale(df.to_dict())
