"""Open built book pages in headless Chromium (Debian's /usr/bin/chromium) and check what a reader sees:
equations rendered by the vendored MathJax (no raw TeX left), every <img> loaded (naturalWidth > 0),
and save a screenshot per page.

Usage: python tests/browser_check.py _build/html OUTDIR page [page ...]   (pages relative to the html dir)
Needs `pip install playwright` and Chromium from the Debian package (`apt-get install chromium`);
Playwright's own browser download is not used (it cannot be fetched offline).
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

RAW_TEX_JS = r"""() => {
  // text outside rendered math that still looks like TeX delimiters or commands
  const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
  const bad = [];
  while (walker.nextNode()) {
    const n = walker.currentNode, p = n.parentElement;
    if (!p || p.closest('mjx-container, pre, code, script, style, .highlight, .output')) continue;
    const t = n.textContent;
    if (/\\\(|\\\[|\$\$|\\frac|\\mathrm|\\lVert|\\mathcal/.test(t)) bad.push(t.trim().slice(0, 80));
  }
  return bad;
}"""


def check_page(page, url: str, shot: Path) -> list[str]:
    problems = []
    page.goto(url)
    page.wait_for_load_state("load")
    has_mathjax = page.evaluate("() => !!(window.MathJax && MathJax.startup && MathJax.startup.promise)")
    if has_mathjax:
        page.evaluate("() => MathJax.startup.promise")
    n_math = page.evaluate("() => document.querySelectorAll('mjx-container svg').length")
    raw = page.evaluate(RAW_TEX_JS)
    imgs = page.evaluate("() => Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0])")
    broken = [src for src, ok in imgs if not ok]
    page.screenshot(path=str(shot), full_page=False)
    print(f"{url}: mathjax={'yes' if has_mathjax else 'NO'}, {n_math} equations rendered, "
          f"{len(imgs)} images ({len(broken)} broken), raw TeX fragments: {len(raw)} -> {shot}")
    if not has_mathjax:
        problems.append(f"{url}: MathJax did not load")
    if raw:
        problems.append(f"{url}: raw TeX left on the page: {raw[:3]}")
    if broken:
        problems.append(f"{url}: images not loaded: {broken}")
    return problems


def main(html_dir: str, out_dir: str, pages: list[str]) -> int:
    html, out = Path(html_dir).resolve(), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        for rel in pages:
            target = html / rel
            if not target.exists():
                problems.append(f"missing page {target}")
                continue
            problems += check_page(page, target.as_uri(), out / (rel.replace("/", "_") + ".png"))
        browser.close()
    for pr in problems:
        print("PROBLEM:", pr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
