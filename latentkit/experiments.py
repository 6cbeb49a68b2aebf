r"""The paper's protocol as a resumable, cached grid of cells.

A *cell* is (network, dataset, method, sparsity, trial). For each (network, dataset, trial) the dense
network is trained (or read from the cache), its last layer is pruned with every (method,
sparsity) of the config, the pruned last layer is fine-tuned for ``finetune_epochs`` epochs, and
after every epoch ``t = 0..T`` (``t = 0``: right after pruning, before any fine-tuning) the cell
records

* ``ap2`` = :math:`\lVert w - \tilde w_t \rVert_2^2` on the flattened last-layer weights
  (:func:`latentkit.patterns.ap2`),
* ``ap3_<name>`` for every latent of the config (:func:`latentkit.patterns.ap3`; defaults: the
  paper's isotropic Gaussian ``gauss_iso``, the reference's Student-t on 100 chunk means with
  df 4 ``t_chunks``, and the Fisher/Laplace Kronecker latent ``laplace_kron`` fitted on the dense
  network's penultimate features of the training set),
* train/test accuracy (%) and mean cross-entropy of the pruned network,
* ``pd_train`` / ``pd_test`` = :math:`|acc_{dense} - acc_{pruned}(t)|` in percentage points,
* the achieved sparsity of the last layer and the wall time.

Fine-tuning engines (``engine``)
--------------------------------
``exact``
    The reference's loop: full forward/backward through the whole network for every batch,
    only the last layer's unpruned weights and its bias trainable
    (:func:`latentkit.pruning.freeze_all_but` + :class:`latentkit.pruning.MaskedOptimizer`).
    With ``finetune_bn="train"`` the network is in train mode during fine-tuning as in the
    reference code: BatchNorm running statistics drift and dropout is active, so the frozen
    backbone's features *change* during fine-tuning (reference departure 3 in the paper notes).
    With ``finetune_bn="eval"`` the backbone is a fixed function.
``cached``
    The backbone is frozen in eval mode, so the fine-tuning of the last layer is a linear
    softmax model on fixed penultimate features. The features of the train and test views are
    computed once per (network, dataset, trial) and all (method x sparsity) cells are fine-tuned
    as one batched tensor program: weights ``(K, C, F)``, logits ``X @ W^T + b`` for all ``K``
    cells at once, the gradient of the mean cross-entropy in closed form
    (``(softmax - onehot) / B``), masked, then SGD with momentum and weight decay exactly as
    ``torch.optim.SGD`` computes it. It needs ``finetune_bn="eval"`` and no fine-tuning
    augmentation; it then agrees with ``exact`` to float rounding (tested: accuracies within
    0.1 pp).

Both use the same batches (one seeded permutation per epoch), the same per-epoch cosine schedule
:math:`\eta_e = \eta (1 + \cos(\pi e / E)) / 2` and SGD with the config's momentum and weight decay.

Cache
-----
Every cell is a JSON file ``<out>/cache/cells/<sha256 of the cell's config>.json`` and every
dense network a ``<out>/cache/dense/<hash>.pt``; each file starts with a magic line and the
SHA-256 of its payload, is written to a temporary file and moved into place with
``os.replace`` (atomic), and is verified when read: a corrupted file is reported (warning) and
recomputed. A killed run resumes where it stopped (finished cells are read, not recomputed). A
(network, dataset, trial) group with some cells missing is recomputed as a whole (same batch
composition, hence bit-identical values) and only the missing cells are written.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import zoo
from ._validation import check_choice, check_fraction, check_int, check_nonnegative, check_positive, resolve_device

__all__ = [
    "ExperimentConfig",
    "DEFAULT_AP3",
    "ID_COLUMNS",
    "TIMING_COLUMNS",
    "load_config",
    "run_grid",
    "dense_table",
    "train_dense",
    "finetune_cached",
    "cosine_lr",
    "correlations",
    "spearman_rows",
    "kendall_rows",
    "summarize",
    "CacheStore",
    "config_hash",
    "EXTRA_MEASURES",
    "reference_rescale",
]

#: Bump when a change of code changes cached results (part of every cache key).
CODE_VERSION = "latentkit-experiments-1"

#: The latent families of AP3 computed by default (see :func:`latentkit.patterns.ap3`).
DEFAULT_AP3: Tuple[Dict[str, Any], ...] = (
    {"name": "gauss_iso", "family": "gaussian", "covariance": "isotropic", "scale": 1.0},
    {"name": "t_chunks", "family": "student_t", "covariance": "isotropic", "projection": "chunk_means",
     "num_chunks": 100, "df": 4.0, "scale": 1.0},
    {"name": "laplace_kron", "family": "gaussian", "covariance": "kronecker", "fit": "laplace",
     "damping": 1e-3},
)

#: Columns that identify a row of :func:`run_grid`'s table.
ID_COLUMNS = ("network", "dataset", "method", "sparsity", "trial", "epoch")
#: Columns that measure time (they differ between otherwise identical runs).
TIMING_COLUMNS = ("wall_time_s",)

#: Optional per-epoch measures of the pruned last layer (config field ``extra_measures``), name -> column.
#: ``lq``: :func:`latentkit.pruning.lq_index` (q = 0.5) of the pruned weights; ``pq``:
#: :func:`latentkit.pruning.pq_index` (p = 1, q = 2); ``logit_change``: :math:`\mathrm{tr}(D S D^\top)` with
#: :math:`D = W - \tilde W_t` and :math:`S = \frac1n\sum_i x_i x_i^\top` the uncentred second moment of the
#: dense network's penultimate training features (= mean squared change of the logits, bias aside);
#: ``dof_change``: :math:`|N(W S W^\top) - N(\tilde W_t S \tilde W_t^\top)|` with
#: :func:`latentkit.pruning.degrees_of_freedom` at :math:`\lambda = \mathrm{tr}(W S W^\top) / C`.
EXTRA_MEASURES: Dict[str, str] = {"lq": "lq_index", "pq": "pq_index", "logit_change": "logit_change",
                                  "dof_change": "dof_change"}

_GRID_METHODS = ("lowest", "highest", "highest_reference", "random", "structured", "lq_adaptive")


# ============================================================================================
# configuration
# ============================================================================================
PerNet = Union[int, float, Dict[str, Union[int, float]]]


@dataclass
class ExperimentConfig:
    """Everything that defines a grid (loadable from YAML/JSON with :func:`load_config`).

    Values that may differ per network (``dense_epochs``, ``dense_lr``, ``finetune_lr``) take a
    number or a mapping ``{network: number}``; a key ``"network/dataset"`` overrides ``"network"``
    for that dataset.

    Attributes
    ----------
    name : str
        Label of the grid (default output folder ``results/<name>``).
    scale : {"quick", "paper"}
        Network and data scale (:mod:`latentkit.zoo`).
    networks, datasets, methods : list of str
        Grid axes. Methods: any of ``lowest, highest, highest_reference, random, structured,
        lq_adaptive`` (:func:`latentkit.pruning.prune`; the paper runs lowest/highest/random).
    sparsities : list of float in [0, 1)
        Fraction of the last layer's weights pruned.
    trials : int
        Independent repetitions; trial ``i`` uses seed ``seed + i`` for the dense training, the
        random masks and the batch order.
    dense_epochs, dense_lr, dense_batch_size, dense_augment
        Dense training: SGD (momentum, weight decay below), cosine schedule per epoch.
        ``dense_augment``: the dataset's training augmentation (paper scale: the reference's
        RandomResizedCrop + flip).
    finetune_epochs, finetune_lr, finetune_batch_size, finetune_augment
        Fine-tuning after pruning (new SGD, cosine schedule).
    momentum, weight_decay : float
        Of both SGD optimisers (reference: 0.9 and 0).
    engine : {"cached", "exact"}
        Fine-tuning engine (module docstring).
    finetune_bn : {"eval", "train"}
        Mode of the network while fine-tuning with the exact engine (``"train"`` = the reference's
        BatchNorm drift and dropout).
    layers : {"last", "all"}
        Layers pruned. ``"last"``: the paper's protocol. ``"all"``: every Linear/Conv layer is
        pruned with the same method and sparsity (``scope="layer"``) and all unpruned weights are
        fine-tuned with :class:`latentkit.pruning.MaskedOptimizer` (needs ``engine="exact"``);
        AP2/AP3/extra measures stay those of the last layer, and ``ap2_all`` (sum over layers of
        the squared distance ``||w - w~||^2``) is added.
    extra_measures : list of str
        Optional extra columns computed from the pruned last layer at every epoch (names of
        :data:`EXTRA_MEASURES`: ``lq``, ``pq``, ``logit_change``, ``dof_change``). Default ``[]``;
        a non-empty list is part of the cells' cache key (an empty one is not, so older caches stay valid).
    random_mask_seed : "per_trial" or int
        ``"per_trial"`` (default): the random mask differs across trials. An int: the same random
        mask (per method and sparsity) in every trial and network, as the reference code's fixed seed
        (departure 4). Part of the cache key only when not the default.
    ap3 : list of dict
        Latent families for AP3: ``name`` plus keyword arguments of
        :func:`latentkit.patterns.ap3`; ``fit: "laplace"`` (with optional ``damping``) builds the
        Kronecker factors from the dense network's training features (bias not folded).
    width : dict or None
        Quick-scale width factor per network (default :data:`latentkit.zoo.QUICK_WIDTH`).
    weights : None or "imagenet"
        Initialisation of the paper-scale networks before dense training.
    allow_download : bool
        Let torchvision download missing ImageNet weights.
    data_root, download
        Passed to :func:`latentkit.zoo.load_dataset`.
    max_train_samples, max_test_samples : int or None
        Seeded subsets (``data_seed``) to shrink the data.
    data_seed : int
        Seed of the stand-ins and of the subsets.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    seed : int
        Base seed.
    channels_last : bool
        Train convolutional networks in channels-last memory format (2x faster on CPU).
    eval_batch_size, num_workers
        Evaluation batch size; DataLoader workers for the paper-scale (PIL) datasets.
    """

    name: str = "quick"
    scale: str = "quick"
    networks: List[str] = field(default_factory=lambda: ["alexnet", "vgg16", "resnet50"])
    datasets: List[str] = field(default_factory=lambda: ["standin10", "standin100"])
    methods: List[str] = field(default_factory=lambda: ["lowest", "highest", "random"])
    sparsities: List[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.8])
    trials: int = 1
    dense_epochs: PerNet = field(default_factory=lambda: {
        "alexnet": 8, "alexnet/standin100": 10, "vgg16": 6, "vgg16/standin100": 10, "resnet50": 5,
        "resnet50/standin100": 4})
    dense_lr: PerNet = field(default_factory=lambda: {"alexnet": 0.005, "vgg16": 0.05, "resnet50": 0.1})
    dense_batch_size: int = 64
    dense_augment: bool = False
    finetune_epochs: int = 20
    finetune_lr: PerNet = 0.01
    finetune_batch_size: int = 64
    finetune_augment: bool = False
    momentum: float = 0.9
    weight_decay: float = 0.0
    engine: str = "cached"
    finetune_bn: str = "eval"
    layers: str = "last"
    extra_measures: List[str] = field(default_factory=list)
    random_mask_seed: Union[str, int] = "per_trial"
    ap3: List[Dict[str, Any]] = field(default_factory=lambda: [dict(d) for d in DEFAULT_AP3])
    width: Optional[Dict[str, float]] = None
    weights: Optional[str] = None
    allow_download: bool = False
    data_root: Optional[str] = None
    download: bool = False
    max_train_samples: Optional[int] = None
    max_test_samples: Optional[int] = None
    data_seed: int = 0
    device: str = "auto"
    seed: int = 0
    channels_last: bool = True
    eval_batch_size: int = 1024
    num_workers: int = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExperimentConfig":
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a config must be a mapping; got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**copy.deepcopy(dict(d)))

    def to_dict(self) -> Dict[str, Any]:
        """Plain-Python dict (JSON/YAML serialisable)."""
        return copy.deepcopy(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some fields changed."""
        d = self.to_dict()
        d.update(changes)
        return ExperimentConfig.from_dict(d)

    def per_network(self, key: str, network: str, dataset: Optional[str] = None) -> Union[int, float]:
        """Value of a per-network field (``dense_epochs``, ``dense_lr``, ``finetune_lr``).

        A mapping may hold ``"<network>/<dataset>"`` keys, which win over ``"<network>"`` keys.
        """
        v = getattr(self, key)
        if isinstance(v, Mapping):
            if dataset is not None and f"{network}/{dataset}" in v:
                return v[f"{network}/{dataset}"]
            if network not in v:
                raise ValueError(f"{key} has no value for network {network!r}; given for {sorted(v)}")
            return v[network]
        return v

    # ------------------------------------------------------------------ validation
    def validate(self, check_data: bool = True) -> "ExperimentConfig":
        """Check every field; with ``check_data`` also that data and weights are present.

        Raises ``ValueError`` / ``TypeError`` (bad values) or ``FileNotFoundError`` (missing CIFAR
        archive without ``download``, missing ImageNet weights without ``allow_download``) before
        anything is trained. Returns ``self``.
        """
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name must be a non-empty string")
        check_choice(self.scale, "scale", zoo.SCALES)
        for key, allowed, label in (("networks", zoo.NETWORKS, "network"),
                                    ("datasets", zoo.DATASETS, "dataset"),
                                    ("methods", _GRID_METHODS, "method")):
            values = getattr(self, key)
            if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
                raise ValueError(f"{key} must be a non-empty list; got {values!r}")
            for v in values:
                if label == "method" and v == "spectral":
                    raise ValueError("method 'spectral' needs calibration inputs and rewires the layer before "
                                     "the last one; it is not supported by the grid (use latentkit.pruning.prune)")
                check_choice(v, label, allowed)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} has duplicates: {values}")
        if isinstance(self.sparsities, (str, float, int)) or len(self.sparsities) == 0:
            raise ValueError(f"sparsities must be a non-empty list; got {self.sparsities!r}")
        for s in self.sparsities:
            check_fraction(s, "sparsity", high_open=True)
        if len(set(self.sparsities)) != len(self.sparsities):
            raise ValueError(f"sparsities has duplicates: {self.sparsities}")
        check_int(self.trials, "trials", minimum=1)
        for net in self.networks:
            for ds in self.datasets:
                check_int(self.per_network("dense_epochs", net, ds), f"dense_epochs[{net}/{ds}]", minimum=1)
                check_positive(self.per_network("dense_lr", net, ds), f"dense_lr[{net}/{ds}]")
                check_positive(self.per_network("finetune_lr", net, ds), f"finetune_lr[{net}/{ds}]")
        check_int(self.finetune_epochs, "finetune_epochs", minimum=1)
        for key in ("dense_batch_size", "finetune_batch_size", "eval_batch_size"):
            check_int(getattr(self, key), key, minimum=1)
        check_int(self.num_workers, "num_workers", minimum=0)
        m = check_nonnegative(self.momentum, "momentum")
        if not m < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum}")
        check_nonnegative(self.weight_decay, "weight_decay")
        check_choice(self.engine, "engine", ("cached", "exact"))
        check_choice(self.finetune_bn, "finetune_bn", ("eval", "train"))
        if self.layers not in ("last", "all"):
            raise ValueError(f"layers={self.layers!r}: must be 'last' (the paper's protocol) or 'all'")
        if self.layers == "all" and self.engine != "exact":
            raise ValueError("layers='all' needs engine='exact': the cached engine fine-tunes the last layer only, "
                             "on fixed features")
        if isinstance(self.extra_measures, str) or not isinstance(self.extra_measures, Sequence):
            raise ValueError(f"extra_measures must be a list of names from {sorted(EXTRA_MEASURES)}; "
                             f"got {self.extra_measures!r}")
        for m in self.extra_measures:
            check_choice(m, "extra measure", tuple(EXTRA_MEASURES))
        if len(set(self.extra_measures)) != len(self.extra_measures):
            raise ValueError(f"extra_measures has duplicates: {self.extra_measures}")
        if isinstance(self.random_mask_seed, bool) or not (
                self.random_mask_seed == "per_trial" or isinstance(self.random_mask_seed, int)):
            raise ValueError(f"random_mask_seed must be 'per_trial' or a non-negative int; got {self.random_mask_seed!r}")
        if isinstance(self.random_mask_seed, int):
            check_int(self.random_mask_seed, "random_mask_seed", minimum=0)
        if self.engine == "cached" and (self.finetune_bn != "eval" or self.finetune_augment):
            raise ValueError("engine='cached' fine-tunes on fixed features: it needs finetune_bn='eval' and "
                             "finetune_augment=False; use engine='exact' for the reference's train-mode loop")
        for key in ("dense_augment", "finetune_augment", "download", "allow_download", "channels_last"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"{key} must be true or false; got {getattr(self, key)!r}")
        check_int(self.seed, "seed", minimum=0)
        check_int(self.data_seed, "data_seed", minimum=0)
        for key in ("max_train_samples", "max_test_samples"):
            if getattr(self, key) is not None:
                check_int(getattr(self, key), key, minimum=1)
        if self.width is not None:
            if not isinstance(self.width, Mapping):
                raise TypeError("width must be a mapping {network: factor} or null")
            for net, w in self.width.items():
                check_choice(net, "network", zoo.NETWORKS)
                check_positive(w, f"width[{net}]")
        if self.weights is not None:
            check_choice(self.weights, "weights", ("imagenet",))
            if self.scale != "paper":
                raise ValueError("weights='imagenet' needs scale='paper'")
        names = []
        for spec in self.ap3:
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise ValueError(f"each ap3 entry must be a mapping with a 'name'; got {spec!r}")
            if not str(spec["name"]).isidentifier():
                raise ValueError(f"ap3 name {spec['name']!r} must be an identifier (it becomes column ap3_<name>)")
            names.append(spec["name"])
            if spec.get("fit") not in (None, "laplace"):
                raise ValueError(f"ap3 {spec['name']!r}: fit must be 'laplace' or absent; got {spec.get('fit')!r}")
            check_choice(spec.get("family", "gaussian"), "ap3 family", ("gaussian", "student_t"))
        if len(set(names)) != len(names):
            raise ValueError(f"ap3 names must be unique; got {names}")
        self._dry_run_ap3()
        resolve_device(self.device)
        if check_data:
            root = zoo.default_data_root() if self.data_root is None else Path(self.data_root).expanduser()
            for ds in self.datasets:
                if ds.startswith("cifar") and not self.download:
                    zoo._check_cifar_present(ds, root)
            if self.weights == "imagenet" and not self.allow_download:
                for net in self.networks:
                    path = zoo.imagenet_weights_path(net)
                    if not path.exists():
                        raise FileNotFoundError(
                            f"ImageNet weights for {net} not found at {path}; set allow_download: true in the "
                            f"config, copy the file there, or use weights: null")
        return self


    def _dry_run_ap3(self) -> None:
        """Evaluate every AP3 latent once on a small random layer, so that a bad option fails now."""
        from .latent import fit_laplace_linear
        from .patterns import ap3

        g = torch.Generator().manual_seed(0)
        w = torch.randn(4, 250, generator=g, dtype=torch.float64)
        fit = None
        for spec in self.ap3:
            kw = {k: v for k, v in spec.items() if k not in ("name", "fit", "damping")}
            try:
                if spec.get("fit") == "laplace":
                    if fit is None:
                        x = torch.randn(300, 250, generator=g, dtype=torch.float64)
                        fit = fit_laplace_linear(x, x @ w.T, bias=False,
                                                 damping=float(spec.get("damping", 1e-3)))
                    kw["fit"] = fit
                ap3(w, w * 0.5, **kw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"ap3 latent {spec['name']!r} is invalid: {exc}") from exc


