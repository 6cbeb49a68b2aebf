"""The book's figures (conventions in :mod:`latentkit.plots`): each returns a matplotlib Figure.

Examples
--------
>>> from latentkit.plots import figures
>>> 'ap_pd_curves' in figures.__all__
True
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .._checks import check_columns, check_int
from .style import (
    _MARKERS,
    METHOD_COLORS,
    _level_label,
    _log_axis,
    _methods_in,
    _pct,
    _pick,
    _preset_of,
    _scale_text,
    _sparsity_colors,
    _trials_text,
    dataset_label,
    measure_label,
    method_label,
    network_label,
    short_measure_label,
)

__all__ = ["ap_pd_curves", "ap_pd_scatter", "correlation_forest", "dense_curves", "standin_examples"]


def dense_curves(
    dense: pd.DataFrame, network: str | None = None, *, scale: str | None = None, title: str | None = None
) -> Figure:
    """Dense training curves of one network on every dataset of the table.

    Two panels sharing the epoch axis: cross-entropy (log axis) and accuracy (%), train (solid)
    and test (dashed) evaluated in eval mode after each epoch, one colour per dataset.

    Parameters
    ----------
    dense : DataFrame from :func:`latentkit.grid.dense_table`
        Needs ``network``, ``dataset``, ``epoch``, ``train_loss``, ``test_loss``, ``train_acc``,
        ``test_acc`` (``trial`` optional: trials are averaged).
    network : str, optional
        The network to draw (required when the table holds several).
    scale : str, optional
        Named in the title (``"quick"``/``"paper"``); the dense table has no scale column.
    title : str, optional
        Replaces the default suptitle.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = ["network", "dataset", "epoch", "train_loss", "test_loss", "train_acc", "test_acc"]
    check_columns(dense, cols, "dense (the dense table)")
    network = _pick(dense, "network", network, "network")
    d = dense[dense["network"] == network]
    datasets = list(pd.unique(d["dataset"]))
    mean = d.groupby(["dataset", "epoch"], sort=False)[cols[3:]].mean().reset_index()
    pal = sns.color_palette("dark", max(len(datasets), 2))
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(7.6, 3.6), sharex=True, constrained_layout=True)
    for i, ds in enumerate(datasets):
        m = mean[mean["dataset"] == ds]
        for split, ls in (("train", "-"), ("test", "--")):
            kw = dict(color=pal[i], ls=ls, marker="o", ms=3, label=f"{ds}, {split}")
            ax_l.plot(m["epoch"], m[f"{split}_loss"], **kw)
            ax_a.plot(m["epoch"], m[f"{split}_acc"], **kw)
    symlog = _log_axis(ax_l, mean[["train_loss", "test_loss"]].to_numpy().ravel())
    ax_l.set_ylabel("cross-entropy (nats" + (", symlog)" if symlog else ", log axis)"))
    ax_a.set_ylabel("accuracy (%)")
    ax_a.set_ylim(0, 100)
    for ax in (ax_l, ax_a):
        ax.set_xlabel("dense training epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, which="major", alpha=0.3)
    ax_a.legend(title="dataset, split", fontsize="small", loc="best")
    data = "; ".join(dataset_label(ds) for ds in datasets)
    fig.suptitle(
        title
        or f"{network_label(network, scale)}: dense training "
        f"({_scale_text(d, scale)}{_trials_text(d)})\n{data}",
        fontsize="medium",
    )
    return fig


def ap_pd_curves(
    df: pd.DataFrame,
    network: str | None = None,
    dataset: str | None = None,
    measures: Sequence[str] | None = None,
    *,
    methods: Sequence[str] | None = None,
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    r"""AP and PD over the fine-tuning epochs: one compact figure per (network, dataset).

    A grid of panels: **rows = measures** (default AP2, one AP3 and PD on the test set),
    **columns = pruning methods**, **colour = sparsity**; x = fine-tuning epoch ``t`` (0 = right
    after pruning, before any fine-tuning), y on a log axis shared along each row (symlog where a
    row has zeros), so methods compare at a glance along a row and sparsities within a panel.
    This replaces the paper's one-figure-per-method and one-figure-per-sparsity layout.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
        Needs ``network, dataset, method, sparsity, epoch`` and the measure columns.
    network, dataset : str, optional
        The cell group to draw (required when the table holds several).
    measures : list of str, optional
        Columns, one row of panels each. Default: ``ap2``, the Kronecker-Laplace AP3
        ``ap3_laplace_kron`` (else the first ``ap3_*`` column) and ``pd_test``.
    methods : list of str, optional
        Columns of panels, in order (default every method of the table: lowest, random, highest...).
    scale, title : str, optional
        Scale named in the suptitle (default: the table's ``scale`` column); replacement suptitle.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_columns(df, ["network", "dataset", "method", "sparsity", "epoch"], "df (the results table)")
    if measures is None:
        measures = _curve_measures(df)
    _check_names(measures, "measures")
    _check_names(methods, "methods")
    measures = list(measures)
    if not measures:
        raise ValueError("measures must name at least one column")
    check_columns(df, measures, "df (the results table)")
    network = _pick(df, "network", network, "network")
    d = df[df["network"] == network]
    dataset = _pick(d, "dataset", dataset, "dataset")
    d = d[d["dataset"] == dataset]
    methods = _methods_in(d, methods)
    mean = d.groupby(["method", "sparsity", "epoch"], sort=True)[measures].mean().reset_index()
    sparsities = sorted(pd.unique(mean["sparsity"]))
    colors = _sparsity_colors(sparsities)
    nr, nc = len(measures), len(methods)
    fig, axes = plt.subplots(
        nr,
        nc,
        figsize=(2.0 * nc + 1.6, 1.9 * nr + 1.1),
        sharex=True,
        sharey="row",
        squeeze=False,
        constrained_layout=True,
    )
    for i, meas in enumerate(measures):
        for j, meth in enumerate(methods):
            ax = axes[i, j]
            for s in sparsities:
                m = mean[(mean["method"] == meth) & (mean["sparsity"] == s)]
                kw = {"color": colors[s], "marker": "o", "ms": 2.5, "lw": 1.4, "label": f"sparsity {_pct(s)}"}
                ax.plot(m["epoch"], m[meas], **kw)
            ax.grid(True, which="major", alpha=0.3)
            if i == 0:
                ax.set_title(method_label(meth))
            if i == nr - 1:
                ax.set_xlabel("fine-tuning epoch $t$")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        symlog = _log_axis(axes[i, 0], mean[meas].to_numpy())
        label = _wrap_label(measure_label(meas)) + ("\n(symlog)" if symlog else "")
        axes[i, 0].set_ylabel(label, fontsize="small")
    handles = [
        Line2D([], [], color=colors[s], marker="o", ms=4, lw=1.4, label=f"sparsity {_pct(s)}")
        for s in sparsities
    ]
    fig.legend(handles=handles, title="last-layer sparsity", loc="outside right center", fontsize="small")
    fig.suptitle(
        title
        or f"{network_label(network, _preset_of(d, scale))} on {dataset_label(dataset)}:\n"
        "AP and PD during fine-tuning\n"
        f"({_scale_text(d, scale)}{_trials_text(d)}; columns = pruning method, "
        f"colour = sparsity)",
        fontsize="medium",
    )
    return fig


def ap_pd_scatter(
    df: pd.DataFrame,
    network: str | None = None,
    measure: str = "ap2",
    target: str = "pd_test",
    *,
    epochs: Sequence[int] | None = None,
    datasets: Sequence[str] | None = None,
    scale: str | None = None,
    title: str | None = None,
) -> Figure:
    """AP against PD, one point per (method, sparsity) cell, right after pruning and at the end.

    Rows = datasets, columns = epochs (default ``0`` and the last fine-tuning epoch); colour =
    method, marker and size = sparsity; both axes logarithmic (symlog where PD has zeros), shared
    within a row so that the two epochs compare directly.

    Parameters
    ----------
    df : DataFrame from :func:`latentkit.grid.run_grid`
    network : str, optional
        Required when the table holds several networks.
    measure, target : str
        x column (an AP measure, default ``ap2``) and y column (default ``pd_test``).
    epochs : list of int, optional
        Fine-tuning epochs of the columns (default ``[0, last]``); each must be in the table.
    datasets : list of str, optional
        Rows (default every dataset of the network).
    scale, title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_columns(
        df, ["network", "dataset", "method", "sparsity", "epoch", measure, target], "df (the results table)"
    )
    network = _pick(df, "network", network, "network")
    d = df[df["network"] == network]
    datasets, epochs = _scatter_selection(d, network, datasets, epochs)
    methods = _methods_in(d, None)
    sparsities = sorted(pd.unique(d["sparsity"]))
    marker = {s: _MARKERS[i % len(_MARKERS)] for i, s in enumerate(sparsities)}
    size = {s: 25 + 60 * i / max(len(sparsities) - 1, 1) for i, s in enumerate(sparsities)}
    mean = (
        d.groupby(["dataset", "method", "sparsity", "epoch"], sort=True)[[measure, target]]
        .mean()
        .reset_index()
    )
    nr, nc = len(datasets), len(epochs)
    fig, axes = plt.subplots(
        nr,
        nc,
        figsize=(3.0 * nc + 1.9, 2.8 * nr + 1.0),
        sharex="row",
        sharey="row",
        squeeze=False,
        constrained_layout=True,
    )
    for i, ds in enumerate(datasets):
        row = mean[(mean["dataset"] == ds) & (mean["epoch"].isin(epochs))]
        for j, e in enumerate(epochs):
            ax = axes[i, j]
            _scatter_panel(ax, row[row["epoch"] == e], measure, target, methods, marker, size)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{ds}, epoch {e}" + (" (right after pruning)" if e == 0 else ""), fontsize="medium")
            ax.set_xlabel(measure_label(measure), fontsize="small")
        sx = _log_axis(axes[i, 0], row[measure].to_numpy(), axis="x")
        sy = _log_axis(axes[i, 0], row[target].to_numpy(), axis="y")
        axes[i, 0].set_ylabel(measure_label(target) + (" (symlog)" if sy else ""))
        if sx:
            for ax in axes[i]:
                ax.set_xlabel(measure_label(measure) + " (symlog)", fontsize="small")
    _scatter_legend(fig, methods, marker, size)
    data = "; ".join(dataset_label(ds) for ds in datasets)
    fig.suptitle(
        title
        or f"{network_label(network, _preset_of(d, scale))}: {measure_label(measure)}\n"
        f"vs {measure_label(target)}, "
        f"one point per cell ({_scale_text(d, scale)}{_trials_text(d)})\n{data}",
        fontsize="medium",
    )
    return fig


def correlation_forest(
    corr: pd.DataFrame,
    *,
    scale: str | None = None,
    ci_label: str = "95 % bootstrap CI",
    title: str | None = None,
    ncols: int | None = None,
) -> Figure:
    """Forest plot of Spearman correlations between AP measures and PD, with their bootstrap CIs.

    One panel per (network, dataset) group of the table, one line per measure, one colour per
    correlation level (``cells``: across the method x sparsity grid at one epoch; ``cells@<e>``:
    the same at epoch ``e`` (:func:`latentkit.claims.correlation_levels`); ``epochs``: across
    cells and epochs), a dot at Spearman's :math:`\\rho` and a bar over its CI; the x axis
    is [-1, 1] with a reference line at 0 (a bar entirely right of it = significantly positive).
    Undefined correlations (NaN: constant measure) are marked "undefined" at 0.

    Parameters
    ----------
    corr : DataFrame from :func:`latentkit.stats.correlations`
        Needs ``measure, target, level, spearman, spearman_low, spearman_high``; ``network`` and
        ``dataset`` (optional) define the panels. Levels ``cells``, ``cells@<e>`` and ``epochs``
        (concatenated tables); per-cell ``within`` rows are rejected (too many for one figure).
    scale : str, optional
        Named in the title.
    ci_label : str
        How the interval was computed (x label).
    title : str, optional
    ncols : int, optional
        Panels per row (default: all groups in one row); ``ncols=1`` stacks them for a narrow page.

    Returns
    -------
    matplotlib.figure.Figure
    """
    check_columns(
        corr,
        ["measure", "target", "level", "spearman", "spearman_low", "spearman_high"],
        "corr (the correlation table)",
    )
    if (corr["level"] == "within").any():
        raise ValueError(
            "correlation_forest draws levels 'cells', 'cells@<e>' and 'epochs'; "
            "filter out the 'within' rows "
            "(one correlation per cell)"
        )
    group_cols = [c for c in ("network", "dataset") if c in corr.columns]
    groups = list(corr.groupby(group_cols, sort=False)) if group_cols else [((), corr)]
    levels = list(pd.unique(corr["level"]))
    targets = list(pd.unique(corr["target"]))
    measures = list(pd.unique(corr["measure"]))
    rows = [(m, t) for m in measures for t in targets]
    pal = dict(zip(levels, sns.color_palette("deep", max(len(levels), 2))))
    off = {lv: (k - (len(levels) - 1) / 2) * 0.22 for k, lv in enumerate(levels)}
    nc = len(groups) if ncols is None else check_int(ncols, "ncols", minimum=1)
    nr = -(-len(groups) // nc)
    per_row = 0.55 if ncols is None else 0.3  # stacked panels: compact rows
    height = per_row * len(rows) * len(levels) ** 0.5 + 0.9
    fig, axes = plt.subplots(
        nr,
        nc,
        figsize=(4.6 * nc + (1.8 if ncols is None else 2.4), height * nr + 0.9),
        sharex=True,
        sharey=True,
        squeeze=False,
        constrained_layout=True,
    )
    axes = axes.reshape(1, -1)
    for ax in axes[0, len(groups) :]:
        ax.set_visible(False)
    name = measure_label if ncols is None else short_measure_label  # stacked: short tick labels
    ylabels = [name(m) if len(targets) == 1 else f"{name(m)} vs {t}" for m, t in rows]
    preset = _preset_of(corr, scale)
    for j, (gval, g) in enumerate(groups):
        ax = axes[0, j]
        gval = gval if isinstance(gval, tuple) else (gval,)
        _forest_panel(ax, g, rows, pal, off)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlim(-1.05, 1.05)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(ylabels, fontsize="small")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(True, axis="x", alpha=0.3)
        with_ = "/".join(measure_label(t) for t in targets)
        ax.set_xlabel(f"Spearman $\\rho$ with {with_} ({ci_label})", fontsize="small")
        label = dict(zip(group_cols, gval))
        if label:
            ax.set_title(
                " / ".join(
                    str(label[c]) if c != "network" else network_label(label[c], preset) for c in group_cols
                ),
                fontsize="medium",
            )
    handles = [
        Line2D([], [], color=pal[lv], marker="o", markeredgecolor="k", lw=2, label=_level_label(lv))
        for lv in levels
    ]
    where = "outside right center" if ncols is None else "outside lower center"
    fig.legend(
        handles=handles,
        title="correlation level",
        loc=where,
        fontsize="small",
        ncols=1 if ncols is None else len(handles),
    )
    fig.suptitle(title or _forest_title(corr, scale), fontsize="medium")
    return fig


def _scatter_panel(
    ax: Any,
    pts: pd.DataFrame,
    measure: str,
    target: str,
    methods: Sequence[str],
    marker: dict[float, str],
    size: dict[float, float],
) -> None:
    """One panel of :func:`ap_pd_scatter`: a point per (method, sparsity) of ``pts`` (one epoch)."""
    for meth in methods:
        for s in marker:
            p = pts[(pts["method"] == meth) & (pts["sparsity"] == s)]
            ax.scatter(
                p[measure],
                p[target],
                color=METHOD_COLORS.get(meth, "k"),
                marker=marker[s],
                s=size[s],
                edgecolor="k",
                linewidth=0.4,
                alpha=0.9,
            )


def _forest_panel(
    ax: Any, g: pd.DataFrame, rows: list[tuple[str, str]], pal: dict[str, Any], off: dict[str, float]
) -> None:
    """One panel of :func:`correlation_forest`: per (measure, target) row and level, rho and its CI."""
    for r, (m, t) in enumerate(rows):
        for lv in pal:
            sel = g[(g["measure"] == m) & (g["target"] == t) & (g["level"] == lv)]
            if sel.empty:
                continue
            rec = sel.iloc[0]
            y = r + off[lv]
            if not np.isfinite(rec["spearman"]):
                ax.plot([0], [y], marker="x", color=pal[lv], ms=6)
                ax.annotate("undefined", (0.03, y), fontsize="x-small", va="center", color=pal[lv])
                continue
            lo, hi = rec["spearman_low"], rec["spearman_high"]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=pal[lv], lw=2, solid_capstyle="butt")
            ax.plot([rec["spearman"]], [y], marker="o", color=pal[lv], ms=6, markeredgecolor="k")


def _scatter_selection(
    d: pd.DataFrame, network: str, datasets: Sequence[str] | None, epochs: Sequence[int] | None
) -> tuple[list[str], list[int]]:
    """The rows (datasets) and columns (epochs) of :func:`ap_pd_scatter`; each must be in ``d``."""
    present = list(pd.unique(d["dataset"]))
    _check_names(datasets, "datasets")
    datasets = present if datasets is None else list(datasets)
    missing = [x for x in datasets if x not in present]
    if missing:
        raise ValueError(f"dataset(s) {missing} not in the table for {network}; it holds {present}")
    last = int(d["epoch"].max())
    if isinstance(epochs, str):
        raise TypeError(f"epochs must be a list of integers; got the string {epochs!r}")
    epochs = [0, last] if epochs is None else [check_int(e, "epochs", minimum=0) for e in epochs]
    absent = [e for e in epochs if e not in set(d["epoch"].astype(int))]
    if absent:
        raise ValueError(f"epoch(s) {absent} not in the table (epochs 0..{last})")
    return datasets, epochs


def _scatter_legend(
    fig: Figure, methods: Sequence[str], marker: dict[float, str], size: dict[float, float]
) -> None:
    """The legend of :func:`ap_pd_scatter`: colour = method, marker (and size) = sparsity."""
    h_m = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            ms=7,
            color=METHOD_COLORS.get(m, "k"),
            markeredgecolor="k",
            label=method_label(m),
        )
        for m in methods
    ]
    h_s = [
        Line2D(
            [],
            [],
            ls="",
            marker=marker[s],
            ms=4 + 4 * np.sqrt(size[s] / 85),
            color="0.6",
            markeredgecolor="k",
            label=f"sparsity {_pct(s)}",
        )
        for s in marker
    ]
    fig.legend(
        handles=h_m + h_s,
        title="method (colour),\nsparsity (marker)",
        loc="outside right center",
        fontsize="small",
    )


