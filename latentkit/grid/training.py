r"""Dense training, evaluation, penultimate features and the SGD epoch both training loops share.

Both training loops (dense training and the exact fine-tuning engine) use :func:`sgd_epoch`: one
seeded permutation per epoch, cross-entropy, SGD with momentum and weight decay, at the per-epoch
cosine learning rate :func:`cosine_lr`, :math:`\eta_e = \eta (1 + \cos(\pi e / E)) / 2`.

Examples
--------
>>> from latentkit.grid.training import cosine_lr
>>> cosine_lr(0.1, 0, 10), round(cosine_lr(0.1, 5, 10), 4)
(0.1, 0.05)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import zoo
from .cache import CacheStore, config_hash
from .data import batches, dataset_views, is_tensor_dataset, prepare_model, to_input
from .keys import dense_key
from .plan import GroupPlan

__all__ = [
    "cached_dense_entry",
    "cosine_lr",
    "dense_model",
    "evaluate",
    "evaluate_counts",
    "features",
    "sgd_epoch",
    "sgd_steps",
    "train_dense",
    "warmup_cosine_lr",
]


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    r"""Learning rate of epoch ``epoch`` (0-based) of ``epochs``: :math:`\eta (1 + \cos(\pi e / E)) / 2`.

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=E, eta_min=0)`` stepped once
    per epoch.
    """
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def warmup_cosine_lr(base_lr: float, epoch: int, epochs: int, warmup: int = 0) -> float:
    r"""Learning rate of epoch ``epoch`` (0-based) of ``epochs`` with ``warmup`` linear warm-up epochs.

    .. math::

        \eta_e = \eta \frac{e + 1}{W + 1} \ (e < W), \qquad
        \eta_e = \tfrac12 \eta \big(1 + \cos(\pi (e - W) / (E - W))\big) \ (e \ge W),

    so ``warmup=0`` is :func:`cosine_lr` exactly. ``warmup`` must be smaller than ``epochs``.
    """
    if not 0 <= warmup < epochs:
        raise ValueError(f"warmup must be in [0, epochs={epochs}); got {warmup}")
    if epoch < warmup:
        return base_lr * (epoch + 1) / (warmup + 1)
    return cosine_lr(base_lr, epoch - warmup, epochs - warmup)


@torch.no_grad()
def evaluate_counts(model: nn.Module, ds: Any, plan: GroupPlan) -> tuple[float, int, int]:
    """Mean cross-entropy, number of correct predictions and number of images of ``model`` (eval
    mode) on ``ds`` (batches of ``plan.eval_batch_size`` on ``plan.device``).

    Parameters
    ----------
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in batches(ds, plan.eval_batch_size, None, plan.device, plan.num_workers):
        out = model(to_input(x, plan.channels_last))
        loss += float(F.cross_entropy(out.float(), y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    return loss / n, correct, n


def evaluate(model: nn.Module, ds: Any, plan: GroupPlan) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%, ``100 * correct / n``) of :func:`evaluate_counts`.

    Parameters
    ----------
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    loss, correct, n = evaluate_counts(model, ds, plan)
    return loss, 100.0 * correct / n


def sgd_epoch(
    model: nn.Module,
    opt: Any,
    ds: Any,
    batch_size: int,
    lr: float,
    g: torch.Generator,
    aug_g: torch.Generator | None,
    plan: GroupPlan,
) -> float:
    """One epoch of cross-entropy training at learning rate ``lr`` over ``ds`` in the order drawn from
    ``g`` (the model's train/eval mode is the caller's choice); returns the mean batch loss.
    Dense training and the exact fine-tuning engine share it.

    Parameters
    ----------
    opt : torch.optim.Optimizer
        The optimizer of ``model`` (its learning rate is set to ``lr``).
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    tot, nb = 0.0, 0
    for loss, _, _ in sgd_steps(model, opt, ds, batch_size, lr, g, aug_g, plan):
        tot += float(loss.detach())
        nb += 1
    return tot / max(nb, 1)


def sgd_steps(
    model: nn.Module,
    opt: Any,
    ds: Any,
    batch_size: int,
    lr: float,
    g: torch.Generator,
    aug_g: torch.Generator | None,
    plan: GroupPlan,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The steps of one epoch: set ``lr``, draw the order from ``g``, and per batch one SGD step on
    the cross-entropy; yields ``(loss, outputs, labels)`` of each batch, the outputs taken before
    its update. :func:`sgd_epoch` and the reference loop's running epoch both walk these steps.

    Parameters
    ----------
    opt : torch.optim.Optimizer
        The optimizer of ``model`` (its learning rate is set to ``lr``).
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    for group in opt.param_groups:
        group["lr"] = lr
    order = torch.randperm(len(ds), generator=g)
    for x, y in batches(ds, batch_size, order, plan.device, plan.num_workers, aug_g):
        out = model(to_input(x, plan.channels_last))
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield loss, out, y


def train_dense(
    plan: GroupPlan, views: dict[str, Any] | None = None, progress: bool = False
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Train the dense network of one group; return ``(state_dict, history)``.

    SGD (``momentum``, ``weight_decay``), per-epoch cosine schedule from ``dense_lr``, batches of
    ``dense_batch_size`` in a seeded random order (``dense_warmup_epochs`` of linear warm-up first:
    :func:`warmup_cosine_lr`), seed ``seed + trial`` for the initialisation and
    the order. ``history`` has one dict per epoch (``epoch``, ``lr``, ``train_loss_running`` = mean
    training loss over the epoch's batches, ``train_loss``/``train_acc``/``test_loss``/``test_acc``
    in eval mode, ``train_correct``/``n_train``/``test_correct``/``n_test``, ``time_s``; with
    ``dense_history="test"`` the training set is evaluated after the last epoch only, NaN/None
    before). Not cached: see :func:`dense_model`.
    """
    device = plan.device
    views = views or dataset_views(plan)
    seed = plan.seed + plan.trial
    model = prepare_model(
        zoo.build_model(plan.network, zoo.dataset_num_classes(plan.dataset), seed=seed, **plan.model_kwargs),
        plan.channels_last,
        device,
    )
    epochs, base_lr = int(plan.dense_epochs), float(plan.dense_lr)
    opt = torch.optim.SGD(
        model.parameters(), lr=base_lr, momentum=plan.momentum, weight_decay=plan.weight_decay
    )
    g = torch.Generator().manual_seed(1_000_003 * seed + 17)
    aug_g = torch.Generator().manual_seed(1_000_003 * seed + 29)
    train_ds = views["train_dense"]
    quick_aug = plan.dense_augment and is_tensor_dataset(train_ds)
    history = []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout
        for epoch in range(epochs):
            lr = warmup_cosine_lr(base_lr, epoch, epochs, plan.dense_warmup_epochs)
            model.train()
            running = sgd_epoch(
                model, opt, train_ds, plan.dense_batch_size, lr, g, aug_g if quick_aug else None, plan
            )
            if plan.dense_history == "full" or epoch == epochs - 1:
                tr_loss, tr_correct, n_tr = evaluate_counts(model, views["train_eval"], plan)
                tr_acc = 100.0 * tr_correct / n_tr
            else:  # dense_history="test": the training set only after the last epoch
                tr_loss, tr_correct, n_tr, tr_acc = math.nan, None, len(views["train_eval"]), math.nan
            te_loss, te_correct, n_te = evaluate_counts(model, views["test_eval"], plan)
            te_acc = 100.0 * te_correct / n_te
            history.append(
                {
                    "epoch": epoch + 1,
                    "lr": lr,
                    "train_loss_running": running,
                    "train_loss": tr_loss,
                    "train_acc": tr_acc,
                    "test_loss": te_loss,
                    "test_acc": te_acc,
                    "train_correct": tr_correct,
                    "n_train": n_tr,
                    "test_correct": te_correct,
                    "n_test": n_te,
                    "time_s": time.perf_counter() - t0,
                }
            )
            if progress:
                print(
                    f"  dense {plan.network}/{plan.dataset} trial {plan.trial} epoch {epoch + 1}/{epochs}: "
                    f"train {tr_acc:.1f}% test {te_acc:.1f}%",
                    flush=True,
                )
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return state, history


def cached_dense_entry(store: CacheStore, digest: str) -> dict[str, Any] | None:
    """The cached dense entry ``{"state_dict", "history", ...}`` of ``digest``, or ``None`` when it is
    missing, corrupted, or holds something else (a valid checksum over the wrong content is warned
    about, deleted and retrained)."""
    entry = store.get_torch("dense", digest)
    if entry is None:
        return None
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("state_dict"), dict)
        and isinstance(entry.get("history"), list)
    ):
        store.discard(store.path("dense", digest, ".pt"), "valid checksum but not a dense network entry")
        return None
    return entry


