r"""Planning a grid: the per-group plan the engines run, and what a grid costs before it runs.

:class:`GroupPlan` is the config resolved once for one (network, dataset, trial) group (per-network
values looked up, the device resolved, the AP3 entries parsed); every engine and low-level helper
takes the plan (or the two values it needs), never the whole config.

The cost model (:func:`plan_grid`, ``python -m latentkit plan CONFIG``: size, GPU-hours, disk; the
paper-scale chapter's) counts floating-point operations with
:class:`torch.utils.flop_counter.FlopCounterMode` on the meta device (nothing is computed) and turns
them into seconds at a stated sustained throughput ``tflops`` (TFLOP/s). One pass over ``n`` images
with ``f`` FLOP per image takes

.. math:: t = n \max\left(\frac{f}{10^{12}\,\mathrm{tflops}},\ \frac{1}{r}\right)

with ``r`` the data loader's rate in images/s (``loader_images_per_worker`` times the config's
``num_workers``, at least one worker): a pass is bound by the GPU or by the loader, whichever is
slower. Per (network, dataset) with ``E`` dense epochs, ``T`` fine-tuning epochs, ``K`` cells per
group (methods x sparsities), ``C`` classes and ``F`` penultimate features:

* evaluation (train + test views, forward only): :math:`t_{ev} = t(N_{tr} + N_{te}, f_{fwd})`;
* dense training: :math:`E\,(t(N_{tr}, f_{dense}) + t_{ev})` per group (trial);
* exact fine-tuning: :math:`(T + 1)\,t_{ev} + T\,t(N_{tr}, f_{ft})` per cell;
* cached fine-tuning: one feature pass :math:`t_{ev}` plus the ``K`` linear heads,
  :math:`(T N_{tr}\,4KCF + (T + 1)(N_{tr} + N_{te})\,2KCF) / (10^{12}\,\mathrm{tflops})` per group.

Examples
--------
>>> from latentkit.grid import load_config
>>> from latentkit.grid.plan import grid_size
>>> len(grid_size(load_config('quick')))
8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from .. import zoo
from .._validation import check_int, check_positive, resolve_device
from .measures import AP3Spec, parse_ap3

__all__ = [
    "HOUR",
    "N_TEST",
    "N_TRAIN",
    "GroupPlan",
    "config_costs",
    "cost_table",
    "disk_table",
    "grid_size",
    "group_plans",
    "make_plan",
    "network_costs",
    "plan_grid",
]

#: Training and test images of CIFAR10 and CIFAR100 alike.
N_TRAIN, N_TEST = 50_000, 10_000
HOUR = 3600.0
#: Input side (pixels) of the networks of each preset.
_IMAGE_SIZE = {"quick": 32, "paper": 224}


# ============================================================================================ group plan
@dataclass(frozen=True)
class GroupPlan:
    """The config resolved for one (network, dataset, trial) group: what the engines and loops read.

    Per-network values (``dense_epochs``, ``dense_lr``, ``finetune_lr``) are those of this
    (network, dataset), as written in the config (the cache keys store them unconverted);
    ``model_kwargs`` are the keyword arguments of :func:`latentkit.zoo.build_model`.
    """

    network: str
    dataset: str
    trial: int
    preset: str
    device: torch.device
    seed: int
    model_kwargs: dict[str, Any]
    dense_epochs: int
    dense_lr: float
    dense_batch_size: int
    dense_augment: bool
    finetune_epochs: int
    finetune_lr: float
    finetune_batch_size: int
    finetune_augment: bool
    momentum: float
    weight_decay: float
    engine: str
    finetune_bn: str
    layers: str
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    extra_measures: tuple[str, ...]
    random_mask_seed: str | int
    ap3: tuple[dict[str, Any], ...]
    ap3_specs: tuple[AP3Spec, ...]
    data_root: str | None
    download: bool
    max_train_samples: int | None
    max_test_samples: int | None
    data_seed: int
    channels_last: bool
    eval_batch_size: int
    num_workers: int
    threads_per_group: int | None = None
    normalization: str = "imagenet"
    finetune_protocol: str = "latentkit"
    reference_mc_samples: int = 600_000
    reference_mc_repeats: int = 100
    dense_warmup_epochs: int = 0
    dense_history: str = "full"
    function_measures: bool = True

    @property
    def cells(self) -> list[tuple[str, float]]:
        """The group's (method, sparsity) cells, in the config's order."""
        return [(m, float(s)) for m in self.methods for s in self.sparsities]


def make_plan(
    config: Any, network: str, dataset: str, trial: int, device: torch.device | str | None = None
) -> GroupPlan:
    """Resolve ``config`` (validated) for one group; ``device`` defaults to the config's, resolved.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    network : str
        One of ``config.networks``.
    dataset : str
        One of ``config.datasets``.
    trial : int
        The trial index (0-based).
    device : torch.device or str, optional
        None uses the config's device, resolved.
    """
    kw: dict[str, Any] = {
        "scale": config.preset,
        "weights": config.weights,
        "allow_download": config.allow_download,
    }
    if config.preset == "quick":
        kw["width"] = (config.width or {}).get(network, zoo.QUICK_WIDTH[network])
    return GroupPlan(
        network=network,
        dataset=dataset,
        trial=trial,
        preset=config.preset,
        device=resolve_device(config.device if device is None else device),
        seed=config.seed,
        model_kwargs=kw,
        dense_epochs=config.per_network("dense_epochs", network, dataset),
        dense_lr=config.per_network("dense_lr", network, dataset),
        dense_batch_size=config.dense_batch_size,
        dense_augment=config.dense_augment,
        finetune_epochs=config.finetune_epochs,
        finetune_lr=config.per_network("finetune_lr", network, dataset),
        finetune_batch_size=config.finetune_batch_size,
        finetune_augment=config.finetune_augment,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        engine=config.engine,
        finetune_bn=config.finetune_bn,
        layers=config.layers,
        methods=tuple(config.methods),
        sparsities=tuple(config.sparsities),
        extra_measures=tuple(config.extra_measures),
        random_mask_seed=config.random_mask_seed,
        ap3=tuple(dict(s) for s in config.ap3),
        ap3_specs=parse_ap3(config.ap3),
        data_root=config.data_root,
        download=config.download,
        max_train_samples=config.max_train_samples,
        max_test_samples=config.max_test_samples,
        data_seed=config.data_seed,
        channels_last=config.channels_last,
        eval_batch_size=config.eval_batch_size,
        num_workers=config.num_workers,
        threads_per_group=getattr(config, "threads_per_group", None),
        normalization=config.normalization,
        finetune_protocol=config.finetune_protocol,
        reference_mc_samples=config.reference_mc_samples,
        reference_mc_repeats=config.reference_mc_repeats,
        dense_warmup_epochs=int(config.per_network("dense_warmup_epochs", network, dataset)),
        dense_history=config.dense_history,
        function_measures=bool(config.function_measures),
    )


def group_plans(config: Any, device: torch.device | str | None = None) -> list[GroupPlan]:
    """One :class:`GroupPlan` per (network, dataset, trial) of ``config``, in the grid's order.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    device : torch.device or str, optional
        Device of every group; None uses the config's, resolved.
    """
    dev = resolve_device(config.device if device is None else device)
    return [
        make_plan(config, n, d, t, dev)
        for n in config.networks
        for d in config.datasets
        for t in range(config.trials)
    ]


def grid_size(config: Any) -> dict[str, int]:
    """Axes, dense trainings (groups), cells and result rows (cells x epochs ``0..T``) of a grid.

    ``groups = networks x datasets x trials``; ``cells = groups x methods x sparsities``;
    ``rows = cells x (finetune_epochs + 1)``.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    """
    groups = len(config.networks) * len(config.datasets) * config.trials
    cells = groups * len(config.methods) * len(config.sparsities)
    return {
        "networks": len(config.networks),
        "datasets": len(config.datasets),
        "methods": len(config.methods),
        "sparsities": len(config.sparsities),
        "trials": config.trials,
        "dense trainings (groups)": groups,
        "cells": cells,
        "result rows (cells x epochs 0..T)": cells * (config.finetune_epochs + 1),
    }


def _count_flops(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> int:
    """FLOPs of one forward (and, with ``backward``, the backward) of ``x`` through ``model``."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


