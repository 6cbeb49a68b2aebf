"""Render the three benchmark chapters from one template, ``book/_templates/benchmark.md``.

The template is a list of cells, each opened by a line ``+++ <markdown|code> [only=first|others]
[tags=a,b]``; ``{{name}}`` placeholders are filled per network from :data:`NETWORKS`. A cell marked
``only=first`` appears in the first chapter only (the stand-in images are shown once in the book).
``python book/render_benchmarks.py`` rewrites ``book/{alexnet,vgg16,resnet50}.ipynb`` (sources
only: execute them afterwards); ``tests/test_benchmark_chapters.py`` checks that the stored
notebooks' sources equal the rendered template, so a chapter is never edited by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "_templates" / "benchmark.md"
ORDER = ("alexnet", "vgg16", "resnet50")
_CHAPTERS = "{doc}`AlexNet <alexnet>`, {doc}`VGG16 <vgg16>` and {doc}`ResNet50 <resnet50>`"

#: Per-network values of the template's placeholders.
NETWORKS: dict[str, dict[str, str]] = {
    "alexnet": {
        "Net": "AlexNet",
        "cite": "krizhevsky2012imagenet",
        "layer": "classifier.6",
    },
    "vgg16": {
        "Net": "VGG16",
        "cite": "simonyan2015very",
        "layer": "classifier.6",
    },
    "resnet50": {
        "Net": "ResNet50",
        "cite": "he2016deep",
        "layer": "fc",
    },
}
_HEADER = re.compile(r"^\+\+\+ (markdown|code)((?: [a-z]+=[^ ]+)*)\s*$")
_KERNEL = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def _values(network: str) -> dict[str, str]:
    v = dict(NETWORKS[network], net=network)
    first = network == ORDER[0]
    v["others"] = (
        f"The {_CHAPTERS} chapters are rendered from one template, so they differ only in their "
        "data; this first one also shows the data."
        if first
        else f"The {_CHAPTERS} chapters are rendered from one template, so they differ only in "
        "their data; the first one shows the data."
    )
    v["seealso"] = f"Compare with the other benchmark chapters ({_CHAPTERS})."
    return v


def parse_template(text: str) -> list[dict]:
    """The template's cells: ``{"cell_type", "only", "tags", "source"}`` in order."""
    cells: list[dict] = []
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            opts = dict(o.split("=", 1) for o in m.group(2).split())
            cells.append(
                {
                    "cell_type": m.group(1),
                    "only": opts.get("only"),
                    "tags": [t for t in opts.get("tags", "").split(",") if t],
                    "lines": [],
                }
            )
        elif cells:
            cells[-1]["lines"].append(line)
        elif line.strip():
            raise ValueError(f"template text before the first '+++' cell header: {line!r}")
    for c in cells:
        c["source"] = "\n".join(c.pop("lines")).strip("\n")
    return cells


def render(network: str, template: str | None = None) -> nbformat.NotebookNode:
    """The chapter of ``network`` (a key of :data:`NETWORKS`) as an unexecuted notebook."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected one of {sorted(NETWORKS)}")
    text = TEMPLATE.read_text() if template is None else template
    values = _values(network)
    first = network == ORDER[0]
    nb = nbformat.v4.new_notebook(metadata=_KERNEL)
    for i, c in enumerate(parse_template(text)):
        if (c["only"] == "first" and not first) or (c["only"] == "others" and first):
            continue
        source = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], c["source"])
        new = nbformat.v4.new_markdown_cell if c["cell_type"] == "markdown" else nbformat.v4.new_code_cell
        cell = new(source, id=f"{network}-{i:02d}")
        if c["tags"]:
            cell.metadata["tags"] = list(c["tags"])
        nb.cells.append(cell)
    return nb


def main(argv: list[str] | None = None) -> int:
    """Write the rendered chapters (all, or the networks named in ``argv``) into ``book/``."""
    names = list(argv or ORDER)
    for net in names:
        path = HERE / f"{net}.ipynb"
        nbformat.write(render(net), path)
        print(f"rendered {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
