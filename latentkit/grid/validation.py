"""Declarative validation of an :class:`~latentkit.grid.config.ExperimentConfig`.

In the spirit of scikit-learn's ``_parameter_constraints``: :data:`CONSTRAINTS` maps every field of
the config to one constraint (a type, an interval, a choice from a :mod:`latentkit.options`
vocabulary, a list of those, a per-network value), checked in field order; then the few rules that
involve several fields (:data:`CROSS_FIELD_RULES`); then the AP3 entries (parsed by
:func:`latentkit.grid.measures.parse_ap3`, evaluated once on a random layer) and the device. Every
error names the key. :func:`check_data_present` checks the data and weights on disk.

Examples
--------
>>> from latentkit.grid import load_config
>>> from latentkit.grid.validation import validate_config
>>> validate_config(load_config('quick')) is None
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import zoo
from .._validation import (
    check_choice,
    check_fraction,
    check_int,
    check_nonnegative,
    check_positive,
    resolve_device,
)
from ..options import (
    DATASETS,
    ENGINES,
    FINETUNE_BN_MODES,
    FINETUNE_PROTOCOLS,
    GRID_METHODS,
    LAYER_SELECTIONS,
    NETWORKS,
    NORMALIZATIONS,
    PRESETS,
)
from .measures import EXTRA_MEASURES, dry_run_ap3, parse_ap3

__all__ = ["CONSTRAINTS", "CROSS_FIELD_RULES", "check_data_present", "per_network_value", "validate_config"]


# ============================================================================================ constraints
class Constraint:
    """A rule for one config value: :meth:`check` raises ``ValueError``/``TypeError`` naming ``key``."""

    def check(self, value: Any, key: str, config: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Constraint):
    """An ``int`` (not a bool) >= ``minimum``."""

    minimum: int

    def check(self, value: Any, key: str, config: Any) -> None:
        check_int(value, key, minimum=self.minimum)


@dataclass(frozen=True)
class Real(Constraint):
    """A real number: ``"positive"`` (> 0), ``"nonnegative"`` (>= 0), ``"unit_open"`` ([0, 1))."""

    interval: str

    def check(self, value: Any, key: str, config: Any) -> None:
        if self.interval == "positive":
            check_positive(value, key)
        elif self.interval == "nonnegative":
            check_nonnegative(value, key)
        elif not check_nonnegative(value, key) < 1:
            raise ValueError(f"{key} must lie in [0, 1); got {value}")


@dataclass(frozen=True)
class Fraction(Constraint):
    """A real number in [0, 1) (a sparsity)."""

    label: str

    def check(self, value: Any, key: str, config: Any) -> None:
        check_fraction(value, self.label, high_open=True)


@dataclass(frozen=True)
class Boolean(Constraint):
    """``true`` or ``false`` (nothing else, not 0/1)."""

    def check(self, value: Any, key: str, config: Any) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"{key} must be true or false; got {value!r}")


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a vocabulary (``label`` names it in the message; ``message`` replaces the message)."""

    vocabulary: tuple[str, ...]
    label: str
    message: str | None = None

    def check(self, value: Any, key: str, config: Any) -> None:
        if self.message is not None and value not in self.vocabulary:
            raise ValueError(self.message.format(key=key, value=value))
        check_choice(value, self.label, self.vocabulary)


@dataclass(frozen=True)
class Name(Constraint):
    """A non-empty string."""

    def check(self, value: Any, key: str, config: Any) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key} must be a non-empty string")


