"""The report of a finished grid: tables, verdicts and the book's figures, written next to its results.

:func:`write_report` reads ``DIR/results.csv`` (and ``DIR/dense.csv`` if present), the files
:func:`latentkit.grid.run_grid` writes, and writes ``DIR/report/``:

* ``summary.csv`` -- trial means at the last epoch (:func:`latentkit.stats.summarize`);
* ``correlations.csv`` -- Spearman/Kendall correlations of every AP measure with ``pd_test`` and
  ``pd_train`` at the levels cells / epochs / within (:func:`latentkit.stats.correlations`);
* ``claims.csv`` -- the paper's claims as verdicts (:func:`latentkit.claims.paper_claims`);
* ``reference_rescale.csv`` -- only for a reference-mode run (:func:`reference_mode`): AP2 rescaled
  as the reference code plots it, to a maximum of 3.8 per (network, dataset, method, trial)
  (:func:`latentkit.stats.reference_rescale`), one row per (network, dataset, method, trial,
  sparsity, epoch) with ``ap2`` and ``ap2_ref``;
* ``summary.txt`` -- the tables as text (a reference-mode run: also the rescaled AP2 at the last
  epoch);
* ``curves_<network>_<dataset>.png`` (AP and PD over the fine-tuning epochs,
  :func:`latentkit.plots.ap_pd_curves`) and ``dense_curves_<network>.png``
  (:func:`latentkit.plots.dense_curves`).

The figures and verdicts are the book's own, so a report and a chapter show the same thing. No
torch: the report needs only the results tables (``python -m latentkit report DIR`` calls it).

Examples
--------
>>> import pandas as pd
>>> from latentkit.report import format_table, reference_mode
>>> print(format_table(pd.DataFrame({'rho': [0.5, -0.25]})))
  rho
  0.5
-0.25
>>> reference_mode({'finetune_protocol': 'reference'}, ['lowest'])
(True, "config.yaml has finetune_protocol: 'reference'")
>>> reference_mode(None, ['lowest', 'random_reference'])[0]
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import yaml
from matplotlib.figure import Figure

from . import plots
from ._checks import check_int
from .claims import paper_claims
from .options import CORRELATION_LEVELS, FINETUNE_PROTOCOLS, REFERENCE_ROLES
from .stats import REFERENCE_AP2_MAX, correlations, reference_rescale, summarize

__all__ = ["format_table", "reference_mode", "write_report"]

#: Columns of ``reference_rescale.csv``: the keys of one point, then AP2 and its rescaled value.
_RESCALE_COLUMNS = ["network", "dataset", "method", "trial", "sparsity", "epoch", "ap2", "ap2_ref"]

#: Columns the report needs in ``results.csv`` (``ap3_*`` measures and ``scale`` are optional).
_RESULT_COLUMNS = (
    "network",
    "dataset",
    "method",
    "sparsity",
    "epoch",
    "ap2",
    "test_acc",
    "pd_train",
    "pd_test",
)


def format_table(df: pd.DataFrame) -> str:
    """``df`` as text without its index, floats with 4 significant digits (``{:.4g}``)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}")
    return df.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _write_text(
    rep: Path,
    summary: pd.DataFrame,
    corr: pd.DataFrame,
    verdicts: pd.DataFrame,
    rescaled: pd.DataFrame | None = None,
    rule: str = "",
) -> Path:
    """``summary.txt``: the summary, the cells/epochs correlations and the verdicts as text; with
    ``rescaled`` (a reference-mode run, decided by ``rule``) also the trial means of the rescaled AP2
    at the last epoch."""
    path = rep / "summary.txt"
    with open(path, "w") as f:
        f.write("Last epoch, trial means (accuracy in %, PD in percentage points)\n")
        f.write(format_table(summary) + "\n\nCorrelations with PD (cells and epochs levels)\n")
        f.write(format_table(corr[corr["level"] != "within"].drop(columns=["note"])) + "\n")
        f.write("\nThe paper's claims (latentkit.claims.paper_claims)\n")
        f.write(format_table(verdicts[["claim", "measure", "passed", "tests", "verdict"]]) + "\n")
        if rescaled is not None:
            last = rescaled[rescaled["epoch"] == rescaled["epoch"].max()]
            means = (
                last.groupby(["network", "dataset", "method", "sparsity", "epoch"], sort=False)[
                    ["ap2", "ap2_ref"]
                ]
                .mean()
                .reset_index()
            )
            f.write(
                f"\nReference mode ({rule}): AP2 rescaled as the reference code plots it, to a "
                f"maximum of {REFERENCE_AP2_MAX:g} per (network, dataset, method, trial) "
                "(latentkit.stats.reference_rescale; every point in reference_rescale.csv); "
                "last epoch, trial means\n"
            )
            f.write(format_table(means) + "\n")
    return path


