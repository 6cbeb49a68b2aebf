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


def _matrix_arg(x: Any, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """``as_tensor`` for matrices (at least 2-D; the finite check runs block-wise there); see
    :func:`_like_arg` for ``like``."""
    return _like_arg(x, name, like, min_dim=2)


def _like_arg(x: Any, name: str, like: torch.Tensor | None, min_dim: int = 1) -> torch.Tensor:
    """``as_tensor``; a parameter given as a list / array / number (not a tensor) is cast to the
    dtype and device of ``like`` (the location), so ``scale=[1.0, 2.0]`` works with a float32 ``loc``.
    A tensor keeps its dtype and device (the callers refuse a mismatch)."""
    t = as_tensor(x, name, min_dim=min_dim)
    if like is not None and not isinstance(x, torch.Tensor):
        t = t.to(dtype=like.dtype, device=like.device)
    return t


#: Dtypes of a latent law's location (half precision has no CPU Cholesky / triangular solve).
_LOC_DTYPES = (torch.float32, torch.float64)


def _loc_arg(loc: Any, min_dim: int) -> torch.Tensor:
    """The location as a float32/float64 tensor, or ``TypeError`` naming ``loc``."""
    t = as_tensor(loc, "loc", min_dim=min_dim)
    if t.dtype not in _LOC_DTYPES:
        raise TypeError(
            f"loc must have dtype torch.float32 or torch.float64; got {t.dtype} (half precision is not "
            "supported by the laws' linear algebra: cast with .double() or .float())"
        )
    return t
