#!/usr/bin/env bash
# Builds ferroproc and installs it into .venv, creating the venv and the tools on first use.
#
# Idempotent: a second run reuses the venv and the installed tools and rebuilds the wheel
# (cargo's incremental cache makes that quick). Needs Rust stable, CPython >= 3.9 with
# pip and venv, and access to PyPI and crates.io on first use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

# Tools for building, testing and linting. Bounds keep lint output stable across machines.
TOOLS=(
    "maturin>=1.5,<2"
    "pytest>=7"
    "pytest-timeout>=2.1"
    "ruff>=0.5,<0.18"
    "mypy>=1.10"
    # Optional at run time (imported lazily); the tests use it to check that NumPy arrays
    # cross queues out of band and arrive writable.
    "numpy"
    # Optional too: the pool's progress bars, and lambdas sent to pool workers.
    "tqdm"
    "cloudpickle"
)

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust stable" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || { echo "setup: $PYTHON is older than 3.9" >&2; exit 1; }

if [[ ! -x $VENV/bin/python ]]; then
    echo "setup: creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi

echo "setup: installing tools into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${TOOLS[@]}"

echo "setup: building the wheel (release)"
rm -rf dist
"$VENV/bin/maturin" build --release --quiet -o dist --interpreter "$VENV/bin/python"

echo "setup: installing $(basename dist/ferroproc-*.whl)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --force-reinstall --no-deps dist/ferroproc-*.whl
