r"""The two fine-tuning engines behind one interface, :class:`FineTuneEngine`.

Both get a :class:`DenseGroup` (the dense model of one (network, dataset, trial), its features,
labels and the measures) and return ``{(method, sparsity): rows}``, one row per epoch ``t = 0..T``.

``exact`` (:class:`ExactEngine`)
    The reference's loop: full forward/backward through the whole network for every batch,
    only the last layer's unpruned weights and its bias trainable
    (:func:`latentkit.pruning.freeze_all_but` + :class:`latentkit.pruning.MaskedOptimizer`).
    With ``finetune_bn="train"`` the network is in train mode during fine-tuning as in the
    reference code: BatchNorm running statistics drift and dropout is active, so the frozen
    backbone's features *change* during fine-tuning (reference departure 3 in the book's chapter on
    the paper, section 4).
    With ``finetune_bn="eval"`` the backbone is a fixed function. With
    ``finetune_protocol="reference"`` the loop is the reference code's (:func:`reference_trainable`,
    :func:`running_epoch`): train mode, every parameter in the new SGD but the ``.weight``
    gradients of the other modules zeroed (biases and BatchNorm shifts of the whole network keep
    training), and ``train_loss`` / ``train_acc`` / ``pd_train`` from the running, augmented
    training batches of the epoch (no separate pass over the training set).
``cached`` (:class:`CachedEngine`)
    The backbone is frozen in eval mode, so the fine-tuning of the last layer is a linear
    softmax model on fixed penultimate features. All (method x sparsity) cells are fine-tuned
    as one batched tensor program (:func:`finetune_cached`). It needs ``finetune_bn="eval"`` and
    no fine-tuning augmentation; it then agrees with ``exact`` to float rounding (tested:
    accuracies within 0.1 pp).

Both use the same batches (one seeded permutation per epoch), the same per-epoch cosine schedule
:math:`\eta_e = \eta (1 + \cos(\pi e / E)) / 2` and SGD with the plan's momentum and weight decay.

Examples
--------
>>> import torch
>>> from latentkit.grid.engines import batched_eval
>>> W, b = torch.eye(2).unsqueeze(0), torch.zeros(1, 2)
>>> X, y = torch.eye(2), torch.tensor([0, 1])
>>> loss, correct = batched_eval(W, b, X, y, chunk=1)
>>> correct.tolist()
[2]
"""

from __future__ import annotations

import abc
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import zoo
from ..pruning import MaskedOptimizer, effective_weight, freeze_all_but, prune
from .cache import CacheStore
from .data import dataset_views, is_tensor_dataset, labels
from .keys import cell_seed, finetune_seed
from .measures import APMeasure, FunctionMeasure, no_function_measures
from .plan import GroupPlan
from .reference_loop import Counts, _running_counts, reference_trainable, running_epoch
from .training import cosine_lr, dense_model, evaluate_counts, features, sgd_epoch

__all__ = [
    "ENGINE_CLASSES",
    "CachedEngine",
    "DenseGroup",
    "ExactEngine",
    "FineTuneEngine",
    "batched_eval",
    "finetune_cached",
    "group_rows",
    "prune_copy",
    "reference_trainable",
    "running_epoch",
]

Cell = tuple[str, float]
Rows = dict[Cell, list[dict[str, Any]]]


def accuracy_change(correct: int, dense_correct: int, n: int) -> float:
    r"""Signed accuracy change in percentage points from counts: :math:`100 (c - c_{dense}) / n`.

    Computed from the integers, so equal count differences give bit-equal changes (no float
    accuracy is subtracted); ``pd = |delta|``.
    """
    return 100.0 * (int(correct) - int(dense_correct)) / int(n)


# ============================================================================================ pruning a copy
def prune_copy(
    dense: nn.Module, method: str, sparsity: float, seed: int, whole: bool, layers: str = "last"
) -> tuple[nn.Module, str, Any]:
    """Prune a copy of the last layer of ``dense`` (``whole``: of the whole network).

    Every grid method looks at the last layer's weights only, so pruning a copy of that layer alone
    (held in a module tree under the same name) gives the same mask and weights as pruning a copy
    of the network, without copying the backbone (the cached engine's case). ``layers="all"``
    prunes every layer of a copy of the network (``scope="layer"``).
    """
    name, layer = zoo.classifier_layer(dense)
    if layers == "all":
        model = copy.deepcopy(dense)
        result = prune(model, method, float(sparsity), layers="all", scope="layer", seed=seed)
        if name not in result.masks:
            raise RuntimeError(f"pruning all layers missed the classifier layer {name!r}")
        return model, name, result
    if whole:
        model = copy.deepcopy(dense)
    else:
        model = nn.Module()
        parent, _, leaf = name.rpartition(".")
        holder = model
        for part in parent.split(".") if parent else []:
            sub = nn.Module()
            holder.add_module(part, sub)
            holder = sub
        holder.add_module(leaf, copy.deepcopy(layer))
    result = prune(model, method, float(sparsity), layers="last", scope="layer", seed=seed)
    if set(result.masks) != {name}:
        raise RuntimeError(f"pruning touched {list(result.masks)} but the classifier layer is {name!r}")
    return model, name, result


