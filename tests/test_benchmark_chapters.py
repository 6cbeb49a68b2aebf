"""The three benchmark chapters come from one template, and their prose follows the data.

* the stored ``book/{alexnet,vgg16,resnet50}.ipynb`` sources are the template rendered per network
  (``book/render_benchmarks.py``): nobody edits one chapter by hand;
* the sentence builders of :mod:`latentkit.claims.prose` on constructed tables with known answers;
* the figure conventions the chapters rely on (quick-scale names, the sparsity colour map, zeros
  inside a symlog axis, stacked forest panels, the stand-in images);
* (slow) the AlexNet chapter rendered against a second, tiny results directory glues values that
  change with the data and match it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest

from latentkit import claims, plots

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def _renderer():
    spec = importlib.util.spec_from_file_location("render_benchmarks", BOOK / "render_benchmarks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cells(nb):
    return [(c.cell_type, c.source, list(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


# --------------------------------------------------------------------------- one source


@pytest.mark.parametrize("network", ["alexnet", "vgg16", "resnet50"])
def test_stored_chapter_is_the_rendered_template(network):
    render = _renderer()
    stored = nbformat.read(BOOK / f"{network}.ipynb", as_version=4)
    assert _cells(stored) == _cells(render.render(network)), (
        f"book/{network}.ipynb differs from book/_templates/benchmark.md rendered for {network}: "
        "edit the template and run `python book/render_benchmarks.py`, then execute the chapter"
    )


def test_template_renders_per_network_and_shows_the_data_once():
    render = _renderer()
    nbs = {n: render.render(n) for n in render.ORDER}
    for net, nb in nbs.items():
        text = "\n".join(c.source for c in nb.cells)
        assert "{{" not in text and "}}" not in text.replace("}}$", "")
        assert nb.cells[0].source.startswith(f"# {render.NETWORKS[net]['Net']}: pruning")
        # data-set names come from the data (glued by position), never from the template
        assert "standin1" not in text.replace("fig-standins", "").replace("standins_caption", "")
        assert f'NETWORK = "{net}"' in text
        assert ("fig-standins" in text) == (net == "alexnet")  # stand-in images shown once
        for c in nb.cells:
            if c.cell_type == "code":
                assert all(len(line) <= 78 for line in c.source.splitlines()), c.source
                assert "def " not in c.source and "NBVAL" not in c.source
    # figure names are unique across the book (Sphinx labels are global)
    labels = [
        line.split(":name:")[1].strip()
        for nb in nbs.values()
        for c in nb.cells
        for line in c.source.splitlines()
        if ":name:" in line
    ]
    assert len(labels) == len(set(labels)) and "fig-vgg16-forest" in labels


def test_template_parser_rejects_text_before_the_first_cell():
    render = _renderer()
    with pytest.raises(ValueError, match="before the first"):
        render.parse_template("stray\n+++ markdown\n# x\n")
    cells = render.parse_template("+++ code only=first tags=a,b\nx = 1\n+++ markdown\n# y\n")
    assert cells[0] == {"cell_type": "code", "only": "first", "tags": ["a", "b"], "source": "x = 1"}
    with pytest.raises(ValueError, match="unknown network"):
        render.render("lenet")


# --------------------------------------------------------------------------- sentences


def _table(deltas_0, deltas_t, n=1000):
    """A results table of one (network, dataset), 1 trial, cells with the given signed changes."""
    rows = []
    cells = [(m, s) for m in ("lowest", "random", "highest") for s in (0.1, 0.8)]
    for epoch, deltas in ((0, deltas_0), (5, deltas_t)):
        for (m, s), d in zip(cells, deltas, strict=True):
            rows.append(
                dict(
                    network="alexnet",
                    dataset="standin10",
                    method=m,
                    sparsity=s,
                    trial=0,
                    epoch=epoch,
                    delta_test=d,
                    pd_test=abs(d),
                    n_test=n,
                )
            )
    return pd.DataFrame(rows)


def test_count_phrase():
    assert claims.count_phrase(6, 6) == "all 6 sub-tests"
    assert claims.count_phrase(0, 6, "cells") == "none of the 6 cells"
    assert claims.count_phrase(4, 6) == "4 of 6 sub-tests"
    assert claims.count_phrase(1, 1, "cells") == "the one cell"
    with pytest.raises(ValueError):
        claims.count_phrase(7, 6)


def test_accuracy_change_summary_counts_gains_losses_and_ties():
    df = _table([0.0, -1.0, -2.0, -30.0, 0.0, -80.0], [0.2, 0.1, -0.3, 0.0, 0.4, -5.0])
    s = claims.accuracy_change_summary(df).set_index("epoch")
    assert s.loc[0, ["gains", "losses", "unchanged"]].tolist() == [0, 4, 2]
    assert s.loc[5, ["gains", "losses", "unchanged"]].tolist() == [3, 2, 1]
    assert s.loc[0, "worst"] == -80.0 and s.loc[0, "worst_cell"] == "highest magnitude at 80 %"
    assert s.loc[5, "best_cell"] == "highest magnitude at 10 %"
    text = claims.change_sentence(s.reset_index().iloc[1])
    assert text.startswith("After 5 fine-tuning epochs") and "3 of 6 cells end *above*" in text
    assert "+0.40 pp" in text and "-5.00 pp" in text
    first = claims.change_sentence(s.reset_index().iloc[0])
    assert "above" not in first and "2 of 6 cells have exactly" in first
    one = claims.change_sentence(s.reset_index().iloc[0].to_dict() | {"unchanged": 1, "losses": 5})
    assert "1 of 6 cells has exactly" in one and "5 of 6 cells end below" in one


def test_sign_disagreements_only_where_a_cell_gained():
    # all changes <= 0: PD and the loss order every pair alike
    df = _table([0.0, -1.0, -2.0, -30.0, 0.0, -80.0], [0.5, -0.5, -1.0, 0.0, 0.0, 0.0])
    d = claims.sign_disagreements(df).set_index("epoch")
    assert d.loc[0, "discordant"] == 0 and d.loc[0, "pairs"] == 15
    # at t=5: +0.5 vs -0.5 tie in PD (not discordant); +0.5 vs -1.0 agree; +0.5 vs 0: PD says worse,
    # loss says better -> discordant, three times (the three zeros)
    assert d.loc[5, "discordant"] == 3 and d.loc[5, "with_gain"] == 5


def test_dense_accuracy_mean_sd():
    dense = pd.DataFrame(
        dict(
            network="vgg16",
            dataset="standin10",
            trial=[0, 0, 1, 1, 2, 2],
            epoch=[1, 2] * 3,
            test_acc=[50.0, 97.0, 60.0, 98.0, 70.0, 99.0],
        )
    )
    r = claims.dense_accuracy(dense).iloc[0]
    assert r["mean"] == pytest.approx(98.0) and r["sd"] == pytest.approx(1.0) and r["trials"] == 3
    assert r["text"] == "98.0 ± 1.0 %" and r["epochs"] == 2
    one = claims.dense_accuracy(dense[dense["trial"] == 0]).iloc[0]
    assert one["text"] == "97.0 % (one trial)" and one["sd"] == 0.0


def test_correlation_and_verdict_sentences():
    corr = pd.DataFrame(
        dict(
            dataset="standin10",
            level="cells@0",
            measure=["ap2", "ap3_fn", "obd"],
            spearman=[0.9, 0.95, -0.7],
            spearman_low=[0.5, 0.8, -0.9],
            spearman_high=[1.0, 1.0, -0.2],
        )
    )
    assert claims.correlation_text(corr, "ap2", "standin10", "cells@0") == "ρ = 0.90 [0.50, 1.00]"
    text = claims.correlation_sentence(corr, "standin10", "cells@0")
    assert text.startswith("Right after pruning, 2 of 3 measures correlate significantly positively")
    assert "1 of 3 measures significantly negatively" in text and "that of AP3_fn (0.95)" in text
    later = corr.assign(level="cells@20")
    assert claims.correlation_sentence(later, "standin10", "cells@20").startswith("After 20 fine")
    with pytest.raises(ValueError):
        claims.correlation_sentence(corr, "standin100", "cells@0")
    verdicts = pd.DataFrame(
        dict(
            claim=["2", "2", "2", "7", "6a"],
            measure=["ap2", "ap3_gauss_iso", "ap3_fn", "ap2", "ap3_fn, pd_test"],
            passed=[6, 6, 4, 10, 3],
            tests=[6, 6, 6, 12, 3],
            verdict=["holds", "holds", "mixed", "mixed", "holds"],
        )
    )
    s = claims.verdict_sentence(verdicts, "2")
    assert s == (
        "*holds* for AP2 and isotropic-Gaussian AP3 (all 6 sub-tests); *mixed* for AP3_fn (4 of 6 sub-tests)"
    )
    assert "10 of 12 comparable pairs ordered alike" in claims.verdict_sentence(verdicts, "7")
    assert claims.verdict_sentence(verdicts, "6a") == "*holds* for AP3_fn with PD (all 3 cells)"
    assert claims.verdict_overview(verdicts) == (
        "holds for every measure: claim 6a; mixed for every measure: claim 7; depends on the measure: claim 2"
    )


# --------------------------------------------------------------------------- figure conventions


def test_quick_networks_named_as_such_and_one_sparsity_map():
    assert plots.network_label("resnet50", "quick") == "ResNet50-quick"
    assert plots.network_label("resnet50", "paper") == "ResNet50" == plots.network_label("resnet50")
    colors = plots.sparsity_colors([0.8, 0.1, 0.5])
    assert list(colors) == [0.1, 0.5, 0.8] and plots.SPARSITY_CMAP == "viridis_r"
    # light = low sparsity: luminance falls with sparsity
    lum = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in colors.values()]
    assert lum[0] > lum[1] > lum[2]


def test_zero_sits_inside_a_symlog_axis():
    from latentkit.plots.style import _log_axis

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0.0, 0.5, 30.0])
    assert _log_axis(ax, np.array([0.0, 0.5, 30.0]))
    bottom, top = ax.get_ylim()
    assert bottom < 0 < top  # a marker at PD = 0 is not cut by the axis
    plt.close(fig)


def test_forest_stacks_panels_and_standin_examples():
    corr = pd.DataFrame(
        dict(
            network="alexnet",
            dataset=["standin10"] * 2 + ["standin100"] * 2,
            level="cells@0",
            target="pd_test",
            measure=["ap2", "ap3_fn"] * 2,
            spearman=0.5,
            spearman_low=0.1,
            spearman_high=0.9,
        )
    )
    fig = plots.correlation_forest(corr, ncols=1)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 and fig.get_size_inches()[0] <= 7.1
    plt.close(fig)
    rng = np.random.default_rng(0)
    ex = {
        "standin10": [(rng.random((3, 8, 8)), k % 4) for k in range(12)],
        "standin100": [(rng.random((8, 8)), k) for k in range(3)],
    }
    fig = plots.standin_examples(ex, per_dataset=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["class 0", "class 1", "class 2", "class 3", "class 0", "class 1", "class 2"]
    assert fig.get_size_inches()[0] <= 7.0
    plt.close(fig)
    with pytest.raises(ValueError):
        plots.standin_examples({})


# --------------------------------------------------------------------------- prose follows the data


def _glued(nb) -> dict[str, str]:
    """Glued values of an executed notebook: name -> text/markdown or text/plain (myst-nb 1.x)."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if not name:
                continue
            data = o.get("data", {})
            for mime in ("text/markdown", "text/plain"):
                key = f"application/papermill.record/{mime}"
                if key in data:
                    out[name] = data[key]
                    break
    return out


