"""The cache keys of the shipped grids are pinned (written before the architecture move).

A refactoring that changed a key would silently orphan every cached dense network and cell: the
hashes below were computed from ``configs/quick.yaml`` and ``configs/paper.yaml`` before the move
and must never change unless the cache format is bumped on purpose (then regenerate this file and
say so in the commit).
"""
import json
from pathlib import Path

import pytest

from latentkit import experiments as E

PINNED = json.loads((Path(__file__).parent / "fixtures" / "cache_keys.json").read_text())


def _keys(name: str) -> dict:
    """Every key of the grid ``name``: the config hash, each dense key and each cell key."""
    c = E.load_config(Path(__file__).parents[1] / "configs" / f"{name}.yaml")
    d = {"config": E.config_hash(c.to_dict())}
    for n in c.networks:
        for ds in c.datasets:
            for t in range(c.trials):
                d[f"dense/{n}/{ds}/{t}"] = E.config_hash(E._dense_key(c, n, ds, t))
                for m in c.methods:
                    for s in c.sparsities:
                        d[f"cell/{n}/{ds}/{m}/{s}/{t}"] = E.config_hash(E._cell_key(c, n, ds, m, s, t))
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