def network_costs(networks: Any, *, preset: str = "paper", num_classes: int = 100) -> pd.DataFrame:
    """FLOP per image and checkpoint size of each network (counted on the meta device).

    Parameters
    ----------
    networks : sequence of str
        Names from :data:`latentkit.options.NETWORKS`.
    preset : {"quick", "paper"}
        Network size (:func:`latentkit.zoo.build_model`'s ``scale``); input 224 px (paper) or 32 px.
    num_classes : int >= 1
        Classes of the head (the largest of the grid's datasets).

    Returns
    -------
    DataFrame indexed by network with ``forward``, ``dense step`` (forward + backward of every
    parameter), ``fine-tuning step`` (forward + backward with only the last layer trainable), all in
    FLOP per image, ``in_features`` (``F`` of the last layer) and ``state_bytes`` (dense checkpoint).
    """
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    size = _IMAGE_SIZE[preset]
    x = torch.empty(1, 3, size, size, device="meta")
    rows = {}
    for name in networks:
        model = zoo.build_model(name, num_classes, scale=preset, seed=0)
        state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        model = model.to("meta")
        fwd = _count_flops(model.eval(), x, backward=False)
        dense = _count_flops(model.train(), x, backward=True)
        layer_name, layer = zoo.classifier_layer(model)
        for pname, p in model.named_parameters():
            p.requires_grad_(pname in (f"{layer_name}.weight", f"{layer_name}.bias"))
        finetune = _count_flops(model.train(), x, backward=True)
        rows[name] = {
            "forward": fwd,
            "dense step": dense,
            "fine-tuning step": finetune,
            "in_features": layer.in_features,
            "state_bytes": state_bytes,
        }
        del model
    return pd.DataFrame(rows).T