@pytest.mark.slow
def test_chapter_rendered_from_another_results_directory_glues_its_values(tmp_path):
    import yaml
    from nbclient import NotebookClient

    from latentkit.grid import dense_table, load_config, run_grid

    cfg = yaml.safe_load((ROOT / "latentkit" / "configs" / "quick.yaml").read_text())
    cfg.update(
        name="tiny",
        networks=["alexnet"],
        datasets=["standin100", "standin10"],
        sparsities=[0.3, 0.8],
        trials=1,
        dense_epochs=1,
        dense_warmup_epochs=0,
        finetune_epochs=2,
        max_train_samples=400,
        max_test_samples=200,
    )
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    results_dir = tmp_path / "results"
    run_grid(load_config(config_file), results_dir, executor="serial")

    nb = _renderer().render("alexnet")
    env = dict(os.environ, LATENTKIT_CONFIG=str(config_file), LATENTKIT_RESULTS=str(results_dir))
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}}
    )
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits the environment
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    new = _glued(nb)
    stored = _glued(nbformat.read(BOOK / "alexnet.ipynb", as_version=4))

    tiny = run_grid(load_config(config_file), results_dir, executor="serial")
    dense = dense_table(load_config(config_file), results_dir)
    # data sets by position in the config: here standin100 first, standin10 second
    assert new["trials"] == "1" and new["ds_1"] == "`standin100`" and new["ds_2"] == "`standin10`"
    n_train = int(tiny.loc[tiny["dataset"] == "standin10", "n_train"].iloc[0])
    assert "`standin10` is an MNIST subset" in new["scale_data"]
    assert f"({n_train:,} training and 200 test images, so one test image is 0.50 pp)" in new["scale_data"]
    acc = claims.dense_accuracy(dense).set_index("dataset")["text"]
    assert new["dense_1"] == acc["standin100"] and new["dense_2"] == acc["standin10"]
    assert new["chance_1"] == "1 %" and new["chance_2"] == "10 %"
    assert new["last_epoch"] == "2"
    summary = claims.accuracy_change_summary(tiny).set_index(["dataset", "epoch"])
    row = summary.loc[("standin10", 2)].to_dict() | {"dataset": "standin10", "epoch": 2}
    assert new["change_2_last"] == claims.change_sentence(row)
    # the stored chapter (the book's 3-trial quick grid) glued other values under the same names
    for key in ("trials", "scale_data", "dense_1", "change_2_last", "ds_1"):
        assert key in stored and stored[key] != new[key], key


