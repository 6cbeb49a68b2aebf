"""The option vocabularies of latentkit, one enumeration each (no torch, no numpy).

Every place that lists or checks one of these vocabularies (the latent laws, pruning, the grid's
config, plots, claims, the CLI and the book) imports it from here, so adding a value is one edit and
the lists can never disagree. The values are plain strings (what YAML configs and keyword arguments
carry); the tuples are in display order.

This module is at the bottom of the import layers: it imports nothing from latentkit.

Examples
--------
>>> from latentkit.options import PRUNING_METHODS, PRESETS, REFERENCE_ROLES
>>> 'lowest' in PRUNING_METHODS
True
>>> PRESETS
('quick', 'paper')
>>> REFERENCE_ROLES['highest_reference']
'highest'
"""

from __future__ import annotations

__all__ = [
    "AP2_NORMALIZATIONS",
    "CHUNK_REMAINDERS",
    "COVARIANCES",
    "CORRELATION_LEVELS",
    "DATASETS",
    "ENGINES",
    "EXISTING_MASKS",
    "FAMILIES",
    "FINETUNE_BN_MODES",
    "FINETUNE_PROTOCOLS",
    "FITS",
    "GRID_METHODS",
    "LAYER_SELECTIONS",
    "METHOD_ORDER",
    "NETWORKS",
    "NORMALIZATIONS",
    "PAPER_METHODS",
    "PRESETS",
    "PROJECTIONS",
    "PRUNING_METHODS",
    "PRUNING_SCOPES",
    "REFERENCE_ROLES",
    "VERDICTS",
]

# ---------------------------------------------------------------- latent laws (latentkit.latent)
#: Projections of a weight tensor before a latent law is fitted (:func:`latentkit.latent.project`).
PROJECTIONS = ("identity", "chunk_means", "rows")
#: Latent families (:func:`latentkit.latent.latent_space`).
FAMILIES = ("gaussian", "student_t")
#: Covariance (Gaussian) or scale-matrix (Student-t) structures.
COVARIANCES = ("isotropic", "diagonal", "full", "lowrank", "kronecker")
#: Fitted covariances a grid's AP3 spec may ask for (``fit:``); ``laplace`` = Kronecker-factored Fisher.
FITS = ("laplace",)
#: Normalisations of AP2 (:func:`latentkit.patterns.ap2`, ``normalize=``).
AP2_NORMALIZATIONS = ("dense_norm", "numel")

# ---------------------------------------------------------------- pruning (latentkit.pruning)
#: Every pruning method of :func:`latentkit.pruning.prune`.
PRUNING_METHODS = (
    "lowest",
    "highest",
    "highest_reference",
    "random",
    "structured",
    "lq_adaptive",
    "spectral",
    "random_reference",
)
#: The three methods the paper runs, in the order its figures show them (lowest < random < highest).
PAPER_METHODS = ("lowest", "random", "highest")
#: Methods a grid may run on the last layer (spectral needs the layer's inputs, which the grid does not give).
GRID_METHODS = tuple(m for m in PRUNING_METHODS if m != "spectral")
#: The paper role (one of :data:`PAPER_METHODS`) each method of the authors' reference code plays in
#: reference mode (``latentkit/configs/reference.yaml``): ``highest_reference`` (their corrupted
#: highest-magnitude pruning) stands in for ``highest``, ``random_reference`` (their fixed-seed random
#: mask) for ``random``. The one home of "which method plays which paper role": the paper's own methods
#: play themselves, every other method plays none. :func:`latentkit.claims.paper_roles` applies it to
#: the methods of a table (preferring the paper's own method where both are present).
REFERENCE_ROLES: dict[str, str] = {"random_reference": "random", "highest_reference": "highest"}
#: Display order of methods in figures and tables: the paper's three, each followed by the reference
#: methods that play its role (:data:`REFERENCE_ROLES`), then the others.
METHOD_ORDER = tuple(
    m for p in PAPER_METHODS for m in (p, *(r for r in GRID_METHODS if REFERENCE_ROLES.get(r) == p))
) + tuple(m for m in GRID_METHODS if m not in PAPER_METHODS and m not in REFERENCE_ROLES)
#: Scope of a magnitude threshold: per layer or one threshold over all pruned layers.
PRUNING_SCOPES = ("layer", "global")
#: What :func:`latentkit.pruning.prune` does with a module that already carries a mask.
EXISTING_MASKS = ("compose", "replace", "error")
#: Which layers a model-level prune touches.
LAYER_SELECTIONS = ("last", "all")

# ---------------------------------------------------------------- networks and data (latentkit.zoo)
#: The paper's three networks.
NETWORKS = ("alexnet", "vgg16", "resnet50")
#: Real CIFAR and the offline stand-ins of the same shape.
DATASETS = ("cifar10", "cifar100", "standin10", "standin100", "standin10_digits")
#: Size presets of networks, data and schedules: ``quick`` (CPU, the book) and ``paper`` (GPU).
PRESETS = ("quick", "paper")

# ---------------------------------------------------------------- the grid (latentkit.grid)
#: Fine-tuning engines (one interface: cached features / exact forward-backward).
ENGINES = ("cached", "exact")
#: Mode of the network while the exact engine fine-tunes (``train``: BatchNorm drift and dropout, as the
#: reference).
FINETUNE_BN_MODES = ("eval", "train")

# ---------------------------------------------------------------- statistics and claims
#: Levels at which a correlation pools the rows of a results table (:func:`latentkit.stats.correlations`).
CORRELATION_LEVELS = ("cells", "epochs", "within")
#: Verdicts of a claim (:mod:`latentkit.claims`).
VERDICTS = ("holds", "fails", "mixed", "n/a")

# ---------------------------------------------------------------- reference mode (issue 10)
#: Remainder policies of chunk means (:func:`latentkit.latent.project`, ``remainder=``): ``split`` = exactly
#: ``k`` chunks (:func:`torch.tensor_split`), ``reference`` = the reference's ``range(0, d, d // k)``.
CHUNK_REMAINDERS = ("split", "reference")
#: Input normalisation of CIFAR at 224 px (:func:`latentkit.zoo.load_dataset`): ``imagenet`` for both
#: data sets, ``reference`` = ImageNet statistics for CIFAR10 and CIFAR10's statistics for CIFAR100.
NORMALIZATIONS = ("imagenet", "reference")
#: Fine-tuning protocols of the exact engine: ``latentkit`` (last layer only) or ``reference`` (biases and
#: BatchNorm shifts of every module keep training, the running augmented train accuracy is PD_train's).
FINETUNE_PROTOCOLS = ("latentkit", "reference")