def _wrap_label(label: str, width: int = 22) -> str:
    """An axis label on two lines for a short panel: at the double space before a formula, else words."""
    if len(label) <= width:
        return label
    if "  " in label:
        return "\n".join(part.strip() for part in label.split("  ", 1))
    return "\n".join(textwrap.wrap(label, width)) if "$" not in label else label


def _check_names(value: Any, name: str) -> None:
    """A TypeError for a bare string where a list of names is expected (``"ap2"`` is not ``["ap2"]``)."""
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of names, not the string {value!r}")


def _curve_measures(df: pd.DataFrame) -> list[str]:
    """Default rows of :func:`ap_pd_curves`: AP2, the Kronecker-Laplace AP3 (else the first AP3), PD test."""
    ap3 = [c for c in df.columns if str(c).startswith("ap3_")]
    pick = "ap3_laplace_kron" if "ap3_laplace_kron" in ap3 else (ap3[0] if ap3 else None)
    return ["ap2"] + ([pick] if pick else []) + ["pd_test"]


def _forest_title(corr: pd.DataFrame, scale: str | None) -> str:
    """Default suptitle of :func:`correlation_forest`: networks, scale and what the datasets are."""
    nets = list(pd.unique(corr["network"])) if "network" in corr.columns else []
    dss = list(pd.unique(corr["dataset"])) if "dataset" in corr.columns else []
    head = ", ".join(network_label(n, _preset_of(corr, scale)) for n in nets) or "AP vs PD"
    data = "\n".join(dataset_label(x) for x in dss)
    return f"{head}: rank correlation of AP with PD ({_scale_text(corr, scale)})" + (
        f"\n{data}" if data else ""
    )


