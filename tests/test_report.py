"""Tests of latentkit.report.write_report on a small results folder in run_grid's format."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import yaml

from latentkit.claims import VERDICTS, paper_claims
from latentkit.report import format_table, write_report
from latentkit.stats import correlations, summarize

NB = 20


PAPER = ("lowest", "random", "highest")
REFERENCE = ("lowest", "random_reference", "highest_reference")


def results_folder(
    path,
    *,
    dense=True,
    networks=("alexnet",),
    datasets=("standin10",),
    methods=PAPER,
    trials=1,
    config=None,
):
    """results.csv, dense.csv and config.yaml as run_grid writes them (the columns of its docstring).

    ``methods`` in the paper's roles' order (lowest, random, highest); ``config``: the mapping
    written to config.yaml (default a small one without ``finetune_protocol``), ``False``: none."""
    rng = np.random.default_rng(0)
    rows = []
    for net in networks:
        for ds in datasets:
            for mi, m in enumerate(methods):
                for s, tr in itertools.product((0.3, 0.5, 0.8), range(trials)):
                    for e in range(7):
                        ap = (mi + 1) * s * (1 + 0.05 * rng.normal()) * (1 + 0.3 * np.exp(-e))
                        acc = 90 - 10 * ap
                        rows.append(
                            {
                                "network": net,
                                "dataset": ds,
                                "method": m,
                                "sparsity": s,
                                "trial": tr,
                                "epoch": e,
                                "engine": "cached",
                                "scale": "quick",
                                "ap2": ap,
                                "ap3_gauss_iso": ap / 2,
                                "train_loss": 0.1 * ap,
                                "train_acc": acc + 1,
                                "test_loss": 0.2 * ap,
                                "test_acc": acc,
                                "dense_train_acc": 91.0,
                                "dense_test_acc": 90.0,
                                "dense_train_loss": 0.05,
                                "dense_test_loss": 0.1,
                                "pd_train": abs(91 - acc - 1),
                                "pd_test": abs(90 - acc),
                                "sparsity_achieved": s,
                                "mask_sparsity": s,
                                "cells_in_batch": 9,
                                "wall_time_s": 0.01 * e,
                            }
                        )
    path.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(path / "results.csv", index=False)
    if dense:
        hist = [
            {
                "network": net,
                "dataset": ds,
                "trial": 0,
                "epoch": e,
                "lr": 0.1,
                "train_loss": 2.0 / (e + 1),
                "train_acc": 50.0 + 10 * e,
                "test_loss": 2.2 / (e + 1),
                "test_acc": 45.0 + 10 * e,
                "train_loss_running": 2.1 / (e + 1),
                "time_s": 0.5,
            }
            for net in networks
            for ds in datasets
            for e in range(1, 4)
        ]
        pd.DataFrame(hist).to_csv(path / "dense.csv", index=False)
    if config is None:
        config = {"name": "tiny", "networks": list(networks)}
    if config is not False:
        (path / "config.yaml").write_text(yaml.safe_dump(config))
    elif (path / "config.yaml").exists():
        (path / "config.yaml").unlink()
    return pd.read_csv(path / "results.csv")


def test_write_report_writes_the_tables_and_figures(tmp_path):
    df = results_folder(tmp_path, networks=("alexnet", "vgg16"))
    files = write_report(tmp_path, n_boot=NB)
    rep = tmp_path / "report"
    assert [f.name for f in files] == [
        "summary.csv",
        "correlations.csv",
        "claims.csv",
        "summary.txt",
        "curves_alexnet_standin10.png",
        "curves_vgg16_standin10.png",
        "dense_curves_alexnet.png",
        "dense_curves_vgg16.png",
    ]
    assert all(f.parent == rep and f.is_file() for f in files)
    pd.testing.assert_frame_equal(pd.read_csv(rep / "summary.csv"), summarize(df), rtol=1e-12)
    corr = pd.read_csv(rep / "correlations.csv")
    want = pd.concat(
        [
            correlations(df, level=lv, n_boot=NB, targets=("pd_test", "pd_train"))
            for lv in ("cells", "epochs", "within")
        ],
        ignore_index=True,
    )
    assert list(corr["level"].unique()) == ["cells", "epochs", "within"]
    assert set(corr["target"]) == {"pd_test", "pd_train"}
    pd.testing.assert_frame_equal(corr.drop(columns=["note"]), want.drop(columns=["note"]), rtol=1e-12)
    verdicts = pd.read_csv(rep / "claims.csv", dtype={"claim": str})
    assert set(verdicts["verdict"]) <= set(VERDICTS)
    assert list(verdicts["verdict"]) == list(paper_claims(df, n_boot=NB)["verdict"])
    text = (rep / "summary.txt").read_text()
    for head in (
        "Last epoch, trial means",
        "Correlations with PD (cells and epochs levels)",
        "The paper's claims",
    ):
        assert head in text
    assert format_table(summarize(df)) in text
    assert not (rep / "reference_rescale.csv").exists() and "Reference mode" not in text
    for f in files[4:]:
        img = mpimg.imread(f)
        assert img.ndim == 3 and img.shape[0] > 100


def test_write_report_without_dense_table(tmp_path):
    results_folder(tmp_path, dense=False)
    files = write_report(str(tmp_path), n_boot=NB)
    assert [f.name for f in files][4:] == ["curves_alexnet_standin10.png"]


def test_write_report_refuses_bad_folders_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.csv not found"):
        write_report(tmp_path / "nothing")
    results_folder(tmp_path)
    with pytest.raises(TypeError, match="n_boot must be an integer"):
        write_report(tmp_path, n_boot=True)
    with pytest.raises(ValueError, match="n_boot must be >= 10"):
        write_report(tmp_path, n_boot=3)
    with pytest.raises(TypeError, match="out_dir must be a path"):
        write_report(3)
    assert not (tmp_path / "report").exists()  # nothing written before the arguments are checked
    (tmp_path / "results.csv").write_text("")
    with pytest.raises(ValueError, match="results.csv is empty"):
        write_report(tmp_path, n_boot=NB)
    (tmp_path / "results.csv").write_text(
        "network,dataset,method,sparsity,epoch,ap2,test_acc,pd_train,pd_test\n"
    )
    with pytest.raises(ValueError, match="results.csv has no rows"):
        write_report(tmp_path, n_boot=NB)
    results_folder(tmp_path)
    df = pd.read_csv(tmp_path / "results.csv").drop(columns=["pd_test"])
    df.to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pd_test'\]"):
        write_report(tmp_path, n_boot=NB)
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        format_table([1, 2])


def check_rescale(rescaled, df):
    """reference_rescale.csv against numpy: every results row once, AP2 * 3.8 / its run's maximum."""
    keys = ["network", "dataset", "method", "trial", "sparsity", "epoch"]
    assert list(rescaled.columns) == keys + ["ap2", "ap2_ref"]
    got = rescaled.set_index(keys).sort_index()
    want = df.set_index(keys).sort_index()
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got["ap2"], want["ap2"], rtol=1e-12)
    for _, g in rescaled.groupby(["network", "dataset", "method", "trial"]):
        ap2, ref = g["ap2"].to_numpy(), g["ap2_ref"].to_numpy()
        assert np.max(ref) == pytest.approx(3.8, rel=1e-12)
        np.testing.assert_allclose(ref, ap2 * 3.8 / np.max(ap2), rtol=1e-12)
        np.testing.assert_array_equal(np.argsort(ref, kind="stable"), np.argsort(ap2, kind="stable"))
    # different runs are rescaled differently: not one global factor
    factor = (rescaled["ap2_ref"] / rescaled["ap2"]).round(9)
    assert factor.nunique() == rescaled.groupby(["method", "trial"]).ngroups