def cost_table(
    config: Any,
    costs: pd.DataFrame,
    *,
    tflops: float = 25.0,
    loader_images_per_worker: float = 1_000.0,
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
) -> pd.DataFrame:
    """Estimated GPU-hours per network and phase (formulas in the module docstring).

    Parameters
    ----------
    config : ExperimentConfig
    costs : DataFrame from :func:`network_costs` (one row per network of ``config``)
    tflops : float > 0
        Sustained float32/TF32 throughput of one GPU (TFLOP/s; 25 ~ an A100-class GPU).
    loader_images_per_worker : float > 0
        Images/s one DataLoader worker delivers (times ``config.num_workers``, at least 1).
    n_train, n_test : int >= 1
        Images per training / test view (CIFAR: 50,000 / 10,000).

    Returns
    -------
    DataFrame indexed by network, plus a row ``all`` (sums): ``dense``, ``fine-tune exact``,
    ``fine-tune cached``, ``evaluation bound by`` (``loader`` or ``GPU``), ``total, exact engine``,
    ``total, cached engine`` (GPU-hours).
    """
    tflops = check_positive(tflops, "tflops")
    loader = check_positive(loader_images_per_worker, "loader_images_per_worker") * max(config.num_workers, 1)
    n_train = check_int(n_train, "n_train", minimum=1)
    n_test = check_int(n_test, "n_test", minimum=1)
    rate = tflops * 1e12

    def pass_seconds(images: int, flops_per_image: float) -> float:
        return images * max(flops_per_image / rate, 1.0 / loader)

    K = len(config.methods) * len(config.sparsities)
    rows = []
    for net in config.networks:
        f = costs.loc[net]
        r: dict[str, Any] = {"network": net, "dense": 0.0, "fine-tune exact": 0.0, "fine-tune cached": 0.0}
        for ds in config.datasets:
            groups = config.trials
            cells = groups * K
            E, T = config.per_network("dense_epochs", net, ds), config.finetune_epochs
            evaluation = pass_seconds(n_train + n_test, f["forward"])
            dense = E * (pass_seconds(n_train, f["dense step"]) + evaluation)
            exact = (T + 1) * evaluation + T * pass_seconds(n_train, f["fine-tuning step"])
            CF = zoo.dataset_num_classes(ds) * f["in_features"]
            step, ev = 4 * K * CF, 2 * K * CF
            cached = evaluation + (T * n_train * step + (T + 1) * (n_train + n_test) * ev) / rate
            r["dense"] += groups * dense / HOUR
            r["fine-tune exact"] += cells * exact / HOUR
            r["fine-tune cached"] += groups * cached / HOUR
        r["evaluation bound by"] = "loader" if f["forward"] / rate < 1 / loader else "GPU"
        rows.append(r)
    df = pd.DataFrame(rows).set_index("network")
    df["total, exact engine"] = df["dense"] + df["fine-tune exact"]
    df["total, cached engine"] = df["dense"] + df["fine-tune cached"]
    total = df.drop(columns="evaluation bound by").sum().rename("all")
    return pd.concat([df, total.to_frame().T]).fillna({"evaluation bound by": ""})


def disk_table(config: Any, costs: pd.DataFrame) -> pd.DataFrame:
    """Cache of dense networks per network: checkpoint size (MB), checkpoints (datasets x trials), GB.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    costs : pandas.DataFrame
        :func:`network_costs` of the config's networks (its ``state_bytes`` column).
    """
    groups = len(config.datasets) * config.trials
    return pd.DataFrame(
        {
            "dense checkpoint (MB)": {n: costs.loc[n, "state_bytes"] / 1e6 for n in config.networks},
            "checkpoints in cache": {n: groups for n in config.networks},
            "cache (GB)": {n: groups * costs.loc[n, "state_bytes"] / 1e9 for n in config.networks},
        }
    )


def config_costs(config: Any) -> pd.DataFrame:
    """:func:`network_costs` of a config's networks at its preset, for its datasets' largest class count.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    """
    num_classes = max(zoo.dataset_num_classes(ds) for ds in config.datasets)
    return network_costs(config.networks, preset=config.preset, num_classes=num_classes)


def plan_grid(
    config: Any,
    *,
    tflops: float = 25.0,
    loader_images_per_worker: float = 1_000.0,
    n_train: int = N_TRAIN,
    n_test: int = N_TEST,
    costs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """GPU-hour estimate of a grid: :func:`cost_table` over :func:`network_costs` of its networks.

    ``costs`` (from :func:`network_costs`) skips the FLOP counting; by default the networks are
    counted at the config's preset with the largest class count of its datasets.

    Parameters
    ----------
    config : ExperimentConfig
        A validated grid configuration (see :func:`load_config`).
    """
    if costs is None:
        costs = config_costs(config)
    return cost_table(
        config,
        costs,
        tflops=tflops,
        loader_images_per_worker=loader_images_per_worker,
        n_train=n_train,
        n_test=n_test,
    )
