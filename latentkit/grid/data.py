"""Data plumbing of a group: its dataset views, batches on the device, labels, input layout.

Examples
--------
>>> import torch
>>> from latentkit.grid.data import is_tensor_dataset
>>> is_tensor_dataset(torch.utils.data.TensorDataset(torch.zeros(2, 1)))
False
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import zoo
from .plan import GroupPlan

__all__ = [
    "batches",
    "dataset_views",
    "is_tensor_dataset",
    "labels",
    "prepare_model",
    "shift_flip",
    "to_input",
]


def dataset_views(plan: GroupPlan) -> dict[str, torch.utils.data.Dataset]:
    """The views a group needs: ``train_dense``, ``train_finetune``, ``train_eval`` and ``test_eval``.

    The training views are the evaluation view itself unless their augmentation is on.
    """
    common = dict(root=plan.data_root, download=plan.download, scale=plan.preset, seed=plan.data_seed)
    if plan.normalization != "imagenet":  # the reference's per-dataset statistics (paper-preset CIFAR)
        common["normalization"] = plan.normalization
    name = plan.dataset
    views = {
        "train_eval": zoo.load_dataset(
            name, "train", augment=False, max_samples=plan.max_train_samples, **common
        ),
        "test_eval": zoo.load_dataset(
            name, "test", augment=False, max_samples=plan.max_test_samples, **common
        ),
    }
    for key, aug in (("train_dense", plan.dense_augment), ("train_finetune", plan.finetune_augment)):
        if not aug:
            views[key] = views["train_eval"]
        else:
            views[key] = zoo.load_dataset(
                name, "train", augment=True, max_samples=plan.max_train_samples, **common
            )
    return views


def is_tensor_dataset(ds: Any) -> bool:
    """Whether ``ds`` is an in-memory tensor dataset (the stand-ins, quick preset).

    Parameters
    ----------
    ds : object
        Any dataset.
    """
    return isinstance(ds, zoo.TensorImageDataset)


def shift_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translation by up to 4 px (zero padding) and horizontal flip: quick-preset augmentation."""
    n = x.shape[0]
    pad = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=g).tolist()
    dy = torch.randint(0, 9, (n,), generator=g).tolist()
    flip = (torch.rand(n, generator=g) < 0.5).tolist()
    out = torch.stack([pad[i, :, dy[i] : dy[i] + x.shape[2], dx[i] : dx[i] + x.shape[3]] for i in range(n)])
    idx = [i for i in range(n) if flip[i]]
    if idx:
        out[idx] = out[idx].flip(-1)
    return out


def batches(
    ds: Any,
    batch_size: int,
    order: torch.Tensor | None,
    device: torch.device,
    num_workers: int = 0,
    augment_gen: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(x, y)`` on ``device`` in the given index order (``None``: sequential).

    Tensor datasets are sliced directly (``augment_gen``: :func:`shift_flip` each batch); other
    datasets go through a ``DataLoader`` with ``num_workers`` workers.

    Parameters
    ----------
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    n = len(ds)
    if is_tensor_dataset(ds):
        for i in range(0, n, batch_size):
            if order is None:
                x, y = ds.images[i : i + batch_size], ds.targets[i : i + batch_size]
            else:
                idx = order[i : i + batch_size]
                x, y = ds.images[idx], ds.targets[idx]
            if augment_gen is not None:
                x = shift_flip(x, augment_gen)
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    else:
        sampler = list(range(n)) if order is None else order.tolist()
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)


def labels(ds: Any, device: torch.device) -> torch.Tensor:
    """All labels of ``ds`` (int64, on ``device``) in dataset order.

    Parameters
    ----------
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    if is_tensor_dataset(ds):
        return ds.targets.to(device)
    base, idx = (ds.dataset, ds.indices) if isinstance(ds, torch.utils.data.Subset) else (ds, None)
    t = torch.as_tensor(base.targets, dtype=torch.int64)
    return (t if idx is None else t[torch.as_tensor(idx)]).to(device)


def prepare_model(model: nn.Module, channels_last: bool, device: torch.device) -> nn.Module:
    """``model`` on ``device``, in channels-last memory format if asked."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def to_input(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch in the memory format the model was prepared for (channels-last for 4-d images)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
