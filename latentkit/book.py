"""The scale switch of the book: which experiment config and results directory a chapter uses.

A chapter never hard-codes ``configs/quick.yaml``: it calls :func:`book_config`, so the same chapter
renders the quick-scale grid (the default, what the book ships with) or a paper-scale run::

    LATENTKIT_SCALE=paper bash run.sh book                          # configs/paper.yaml, results/paper
    LATENTKIT_RESULTS=/data/my_run LATENTKIT_SCALE=paper bash run.sh book

The scale is a configuration value, never a fork in the code: both scales run the same functions.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Tuple

from ._validation import check_choice

__all__ = ["SCALES", "REPO_ROOT", "book_scale", "book_config"]

SCALES = ("quick", "paper")
REPO_ROOT = Path(__file__).resolve().parents[1]


def book_scale() -> str:
    """The scale chapters use: ``$LATENTKIT_SCALE`` (``"quick"`` or ``"paper"``), default ``"quick"``.

    Raises ``ValueError`` for any other value, naming the allowed ones.
    """
    return check_choice(os.environ.get("LATENTKIT_SCALE", "quick"), "LATENTKIT_SCALE", SCALES)


def book_config(**overrides: Any) -> "Tuple[Any, Path]":
    """The experiment config and the results directory of the current scale.

    ``config = load_config(path, **overrides)`` with ``path`` = ``$LATENTKIT_CONFIG`` if set, else
    ``<repository>/configs/<scale>.yaml``; the results directory is ``$LATENTKIT_RESULTS`` if set,
    else ``<repository>/results/<scale>`` (the cell cache that chapters and the book build share).

    Parameters
    ----------
    **overrides
        Config fields to replace, e.g. ``networks=["alexnet"]`` for a one-network chapter.

    Returns
    -------
    (ExperimentConfig, pathlib.Path)

    Raises
    ------
    ValueError
        For an unknown ``LATENTKIT_SCALE`` or a config file that does not exist (the message says
        which variable to set).
    """
    from .experiments import load_config

    scale = book_scale()
    path = Path(os.environ.get("LATENTKIT_CONFIG", REPO_ROOT / "configs" / f"{scale}.yaml"))
    if not path.is_file():
        raise ValueError(f"config file {path} not found (set LATENTKIT_CONFIG to a config file, "
                         f"or LATENTKIT_SCALE to one of {list(SCALES)})")
    out = Path(os.environ.get("LATENTKIT_RESULTS", REPO_ROOT / "results" / scale))
    return load_config(path, **overrides), out