# --------------------------------------------------------------------------- the chapter's phrases


def _counts(datasets, n_train, n_test, trials=3):
    return pd.DataFrame(
        [
            dict(dataset=ds, n_train=a, n_test=b, trial=t)
            for ds, a, b in zip(datasets, n_train, n_test, strict=True)
            for t in range(trials)
        ]
    )


def test_chapter_texts_follow_the_config_and_the_data():
    from latentkit.book import chapter_texts
    from latentkit.grid import load_config

    quick = load_config("quick", networks=["vgg16"])
    t = chapter_texts(quick, _counts(["standin10", "standin100"], [4000, 4000], [1000, 2000]), "vgg16")
    assert t["netq"] == "VGG16-quick" and t["preset"] == "quick" and t["trials_text"] == "3 trials"
    assert (
        t["design"] == "lowest magnitude, highest magnitude and random at 4 sparsities (10, 30, 50 and 80 %)"
    )
    assert (t["ds_1"], t["ds_2"], t["chance_1"], t["chance_2"]) == (
        "`standin10`",
        "`standin100`",
        "10 %",
        "1 %",
    )
    assert "(4,000 training and 1,000 test images, so one test image is 0.10 pp)" in t["scale_data"]
    assert "(4,000 training and 2,000 test images, so one test image is 0.05 pp)" in t["scale_data"]
    assert "trained from scratch (no ImageNet weights) on the CPU" in t["scale_data"]
    assert "therefore not the paper's" in t["scale_data"] and "`cached`" in t["engine"]
    assert "quick.yaml" in t["config_source"]
    assert "divided by 8" in t["scale_data"] and "has 512 inputs" in t["scale_data"]
    # a config's width is what the prose describes
    wide = quick.replace(width={"vgg16": 0.25})
    w = chapter_texts(wide, _counts(["standin10", "standin100"], [4000, 4000], [1000, 2000]), "vgg16")
    assert "divided by 4" in w["scale_data"] and "has 1024 inputs" in w["scale_data"]
    # the paper's setting: full CIFAR test sets and ImageNet weights, the exact engine
    paper = load_config("paper", networks=["resnet50"], trials=1, sparsities=[0.5])
    p = chapter_texts(paper, _counts(["cifar10", "cifar100"], [50000, 50000], [10000, 10000], 1), "resnet50")
    assert p["netq"] == "ResNet50" and p["trials_text"] == "1 trial"
    assert p["design"].endswith("at 1 sparsity (50 %)")
    assert "`cifar10` is CIFAR-10 at 224 px (50,000 training and 10,000 test images" in p["scale_data"]
    assert "starting from torchvision's ImageNet weights" in p["scale_data"]
    assert "This is the paper's setting" in p["scale_data"] and "`exact`" in p["engine"]
    assert "in train mode" in p["engine"]
    # a subset of CIFAR is said to be one
    sub = chapter_texts(paper, _counts(["cifar10", "cifar100"], [2, 2], [2, 2], 1), "resnet50")
    assert "subsets of CIFAR's" in sub["scale_data"] and "50.00 pp" in sub["scale_data"]


