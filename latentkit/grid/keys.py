"""Cache keys and seeds of a group: the dense network's key, each cell's key, the cells' seeds.

A key is a plain dict; its file name is :func:`latentkit.grid.cache.config_hash` of it. The keys are
pinned by ``tests/test_cache_keys.py`` (a change orphans every cached file): the dense key stores
the preset under its historical name ``"scale"``. Optional fields enter a cell's key only when not
at their default, so older caches stay valid.

Examples
--------
>>> from latentkit.grid.keys import CODE_VERSION
>>> isinstance(CODE_VERSION, (int, str))
True
"""

from __future__ import annotations

from typing import Any

from .cache import config_hash
from .plan import GroupPlan

__all__ = ["CODE_VERSION", "cell_key", "cell_key_base", "cell_seed", "dense_key", "finetune_seed"]

#: Bump when a change of code changes cached results (part of every cache key).
#: 2: rows hold integer correct counts, ``delta_*`` and ``pd_*`` from them, and the function-space
#: measures ``ap3_fn`` / ``ap3_fn_quadratic`` / ``obd`` (issue 9).
CODE_VERSION = "latentkit-experiments-2"


def dense_key(plan: GroupPlan) -> dict[str, Any]:
    """Key of the group's dense network (everything its training depends on).

    ``threads`` (the config's ``threads_per_group``) enters only when set; every cell key holds
    the dense key, so it reaches the cells too.
    """
    key = {
        "code": CODE_VERSION,
        "kind": "dense",
        "scale": plan.preset,
        "network": plan.network,
        "dataset": plan.dataset,
        "trial": plan.trial,
        "seed": plan.seed,
        "model": {k: v for k, v in plan.model_kwargs.items() if k != "allow_download"},
        "epochs": plan.dense_epochs,
        "lr": plan.dense_lr,
        "batch_size": plan.dense_batch_size,
        "augment": plan.dense_augment,
        "momentum": plan.momentum,
        "weight_decay": plan.weight_decay,
        "max_train": plan.max_train_samples,
        "max_test": plan.max_test_samples,
        "data_seed": plan.data_seed,
        "channels_last": plan.channels_last,
    }
    if plan.threads_per_group is not None:
        key["threads"] = plan.threads_per_group
    if plan.dense_warmup_epochs:
        key["warmup"] = plan.dense_warmup_epochs
    if plan.dense_history != "full":  # the stored training curves differ (the weights do not)
        key["history"] = plan.dense_history
    if plan.normalization != "imagenet":  # the reference's CIFAR100 statistics (a different input)
        key["normalization"] = plan.normalization
    return key


def cell_key_base(plan: GroupPlan, method: str, sparsity: float) -> dict[str, Any]:
    """The fields of a cell's key that every config has (see :func:`cell_key`)."""
    return {
        "code": CODE_VERSION,
        "kind": "cell",
        "dense": dense_key(plan),
        "method": method,
        "sparsity": float(sparsity),
        "trial": plan.trial,
        "layers": plan.layers,
        "engine": plan.engine,
        "finetune_bn": plan.finetune_bn,
        "finetune_augment": plan.finetune_augment,
        "finetune_epochs": plan.finetune_epochs,
        "finetune_lr": plan.finetune_lr,
        "finetune_batch_size": plan.finetune_batch_size,
        "momentum": plan.momentum,
        "weight_decay": plan.weight_decay,
        "ap3": [dict(s) for s in plan.ap3],
        # the cells computed together (the batch composition can change float rounding)
        "group": [[m, float(s)] for m in plan.methods for s in plan.sparsities],
    }


def cell_key(plan: GroupPlan, method: str, sparsity: float) -> dict[str, Any]:
    """Key of one cell: :func:`cell_key_base` plus the optional fields not at their default."""
    key = cell_key_base(plan, method, sparsity)
    if plan.extra_measures:
        key["extra_measures"] = list(plan.extra_measures)
    if plan.random_mask_seed != "per_trial":
        key["random_mask_seed"] = plan.random_mask_seed
    if plan.finetune_protocol != "latentkit":
        key["finetune_protocol"] = plan.finetune_protocol
    if not plan.function_measures:
        key["function_measures"] = False
    mc = (plan.reference_mc_samples, plan.reference_mc_repeats)
    if "ap3_reference_t" in plan.extra_measures and mc != (600_000, 100):
        key["reference_mc"] = list(mc)
    return key


def cell_seed(plan: GroupPlan, method: str, sparsity: float) -> int:
    """Seed of a cell's random mask: differs across trials (unlike the reference's fixed seed).

    With an integer ``random_mask_seed`` the seed depends only on it, the method and the sparsity:
    the same mask in every trial (the reference's departure 4). First 48 bits of a hash.
    """
    fixed = plan.random_mask_seed
    if isinstance(fixed, int) and not isinstance(fixed, bool):
        return int(config_hash(["mask-fixed", fixed, method, repr(float(sparsity))])[:12], 16)
    return int(
        config_hash(
            ["mask", plan.seed, plan.network, plan.dataset, method, repr(float(sparsity)), plan.trial]
        )[:12],
        16,
    )


def finetune_seed(plan: GroupPlan) -> int:
    """Seed of the fine-tuning batch order of a group (shared by its cells and both engines)."""
    return int(config_hash(["finetune-order", plan.seed, plan.network, plan.dataset, plan.trial])[:12], 16)
