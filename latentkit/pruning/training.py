r"""Short training loops of the small-model chapters: a penalised objective, L-BFGS to its minimum,
and a seeded fine-tuning loop.

* :func:`penalized_cross_entropy`: :math:`J(\theta) = \frac{1}{n}\sum_i \ell(f_\theta(x_i), y_i)
  + \frac{\lambda}{2} \sum_{W \in \mathcal{P}} \|W\|_F^2` (mean cross-entropy plus an L2 penalty
  on the chosen tensors, e.g. the weight but not the bias of a softmax layer);
* :func:`fit_lbfgs`: full-batch :class:`torch.optim.LBFGS` on :math:`J` (a strongly convex
  :math:`J` for a softmax-regression layer with :math:`\lambda > 0`: the unique minimiser the
  second-order theory is stated at);
* :func:`finetune_steps`: ``steps`` SGD-type steps on minibatches drawn with replacement from a
  seeded generator, with any optimizer (a :class:`~latentkit.pruning.MaskedOptimizer` keeps pruned
  weights at zero).

Examples
--------
>>> import torch
>>> from latentkit.pruning.training import penalized_cross_entropy
>>> model = torch.nn.Linear(3, 2)
>>> torch.nn.init.zeros_(model.weight); torch.nn.init.zeros_(model.bias)
Parameter containing:
tensor([[0., 0., 0.],
        [0., 0., 0.]], requires_grad=True)
Parameter containing:
tensor([0., 0.], requires_grad=True)
>>> x, y = torch.ones(4, 3), torch.tensor([0, 1, 0, 1])
>>> round(penalized_cross_entropy(model, x, y).item(), 4)
0.6931
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_int, check_nonnegative
from .evaluation import _check_batch

__all__ = ["penalized_cross_entropy", "fit_lbfgs", "finetune_steps"]


def _penalized_tensors(penalized: Any) -> list[torch.Tensor]:
    if penalized is None:
        return []
    if isinstance(penalized, torch.Tensor):
        return [penalized]
    if isinstance(penalized, (str, bytes)) or not isinstance(penalized, Iterable):
        raise TypeError(f"penalized must be a tensor or a list of tensors; got {type(penalized).__name__}")
    out = list(penalized)
    for t in out:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"penalized must hold tensors; got {type(t).__name__}")
    return out


def _check_objective(
    model: Any, inputs: Any, labels: Any, weight_decay: Any, penalized: Any
) -> tuple[float, list[torch.Tensor]]:
    _check_batch(model, inputs, labels)
    lam = check_nonnegative(weight_decay, "weight_decay")
    tensors = _penalized_tensors(penalized)
    if lam > 0 and not tensors:
        raise ValueError("weight_decay > 0 needs penalized= (the tensors under the L2 penalty)")
    return lam, tensors


def penalized_cross_entropy(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight_decay: float = 0.0,
    penalized: torch.Tensor | Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""Mean cross-entropy of ``model(inputs)`` plus :math:`\frac{\lambda}{2}\sum_{W} \|W\|_F^2`.

    .. math::

        J = \frac{1}{n} \sum_{i=1}^{n} -\log \mathrm{softmax}(f(x_i))_{y_i}
            + \frac{\lambda}{2} \sum_{W \in \mathcal{P}} \sum_{jk} W_{jk}^2 .

    Differentiable (autograd stays on); the model's train/eval mode is the caller's. Evaluated as
    ``ce + 0.5 * weight_decay * sum_W (W ** 2).sum()``.

    Parameters
    ----------
    model : nn.Module
        A classifier returning ``(n, C)`` logits.
    inputs, labels : Tensor
        ``n`` samples and their ``(n,)`` integer class indices.
    weight_decay : float >= 0
        :math:`\lambda` (default 0: plain cross-entropy).
    penalized : Tensor or sequence of Tensors, optional
        :math:`\mathcal{P}`, the tensors under the penalty (e.g. ``[model.fc.weight]``). Required
        when ``weight_decay > 0``.

    Returns
    -------
    Tensor
        0-dim, in the logits' dtype.

    Raises
    ------
    TypeError
        Wrong types of ``model``, ``inputs``, ``labels`` or ``penalized``.
    ValueError
        Mismatched ``inputs``/``labels``, a negative ``weight_decay``, or ``weight_decay > 0``
        without ``penalized``.
    """
    lam, tensors = _check_objective(model, inputs, labels, weight_decay, penalized)
    ce = F.cross_entropy(model(inputs), labels)
    if not tensors:
        return ce
    total = (tensors[0] ** 2).sum()
    for t in tensors[1:]:
        total = total + (t**2).sum()
    return ce + 0.5 * lam * total


