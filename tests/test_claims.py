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


# ---------------------------------------------------------------- reference methods in the paper's roles
REFERENCE_NAMES = {"random": "random_reference", "highest": "highest_reference"}


def as_reference(df):
    """``df`` with the paper's random/highest renamed to the reference code's methods."""
    return df.assign(method=df["method"].replace(REFERENCE_NAMES))


def paper_names(text):
    for paper, ref in REFERENCE_NAMES.items():
        text = text.replace(ref, paper)
    return text


def claim5_counts(df, measure):
    """(passed, tests) of claim 5, independently: trial means pivoted to one column per method."""
    last = df["epoch"].max()
    mean = df[df.epoch.isin([0, last])].groupby(["sparsity", "epoch", "method"])[measure].mean()
    wide = mean.unstack("method")[["lowest", "random", "highest"]].to_numpy(float)
    lo, ra, hi = wide.T
    return int(np.sum((lo <= ra) & (ra <= hi) & (lo < hi))), len(wide)


def broken_table():
    """'good' with two trials, random above highest at 50 % sparsity in AP2 at every epoch and the
    PD of lowest above random at 80 % after fine-tuning: claim 5 is mixed for both measures."""
    df = table("good", trials=2)
    sel = (df.method == "random") & (df.sparsity == 0.5)
    df.loc[sel, "ap2"] *= 10
    df.loc[(df.method == "lowest") & (df.sparsity == 0.8) & (df.epoch == EPOCHS), "pd_test"] = 50.0
    return df


@pytest.mark.parametrize("kind", ["good", "bad", "broken"])
def test_reference_methods_get_the_paper_verdicts(kind):
    df = broken_table() if kind == "broken" else table(kind)
    res = paper_claims(df, n_boot=NB)
    ref = paper_claims(as_reference(df), n_boot=NB)
    c5 = ref[ref.claim == "5"]
    assert len(c5) == 2 and (c5["tests"] == 8).all()  # 4 sparsities x epochs {0, 8}: the roles are filled
    assert c5["evidence"].str.startswith("lowest <= random_reference <= highest_reference at ").all()
    for r in c5.itertuples():  # independent count on the paper-named table
        assert (r.passed, r.tests) == claim5_counts(df, r.measure)
    # every claim, not only 5: the same verdicts and numbers; the evidence differs in the names only
    pd.testing.assert_frame_equal(ref.assign(evidence=ref["evidence"].map(paper_names)), res)
    if kind == "broken":
        assert set(c5["verdict"]) == {"mixed"}
        ev = c5.set_index("measure").loc["ap2", "evidence"]
        assert "not: standin10 50 % t=0 (lowest " in ev and ", random_reference " in ev
        assert ", highest_reference " in ev


def test_paper_method_preferred_over_its_reference_stand_in():
    good = table("good")
    # random_reference would break the order everywhere (above highest); random keeps it
    stand_in = good[good.method == "random"].assign(method="random_reference")
    stand_in["ap2"] *= 100
    stand_in["pd_test"] *= 100
    both = pd.concat([good, stand_in], ignore_index=True)
    c5 = paper_claims(both, n_boot=NB).query("claim == '5'")
    assert list(c5["verdict"]) == ["holds", "holds"] and (c5["passed"] == 8).all()
    assert c5["evidence"].str.startswith("lowest <= random <= highest at 8/8").all()
    assert not c5["evidence"].str.contains("random_reference").any()
    # without the paper's random, the stand-in plays it (and breaks the order, named in the evidence)
    only = both[both.method != "random"]
    c5 = paper_claims(only, n_boot=NB).query("claim == '5'")
    assert list(c5["verdict"]) == ["fails", "fails"]
    assert c5["evidence"].str.startswith("lowest <= random_reference <= highest at 0/8").all()
    # a role nobody plays: not testable
    none = good[good.method != "highest"]
    assert set(paper_claims(none, n_boot=NB).query("claim == '5'")["verdict"]) == {"n/a"}
    ev = paper_claims(none, n_boot=NB).query("claim == '5'")["evidence"].iloc[0]
    assert ev == "lowest <= random <= highest at 0/0 (sparsity, epoch)"


def test_paper_roles():
    from latentkit.claims import paper_roles
    from latentkit.options import PAPER_METHODS, PRUNING_METHODS, REFERENCE_ROLES

    assert paper_roles(["highest_reference", "random_reference", "lowest"]) == {
        "lowest": "lowest",
        "random": "random_reference",
        "highest": "highest_reference",
    }
    assert list(paper_roles(pd.Series(["highest", "lowest", "random", "lowest"]))) == list(PAPER_METHODS)
    assert paper_roles(["random", "random_reference", "highest_reference", "highest"]) == {
        "random": "random",
        "highest": "highest",
    }
    assert paper_roles(["structured", "lq_adaptive"]) == {} and paper_roles([]) == {}
    assert paper_roles(iter(["lowest"])) == {"lowest": "lowest"}  # any iterable, read once
    with pytest.raises(TypeError, match="not a single string"):
        paper_roles("random")
    with pytest.raises(TypeError, match="iterable of method names"):
        paper_roles(3)
    with pytest.raises(TypeError, match="must hold method names"):
        paper_roles(["lowest", None])
    # the one vocabulary: reference methods are pruning methods that stand in for paper methods
    assert set(REFERENCE_ROLES) <= set(PRUNING_METHODS) - set(PAPER_METHODS)
    assert set(REFERENCE_ROLES.values()) <= set(PAPER_METHODS)


def test_reference_methods_named_ordered_and_coloured_after_their_role():
    from matplotlib.colors import to_rgb

    from latentkit.claims.prose import _METHODS
    from latentkit.options import GRID_METHODS, METHOD_ORDER, REFERENCE_ROLES
    from latentkit.plots import METHOD_COLORS, METHOD_LABELS, method_label

    assert sorted(METHOD_ORDER) == sorted(GRID_METHODS)
    for ref, role in REFERENCE_ROLES.items():
        assert METHOD_ORDER.index(ref) == METHOD_ORDER.index(role) + 1  # right after its role
        assert method_label(ref).startswith(method_label(role)) and method_label(ref) != method_label(role)
        assert _METHODS[ref] == METHOD_LABELS[ref]  # sentences and figures use the same words
        a, b = np.array(to_rgb(METHOD_COLORS[ref])), np.array(to_rgb(METHOD_COLORS[role]))
        assert np.abs(a - b).max() > 0.1  # distinguishable
        # the same hue family: grey stays grey (no channel stands out), warm stays warm (red leads)
        for c in (a, b):
            if role == "random":
                assert np.ptp(c) < 0.05
            else:
                assert c[0] > c[1] > c[2]
    assert METHOD_ORDER[:5] == ("lowest", "random", "random_reference", "highest", "highest_reference")
