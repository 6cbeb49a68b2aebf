"""Every public module of latentkit carries a runnable ``Examples`` section in its docstring.

One test per module: :func:`doctest.testmod` over the module (its docstring and those of the
names defined in it) must pass, and a public module (no ``_`` in its dotted name, not
``latentkit.__main__``) must have at least one example in its MODULE docstring, which is what the
API reference page shows first.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import latentkit

EXEMPT = {"latentkit.__main__"}  # running it would start the command line


def _modules() -> list[str]:
    names = ["latentkit"]
    for info in pkgutil.walk_packages(latentkit.__path__, prefix="latentkit."):
        names.append(info.name)
    return sorted(names)


def _public(name: str) -> bool:
    return name not in EXEMPT and not any(part.startswith("_") for part in name.split("."))


MODULES = [name for name in _modules() if name not in EXEMPT]


def test_modules_found():
    assert "latentkit.stats.tables" in MODULES
    assert "latentkit.__main__" not in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    if _public(name):
        examples = doctest.DocTestParser().get_examples(module.__doc__ or "")
        assert examples, f"{name}: the module docstring has no runnable '>>>' example"
        assert "Examples" in (module.__doc__ or ""), f"{name}: no 'Examples' section"
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=False, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} doctests failed"
