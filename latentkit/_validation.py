"""Input validation shared by every public function of latentkit.

One home for the checks, so every module raises the same clear errors:
``TypeError`` for the wrong kind of object, ``ValueError`` for the right kind
with a bad value (shape, range, NaN/inf, device mix).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from ._checks import (  # noqa: F401  (re-exported: one home, torch-free)
    _check_real,
    check_choice,
    check_columns,
    check_fraction,
    check_int,
    check_nonnegative,
    check_positive,
)

__all__ = [
    "as_tensor",
    "all_finite",
    "check_same_shape",
    "check_same_device",
    "check_positive",
    "check_nonnegative",
    "check_fraction",
    "check_int",
    "check_choice",
    "resolve_device",
    "make_generator",
    "check_columns",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_tensor(
    x: Any,
    name: str,
    *,
    dtype: torch.dtype | None = None,
    min_dim: int = 0,
    finite: bool = True,
) -> torch.Tensor:
    """Return ``x`` as a floating-point tensor, or raise a clear error.

    Accepts a ``torch.Tensor`` (kept on its device), a NumPy array or a
    Python number/sequence. Integer and boolean tensors are rejected unless
    ``dtype`` is given (weights are real numbers).

    Raises
    ------
    TypeError
        If ``x`` is not array-like, or is a non-floating tensor with no ``dtype``.
    ValueError
        If it has fewer than ``min_dim`` dimensions, is empty, or (with
        ``finite=True``) holds NaN or infinite values.
    """
    if isinstance(x, torch.nn.Parameter):
        x = x.detach()
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, (np.ndarray, numbers.Real, list, tuple)) and not isinstance(x, bool):
        try:
            t = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be array-like of real numbers; got {type(x).__name__}") from exc
    else:
        raise TypeError(f"{name} must be a torch.Tensor or array-like; got {type(x).__name__}")
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must have a floating dtype; got {t.dtype}")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s); got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if finite and not all_finite(t):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def all_finite(t: torch.Tensor, block: int = 1 << 20) -> bool:
    """True when every entry of ``t`` is finite. Checked in blocks of ``block`` entries, on the
    tensor's own device, so a large matrix never gets a full-size temporary."""
    flat = t.reshape(-1)
    return all(bool(torch.isfinite(flat[i : i + block]).all()) for i in range(0, flat.numel(), block))


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_same_device(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` live on the same device."""
    if a.device != b.device:
        raise ValueError(f"{name_a} is on {a.device} but {name_b} is on {b.device}; move them to one device")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Map ``"auto"``/``None`` to CUDA when available, else CPU; validate others.

    Raises ``ValueError`` when CUDA is asked for and is not available.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def make_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator | None:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (``None`` -> ``None``: global RNG)."""
    if seed is None:
        return None
    seed = check_int(seed, "seed", minimum=0)
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(seed)
    return g
