"""Tests of latentkit.report.write_report on a small results folder in run_grid's format."""

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


def results_folder(path, *, dense=True, networks=("alexnet",), datasets=("standin10",)):
    """results.csv, dense.csv and config.yaml as run_grid writes them (the columns of its docstring)."""
    rng = np.random.default_rng(0)
    rows = []
    for net in networks:
        for ds in datasets:
            for mi, m in enumerate(["lowest", "random", "highest"]):
                for s in (0.3, 0.5, 0.8):
                    for e in range(7):
                        ap = (mi + 1) * s * (1 + 0.05 * rng.normal()) * (1 + 0.3 * np.exp(-e))
                        acc = 90 - 10 * ap
                        rows.append(
                            {
                                "network": net,
                                "dataset": ds,
                                "method": m,
                                "sparsity": s,
                                "trial": 0,
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
    (path / "config.yaml").write_text(yaml.safe_dump({"name": "tiny", "networks": list(networks)}))
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
