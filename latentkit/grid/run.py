"""The grid loop: :func:`run_grid` (run or resume a grid through its cache) and :func:`dense_table`.

A *cell* is (network, dataset, method, sparsity, trial). The config is validated once per
:func:`run_grid` and resolved once per (network, dataset, trial) group into a
:class:`~latentkit.grid.plan.GroupPlan`. For each group the cells already in the cache are read; if
any is missing the whole group is recomputed by its engine (same batch composition, hence
bit-identical values) and only the missing cells are written. A killed run resumes where it
stopped. A cell file whose checksum holds but whose content is not a cell of this key (no
``rows``, another key) is warned about and recomputed.

A group's work is one picklable function, :func:`run_group` (config as a plain dict, results
folder, network, dataset, trial); an executor (:mod:`latentkit.grid.executors`: serial by
default, or Ray) maps it over the groups, and the driver then reads the table from the cache in
the config's order, so every executor gives the same table.

Examples
--------
>>> from latentkit.grid.run import ID_COLUMNS
>>> ID_COLUMNS
('network', 'dataset', 'method', 'sparsity', 'trial', 'epoch')
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from .cache import CacheStore, atomic_write_text, config_hash
from .config import ExperimentConfig, as_config, default_out
from .data import dataset_views
from .engines import group_rows
from .executors import Executor, default_executor, make_executor, task_resources
from .keys import cell_key, dense_key
from .plan import GroupPlan, group_plans, make_plan
from .training import cached_dense_entry, dense_model

__all__ = ["ID_COLUMNS", "TIMING_COLUMNS", "dense_table", "run_grid", "run_group"]

#: Columns that identify a row of :func:`run_grid`'s table.
ID_COLUMNS = ("network", "dataset", "method", "sparsity", "trial", "epoch")
#: Columns that measure time (they differ between otherwise identical runs).
TIMING_COLUMNS = ("wall_time_s",)

ConfigLike = ExperimentConfig | Mapping[str, Any] | str | os.PathLike


def _read_cell(store: CacheStore, key: dict[str, Any], digest: str) -> dict[str, Any] | None:
    """The cached cell of ``key`` (``None`` when missing, corrupted or not a cell of this key)."""
    found = store.get_json("cells", digest)
    if found is None:
        return None
    rows = found.get("rows") if isinstance(found, dict) else None
    stored_key = found.get("key") if isinstance(found, dict) else None
    ok = (
        isinstance(rows, list)
        and len(rows) > 0
        and all(isinstance(r, dict) for r in rows)
        and isinstance(stored_key, dict)
        and config_hash(stored_key) == digest
    )
    if not ok:
        store.discard(store.path("cells", digest, ".json"), "valid checksum but not a cell of this key")
        return None
    return found


def _copy_dense(store: CacheStore, donor: CacheStore, plan: GroupPlan) -> None:
    """Copy the group's dense network from another grid's cache (checksum-verified) if this one lacks it."""
    dkey = config_hash(dense_key(plan))
    if store.get("dense", dkey, ".pt") is None:
        payload = donor.get("dense", dkey, ".pt")
        if payload is not None:
            store.put("dense", dkey, ".pt", payload)


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block (the previous count restored); ``None``: unchanged."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _cached_cells(
    store: CacheStore, plan: GroupPlan
) -> tuple[dict[tuple[str, float], Any], dict[tuple[str, float], str], dict[tuple[str, float], Any]]:
    """Keys, digests and cached cells (``None`` where missing) of the group's cells."""
    keys = {c: cell_key(plan, *c) for c in plan.cells}
    digests = {c: config_hash(keys[c]) for c in plan.cells}
    return keys, digests, {c: _read_cell(store, keys[c], digests[c]) for c in plan.cells}


def _cached_rows(store: CacheStore, plan: GroupPlan) -> list[dict[str, Any]] | None:
    """The group's rows when every cell is cached, else ``None``."""
    _, _, found = _cached_cells(store, plan)
    if any(f is None for f in found.values()):
        return None
    return [row for c in plan.cells for row in found[c]["rows"]]


