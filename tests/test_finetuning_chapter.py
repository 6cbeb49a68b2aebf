"""The fine-tuning chapter's package functions, and one number = one value across chapters."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latentkit import claims
from latentkit.stats import budget_choices, measure_table, tau_by_group, within_cell_tau

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick"
RESULTS = QUICK / "results.csv"
#: ``bash run.sh test`` runs the cross-chapter test after the chapters (nbval) have filled the
#: book's results with this set to 1: then missing results are a failure, not a skip.
REQUIRE_RESULTS = os.environ.get("LATENTKIT_REQUIRE_RESULTS") == "1"


def _quick_table(tmp_path):
    """The full quick grid's table read from the book's cache (results.csv may hold a subset:
    a benchmark chapter rewrites it with its network only); cells copied, dense read only."""
    import shutil

    from latentkit.grid import load_config, run_grid

    shutil.copytree(QUICK / "cache" / "cells", tmp_path / "cache" / "cells")
    return run_grid(load_config("quick"), tmp_path, dense_dir=QUICK, executor="serial")


def _grid(seed=0, trials=2, epochs=4):
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(trials):
        for m in ("lowest", "random"):
            for s in (0.1, 0.5, 0.8):
                base = rng.random()
                for e in range(epochs):
                    y = base + 0.3 * s - 0.05 * e + 0.01 * rng.random()
                    row = dict(network="n", dataset="d", method=m, sparsity=s, trial=t, epoch=e)
                    rows.append({**row, "pd_test": y})
    df = pd.DataFrame(rows)
    df["same"] = df["pd_test"]
    df["same_x3"] = 3 * df["pd_test"] + 1  # identical ranks
    df["anti"] = -df["pd_test"]
    df["const"] = 1.0
    return df


def test_within_cell_tau_known_answers():
    df = _grid()
    r = within_cell_tau(df, ["same", "same_x3", "anti", "const"], "pd_test", n_boot=50).set_index("measure")
    assert r.loc["same", "tau"] == pytest.approx(1.0)
    assert r.loc["anti", "tau"] == pytest.approx(-1.0)
    assert r.loc["const", "tau"] == 0.0
    assert r.loc["same"].equals(r.loc["same_x3"])  # identical ranks -> identical row, CI included
    assert (r["n_cells"] == 12).all()


def test_within_cell_tau_rejects_ragged_groups():
    df = _grid().iloc[:-1]
    with pytest.raises(ValueError, match="same number"):
        within_cell_tau(df, ["same"], "pd_test", n_boot=10)


def test_identical_rank_measures_identical_statistics():
    df = _grid()
    df = df[df.epoch == 0].reset_index(drop=True)
    t = measure_table(df, ["same", "same_x3"], "pd_test", axes=("method", "sparsity"), n_boot=30)
    t = t.set_index("measure")
    assert t.loc["same"].equals(t.loc["same_x3"])


def test_tau_by_group_and_budget_choices():
    df = _grid()
    t = tau_by_group(df, ["same", "anti", "const"], "pd_test", ["sparsity"])
    assert list(t["sparsity"]) == [0.1, 0.5, 0.8]
    assert np.allclose(t["same"], 1.0) and np.allclose(t["anti"], -1.0) and t["const"].isna().all()
    curve = pd.DataFrame(
        {
            "g": 0,
            "sparsity": [0.1, 0.5, 0.8, 0.9],
            "div": [0.01, 0.05, 0.2, 0.1],
            "loss": [0.0, 0.5, 2.0, 0.1],
        }
    )
    b = budget_choices(curve, "div", [0.001, 0.06, 1.0], by=["g"], max_loss=1.0)
    # 0.9 is under 0.06... but 0.8 is not, so the rule stops at 0.5 (as sparsity_for_budget)
    assert list(b["chosen"]) == [0.0, 0.5, 0.9]
    assert list(b["oracle"]) == [0.5] * 3
    assert list(b["ok"]) == [True, True, True]


def test_budget_rule_matches_sparsity_for_budget():
    torch = pytest.importorskip("torch")
    from latentkit.pruning import sparsity_for_budget

    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(5, 12, generator=g), torch.randn(64, 12, generator=g)
    grid = [0.1, 0.3, 0.5, 0.7, 0.9]
    full = sparsity_for_budget(w, budget=1e9, features=x, sparsities=grid)
    curve = full.curve.assign(g=0, loss=0.0)
    for beta in (0.01, 0.1, 0.5):
        ref = sparsity_for_budget(w, budget=beta, features=x, sparsities=grid).sparsity
        got = budget_choices(curve, "divergence", [beta], by=["g"]).loc[0, "chosen"]
        assert got == pytest.approx(ref)


def test_corr_glue_names():
    name = claims.corr_glue_name("alexnet", "standin10", "ap3_fn", "cells@0")
    assert name == "corr-alexnet-standin10-ap3-fn-t0"
    assert claims.corr_glue_name("vgg16", "standin100", "ap2", "cells@20").endswith("-ap2-t20")
    assert claims.level_token("epochs") == "epochs"
    with pytest.raises(ValueError):
        claims.level_token("cells")


def _stored_glues(nb: Path) -> dict[str, float]:
    out = {}
    for cell in json.loads(nb.read_text())["cells"]:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            name = book.get("name")
            if name and name.startswith("corr-"):
                text = o["data"][book.get("mime_prefix", "") + "text/plain"]
                out[name] = float("".join(text) if isinstance(text, list) else text)
    return out


@pytest.mark.skipif(
    not REQUIRE_RESULTS and not (QUICK / "cache" / "cells").exists(),
    reason="results/quick not computed (run the book or the quick grid); run.sh test runs it after nbval",
)
def test_quoted_correlations_one_value_across_chapters(tmp_path):
    """Every stored ``corr-*`` glue of every chapter equals the value recomputed from the results."""
    assert (QUICK / "cache" / "cells").exists(), (
        "LATENTKIT_REQUIRE_RESULTS=1 but results/quick/cache/cells is missing: the chapters did not run"
    )
    glued = {nb.name: _stored_glues(nb) for nb in sorted((ROOT / "book").glob("*.ipynb"))}
    glued = {k: v for k, v in glued.items() if v}
    if not glued:
        pytest.skip("no chapter glues a corr-* value yet")
    df = _quick_table(tmp_path)
    measures = sorted({c for c in df.columns if c == "ap2" or c.startswith("ap3_") or c == "obd"})
    fresh = claims.quoted_correlations(df, measures)
    seen: dict[str, tuple[str, float]] = {}
    for nb, values in glued.items():
        for name, value in values.items():
            assert name in fresh, f"{nb}: glue {name!r} is not a quoted correlation of results/quick"
            same = math.isclose(value, fresh[name], rel_tol=1e-12, abs_tol=1e-12)
            assert same, (nb, name, value, fresh[name])
            if name in seen:  # the same name in two chapters has the same value
                assert seen[name][1] == value, (name, seen[name][0], nb)
            seen[name] = (nb, value)


def test_claim_sources_cover_every_verdict_row():
    from latentkit.options import VERDICTS  # noqa: F401  (claims vocabulary is importable)

    assert claims.CLAIM_SOURCES["3"] == "reviewers"
    assert set(claims.CLAIM_SOURCES) == set(claims.CLAIM_DIRECTIONS)
    if RESULTS.exists():
        df = pd.read_csv(RESULTS)
        v = claims.paper_claims(df[df.network == df.network.iloc[0]], n_boot=20)
        assert set(v["claim"]) <= set(claims.CLAIM_SOURCES)
