"""Bibliography labels that match the book's author-year citations.

sphinxcontrib-bibtex's ``author_year`` reference style cites a work in the text as
"Mozafari-Nia and Yasaei Sekeh [2024]", while pybtex's default ``alpha`` labels the same entry
"[MYS24]" in the bibliography. This Sphinx extension registers the pybtex formatting style
``author_year_labels``: the unsrt entry format (with its URL and DOI links), entries sorted by
author, year and title, and labels written as the text cites them:

- one author: ``Last, year``;
- two authors: ``Last and Last, year``;
- three or more: ``Last et al., year``;

with a letter appended (``2020a``, ``2020b``) where two entries would otherwise share a label.
Select it in ``_config.yml`` with ``bibtex_default_style: author_year_labels``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle

__all__ = ["AuthorYearLabelStyle", "AuthorYearStyle", "setup"]


def _plain(text: str) -> str:
    """Strip BibTeX braces and the simplest accents' backslashes from a name."""
    return re.sub(r"[{}\\]", "", text)


def _author_part(entry: Any) -> str:
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not names:
        return _plain(entry.fields.get("title", entry.key))[:20]
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels ``Author, year`` / ``A and B, year`` / ``A et al., year`` (see the module docstring)."""

    def format_labels(self, sorted_entries: Iterable[Any]) -> Iterator[str]:
        entries = list(sorted_entries)
        base = [f"{_author_part(e)}, {e.fields.get('year', 'n.d.')}" for e in entries]
        counts = Counter(base)
        seen: Counter[str] = Counter()
        for label in base:
            if counts[label] > 1:
                suffix = "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1
                label = label + suffix
            yield label


class AuthorYearStyle(UnsrtStyle):
    """pybtex's unsrt entries, sorted by author/year/title, with author-year labels."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = "author_year_title"


def setup(app: Any) -> dict[str, Any]:
    """Sphinx hook: register the pybtex style ``author_year_labels``."""
    register_plugin("pybtex.style.formatting", "author_year_labels", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
