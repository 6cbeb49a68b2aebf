"""The paper path end to end on CPU (issue 10, section 2).

The shipped ``paper`` and ``reference`` configs run as they are, with overrides that only make them
small: a miniature CIFAR10 and CIFAR100 archive in torchvision's on-disk format (2 training and 2
test images used from each), one dense and one fine-tuning epoch, one trial, the config's three
methods at one or two sparsities, no ImageNet weights (``weights: null``), batches of 2. Everything
else is the configs': the full torchvision AlexNet, VGG16 and ResNet50 at 224 px (RandomResizedCrop + flip),
the exact engine fine-tuning in train mode, every AP3 latent of the config (the Kronecker/Laplace
fit included) and the reference's measures (its Monte Carlo Student-t AP3 with 1,000 samples x 2
repeats instead of 600,000 x 100). Then, from those results directories, what a user renders:
the three benchmark chapters (``LATENTKIT_SCALE=paper``, ``LATENTKIT_CONFIG`` / ``LATENTKIT_RESULTS``
naming the run) execute, and glue every value their prose refers to, and ``write_report`` writes
the report (for the reference run with the 3.8 AP2 rescaling).

Measured on this 2-core machine, otherwise idle: 93 s for ``paper`` (its grid of 6 groups x 6 cells
about 55 s, the report, then the three chapters about 30 s) and 46 s for ``reference`` (grid and
report). VGG16 at 224 px dominates the grids (a quarter of its group is the 4096 x 4096
Kronecker/Laplace AP3).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from _cifar import write_mini_cifar

from latentkit.grid import EXTRA_MEASURES, load_config, run_grid, shipped_configs
from latentkit.options import VERDICTS
from latentkit.report import write_report

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

#: Images of the miniature archives: CIFAR10 has 5 training batches of 1 image, 4 test images.
N_TRAIN, N_TEST = 2, 2

SMALL = dict(
    trials=1,
    dense_epochs=1,
    finetune_epochs=1,
    weights=None,
    dense_batch_size=N_TRAIN,
    finetune_batch_size=N_TRAIN,
    eval_batch_size=2 * N_TEST,
    num_workers=0,
    device="cpu",
    max_train_samples=N_TRAIN,
    max_test_samples=N_TEST,
)

#: Per config: the sparsities of the small run (the chapters need two to test claim 4 on the paper
#: run; the reference run feeds only the report). The methods are the config's own three.
SPARSITIES = {"paper": [0.3, 0.8], "reference": [0.5]}
#: Reference mode only: a Monte Carlo AP3 small enough for a CPU.
EXTRA = {"reference": dict(reference_mc_samples=1000, reference_mc_repeats=2)}


@pytest.fixture(scope="module")
def mini_cifar(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = write_mini_cifar(tmp_path_factory.mktemp("cifar"), mp, n10=(1, N_TEST), n100=(N_TRAIN, N_TEST))
    yield root
    mp.undo()


def _small(name: str, root: Path):
    return load_config(
        name,
        name=f"{name}_small",
        data_root=str(root),
        sparsities=SPARSITIES[name],
        **SMALL,
        **EXTRA.get(name, {}),
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["paper", "reference"])
def test_paper_path_end_to_end(name, mini_cifar, tmp_path):
    if name not in shipped_configs():
        pytest.skip(f"latentkit/configs/{name}.yaml is not shipped yet")
    threads = torch.get_num_threads()
    config = _small(name, mini_cifar)
    full = load_config(name)
    assert (config.engine, config.finetune_bn, config.preset, config.layers) == (
        full.engine,
        full.finetune_bn,
        "paper",
        "last",
    )
    assert config.engine == "exact" and config.finetune_bn == "train"
    df = run_grid(config, tmp_path / name)
    n_groups = len(full.networks) * len(full.datasets)
    assert config.methods == full.methods
    n_cells = len(config.methods) * len(config.sparsities)
    assert len(df) == n_groups * n_cells * (config.finetune_epochs + 1)
    assert set(df["network"]) == {"alexnet", "vgg16", "resnet50"}
    assert set(df["dataset"]) == {"cifar10", "cifar100"}
    assert set(df["scale"]) == {"paper"} and set(df["engine"]) == {"exact"}
    ap3 = [c for c in df.columns if c.startswith("ap3_")]
    assert {f"ap3_{s['name']}" for s in config.ap3} <= set(ap3)
    assert set(EXTRA_MEASURES[m] for m in config.extra_measures) <= set(df.columns)
    for col in ["ap2", *ap3, "train_loss", "test_loss", "pd_test", "pd_train"]:
        assert df[col].map(lambda v: isinstance(v, float) and math.isfinite(v)).all(), col
    # accuracies on N_TEST test images are multiples of 100 / N_TEST %
    assert ((df["test_acc"] * N_TEST / 100.0).round(9) % 1 == 0).all()
    assert (df["mask_sparsity"] - df["sparsity"]).abs().max() < 0.01
    for f in ("results.csv", "dense.csv", "config.yaml"):
        assert (tmp_path / name / f).is_file()
    assert torch.get_num_threads() == threads

    # the report of the run (reference mode: with the reference code's per-trial AP2 rescaling)
    written = {p.name for p in write_report(tmp_path / name, n_boot=50)}
    assert {"summary.csv", "correlations.csv", "claims.csv", "summary.txt"} <= written
    assert ("reference_rescale.csv" in written) == (name == "reference")
    verdicts = pd.read_csv(
        tmp_path / name / "report" / "claims.csv", dtype={"claim": str}, keep_default_na=False
    )
    assert set(verdicts["verdict"]) <= set(VERDICTS)
    # claim 5 (lowest < random < highest) is tested with the run's methods in the paper's roles
    assert (verdicts.loc[verdicts["claim"] == "5", "tests"] > 0).all()
    if name == "paper":
        _render_chapters(tmp_path / name)


def _glue_refs(nb) -> set[str]:
    """Every glue name the notebook's markdown refers to ({glue:...}`name` roles, glue:figure)."""
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    roles = re.findall(r"\{glue(?::\w+)?\}`([^`:]+)(?::[^`]*)?`", text)
    figures = re.findall(r"```\{glue:figure\} (\S+)", text)
    return set(roles) | set(figures)


