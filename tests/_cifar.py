"""A miniature CIFAR10 / CIFAR100 archive in torchvision's exact on-disk format, for the tests.

Pickled dicts with ``b"data"`` uint8 (N, 3072) and ``b"labels"`` / ``b"fine_labels"``, written by a
Python-2-string pickler as the real files were. torchvision verifies every file's MD5 against
constants on the dataset class (``CIFAR10.train_list`` / ``test_list`` / ``meta``); the miniature
files have other checksums, so :func:`accept_checksums` monkeypatches those class attributes with
the MD5s of the files written (the integrity check itself still runs unchanged).

Used by ``tests/test_zoo.py``, ``tests/test_grid.py`` and ``tests/test_paper_path.py``
(``from _cifar import ...``: pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import torchvision

__all__ = ["accept_checksums", "write_mini_cifar", "write_mini_cifar10", "write_mini_cifar100"]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Py2StrPickler(pickle._Pickler):
    """Protocol-2 pickler writing ``bytes`` as Python 2 ``str`` (BINSTRING opcodes).

    The real CIFAR files were pickled by Python 2: their keys (``data``, ``labels``, ...) and the
    NumPy buffer are Python 2 strings, which Python 3 loads as ``str`` with
    ``encoding="latin1"`` (torchvision) and as ``bytes`` with ``encoding="bytes"`` (the CIFAR web
    page's recipe). Python 3's own pickler would write ``bytes`` differently.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump(path: Path, obj) -> str:
    with open(path, "wb") as f:
        _Py2StrPickler(f, protocol=2).dump(obj)
    return _md5(path)


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    # CIFAR's row layout: 1024 red, 1024 green, 1024 blue values per image, uint8.
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_mini_cifar10(root: Path, n_per_batch: int = 6, n_test: int = 8, seed: int = 0) -> dict:
    """Write cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta); return name -> md5."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    md5 = {}
    for i in range(1, 6):
        md5[f"data_batch_{i}"] = _dump(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
                b"data": _images(rng, n_per_batch),
                b"filenames": [f"img{i}_{j}.png".encode() for j in range(n_per_batch)],
            },
        )
    md5["test_batch"] = _dump(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [int(v) for v in rng.integers(0, 10, n_test)],
            b"data": _images(rng, n_test),
            b"filenames": [f"test{j}.png".encode() for j in range(n_test)],
        },
    )
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    md5["batches.meta"] = _dump(
        folder / "batches.meta",
        {b"num_cases_per_batch": n_per_batch, b"label_names": [n.encode() for n in names], b"num_vis": 3072},
    )
    return md5


def write_mini_cifar100(root: Path, n_train: int = 12, n_test: int = 7, seed: int = 1) -> dict:
    """Write cifar-100-python/ (train, test, meta); return name -> md5."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    md5 = {}
    for split, n in (("train", n_train), ("test", n_test)):
        fine = [int(v) for v in rng.integers(0, 100, n)]
        md5[split] = _dump(
            folder / split,
            {
                b"filenames": [f"{split}{j}.png".encode() for j in range(n)],
                b"batch_label": f"{split}ing batch 1 of 1".encode(),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": _images(rng, n),
            },
        )
    md5["meta"] = _dump(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return md5


def accept_checksums(monkeypatch, cls, md5: dict) -> None:
    """Point torchvision's expected MD5s at the miniature files (the check itself stays active)."""
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})


#: Backwards-compatible private name (``tests/test_zoo.py`` used it).
_accept_checksums = accept_checksums


def write_mini_cifar(
    root: Path, monkeypatch, *, n10: tuple[int, int] = (6, 8), n100: tuple[int, int] = (12, 7)
) -> Path:
    """Write both archives under ``root`` and make torchvision accept them; return ``root``.

    ``n10`` = (images per training batch (5 batches), test images) of CIFAR10, ``n100`` = (training,
    test images) of CIFAR100.
    """
    md5_10 = write_mini_cifar10(root, n_per_batch=n10[0], n_test=n10[1])
    md5_100 = write_mini_cifar100(root, n_train=n100[0], n_test=n100[1])
    accept_checksums(monkeypatch, torchvision.datasets.CIFAR10, md5_10)
    accept_checksums(monkeypatch, torchvision.datasets.CIFAR100, md5_100)
    return root
