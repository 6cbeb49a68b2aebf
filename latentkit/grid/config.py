"""The grid's configuration: :class:`ExperimentConfig`, :func:`load_config` and the shipped presets.

A config is a plain dataclass (loadable from YAML/JSON, by file path or by the name of a config
shipped with the package: ``load_config("quick")``, ``load_config("paper")``). Its checks live in
:mod:`latentkit.grid.validation` (a declarative table of constraints plus a few cross-field rules);
:meth:`ExperimentConfig.validate` runs them.

Examples
--------
>>> from latentkit.grid.config import load_config, shipped_configs
>>> shipped_configs()
('paper', 'paper_small', 'quick', 'reference', 'sweep')
>>> load_config('quick').name
'quick'
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import validation

__all__ = [
    "DEFAULT_AP3",
    "ExperimentConfig",
    "PerNet",
    "config_path",
    "default_out",
    "load_config",
    "shipped_configs",
]

#: The latent families of AP3 computed by default (see :func:`latentkit.patterns.ap3`).
DEFAULT_AP3: tuple[dict[str, Any], ...] = (
    {"name": "gauss_iso", "family": "gaussian", "covariance": "isotropic", "scale": 1.0},
    {
        "name": "t_chunks",
        "family": "student_t",
        "covariance": "isotropic",
        "projection": "chunk_means",
        "num_chunks": 100,
        "df": 4.0,
        "scale": 1.0,
    },
    {
        "name": "laplace_kron",
        "family": "gaussian",
        "covariance": "kronecker",
        "fit": "laplace",
        "damping": 1e-3,
    },
)

PerNet = int | float | dict[str, int | float]

#: Top-level keys that were renamed: old -> new (an old key is an error that names the new one).
RENAMED_KEYS = {"scale": "preset"}

#: Fields added after the cache keys were pinned: left out of :meth:`ExperimentConfig.to_dict` while
#: at their default, so the config hash (``tests/test_cache_keys.py``) and the dict of every older
#: config stay as they were. A new optional field registers its default here.
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "threads_per_group": None,
    "normalization": "imagenet",
    "finetune_protocol": "latentkit",
    "reference_mc_samples": 600_000,
    "reference_mc_repeats": 100,
    "dense_warmup_epochs": 0,
    "dense_history": "full",
    "function_measures": True,
}


@dataclass
class ExperimentConfig:
    """Everything that defines a grid (loadable from YAML/JSON with :func:`load_config`).

    Values that may differ per network (``dense_epochs``, ``dense_lr``, ``finetune_lr``) take a
    number or a mapping ``{network: number}``; a key ``"network/dataset"`` overrides ``"network"``
    for that dataset.

    Attributes
    ----------
    name : str
        Label of the grid (default output folder ``<working directory>/results/<name>``).
    preset : {"quick", "paper"}
        Size preset of networks and data (:mod:`latentkit.zoo`; YAML key ``preset``, formerly ``scale``).
    networks, datasets, methods : list of str
        Grid axes. Methods: any of :data:`latentkit.options.GRID_METHODS`
        (:func:`latentkit.pruning.prune`; the paper runs lowest/highest/random).
    sparsities : list of float in [0, 1)
        Fraction of the last layer's weights pruned.
    trials : int
        Independent repetitions; trial ``i`` uses seed ``seed + i`` for the dense training, the
        random masks and the batch order.
    dense_epochs, dense_lr, dense_batch_size, dense_augment
        Dense training: SGD (momentum, weight decay below), cosine schedule per epoch.
        ``dense_augment``: the dataset's training augmentation (paper preset: the reference's
        RandomResizedCrop + flip).
    finetune_epochs, finetune_lr, finetune_batch_size, finetune_augment
        Fine-tuning after pruning (new SGD, cosine schedule).
    momentum, weight_decay : float
        Of both SGD optimisers (reference: 0.9 and 0).
    engine : {"cached", "exact"}
        Fine-tuning engine (:mod:`latentkit.grid.engines`).
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
        :data:`latentkit.grid.measures.EXTRA_MEASURES`). Default ``[]``; a non-empty list is part of
        the cells' cache key (an empty one is not, so older caches stay valid).
    random_mask_seed : "per_trial" or int
        ``"per_trial"`` (default): the random mask differs across trials. An int: the same random
        mask (per method and sparsity) in every trial and network, as the reference code's fixed seed
        (departure 4). Part of the cache key only when not the default.
    ap3 : list of dict
        Latent families for AP3: ``name`` plus keyword arguments of
        :func:`latentkit.patterns.ap3`; ``fit: "laplace"`` (with optional ``damping``) builds the
        Kronecker factors from the dense network's training features (bias not folded).
    width : dict or None
        Quick-preset width factor per network (default :data:`latentkit.zoo.QUICK_WIDTH`).
    weights : None or "imagenet"
        Initialisation of the paper-preset networks before dense training.
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
        Evaluation batch size; DataLoader workers for the paper-preset (PIL) datasets.
    threads_per_group : int or None
        ``torch.set_num_threads`` while a (network, dataset, trial) group runs (restored after it).
        ``None`` (default): the process's setting, as before. Results can depend on the thread count
        (float reductions split differently), so a set value is part of the dense and cell cache
        keys (``None`` is not: older caches stay valid). With a local parallel executor, one group
        per core: ``threads_per_group: 1``.
    normalization : {"imagenet", "reference"}
        Input statistics of CIFAR at 224 px (:func:`latentkit.zoo.cifar.paper_normalization`):
        ``"imagenet"`` (default) for both data sets; ``"reference"``: the reference code's CIFAR10
        statistics for CIFAR100. Part of the dense key only when not the default.
    finetune_protocol : {"latentkit", "reference"}
        Exact engine only. ``"latentkit"`` (default): only the last layer's unpruned weights and its
        bias train. ``"reference"``: the reference's loop (a new SGD, train mode, only the ``.weight``
        gradients of the other modules zeroed, so every bias and BatchNorm shift keeps training;
        ``pd_train`` from the running, augmented train accuracy). In the cell key only when set.
    reference_mc_samples, reference_mc_repeats : int
        Monte Carlo size of the extra measure ``ap3_reference_t`` (default the reference's
        600,000 x 100); in the cell key only when that measure is asked for and not at the default.
    dense_warmup_epochs : int or mapping {network: int}
        Epochs of linear learning-rate warm-up before the dense cosine schedule
        (:func:`latentkit.grid.training.warmup_cosine_lr`): :math:`\\eta_e = \\eta (e + 1) / (W + 1)`
        for :math:`e < W`, then the cosine over the remaining :math:`E - W` epochs. ``0`` (default):
        the plain cosine, as before (absent from the dense key at 0, so older caches stay valid).
    dense_history : {"full", "test"}
        What the dense training evaluates after each epoch (its ``dense.csv`` curves): ``"full"``
        (default) the training and the test set; ``"test"`` the test set only, the training set
        after the last epoch (earlier ``train_*`` are NaN): about a third less dense-training
        time for the quick networks. In the dense key only when not the default.
    function_measures : bool
        Whether every row gets the function-space columns ``ap3_fn``, ``ap3_fn_quadratic`` and
        ``obd`` (:class:`latentkit.grid.measures.FunctionMeasure`; default ``True``). ``False``
        skips them (a side grid that takes them from another grid, as ``ap3: []`` skips the AP3
        latents; for a 100-class group a quarter of the fine-tuning time); in the cells' key only
        when ``False``.
    """

    name: str = "quick"
    preset: str = "quick"
    networks: list[str] = field(default_factory=lambda: ["alexnet", "vgg16", "resnet50"])
    datasets: list[str] = field(default_factory=lambda: ["standin10", "standin100"])
    methods: list[str] = field(default_factory=lambda: ["lowest", "highest", "random"])
    sparsities: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.8])
    trials: int = 1
    dense_epochs: PerNet = field(
        default_factory=lambda: {
            "alexnet": 8,
            "alexnet/standin100": 10,
            "vgg16": 6,
            "vgg16/standin100": 10,
            "resnet50": 5,
            "resnet50/standin100": 4,
        }
    )
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
    extra_measures: list[str] = field(default_factory=list)
    random_mask_seed: str | int = "per_trial"
    ap3: list[dict[str, Any]] = field(default_factory=lambda: [dict(d) for d in DEFAULT_AP3])
    width: dict[str, float] | None = None
    weights: str | None = None
    allow_download: bool = False
    data_root: str | None = None
    download: bool = False
    max_train_samples: int | None = None
    max_test_samples: int | None = None
    data_seed: int = 0
    device: str = "auto"
    seed: int = 0
    channels_last: bool = True
    eval_batch_size: int = 1024
    num_workers: int = 0
    threads_per_group: int | None = None
    normalization: str = "imagenet"
    finetune_protocol: str = "latentkit"
    reference_mc_samples: int = 600_000
    reference_mc_repeats: int = 100
    dense_warmup_epochs: PerNet = 0
    dense_history: str = "full"
    function_measures: bool = True

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExperimentConfig:
        """Build from a mapping; unknown (or renamed) keys raise ``ValueError`` naming them."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a config must be a mapping; got {type(d).__name__}")
        for old, new in RENAMED_KEYS.items():
            if old in d:
                raise ValueError(f"config key {old!r} was renamed to {new!r}: write '{new}: {d[old]}'")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known, key=str)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**copy.deepcopy(dict(d)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON/YAML serialisable), in field order.

        Fields of :data:`OPTIONAL_DEFAULTS` are left out while at their default.
        """
        d = copy.deepcopy(dataclasses.asdict(self))
        for key, default in OPTIONAL_DEFAULTS.items():
            if key in d and d[key] == default:
                del d[key]
        return d

    def replace(self, **changes: Any) -> ExperimentConfig:
        """A copy with some fields changed.

        Parameters
        ----------
        **changes
            Fields to change, by name; the copy is rebuilt with :meth:`from_dict`.
        """
        d = self.to_dict()
        d.update(changes)
        return ExperimentConfig.from_dict(d)

    def per_network(self, key: str, network: str, dataset: str | None = None) -> int | float:
        """Value of a per-network field (``dense_epochs``, ``dense_lr``, ``finetune_lr``).

        A mapping may hold ``"<network>/<dataset>"`` keys, which win over ``"<network>"`` keys.
        """
        return validation.per_network_value(getattr(self, key), key, network, dataset)

    # ------------------------------------------------------------------ validation
    def validate(self, check_data: bool = True) -> ExperimentConfig:
        """Check every field (:func:`latentkit.grid.validation.validate_config`); return ``self``.

        With ``check_data`` also that the data and weights are present. Raises ``ValueError`` /
        ``TypeError`` (bad values) or ``FileNotFoundError`` (missing CIFAR archive without
        ``download``, missing ImageNet weights without ``allow_download``) before anything is trained.
        """
        validation.validate_config(self)
        if check_data:
            validation.check_data_present(self)
        return self


# ============================================================================================ loading
def shipped_configs() -> tuple[str, ...]:
    """Names of the configs shipped with the package (``latentkit/configs/<name>.yaml``)."""
    folder = resources.files("latentkit") / "configs"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def config_path(name: str) -> Path:
    """Path of a shipped config by name (``"quick"``, ``"paper"``); ``ValueError`` for another name."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string; got {type(name).__name__}")
    names = shipped_configs()
    if name not in names:
        raise ValueError(f"unknown shipped config {name!r}; expected one of {list(names)} or a file path")
    return Path(str(resources.files("latentkit") / "configs" / f"{name}.yaml"))


