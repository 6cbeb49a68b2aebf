"""A linear softmax last layer: validated inputs, logits and the mean cross-entropy.

The bounds of :mod:`latentkit.theory.bounds` are about one layer :math:`z = W x + b` followed by a
softmax; this module turns what the user passes (tensors, arrays, labels) into float64 tensors on
one device, or raises a TypeError/ValueError naming the argument.

Examples
--------
>>> import torch
>>> from latentkit.theory.linear import softmax_cross_entropy
>>> x, y = torch.ones(4, 3), torch.tensor([0, 1, 0, 1])
>>> round(softmax_cross_entropy(torch.zeros(2, 3), x, y), 4)
0.6931
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._validation import as_tensor, check_same_device, check_same_shape
from ..latent import fold_bias

__all__ = ["softmax_cross_entropy"]

_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _weight(x: Any, name: str) -> torch.Tensor:
    """A (classes, in_features) float64 matrix, detached (the checks measure, they do not train)."""
    W = as_tensor(x, name, min_dim=2).detach().to(torch.float64)
    if W.dim() != 2:
        raise ValueError(f"{name} must be a (classes, in_features) matrix; got shape {tuple(W.shape)}")
    return W


def _labels(labels: Any, X: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Integer class indices (n,), int64 on X's device, each in [0, num_classes)."""
    if not isinstance(labels, torch.Tensor):
        arr = np.asarray(labels)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"labels must be integer class indices; got {type(labels).__name__} of {arr.dtype}"
            )
        labels = torch.as_tensor(arr)
    if labels.dtype not in _INT_DTYPES:
        raise TypeError(f"labels must be an integer tensor of class indices; got {labels.dtype}")
    if labels.dim() > 1 and not (labels.dim() == 2 and labels.shape[1] == 1):
        raise ValueError(f"labels must be a vector (n,) or a column (n, 1); got shape {tuple(labels.shape)}")
    y = labels.to(device=X.device, dtype=torch.int64).reshape(-1)
    if y.numel() != X.shape[0]:
        raise ValueError(f"labels must have one entry per feature row ({X.shape[0]}); got {y.numel()}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    return y


def _bias(bias: Any, name: str, W: torch.Tensor) -> torch.Tensor:
    """A bias (C,) float64 on W's device, detached."""
    b = as_tensor(bias, name, min_dim=1).detach()
    check_same_device(W, b, "weight", name)
    b = b.to(torch.float64).reshape(-1)
    if b.numel() != W.shape[0]:
        raise ValueError(f"{name} must have {W.shape[0]} entries; got {b.numel()}")
    return b


def linear_inputs(
    weight: Any, weight_pruned: Any, features: Any, labels: Any, bias: Any, bias_pruned: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate and return float64 (W, W~, X, y), with the bias folded in as a last column when given.

    With a bias, :math:`W \\to [W, b]`, :math:`\\tilde W \\to [\\tilde W, \\tilde b]` and
    :math:`x \\to [x, 1]`, so :math:`W x + b` is one matrix product.
    """
    W = _weight(weight, "weight")
    Wp = _weight(weight_pruned, "weight_pruned")
    check_same_shape(W, Wp, "weight", "weight_pruned")
    check_same_device(W, Wp, "weight", "weight_pruned")
    X = as_tensor(features, "features", min_dim=2).detach().to(torch.float64)
    if X.dim() != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(
            f"features must be (n, {W.shape[1]}) to match weight {tuple(W.shape)}; got {tuple(X.shape)}"
        )
    check_same_device(W, X, "weight", "features")
    y = _labels(labels, X, W.shape[0])
    if bias is None and bias_pruned is not None:
        raise ValueError("bias_pruned given without bias")
    if bias is not None:
        b = _bias(bias, "bias", W)
        bp = b if bias_pruned is None else _bias(bias_pruned, "bias_pruned", W)
        check_same_shape(b, bp, "bias", "bias_pruned")
        W, Wp = fold_bias(W, b), fold_bias(Wp, bp)
        X = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], dim=1)
    return W, Wp, X, y


def shared_bias(bias: Any, W: torch.Tensor) -> torch.Tensor | None:
    """A bias shared by both networks, validated: (C,) float64 on W's device (or None)."""
    return None if bias is None else _bias(bias, "bias", W)


def logits(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """:math:`z = X W^\\top + b` (n, C); ValueError when it overflows (a silently NaN loss otherwise)."""
    z = X @ W.T
    if b is not None:
        z = z + b
    if not bool(torch.isfinite(z).all()):
        raise ValueError("the logits X W^T + b overflow (inf/NaN); rescale the weights or the features")
    return z


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy of logits ``z`` (n, C) and labels ``y`` (n,), as a float."""
    value = float(torch.nn.functional.cross_entropy(z, y))
    if not math.isfinite(value):
        raise ValueError(f"the cross-entropy is not finite ({value})")
    return value


def softmax_cross_entropy(weight: Any, features: Any, labels: Any, bias: Any = None) -> float:
    """Mean cross-entropy :math:`L(W) = \\frac1n\\sum_i -\\log \\mathrm{softmax}(W x_i + b)_{y_i}` (float64).

    Parameters
    ----------
    weight : Tensor (C, in)
    features : Tensor (n, in)
    labels : Tensor (n,)
        Integer class indices in [0, C).
    bias : Tensor (C,) or None

    Raises
    ------
    TypeError, ValueError
        Non-floating or non-finite tensors, non-integer labels, mismatched shapes or devices, logits
        that overflow.
    """
    W, _, X, y = linear_inputs(weight, weight, features, labels, bias, None)
    return cross_entropy(logits(X, W, None), y)