def test_write_report_reference_mode_writes_the_rescaling(tmp_path):
    df = results_folder(
        tmp_path, methods=REFERENCE, trials=2, config={"name": "reference", "finetune_protocol": "reference"}
    )
    files = write_report(tmp_path, n_boot=NB)
    rep = tmp_path / "report"
    names = [f.name for f in files]
    assert names[:5] == [
        "summary.csv",
        "correlations.csv",
        "claims.csv",
        "reference_rescale.csv",
        "summary.txt",
    ]
    assert names[5:] == ["curves_alexnet_standin10.png", "dense_curves_alexnet.png"]
    rescaled = pd.read_csv(rep / "reference_rescale.csv")
    check_rescale(rescaled, df)
    text = (rep / "summary.txt").read_text()
    assert "Reference mode (config.yaml has finetune_protocol: 'reference')" in text
    last = rescaled[rescaled.epoch == 6].groupby(["method", "sparsity"])["ap2_ref"].mean()
    assert f"{last.loc[('random_reference', 0.5)]:.4g}" in text.split("Reference mode")[1]
    # the reference methods play the paper's roles in claim 5 (3 sparsities x epochs {0, 6})
    c5 = pd.read_csv(rep / "claims.csv", dtype={"claim": str}).query("claim == '5'")
    assert (c5["tests"] == 6).all()
    assert c5["evidence"].str.startswith("lowest <= random_reference <= highest_reference").all()


