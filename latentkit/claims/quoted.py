r"""One number, one value: the correlations chapters quote, under one glue name each.

A chapter that quotes a Spearman :math:`\rho` of a measure with PD glues it under
:func:`corr_glue_name` (``corr-<network>-<dataset>-<measure>-<level>``, e.g.
``corr-alexnet-standin10-ap3-fn-t0``) with the value of :func:`quoted_correlations`, which is the
point estimate of :func:`latentkit.claims.correlation_levels` (trial means per cell, the same
numbers the benchmark chapters' tables show). ``tests/test_finetuning_chapter.py`` recomputes
every stored ``corr-*`` glue of every chapter from the results and checks it.

Examples
--------
>>> from latentkit.claims.quoted import corr_glue_name
>>> corr_glue_name('alexnet', 'cifar10', 'ap2', 'cells@0')
'corr-alexnet-cifar10-ap2-t0'
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .tables import correlation_levels

__all__ = ["CLAIM_DIRECTIONS", "CLAIM_SOURCES", "corr_glue_name", "level_token", "quoted_correlations"]


def level_token(level: str) -> str:
    """Glue-name token of a level: ``"cells@0"`` -> ``"t0"``, ``"cells@20"`` -> ``"t20"``, ``"epochs"``."""
    if level == "epochs":
        return "epochs"
    if isinstance(level, str) and level.startswith("cells@") and level[6:].isdigit():
        return f"t{level[6:]}"
    raise ValueError(f"level must be 'cells@<epoch>' or 'epochs' (correlation_levels' names); got {level!r}")


def corr_glue_name(network: str, dataset: str, measure: str, level: str) -> str:
    """``corr-<network>-<dataset>-<measure>-<level>``, ``_`` -> ``-`` (``level`` as :func:`level_token`)."""
    parts = [str(network), str(dataset), str(measure)]
    return "corr-" + "-".join(p.replace("_", "-") for p in parts) + "-" + level_token(level)


def quoted_correlations(
    df: pd.DataFrame,
    measures: Sequence[str],
    levels: Sequence[str] = ("cells@0", "cells", "epochs"),
    *,
    target: str = "pd_test",
) -> dict[str, float]:
    r"""Spearman :math:`\rho` of each measure with ``target`` per (network, dataset) and level, by glue name.

    The values are the ``spearman`` column of :func:`~latentkit.claims.correlation_levels` (its
    point estimate does not depend on the bootstrap); ``"cells"`` is named by the last epoch
    (``t<T>``).
    """
    corr = correlation_levels(df, levels, measures=list(measures), target=target, n_boot=10)
    return {
        corr_glue_name(r.network, r.dataset, r.measure, r.level): float(r.spearman)
        for r in corr.itertuples(index=False)
    }


#: Whose claim each row of :func:`~latentkit.claims.paper_claims` tests (the book's paper chapter):
#: claim 3 is the reviewers' objection, not the paper's claim.
CLAIM_SOURCES: dict[str, str] = {
    "2": "paper",
    "3": "reviewers",
    "4": "paper",
    "5": "paper",
    "6a": "paper",
    "6b": "paper",
    "6c": "paper (stricter reading)",
    "7": "paper (limitation)",
}
#: What would confirm each claim (its direction).
CLAIM_DIRECTIONS: dict[str, str] = {
    "2": "AP up => PD up",
    "3": "holds supports reviewers",
    "4": "sparsity up => AP, PD up",
    "5": "lowest < random < highest",
    "6a": "AP, PD settle together",
    "6b": "low sparsity: PD -> 0",
    "6c": "AP(t), PD(t) co-move",
    "7": "AP order = PD order",
}
