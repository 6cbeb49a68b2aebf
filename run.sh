#!/usr/bin/env bash
# Set up and go, on a fresh machine with Python 3.11 and pip:
#   bash run.sh book   install everything, execute every chapter and build the HTML book (_build/html)
#   bash run.sh test   install everything, run the unit/property tests and nbval over every chapter
# The virtual environment is .venv (or $VENV); it is created once and reused.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[run.sh] creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
  fi
  # Installs only what is missing; a first install downloads torch (~2 min).
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements.txt
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
}

# pages the browser check opens (default: every page of _toc.yml; screenshots go to _build/screenshots);
# tests/browser_known.txt lists the known failures (one per line): only new ones fail the check
BROWSER_PAGES="${BROWSER_PAGES:-}"

check_pages() {   # every toc page exists with its figures; in Chromium, math rendered and images loaded
  "$VENV/bin/python" tests/check_book.py _build/html
  if [ -x /usr/bin/chromium ]; then   # Debian's chromium: apt-get install chromium
    "$VENV/bin/python" tests/browser_check.py --allow-known tests/browser_known.txt \
      _build/html _build/screenshots $BROWSER_PAGES
  else
    echo "[run.sh] /usr/bin/chromium not found: skipping the browser check (apt-get install chromium)"
  fi
}

case "${1:-}" in
  book)
    setup
    "$VENV/bin/jupyter-book" build --all -W --keep-going .
    check_pages
    echo "[run.sh] book built: _build/html/index.html"
    ;;
  test)
    setup
    shift || true
    if [ $# -eq 0 ]; then
      # The shape of the code: lint, formatting and the import layers (.importlinter) are part of the test.
      "$VENV/bin/ruff" check latentkit tests benchmarks
      "$VENV/bin/ruff" format --check latentkit tests benchmarks
      "$VENV/bin/lint-imports"
      # The HTML book from the chapters' stored outputs (nbval below proves they equal a fresh run),
      # so the chapters execute once, not twice; warnings are errors.
      mkdir -p _build
      "$VENV/bin/python" -c 'import yaml; c = yaml.safe_load(open("_config.yml")); c["execute"]["execute_notebooks"] = "off"; c["sphinx"]["local_extensions"] = {k: "../" + v for k, v in c["sphinx"].get("local_extensions", {}).items()}; yaml.safe_dump(c, open("_build/_config_stored.yml", "w"))'
      "$VENV/bin/jupyter-book" build --all -W --keep-going --config _build/_config_stored.yml . > _build/html_build.log 2>&1 \
        || { tail -40 _build/html_build.log; exit 1; }
      check_pages
    fi
    # One number, one value: the correlations every chapter quotes, recomputed from the results
    # the chapters computed, so the whole run takes it after them (a cold clone has no results at
    # collection).
    CROSS=tests/test_finetuning_chapter.py::test_quoted_correlations_one_value_across_chapters
    AFTER=""
    if [ $# -eq 0 ]; then set -- --deselect "$CROSS"; AFTER=1; fi
    "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile \
      --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg "$@"
    if [ -n "$AFTER" ]; then
      LATENTKIT_REQUIRE_RESULTS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$CROSS"
    fi
    ;;
  *)
    echo "usage: bash run.sh book | bash run.sh test [pytest args]" >&2
    exit 2
    ;;
esac