def test_reference_mode_rule(tmp_path):
    from latentkit.report import reference_mode

    # no config.yaml: the table's methods decide
    results_folder(tmp_path, methods=REFERENCE, config=False)
    names = [f.name for f in write_report(tmp_path, n_boot=NB)]
    assert "reference_rescale.csv" in names
    assert (
        "no config.yaml; the table has reference method(s)" in (tmp_path / "report/summary.txt").read_text()
    )
    other = tmp_path / "paper"
    results_folder(other, config=False)
    assert "reference_rescale.csv" not in [f.name for f in write_report(other, n_boot=NB)]
    # a config.yaml decides, whatever the methods
    latent = tmp_path / "latentkit"
    results_folder(latent, methods=REFERENCE, config={"finetune_protocol": "latentkit"})
    assert "reference_rescale.csv" not in [f.name for f in write_report(latent, n_boot=NB)]
    assert not (latent / "report/reference_rescale.csv").exists()
    ref = tmp_path / "reference"
    df = results_folder(ref, config={"finetune_protocol": "reference"})  # the paper's method names
    assert "reference_rescale.csv" in [f.name for f in write_report(ref, n_boot=NB)]
    check_rescale(pd.read_csv(ref / "report/reference_rescale.csv"), df)
    assert reference_mode({"name": "old"}, REFERENCE) == (
        False,
        "config.yaml has finetune_protocol: 'latentkit'",
    )
    assert reference_mode(None, pd.Series(["lowest", "highest_reference"]))[0]
    assert reference_mode(None, PAPER) == (False, "no config.yaml and no reference method in the table")
    with pytest.raises(TypeError, match="config must be a mapping"):
        reference_mode(["finetune_protocol"], PAPER)
    with pytest.raises(TypeError, match="not the string 'lowest'"):
        reference_mode(None, "lowest")
    with pytest.raises(ValueError, match="finetune_protocol must be one of"):
        reference_mode({"finetune_protocol": "Reference"}, PAPER)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("finetune_protocol: [unclosed\n", "config.yaml is not valid YAML"),
        ("- finetune_protocol\n", "config.yaml must hold a mapping of settings; got list"),
        ("finetune_protocol: paper\n", "finetune_protocol must be one of"),
    ],
)
def test_write_report_refuses_bad_configs(tmp_path, text, match):
    results_folder(tmp_path, methods=REFERENCE)
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match=match):
        write_report(tmp_path, n_boot=NB)
    assert not (tmp_path / "report").exists()  # refused before anything is written


def test_write_report_reference_mode_refuses_a_run_without_ap2(tmp_path):
    results_folder(tmp_path, methods=REFERENCE, config={"finetune_protocol": "reference"})
    df = pd.read_csv(tmp_path / "results.csv")
    df.loc[df.method == "lowest", "ap2"] = 0.0  # nothing to rescale: max 0
    df.to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(ValueError, match=r"max\(ap2\) <= 0"):
        write_report(tmp_path, n_boot=NB)
    assert not (tmp_path / "report").exists()