def default_out(config: ExperimentConfig) -> Path:
    """Default output folder of a grid: ``<current working directory>/results/<config.name>``."""
    return Path.cwd() / "results" / config.name


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping held by a YAML or JSON file; a syntax error raises ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        d = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(
            f"config file {path} is not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {detail}"
        ) from exc
    if not isinstance(d, Mapping):
        raise ValueError(f"config file {path} must hold a mapping at top level")
    return dict(d)


def as_config(
    source: str | os.PathLike | Mapping[str, Any] | ExperimentConfig, **overrides: Any
) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from any accepted source, *not* validated (see :func:`load_config`)."""
    if isinstance(source, ExperimentConfig):
        d = source.to_dict()
    elif isinstance(source, Mapping):
        d = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        is_name = isinstance(source, str) and source in shipped_configs() and not Path(source).is_file()
        d = read_config_file(config_path(source) if is_name else source)
    else:
        raise TypeError(
            f"config must be a path, a name, a mapping or an ExperimentConfig; got {type(source).__name__}"
        )
    d.update(overrides)
    return ExperimentConfig.from_dict(d)


def load_config(
    source: str | os.PathLike | Mapping[str, Any] | ExperimentConfig, **overrides: Any
) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a shipped name, a YAML/JSON file, a mapping, or a config (copied).

    ``source`` may be the name of a shipped config (``"quick"``, ``"paper"``: see
    :func:`config_path`) or a path. ``overrides`` replace fields (e.g.
    ``load_config("quick", networks=["vgg16"])``). The result is validated without checking data
    presence (``run_grid`` does that).

    Parameters
    ----------
    source : str, os.PathLike, mapping or ExperimentConfig
        A shipped config name, a YAML/JSON path, a mapping of fields or a config.
    **overrides
        Fields to replace, by name (e.g. ``networks=["vgg16"]``).
    """
    return as_config(source, **overrides).validate(check_data=False)
