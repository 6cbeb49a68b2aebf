"""What the chapters share (latentkit.book): setup(), the preset switch and the book root."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from latentkit.book import book_config, book_root, book_scale, setup
from latentkit.grid import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
_DISPLAY = ("display.float_format", "display.width", "display.max_colwidth")


@pytest.fixture
def restore_state():
    """setup() changes process-wide state: put torch's and pandas' settings back afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    for key in _DISPLAY:
        pd.reset_option(key)


@pytest.fixture
def no_book_env(monkeypatch):
    for var in ("LATENTKIT_SCALE", "LATENTKIT_CONFIG", "LATENTKIT_RESULTS"):
        monkeypatch.delenv(var, raising=False)


def test_default_is_the_quick_grid(no_book_env, monkeypatch):
    monkeypatch.chdir(REPO_ROOT / "book")  # chapters execute in book/
    config, out = book_config(networks=["alexnet"])
    expected = load_config("quick").replace(networks=["alexnet"])
    assert config.to_dict() == expected.to_dict()
    assert out == REPO_ROOT / "results" / "quick"


def test_paper_scale_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTKIT_SCALE", "paper")
    monkeypatch.setenv("LATENTKIT_RESULTS", str(tmp_path / "run"))
    config, out = book_config()
    assert config.preset == "paper" and book_scale() == "paper"
    assert config.to_dict() == load_config("paper").to_dict()
    assert out == tmp_path / "run"


def test_bad_scale_and_missing_config(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTKIT_SCALE", "huge")
    with pytest.raises(ValueError, match="LATENTKIT_SCALE"):
        book_config()
    monkeypatch.setenv("LATENTKIT_SCALE", "quick")
    monkeypatch.setenv("LATENTKIT_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="not found"):
        book_config()


def test_config_file_from_the_environment(no_book_env, monkeypatch, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((REPO_ROOT / "latentkit" / "configs" / "quick.yaml").read_text())
    monkeypatch.setenv("LATENTKIT_CONFIG", str(path))
    config, _ = book_config(trials=2)
    assert config.to_dict() == load_config("quick").replace(trials=2).to_dict()


def test_book_root_is_the_folder_of_the_nearest_config(tmp_path):
    (tmp_path / "_config.yml").write_text("title: a copy of the book\n")
    (tmp_path / "book" / "deep").mkdir(parents=True)
    assert book_root(tmp_path / "book" / "deep") == tmp_path.resolve()
    assert book_root(tmp_path) == tmp_path.resolve()


def test_book_root_none_outside_a_book(tmp_path):
    # tmp_path's ancestors (the system's temporary folder) hold no _config.yml
    assert book_root(tmp_path) is None


def test_results_follow_the_book_not_the_package(no_book_env, monkeypatch, tmp_path):
    # a book built from a copy of the repository writes into the copy
    (tmp_path / "_config.yml").write_text("title: copy\n")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    assert book_config()[1] == tmp_path.resolve() / "results" / "quick"
    # outside any book: under the working directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "_config.yml").unlink()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("LATENTKIT_SCALE", "paper")
    assert book_config()[1] == elsewhere.resolve() / "results" / "paper"


def test_setup_seeds_every_generator(restore_state):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = time.perf_counter()
    start = setup()
    assert before <= start <= time.perf_counter()
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]
    assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()


def test_setup_seed_threads_and_determinism_arguments(restore_state):
    setup(seed=7, threads=2, deterministic=False)
    assert torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()
    seven = torch.rand(2)
    torch.manual_seed(7)
    assert torch.equal(seven, torch.rand(2))


def test_setup_display_options(restore_state):
    setup(float_format="{:.4g}", width=120, max_colwidth=None)
    assert pd.get_option("display.width") == 120
    assert pd.get_option("display.max_colwidth") is None
    assert pd.get_option("display.float_format")(1 / 3) == "0.3333"
    # the chapters' output: a float column printed with 4 significant digits
    assert "0.3333" in pd.DataFrame({"x": [1 / 3]}).to_string()
    fmt = "{:.2f}".format
    setup(float_format=fmt)
    assert pd.get_option("display.float_format") is fmt


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 0.5}, TypeError, "seed"),
        ({"threads": 0}, ValueError, "threads"),
        ({"deterministic": 1}, TypeError, "deterministic"),
        ({"no_such_option": 3}, ValueError, "no_such_option"),
        ({"float_format": "{:.4q}"}, ValueError, "float_format"),
        ({"float_format": 4}, TypeError, "float_format"),
    ],
)
def test_setup_rejects_bad_arguments(restore_state, kwargs, error, match):
    width = pd.get_option("display.width")
    with pytest.raises(error, match=match):
        setup(width=99, **kwargs)
    assert pd.get_option("display.width") == width  # validated before anything is set