def reference_mode(config: Mapping[str, Any] | None, methods: Iterable[str]) -> tuple[bool, str]:
    """Whether a grid's results come from a reference-mode run, and which rule decided it.

    The run's own config decides: a reference-mode run (``latentkit/configs/reference.yaml``) has
    ``finetune_protocol: reference``; a config without the key ran the default protocol
    (``latentkit``). Without a config (``config=None``: no ``config.yaml``) the methods decide: a
    reference method (:data:`latentkit.options.REFERENCE_ROLES`: ``highest_reference``,
    ``random_reference``) marks the run as reference mode.

    Parameters
    ----------
    config : mapping or None
        The run's ``config.yaml`` as read by :func:`yaml.safe_load`, or ``None`` when there is none.
    methods : iterable of str
        The methods of the results table (its ``method`` column).

    Returns
    -------
    (bool, str)
        Reference mode or not, and the rule that decided it, in words (for ``summary.txt``).

    Raises
    ------
    TypeError
        ``config`` neither a mapping nor None, ``methods`` a single string.
    ValueError
        ``finetune_protocol`` not one of :data:`latentkit.options.FINETUNE_PROTOCOLS`.
    """
    if isinstance(methods, str):
        raise TypeError(f"methods must be an iterable of method names, not the string {methods!r}")
    if config is None:
        found = sorted({str(m) for m in methods} & set(REFERENCE_ROLES))
        if found:
            return True, f"no config.yaml; the table has reference method(s) {found}"
        return False, "no config.yaml and no reference method in the table"
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (config.yaml) or None; got {type(config).__name__}")
    protocol = config.get("finetune_protocol", FINETUNE_PROTOCOLS[0])
    if protocol not in FINETUNE_PROTOCOLS:
        raise ValueError(
            f"config.yaml: finetune_protocol must be one of {list(FINETUNE_PROTOCOLS)}; got {protocol!r}"
        )
    return protocol == "reference", f"config.yaml has finetune_protocol: {protocol!r}"


def _read_config(path: Path) -> dict[str, Any] | None:
    """``path`` (a run's ``config.yaml``) as a dict, ``None`` if absent; a ValueError naming the file
    if it is not YAML or not a mapping."""
    if not path.is_file():
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of settings; got {type(config).__name__}")
    return config