def load_config(source: Union[str, os.PathLike, Mapping[str, Any], ExperimentConfig],
                **overrides: Any) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a YAML/JSON file, a mapping, or a config (copied).

    ``overrides`` replace fields (e.g. ``load_config("configs/quick.yaml", networks=["vgg16"])``).
    The result is validated without checking data presence (``run_grid`` does that).
    """
    if isinstance(source, ExperimentConfig):
        d = source.to_dict()
    elif isinstance(source, Mapping):
        d = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        text = path.read_text()
        if path.suffix.lower() == ".json":
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text)
        if not isinstance(d, Mapping):
            raise ValueError(f"config file {path} must hold a mapping at top level")
    else:
        raise TypeError(f"config must be a path, a mapping or an ExperimentConfig; got {type(source).__name__}")
    d = dict(d)
    d.update(overrides)
    return ExperimentConfig.from_dict(d).validate(check_data=False)


# ============================================================================================
# cache
# ============================================================================================
_MAGIC = b"LATENTKIT-CACHE-1\n"


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)  # exact
    return obj


def config_hash(obj: Any) -> str:
    """SHA-256 (hex, 24 characters) of a JSON-serialisable object's canonical form."""
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CacheStore:
    """Checksummed, atomically written files under ``root``.

    File layout: ``MAGIC`` line, 64 hex characters of SHA-256(payload), newline, payload.
    :meth:`put` writes a temporary file in the same folder, flushes and fsyncs it, then
    ``os.replace`` s it into place; :meth:`get` returns ``None`` for a missing file and, for a
    file that is truncated or whose checksum does not match, warns, deletes it and returns
    ``None`` (the caller recomputes).
    """

    def __init__(self, root: Union[str, os.PathLike]) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def put(self, kind: str, key: str, suffix: str, payload: bytes) -> Path:
        path = self.path(kind, key, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(payload).hexdigest().encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + digest + b"\n" + payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def get(self, kind: str, key: str, suffix: str) -> Optional[bytes]:
        path = self.path(kind, key, suffix)
        if not path.exists():
            return None
        raw = path.read_bytes()
        head = len(_MAGIC) + 65
        ok = raw.startswith(_MAGIC) and len(raw) >= head and raw[head - 1:head] == b"\n"
        if ok:
            payload = raw[head:]
            ok = hashlib.sha256(payload).hexdigest().encode() == raw[len(_MAGIC):head - 1]
        if not ok:
            warnings.warn(f"corrupted cache file {path} (checksum mismatch or truncated): recomputing it",
                          RuntimeWarning, stacklevel=2)
            path.unlink(missing_ok=True)
            return None
        return payload

    def put_json(self, kind: str, key: str, obj: Any) -> Path:
        return self.put(kind, key, ".json", json.dumps(obj).encode())  # keeps key order (column order)

    def get_json(self, kind: str, key: str) -> Any:
        payload = self.get(kind, key, ".json")
        return None if payload is None else json.loads(payload.decode())

    def put_torch(self, kind: str, key: str, obj: Any) -> Path:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return self.put(kind, key, ".pt", buf.getvalue())

    def get_torch(self, kind: str, key: str, map_location: Any = "cpu") -> Any:
        payload = self.get(kind, key, ".pt")
        if payload is None:
            return None
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)