def dense_model(
    plan: GroupPlan, store: CacheStore, views: dict[str, Any], progress: bool = False
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """The group's dense model from the cache (trained and stored first if missing), in eval mode."""
    key = config_hash(dense_key(plan))
    entry = cached_dense_entry(store, key)
    if entry is None:
        state, history = train_dense(plan, views, progress=progress)
        store.put_torch("dense", key, {"state_dict": state, "history": history, "key": dense_key(plan)})
        entry = store.get_torch("dense", key)  # always continue from the stored bits
    model = zoo.build_model(
        plan.network, zoo.dataset_num_classes(plan.dataset), seed=0, **{**plan.model_kwargs, "weights": None}
    )
    model.load_state_dict(entry["state_dict"])
    return prepare_model(model, plan.channels_last, plan.device).eval(), entry["history"]


@torch.no_grad()
def features(model: nn.Module, ds: Any, plan: GroupPlan) -> torch.Tensor:
    """Penultimate features ``(N, F)`` (float32, on ``plan.device``) of ``model`` in eval mode.

    Parameters
    ----------
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    model.eval()
    fx = zoo.feature_extractor(model)
    chunks = [
        fx(to_input(x, plan.channels_last)).float()
        for x, _ in batches(ds, plan.eval_batch_size, None, plan.device, plan.num_workers)
    ]
    return torch.cat(chunks)