# ============================================================================================ the dense group
@dataclass
class DenseGroup:
    """What both engines share for one group: the dense model, its last layer, features and measures."""

    plan: GroupPlan
    views: dict[str, Any]
    dense: nn.Module
    layer_name: str
    X_tr: torch.Tensor
    X_te: torch.Tensor
    y_tr: torch.Tensor
    y_te: torch.Tensor
    measure: APMeasure
    dense_info: dict[str, float]
    fn: FunctionMeasure | Callable[..., dict[str, torch.Tensor]]

    @classmethod
    def load(cls, plan: GroupPlan, store: CacheStore, progress: bool = False) -> DenseGroup:
        """Dense model (cache or training), penultimate features of both views, labels and dense metrics."""
        views = dataset_views(plan)
        dense, _ = dense_model(plan, store, views, progress)
        lname, layer = zoo.classifier_layer(dense)
        w_dense, b_dense = layer.weight.detach().float(), layer.bias.detach().float()
        X_tr, X_te = features(dense, views["train_eval"], plan), features(dense, views["test_eval"], plan)
        y_tr, y_te = labels(views["train_eval"], plan.device), labels(views["test_eval"], plan.device)
        measure = APMeasure(
            plan.ap3_specs,
            plan.extra_measures,
            w_dense,
            X_tr,
            F.linear(X_tr, w_dense, b_dense),
            mc_samples=plan.reference_mc_samples,
            mc_repeats=plan.reference_mc_repeats,
        )
        chunk = plan.eval_batch_size
        d_tr_loss, d_tr_c = batched_eval(w_dense[None], b_dense[None], X_tr, y_tr, chunk)
        d_te_loss, d_te_c = batched_eval(w_dense[None], b_dense[None], X_te, y_te, chunk)
        n_tr, n_te = len(y_tr), len(y_te)
        info = {
            "dense_train_acc": 100.0 * int(d_tr_c[0]) / n_tr,
            "dense_test_acc": 100.0 * int(d_te_c[0]) / n_te,
            "dense_train_loss": float(d_tr_loss[0]),
            "dense_test_loss": float(d_te_loss[0]),
            "dense_train_correct": int(d_tr_c[0]),
            "dense_test_correct": int(d_te_c[0]),
        }
        fn = FunctionMeasure(w_dense, b_dense, X_te, X_tr) if plan.function_measures else no_function_measures
        return cls(plan, views, dense, lname, X_tr, X_te, y_tr, y_te, measure, info, fn)

    def pruned_cells(self, whole: bool) -> Iterator[tuple[str, float, nn.Module, Any]]:
        """``(method, sparsity, pruned model, PruneResult)`` of every cell, in the plan's order."""
        for method, sparsity in self.plan.cells:
            seed = cell_seed(self.plan, method, sparsity)
            model, _, result = prune_copy(self.dense, method, sparsity, seed, whole, self.plan.layers)
            yield method, sparsity, model, result

    def row(
        self,
        method: str,
        sparsity: float,
        epoch: int,
        w: torch.Tensor,
        tr: Counts,
        te: Counts,
        wall: float,
        mask: torch.Tensor,
        k: int,
        fn: dict[str, float],
        ap2_all: float | None = None,
    ) -> dict[str, Any]:
        """One result row (column order is the table's).

        ``tr`` / ``te``: ``(loss, correct, n)`` of the pruned network; accuracies are
        ``100 c / n``, ``delta_*`` = :func:`accuracy_change` and ``pd_* = |delta_*|``; ``fn``: the
        :class:`~latentkit.grid.measures.FunctionMeasure` values of this cell and epoch.
        """
        p, info = self.plan, self.dense_info
        row = {
            "network": p.network,
            "dataset": p.dataset,
            "method": method,
            "sparsity": float(sparsity),
            "trial": p.trial,
            "epoch": epoch,
            "engine": p.engine,
            "scale": p.preset,
        }
        row.update(self.measure(w))
        row.update(fn)
        row.update(
            {
                "train_loss": tr[0],
                "train_acc": 100.0 * tr[1] / tr[2],
                "test_loss": te[0],
                "test_acc": 100.0 * te[1] / te[2],
                "train_correct": int(tr[1]),
                "n_train": int(tr[2]),
                "test_correct": int(te[1]),
                "n_test": int(te[2]),
            }
        )
        row.update(info)
        row["delta_train"] = accuracy_change(tr[1], info["dense_train_correct"], tr[2])
        row["delta_test"] = accuracy_change(te[1], info["dense_test_correct"], te[2])
        row["pd_train"] = abs(row["delta_train"])
        row["pd_test"] = abs(row["delta_test"])
        row["sparsity_achieved"] = float((w == 0).sum()) / w.numel()
        row["mask_sparsity"] = 1.0 - float(mask.sum()) / mask.numel()
        row["cells_in_batch"] = k
        if ap2_all is not None:
            row["ap2_all"] = ap2_all
        row["wall_time_s"] = wall
        return row