# ============================================================================================
# data helpers
# ============================================================================================
def _datasets(config: ExperimentConfig, name: str) -> Dict[str, torch.utils.data.Dataset]:
    """The views a group needs: dense-training, fine-tuning, and the two evaluation views."""
    common = dict(root=config.data_root, download=config.download, scale=config.scale, seed=config.data_seed)
    views = {
        "train_eval": zoo.load_dataset(name, "train", augment=False, max_samples=config.max_train_samples,
                                              **common),
        "test_eval": zoo.load_dataset(name, "test", augment=False, max_samples=config.max_test_samples,
                                             **common),
    }
    for key, aug in (("train_dense", config.dense_augment), ("train_finetune", config.finetune_augment)):
        if not aug:
            views[key] = views["train_eval"]
        else:
            views[key] = zoo.load_dataset(name, "train", augment=True, max_samples=config.max_train_samples,
                                                 **common)
    return views


def _is_tensor_ds(ds: Any) -> bool:
    return isinstance(ds, zoo.TensorImageDataset)


def _shift_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translation by up to 4 px (zero padding) and horizontal flip: quick-scale augmentation."""
    n = x.shape[0]
    pad = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=g).tolist()
    dy = torch.randint(0, 9, (n,), generator=g).tolist()
    flip = (torch.rand(n, generator=g) < 0.5).tolist()
    out = torch.stack([pad[i, :, dy[i]:dy[i] + x.shape[2], dx[i]:dx[i] + x.shape[3]] for i in range(n)])
    idx = [i for i in range(n) if flip[i]]
    if idx:
        out[idx] = out[idx].flip(-1)
    return out


def _batches(ds: Any, batch_size: int, order: Optional[torch.Tensor], device: torch.device,
             num_workers: int = 0, augment_gen: Optional[torch.Generator] = None
             ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``(x, y)`` on ``device`` in the given index order (``None``: sequential)."""
    n = len(ds)
    if _is_tensor_ds(ds):
        for i in range(0, n, batch_size):
            if order is None:
                x, y = ds.images[i:i + batch_size], ds.targets[i:i + batch_size]
            else:
                idx = order[i:i + batch_size]
                x, y = ds.images[idx], ds.targets[idx]
            if augment_gen is not None:
                x = _shift_flip(x, augment_gen)
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    else:
        sampler = list(range(n)) if order is None else order.tolist()
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                             pin_memory=device.type == "cuda")
        for x, y in loader:
            yield x.to(device, non_blocking=True), torch.as_tensor(y).to(device, non_blocking=True)