def test_chapter_texts_reject_bad_input():
    from latentkit.book import chapter_texts, examples_caption
    from latentkit.grid import load_config

    quick = load_config("quick", networks=["alexnet"])
    ok = _counts(["standin10", "standin100"], [10, 10], [10, 10])
    with pytest.raises(ValueError, match="network"):
        chapter_texts(quick, ok, "vgg16")
    with pytest.raises(ValueError, match="standin100"):
        chapter_texts(quick, ok[ok["dataset"] == "standin10"], "alexnet")
    with pytest.raises(ValueError, match="n_test"):
        chapter_texts(quick, ok.drop(columns="n_test"), "alexnet")
    with pytest.raises(TypeError, match="config"):
        chapter_texts({"name": "quick"}, ok, "alexnet")
    with pytest.raises(TypeError, match="results"):
        chapter_texts(quick, ok.to_dict(), "alexnet")
    with pytest.raises(ValueError, match="empty"):
        examples_caption({})
    with pytest.raises(TypeError, match="mapping"):
        examples_caption([1])

    class _DS:
        description = "stand-in for CIFAR10: digits."

    assert examples_caption({"a": _DS(), "b": object()}) == (
        "Row 1: `a`, stand-in for CIFAR10: digits. Row 2: `b`, b."
    )


