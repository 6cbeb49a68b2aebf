"""What every data set of the zoo shares: :class:`TensorImageDataset`, class counts, the data root.

Examples
--------
>>> from latentkit.zoo.base import dataset_num_classes
>>> dataset_num_classes('cifar10'), dataset_num_classes('cifar100')
(10, 100)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .._validation import check_choice
from ..options import DATASETS

__all__ = ["TensorImageDataset", "default_data_root", "dataset_num_classes"]

_NUM_CLASSES = {
    "cifar10": 10,
    "cifar100": 100,
    "standin10": 10,
    "standin100": 100,
    "standin10_digits": 10,
}


class TensorImageDataset(torch.utils.data.TensorDataset):
    """``TensorDataset(images (N, 3, H, W) float32, labels (N,) int64)`` with metadata.

    Attributes: ``images``, ``targets``, ``classes`` (names), ``num_classes``, ``name``,
    ``split``, ``synthetic`` (bool) and ``description`` (a sentence for figure captions).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        classes: Sequence[str],
        name: str,
        split: str,
        synthetic: bool,
        description: str,
    ) -> None:
        super().__init__(images, labels)
        self.images = images
        self.targets = labels
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.name = name
        self.split = split
        self.synthetic = synthetic
        self.description = description

    def __repr__(self) -> str:
        return (
            f"TensorImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={tuple(self.images.shape[1:])}, classes={self.num_classes}, synthetic={self.synthetic})"
        )


def default_data_root() -> Path:
    """``$LATENTKIT_DATA`` if set, else ``~/.cache/latentkit/data``."""
    return Path(os.environ.get("LATENTKIT_DATA", Path.home() / ".cache" / "latentkit" / "data")).expanduser()


def dataset_num_classes(name: str) -> int:
    """Number of classes of a dataset name (10 or 100)."""
    check_choice(name, "dataset", DATASETS)
    return _NUM_CLASSES[name]
