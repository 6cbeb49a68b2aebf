"""The reader-facing machinery of the book: bibliography labels, the table of contents, the browser
check's page list and known-failure file (no browser, no book build)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pybtex.database import parse_string

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from check_book import toc_files  # noqa: E402


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bibstyle = _load(ROOT / "book" / "_ext" / "bibstyle.py", "_book_bibstyle")

BIB = r"""
@article{one, author = {Tsybakov, Alexandre B.}, title = {A}, year = {2009}}
@article{two, author = {Mozafari-Nia, Mahsa and Yasaei Sekeh, Salimeh}, title = {B}, year = {2024}}
@article{three, author = {Jiang, Y. and Neyshabur, B. and Bengio, S.}, title = {C}, year = {2020}}
@article{dup1, author = {He, K. and Zhang, X. and Ren, S.}, title = {D}, year = {2016}}
@article{dup2, author = {He, K. and Sun, J. and Ren, S.}, title = {E}, year = {2016}}
@article{von, author = {von Neumann, John}, title = {F}, year = {1932}}
"""


def test_author_year_labels_match_the_text_citations():
    entries = list(parse_string(BIB, "bibtex").entries.values())
    labels = list(bibstyle.AuthorYearLabelStyle().format_labels(entries))
    assert labels == [
        "Tsybakov, 2009",
        "Mozafari-Nia and Yasaei Sekeh, 2024",
        "Jiang et al., 2020",
        "He et al., 2016a",
        "He et al., 2016b",
        "von Neumann, 1932",
    ]


def test_every_entry_of_the_book_bibliography_links_out():
    bib = parse_string((ROOT / "book" / "references.bib").read_text(encoding="utf-8"), "bibtex")
    missing = [key for key, e in bib.entries.items() if not ({"url", "doi"} & set(map(str.lower, e.fields)))]
    assert missing == []
    labels = list(bibstyle.AuthorYearLabelStyle().format_labels(bib.entries.values()))
    assert len(set(labels)) == len(labels)
    for key in ("krizhevsky2012imagenet", "simonyan2015very", "he2016deep", "martens2015optimizing"):
        assert key in bib.entries
    for key in ("lecun1990optimal", "jiang2020fantastic", "dziugaite2020search", "moritz2018ray"):
        assert key in bib.entries


def test_every_toc_entry_has_a_source_and_the_new_pages_are_listed():
    docs = toc_files(ROOT)
    assert docs[:2] == ["book/intro", "book/paper"]
    for doc in ("book/glossary", "book/quickstart"):
        assert doc in docs
    for doc in docs:
        assert (ROOT / f"{doc}.md").exists() or (ROOT / f"{doc}.ipynb").exists(), doc


def test_browser_check_defaults_to_every_toc_page_and_reads_known_failures(tmp_path):
    pytest.importorskip("playwright")
    browser_check = _load(ROOT / "tests" / "browser_check.py", "_browser_check")
    assert browser_check.default_pages(ROOT) == [f"{d}.html" for d in toc_files(ROOT)]
    known = tmp_path / "known.txt"
    known.write_text(
        "# a comment\n\nbook/a.html  wide-code pre[3]  # scrollWidth 900 > 680\n"
        "book/b.html narrow-figure img[1]\n"
    )
    assert browser_check.read_known(str(known)) == {
        "book/a.html wide-code pre[3]",
        "book/b.html narrow-figure img[1]",
    }
    assert browser_check.read_known(None) == set()
    f = browser_check.Failure("book/a.html", "wide-code", "pre[3]", "x")
    assert f.key == "book/a.html wide-code pre[3]"
    blocks = [
        {"visible": True, "scroll": 700, "client": 684, "nbval": True, "input": True, "head": "x = 1"},
        {"visible": False, "scroll": 900, "client": 0, "nbval": True, "input": True, "head": "hidden"},
        {"visible": True, "scroll": 685, "client": 684, "nbval": False, "input": True, "head": "ok"},
    ]
    kinds = [(x.kind, x.element) for x in browser_check._code_failures("p", blocks)]
    assert kinds == [("nbval-comment", "pre[1]"), ("wide-code", "pre[1]")]
    images = [
        {"src": "a.png", "ok": True, "natural": 2000, "shown": 688, "visible": True},
        {"src": "b.png", "ok": True, "natural": 1200, "shown": 688, "visible": True},
        {"src": "c.png", "ok": False, "natural": 0, "shown": 0, "visible": True},
    ]
    kinds = [(x.kind, x.element) for x in browser_check._image_failures("p", images)]
    assert kinds == [("narrow-figure", "img[1]"), ("unloaded-image", "img[3]")]
