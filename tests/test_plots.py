"""Tests of latentkit.plots: figures build from small synthetic tables with the grid's columns."""

import matplotlib

matplotlib.use("Agg")  # inside the tests only: no display

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from latentkit import plots
from latentkit.stats import correlations

METHODS = ["lowest", "random", "highest"]
SPARSITIES = [0.1, 0.3, 0.5, 0.8]


def results_table(
    networks=("alexnet",), datasets=("standin10", "standin100"), epochs=4, trials=1, seed=0, zero_pd=True
):
    """A synthetic run_grid-like table: AP grows with sparsity and method rank, PD follows it."""
    rng = np.random.default_rng(seed)
    rows = []
    for net in networks:
        for ds in datasets:
            for mi, m in enumerate(METHODS):
                for s in SPARSITIES:
                    for tr in range(trials):
                        for e in range(epochs + 1):
                            ap2 = s * (1 + 3 * mi) * (1 + 0.05 * e) * (1 + 0.01 * rng.random())
                            pd_test = 0.0 if (zero_pd and mi == 0 and s == 0.1) else 10 * ap2 / (1 + e)
                            rows.append(
                                {
                                    "network": net,
                                    "dataset": ds,
                                    "method": m,
                                    "sparsity": s,
                                    "trial": tr,
                                    "epoch": e,
                                    "scale": "quick",
                                    "ap2": ap2,
                                    "ap3_gauss_iso": ap2 / 2,
                                    "ap3_laplace_kron": ap2**1.5,
                                    "ap3_t_chunks": 1e-4 * ap2,
                                    "test_acc": 90 - pd_test,
                                    "pd_test": pd_test,
                                    "pd_train": pd_test / 2,
                                }
                            )
    return pd.DataFrame(rows)


def dense_frame(datasets=("standin10", "standin100"), epochs=5):
    rows = []
    for ds in datasets:
        for e in range(1, epochs + 1):
            rows.append(
                {
                    "network": "alexnet",
                    "dataset": ds,
                    "trial": 0,
                    "epoch": e,
                    "lr": 0.01,
                    "train_loss": 2.0 / e,
                    "test_loss": 2.2 / e,
                    "train_acc": 50 + 8 * e,
                    "test_acc": 45 + 8 * e,
                    "time_s": float(e),
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def legend_texts(fig):
    return [
        t.get_text()
        for leg in fig.legends + [a.get_legend() for a in fig.axes if a.get_legend()]
        for t in leg.get_texts()
    ]


def test_dense_curves_axes_and_legend():
    fig = plots.dense_curves(dense_frame(), scale="quick")
    ax_l, ax_a = fig.axes
    assert "cross-entropy" in ax_l.get_ylabel() and ax_l.get_yscale() == "log"
    assert ax_a.get_ylabel() == "accuracy (%)"
    assert all(a.get_xlabel() == "dense training epoch" for a in fig.axes)
    texts = legend_texts(fig)
    assert {"standin10, train", "standin10, test", "standin100, train", "standin100, test"} <= set(texts)
    title = fig._suptitle.get_text()
    assert "AlexNet" in title and "quick scale" in title and "MNIST" in title
    assert "synthetic" in title
    # plotted values are the table's
    line = ax_a.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), 50 + 8 * np.arange(1, 6))


def test_dense_curves_needs_network_choice_and_columns():
    two = pd.concat([dense_frame(), dense_frame().assign(network="vgg16")])
    with pytest.raises(ValueError, match="several networks"):
        plots.dense_curves(two)
    assert plots.dense_curves(two, "vgg16").axes[0].get_lines()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['test_acc'\]"):
        plots.dense_curves(dense_frame().drop(columns="test_acc"))
    with pytest.raises(ValueError, match="network 'resnet50' is not in the table"):
        plots.dense_curves(dense_frame(), "resnet50")


