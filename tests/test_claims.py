"""Tests of latentkit.claims on hand-built results tables whose verdicts are known by construction."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latentkit.claims import (
    VERDICTS,
    correlation_levels,
    ordering_disagreements,
    paper_claims,
    resolve_levels,
)

METHODS = ["lowest", "random", "highest"]
SPARSITIES = [0.1, 0.3, 0.5, 0.8]
EPOCHS = 8
NB = 200  # bootstrap resamples: enough for the clear-cut cases here


def base(mi, s):
    return s * (1 + 3 * mi)  # lowest < random < highest, growing with sparsity


def table(
    kind="good",
    dataset="standin10",
    network="alexnet",
    trials=1,
    methods=METHODS,
    sparsities=SPARSITIES,
    epochs=EPOCHS,
):
    """'good': PD = 2 AP2, everything rises and settles (every claim holds).
    'bad': PD = 20 / base, oscillating; AP3 = PD (AP3 tracks PD, AP2 is anti-correlated)."""
    rows = []
    for m in methods:
        mi = METHODS.index(m)
        for s in sparsities:
            for tr in range(trials):
                noise = 0.01 * (tr - (trials - 1) / 2)  # averages to 0 over the trials
                for t in range(epochs + 1):
                    ap2 = base(mi, s) * (1 + 0.5 * (1 - np.exp(-t)))
                    if kind == "good":
                        pdv, ap3 = 2 * ap2, ap2**2
                    else:
                        pdv = 20 / base(mi, s) * (1 + 0.3 * (-1) ** t)
                        ap3 = pdv
                    rows.append(
                        {
                            "network": network,
                            "dataset": dataset,
                            "method": m,
                            "sparsity": s,
                            "trial": tr,
                            "epoch": t,
                            "ap2": ap2 + noise,
                            "ap3_gauss_iso": (ap2 + noise) / 2,
                            "ap3_x": ap3 + noise,
                            "pd_test": pdv + noise,
                            "pd_train": pdv,
                        }
                    )
    return pd.DataFrame(rows)


def verdicts(res):
    return {(r.claim, r.measure): r.verdict for r in res.itertuples()}


def test_every_claim_holds_by_construction():
    res = paper_claims(table("good"), n_boot=NB)
    assert set(res["verdict"]) == {"holds"}, res[res.verdict != "holds"][["claim", "measure", "evidence"]]
    assert list(res.columns) == [
        "claim",
        "statement",
        "measure",
        "passed",
        "tests",
        "statistic",
        "evidence",
        "verdict",
    ]
    assert sorted(set(res["claim"])) == ["2", "3", "4", "5", "6a", "6b", "6c", "7"]
    r = res.set_index(["claim", "measure"])
    assert r.loc[("2", "ap2"), "statistic"] == pytest.approx(1.0)
    assert r.loc[("2", "ap2"), "tests"] == 3  # cells at t=0 and t=8, cells and epochs; one dataset
    assert r.loc[("4", "pd_test"), "tests"] == 6  # 3 methods x epochs {0, 8}
    assert r.loc[("5", "ap2"), "tests"] == 8  # 4 sparsities x 2 epochs
    assert r.loc[("6a", "ap3_x, pd_test"), "tests"] == 12
    assert r.loc[("6b", "pd_test"), "tests"] == 2  # lowest at 10 % and 30 %
    assert r.loc[("6c", "ap2"), "tests"] == 12 and r.loc[("6c", "ap2"), "statistic"] == pytest.approx(1.0)
    assert r.loc[("7", "ap2"), "statistic"] == 0.0
    # identical rankings: the paired difference and its CI are exactly 0
    assert "d_rho=0 [0, 0]" in r.loc[("3", "ap2 vs ap3_gauss_iso"), "evidence"]


def test_failures_by_construction():
    res = paper_claims(table("bad"), n_boot=NB)
    v = verdicts(res)
    assert v[("2", "ap2")] == "fails" and v[("2", "ap3_x")] == "holds"
    assert v[("3", "ap2 vs ap3_x")] == "fails"  # AP3 tracks PD significantly better
    assert v[("3", "ap2 vs ap3_gauss_iso")] == "holds"
    assert v[("4", "ap2")] == "holds" and v[("4", "pd_test")] == "fails" and v[("4", "ap3_x")] == "fails"
    assert v[("5", "ap2")] == "holds" and v[("5", "pd_test")] == "fails"
    assert v[("6a", "ap3_x, pd_test")] == "fails" and v[("6b", "pd_test")] == "fails"
    # AP2 rises monotonically while PD alternates: no co-movement; AP3 = PD co-moves exactly
    assert v[("6c", "ap2")] == "fails" and v[("6c", "ap3_x")] == "holds"
    assert v[("7", "ap2")] == "fails" and v[("7", "ap3_x")] == "holds"
    r = res.set_index(["claim", "measure"])
    # claim 2's statistic is Spearman's rho of the trial means (scipy, independently)
    pts = table("bad")
    rho = {
        f"cells@{e}": stats.spearmanr(
            pts.query("epoch == @e")["ap2"], pts.query("epoch == @e")["pd_test"]
        ).statistic
        for e in (0, EPOCHS)
    }
    rho["epochs"] = stats.spearmanr(pts["ap2"], pts["pd_test"]).statistic
    assert r.loc[("2", "ap2"), "statistic"] == pytest.approx(np.median(list(rho.values())))
    for level, value in rho.items():
        assert f"standin10 {level}: rho={value:.3g}" in r.loc[("2", "ap2"), "evidence"]
    assert r.loc[("7", "ap2"), "statistic"] == 1.0
    within = [
        stats.spearmanr(g["ap2"], g["pd_test"]).statistic for _, g in pts.groupby(["method", "sparsity"])
    ]
    assert r.loc[("6c", "ap2"), "statistic"] == pytest.approx(np.median(within))


def test_mixed_over_datasets_and_trials_averaged():
    df = pd.concat([table("good", trials=3), table("bad", dataset="standin100", trials=2)], ignore_index=True)
    res = paper_claims(df, n_boot=NB)
    v = verdicts(res)
    assert v[("2", "ap2")] == "mixed" and v[("4", "pd_test")] == "mixed" and v[("5", "pd_test")] == "mixed"
    r = res.set_index(["claim", "measure"])
    assert (r.loc[("2", "ap2"), "passed"], r.loc[("2", "ap2"), "tests"]) == (3, 6)
    assert "standin10 cells" in r.loc[("2", "ap2"), "evidence"]
    # restricting to one dataset gives that dataset's verdicts (trial noise averages out)
    assert set(paper_claims(df, dataset="standin10", n_boot=NB)["verdict"]) == {"holds"}
    # several networks: the evidence names network/dataset
    two = pd.concat([table("good"), table("good", network="vgg16")], ignore_index=True)
    ev = paper_claims(two, n_boot=NB).set_index(["claim", "measure"]).loc[("2", "ap2"), "evidence"]
    assert "alexnet/standin10" in ev and "vgg16/standin10" in ev


def test_not_applicable_cases():
    res = paper_claims(table("good", methods=["lowest", "highest"]), n_boot=NB)
    v = verdicts(res)
    assert v[("5", "ap2")] == "n/a" and v[("5", "pd_test")] == "n/a"
    res = paper_claims(table("good", epochs=4), n_boot=NB)
    assert verdicts(res)[("6a", "ap3_x, pd_test")] == "n/a"
    assert "needs more than 5" in res.set_index("claim").loc["6a", "evidence"].iloc[0]
    res = paper_claims(table("good", sparsities=[0.5, 0.8]), n_boot=NB)
    assert verdicts(res)[("6b", "pd_test")] == "n/a"
    assert set(res["verdict"]) <= set(VERDICTS)


def test_thresholds_change_verdicts():
    df = table("good")
    # final PD of lowest magnitude: 0.3 pp (10 %) and 0.9 pp (30 %)
    assert verdicts(paper_claims(df, n_boot=NB, recover_pp=0.5))[("6b", "pd_test")] == "mixed"
    assert verdicts(paper_claims(df, n_boot=NB, recover_pp=0.1))[("6b", "pd_test")] == "fails"
    assert verdicts(paper_claims(df, n_boot=NB, recover_max_sparsity=0.1))[("6b", "pd_test")] == "holds"
    # AP3 = AP2^2 moves by ~5 % of its total range over the last 5 epochs
    assert verdicts(paper_claims(df, n_boot=NB, settle_rtol=0.01))[("6a", "ap3_x, pd_test")] == "fails"
    # a 1 % dip in one sequence breaks strict monotonicity, not a 5 % tolerance
    dip = df.copy()
    sel = (dip.method == "random") & (dip.sparsity == 0.5) & (dip.epoch == 0)
    prev = dip.loc[(dip.method == "random") & (dip.sparsity == 0.3) & (dip.epoch == 0), "ap2"].iloc[0]
    dip.loc[sel, "ap2"] = prev * 0.99
    assert verdicts(paper_claims(dip, n_boot=NB))[("4", "ap2")] == "mixed"
    assert verdicts(paper_claims(dip, n_boot=NB, monotone_rtol=0.05))[("4", "ap2")] == "holds"


def test_ordering_disagreements_brute_force():
    df = table("good")
    # one known disagreement: random at 50 % gets a PD below lowest at 50 %, at the last epoch
    df.loc[(df.method == "random") & (df.sparsity == 0.5) & (df.epoch == EPOCHS), "pd_test"] = 0.05
    dis = ordering_disagreements(df, measures=["ap2"])
    pts = df[df.epoch.isin([0, EPOCHS])]
    expected = []
    for e, g in pts.groupby("epoch"):
        for a, b in itertools.combinations(g.to_dict("records"), 2):
            if a["sparsity"] != b["sparsity"] and a["method"] != b["method"]:
                continue
            if (a["ap2"] - b["ap2"]) * (a["pd_test"] - b["pd_test"]) < 0:
                expected.append((e, frozenset([(a["method"], a["sparsity"]), (b["method"], b["sparsity"])])))
    got = [
        (r.epoch, frozenset([(r.method_a, r.sparsity_a), (r.method_b, r.sparsity_b)]))
        for r in dis.itertuples()
    ]
    assert sorted(map(str, got)) == sorted(map(str, expected)) and len(got) > 0
    assert (dis["ap_a"] <= dis["ap_b"]).all() and (dis["pd_a"] > dis["pd_b"]).all()
    row = dis[(dis.comparison == "same sparsity") & (dis.method_a == "lowest")].iloc[0]
    assert (row.method_b, row.sparsity_b, row.pd_b) == ("random", 0.5, 0.05)
    allp = ordering_disagreements(df, measures=["ap2"], all_pairs=True)
    # comparable pairs per epoch: 4 sparsities x C(3,2) + 3 methods x C(4,2) = 30
    assert len(allp) == 60 and set(allp["relation"]) == {"agree", "disagree"}
    assert len(ordering_disagreements(df, measures=["ap2"], epochs=[0])) == 0


def test_ties_are_left_out():
    df = table("good")
    df.loc[(df.method == "lowest") & (df.sparsity <= 0.3), "pd_test"] = 0.0  # two PDs of 0 pp
    allp = ordering_disagreements(df, measures=["ap2"], all_pairs=True, epochs=[0])
    tie = allp[allp.relation == "tie"]
    assert len(tie) == 1 and set(tie[["sparsity_a", "sparsity_b"]].iloc[0]) == {0.1, 0.3}
    assert verdicts(paper_claims(df, n_boot=NB))[("5", "pd_test")] == "holds"  # 0 <= random <= highest


def test_correlation_levels_and_reuse():
    from latentkit.stats import correlations

    df = pd.concat([table("good"), table("bad", dataset="standin100")], ignore_index=True)
    corr = correlation_levels(df, n_boot=NB)
    assert list(pd.unique(corr["level"])) == ["cells@0", f"cells@{EPOCHS}", "epochs"]
    # each level is experiments.correlations at that level/epoch (one home)
    at0 = correlations(df, level="cells", epoch=0, n_boot=NB)
    pd.testing.assert_frame_equal(
        corr[corr.level == "cells@0"].drop(columns="level").reset_index(drop=True), at0.drop(columns="level")
    )
    pd.testing.assert_frame_equal(paper_claims(df, n_boot=NB, corr=corr), paper_claims(df, n_boot=NB))
    with pytest.raises(ValueError, match="lacks 6 .* row"):
        paper_claims(df, n_boot=NB, corr=corr[corr.level != "epochs"])
    assert resolve_levels(["cells", "cells@3", "epochs"], 8) == [
        ("cells@8", "cells", 8),
        ("cells@3", "cells", 3),
        ("epochs", "epochs", None),
    ]
    with pytest.raises(ValueError, match="levels repeat"):
        resolve_levels(["cells", "cells@8"], 8)
    with pytest.raises(ValueError, match="not in the table"):
        paper_claims(df, levels=["cells@99"])
    with pytest.raises(ValueError, match="duplicate"):
        paper_claims(df, n_boot=NB, corr=pd.concat([corr, corr.iloc[:1]]))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['spearman_low'\]"):
        paper_claims(df, n_boot=NB, corr=corr.drop(columns="spearman_low"))


def test_errors():
    df = table("good")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pd_test'\]"):
        paper_claims(df.drop(columns="pd_test"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['epoch'\]"):
        ordering_disagreements(df.drop(columns="epoch"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ap3_nope'\]"):
        paper_claims(df, measures=["ap2", "ap3_nope"])
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        paper_claims(df.to_dict())
    with pytest.raises(ValueError, match="network 'vgg16' is not in the table"):
        paper_claims(df, network="vgg16")
    with pytest.raises(ValueError, match="dataset 'cifar10' is not in the table"):
        ordering_disagreements(df, dataset="cifar10")
    bad = df.copy()
    bad.loc[3, "ap2"] = np.nan
    with pytest.raises(ValueError, match="'ap2' holds NaN"):
        paper_claims(bad)
    with pytest.raises(ValueError, match="must include 'ap2'"):
        paper_claims(df, measures=["ap3_x"])
    with pytest.raises(ValueError, match="also listed among the measures"):
        paper_claims(df, measures=["ap2", "pd_test"])
    with pytest.raises(ValueError, match="levels must be"):
        paper_claims(df, levels=("within",))
    with pytest.raises(ValueError, match="min_agreement must exceed 0.5"):
        paper_claims(df, min_agreement=0.4)
    with pytest.raises(ValueError, match="recover_max_sparsity must lie in"):
        paper_claims(df, recover_max_sparsity=1.5)
    with pytest.raises(TypeError, match="n_boot must be an integer"):
        paper_claims(df, n_boot=100.0)
    with pytest.raises(ValueError, match="settle_rtol must be a finite number >= 0"):
        paper_claims(df, settle_rtol=-1)
    with pytest.raises(ValueError, match=r"epoch\(s\) \[99\] not in the table"):
        ordering_disagreements(df, epochs=[99])
    with pytest.raises(ValueError, match="no rows"):
        paper_claims(df.iloc[:0])


def test_float_noise_in_pd_ties():
    """Two PDs of one test image computed from different accuracies differ in their last bits."""
    from latentkit.stats import correlations

    df = table("good")
    sel = (df.method == "lowest") & (df.sparsity == 0.1)
    df.loc[sel, "pd_test"] = 94.7 - 94.6  # 0.10000000000000853
    sel2 = (df.method == "lowest") & (df.sparsity == 0.3)
    df.loc[sel2, "pd_test"] = 94.8 - 94.7  # 0.09999999999999432
    assert df.loc[sel, "pd_test"].iloc[0] != df.loc[sel2, "pd_test"].iloc[0]
    pairs = ordering_disagreements(df, measures=["ap2"], epochs=[0], all_pairs=True)
    tie = pairs[
        (pairs.method_a == "lowest")
        & (pairs.method_b == "lowest")
        & (pairs.sparsity_a == 0.1)
        & (pairs.sparsity_b == 0.3)
    ]
    assert tie["relation"].tolist() == ["tie"]
    # the correlations see the tie too: same as with exact 0.1
    exact = df.copy()
    exact.loc[sel | sel2, "pd_test"] = 0.1
    a = correlation_levels(df, ["cells@0"], n_boot=NB)
    b = correlations(exact, level="cells", epoch=0, n_boot=NB)
    np.testing.assert_allclose(a["spearman"], b["spearman"])
