"""The paper's protocol as a resumable, cached grid of cells (network x dataset x method x sparsity x trial).

For each (network, dataset, trial) the dense network is trained (or read from the cache), its last
layer is pruned with every (method, sparsity) of the config, the pruned last layer is fine-tuned
for ``finetune_epochs`` epochs, and after every epoch ``t = 0..T`` the cell records AP2, every AP3
of the config, the accuracies and losses, PD and the sparsity (:func:`run_grid`).

Modules, by job:

==============  ==========================================================================
``config``      :class:`ExperimentConfig`, :func:`load_config` (by file or shipped name)
``validation``  the declarative constraints of every config field and the cross-field rules
``cache``       :class:`CacheStore`, :func:`config_hash`, the one atomic writer
``keys``        the dense and cell cache keys and the cells' seeds
``plan``        :class:`GroupPlan` (a config resolved per group) and the cost model :func:`plan_grid`
``data``        dataset views, batches, labels
``training``    dense training, evaluation, features, the shared SGD epoch, :func:`cosine_lr`
``measures``    AP2 / AP3 / extra measures of a cell; the one AP3-spec parser
``engines``     :class:`FineTuneEngine`: the cached and the exact fine-tuning engines
``run``         :func:`run_grid`, :func:`dense_table`
==============  ==========================================================================

Examples
--------
>>> from latentkit.grid import load_config, grid_size
>>> config = load_config('quick')
>>> config.preset
'quick'
"""

from .cache import CacheStore, atomic_write_text, config_hash
from .config import DEFAULT_AP3, ExperimentConfig, config_path, default_out, load_config, shipped_configs
from .engines import CachedEngine, ExactEngine, FineTuneEngine, finetune_cached
from .keys import CODE_VERSION
from .measures import EXTRA_MEASURES, parse_ap3_spec
from .plan import (
    GroupPlan,
    config_costs,
    cost_table,
    disk_table,
    grid_size,
    group_plans,
    make_plan,
    network_costs,
    plan_grid,
)
from .run import ID_COLUMNS, TIMING_COLUMNS, dense_table, run_grid
from .training import cosine_lr, train_dense

__all__ = [
    "CODE_VERSION",
    "DEFAULT_AP3",
    "EXTRA_MEASURES",
    "ID_COLUMNS",
    "TIMING_COLUMNS",
    "CacheStore",
    "CachedEngine",
    "ExactEngine",
    "ExperimentConfig",
    "FineTuneEngine",
    "GroupPlan",
    "atomic_write_text",
    "config_costs",
    "config_hash",
    "config_path",
    "cost_table",
    "default_out",
    "dense_table",
    "disk_table",
    "finetune_cached",
    "cosine_lr",
    "grid_size",
    "group_plans",
    "load_config",
    "make_plan",
    "network_costs",
    "parse_ap3_spec",
    "plan_grid",
    "run_grid",
    "shipped_configs",
    "train_dense",
]
