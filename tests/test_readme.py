"""The README's usage example runs as printed (a reader's first contact with the package)."""

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no python example"
    torch.manual_seed(0)
    exec(compile(blocks[0], str(README), "exec"), {})
    lines = capsys.readouterr().out.split()
    ap2, ap3_iso = float(lines[0]), float(lines[1])
    assert ap3_iso == pytest.approx(ap2 / (2 * 0.1**2), rel=1e-12)  # the comment's claim
