"""Module-level helpers shared by patterns, pruning and the zoo: the one home of what a "layer" is.

Prunable layers
---------------
A *prunable layer* is an ``nn.Linear`` or any convolution, i.e. an instance of
``torch.nn.modules.conv._ConvNd``: ``Conv1d``, ``Conv2d``, ``Conv3d`` and their transposed and lazy
variants (:data:`PRUNABLE_TYPES`). All dimensionalities are included on purpose: a mask is computed
entry by entry (or row by row along a stated ``dim``), so nothing depends on the kernel's
dimensionality, and the latent projections flatten a weight to ``(out, -1)`` whatever its shape.
Patterns' per-layer tables and :func:`latentkit.pruning.prune` with ``layers="all"`` both use this
one list, so they always see the same layers.

Effective weight
----------------
With :mod:`torch.nn.utils.prune` a module holds ``weight_orig`` (parameter), ``weight_mask`` (buffer)
and a forward pre-hook that writes ``weight = weight_orig * weight_mask`` before each forward pass.
:func:`effective_weight` returns ``weight_orig * weight_mask`` directly, so it is right even after
``weight_orig`` was edited in place without a forward pass.

This module is at the bottom of the import layers: it imports nothing from latentkit (torch only).

Examples
--------
>>> import torch
>>> from latentkit.modules import prunable_layers, last_layer
>>> nn = torch.nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> [name for name, _ in prunable_layers(model)]
['0', '2']
>>> last_layer(model)[0]
'2'
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

__all__ = [
    "PRUNABLE_TYPES",
    "check_module",
    "is_prunable",
    "prunable_layers",
    "last_layer",
    "pruning_hook",
    "pruning_mask",
    "dense_param",
    "effective_weight",
]

#: Module types whose ``weight`` latentkit prunes and tabulates: Linear and every convolution.
PRUNABLE_TYPES: tuple[type, ...] = (nn.Linear, nn.modules.conv._ConvNd)


def check_module(model: object, name: str = "model") -> nn.Module:
    """Return ``model`` if it is an ``nn.Module``, else raise ``TypeError`` naming the argument ``name``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")
    return model


def is_prunable(module: nn.Module) -> bool:
    """True when ``module`` is one of :data:`PRUNABLE_TYPES` (Linear or a convolution)."""
    return isinstance(module, PRUNABLE_TYPES)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``nn.Linear`` and convolution (``_ConvNd``) of ``model``, in module order.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of (str, nn.Module)
        ``(qualified name, module)`` pairs in ``model.named_modules()`` order.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.
    """
    check_module(model)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def last_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """``(name, module)`` of the final ``nn.Linear`` in module order: the layer the paper prunes.

    For the zoo's networks this is the classifier head: ``"classifier.6"`` (AlexNet, VGG16) and
    ``"fc"`` (ResNet50), at both presets; for any other module, the last ``nn.Linear`` of
    ``named_modules()``.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module``.
    ValueError
        If it contains no ``nn.Linear``.
    """
    check_module(model)
    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = (name, mod)
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return last


def pruning_hook(
    module: nn.Module, name: str = "weight"
) -> tuple[object, torch_prune.BasePruningMethod | None]:
    """``(key, hook)`` of the ``torch.nn.utils.prune`` pre-hook of ``module.<name>``, or ``(None, None)``."""
    check_module(module, "module")
    hooks = [
        (k, h)
        for k, h in module._forward_pre_hooks.items()
        if isinstance(h, torch_prune.BasePruningMethod) and h._tensor_name == name
    ]
    return hooks[0] if hooks else (None, None)


def pruning_mask(module: nn.Module, name: str = "weight", *, check: bool = True) -> torch.Tensor | None:
    """The current ``<name>_mask`` buffer of a pruned module, or None if the tensor is not pruned.

    Raises
    ------
    ValueError
        For states a mask cannot be composed with: a weight reparametrised by
        ``torch.nn.utils.parametrize``, ``<name>_orig`` / ``<name>_mask`` without a pruning hook (or
        the reverse), mismatched shapes, or (with ``check=True``) a mask that is not binary.
    """
    check_module(module, "module")
    if parametrize.is_parametrized(module, name):
        raise ValueError(
            f"{type(module).__name__}.{name} is reparametrised by torch.nn.utils.parametrize; "
            "latentkit cannot compose a pruning mask with it"
        )
    _, hook = pruning_hook(module, name)
    has_orig = name + "_orig" in module._parameters
    has_mask = name + "_mask" in module._buffers
    if hook is None:
        if has_orig or has_mask:
            raise ValueError(
                f"{type(module).__name__} has {name}_orig/{name}_mask but no pruning hook; "
                "its pruning state is inconsistent"
            )
        return None
    if not (has_orig and has_mask):
        raise ValueError(f"{type(module).__name__} has a pruning hook but no {name}_orig/{name}_mask")
    mask = module._buffers[name + "_mask"]
    orig = module._parameters[name + "_orig"]
    if tuple(mask.shape) != tuple(orig.shape):
        raise ValueError(
            f"{name}_mask shape {tuple(mask.shape)} differs from {name}_orig {tuple(orig.shape)}"
        )
    if check and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{type(module).__name__}.{name}_mask is not binary (0/1); cannot compose with it")
    return mask


def dense_param(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The trainable tensor of ``module.<name>``: ``<name>_orig`` when pruned, else ``<name>``."""
    check_module(module, "module")
    return module._parameters.get(name + "_orig", getattr(module, name))


def effective_weight(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The weight the forward pass uses, detached: :math:`W_{orig} \\odot M` if pruned, else ``W``.

    Parameters
    ----------
    module : nn.Module
        Any module with a ``<name>`` tensor (pruned by :mod:`torch.nn.utils.prune` or not). A weight
        reparametrised by ``torch.nn.utils.parametrize`` is returned as the parametrisation gives it.
    name : str
        Tensor name (default ``"weight"``).

    Returns
    -------
    Tensor
        A fresh detached tensor of the weight's shape, dtype and device when pruned (``orig * mask``,
        computed now, so in-place edits of ``<name>_orig`` are seen), else ``module.<name>.detach()``.

    Raises
    ------
    TypeError
        If ``module`` is not an ``nn.Module`` or has no ``<name>`` tensor.
    ValueError
        If its pruning state is inconsistent (see :func:`pruning_mask`).
    """
    check_module(module, "module")
    if not parametrize.is_parametrized(module, name):
        mask = pruning_mask(module, name, check=False)
        if mask is not None:
            return (module._parameters[name + "_orig"] * mask).detach()
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no {name} tensor")
    return weight.detach()