def _checksum_cell() -> str:
    """Source of a first cell that gives the chapter's kernel this process's (monkeypatched)
    CIFAR checksums, so torchvision accepts the miniature archives there too."""
    import torchvision.datasets as tvd

    lines = ["import torchvision.datasets as tvd"]
    for cls in ("CIFAR10", "CIFAR100"):
        c = getattr(tvd, cls)
        for attr in ("train_list", "test_list", "meta"):
            lines.append(f"tvd.{cls}.{attr} = {getattr(c, attr)!r}")
    return "\n".join(lines)


def _render_chapters(out: Path) -> None:
    """Execute the three benchmark chapters against the results in ``out``, as
    ``LATENTKIT_SCALE=paper LATENTKIT_CONFIG=out/config.yaml LATENTKIT_RESULTS=out`` would."""
    import nbformat
    from nbclient import NotebookClient
    from test_benchmark_chapters import _glued, _renderer

    render = _renderer()
    env = {
        "LATENTKIT_SCALE": "paper",
        "LATENTKIT_CONFIG": str(out / "config.yaml"),
        "LATENTKIT_RESULTS": str(out),
    }
    old = dict(os.environ)
    os.environ.update(env)  # the kernels inherit the environment
    try:
        for net in render.ORDER:
            nb = render.render(net)
            # the kernel checks the miniature archives' checksums as this process does (write_mini_cifar)
            nb.cells.insert(0, nbformat.v4.new_code_cell(_checksum_cell()))
            client = NotebookClient(
                nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}}
            )
            client.execute()
            glued = _glued(nb)
            missing = _glue_refs(nb) - set(glued)
            assert not missing, f"{net}: prose refers to values the chapter did not glue: {sorted(missing)}"
            assert glued["preset"] == "paper"
            assert (glued["ds_1"], glued["ds_2"]) == ("`cifar10`", "`cifar100`")
            assert "CIFAR-10 at 224 px (" in glued["scale_data"]
            assert "subsets of CIFAR" in glued["scale_data"]
            assert glued["trials"] == "1"
            assert "exact" in glued["engine"]
    finally:
        os.environ.clear()
        os.environ.update(old)