def fit_lbfgs(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight_decay: float = 0.0,
    penalized: torch.Tensor | Sequence[torch.Tensor] | None = None,
    **lbfgs: Any,
) -> float:
    r"""Minimise :func:`penalized_cross_entropy` over every parameter of ``model`` with L-BFGS.

    One call of ``torch.optim.LBFGS(model.parameters(), **lbfgs).step(closure)`` on the full batch,
    the closure returning :math:`J(\theta)` after ``backward``; L-BFGS iterates until
    ``max_iter`` or its tolerances (``tolerance_grad`` on :math:`\|\nabla J\|_\infty`,
    ``tolerance_change``). Deterministic: no randomness is involved.

    Parameters
    ----------
    model, inputs, labels, weight_decay, penalized
        As for :func:`penalized_cross_entropy`.
    **lbfgs
        Options of :class:`torch.optim.LBFGS` (``lr``, ``max_iter``, ``tolerance_grad``,
        ``tolerance_change``, ``history_size``, ``line_search_fn``).

    Returns
    -------
    float
        :math:`J` at the parameters L-BFGS stops at (computed again without autograd).
    """
    _check_objective(model, inputs, labels, weight_decay, penalized)
    opt = torch.optim.LBFGS(model.parameters(), **lbfgs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = penalized_cross_entropy(model, inputs, labels, weight_decay=weight_decay, penalized=penalized)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(
            penalized_cross_entropy(model, inputs, labels, weight_decay=weight_decay, penalized=penalized)
        )


def finetune_steps(
    model: nn.Module,
    optimizer: Any,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 60,
    batch_size: int = 128,
    seed: int = 1,
    train: bool = False,
) -> Any:
    r"""``steps`` optimizer steps of mean cross-entropy on minibatches drawn with replacement.

    Step :math:`t` draws ``batch_size`` indices uniformly from :math:`\{0, \dots, n-1\}` with
    ``torch.randint(0, n, (batch_size,), generator=g)`` (``g`` a CPU generator seeded with ``seed``,
    so the same batches whatever the device), then ``zero_grad``, :math:`\ell = \frac{1}{B}\sum_{i
    \in \text{batch}} -\log \mathrm{softmax}(f(x_i))_{y_i}`, ``backward``, ``step``.

    Parameters
    ----------
    model : nn.Module
    optimizer : torch.optim.Optimizer or MaskedOptimizer
        Over the parameters to train (e.g. :func:`~latentkit.pruning.freeze_all_but`'s result);
        wrap it in :class:`~latentkit.pruning.MaskedOptimizer` so pruned weights stay exactly 0.
    inputs, labels : Tensor
        The training set: ``n`` samples and ``(n,)`` integer labels, on the model's device.
    steps : int >= 1
    batch_size : int >= 1
    seed : int >= 0
        Seed of the batch generator.
    train : bool
        Put the model in ``train()`` mode (default False: ``eval()``, so a frozen backbone's
        BatchNorm statistics and Dropout stay fixed).

    Returns
    -------
    optimizer
        The optimizer passed in (its state holds e.g. the momentum buffers).
    """
    _check_batch(model, inputs, labels)
    if not callable(getattr(optimizer, "step", None)) or not callable(getattr(optimizer, "zero_grad", None)):
        raise TypeError(f"optimizer must have step() and zero_grad(); got {type(optimizer).__name__}")
    steps = check_int(steps, "steps", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(train, bool):
        raise TypeError(f"train must be a bool; got {type(train).__name__}")
    g = torch.Generator().manual_seed(seed)
    model.train(train)
    n = len(inputs)
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(model(inputs[idx]), labels[idx]).backward()
        optimizer.step()
    return optimizer