def _group(
    store: CacheStore, plan: GroupPlan, progress: bool, compute: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """Rows of one group and how many cells were computed: cached cells read, the group recomputed
    if any cell is missing (with ``compute=False`` a missing cell is a ``RuntimeError``)."""
    cells = plan.cells
    keys, digests, found = _cached_cells(store, plan)
    missing = [c for c in cells if found[c] is None]
    if missing:
        if not compute:
            raise RuntimeError(
                f"{len(missing)} cell(s) of {plan.network}/{plan.dataset}/trial "
                f"{plan.trial} missing from the cache after the run"
            )
        with _torch_threads(plan.threads_per_group):
            computed = group_rows(plan, store, progress=progress)
        for c in missing:
            store.put_json("cells", digests[c], {"key": keys[c], "rows": computed[c]})
            found[c] = {"rows": computed[c]}
    return [row for c in cells for row in found[c]["rows"]], len(missing)


def run_group(
    config: Mapping[str, Any],
    out_dir: str | os.PathLike,
    network: str,
    dataset: str,
    trial: int,
    *,
    dense_dir: str | os.PathLike | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run (or read) one (network, dataset, trial) group through the cache of ``out_dir``.

    The unit of work of every executor: picklable arguments, nothing returned but a summary (the
    cells are in ``out_dir/cache``). Cells already cached are read; if any is missing, the group is
    computed (its dense network read from the cache or trained, ``threads_per_group`` torch threads
    when set) and the missing cells written atomically.

    Parameters
    ----------
    config : mapping
        ``ExperimentConfig.to_dict()`` of a config validated by the driver (not validated again).
    out_dir : path
        The results folder (the store shared by all workers).
    network, dataset, trial
        The group.
    dense_dir : path, optional
        Another grid's results folder to copy the dense network from (see :func:`run_grid`).
    verbose : bool
        Print dense-training progress.

    Returns
    -------
    dict
        ``network``, ``dataset``, ``trial``, ``cells`` (cells of the group), ``computed`` (cells
        computed now; 0 when all were cached).
    """
    plan = make_plan(ExperimentConfig.from_dict(config), network, dataset, trial)
    store = CacheStore(Path(out_dir) / "cache")
    if dense_dir is not None:
        _copy_dense(store, CacheStore(Path(dense_dir) / "cache"), plan)
    _, computed = _group(store, plan, progress=verbose)
    return {
        "network": network,
        "dataset": dataset,
        "trial": trial,
        "cells": len(plan.cells),
        "computed": computed,
    }


def run_grid(
    config: ConfigLike,
    out_dir: str | os.PathLike | None = None,
    *,
    progress: bool = False,
    verbose: bool = False,
    dense_dir: str | os.PathLike | None = None,
    executor: str | Executor | None = None,
) -> pd.DataFrame:
    """Run (or resume) the grid of ``config``; return the tidy results table.

    Each (network, dataset, trial) group is one call of :func:`run_group`, mapped over the groups
    by ``executor``; the table is then read from the cache in the config's order (the same table
    for every executor, timing columns aside when cells were computed in different runs).

    How to resume a killed run (one machine or a cluster): run the same command again with the
    same config and ``out_dir`` (``python -m latentkit run CONFIG --out DIR [--executor ray
    --address ADDRESS]``). Every finished cell and every trained dense network is in
    ``DIR/cache`` and is read, not recomputed; only groups with missing cells run (a group
    killed during fine-tuning restarts from its cached dense network). Ray itself retries a
    task whose worker died. On a cluster ``DIR`` must be on a file system every node sees.

    Parameters
    ----------
    config : ExperimentConfig, mapping, name of a shipped config or path to a YAML/JSON file
    out_dir : path, optional
        Folder of the cache (``cache/``), ``results.csv``, ``dense.csv`` and ``config.yaml``
        (default ``<working directory>/results/<config.name>``).
    progress : bool
        One tqdm progress bar for the run: cells done (groups done in its postfix), elapsed, ETA;
        updated as each group finishes, under every executor.
    verbose : bool
        Print dense-training progress (of the workers' processes under Ray).
    dense_dir : path, optional
        Another grid's output folder to take already trained dense networks from (read only; a
        dense network with the same key found there is copied, checksum-verified, into this grid's
        cache instead of being retrained).
    executor : {"serial", "ray", "local"}, executor or None
        How the groups are run (:mod:`latentkit.grid.executors`); ``"serial"``: one after the
        other in this process; ``"ray"``: one Ray task per group on a local Ray
        (:class:`~latentkit.grid.executors.RayExecutor` for a cluster address); ``"local"``: a
        pool of worker processes (:class:`~latentkit.grid.executors.ProcessExecutor`).
        ``None`` (default): :func:`~latentkit.grid.executors.default_executor`: the local pool
        for a CPU grid of the quick preset with ``threads_per_group`` set (the same bits as the
        serial run: each group fixes its thread count), else serial. A script that runs such a
        grid must guard its entry point with ``if __name__ == "__main__":`` (worker processes are
        spawned).

    Returns
    -------
    pandas.DataFrame
        One row per (network, dataset, method, sparsity, trial, epoch), ``epoch`` 0 = right after
        pruning. Columns: the identifiers, ``engine``, ``scale`` (the preset), ``ap2``,
        ``ap3_<name>`` for each latent, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``
        (pruned network, accuracy in %), ``dense_*`` (the dense network), ``pd_train``, ``pd_test``
        (percentage points, :math:`|\\delta|`), ``train_correct`` / ``n_train`` / ``test_correct``
        / ``n_test`` / ``dense_train_correct`` / ``dense_test_correct`` (integer counts),
        ``delta_train`` / ``delta_test`` (signed change :math:`\\delta = 100 (c - c_{dense}) / n`
        in pp from the counts, so equal changes are bit-equal), ``ap3_fn`` /
        ``ap3_fn_quadratic`` / ``obd`` (:class:`~latentkit.grid.measures.FunctionMeasure`),
        ``sparsity_achieved`` (zeros of the last layer's effective weight), ``mask_sparsity``,
        ``cells_in_batch``, the extra measures asked for, ``wall_time_s`` (seconds from the start
        of the group's fine-tuning to the end of that epoch). Rows are in the order of the config's lists.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        From :meth:`ExperimentConfig.validate` (run once), before any training, and for a bad
        ``executor`` (:func:`~latentkit.grid.executors.make_executor`).
    """
    config = as_config(config).validate(check_data=True)
    plans = group_plans(config)
    if executor is None:
        runner = default_executor(config.preset, str(config.device), config.threads_per_group, len(plans))
    else:
        runner = make_executor(executor)
    out = default_out(config) if out_dir is None else Path(out_dir)
    store = CacheStore(out / "cache")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    dense = None if dense_dir is None else str(Path(dense_dir).resolve())
    # groups whose cells are all cached are read here, not sent to the executor (no worker starts
    # for a grid that is already complete)
    cached = [_cached_rows(store, p) for p in plans]
    tasks = [
        (config.to_dict(), str(out.resolve()), p.network, p.dataset, p.trial)
        for p, rows in zip(plans, cached, strict=True)
        if rows is None
    ]
    bar = _progress_bar(config, plans) if progress else None
    done = {"groups": 0}

    def on_done(summary: dict[str, Any]) -> None:
        done["groups"] += 1
        if bar is not None:
            bar.set_postfix_str(
                f"groups {done['groups']}/{len(plans)}, last {summary['network']}/{summary['dataset']}"
                f"/trial {summary['trial']}"
            )
            bar.update(summary["cells"])

    try:
        for p, rows in zip(plans, cached, strict=True):
            if rows is not None:
                on_done(
                    {
                        "network": p.network,
                        "dataset": p.dataset,
                        "trial": p.trial,
                        "cells": len(p.cells),
                        "computed": 0,
                    }
                )
        runner.map(
            _GroupCall(dense, verbose),
            tasks,
            task_resources(config.device, config.threads_per_group),
            on_done,
        )
    finally:
        if bar is not None:
            bar.close()
    all_rows = [
        row
        for plan, rows in zip(plans, cached, strict=True)
        for row in (rows if rows is not None else _group(store, plan, progress=False, compute=False)[0])
    ]
    df = pd.DataFrame(all_rows)
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    atomic_write_text(out / "dense.csv", _dense_rows(plans, store).to_csv(index=False))
    return df


class _GroupCall:
    """``run_group`` with the run-wide keyword arguments bound (picklable, unlike a closure)."""

    def __init__(self, dense_dir: str | None, verbose: bool) -> None:
        self.dense_dir, self.verbose = dense_dir, verbose

    def __call__(
        self, config: dict[str, Any], out_dir: str, network: str, dataset: str, trial: int
    ) -> dict[str, Any]:
        return run_group(
            config, out_dir, network, dataset, trial, dense_dir=self.dense_dir, verbose=self.verbose
        )


def _progress_bar(config: ExperimentConfig, plans: list[GroupPlan]) -> Any:
    """The run's tqdm bar: total = the grid's cells."""
    from tqdm.auto import tqdm  # optional display dependency, loaded only when a bar is asked for

    total = sum(len(p.cells) for p in plans)
    return tqdm(total=total, desc=f"grid {config.name}", unit="cell", postfix=f"groups 0/{len(plans)}")


def _dense_rows(plans: list[GroupPlan], store: CacheStore) -> pd.DataFrame:
    """Training curves of the groups' dense networks (trained through the cache if missing)."""
    rows = []
    for plan in plans:
        entry = cached_dense_entry(store, config_hash(dense_key(plan)))
        if entry is None:
            _, history = dense_model(plan, store, dataset_views(plan))
        else:
            history = entry["history"]
        rows.extend(
            {"network": plan.network, "dataset": plan.dataset, "trial": plan.trial, **h} for h in history
        )
    return pd.DataFrame(rows)


def dense_table(config: ConfigLike, out_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Dense training curves of the grid's networks (trained through the cache if missing).

    One row per (network, dataset, trial, epoch) with ``lr``, ``train_loss`` / ``train_acc`` /
    ``test_loss`` / ``test_acc`` (eval mode after the epoch; accuracy in %),
    ``train_loss_running`` (mean batch loss during the epoch) and ``time_s``.
    """
    config = as_config(config).validate(check_data=False)
    out = default_out(config) if out_dir is None else Path(out_dir)
    return _dense_rows(group_plans(config), CacheStore(out / "cache"))