def test_ap_pd_curves_layout_scales_and_values():
    df = results_table()
    fig = plots.ap_pd_curves(df, "alexnet", "standin10")
    axes = np.array(fig.axes).reshape(3, 3)
    assert [a.get_title() for a in axes[0]] == ["lowest magnitude", "random", "highest magnitude"]
    assert "AP2" in axes[0, 0].get_ylabel() and "Kronecker Laplace" in axes[1, 0].get_ylabel()
    assert "PD test (pp)" in axes[2, 0].get_ylabel()
    assert all(a.get_xlabel() == "fine-tuning epoch $t$" for a in axes[-1])
    assert axes[0, 0].get_yscale() == "log" and axes[1, 0].get_yscale() == "log"
    # PD has exact zeros (lowest magnitude, 10 %): symlog, and the label says so
    assert axes[2, 0].get_yscale() == "symlog" and "symlog" in axes[2, 0].get_ylabel()
    # rows share y (one scale per measure)
    assert axes[0, 0].get_shared_y_axes().joined(axes[0, 0], axes[0, 2])
    texts = legend_texts(fig)
    assert texts[:4] == ["sparsity 10 %", "sparsity 30 %", "sparsity 50 %", "sparsity 80 %"]
    title = fig._suptitle.get_text()
    assert "AlexNet" in title and "standin10" in title and "quick scale" in title and "1 trial" in title
    # one line per sparsity, with the trial means of the table
    lines = axes[0, 1].get_lines()
    assert len(lines) == 4
    sub = df[(df.dataset == "standin10") & (df.method == "random") & (df.sparsity == 0.3)].sort_values(
        "epoch"
    )
    np.testing.assert_allclose(lines[1].get_ydata(), sub["ap2"].to_numpy())


def test_ap_pd_curves_averages_trials_and_custom_measures():
    df = results_table(trials=3, datasets=("standin100",))
    fig = plots.ap_pd_curves(df, measures=["ap2", "pd_test"], methods=["highest", "lowest"])
    axes = np.array(fig.axes).reshape(2, 2)
    assert [a.get_title() for a in axes[0]] == ["highest magnitude", "lowest magnitude"]
    sub = df[(df.method == "highest") & (df.sparsity == 0.8)].groupby("epoch")["ap2"].mean()
    np.testing.assert_allclose(axes[0, 0].get_lines()[3].get_ydata(), sub.to_numpy())
    assert "mean of 3 trials" in fig._suptitle.get_text()


