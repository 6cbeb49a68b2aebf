"""The cache keys of the shipped grids are pinned (written before the architecture move).

A refactoring that changed a key would silently orphan every cached dense network and cell: the
hashes below were computed from ``configs/quick.yaml`` and ``configs/paper.yaml`` before the move
and must never change unless the cache format is bumped on purpose (then regenerate this file and
say so in the commit).
"""

import json
from pathlib import Path

import pytest

from latentkit import grid as E
from latentkit.grid.keys import cell_key, dense_key

PINNED = json.loads((Path(__file__).parent / "fixtures" / "cache_keys.json").read_text())


def _keys(name: str) -> dict:
    """Every key of the grid ``name``: the config hash, each dense key and each cell key."""
    c = E.load_config(E.config_path(name))
    # The config hash is pinned over the config's dict as it was before the field `scale` (the
    # quick/paper preset) was renamed `preset`: map the new name back, at the same position.
    # (The dense and cell keys never used the config dict: they still store the preset as "scale".)
    d = {"config": E.config_hash({("scale" if k == "preset" else k): v for k, v in c.to_dict().items()})}
    for n in c.networks:
        for ds in c.datasets:
            for t in range(c.trials):
                plan = E.make_plan(c, n, ds, t, "cpu")
                d[f"dense/{n}/{ds}/{t}"] = E.config_hash(dense_key(plan))
                for m in c.methods:
                    for s in c.sparsities:
                        d[f"cell/{n}/{ds}/{m}/{s}/{t}"] = E.config_hash(cell_key(plan, m, s))
    return d


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_cache_keys_pinned(name):
    got = _keys(name)
    assert sorted(got) == sorted(PINNED[name])
    changed = {k: (PINNED[name][k], v) for k, v in got.items() if v != PINNED[name][k]}
    assert not changed, f"{len(changed)} cache keys changed, e.g. {list(changed.items())[:3]}"


def test_hash_function_pinned():
    assert E.config_hash({"a": 1, "b": [0.5, "x"], "c": None}) == "9f7d94173dd6a7e0a7fddb65"
    assert E.config_hash({"c": None, "b": [0.5, "x"], "a": 1}) == "9f7d94173dd6a7e0a7fddb65"
