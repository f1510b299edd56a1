#!/usr/bin/env bash
# Builds and installs ferroproc, then runs the side-by-side benchmark against the stdlib.
# Extra arguments go to `python -m ferroproc bench`, e.g. `scripts/bench.sh --only process_start`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
exec .venv/bin/python -m ferroproc bench --quick "$@"