def standin_examples(examples: dict[str, Any], *, per_dataset: int = 10, title: str | None = None) -> Figure:
    """A few images of each data set, one row per data set, labelled by class.

    Parameters
    ----------
    examples : dict
        Data set name -> a sequence of ``(image, label)`` pairs (a dataset of
        :func:`latentkit.zoo.load_dataset`); images ``(3, H, W)`` or ``(H, W)`` array-likes
        (tensors work: nothing here imports torch). Each image is stretched to [0, 1] for display.
    per_dataset : int
        Images per row (the first ``per_dataset`` items, one per class where possible).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    per_dataset = check_int(per_dataset, "per_dataset", minimum=1)
    if not isinstance(examples, dict) or not examples:
        raise ValueError("examples must be a non-empty dict: dataset name -> (image, label) pairs")
    names = list(examples)
    fig, axes = plt.subplots(
        len(names),
        per_dataset,
        figsize=(0.72 * per_dataset, 1.05 * len(names) + 0.5),
        squeeze=False,
        constrained_layout=True,
    )
    for i, name in enumerate(names):
        items, seen = [], set()
        for image, label in examples[name]:  # one image per class first
            if int(label) not in seen:
                items.append((image, int(label)))
                seen.add(int(label))
            if len(items) == per_dataset:
                break
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(items):
                ax.set_visible(False)
                continue
            img = np.asarray(items[j][0], dtype=float)
            img = np.moveaxis(img, 0, -1) if img.ndim == 3 and img.shape[0] in (1, 3) else img
            img = (img - img.min()) / (np.ptp(img) or 1.0)
            ax.imshow(img.squeeze(), cmap="gray" if img.squeeze().ndim == 2 else None)
            ax.set_title(f"class {items[j][1]}", fontsize=8)
        axes[i, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title or "; ".join(dataset_label(n) for n in names), fontsize=8)
    return fig
