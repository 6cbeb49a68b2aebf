"""The grid loop: :func:`run_grid` (run or resume a grid through its cache) and :func:`dense_table`.

A *cell* is (network, dataset, method, sparsity, trial). The config is validated once per
:func:`run_grid` and resolved once per (network, dataset, trial) group into a
:class:`~latentkit.grid.plan.GroupPlan`. For each group the cells already in the cache are read; if
any is missing the whole group is recomputed by its engine (same batch composition, hence
bit-identical values) and only the missing cells are written. A killed run resumes where it
stopped. A cell file whose checksum holds but whose content is not a cell of this key (no
``rows``, another key) is warned about and recomputed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .cache import CacheStore, atomic_write_text, config_hash
from .config import ExperimentConfig, as_config, default_out
from .data import dataset_views
from .engines import group_rows
from .keys import cell_key, dense_key
from .plan import GroupPlan, group_plans
from .training import cached_dense_entry, dense_model

__all__ = ["ID_COLUMNS", "TIMING_COLUMNS", "dense_table", "run_grid"]

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


def _group(store: CacheStore, plan: GroupPlan, progress: bool) -> list[dict[str, Any]]:
    """Rows of one group: cached cells read, the group recomputed if any cell is missing."""
    cells = plan.cells
    keys = {c: cell_key(plan, *c) for c in cells}
    digests = {c: config_hash(keys[c]) for c in cells}
    found = {c: _read_cell(store, keys[c], digests[c]) for c in cells}
    missing = [c for c in cells if found[c] is None]
    if missing:
        computed = group_rows(plan, store, progress=progress)
        for c in missing:
            store.put_json("cells", digests[c], {"key": keys[c], "rows": computed[c]})
            found[c] = {"rows": computed[c]}
    return [row for c in cells for row in found[c]["rows"]]


def run_grid(
    config: ConfigLike,
    out_dir: str | os.PathLike | None = None,
    *,
    progress: bool = False,
    verbose: bool = False,
    dense_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Run (or resume) the grid of ``config``; return the tidy results table.

    Parameters
    ----------
    config : ExperimentConfig, mapping, name of a shipped config or path to a YAML/JSON file
    out_dir : path, optional
        Folder of the cache (``cache/``), ``results.csv``, ``dense.csv`` and ``config.yaml``
        (default ``<working directory>/results/<config.name>``).
    progress : bool
        tqdm progress bar over (network, dataset, trial) groups.
    verbose : bool
        Print dense-training progress.
    dense_dir : path, optional
        Another grid's output folder to take already trained dense networks from (read only; a
        dense network with the same key found there is copied, checksum-verified, into this grid's
        cache instead of being retrained).

    Returns
    -------
    pandas.DataFrame
        One row per (network, dataset, method, sparsity, trial, epoch), ``epoch`` 0 = right after
        pruning. Columns: the identifiers, ``engine``, ``scale`` (the preset), ``ap2``,
        ``ap3_<name>`` for each latent, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``
        (pruned network, accuracy in %), ``dense_*`` (the dense network), ``pd_train``, ``pd_test``
        (percentage points, :math:`|acc_{dense} - acc_{pruned}(t)|`), ``sparsity_achieved`` (zeros
        of the last layer's effective weight), ``mask_sparsity``, ``cells_in_batch``, the extra
        measures asked for, ``wall_time_s`` (seconds from the start of the group's fine-tuning to
        the end of that epoch). Rows are in the order of the config's lists.

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        From :meth:`ExperimentConfig.validate` (run once), before any training.
    """
    config = as_config(config).validate(check_data=True)
    plans = group_plans(config)
    out = default_out(config) if out_dir is None else Path(out_dir)
    store = CacheStore(out / "cache")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    bar = None
    if progress:
        from tqdm.auto import tqdm  # optional display dependency, loaded only when a bar is asked for

        bar = tqdm(total=len(plans) * len(plans[0].cells), desc=f"grid {config.name}", unit="cell")
    donor = None if dense_dir is None else CacheStore(Path(dense_dir) / "cache")
    all_rows: list[dict[str, Any]] = []
    for plan in plans:
        if donor is not None:
            _copy_dense(store, donor, plan)
        if bar is not None:
            bar.set_postfix_str(f"{plan.network}/{plan.dataset}/trial {plan.trial}")
        all_rows.extend(_group(store, plan, progress=verbose))
        if bar is not None:
            bar.update(len(plan.cells))
    if bar is not None:
        bar.close()
    df = pd.DataFrame(all_rows)
    atomic_write_text(out / "results.csv", df.to_csv(index=False))
    atomic_write_text(out / "dense.csv", _dense_rows(plans, store).to_csv(index=False))
    return df


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
