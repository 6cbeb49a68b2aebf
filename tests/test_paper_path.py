"""The paper path end to end on CPU (issue 10, section 2).

The shipped ``paper`` and ``reference`` configs run as they are, with overrides that only make them
small: a miniature CIFAR10 and CIFAR100 archive in torchvision's on-disk format (2 training and 2
test images used from each), one dense and one fine-tuning epoch, one trial, one (method, sparsity)
cell per group, no ImageNet weights (``weights: null``), batches of 2. Everything else is the
configs': the full torchvision AlexNet, VGG16 and ResNet50 at 224 px (RandomResizedCrop + flip),
the exact engine fine-tuning in train mode, every AP3 latent of the config (the Kronecker/Laplace
fit included) and the reference's measures (its Monte Carlo Student-t AP3 with 1,000 samples x 2
repeats instead of 600,000 x 100).

Measured on the shared 2-core machine (load ~2): 81 s (paper) + 66 s (reference) with 2 images;
with 4 images 194 s + 159 s. VGG16 at 224 px dominates (about 36 s for one (network, dataset)
group with 4 images, a quarter of it the 4096 x 4096 Kronecker/Laplace AP3).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _cifar import write_mini_cifar

from latentkit.grid import EXTRA_MEASURES, load_config, run_grid, shipped_configs

#: Images of the miniature archives: CIFAR10 has 5 training batches of 1 image, 4 test images.
N_TRAIN, N_TEST = 2, 2

SMALL = dict(
    trials=1,
    dense_epochs=1,
    finetune_epochs=1,
    weights=None,
    sparsities=[0.5],
    dense_batch_size=N_TRAIN,
    finetune_batch_size=N_TRAIN,
    eval_batch_size=2 * N_TEST,
    num_workers=0,
    device="cpu",
    max_train_samples=N_TRAIN,
    max_test_samples=N_TEST,
)

#: Per config: the one method of the small run (the reference's own random mask for reference mode).
METHODS = {"paper": ["lowest"], "reference": ["random_reference"]}
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
        name, name=f"{name}_small", data_root=str(root), methods=METHODS[name], **SMALL, **EXTRA.get(name, {})
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
    assert len(df) == n_groups * (config.finetune_epochs + 1)
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
    assert (df["mask_sparsity"] - 0.5).abs().max() < 0.01
    for f in ("results.csv", "dense.csv", "config.yaml"):
        assert (tmp_path / name / f).is_file()
    assert torch.get_num_threads() == threads
