"""Every public module of latentkit carries a runnable ``Examples`` section in its docstring.

One test per module: :func:`doctest.testmod` over the module (its docstring and those of the
names defined in it) must pass, and a public module (no ``_`` in its dotted name, not
``latentkit.__main__``) must have at least one example in its MODULE docstring, which is what the
API reference page shows first.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import typing

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


def _documented(doc: str, name: str) -> bool:
    """``name`` has an entry (``name : type`` or ``name``) in the numpydoc Parameters section."""
    lines = doc.splitlines()
    heads = [i for i, line in enumerate(lines) if line.strip() == "Parameters"]
    if not heads:
        return False
    for line in lines[heads[0] + 2 :]:
        text = line.strip()
        if text in ("Returns", "Raises", "Attributes", "Examples", "Notes", "Yields", "See Also"):
            break
        names = text.split(" : ")[0].lstrip("*")
        if name in [n.strip().lstrip("*") for n in names.split(",")]:
            return True
    return False


def _any_params(obj) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values() if p.annotation in ("Any", typing.Any)]


def _api_objects(name: str):
    module = importlib.import_module(name)
    for attr in getattr(module, "__all__", ()):
        obj = getattr(module, attr)
        if getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj):
            yield f"{name}.{attr}", obj, obj
        elif inspect.isclass(obj):
            yield f"{name}.{attr}", obj, obj
            for meth, fn in vars(obj).items():
                fn = getattr(fn, "__func__", fn)
                if inspect.isfunction(fn) and not meth.startswith("_"):
                    yield f"{name}.{attr}.{meth}", fn, fn


@pytest.mark.parametrize("name", [n for n in MODULES if _public(n)])
def test_no_undescribed_any(name):
    """A parameter typed ``Any`` is described (the API page would show a bare "(Any)")."""
    missing = [
        f"{qual}({param})"
        for qual, obj, fn in _api_objects(name)
        for param in _any_params(fn)
        if not _documented(inspect.getdoc(obj) or "", param)
    ]
    assert not missing, f"parameters typed Any without a description: {missing}"
