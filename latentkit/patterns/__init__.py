r"""AP2, AP3 and AP3_fn: how far a pruned network is from its dense version.

* :mod:`~latentkit.patterns.weight` -- in the latent space of the *weights*: AP2
  :math:`\lVert P(w) - P(\tilde w) \rVert_2^2`, AP3 :math:`\mathrm{KL}(P(w) \Vert P(\tilde w))`,
  the tests :func:`has_ap2` / :func:`has_ap3` and :func:`layer_table`;
* :mod:`~latentkit.patterns.function` -- in *function* space: AP3_fn
  :math:`\mathbb E_x \mathrm{KL}(p(\cdot \mid x, w) \Vert p(\cdot \mid x, \tilde w))` over unlabelled
  inputs (:func:`ap3_fn`), its exact-Fisher quadratic (:func:`ap3_fn_quadratic`), the Optimal Brain
  Damage saliency (:func:`obd_saliency`) and the per-example :func:`predictive_kl`.

Every public name is importable from :mod:`latentkit.patterns`.

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> wp = w * (w.abs() > 4)
>>> from latentkit.patterns import ap2, ap3
>>> round(ap2(w, w), 6)
0.0
>>> ap2(w, wp) > 0
True
"""

from __future__ import annotations

from .function import ap3_fn, ap3_fn_quadratic, obd_saliency, predictive_kl
from .weight import (
    AP2_NORMALIZATIONS,
    TABLE_COLUMNS,
    AP3Against,
    PatternTest,
    ap2,
    ap3,
    has_ap2,
    has_ap3,
    layer_table,
    pattern_values,
)

__all__ = [
    "AP3Against",
    "AP2_NORMALIZATIONS",
    "PatternTest",
    "TABLE_COLUMNS",
    "ap2",
    "ap3",
    "ap3_fn",
    "ap3_fn_quadratic",
    "has_ap2",
    "has_ap3",
    "layer_table",
    "obd_saliency",
    "pattern_values",
    "predictive_kl",
]