def test_describe_network():
    from latentkit.zoo import describe_network

    assert "512 inputs" in describe_network("alexnet") and "4096 inputs" in describe_network("vgg16", "paper")
    # the quick phrase is read from the network: a config's width changes it
    from latentkit.zoo import build_model, classifier_layer

    for net in ("alexnet", "vgg16", "resnet50"):
        inputs = classifier_layer(build_model(net, 10, width=0.25, seed=0))[1].in_features
        text = describe_network(net, width=0.25)
        assert f"has {inputs} inputs" in text and "divided by 4" in text and "divided by 8" not in text
    assert "multiplied by 0.3" in describe_network("vgg16", width=0.3)
    with pytest.raises(ValueError, match="preset"):
        describe_network("alexnet", "huge")
    with pytest.raises(ValueError, match="network"):
        describe_network("lenet")


@pytest.mark.parametrize("network", ["alexnet", "vgg16", "resnet50"])
def test_markdown_glues_are_pasted_as_markdown(network):
    """A value glued as Markdown renders as '<IPython.core.display.Markdown object>' through
    {glue:text}: the chapter must paste it with {glue:md} (tests/check_book.py also looks for such
    reprs in the built HTML)."""
    import re

    nb = nbformat.read(BOOK / f"{network}.ipynb", as_version=4)
    markdown = set()
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name and "application/papermill.record/text/markdown" in o.get("data", {}):
                markdown.add(name)
    assert {"netq", "scale_data", "ds_1"} <= markdown
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    as_text = set(re.findall(r"\{glue:text\}`([^`:]+)", text))
    assert not as_text & markdown, sorted(as_text & markdown)
