r"""AP3_fn: the divergence of the pruned network's predictions, a latent space in function space.

The latent law of a classifier that matters for its accuracy is its predictive distribution
:math:`p(y \mid x, w)`. Over *unlabelled* inputs :math:`x`,

.. math::

    \mathrm{AP3_{fn}}(w, \tilde w) = \mathbb E_x\,
        \mathrm{KL}\big(p(\cdot \mid x, w) \,\Vert\, p(\cdot \mid x, \tilde w)\big)
      = \mathbb E_x \sum_c p_c(x) \big(\log p_c(x) - \log \tilde p_c(x)\big).

* :func:`ap3_fn` -- exact: on cached last-layer features (``weight``, ``bias``, ``features``) or
  by a forward pass of two models over input batches;
* :func:`ap3_fn_quadratic` -- its second-order expansion in the weight change of a softmax layer,
  :math:`\tfrac12 \operatorname{vec}(D)^\top F \operatorname{vec}(D)` with the exact Fisher
  :math:`F = \mathbb E_x[(\operatorname{diag} p - p p^\top) \otimes x x^\top]`, computed without
  forming :math:`F`;
* :func:`obd_saliency` -- the Optimal Brain Damage saliency
  :math:`\tfrac12\, \delta w^\top \operatorname{diag}(F)\, \delta w` (LeCun et al. 1990);
* :func:`predictive_kl` -- the per-example KL of two logit tables (log-softmax, stable).

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> wp = w * (w.abs() > 4)
>>> from latentkit.patterns.function import ap3_fn
>>> x = torch.eye(4)
>>> ap3_fn(w, w, x)
0.0
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .._validation import as_tensor, check_same_device, check_same_shape

__all__ = ["ap3_fn", "ap3_fn_quadratic", "obd_saliency", "predictive_kl"]


def predictive_kl(logits: Any, pruned_logits: Any) -> torch.Tensor:
    r"""Per-row :math:`\mathrm{KL}(\operatorname{softmax} z \Vert \operatorname{softmax} \tilde z)`, float64.

    :math:`\sum_c p_c (\log p_c - \log \tilde p_c)` with :math:`\log p = z - \operatorname{logsumexp} z`
    (``log_softmax``), so large logits neither overflow nor lose the small probabilities; a
    round-off negative value is clamped to 0.

    Parameters
    ----------
    logits, pruned_logits : Tensor (n, C)

    Returns
    -------
    Tensor (n,) of float64, >= 0.
    """
    z = as_tensor(logits, "logits", min_dim=2).detach()
    zt = as_tensor(pruned_logits, "pruned_logits", min_dim=2).detach()
    if z.dim() != 2:
        raise ValueError(f"logits must be (n, C); got shape {tuple(z.shape)}")
    check_same_shape(z, zt, "logits", "pruned_logits")
    check_same_device(z, zt, "logits", "pruned_logits")
    lp = torch.log_softmax(z.to(torch.float64), dim=1)
    lq = torch.log_softmax(zt.to(torch.float64), dim=1)
    return (lp.exp() * (lp - lq)).sum(1).clamp_min(0.0)


def _layer(weight: Any, pruned: Any, features: Any, bias: Any, pruned_bias: Any) -> tuple[torch.Tensor, ...]:
    """Float64 ``W, W~, X, b, b~`` of one softmax layer (zero biases when absent), validated."""
    W = as_tensor(weight, "weight", min_dim=2).detach()
    Wt = as_tensor(pruned, "pruned", min_dim=2).detach()
    X = as_tensor(features, "features", min_dim=2).detach()
    if W.dim() != 2 or X.dim() != 2:
        raise ValueError(
            f"weight must be (C, in) and features (n, in); got {tuple(W.shape)}, {tuple(X.shape)}"
        )
    check_same_shape(W, Wt, "weight", "pruned")
    if X.shape[1] != W.shape[1]:
        raise ValueError(f"features must have {W.shape[1]} columns (weight's in); got {X.shape[1]}")
    for t, n in ((Wt, "pruned"), (X, "features")):
        check_same_device(W, t, "weight", n)
    out = [W.to(torch.float64), Wt.to(torch.float64), X.to(torch.float64)]
    b = torch.zeros(W.shape[0], dtype=torch.float64, device=W.device) if bias is None else None
    if bias is not None:
        b = as_tensor(bias, "bias", min_dim=1).detach().to(torch.float64)
        if b.shape != (W.shape[0],):
            raise ValueError(f"bias must have shape ({W.shape[0]},); got {tuple(b.shape)}")
    bt = (
        b
        if pruned_bias is None
        else as_tensor(pruned_bias, "pruned_bias", min_dim=1).detach().to(torch.float64)
    )
    check_same_shape(b, bt, "bias", "pruned_bias")
    return (*out, b, bt)


def _batches(inputs: Any) -> Iterable[torch.Tensor]:
    """The input tensors of ``inputs``: one tensor, or an iterable of tensors / (x, label) tuples."""
    if isinstance(inputs, torch.Tensor):
        yield inputs
        return
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Iterable):
        raise TypeError(
            f"inputs must be a tensor or an iterable of input batches; got {type(inputs).__name__}"
        )
    for batch in inputs:
        x = batch[0] if isinstance(batch, list | tuple) else batch  # labels, if any, are ignored
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"inputs must yield tensors (or (x, y) tuples); got {type(x).__name__}")
        yield x


def _model_kl(model: nn.Module, pruned_model: nn.Module, inputs: Any) -> float:
    """Mean predictive KL of two models over the rows of every batch of ``inputs`` (eval mode)."""
    modes = (model.training, pruned_model.training)
    model.eval()
    pruned_model.eval()
    total, rows = 0.0, 0
    try:
        with torch.no_grad():
            for x in _batches(inputs):
                kl = predictive_kl(model(x), pruned_model(x))
                total += float(kl.sum())
                rows += kl.shape[0]
    finally:
        model.train(modes[0])
        pruned_model.train(modes[1])
    if rows == 0:
        raise ValueError("inputs holds no rows")
    return total / rows


def ap3_fn(
    dense: Any,
    pruned: Any,
    inputs: Any,
    *,
    bias: Any = None,
    pruned_bias: Any = None,
) -> float:
    r"""AP3_fn: the mean KL of the dense network's predictions from the pruned one's, without labels.

    .. math::

        \mathrm{AP3_{fn}} = \frac1n \sum_{i=1}^n \sum_c p_c(x_i)
            \big(\log p_c(x_i) - \log \tilde p_c(x_i)\big),\quad
        p(x) = \operatorname{softmax}(f_w(x)),\ \tilde p(x) = \operatorname{softmax}(f_{\tilde w}(x)).

    Two ways to call it:

    * last layer, exact and cheap on cached features: ``ap3_fn(weight, pruned_weight, features,
      bias=b, pruned_bias=b~)`` with :math:`f_w(x) = W x + b` (``pruned_bias`` defaults to ``bias``);
    * any classifier, by a forward pass: ``ap3_fn(model, pruned_model, inputs)`` where ``inputs`` is
      a tensor or an iterable of batches (tensors or ``(x, y)`` tuples: labels are ignored). Both
      models run in eval mode under ``no_grad`` and get their training flags back.

    Parameters
    ----------
    dense, pruned : Tensor (C, in) or nn.Module
    inputs : Tensor (n, in) of features, or model inputs (tensor or iterable of batches)
    bias, pruned_bias : Tensor (C,), optional
        Only with weights.

    Returns
    -------
    float >= 0; 0 exactly when the two predictive distributions agree on every input.

    Raises
    ------
    TypeError
        Mixed modules and tensors, biases with modules, non-tensor inputs.
    ValueError
        Shape, device or non-finite problems (named), no input rows.
    """
    if isinstance(dense, nn.Module) or isinstance(pruned, nn.Module):
        if not (isinstance(dense, nn.Module) and isinstance(pruned, nn.Module)):
            raise TypeError("dense and pruned must both be nn.Module or both weight tensors")
        if bias is not None or pruned_bias is not None:
            raise TypeError("bias/pruned_bias apply to weights only; a model holds its own biases")
        return _model_kl(dense, pruned, inputs)
    W, Wt, X, b, bt = _layer(dense, pruned, inputs, bias, pruned_bias)
    return float(predictive_kl(X @ W.T + b, X @ Wt.T + bt).mean())


def ap3_fn_quadratic(
    weight: Any,
    pruned: Any,
    features: Any,
    *,
    bias: Any = None,
    pruned_bias: Any = None,
) -> float:
    r"""The exact-Fisher quadratic of AP3_fn for a softmax layer: half the Fisher norm of vec(D).

    With :math:`D = \tilde W - W` (the bias folded in as a last column, :math:`\tilde x = [x; 1]`,
    when a bias is given), :math:`p = \operatorname{softmax}(W x + b)` and
    :math:`H_x = \operatorname{diag} p - p p^\top` (the Hessian of the log-partition function),
    the exact Fisher of the layer for row-major :math:`\operatorname{vec}(D)` is
    :math:`F = \mathbb E_x [H_x \otimes \tilde x \tilde x^\top]`, and

    .. math::

        \tfrac12 \operatorname{vec}(D)^\top F \operatorname{vec}(D)
          = \tfrac12\, \mathbb E_x\, u_x^\top H_x u_x
          = \tfrac12\, \mathbb E_x \Big[\sum_c p_c u_c^2 - \big(\textstyle\sum_c p_c u_c\big)^2\Big],
        \qquad u_x = D \tilde x,

    computed in :math:`O(n C d)` without forming the :math:`Cd \times Cd` matrix :math:`F`. It is
    the second-order Taylor term of :func:`ap3_fn` in :math:`D` (the first-order term vanishes:
    KL is minimal at :math:`D = 0`); see :func:`latentkit.theory.check_ap3_fn_expansion`.

    Parameters
    ----------
    weight : torch.Tensor or array-like, shape (C, in)
        The dense layer's weight matrix (``C`` classes, ``in`` features).
    pruned : torch.Tensor or array-like, shape (C, in)
        The pruned weight matrix (same shape, dtype and device as ``weight``).
    features : torch.Tensor or array-like, shape (n, in)
        The layer's inputs, one row per example.
    bias : torch.Tensor or array-like, shape (C,), optional
        The dense layer's bias; None for a layer without bias.
    pruned_bias : torch.Tensor or array-like, shape (C,), optional
        The pruned layer's bias; None keeps ``bias``.

    Returns
    -------
    float >= 0.

    Raises
    ------
    TypeError, ValueError
        As :func:`ap3_fn` with weights.
    """
    W, Wt, X, b, bt = _layer(weight, pruned, features, bias, pruned_bias)
    p = torch.softmax(X @ W.T + b, dim=1)
    u = X @ (Wt - W).T + (bt - b)
    return max(float(0.5 * ((p * u * u).sum(1) - (p * u).sum(1) ** 2).mean()), 0.0)


def obd_saliency(
    weight: Any,
    pruned: Any,
    *,
    fisher: Any = None,
    features: Any = None,
    bias: Any = None,
) -> float:
    r"""Optimal Brain Damage saliency of a weight change: the diagonal-Fisher quadratic.

    .. math:: S_{\mathrm{OBD}} = \tfrac12 \sum_j F_{jj}\, (\tilde w_j - w_j)^2

    (LeCun, Denker, Solla 1990: the diagonal of the Hessian / Fisher, cross terms dropped). Give
    either ``fisher``, the diagonal :math:`F_{jj}` with the weight's shape (e.g. mean squared
    gradients of any layer), or ``features`` of a softmax layer ``weight`` (C, in): then the exact
    diagonal of its Fisher is used, :math:`F_{(c,k),(c,k)} = \mathbb E_x[p_c (1 - p_c) x_k^2]` with
    :math:`p = \operatorname{softmax}(W x + b)` (the diagonal of :func:`ap3_fn_quadratic`'s
    :math:`F`; the bias is held fixed).

    Parameters
    ----------
    weight : torch.Tensor or array-like, shape (C, in)
        The dense layer's weight matrix (``C`` classes, ``in`` features).
    pruned : torch.Tensor or array-like, shape (C, in)
        The pruned weight matrix (same shape, dtype and device as ``weight``).
    fisher : torch.Tensor or array-like, optional
        The diagonal :math:`F_{jj}` with the weight's shape (give it or ``features``).
    features : torch.Tensor or array-like, shape (n, in), optional
        Inputs of a softmax layer ``weight``: the exact diagonal Fisher is used.
    bias : torch.Tensor or array-like, shape (C,), optional
        The softmax layer's bias (with ``features``; held fixed).

    Returns
    -------
    float >= 0.

    Raises
    ------
    TypeError, ValueError
        Neither or both of ``fisher`` and ``features``; shapes, devices, negative Fisher entries.
    """
    if (fisher is None) == (features is None):
        raise TypeError("give exactly one of fisher (the diagonal, weight-shaped) and features")
    if features is not None:
        W, Wt, X, b, _ = _layer(weight, pruned, features, bias, None)
        p = torch.softmax(X @ W.T + b, dim=1)
        diag = (p * (1 - p)).T @ (X * X) / X.shape[0]
        return float(0.5 * (diag * (Wt - W) ** 2).sum())
    w = as_tensor(weight, "weight", min_dim=1).detach().to(torch.float64)
    wt = as_tensor(pruned, "pruned", min_dim=1).detach().to(torch.float64)
    f = as_tensor(fisher, "fisher", min_dim=1).detach().to(torch.float64)
    check_same_shape(w, wt, "weight", "pruned")
    check_same_shape(w, f, "weight", "fisher")
    if (f < 0).any():
        raise ValueError("fisher must be >= 0 (a diagonal of a Fisher matrix)")
    return float(0.5 * (f * (wt - w) ** 2).sum())
