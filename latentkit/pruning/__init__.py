"""Pruning on the weights' own device, compatible with ``torch.nn.utils.prune``.

``prune(model, method, amount, layers="last", scope="layer", seed=None, **options) -> PruneResult``
with the methods of :data:`latentkit.options.PRUNING_METHODS` (``lowest``, ``highest``,
``highest_reference``, ``random``, ``structured``, ``lq_adaptive``, ``spectral``), dispatched
through :data:`REGISTRY` (:mod:`latentkit.pruning.registry`); fine-tuning that never revives a pruned weight
(:class:`MaskedOptimizer`, :func:`freeze_all_but`); soft sparsity (:func:`lq_index`,
:func:`pq_index`); spectral degrees of freedom (:func:`degrees_of_freedom`); and the
Qian-Klabjan random-network simulation (:func:`qian_klabjan_simulation`).
The small-model chapters' loops: :func:`evaluate_classifier` (loss and accuracy), :func:`pruned_copy`,
:func:`penalized_cross_entropy`, :func:`fit_lbfgs` and :func:`finetune_steps`.

Examples
--------
>>> import torch
>>> from latentkit.pruning import prune
>>> _ = torch.manual_seed(0)
>>> nn = torch.nn
>>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> result = prune(model, 'lowest', 0.5)
>>> int((model[2].weight == 0).sum())
3
"""

from ..modules import effective_weight, last_layer, prunable_layers, pruning_mask
from ._select import select_smallest
from .budget import SparsityChoice, sparsity_for_budget
from .core import PruneResult, prune, select_layers, soft_sparsity, sparsity_report
from .evaluation import ClassifierMetrics, evaluate_classifier, pruned_copy
from .finetune import MaskedOptimizer, freeze_all_but, model_masks
from .registry import REGISTRY
from .simulation import qian_klabjan_simulation
from .soft import (
    LqBoundCheck,
    best_s_term_error,
    lq_adaptive_mask,
    lq_bound_check,
    lq_index,
    lq_norm,
    lq_tail_scores,
    pq_index,
)
from .spectral import (
    SpectralSelection,
    degrees_of_freedom,
    greedy_spectral_selection,
    input_second_moment,
    output_aware_metric,
    reconstruction_matrix,
    ridge_reconstruction_error,
)
from .state import PrecomputedMask, unprune
from .training import finetune_steps, fit_lbfgs, penalized_cross_entropy

__all__ = [
    "REGISTRY",
    "PrecomputedMask",
    "PruneResult",
    "prune",
    "last_layer",
    "prunable_layers",
    "select_layers",
    "sparsity_report",
    "pruning_mask",
    "unprune",
    "effective_weight",
    "MaskedOptimizer",
    "model_masks",
    "freeze_all_but",
    "lq_norm",
    "lq_index",
    "pq_index",
    "best_s_term_error",
    "lq_tail_scores",
    "lq_adaptive_mask",
    "lq_bound_check",
    "LqBoundCheck",
    "soft_sparsity",
    "degrees_of_freedom",
    "ridge_reconstruction_error",
    "greedy_spectral_selection",
    "reconstruction_matrix",
    "output_aware_metric",
    "SpectralSelection",
    "input_second_moment",
    "qian_klabjan_simulation",
    "select_smallest",
    "ClassifierMetrics",
    "evaluate_classifier",
    "pruned_copy",
    "penalized_cross_entropy",
    "fit_lbfgs",
    "finetune_steps",
    "SparsityChoice",
    "sparsity_for_budget",
]
