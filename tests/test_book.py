"""The book's scale switch (latentkit.book)."""
from __future__ import annotations

import pytest

from latentkit.book import REPO_ROOT, book_config, book_scale
from latentkit.experiments import load_config


def test_default_is_the_quick_grid(monkeypatch):
    for var in ("LATENTKIT_SCALE", "LATENTKIT_CONFIG", "LATENTKIT_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    config, out = book_config(networks=["alexnet"])
    expected = load_config(REPO_ROOT / "configs" / "quick.yaml").replace(networks=["alexnet"])
    assert config.to_dict() == expected.to_dict()
    assert out == REPO_ROOT / "results" / "quick"


def test_paper_scale_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTKIT_SCALE", "paper")
    monkeypatch.setenv("LATENTKIT_RESULTS", str(tmp_path / "run"))
    config, out = book_config()
    assert config.scale == "paper" and book_scale() == "paper"
    assert config.to_dict() == load_config(REPO_ROOT / "configs" / "paper.yaml").to_dict()
    assert out == tmp_path / "run"


def test_bad_scale_and_missing_config(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTKIT_SCALE", "huge")
    with pytest.raises(ValueError, match="LATENTKIT_SCALE"):
        book_config()
    monkeypatch.setenv("LATENTKIT_SCALE", "quick")
    monkeypatch.setenv("LATENTKIT_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="not found"):
        book_config()
