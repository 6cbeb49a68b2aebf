"""Real CIFAR10/100 through ``torchvision.datasets``, with the reference transforms at paper scale.

Nothing is downloaded unless asked: :func:`check_cifar_present` names the folder and the missing
files of an archive that is not there.

Examples
--------
>>> from latentkit.zoo.cifar import paper_normalization
>>> mean, std = paper_normalization('cifar10')
>>> len(mean), len(std)
(3, 3)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_choice
from ..options import NORMALIZATIONS
from .base import TensorImageDataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "REFERENCE_CIFAR10_MEAN",
    "REFERENCE_CIFAR10_STD",
    "check_cifar_present",
    "paper_normalization",
]

# Statistics used by the reference transforms (ImageNet, because the networks are ImageNet-pretrained).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-channel statistics of the CIFAR training sets (used at quick scale, trained from scratch).
CIFAR_MEAN = {"cifar10": (0.4914, 0.4822, 0.4465), "cifar100": (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {"cifar10": (0.2470, 0.2435, 0.2616), "cifar100": (0.2673, 0.2564, 0.2762)}


# The reference code's CIFAR10 statistics (std as in the usual CIFAR10 recipes, not the exact 0.247...).
REFERENCE_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
REFERENCE_CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def paper_normalization(
    name: str, normalization: str = "imagenet"
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    r"""Per-channel ``(mean, std)`` of the 224 px (paper-preset) transform, :math:`x' = (x - \mu) / \sigma`.

    Parameters
    ----------
    name : {"cifar10", "cifar100"}
    normalization : {"imagenet", "reference"}
        ``"imagenet"`` (default, latentkit): ImageNet statistics for both data sets (the networks
        are ImageNet-pretrained). ``"reference"``: the reference code's choice, ImageNet statistics
        for CIFAR10 but CIFAR10's (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010) for CIFAR100.

    Returns
    -------
    (mean, std) : two tuples of three floats
    """
    check_choice(name, "dataset", ("cifar10", "cifar100"))
    check_choice(normalization, "normalization", NORMALIZATIONS)
    if normalization == "reference" and name == "cifar100":
        return REFERENCE_CIFAR10_MEAN, REFERENCE_CIFAR10_STD
    return IMAGENET_MEAN, IMAGENET_STD


def _cifar_class(name: str):
    import torchvision.datasets as tvd

    return tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100


def check_cifar_present(name: str, root: Path) -> None:
    cls = _cifar_class(name)
    folder = root / cls.base_folder
    needed = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name} not found: looked in {folder} and did not find {', '.join(missing)}. "
            f"Fix: call load_dataset({name!r}, ..., root={str(root)!r}, download=True) to download "
            f"{cls.url} (about {'163' if name == 'cifar10' else '161'} MB) once, or extract {cls.filename} "
            f"into {root}, or point root= / $LATENTKIT_DATA at the folder that holds {cls.base_folder}/; "
            f"offline, use the stand-in {'standin10' if name == 'cifar10' else 'standin100'}."
        )


def _cifar(
    name: str,
    split: str,
    root: Path,
    download: bool,
    scale: str,
    augment: bool,
    image_size: int | None,
    normalization: str = "imagenet",
) -> torch.utils.data.Dataset:
    import torchvision.transforms as T

    if not download:
        check_cifar_present(name, root)
    cls = _cifar_class(name)
    train = split == "train"
    if scale == "paper":
        size = 224 if image_size is None else image_size
        if train and augment:
            geo = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
        else:
            geo = [T.Resize(size)]
        mean, std = paper_normalization(name, normalization)
        tf = T.Compose(geo + [T.ToTensor(), T.Normalize(mean, std)])
        ds = cls(root=str(root), train=train, transform=tf, download=download)
        return ds
    # quick: decode once into tensors (no per-item PIL work); 32 px, CIFAR statistics.
    ds = cls(root=str(root), train=train, transform=None, download=download)
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(CIFAR_MEAN[name]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD[name]).view(1, 3, 1, 1)
    x = (x - mean) / std
    if image_size is not None and image_size != 32:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    if augment and train:
        warnings.warn(
            "augment=True at quick scale is applied by the training loop (random crop + flip), "
            "not by the dataset",
            stacklevel=3,
        )
    return TensorImageDataset(
        x.contiguous(),
        y,
        classes=ds.classes,
        name=name,
        split=split,
        synthetic=False,
        description=f"{name.upper()} ({split}, 32 px, real images)",
    )
