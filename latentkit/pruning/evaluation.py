r"""Evaluating a classifier on tensors, and pruning a copy of a model.

:func:`evaluate_classifier` is what the small-model chapters measure before and after pruning: the
mean cross-entropy and the accuracy of one forward pass,

.. math::

    L = -\frac{1}{n} \sum_{i=1}^{n} \log \mathrm{softmax}(f(x_i))_{y_i}, \qquad
    \mathrm{acc} = \frac{1}{n} \#\{i : \arg\max_c f(x_i)_c = y_i\}.

:func:`pruned_copy` is :func:`~latentkit.pruning.prune` applied to a deep copy, so the model itself
stays dense. (The grid's data-loader evaluation is :func:`latentkit.grid.training.evaluate`; its
cached engine prunes a copy of the last layer only, :func:`latentkit.grid.engines.prune_copy`.)

Examples
--------
>>> import torch
>>> from latentkit.pruning.evaluation import evaluate_classifier
>>> model = torch.nn.Linear(2, 2)
>>> torch.nn.init.eye_(model.weight); torch.nn.init.zeros_(model.bias)
Parameter containing:
tensor([[1., 0.],
        [0., 1.]], requires_grad=True)
Parameter containing:
tensor([0., 0.], requires_grad=True)
>>> m = evaluate_classifier(model, torch.eye(2), torch.tensor([0, 1]))
>>> type(m).__name__
'ClassifierMetrics'
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .core import LayerSpec, PruneResult, prune

__all__ = ["ClassifierMetrics", "evaluate_classifier", "pruned_copy"]


class ClassifierMetrics(NamedTuple):
    """Mean cross-entropy (nats) and accuracy (a fraction in [0, 1]) of a classifier on a data set."""

    loss: float
    accuracy: float


def _check_batch(model: Any, inputs: Any, labels: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor; got {type(inputs).__name__}")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor; got {type(labels).__name__}")
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a 1-d tensor of integer class indices; got shape {tuple(labels.shape)}, "
            f"dtype {labels.dtype}"
        )
    if inputs.ndim == 0 or len(inputs) != len(labels):
        raise ValueError(
            f"inputs and labels must hold the same number of samples; got inputs of shape "
            f"{tuple(inputs.shape)} and {len(labels)} labels"
        )
    if len(labels) == 0:
        raise ValueError("labels is empty: there is nothing to evaluate")


def evaluate_classifier(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> ClassifierMetrics:
    r"""Mean cross-entropy and accuracy of ``model`` on ``(inputs, labels)``, in one forward pass.

    .. math::

        L = -\frac{1}{n} \sum_i \log \mathrm{softmax}(z_i)_{y_i}, \qquad
        \mathrm{acc} = \#\{i : \arg\max_c z_{ic} = y_i\} / n, \qquad z = \mathrm{model}(x).

    The model is put in ``eval()`` mode (BatchNorm uses its running statistics, Dropout is off) and
    left so; the forward pass runs without autograd. The loss is computed in the logits' dtype
    (:func:`torch.nn.functional.cross_entropy`, mean reduction); the accuracy is the exact ratio of
    two integers.

    Parameters
    ----------
    model : nn.Module
        A classifier returning logits of shape ``(n, C)``.
    inputs : Tensor
        ``n`` samples (first dimension), on the model's device.
    labels : Tensor
        ``(n,)`` integer class indices, on the same device.

    Returns
    -------
    ClassifierMetrics
        ``(loss, accuracy)``: a named tuple of two Python floats, ``accuracy`` in ``[0, 1]``.

    Raises
    ------
    TypeError
        ``model`` is not a module, or ``inputs``/``labels`` are not tensors.
    ValueError
        ``labels`` is not 1-d integer, is empty, or its length differs from ``inputs``'; the logits
        are not ``(n, C)``.
    """
    _check_batch(model, inputs, labels)
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != len(labels):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape (n, C) = ({len(labels)}, C); got {shape}")
    correct = int((logits.argmax(1) == labels).sum())
    return ClassifierMetrics(float(F.cross_entropy(logits, labels)), correct / len(labels))


def pruned_copy(
    model: nn.Module,
    method: str,
    amount: int | float,
    layers: LayerSpec = "last",
    scope: str = "layer",
    seed: int | None = None,
    **options: Any,
) -> tuple[nn.Module, PruneResult]:
    """Prune a deep copy of ``model``; ``model`` itself is left untouched.

    ``copied = copy.deepcopy(model)`` then ``prune(copied, method, amount, layers, scope, seed,
    **options)``; every argument means what it means for :func:`~latentkit.pruning.prune`, which
    also validates them (a model that is not an ``nn.Module`` raises ``TypeError`` here).

    Parameters
    ----------
    **options
        Method-specific keywords, passed to :func:`~latentkit.pruning.prune`.

    Returns
    -------
    (nn.Module, PruneResult)
        The pruned copy (``torch.nn.utils.prune`` reparametrisation: ``weight_orig``,
        ``weight_mask``) and the result of :func:`~latentkit.pruning.prune` (masks, sparsity report).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    copied = copy.deepcopy(model)
    result = prune(copied, method, amount, layers, scope, seed, **options)
    return copied, result