# ============================================================================================ the interface
class FineTuneEngine(abc.ABC):
    """Fine-tunes every pruned cell of a group and measures it after every epoch ``t = 0..T``."""

    #: The config's ``engine`` value (:data:`latentkit.options.ENGINES`).
    name: str = ""

    @abc.abstractmethod
    def run(self, group: DenseGroup) -> Rows:
        """Rows of every cell of ``group.plan``: ``{(method, sparsity): [row of epoch 0, ..., T]}``."""


# ============================================================================================ cached engine
def batched_eval(
    W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and number of correct predictions (int64) of K linear heads
    ``(W (K, C, F), b (K, C))`` on ``X (N, F)``: ``(loss (K,) float64, correct (K,) int64)``."""
    K = W.shape[0]
    loss = torch.zeros(K, dtype=torch.float64, device=W.device)
    correct = torch.zeros(K, dtype=torch.int64, device=W.device)
    for i in range(0, X.shape[0], chunk):
        xb, yb = X[i : i + chunk], y[i : i + chunk]
        logits = torch.matmul(xb, W.transpose(1, 2)) + b[:, None, :]  # (K, B, C)
        l = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(K), reduction="none").view(K, -1)
        loss += l.double().sum(1)
        correct += (logits.argmax(-1) == yb).sum(1)
    return loss / X.shape[0], correct


def finetune_cached(
    W0: torch.Tensor,
    b0: torch.Tensor,
    masks: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    on_epoch: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fine-tune ``K`` masked linear softmax heads on fixed features, all at once.

    Minimises, for every cell ``k`` independently, the mean cross-entropy of
    ``softmax(X W_k^T + b_k)`` with SGD on the unmasked entries of ``W_k`` and on ``b_k``:

    .. math:: g_W = M_k \odot \big( (P_k - Y)^\top X / B + \lambda W_k \big), \quad
              v \leftarrow \mu v + g, \quad W_k \leftarrow W_k - \eta_e v

    (``torch.optim.SGD`` semantics: weight decay added to the gradient, momentum buffer
    initialised with the first gradient), with ``P_k`` the softmax probabilities of the batch,
    ``Y`` one-hot labels and :math:`\eta_e` = :func:`~latentkit.grid.training.cosine_lr`. Masked
    entries stay exactly 0.

    Parameters
    ----------
    W0 : Tensor (K, C, F)   initial (pruned) weights
    b0 : Tensor (K, C)      initial biases
    masks : Tensor (K, C, F) of {0, 1}
    X : Tensor (N, F)       features (same device and dtype as ``W0``)
    y : Tensor (N,) int64
    epochs, lr, batch_size, momentum, weight_decay
    generator : torch.Generator (CPU), optional
        Source of the per-epoch permutation ``torch.randperm(N, generator=generator)``.
    on_epoch : callable(epoch, W, b), optional
        Called after every epoch (1-based) with the current weights.

    Returns
    -------
    (W, b) : Tensor (K, C, F), Tensor (K, C)
    """
    if W0.dim() != 3 or b0.dim() != 2 or masks.shape != W0.shape or b0.shape != W0.shape[:2]:
        raise ValueError(
            f"expected W0 (K, C, F), b0 (K, C), masks like W0; got {tuple(W0.shape)}, "
            f"{tuple(b0.shape)}, {tuple(masks.shape)}"
        )
    if X.dim() != 2 or X.shape[1] != W0.shape[2] or y.shape != (X.shape[0],):
        raise ValueError(
            f"expected X (N, {W0.shape[2]}) and y (N,); got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    M = masks.to(W0.dtype)
    W = (W0 * M).clone()
    b = b0.clone()
    vW, vb = torch.zeros_like(W), torch.zeros_like(b)
    n = X.shape[0]
    first = True
    for epoch in range(epochs):
        eta = cosine_lr(lr, epoch, epochs)
        order = torch.randperm(n, generator=generator).to(X.device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            xb, yb = X[idx], y[idx]
            logits = torch.matmul(xb, W.transpose(1, 2)) + b[:, None, :]  # (K, B, C)
            G = torch.softmax(logits, dim=-1)
            G[:, torch.arange(len(yb), device=X.device), yb] -= 1.0
            G /= len(yb)
            gW = torch.matmul(G.transpose(1, 2), xb)  # (K, C, F)
            gb = G.sum(1)
            if weight_decay:
                gW = gW + weight_decay * W
                gb = gb + weight_decay * b
            gW = gW * M
            if momentum:
                if first:
                    vW.copy_(gW)
                    vb.copy_(gb)
                else:
                    vW.mul_(momentum).add_(gW)
                    vb.mul_(momentum).add_(gb)
                gW, gb = vW, vb
            first = False
            W.sub_(eta * gW)
            b.sub_(eta * gb)
        if on_epoch is not None:
            on_epoch(epoch + 1, W, b)
    return W, b


class CachedEngine(FineTuneEngine):
    """All cells of a group as one batched linear program on the fixed features (:func:`finetune_cached`)."""

    name = "cached"

    def run(self, group: DenseGroup) -> Rows:
        plan, lname, chunk = group.plan, group.layer_name, group.plan.eval_batch_size
        rows: Rows = {c: [] for c in plan.cells}
        t0 = time.perf_counter()
        pruned = list(group.pruned_cells(whole=False))
        masks = torch.stack([r.masks[lname].to(torch.float32) for _, _, _, r in pruned])
        W0 = torch.stack([m.get_submodule(lname).weight.detach().float() for _, _, m, _ in pruned])
        b0 = torch.stack([m.get_submodule(lname).bias.detach().float() for _, _, m, _ in pruned])
        K = len(pruned)

        def on_epoch(epoch: int, W: torch.Tensor, b: torch.Tensor) -> None:
            wall = time.perf_counter() - t0
            tr_l, tr_c = batched_eval(W, b, group.X_tr, group.y_tr, chunk)
            te_l, te_c = batched_eval(W, b, group.X_te, group.y_te, chunk)
            fn = {name: v.tolist() for name, v in group.fn(W, b).items()}
            n_tr, n_te = len(group.y_tr), len(group.y_te)
            for k, (method, sparsity, _, _) in enumerate(pruned):
                rows[(method, sparsity)].append(
                    group.row(
                        method,
                        sparsity,
                        epoch,
                        W[k],
                        (float(tr_l[k]), int(tr_c[k]), n_tr),
                        (float(te_l[k]), int(te_c[k]), n_te),
                        wall,
                        masks[k],
                        K,
                        {name: v[k] for name, v in fn.items()},
                    )
                )

        on_epoch(0, W0 * masks, b0)
        g = torch.Generator().manual_seed(finetune_seed(plan))
        finetune_cached(
            W0,
            b0,
            masks,
            group.X_tr,
            group.y_tr,
            plan.finetune_epochs,
            float(plan.finetune_lr),
            plan.finetune_batch_size,
            plan.momentum,
            plan.weight_decay,
            generator=g,
            on_epoch=on_epoch,
        )
        return rows


# ============================================================================================ exact engine
class ExactEngine(FineTuneEngine):
    """One network copy per cell, full forward/backward per batch (:func:`.training.sgd_epoch`)."""

    name = "exact"

    def run(self, group: DenseGroup) -> Rows:
        plan = group.plan
        rows: Rows = {c: [] for c in plan.cells}
        dense_w = (
            {
                n: m.weight.detach().double()
                for n, m in group.dense.named_modules()
                if isinstance(m, (nn.Linear, nn.Conv2d))
            }
            if plan.layers == "all"
            else {}
        )
        for method, sparsity, model, result in group.pruned_cells(whole=True):  # one network copy at a time
            rows[(method, sparsity)] = self._cell(group, method, sparsity, model, result, dense_w)
        return rows

    @staticmethod
    def _optimizer(
        model: nn.Module, plan: GroupPlan, lname: str
    ) -> tuple[MaskedOptimizer, list[torch.utils.hooks.RemovableHandle]]:
        """SGD on the trainable weights (last layer, every layer with ``layers="all"``, or the
        reference's :func:`reference_trainable`), masks held; plus the gradient hooks to remove."""
        handles: list[torch.utils.hooks.RemovableHandle] = []
        if plan.finetune_protocol == "reference":
            params, handles = reference_trainable(model, lname)
        elif plan.layers == "all":  # every parameter trainable, pruned entries held at 0
            for p_ in model.parameters():
                p_.requires_grad_(True)
            params = list(model.parameters())
        else:
            params = freeze_all_but(model, [f"{lname}.weight", f"{lname}.bias"])
        sgd = torch.optim.SGD(
            params, lr=float(plan.finetune_lr), momentum=plan.momentum, weight_decay=plan.weight_decay
        )
        return MaskedOptimizer(sgd, model=model), handles

    @staticmethod
    def _cell(
        group: DenseGroup,
        method: str,
        sparsity: float,
        model: nn.Module,
        result: Any,
        dense_w: dict[str, torch.Tensor],
    ) -> list[dict[str, Any]]:
        plan, lname = group.plan, group.layer_name
        t_cell = time.perf_counter()
        layer_p, mask = model.get_submodule(lname), result.masks[lname]
        reference = plan.finetune_protocol == "reference"
        out: list[dict[str, Any]] = []

        moving = plan.layers == "all" or plan.finetune_bn == "train" or reference  # backbone changes

        def evaluate_and_record(epoch: int, running: Counts | None = None) -> None:
            te = evaluate_counts(model, group.views["test_eval"], plan)
            # the reference's PD_train: the running accuracy of the epoch's training batches
            tr = running if running is not None else evaluate_counts(model, group.views["train_eval"], plan)
            total = _ap2_all(model, result, dense_w) if plan.layers == "all" else None
            w = effective_weight(layer_p).detach().float()
            b = layer_p.bias.detach().float()
            z = _current_logits(model, group, plan, w, b) if moving and epoch > 0 else None
            fn = {k: float(v[0]) for k, v in group.fn(w[None], b[None], z).items()}
            wall = time.perf_counter() - t_cell
            out.append(group.row(method, sparsity, epoch, w, tr, te, wall, mask, 1, fn, total))

        evaluate_and_record(0)
        lr, epochs = float(plan.finetune_lr), plan.finetune_epochs
        opt, handles = ExactEngine._optimizer(model, plan, lname)
        seed = finetune_seed(plan)
        g, aug_g = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
        ds = group.views["train_finetune"]
        quick_aug = plan.finetune_augment and is_tensor_dataset(ds)
        device = plan.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed % (2**31))
            for epoch in range(epochs):
                model.train() if plan.finetune_bn == "train" or reference else model.eval()
                args = (model, opt, ds, plan.finetune_batch_size, cosine_lr(lr, epoch, epochs), g)
                if reference:
                    evaluate_and_record(epoch + 1, _running_counts(*args, aug_g if quick_aug else None, plan))
                else:
                    sgd_epoch(*args, aug_g if quick_aug else None, plan)
                    evaluate_and_record(epoch + 1)
        opt.remove()
        for h in handles:
            h.remove()
        return out


def _current_logits(
    model: nn.Module, group: DenseGroup, plan: GroupPlan, w: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Logits ``(1, n, C)`` of the (possibly drifted) network on the test set, in eval mode:
    its current penultimate features times its current last layer."""
    was_training = model.training
    X = features(model, group.views["test_eval"], plan)
    model.train(was_training)
    return (X @ w.T + b)[None]


def _ap2_all(model: nn.Module, result: Any, dense_w: dict[str, torch.Tensor]) -> float:
    """Sum over the pruned layers of :math:`\\lVert w - \tilde w \rVert_2^2` (``layers="all"``)."""
    return float(
        sum(
            float(((dense_w[n] - effective_weight(model.get_submodule(n)).double()) ** 2).sum())
            for n in result.masks
        )
    )


#: Engine classes by the config's ``engine`` value.
ENGINE_CLASSES: dict[str, type[FineTuneEngine]] = {"cached": CachedEngine, "exact": ExactEngine}


def group_rows(plan: GroupPlan, store: CacheStore, progress: bool = False) -> Rows:
    """Compute every cell of one group with the plan's engine; return ``{(method, sparsity): rows}``."""
    return ENGINE_CLASSES[plan.engine]().run(DenseGroup.load(plan, store, progress))