def test_ap_pd_curves_errors():
    df = results_table()
    with pytest.raises(ValueError, match="several datasets"):
        plots.ap_pd_curves(df, "alexnet")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ap3_nope'\]"):
        plots.ap_pd_curves(df, "alexnet", "standin10", measures=["ap2", "ap3_nope"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['sparsity'\]"):
        plots.ap_pd_curves(df.drop(columns="sparsity"), "alexnet", "standin10")
    with pytest.raises(ValueError, match=r"method\(s\) \['structured'\] not in the table"):
        plots.ap_pd_curves(df, "alexnet", "standin10", methods=["structured"])
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        plots.ap_pd_curves(df.to_dict(), "alexnet", "standin10")
    with pytest.raises(ValueError, match="no rows"):
        plots.ap_pd_curves(df.iloc[:0], "alexnet", "standin10")


def test_ap_pd_scatter_points_markers_and_legends():
    df = results_table()
    fig = plots.ap_pd_scatter(df, "alexnet")
    axes = np.array(fig.axes).reshape(2, 2)
    assert [a.get_title() for a in axes[0]] == [
        "standin10, epoch 0 (right after pruning)",
        "standin10, epoch 4",
    ]
    assert axes[0, 0].get_xscale() == "log" and axes[0, 0].get_yscale() == "symlog"
    assert "AP2" in axes[1, 1].get_xlabel() and "PD test (pp)" in axes[1, 0].get_ylabel()
    # 12 cells per panel, one scatter collection each, at the table's values
    offs = np.concatenate([c.get_offsets() for c in axes[1, 1].collections])
    assert offs.shape == (12, 2)
    last = df[(df.dataset == "standin100") & (df.epoch == 4)]
    np.testing.assert_allclose(np.sort(offs[:, 0]), np.sort(last["ap2"].to_numpy()))
    texts = legend_texts(fig)
    assert {"lowest magnitude", "random", "highest magnitude", "sparsity 80 %"} <= set(texts)
    assert "synthetic" in fig._suptitle.get_text()


def test_ap_pd_scatter_errors():
    df = results_table()
    with pytest.raises(ValueError, match=r"epoch\(s\) \[7\] not in the table"):
        plots.ap_pd_scatter(df, epochs=[0, 7])
    with pytest.raises(ValueError, match=r"dataset\(s\) \['cifar10'\] not in the table"):
        plots.ap_pd_scatter(df, datasets=["cifar10"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['pd_train'\]"):
        plots.ap_pd_scatter(df.drop(columns="pd_train"), target="pd_train")
    with pytest.raises(ValueError, match="several networks"):
        plots.ap_pd_scatter(results_table(networks=("alexnet", "vgg16")))


def test_correlation_forest_from_correlations():
    df = results_table()
    corr = pd.concat([correlations(df, level=lv, n_boot=50) for lv in ("cells", "epochs")])
    fig = plots.correlation_forest(corr, scale="quick")
    assert len(fig.axes) == 2  # one panel per dataset
    ax = fig.axes[0]
    assert ax.get_xlim() == (-1.05, 1.05)
    assert [t.get_text() for t in ax.get_yticklabels()][0].startswith("AP2")
    assert "Spearman" in ax.get_xlabel() and "95 % bootstrap CI" in ax.get_xlabel()
    assert ax.get_title() == "AlexNet-quick / standin10"  # the quick-scale network, named as such
    texts = legend_texts(fig)
    assert texts == ["across the method x sparsity grid", "across cells and epochs"]
    assert "quick scale" in fig._suptitle.get_text()
    # the dots sit at the table's Spearman values
    dots = [l.get_xdata()[0] for l in ax.get_lines() if l.get_marker() == "o"]
    sel = corr[corr.dataset == "standin10"]
    np.testing.assert_allclose(sorted(dots), sorted(sel["spearman"].to_numpy()))


def test_correlation_forest_undefined_and_errors():
    corr = pd.DataFrame(
        {
            "network": ["alexnet"] * 2,
            "dataset": ["standin10"] * 2,
            "level": ["cells"] * 2,
            "measure": ["ap2", "ap3_t_chunks"],
            "target": ["pd_test"] * 2,
            "spearman": [0.5, np.nan],
            "spearman_low": [0.1, np.nan],
            "spearman_high": [0.8, np.nan],
        }
    )
    fig = plots.correlation_forest(corr)
    assert any(t.get_text() == "undefined" for t in fig.axes[0].texts)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['spearman_low', 'spearman_high'\]"):
        plots.correlation_forest(corr.drop(columns=["spearman_low", "spearman_high"]))
    with pytest.raises(ValueError, match="within"):
        plots.correlation_forest(corr.assign(level="within"))


def test_labels():
    assert plots.network_label("vgg16") == "VGG16"
    assert "real" in plots.dataset_label("standin10") and "synthetic" in plots.dataset_label("standin100")
    assert plots.method_label("lowest") == "lowest magnitude"
    assert plots.measure_label("ap3_foo") == "AP3, foo (nats)"
    assert plots.default_measures(results_table()) == [
        "ap2",
        "ap3_gauss_iso",
        "ap3_laplace_kron",
        "ap3_t_chunks",
    ]


def test_correlation_forest_epoch_levels():
    from latentkit.claims import correlation_levels

    corr = correlation_levels(results_table(datasets=("standin10",)), n_boot=50)
    fig = plots.correlation_forest(corr)
    assert legend_texts(fig) == [
        "across the grid at t=0 (right after pruning)",
        "across the grid at t=4",
        "across cells and epochs",
    ]
    assert sum(l.get_marker() == "o" for l in fig.axes[0].get_lines()) == 12  # 4 measures x 3 levels


def test_config_table():
    from latentkit.grid import ExperimentConfig

    cfg = ExperimentConfig(networks=["vgg16"], max_train_samples=500)
    t = plots.config_table(cfg)
    assert list(t["dataset"]) == ["standin10", "standin100"] and set(t["network"]) == {"VGG16-quick"}
    assert list(t["dense epochs"]) == [cfg.per_network("dense_epochs", "vgg16", d) for d in cfg.datasets]
    assert t["data subset"].iloc[0] == "500/all" and t["sparsities"].iloc[0] == "0.1, 0.3, 0.5, 0.8"
    with pytest.raises(TypeError, match="must be an ExperimentConfig"):
        plots.config_table({"networks": ["vgg16"]})
