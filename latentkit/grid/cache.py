"""Checksummed, atomically written cache files, and the one atomic writer of the grid.

Every cell is a JSON file ``<out>/cache/cells/<hash>.json`` and every dense network a
``<out>/cache/dense/<hash>.pt`` (:func:`config_hash` of its key, :mod:`latentkit.grid.keys`); each
file starts with a magic line and the SHA-256 of its payload, is written to a temporary file and
moved into place with ``os.replace`` (:func:`atomic_write_bytes`, also used for ``results.csv``,
``dense.csv`` and ``config.yaml``), and is verified when read: a corrupted file is reported
(warning) and recomputed.

Examples
--------
>>> from latentkit.grid.cache import config_hash
>>> config_hash({'a': 1}) == config_hash({'a': 1})
True
>>> len(config_hash({'a': 1}))
24
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CacheStore", "atomic_write_bytes", "atomic_write_text", "config_hash"]

_MAGIC = b"LATENTKIT-CACHE-1\n"


def _canonical(obj: Any) -> Any:
    """Keys sorted as strings, tuples as lists, floats by their exact ``repr``."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)  # exact
    return obj


def config_hash(obj: Any) -> str:
    """SHA-256 (hex, first 24 characters) of a JSON-serialisable object's canonical form.

    ``sha256(json.dumps(canonical(obj), sort_keys=True, separators=(",", ":")))``: mappings are
    key-order independent, floats are hashed by their exact ``repr``.

    Parameters
    ----------
    obj : dict, list, str, number, bool or None
        A JSON-serialisable object (nested mappings and sequences allowed).
    """
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, ``os.replace``.

    A reader sees the old file or the new one, never a partial one; on any error the temporary
    file is removed and the error re-raised. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode())


class CacheStore:
    """Checksummed, atomically written files under ``root``.

    File layout: ``MAGIC`` line, 64 hex characters of SHA-256(payload), newline, payload.
    :meth:`put` writes through :func:`atomic_write_bytes`; :meth:`get` returns ``None`` for a
    missing file and, for a file that is truncated or whose checksum does not match, warns,
    deletes it and returns ``None`` (the caller recomputes).

    Parameters
    ----------
    root : path
        Folder of the cache (``<out>/cache``).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str) -> Path:
        """``root / kind / (key + suffix)``."""
        return self.root / kind / f"{key}{suffix}"

    def put(self, kind: str, key: str, suffix: str, payload: bytes) -> Path:
        """Store ``payload`` (bytes) under ``kind/key``; return the file's path."""
        digest = hashlib.sha256(payload).hexdigest().encode()
        return atomic_write_bytes(self.path(kind, key, suffix), _MAGIC + digest + b"\n" + payload)

    def get(self, kind: str, key: str, suffix: str) -> bytes | None:
        """The verified payload of ``kind/key``, or ``None`` (missing, or corrupted: warned and deleted)."""
        path = self.path(kind, key, suffix)
        if not path.exists():
            return None
        raw = path.read_bytes()
        head = len(_MAGIC) + 65
        ok = raw.startswith(_MAGIC) and len(raw) >= head and raw[head - 1 : head] == b"\n"
        if ok:
            payload = raw[head:]
            ok = hashlib.sha256(payload).hexdigest().encode() == raw[len(_MAGIC) : head - 1]
        if not ok:
            self.discard(path, "checksum mismatch or truncated")
            return None
        return payload

    def discard(self, path: Path, reason: str) -> None:
        """Warn that the cache file ``path`` is unusable (``reason``) and delete it (it is recomputed)."""
        warnings.warn(f"corrupted cache file {path} ({reason}): recomputing it", RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)

    def put_json(self, kind: str, key: str, obj: Any) -> Path:
        """Store ``obj`` as JSON (key order kept: it is the column order of the rows).

        Parameters
        ----------
        kind : str
            The entry's kind (a sub-folder of the store).
        key : str
            The entry's key (its file name).
        obj : dict, list, str, number or None
            A JSON-serialisable object.
        """
        return self.put(kind, key, ".json", json.dumps(obj).encode())

    def get_json(self, kind: str, key: str) -> Any:
        """The JSON object of ``kind/key`` or ``None`` (see :meth:`get`)."""
        payload = self.get(kind, key, ".json")
        return None if payload is None else json.loads(payload.decode())

    def put_torch(self, kind: str, key: str, obj: Any) -> Path:
        """Store ``obj`` with ``torch.save``.

        Parameters
        ----------
        kind : str
            The entry's kind (a sub-folder of the store).
        key : str
            The entry's key (its file name).
        obj : object
            Anything ``torch.save`` stores and ``torch.load(weights_only=True)`` reads back (tensors,
            dicts, lists, numbers).
        """
        buf = io.BytesIO()
        torch.save(obj, buf)
        return self.put(kind, key, ".pt", buf.getvalue())

    def get_torch(self, kind: str, key: str, map_location: Any = "cpu") -> Any:
        """The object of ``kind/key`` loaded with ``torch.load(weights_only=True)``, or ``None``.

        Parameters
        ----------
        kind : str
            The entry's kind (a sub-folder of the store).
        key : str
            The entry's key (its file name).
        map_location : str, torch.device or callable
            Passed to ``torch.load``: where the tensors are loaded (default the CPU).
        """
        payload = self.get(kind, key, ".pt")
        if payload is None:
            return None
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
