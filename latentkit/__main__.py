"""``python -m latentkit ...``: see :mod:`latentkit.cli`."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