@dataclass(frozen=True)
class NoneOr(Constraint):
    """``null`` or a value satisfying ``inner``."""

    inner: Constraint

    def check(self, value: Any, key: str, config: Any) -> None:
        if value is not None:
            self.inner.check(value, key, config)


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list (not a string) of items satisfying ``item``, without duplicates (non-empty if asked)."""

    item: Constraint
    nonempty: bool = True
    message: str = "{key} must be a non-empty list; got {value!r}"

    def check(self, value: Any, key: str, config: Any) -> None:
        if (
            isinstance(value, (str, bytes, Mapping))
            or not isinstance(value, Sequence)
            or (self.nonempty and len(value) == 0)
        ):
            raise ValueError(self.message.format(key=key, value=value))
        for v in value:
            self.item.check(v, key, config)
        if len(set(value)) != len(value):
            raise ValueError(f"{key} has duplicates: {value}")


@dataclass(frozen=True)
class GridMethod(Constraint):
    """A method of :data:`latentkit.options.GRID_METHODS` (``spectral`` explained)."""

    def check(self, value: Any, key: str, config: Any) -> None:
        if value == "spectral":
            raise ValueError(
                "method 'spectral' needs calibration inputs and rewires the layer before "
                "the last one; it is not supported by the grid (use latentkit.pruning.prune)"
            )
        check_choice(value, "method", GRID_METHODS)


@dataclass(frozen=True)
class PerNetwork(Constraint):
    """A number or ``{network[/dataset]: number}``, checked for every (network, dataset) of the grid."""

    inner: Constraint

    def check(self, value: Any, key: str, config: Any) -> None:
        for net in config.networks:
            for ds in config.datasets:
                self.inner.check(per_network_value(value, key, net, ds), f"{key}[{net}/{ds}]", config)


@dataclass(frozen=True)
class MaskSeed(Constraint):
    """``"per_trial"`` or an int >= 0."""

    def check(self, value: Any, key: str, config: Any) -> None:
        if isinstance(value, bool) or not (value == "per_trial" or isinstance(value, int)):
            raise ValueError(f"{key} must be 'per_trial' or a non-negative int; got {value!r}")
        if isinstance(value, int):
            check_int(value, key, minimum=0)


@dataclass(frozen=True)
class Widths(Constraint):
    """``{network: factor > 0}``."""

    def check(self, value: Any, key: str, config: Any) -> None:
        if not isinstance(value, Mapping):
            raise TypeError(f"{key} must be a mapping {{network: factor}} or null")
        for net, w in value.items():
            check_choice(net, "network", NETWORKS)
            check_positive(w, f"{key}[{net}]")


@dataclass(frozen=True)
class Anything(Constraint):
    """Checked elsewhere (the AP3 entries: :func:`latentkit.grid.measures.parse_ap3`)."""

    def check(self, value: Any, key: str, config: Any) -> None:
        return None


_POSITIVE_INT, _NONNEG_INT = Integer(1), Integer(0)
_LAYERS_MESSAGE = "layers={value!r}: must be 'last' (the paper's protocol) or 'all'"
_EXTRA_MESSAGE = "{key} must be a list of names from " + str(sorted(EXTRA_MEASURES)) + "; got {value!r}"

#: One constraint per field of the config, checked in this order.
CONSTRAINTS: dict[str, Constraint] = {
    "name": Name(),
    "preset": Choice(PRESETS, "preset"),
    "networks": ListOf(Choice(NETWORKS, "network")),
    "datasets": ListOf(Choice(DATASETS, "dataset")),
    "methods": ListOf(GridMethod()),
    "sparsities": ListOf(Fraction("sparsity")),
    "trials": _POSITIVE_INT,
    "dense_epochs": PerNetwork(_POSITIVE_INT),
    "dense_lr": PerNetwork(Real("positive")),
    "finetune_lr": PerNetwork(Real("positive")),
    "finetune_epochs": _POSITIVE_INT,
    "dense_batch_size": _POSITIVE_INT,
    "finetune_batch_size": _POSITIVE_INT,
    "eval_batch_size": _POSITIVE_INT,
    "num_workers": _NONNEG_INT,
    "momentum": Real("unit_open"),
    "weight_decay": Real("nonnegative"),
    "engine": Choice(ENGINES, "engine"),
    "finetune_bn": Choice(FINETUNE_BN_MODES, "finetune_bn"),
    "layers": Choice(LAYER_SELECTIONS, "layers", message=_LAYERS_MESSAGE),
    "extra_measures": ListOf(
        Choice(tuple(EXTRA_MEASURES), "extra measure"), nonempty=False, message=_EXTRA_MESSAGE
    ),
    "random_mask_seed": MaskSeed(),
    "dense_augment": Boolean(),
    "finetune_augment": Boolean(),
    "download": Boolean(),
    "allow_download": Boolean(),
    "channels_last": Boolean(),
    "seed": _NONNEG_INT,
    "data_seed": _NONNEG_INT,
    "max_train_samples": NoneOr(_POSITIVE_INT),
    "max_test_samples": NoneOr(_POSITIVE_INT),
    "width": NoneOr(Widths()),
    "weights": NoneOr(Choice(("imagenet",), "weights")),
    "data_root": NoneOr(Name()),
    "ap3": Anything(),
    "device": Anything(),
    "threads_per_group": NoneOr(_POSITIVE_INT),
    "normalization": Choice(NORMALIZATIONS, "normalization"),
    "finetune_protocol": Choice(FINETUNE_PROTOCOLS, "finetune_protocol"),
    "reference_mc_samples": Integer(2),
    "reference_mc_repeats": _POSITIVE_INT,
    "dense_warmup_epochs": PerNetwork(_NONNEG_INT),
    "dense_history": Choice(("full", "test"), "dense_history"),
    "function_measures": Boolean(),
}


# ==================================================================================== cross-field rules
def _layers_all_needs_exact(c: Any) -> str | None:
    if c.layers == "all" and c.engine != "exact":
        return (
            "layers='all' needs engine='exact': the cached engine fine-tunes the last layer only, "
            "on fixed features"
        )
    return None


def _cached_needs_fixed_features(c: Any) -> str | None:
    if c.engine == "cached" and (c.finetune_bn != "eval" or c.finetune_augment):
        return (
            "engine='cached' fine-tunes on fixed features: it needs finetune_bn='eval' and "
            "finetune_augment=False; use engine='exact' for the reference's train-mode loop"
        )
    return None


def _imagenet_needs_paper(c: Any) -> str | None:
    if c.weights is not None and c.preset != "paper":
        return f"weights={c.weights!r} needs preset='paper'"
    return None


def _reference_protocol_needs_exact(c: Any) -> str | None:
    if c.finetune_protocol == "reference" and (c.engine != "exact" or c.layers != "last"):
        return (
            "finetune_protocol='reference' needs engine='exact' and layers='last': it trains every "
            "bias and BatchNorm shift of the network, which the cached engine cannot"
        )
    return None


def _warmup_below_epochs(c: Any) -> str | None:
    for net in c.networks:
        for ds in c.datasets:
            warm = per_network_value(c.dense_warmup_epochs, "dense_warmup_epochs", net, ds)
            epochs = per_network_value(c.dense_epochs, "dense_epochs", net, ds)
            if warm >= epochs:
                return (
                    f"dense_warmup_epochs ({warm}) must be smaller than dense_epochs ({epochs}) "
                    f"for {net}/{ds}"
                )
    return None


#: Rules over several fields: each returns the error message, or ``None`` when the rule holds.
CROSS_FIELD_RULES: tuple[Callable[[Any], str | None], ...] = (
    _layers_all_needs_exact,
    _cached_needs_fixed_features,
    _imagenet_needs_paper,
    _reference_protocol_needs_exact,
    _warmup_below_epochs,
)


# ============================================================================================ entry points
def per_network_value(value: Any, key: str, network: str, dataset: str | None = None) -> Any:
    """Resolve a per-network field: ``"<network>/<dataset>"`` wins over ``"<network>"``; a number is global

    Parameters
    ----------
    value : number or mapping
        The field's value: one number for every network, or a mapping ``"<network>"`` /
        ``"<network>/<dataset>"`` -> number.
    """
    if isinstance(value, Mapping):
        if dataset is not None and f"{network}/{dataset}" in value:
            return value[f"{network}/{dataset}"]
        if network not in value:
            raise ValueError(f"{key} has no value for network {network!r}; given for {sorted(value)}")
        return value[network]
    return value


def validate_config(config: Any) -> None:
    """Check every field of ``config`` (:data:`CONSTRAINTS`), the cross-field rules, the AP3 entries
    and the device; raise ``ValueError``/``TypeError`` naming the key at the first problem.

    Parameters
    ----------
    config : ExperimentConfig
        The grid configuration to check.
    """
    fields = [f.name for f in dataclasses.fields(config)]
    missing = sorted(set(fields) - set(CONSTRAINTS))
    if missing:  # a new field must come with its constraint
        raise RuntimeError(f"internal error: config field(s) {missing} have no constraint")
    for key in CONSTRAINTS:
        CONSTRAINTS[key].check(getattr(config, key), key, config)
    for rule in CROSS_FIELD_RULES:
        message = rule(config)
        if message is not None:
            raise ValueError(message)
    dry_run_ap3(parse_ap3(config.ap3))
    resolve_device(config.device)


def check_data_present(config: Any) -> None:
    """Raise ``FileNotFoundError`` for a missing CIFAR archive (without ``download``) or missing
    ImageNet weights (without ``allow_download``), naming what is missing and where it was looked for.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    """
    root = zoo.default_data_root() if config.data_root is None else Path(config.data_root).expanduser()
    for ds in config.datasets:
        if ds.startswith("cifar") and not config.download:
            zoo.check_cifar_present(ds, root)
    if config.weights == "imagenet" and not config.allow_download:
        for net in config.networks:
            path = zoo.imagenet_weights_path(net)
            if not path.exists():
                raise FileNotFoundError(
                    f"ImageNet weights for {net} not found at {path}; set allow_download: true in the "
                    f"config, copy the file there, or use weights: null"
                )
