"""The one registry of pruning methods: :data:`REGISTRY` maps each name of
:data:`latentkit.options.PRUNING_METHODS` to its :class:`~latentkit.pruning.methods.PruningMethod`.

Adding a method: add its name to ``latentkit.options.PRUNING_METHODS``, write its scorer (entry
scores), group mask builder or model-level pruner, and register it here. :func:`latentkit.pruning.prune`
validates ``method`` against the vocabulary and dispatches through this table.

Examples
--------
>>> from latentkit.pruning.registry import REGISTRY
>>> sorted(REGISTRY)[:3]
['highest', 'highest_reference', 'lowest']
"""

from __future__ import annotations

from ..options import PRUNING_METHODS
from .methods import (
    PruningMethod,
    lq_source,
    magnitude_source,
    prune_structured,
    random_reference_source,
    random_source,
    reference_transform,
)
from .spectral_prune import prune_spectral_layers

__all__ = ["REGISTRY"]

REGISTRY: dict[str, PruningMethod] = {
    "lowest": PruningMethod("lowest", scorer=magnitude_source),
    "highest": PruningMethod("highest", scorer=magnitude_source, prune_largest=True),
    "highest_reference": PruningMethod(
        "highest_reference", scorer=magnitude_source, prune_largest=True, transform=reference_transform
    ),
    "random": PruningMethod("random", scorer=random_source),
    "structured": PruningMethod("structured", frozenset({"norm", "dim"}), group=prune_structured),
    "lq_adaptive": PruningMethod("lq_adaptive", frozenset({"q"}), scorer=lq_source),
    "spectral": PruningMethod(
        "spectral",
        frozenset({"inputs", "lam", "next_layer", "forward", "theta"}),
        model=prune_spectral_layers,
        scopes=("layer",),
    ),
    # the reference code's fixed-seed NumPy mask (one legacy permutation per layer)
    "random_reference": PruningMethod(
        "random_reference", frozenset({"legacy_seed"}), scorer=random_reference_source
    ),
}
if tuple(REGISTRY) != PRUNING_METHODS:  # pragma: no cover - guards the one vocabulary
    raise RuntimeError("latentkit.pruning.registry.REGISTRY disagrees with latentkit.options.PRUNING_METHODS")
