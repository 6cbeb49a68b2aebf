"""The offline stand-ins with CIFAR's shape: ``standin10`` (real digits) and ``standin100`` (synthetic)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import TensorImageDataset

__all__: list[str] = []


def _standin10(split: str, seed: int) -> TensorImageDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    # Stratified seeded 80/20 split: a fixed permutation per class.
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = int(round(0.2 * len(idx)))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    idx = torch.sort(torch.cat(train_idx if split == "train" else test_idx)).values
    x = F.interpolate(x[idx].unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False)
    # Standardise with fixed constants (mean 0.305, std 0.324 of all 1797 upsampled images, rounded)
    # so the two splits share one transform.
    x = ((x - 0.31) / 0.32).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset(
        x,
        y[idx],
        classes=[str(c) for c in range(10)],
        name="standin10",
        split=split,
        synthetic=False,
        description="stand-in for CIFAR10: scikit-learn handwritten digits "
        "(real, 8x8 upsampled to 32x32, 3 channels)",
    )


_STANDIN100_STD = 1.2  # approximate pixel std of the noise-1 stand-in; a fixed constant so splits share it


def _smooth_fields(n: int, channels: int, size: int, cutoff: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random smooth fields ``(n, channels, size, size)``, unit variance per field.

    Sum of Fourier modes with integer frequencies ``|k| <= cutoff`` and Gaussian amplitudes
    decaying as ``1 / (1 + |k|)``.
    """
    k = torch.arange(-cutoff, cutoff + 1, dtype=torch.float32)
    kx, ky = torch.meshgrid(k, k, indexing="ij")
    amp = 1.0 / (1.0 + torch.sqrt(kx**2 + ky**2))
    m = kx.numel()
    coef_re = torch.randn(n, channels, m, generator=g) * amp.flatten()
    coef_im = torch.randn(n, channels, m, generator=g) * amp.flatten()
    t = torch.arange(size, dtype=torch.float32) / size
    px, py = torch.meshgrid(t, t, indexing="ij")
    phase = 2 * math.pi * (kx.flatten()[:, None, None] * px + ky.flatten()[:, None, None] * py)  # (m, H, W)
    f = torch.einsum("ncm,mhw->nchw", coef_re, torch.cos(phase)) + torch.einsum(
        "ncm,mhw->nchw", coef_im, torch.sin(phase)
    )
    f = f - f.mean(dim=(2, 3), keepdim=True)
    return f / f.flatten(1).std(dim=1).view(n, 1, 1, 1)


def _standin100(split: str, seed: int, per_class: int | None, noise: float) -> TensorImageDataset:
    """Synthetic 100-class images: coloured gratings, 20 super-classes x 5 classes.

    Super-class ``s``: grating orientation (10 orientations x 2 spatial frequencies, about 2.5 and
    5 cycles per image). Class ``c`` in ``s``: the grating's colour ``a_c`` and the background
    colour ``b_c`` (Gaussian RGB vectors). Sample: ``b_c + a_c cos(2 pi f <u_theta, p> + phi)`` with
    random phase ``phi`` (translation), jittered orientation (0.08 rad) and frequency (5 %),
    contrast in [0.8, 1.2], plus ``noise`` x (0.7 smooth random field + 0.5 white noise); then
    standardised with one global mean/std. Class prototypes depend on ``seed`` only; the
    samples of the two splits use different seeds.
    """
    size, n_super, n_sub = 32, 20, 5
    n_classes = n_super * n_sub
    g = torch.Generator().manual_seed(10_000 + seed)
    theta_s = (torch.arange(n_super) // 2) * math.pi / 10 + 0.05 * torch.randn(n_super, generator=g)
    freq_s = torch.where(torch.arange(n_super) % 2 == 0, 2.5, 5.0) * (
        0.9 + 0.2 * torch.rand(n_super, generator=g)
    )
    colour_a = torch.randn(n_classes, 3, generator=g)
    colour_b = 0.5 * torch.randn(n_classes, 3, generator=g)
    n = per_class if per_class is not None else (40 if split == "train" else 10)
    gs = torch.Generator().manual_seed(20_000 + seed + (0 if split == "train" else 1))
    y = torch.arange(n_classes).repeat_interleave(n)
    count = len(y)
    sup = y // n_sub
    theta = theta_s[sup] + 0.08 * torch.randn(count, generator=gs)
    freq = freq_s[sup] * (1 + 0.05 * torch.randn(count, generator=gs))
    phase = 2 * math.pi * torch.rand(count, generator=gs)
    t = torch.arange(size, dtype=torch.float32) / size
    py, px = torch.meshgrid(t, t, indexing="ij")
    proj = px * torch.cos(theta)[:, None, None] + py * torch.sin(theta)[:, None, None]
    wave = torch.cos(2 * math.pi * freq[:, None, None] * proj + phase[:, None, None])
    x = colour_b[y][:, :, None, None] + colour_a[y][:, :, None, None] * wave[:, None]
    contrast = 0.8 + 0.4 * torch.rand(count, 1, 1, 1, generator=gs)
    x = (
        contrast * x
        + noise * 0.7 * _smooth_fields(count, 3, size, 2, gs)
        + noise * 0.5 * torch.randn(x.shape, generator=gs)
    )
    x = ((x - 0.0) / _STANDIN100_STD).contiguous()
    classes = [f"s{c // n_sub:02d}_c{c % n_sub}" for c in range(n_classes)]
    return TensorImageDataset(
        x.float(),
        y,
        classes=classes,
        name="standin100",
        split=split,
        synthetic=True,
        description="stand-in for CIFAR100: SYNTHETIC seeded images, 100 classes in 20 "
        "super-classes (noisy coloured gratings)",
    )