def _labels(ds: Any, device: torch.device) -> torch.Tensor:
    if _is_tensor_ds(ds):
        return ds.targets.to(device)
    base, idx = (ds.dataset, ds.indices) if isinstance(ds, torch.utils.data.Subset) else (ds, None)
    t = torch.as_tensor(base.targets, dtype=torch.int64)
    return (t if idx is None else t[torch.as_tensor(idx)]).to(device)


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    r"""Learning rate of epoch ``epoch`` (0-based) of ``epochs``: :math:`\eta (1 + \cos(\pi e / E)) / 2`.

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=E, eta_min=0)`` stepped once
    per epoch.
    """
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def _prepare(model: nn.Module, config: ExperimentConfig, device: torch.device) -> nn.Module:
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _to_input(x: torch.Tensor, config: ExperimentConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if config.channels_last and x.dim() == 4 else x


# ============================================================================================
# dense training
# ============================================================================================
def _model_kwargs(config: ExperimentConfig, network: str) -> Dict[str, Any]:
    kw: Dict[str, Any] = {"scale": config.scale, "weights": config.weights, "allow_download": config.allow_download}
    if config.scale == "quick":
        kw["width"] = (config.width or {}).get(network, zoo.QUICK_WIDTH[network])
    return kw


def _dense_key(config: ExperimentConfig, network: str, dataset: str, trial: int) -> Dict[str, Any]:
    return {
        "code": CODE_VERSION, "kind": "dense", "scale": config.scale, "network": network, "dataset": dataset,
        "trial": trial, "seed": config.seed, "model": {k: v for k, v in _model_kwargs(config, network).items()
                                                        if k != "allow_download"},
        "epochs": config.per_network("dense_epochs", network, dataset),
        "lr": config.per_network("dense_lr", network, dataset),
        "batch_size": config.dense_batch_size, "augment": config.dense_augment, "momentum": config.momentum,
        "weight_decay": config.weight_decay, "max_train": config.max_train_samples,
        "max_test": config.max_test_samples, "data_seed": config.data_seed, "channels_last": config.channels_last,
    }


@torch.no_grad()
def _evaluate(model: nn.Module, ds: Any, config: ExperimentConfig, device: torch.device) -> Tuple[float, float]:
    """Mean cross-entropy and accuracy (%) of ``model`` in eval mode on ``ds``."""
    model.eval()
    loss, correct, n = 0.0, 0, 0
    for x, y in _batches(ds, config.eval_batch_size, None, device, config.num_workers):
        out = model(_to_input(x, config))
        loss += float(F.cross_entropy(out.float(), y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    return loss / n, 100.0 * correct / n


def _sgd_epoch(model: nn.Module, opt: Any, ds: Any, batch_size: int, lr: float, g: torch.Generator,
               aug_g: Optional[torch.Generator], config: ExperimentConfig, device: torch.device) -> float:
    """One epoch of cross-entropy training at learning rate ``lr`` over ``ds`` in the order drawn from
    ``g`` (the model's train/eval mode is the caller's choice); returns the mean batch loss.
    Dense training and the exact fine-tuning engine share it."""
    for group in opt.param_groups:
        group["lr"] = lr
    order = torch.randperm(len(ds), generator=g)
    tot, nb = 0.0, 0
    for x, y in _batches(ds, batch_size, order, device, config.num_workers, aug_g):
        loss = F.cross_entropy(model(_to_input(x, config)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += float(loss.detach())
        nb += 1
    return tot / max(nb, 1)


def train_dense(config: ExperimentConfig, network: str, dataset: str, trial: int,
                views: Optional[Dict[str, Any]] = None, progress: bool = False
                ) -> Tuple[Dict[str, torch.Tensor], List[Dict[str, Any]]]:
    """Train the dense network of one (network, dataset, trial); return ``(state_dict, history)``.

    SGD (``momentum``, ``weight_decay``), per-epoch cosine schedule from ``dense_lr``, batches of
    ``dense_batch_size`` in a seeded random order, seed ``config.seed + trial`` for the
    initialisation and the order. ``history`` has one dict per epoch (``epoch``, ``lr``,
    ``train_loss`` = mean training loss over the epoch's batches, ``train_acc``/``test_acc``/
    ``test_loss`` in eval mode, ``time_s``). Not cached: see :func:`run_grid` / :func:`dense_table`.
    """
    device = resolve_device(config.device)
    views = views or _datasets(config, dataset)
    num_classes = zoo.dataset_num_classes(dataset)
    seed = config.seed + trial
    model = _prepare(zoo.build_model(network, num_classes, seed=seed, **_model_kwargs(config, network)),
                     config, device)
    epochs = int(config.per_network("dense_epochs", network, dataset))
    base_lr = float(config.per_network("dense_lr", network, dataset))
    opt = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=config.momentum, weight_decay=config.weight_decay)
    g = torch.Generator().manual_seed(1_000_003 * seed + 17)
    aug_g = torch.Generator().manual_seed(1_000_003 * seed + 29)
    train_ds = views["train_dense"]
    quick_aug = config.dense_augment and _is_tensor_ds(train_ds)
    history = []
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout
        for epoch in range(epochs):
            lr = cosine_lr(base_lr, epoch, epochs)
            model.train()
            running = _sgd_epoch(model, opt, train_ds, config.dense_batch_size, lr, g,
                                 aug_g if quick_aug else None, config, device)
            tr_loss, tr_acc = _evaluate(model, views["train_eval"], config, device)
            te_loss, te_acc = _evaluate(model, views["test_eval"], config, device)
            history.append({"epoch": epoch + 1, "lr": lr, "train_loss_running": running,
                            "train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc,
                            "time_s": time.perf_counter() - t0})
            if progress:
                print(f"  dense {network}/{dataset} trial {trial} epoch {epoch + 1}/{epochs}: "
                      f"train {tr_acc:.1f}% test {te_acc:.1f}%", flush=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return state, history


def _dense_model(config: ExperimentConfig, store: CacheStore, network: str, dataset: str, trial: int,
                 views: Dict[str, Any], device: torch.device, progress: bool = False
                 ) -> Tuple[nn.Module, List[Dict[str, Any]]]:
    """The dense model from the cache (trained and stored first if missing), in eval mode."""
    key = config_hash(_dense_key(config, network, dataset, trial))
    entry = store.get_torch("dense", key)
    if entry is None:
        state, history = train_dense(config, network, dataset, trial, views, progress=progress)
        store.put_torch("dense", key, {"state_dict": state, "history": history,
                                       "key": _dense_key(config, network, dataset, trial)})
        entry = store.get_torch("dense", key)  # always continue from the stored bits
    model = zoo.build_model(network, zoo.dataset_num_classes(dataset), seed=0,
                                   **{**_model_kwargs(config, network), "weights": None})
    model.load_state_dict(entry["state_dict"])
    return _prepare(model, config, device).eval(), entry["history"]


@torch.no_grad()
def _features(model: nn.Module, ds: Any, config: ExperimentConfig, device: torch.device) -> torch.Tensor:
    """Penultimate features ``(N, F)`` (float32, on ``device``) of ``model`` in eval mode."""
    model.eval()
    fx = zoo.feature_extractor(model)
    chunks = [fx(_to_input(x, config)).float() for x, _ in _batches(ds, config.eval_batch_size, None, device,
                                                                    config.num_workers)]
    return torch.cat(chunks)


# ============================================================================================
# pruning + measurement
# ============================================================================================
def _cell_seed(config: ExperimentConfig, network: str, dataset: str, method: str, sparsity: float, trial: int) -> int:
    """Seed of a cell's random mask: differs across trials (unlike the reference's fixed seed).

    With an integer ``config.random_mask_seed`` the seed depends only on it, the method and the
    sparsity: the same mask in every trial (the reference's departure 4)."""
    if isinstance(config.random_mask_seed, int) and not isinstance(config.random_mask_seed, bool):
        return int(config_hash(["mask-fixed", config.random_mask_seed, method, repr(float(sparsity))])[:12], 16)
    return int(config_hash(["mask", config.seed, network, dataset, method, repr(float(sparsity)), trial])[:12], 16)


def _ft_seed(config: ExperimentConfig, network: str, dataset: str, trial: int) -> int:
    return int(config_hash(["finetune-order", config.seed, network, dataset, trial])[:12], 16)


def _prune_copy(dense: nn.Module, method: str, sparsity: float, seed: int, whole: bool, layers: str = "last"
                ) -> Tuple[nn.Module, str, Any]:
    """Prune a copy of the last layer of ``dense`` (``whole``: of the whole network).

    Every grid method looks at the last layer's weights only, so pruning a copy of that layer alone
    (held in a one-layer ``nn.Sequential`` under the same name) gives the same mask and weights as
    pruning a copy of the network, without copying the backbone (the cached engine's case).
    """
    from collections import OrderedDict

    from .pruning import prune

    name, layer = zoo.classifier_layer(dense)
    if layers == "all":
        model = copy.deepcopy(dense)
        result = prune(model, method, float(sparsity), layers="all", scope="layer", seed=seed)
        if name not in result.masks:
            raise RuntimeError(f"pruning all layers missed the classifier layer {name!r}")
        return model, name, result
    if whole:
        model = copy.deepcopy(dense)
    else:
        model = nn.Module()
        parent, _, leaf = name.rpartition(".")
        holder = model
        for part in parent.split(".") if parent else []:
            sub = nn.Module()
            holder.add_module(part, sub)
            holder = sub
        holder.add_module(leaf, copy.deepcopy(layer))
    result = prune(model, method, float(sparsity), layers="last", scope="layer", seed=seed)
    if set(result.masks) != {name}:
        raise RuntimeError(f"pruning touched {list(result.masks)} but the classifier layer is {name!r}")
    return model, name, result


class _APMeasure:
    """AP2 and every AP3 of the config between the dense last layer and a pruned/fine-tuned one."""

    def __init__(self, config: ExperimentConfig, w_dense: torch.Tensor, feats: torch.Tensor, logits: torch.Tensor):
        from .latent import fit_laplace_linear

        self.w_dense = w_dense.detach()
        self.specs = []
        fits: Dict[float, Any] = {}
        for spec in config.ap3:
            kw = {k: v for k, v in spec.items() if k not in ("name", "fit", "damping")}
            if spec.get("fit") == "laplace":
                damping = float(spec.get("damping", 1e-3))
                if damping not in fits:
                    fits[damping] = fit_laplace_linear(feats, logits, bias=False, damping=damping)
                kw["fit"] = fits[damping]
            self.specs.append((f"ap3_{spec['name']}", kw))
        self.extra = list(config.extra_measures)
        if any(m in ("logit_change", "dof_change") for m in self.extra):
            x = feats.detach().double()
            self.S = x.T @ x / x.shape[0]
            wd = self.w_dense.double()
            self.lam = float(torch.trace(wd @ self.S @ wd.T)) / wd.shape[0]
            self.dof_dense = self._dof(wd) if "dof_change" in self.extra else 0.0

    def _dof(self, w: torch.Tensor) -> float:
        from .pruning import degrees_of_freedom

        return degrees_of_freedom(w @ self.S @ w.T, self.lam)

    def __call__(self, w: torch.Tensor) -> Dict[str, float]:
        from .patterns import ap2, ap3

        out = {"ap2": ap2(self.w_dense, w)}
        for col, kw in self.specs:
            out[col] = ap3(self.w_dense, w, **kw)
        if self.extra:
            out.update(_extra_measures(self.extra, self.w_dense, w, getattr(self, "S", None),
                                       getattr(self, "lam", None), getattr(self, "dof_dense", None)))
        return out


def _extra_measures(names: Sequence[str], w_dense: torch.Tensor, w: torch.Tensor, S: Optional[torch.Tensor],
                    lam: Optional[float], dof_dense: Optional[float]) -> Dict[str, float]:
    """The :data:`EXTRA_MEASURES` columns of one pruned last layer ``w`` (C, F) (float64 inside)."""
    from .pruning import degrees_of_freedom, lq_index, pq_index

    out: Dict[str, float] = {}
    wp = w.detach().double()
    for name in names:
        if name == "lq":
            out["lq_index"] = float(lq_index(wp, q=0.5))
        elif name == "pq":
            out["pq_index"] = float(pq_index(wp, p=1.0, q=2.0))
        elif name == "logit_change":
            D = w_dense.double() - wp
            out["logit_change"] = float(torch.einsum("cf,fg,cg->", D, S, D))
        elif name == "dof_change":
            out["dof_change"] = abs(float(dof_dense) - degrees_of_freedom(wp @ S @ wp.T, lam))
    return out


def _metrics_from_logits(logits: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-cell mean cross-entropy and accuracy (%) for logits ``(K, N, C)`` and labels ``(N,)``."""
    K = logits.shape[0]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(K), reduction="none").view(K, -1)
    acc = (logits.argmax(-1) == y).float().mean(1) * 100.0
    return loss.mean(1), acc


def _batched_eval(W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor, chunk: int
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Loss and accuracy of K linear heads ``(W (K, C, F), b (K, C))`` on features ``X (N, F)``."""
    K = W.shape[0]
    loss = torch.zeros(K, dtype=torch.float64, device=W.device)
    correct = torch.zeros(K, dtype=torch.float64, device=W.device)
    for i in range(0, X.shape[0], chunk):
        xb, yb = X[i:i + chunk], y[i:i + chunk]
        logits = torch.matmul(xb, W.transpose(1, 2)) + b[:, None, :]  # (K, B, C)
        l = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(K), reduction="none").view(K, -1)
        loss += l.double().sum(1)
        correct += (logits.argmax(-1) == yb).double().sum(1)
    n = X.shape[0]
    return loss / n, correct * (100.0 / n)


def finetune_cached(W0: torch.Tensor, b0: torch.Tensor, masks: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
                    epochs: int, lr: float, batch_size: int, momentum: float = 0.9, weight_decay: float = 0.0,
                    generator: Optional[torch.Generator] = None,
                    on_epoch: Optional[Any] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Fine-tune ``K`` masked linear softmax heads on fixed features, all at once.

    Minimises, for every cell ``k`` independently, the mean cross-entropy of
    ``softmax(X W_k^T + b_k)`` with SGD on the unmasked entries of ``W_k`` and on ``b_k``:

    .. math:: g_W = M_k \odot \big( (P_k - Y)^\top X / B + \lambda W_k \big), \quad
              v \leftarrow \mu v + g, \quad W_k \leftarrow W_k - \eta_e v

    (``torch.optim.SGD`` semantics: weight decay added to the gradient, momentum buffer
    initialised with the first gradient), with ``P_k`` the softmax probabilities of the batch,
    ``Y`` one-hot labels and :math:`\eta_e` = :func:`cosine_lr`. Masked entries stay exactly 0.

    Parameters
    ----------
    W0 : Tensor (K, C, F)   initial (pruned) weights
    b0 : Tensor (K, C)      initial biases
    masks : Tensor (K, C, F) of {0, 1}
    X : Tensor (N, F)       features (same device and dtype as ``W0``)
    y : Tensor (N,) int64
    epochs, lr, batch_size, momentum, weight_decay
    generator : torch.Generator (CPU), optional
        Source of the per-epoch permutation ``torch.randperm(N, generator=generator)``.
    on_epoch : callable(epoch, W, b), optional
        Called after every epoch (1-based) with the current weights.

    Returns
    -------
    (W, b) : Tensor (K, C, F), Tensor (K, C)
    """
    if W0.dim() != 3 or b0.dim() != 2 or masks.shape != W0.shape or b0.shape != W0.shape[:2]:
        raise ValueError(f"expected W0 (K, C, F), b0 (K, C), masks like W0; got {tuple(W0.shape)}, "
                         f"{tuple(b0.shape)}, {tuple(masks.shape)}")
    if X.dim() != 2 or X.shape[1] != W0.shape[2] or y.shape != (X.shape[0],):
        raise ValueError(f"expected X (N, {W0.shape[2]}) and y (N,); got {tuple(X.shape)} and {tuple(y.shape)}")
    M = masks.to(W0.dtype)
    W = (W0 * M).clone()
    b = b0.clone()
    vW = torch.zeros_like(W)
    vb = torch.zeros_like(b)
    C = W.shape[1]
    n = X.shape[0]
    first = True
    for epoch in range(epochs):
        eta = cosine_lr(lr, epoch, epochs)
        order = torch.randperm(n, generator=generator).to(X.device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb = X[idx], y[idx]
            logits = torch.matmul(xb, W.transpose(1, 2)) + b[:, None, :]  # (K, B, C)
            G = torch.softmax(logits, dim=-1)
            G[:, torch.arange(len(yb), device=X.device), yb] -= 1.0
            G /= len(yb)
            gW = torch.matmul(G.transpose(1, 2), xb)  # (K, C, F)
            gb = G.sum(1)
            if weight_decay:
                gW = gW + weight_decay * W
                gb = gb + weight_decay * b
            gW = gW * M
            if momentum:
                if first:
                    vW.copy_(gW)
                    vb.copy_(gb)
                else:
                    vW.mul_(momentum).add_(gW)
                    vb.mul_(momentum).add_(gb)
                gW, gb = vW, vb
            first = False
            W.sub_(eta * gW)
            b.sub_(eta * gb)
        if on_epoch is not None:
            on_epoch(epoch + 1, W, b)
    return W, b


def _group_rows(config: ExperimentConfig, store: CacheStore, network: str, dataset: str, trial: int,
                cells: List[Tuple[str, float]], device: torch.device, progress: bool = False
                ) -> Dict[Tuple[str, float], List[Dict[str, Any]]]:
    """Compute every cell of one (network, dataset, trial); return ``{(method, sparsity): rows}``."""
    views = _datasets(config, dataset)
    dense, _ = _dense_model(config, store, network, dataset, trial, views, device, progress)
    lname, layer = zoo.classifier_layer(dense)
    w_dense, b_dense = layer.weight.detach().float(), layer.bias.detach().float()
    X_tr = _features(dense, views["train_eval"], config, device)
    X_te = _features(dense, views["test_eval"], config, device)
    y_tr, y_te = _labels(views["train_eval"], device), _labels(views["test_eval"], device)
    logits_tr = F.linear(X_tr, w_dense, b_dense)
    measure = _APMeasure(config, w_dense, X_tr, logits_tr)
    chunk = config.eval_batch_size
    d_tr_loss, d_tr_acc = _batched_eval(w_dense[None], b_dense[None], X_tr, y_tr, chunk)
    d_te_loss, d_te_acc = _batched_eval(w_dense[None], b_dense[None], X_te, y_te, chunk)
    dense_info = {"dense_train_acc": float(d_tr_acc[0]), "dense_test_acc": float(d_te_acc[0]),
                  "dense_train_loss": float(d_tr_loss[0]), "dense_test_loss": float(d_te_loss[0])}

    def pruned_cells(whole: bool) -> Iterator[Tuple[str, float, nn.Module, Any]]:
        for method, sparsity in cells:
            seed = _cell_seed(config, network, dataset, method, sparsity, trial)
            model, _, result = _prune_copy(dense, method, sparsity, seed, whole, config.layers)
            yield method, sparsity, model, result

    epochs = config.finetune_epochs
    lr = float(config.per_network("finetune_lr", network, dataset))
    rows: Dict[Tuple[str, float], List[Dict[str, Any]]] = {(m, s): [] for m, s in cells}

    def record(method: str, sparsity: float, epoch: int, w: torch.Tensor, tr: Tuple[float, float],
               te: Tuple[float, float], wall: float, mask: torch.Tensor, k: int,
               ap2_all: Optional[float] = None) -> None:
        row = {"network": network, "dataset": dataset, "method": method, "sparsity": float(sparsity),
               "trial": trial, "epoch": epoch, "engine": config.engine, "scale": config.scale}
        row.update(measure(w))
        row.update({"train_loss": tr[0], "train_acc": tr[1], "test_loss": te[0], "test_acc": te[1]})
        row.update(dense_info)
        row["pd_train"] = abs(dense_info["dense_train_acc"] - tr[1])
        row["pd_test"] = abs(dense_info["dense_test_acc"] - te[1])
        row["sparsity_achieved"] = float((w == 0).sum()) / w.numel()
        row["mask_sparsity"] = 1.0 - float(mask.sum()) / mask.numel()
        row["cells_in_batch"] = k
        if ap2_all is not None:
            row["ap2_all"] = ap2_all
        row["wall_time_s"] = wall
        rows[(method, sparsity)].append(row)

    t0 = time.perf_counter()
    if config.engine == "cached":
        pruned = list(pruned_cells(whole=False))
        masks = torch.stack([r.masks[lname].to(torch.float32) for _, _, _, r in pruned])
        W0 = torch.stack([m.get_submodule(lname).weight.detach().float() for _, _, m, _ in pruned])
        b0 = torch.stack([m.get_submodule(lname).bias.detach().float() for _, _, m, _ in pruned])
        K = len(pruned)

        def on_epoch(epoch: int, W: torch.Tensor, b: torch.Tensor) -> None:
            wall = time.perf_counter() - t0
            tr_l, tr_a = _batched_eval(W, b, X_tr, y_tr, chunk)
            te_l, te_a = _batched_eval(W, b, X_te, y_te, chunk)
            for k, (method, sparsity, _, _) in enumerate(pruned):
                record(method, sparsity, epoch, W[k], (float(tr_l[k]), float(tr_a[k])),
                       (float(te_l[k]), float(te_a[k])), wall, masks[k], K)

        on_epoch(0, W0 * masks, b0)
        g = torch.Generator().manual_seed(_ft_seed(config, network, dataset, trial))
        finetune_cached(W0, b0, masks, X_tr, y_tr, epochs, lr, config.finetune_batch_size, config.momentum,
                        config.weight_decay, generator=g, on_epoch=on_epoch)
    else:
        from .pruning import MaskedOptimizer, effective_weight, freeze_all_but

        dense_w = ({n: m.weight.detach().double() for n, m in dense.named_modules()
                    if isinstance(m, (nn.Linear, nn.Conv2d))} if config.layers == "all" else {})
        for method, sparsity, model, result in pruned_cells(whole=True):  # one network copy at a time
            t_cell = time.perf_counter()
            layer_p = model.get_submodule(lname)
            mask = result.masks[lname]

            def evaluate_and_record(epoch: int) -> None:
                tr = _evaluate(model, views["train_eval"], config, device)
                te = _evaluate(model, views["test_eval"], config, device)
                total = None
                if config.layers == "all":  # sum over layers of ||w - w~||^2
                    total = float(sum(float(((dense_w[n] - effective_weight(model.get_submodule(n)).double()) ** 2)
                                            .sum()) for n in result.masks))
                record(method, sparsity, epoch, effective_weight(layer_p).detach().float(), tr, te,
                       time.perf_counter() - t_cell, mask, 1, total)

            evaluate_and_record(0)
            if config.layers == "all":  # every parameter trainable, pruned entries held at 0
                for p_ in model.parameters():
                    p_.requires_grad_(True)
                params = [p_ for p_ in model.parameters()]
            else:
                params = freeze_all_but(model, [f"{lname}.weight", f"{lname}.bias"])
            opt = MaskedOptimizer(torch.optim.SGD(params, lr=lr, momentum=config.momentum,
                                                  weight_decay=config.weight_decay), model=model)
            g = torch.Generator().manual_seed(_ft_seed(config, network, dataset, trial))
            aug_g = torch.Generator().manual_seed(_ft_seed(config, network, dataset, trial) + 1)
            ds = views["train_finetune"]
            quick_aug = config.finetune_augment and _is_tensor_ds(ds)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(_ft_seed(config, network, dataset, trial) % (2**31))
                for epoch in range(epochs):
                    model.train() if config.finetune_bn == "train" else model.eval()
                    _sgd_epoch(model, opt, ds, config.finetune_batch_size, cosine_lr(lr, epoch, epochs), g,
                               aug_g if quick_aug else None, config, device)
                    evaluate_and_record(epoch + 1)
            opt.remove()
    return rows


# ============================================================================================
# the grid
# ============================================================================================
def _cell_key(config: ExperimentConfig, network: str, dataset: str, method: str, sparsity: float,
              trial: int) -> Dict[str, Any]:
    key = _cell_key_base(config, network, dataset, method, sparsity, trial)
    # optional fields enter the key only when not at their default (older caches stay valid)
    if config.extra_measures:
        key["extra_measures"] = list(config.extra_measures)
    if config.random_mask_seed != "per_trial":
        key["random_mask_seed"] = config.random_mask_seed
    return key


def _cell_key_base(config: ExperimentConfig, network: str, dataset: str, method: str, sparsity: float,
                   trial: int) -> Dict[str, Any]:
    return {
        "code": CODE_VERSION, "kind": "cell", "dense": _dense_key(config, network, dataset, trial),
        "method": method, "sparsity": float(sparsity), "trial": trial, "layers": config.layers,
        "engine": config.engine, "finetune_bn": config.finetune_bn, "finetune_augment": config.finetune_augment,
        "finetune_epochs": config.finetune_epochs,
        "finetune_lr": config.per_network("finetune_lr", network, dataset),
        "finetune_batch_size": config.finetune_batch_size, "momentum": config.momentum,
        "weight_decay": config.weight_decay, "ap3": config.ap3,
        # the cells computed together (the batch composition can change float rounding)
        "group": [[m, float(s)] for m in config.methods for s in config.sparsities],
    }


def _default_out(config: ExperimentConfig) -> Path:
    return Path("results") / config.name


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_grid(config: Union[ExperimentConfig, Mapping[str, Any], str, os.PathLike],
             out_dir: Union[str, os.PathLike, None] = None, *, progress: bool = False,
             verbose: bool = False, dense_dir: Union[str, os.PathLike, None] = None) -> pd.DataFrame:
    """Run (or resume) the grid of ``config``; return the tidy results table.

    Parameters
    ----------
    config : ExperimentConfig, mapping or path to a YAML/JSON file
    out_dir : path, optional
        Folder of the cache (``cache/``), ``results.csv``, ``dense.csv`` and ``config.yaml``
        (default ``results/<config.name>``).
    progress : bool
        tqdm progress bar over (network, dataset, trial) groups.
    verbose : bool
        Print dense-training progress.
    dense_dir : path, optional
        Another grid's output folder to take already trained dense networks from (read only; a
        dense network with the same key found there is copied, checksum-verified, into this grid's
        cache instead of being retrained). Lets a variant grid (other methods, measures, engine)
        share the dense networks of the main grid.

    Returns
    -------
    pandas.DataFrame
        One row per (network, dataset, method, sparsity, trial, epoch), ``epoch`` 0 = right after
        pruning. Columns: the identifiers, ``engine``, ``scale``, ``ap2``, ``ap3_<name>`` for each
        latent, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` (pruned network, accuracy
        in %), ``dense_*`` (the dense network), ``pd_train``, ``pd_test`` (percentage points),
        ``sparsity_achieved`` (zeros of the last layer's effective weight), ``mask_sparsity``,
        ``cells_in_batch``, ``wall_time_s`` (seconds from the start of the group's fine-tuning to the
        end of that epoch; the cached engine shares it across the batched cells). Rows are in the
        order of the config's lists.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        From :meth:`ExperimentConfig.validate`, before any training.
    """
    config = load_config(config)
    config.validate(check_data=True)
    device = resolve_device(config.device)
    out = _default_out(config) if out_dir is None else Path(out_dir)
    store = CacheStore(out / "cache")
    out.mkdir(parents=True, exist_ok=True)
    _write_config(config, out / "config.yaml")

    groups = [(n, d, t) for n in config.networks for d in config.datasets for t in range(config.trials)]
    cells = [(m, float(s)) for m in config.methods for s in config.sparsities]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(groups) * len(cells), desc=f"grid {config.name}", unit="cell")
    all_rows: List[Dict[str, Any]] = []
    donor = None if dense_dir is None else CacheStore(Path(dense_dir) / "cache")
    for network, dataset, trial in groups:
        if donor is not None:
            dkey = config_hash(_dense_key(config, network, dataset, trial))
            if store.get("dense", dkey, ".pt") is None:
                payload = donor.get("dense", dkey, ".pt")
                if payload is not None:
                    store.put("dense", dkey, ".pt", payload)
        keys = {c: config_hash(_cell_key(config, network, dataset, c[0], c[1], trial)) for c in cells}
        found = {c: store.get_json("cells", keys[c]) for c in cells}
        missing = [c for c in cells if found[c] is None]
        if missing:
            if bar is not None:
                bar.set_postfix_str(f"{network}/{dataset}/trial {trial}")
            computed = _group_rows(config, store, network, dataset, trial, cells, device, progress=verbose)
            for c in missing:
                store.put_json("cells", keys[c], {"key": _cell_key(config, network, dataset, c[0], c[1], trial),
                                                  "rows": computed[c]})
                found[c] = {"rows": computed[c]}
        for c in cells:
            all_rows.extend(found[c]["rows"])
        if bar is not None:
            bar.update(len(cells))
    if bar is not None:
        bar.close()
    df = pd.DataFrame(all_rows)
    _atomic_write_text(out / "results.csv", df.to_csv(index=False))
    dense = dense_table(config, out)
    _atomic_write_text(out / "dense.csv", dense.to_csv(index=False))
    return df


def _write_config(config: ExperimentConfig, path: Path) -> None:
    import yaml

    _atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def dense_table(config: Union[ExperimentConfig, Mapping[str, Any], str, os.PathLike],
                out_dir: Union[str, os.PathLike, None] = None) -> pd.DataFrame:
    """Dense training curves of the grid's networks (trained through the cache if missing).

    One row per (network, dataset, trial, epoch) with ``lr``, ``train_loss`` / ``train_acc`` /
    ``test_loss`` / ``test_acc`` (eval mode after the epoch; accuracy in %),
    ``train_loss_running`` (mean batch loss during the epoch) and ``time_s``.
    """
    config = load_config(config)
    device = resolve_device(config.device)
    out = _default_out(config) if out_dir is None else Path(out_dir)
    store = CacheStore(out / "cache")
    rows = []
    for network in config.networks:
        for dataset in config.datasets:
            for trial in range(config.trials):
                key = config_hash(_dense_key(config, network, dataset, trial))
                entry = store.get_torch("dense", key)
                if entry is None:
                    views = _datasets(config, dataset)
                    _, history = _dense_model(config, store, network, dataset, trial, views, device)
                else:
                    history = entry["history"]
                for h in history:
                    rows.append({"network": network, "dataset": dataset, "trial": trial, **h})
    return pd.DataFrame(rows)


# ============================================================================================
# statistics
# ============================================================================================
def _rank_rows(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=1)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``x, y`` (R, n): Pearson correlation of mid-ranks (NaN if constant)."""
    return _pearson_rows(_rank_rows(x), _rank_rows(y))


def kendall_rows(x: np.ndarray, y: np.ndarray, chunk: int = 64) -> np.ndarray:
    r"""Kendall's tau-b of each row pair of ``x, y`` (R, n), vectorised.

    :math:`\tau_b = \sum_{i<j} s^x_{ij} s^y_{ij} / \sqrt{\sum_{i<j} (s^x_{ij})^2 \sum_{i<j} (s^y_{ij})^2}`
    with :math:`s_{ij} = \operatorname{sign}(v_i - v_j)` (ties count 0), as ``scipy.stats.kendalltau``.
    """
    out = np.empty(x.shape[0])
    if x.shape[1] > 256:  # long rows: scipy's O(n log n) tau-b per row beats the O(n^2) sign matrices
        import warnings as _w

        from scipy.stats import kendalltau

        with _w.catch_warnings():
            _w.simplefilter("ignore")
            for i in range(x.shape[0]):
                out[i] = kendalltau(x[i], y[i]).statistic
        return out
    # at most ~2**24 pair signs per array at once (memory stays ~128 MB for long rows; same result)
    chunk = max(1, min(int(chunk), (1 << 24) // max(1, x.shape[1] ** 2)))
    for i in range(0, x.shape[0], chunk):
        sx = np.sign(x[i:i + chunk, :, None] - x[i:i + chunk, None, :])
        sy = np.sign(y[i:i + chunk, :, None] - y[i:i + chunk, None, :])
        num = (sx * sy).sum((1, 2))
        den = np.sqrt((sx * sx).sum((1, 2)) * (sy * sy).sum((1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i:i + chunk] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def _corr_with_ci(x: np.ndarray, y: np.ndarray, n_boot: int, ci: float, rng: np.random.Generator
                  ) -> Dict[str, Any]:
    from scipy import stats

    n = len(x)
    res: Dict[str, Any] = {"n": n}
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    if n < 3 or constant:
        note = "fewer than 3 points" if n < 3 else "constant input: correlation undefined"
        for k in ("spearman", "spearman_p", "spearman_low", "spearman_high",
                  "kendall", "kendall_p", "kendall_low", "kendall_high"):
            res[k] = float("nan")
        res["note"] = note
        return res
    sr = stats.spearmanr(x, y)
    kt = stats.kendalltau(x, y)
    res.update({"spearman": float(sr.statistic), "spearman_p": float(sr.pvalue),
                "kendall": float(kt.statistic), "kendall_p": float(kt.pvalue)})
    idx = rng.integers(0, n, size=(n_boot, n))
    bx, by = x[idx], y[idx]
    alpha = (1.0 - ci) / 2
    notes = []
    for name, fn in (("spearman", spearman_rows), ("kendall", kendall_rows)):
        vals = fn(bx, by)
        ok = vals[np.isfinite(vals)]
        if len(ok) < n_boot:
            notes.append(f"{n_boot - len(ok)} constant {name} resamples dropped")
        res[f"{name}_low"] = float(np.quantile(ok, alpha)) if len(ok) else float("nan")
        res[f"{name}_high"] = float(np.quantile(ok, 1 - alpha)) if len(ok) else float("nan")
    res["note"] = "; ".join(notes)
    return res


def correlations(df: pd.DataFrame, measures: Optional[Sequence[str]] = None,
                 targets: Sequence[str] = ("pd_test",), level: str = "cells",
                 by: Sequence[str] = ("network", "dataset"), epoch: Optional[int] = None,
                 n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Spearman and Kendall correlations between AP measures and PD, with bootstrap CIs.

    Parameters
    ----------
    df : DataFrame from :func:`run_grid`
    measures : column names (default ``ap2`` and every ``ap3_*`` column)
    targets : PD columns (default ``("pd_test",)``; ``pd_train`` too if wanted)
    level : {"cells", "epochs", "within"}
        ``"cells"``: one point per (method, sparsity) at ``epoch`` (default: the last), averaged
        over trials -- "across the grid"; ``"epochs"``: one point per (method, sparsity, epoch),
        trial-averaged -- "across cells and epochs"; ``"within"``: for each (method, sparsity)
        separately, across its epochs (trial-averaged) -- does AP settle with PD?
    by : grouping columns (one correlation per group)
    epoch : the epoch for ``level="cells"`` (default the largest in the table)
    n_boot, ci, seed : percentile bootstrap over points (resampling points with replacement)

    Returns
    -------
    DataFrame with ``by`` (+ ``method``, ``sparsity`` for ``within``), ``level``, ``measure``,
    ``target``, ``n``, ``spearman``, ``spearman_p``, ``spearman_low``, ``spearman_high``,
    ``kendall``, ``kendall_p``, ``kendall_low``, ``kendall_high``, ``note``. Undefined
    correlations (constant input, fewer than 3 points) are NaN with the reason in ``note``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    check_choice(level, "level", ("cells", "epochs", "within"))
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    ci = check_fraction(ci, "ci", low_open=True, high_open=True)
    if measures is None:
        measures = ["ap2"] + [c for c in df.columns if c.startswith("ap3_")]
    by = list(by)
    for col in list(measures) + list(targets) + by + ["method", "sparsity", "epoch"]:
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table; columns: {list(df.columns)}")
    rng = np.random.default_rng(seed)
    data = df
    if level == "cells":
        e = int(df["epoch"].max()) if epoch is None else check_int(epoch, "epoch", minimum=0)
        data = df[df["epoch"] == e]
        if data.empty:
            raise ValueError(f"no rows at epoch {e}")
        point_keys = ["method", "sparsity"]
    else:
        point_keys = ["method", "sparsity", "epoch"]
    cols = list(measures) + list(targets)
    avg = data.groupby(by + point_keys, sort=False)[cols].mean().reset_index()
    group_keys = by + (["method", "sparsity"] if level == "within" else [])
    rows = []
    for gval, g in avg.groupby(group_keys, sort=False) if group_keys else [((), avg)]:
        gval = gval if isinstance(gval, tuple) else (gval,)
        for m in measures:
            for t in targets:
                r = dict(zip(group_keys, gval))
                r.update({"level": level, "measure": m, "target": t})
                r.update(_corr_with_ci(g[m].to_numpy(float), g[t].to_numpy(float), n_boot, ci, rng))
                rows.append(r)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, epoch: Optional[int] = None) -> pd.DataFrame:
    """Trial means at one epoch (default: the last) per (network, dataset, method, sparsity):
    AP2, each AP3, test accuracy and PD (pp)."""
    e = int(df["epoch"].max()) if epoch is None else epoch
    cols = ["ap2"] + [c for c in df.columns if c.startswith("ap3_")] + ["test_acc", "pd_train", "pd_test"]
    sub = df[df["epoch"] == e]
    return sub.groupby(["network", "dataset", "method", "sparsity"], sort=False)[cols].mean().reset_index()


def reference_rescale(df: pd.DataFrame, column: str = "ap2", target: float = 3.8,
                      by: Sequence[str] = ("network", "dataset", "method", "trial")) -> pd.DataFrame:
    r"""The reference code's per-trial rescaling of AP2 (departure 5): ``x * target / max(x)`` per group.

    The reference divides AP2 by its maximum over each run it plots and multiplies by 3.8, so
    every run's curve peaks at 3.8 whatever its absolute size. Reconstructed here to *measure*
    what it does: within a group (default one method's sparsities and epochs of one trial of one
    network/dataset, as the reference's per-method figures) the order is kept, but values of
    different groups (methods, trials) are no longer comparable.

    Parameters
    ----------
    df : DataFrame from :func:`run_grid` (needs ``column`` and the ``by`` columns)
    column : str
        Column to rescale (default ``"ap2"``).
    target : float > 0
        The maximum of every group after rescaling (reference: 3.8).
    by : sequence of str
        Grouping columns.

    Returns
    -------
    DataFrame
        A copy with the new column ``<column>_ref`` = :math:`x \cdot \text{target} / \max_{group} x`.

    Raises
    ------
    ValueError
        Missing columns, NaN values, or a group whose maximum is not > 0 (nothing to rescale).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    target = check_positive(target, "target")
    by = list(by)
    for col in [column] + by:
        if col not in df.columns:
            raise ValueError(f"column {col!r} not in the table; columns: {list(df.columns)}")
    if df[column].isna().any():
        raise ValueError(f"column {column!r} has NaN values")
    mx = df.groupby(by, sort=False)[column].transform("max") if by else pd.Series(df[column].max(), index=df.index)
    if not (mx > 0).all():
        raise ValueError(f"a group of {by} has max({column}) <= 0: the rescaling is undefined")
    out = df.copy()
    out[f"{column}_ref"] = df[column] * (float(target) / mx)
    return out
