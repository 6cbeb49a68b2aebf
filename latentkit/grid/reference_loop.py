r"""The reference code's fine-tuning loop pieces used by the exact engine (``finetune_protocol="reference"``).

:func:`reference_trainable` makes every parameter trainable with the other modules' ``.weight``
gradients zeroed; :func:`running_epoch` is one epoch returning the running accuracy of the
training batches (the reference's ``PD_train``).

Examples
--------
>>> from latentkit.grid.reference_loop import Counts
>>> Counts.__name__
'tuple'
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .plan import GroupPlan
from .training import sgd_steps

__all__ = ["Counts", "reference_trainable", "running_epoch"]

#: ``(mean loss, correct predictions, images)`` of one evaluation.
Counts = tuple[float, int, int]


def reference_trainable(
    model: nn.Module, lname: str
) -> tuple[list[nn.Parameter], list[torch.utils.hooks.RemovableHandle]]:
    """Every parameter of ``model`` trainable, with the ``.weight`` gradients of the other modules zeroed.

    The reference code's fine-tuning: after each backward pass it sets the gradient of every
    module's ``.weight`` to zero except the last layer's (``lname``), so every bias and every
    BatchNorm shift (``.bias``) keeps training while the other weights (BatchNorm scales included)
    get a zero gradient (with weight decay 0, the reference's, they do not move). Here a gradient
    hook returns zeros for those weights (``weight_orig`` of a pruned module too).

    Returns
    -------
    (params, handles)
        All parameters (for the optimizer) and the hooks (call ``remove()`` on each when done).
    """
    handles = []
    for p_ in model.parameters():
        p_.requires_grad_(True)
    for name, module in model.named_modules():
        if name == lname:
            continue
        for pname in ("weight", "weight_orig"):
            p_ = module._parameters.get(pname)
            if p_ is not None:
                handles.append(p_.register_hook(torch.zeros_like))
    return list(model.parameters()), handles


def running_epoch(
    model: nn.Module,
    opt: Any,
    ds: Any,
    batch_size: int,
    lr: float,
    g: torch.Generator,
    aug_g: torch.Generator | None,
    plan: GroupPlan,
) -> tuple[float, float]:
    r"""One training epoch as :func:`~latentkit.grid.training.sgd_epoch` (same batches, same updates),
    returning the running loss and accuracy of the (augmented) training batches seen in it.

    .. math:: \text{loss} = \frac{1}{N} \sum_b \sum_{i \in b} \ell_i, \qquad
              \text{acc} = \frac{100}{N} \sum_b \#\{i \in b : \arg\max f(x_i) = y_i\}

    with each batch's outputs taken *before* its update (the reference's train accuracy).

    Parameters
    ----------
    opt : torch.optim.Optimizer
        The optimizer of ``model`` (its learning rate is set to ``lr``).
    ds : torch.utils.data.Dataset
        A dataset of ``(image, label)`` pairs (an in-memory tensor dataset or a CIFAR view).
    """
    loss, correct, n = _running_counts(model, opt, ds, batch_size, lr, g, aug_g, plan)
    return loss, 100.0 * correct / max(n, 1)


def _running_counts(
    model: nn.Module,
    opt: Any,
    ds: Any,
    batch_size: int,
    lr: float,
    g: torch.Generator,
    aug_g: torch.Generator | None,
    plan: GroupPlan,
) -> Counts:
    """:func:`running_epoch` as ``(loss, correct, n)``."""
    loss_sum, correct, n = 0.0, 0, 0
    for loss, out, y in sgd_steps(model, opt, ds, batch_size, lr, g, aug_g, plan):
        loss_sum += float(loss.detach()) * len(y)
        correct += int((out.detach().argmax(1) == y).sum())
        n += len(y)
    return loss_sum / max(n, 1), correct, n
