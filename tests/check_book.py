"""Check a built book: every page of the table of contents has a source and a built page, and
chapters that draw figures show them (an <img> per figure, each file present).

Usage: python tests/check_book.py _build/html"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml


def toc_files(root: Path) -> list[str]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    files += [c["file"] for c in toc.get("chapters", [])]
    return files


def expected_figures(root: Path, doc: str) -> int:
    nb = root / f"{doc}.ipynb"
    if not nb.exists():
        return 0
    cells = json.loads(nb.read_text())["cells"]
    return sum(1 for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


#: A glued object shown by its repr (e.g. a Markdown object through {glue:text}), not its content.
_REPR = re.compile(r"&lt;(?:IPython|matplotlib|pandas)[\w.]* (?:object|Figure)[^&]*&gt;")


def main(html_dir: str) -> int:
    html = Path(html_dir)
    root = Path(__file__).resolve().parents[1]
    problems = []
    for doc in toc_files(root):
        if not any((root / f"{doc}{ext}").exists() for ext in (".md", ".ipynb")):
            problems.append(f"toc entry {doc} has no source ({doc}.md or {doc}.ipynb)")
        page = html / f"{doc}.html"
        if not page.exists():
            problems.append(f"missing page {page}")
            continue
        text = page.read_text(encoding="utf-8")
        imgs = re.findall(r'<img[^>]+src="([^"]+)"', text)
        missing = [s for s in imgs if not s.startswith(("http", "data:")) and not (page.parent / s).exists()]
        if missing:
            problems.append(f"{page}: images not found: {missing}")
        reprs = sorted(set(_REPR.findall(text)))
        if reprs:
            problems.append(f"{page}: objects rendered by their repr, not their content: {reprs}")
        want = expected_figures(root, doc)
        if len(imgs) < want:
            problems.append(f"{page}: {len(imgs)} images, expected at least {want}")
        print(f"{doc}: page ok, {len(imgs)} images")
    if not (html / "mathjax" / "tex-svg.js").exists():
        problems.append("offline MathJax missing from the build (html_extra_path)")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_build/html"))
