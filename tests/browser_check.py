"""Open the built book in headless Chromium (Debian's /usr/bin/chromium) and check what a reader sees.

Every page of the table of contents (``_toc.yml``) is opened at a 1280 x 1600 viewport, unless pages
are named on the command line. A page fails on

* ``mathjax``: the page has math but the vendored MathJax did not load;
* ``raw-tex``: text outside rendered math that still looks like TeX (``\\frac``, ``$$``, ...);
* ``unloaded-image``: an ``<img>`` that did not load (``naturalWidth == 0``);
* ``narrow-figure``: a figure displayed at less than half its native width
  (``clientWidth < 0.5 * naturalWidth``): its labels are then too small to read;
* ``nbval-comment``: a visible code cell that shows a test-harness comment (``# NBVAL_...``);
* ``wide-code``: a visible code block that scrolls horizontally (``scrollWidth > clientWidth + 1``
  of a ``<pre>``), i.e. a line wider than the column.

Screenshots of the intro, the paper summary, the fine-tuning chapter and one benchmark chapter go
to OUTDIR (the first screen of each page, ``book_intro.html.png`` ...).

Known failures: ``--allow-known FILE`` reads one failure key per line (``page kind element``, e.g.
``book/theory.html narrow-figure img[1]``; text after `` #`` and blank lines are ignored). A
failure whose key is listed is reported as known and does not fail the run; a listed key that no
longer fails is reported as stale, so the entry can be removed.

Usage: python tests/browser_check.py _build/html OUTDIR [--allow-known FILE] [page ...]
(pages relative to the html dir; default: every toc page). Needs ``pip install playwright`` and
Chromium from the Debian package (``apt-get install chromium``); Playwright's own browser download
is not used (it cannot be fetched offline).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_book import toc_files

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ("book/intro.html", "book/paper.html", "book/finetuning.html", "book/alexnet.html")
VIEWPORT = {"width": 1280, "height": 1600}

RAW_TEX_JS = r"""() => {
  // text outside rendered math that still looks like TeX delimiters or commands
  const root = document.querySelector('main') || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const bad = [];
  while (walker.nextNode()) {
    const n = walker.currentNode, p = n.parentElement;
    if (!p || p.closest('mjx-container, pre, code, script, style, .highlight, .output')) continue;
    const t = n.textContent;
    if (/\\\(|\\\[|\$\$|\\frac|\\mathrm|\\lVert|\\mathcal/.test(t)) bad.push(t.trim().slice(0, 80));
  }
  return bad;
}"""

# Images of the page body (not the logo or the navigation), forced to load now.
LOAD_IMAGES_JS = r"""async () => {
  const imgs = Array.from(document.querySelectorAll('main img, article img'));
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000);
  })));
  return imgs.length;
}"""

IMAGES_JS = r"""() => Array.from(document.querySelectorAll('main img, article img')).map(i => ({
  src: i.getAttribute('src') || '', ok: i.complete && i.naturalWidth > 0,
  natural: i.naturalWidth, shown: i.getBoundingClientRect().width,
  visible: i.offsetParent !== null}))"""

PRE_JS = r"""() => Array.from(document.querySelectorAll('main pre, article pre')).map(p => ({
  visible: p.offsetParent !== null && p.clientWidth > 0,
  scroll: p.scrollWidth, client: p.clientWidth,
  nbval: /#\s*NBVAL/i.test(p.textContent),
  input: !!p.closest('.cell_input, .highlight'),
  head: p.textContent.trim().split('\n')[0].slice(0, 60)}))"""


@dataclass(frozen=True)
class Failure:
    """One problem on one page: ``key`` (page, kind, element) identifies it, ``detail`` measures it."""

    page: str
    kind: str
    element: str
    detail: str

    @property
    def key(self) -> str:
        return f"{self.page} {self.kind} {self.element}"


def _image_failures(rel: str, images: list[dict]) -> list[Failure]:
    out = []
    for k, im in enumerate(images, start=1):
        name = im["src"].rsplit("/", 1)[-1]
        if not im["ok"]:
            out.append(Failure(rel, "unloaded-image", f"img[{k}]", f"{name} did not load"))
        elif im["visible"] and im["shown"] < 0.5 * im["natural"]:
            ratio = im["shown"] / im["natural"]
            detail = f"{name}: shown {im['shown']:.0f} px of native {im['natural']} px ({ratio:.0%})"
            out.append(Failure(rel, "narrow-figure", f"img[{k}]", detail))
    return out


def _code_failures(rel: str, blocks: list[dict]) -> list[Failure]:
    out = []
    for k, b in enumerate(blocks, start=1):
        if not b["visible"]:
            continue
        if b["nbval"]:
            out.append(Failure(rel, "nbval-comment", f"pre[{k}]", f"code starting {b['head']!r}"))
        if b["scroll"] > b["client"] + 1:
            detail = f"scrollWidth {b['scroll']} px > clientWidth {b['client']} px: {b['head']!r}"
            out.append(Failure(rel, "wide-code", f"pre[{k}]", detail))
    return out


def check_page(page: Page, rel: str, url: str, shot: Path | None) -> list[Failure]:
    """Load ``url`` and return its failures (see the module docstring); screenshot it to ``shot``."""
    page.goto(url)
    page.wait_for_load_state("load")
    has_mathjax = page.evaluate("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)")
    if has_mathjax:
        page.evaluate("() => MathJax.startup.promise")
    page.evaluate(LOAD_IMAGES_JS)
    n_math = page.evaluate("() => document.querySelectorAll('mjx-container svg').length")
    needs_math = page.evaluate("() => !!document.querySelector('.math')")
    raw = page.evaluate(RAW_TEX_JS)
    images, blocks = page.evaluate(IMAGES_JS), page.evaluate(PRE_JS)
    failures = (
        [Failure(rel, "mathjax", "page", "MathJax did not load")] if needs_math and not has_mathjax else []
    )
    failures += [Failure(rel, "raw-tex", "page", f"{len(raw)} fragments, e.g. {raw[:3]}")] if raw else []
    failures += _image_failures(rel, images) + _code_failures(rel, blocks)
    if shot is not None:
        page.screenshot(path=str(shot), full_page=False)
    print(
        f"{rel}: mathjax={'yes' if has_mathjax else 'NO'}, {n_math} equations, {len(images)} images, "
        f"{len(blocks)} code blocks, {len(failures)} problems" + (f" -> {shot}" if shot else "")
    )
    return failures


def read_known(path: str | None) -> set[str]:
    """The failure keys listed in ``path`` (one per line; `` #`` starts a comment)."""
    if path is None:
        return set()
    keys = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key = " ".join(line.split(" #", 1)[0].split())
        if key and not key.startswith("#"):
            keys.add(key)
    return keys


def default_pages(root: Path) -> list[str]:
    """Every page of the table of contents, as paths relative to the html dir."""
    return [f"{doc}.html" for doc in toc_files(root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir")
    parser.add_argument("out_dir")
    parser.add_argument("pages", nargs="*", help="pages relative to html_dir (default: every toc page)")
    parser.add_argument("--allow-known", metavar="FILE", help="known failures, one key per line")
    args = parser.parse_intermixed_args(argv)
    html, out = Path(args.html_dir).resolve(), Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = args.pages or default_pages(Path(__file__).resolve().parents[1])
    known = read_known(args.allow_known)
    failures: list[Failure] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport=VIEWPORT)
        for rel in pages:
            target = html / rel
            if not target.exists():
                failures.append(Failure(rel, "missing-page", "page", f"{target} not found"))
                continue
            shot = out / (rel.replace("/", "_") + ".png") if rel in SCREENSHOTS else None
            failures += check_page(page, rel, target.as_uri(), shot)
        browser.close()
    new = [f for f in failures if f.key not in known]
    for f in failures:
        print(("KNOWN:  " if f.key in known else "PROBLEM: ") + f"{f.key}  # {f.detail}")
    checked = set(pages)
    for key in sorted(k for k in known - {f.key for f in failures} if k.split(" ", 1)[0] in checked):
        print(f"STALE (no longer fails; remove from the known list): {key}")
    print(f"[browser_check] {len(pages)} pages, {len(failures)} problems, {len(new)} not known")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