def _rescaled(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``reference_rescale.csv``: AP2 rescaled to a maximum of 3.8 per (network, dataset,
    method, trial); a table without a ``trial`` column is one trial (0)."""
    d = df if "trial" in df.columns else df.assign(trial=0)
    out = reference_rescale(d, "ap2", target=REFERENCE_AP2_MAX)
    return out[_RESCALE_COLUMNS].sort_values(_RESCALE_COLUMNS[:6], kind="stable").reset_index(drop=True)


def _figures(df: pd.DataFrame, dense_path: Path) -> list[tuple[str, Callable[[], Figure]]]:
    """(file name, drawing function) of every figure: one AP/PD curve per (network, dataset), one
    dense-training figure per network of ``dense.csv`` (when it exists)."""
    scale = str(df["scale"].iloc[0]) if "scale" in df.columns else None
    figures: list[tuple[str, Callable[[], Figure]]] = [
        (f"curves_{net}_{ds}.png", lambda net=net, ds=ds: plots.ap_pd_curves(df, net, ds, scale=scale))
        for net, ds in df.groupby(["network", "dataset"], sort=False).groups
    ]
    if dense_path.is_file():
        dense = pd.read_csv(dense_path)
        figures += [
            (f"dense_curves_{net}.png", lambda net=net: plots.dense_curves(dense, net, scale=scale))
            for net in dict.fromkeys(dense["network"])
        ]
    return figures


def _read_results(path: Path) -> pd.DataFrame:
    """The results table in ``path``, or a ValueError naming the file (empty, no rows, missing columns)."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path} is empty: not a results table of run_grid") from exc
    missing = [c for c in _RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is missing column(s) {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{path} has no rows")
    return df


def write_report(out_dir: str | os.PathLike, n_boot: int = 1000) -> list[Path]:
    """Write tables and figures of a finished grid in ``out_dir/report``; return the files written.

    Parameters
    ----------
    out_dir : path
        The grid's output folder (holding ``results.csv`` and, optionally, ``dense.csv``).
    n_boot : int >= 10
        Bootstrap resamples of the correlations' confidence intervals and of the claims.

    Returns
    -------
    list of pathlib.Path
        ``summary.csv``, ``correlations.csv``, ``claims.csv``, ``reference_rescale.csv`` (only for a
        reference-mode run), ``summary.txt``, then the figures (``curves_<network>_<dataset>.png``
        per group, ``dense_curves_<network>.png``), in that order.

    Raises
    ------
    TypeError
        ``out_dir`` not a path, ``n_boot`` not an integer (booleans included).
    FileNotFoundError
        No ``results.csv`` in ``out_dir``.
    ValueError
        From the statistics (an empty results table, missing columns, NaN values); a
        ``config.yaml`` that is not a YAML mapping or names an unknown ``finetune_protocol``; in
        reference mode, a (network, dataset, method, trial) whose AP2 is never > 0.

    Notes
    -----
    Reference mode (:func:`reference_mode`) is decided by the run's own ``out_dir/config.yaml``
    (written by :func:`latentkit.grid.run_grid`): ``finetune_protocol: reference``. Without a
    ``config.yaml``, by the table: a ``*_reference`` method (:data:`latentkit.options.REFERENCE_ROLES`)
    means reference mode. The claims use the reference methods in their paper roles either way
    (:func:`latentkit.claims.paper_roles`).

    The matplotlib backend is left alone (headless shells pick a non-interactive one themselves).
    """
    if not isinstance(out_dir, str | os.PathLike):
        raise TypeError(f"out_dir must be a path; got {type(out_dir).__name__}")
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    out_dir = Path(out_dir)
    path = out_dir / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `python -m latentkit run CONFIG --out {out_dir}` first"
        )
    df = _read_results(path)
    is_reference, rule = reference_mode(_read_config(out_dir / "config.yaml"), df["method"])
    rescaled = _rescaled(df) if is_reference else None  # before anything is written: it may refuse
    rep = out_dir / "report"
    rep.mkdir(parents=True, exist_ok=True)
    summary = summarize(df)
    summary.to_csv(rep / "summary.csv", index=False)
    corr = pd.concat(
        [
            correlations(df, level=lv, n_boot=n_boot, targets=("pd_test", "pd_train"))
            for lv in CORRELATION_LEVELS
        ],
        ignore_index=True,
    )
    corr.to_csv(rep / "correlations.csv", index=False)
    verdicts = paper_claims(df, n_boot=n_boot)
    verdicts.to_csv(rep / "claims.csv", index=False)
    written = [rep / "summary.csv", rep / "correlations.csv", rep / "claims.csv"]
    if rescaled is not None:
        rescaled.to_csv(rep / "reference_rescale.csv", index=False)
        written.append(rep / "reference_rescale.csv")
    written.append(_write_text(rep, summary, corr, verdicts, rescaled, rule))
    for name, draw in _figures(df, out_dir / "dense.csv"):
        fig = draw()
        fig.savefig(rep / name, dpi=100)
        plt.close(fig)
        written.append(rep / name)
    return written
