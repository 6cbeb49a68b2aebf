"""Argument helpers shared by the latent laws (private)."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import as_tensor, check_positive, check_same_device


def _check_same_dtype(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.dtype != b.dtype:
        raise TypeError(f"{name_a} has dtype {a.dtype} but {name_b} has dtype {b.dtype}; use one dtype")


def _scalar_or_tensor(value: Any, name: str, like: torch.Tensor) -> torch.Tensor:
    """A positive scalar (Python number or 1-element tensor) as a 0-dim tensor like ``like``."""
    if isinstance(value, torch.Tensor):
        check_same_device(like, value, "loc", name)
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar; got shape {tuple(value.shape)}")
        if value.is_floating_point() and value.dtype != like.dtype:
            _check_same_dtype(like, value, "loc", name)
        check_positive(value, name)
        return value.reshape(()).to(like.dtype)
    v = check_positive(value, name)
    return torch.tensor(v, dtype=like.dtype, device=like.device)


def _matrix_arg(x: Any, name: str) -> torch.Tensor:
    """``as_tensor`` for matrices (at least 2-D; the finite check runs block-wise there)."""
    return as_tensor(x, name, min_dim=2)
