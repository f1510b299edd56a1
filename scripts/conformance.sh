#!/usr/bin/env bash
# Runs the classes of CPython's own multiprocessing test suite that pass on ferroproc
# (listed in tests/conformance/<start method>.txt, one class per line), so that a
# regression in any of them fails the build. The runner is the project's shared harness
# (../shared/conformance, see its README); usage: scripts/conformance.sh [fork|spawn|forkserver]
set -euo pipefail
cd "$(dirname "$0")/.."

METHOD="${1:-fork}"
PY="${PY:-.venv/bin/python}"
LIST="tests/conformance/$METHOD.txt"

RUNNER=""
for dir in "${FERROPROC_CONFORMANCE:-}" ../shared/conformance /work/shared/conformance; do
    if [[ -n "$dir" && -f "$dir/run.py" ]]; then
        RUNNER="$dir/run.py"
        break
    fi
done
if [[ -z "$RUNNER" ]]; then
    echo "conformance: the shared runner (../shared/conformance/run.py) is not on this" \
        "machine; set FERROPROC_CONFORMANCE to its folder. Skipped." >&2
    exit 0
fi

classes=$(grep -v '^\s*\(#\|$\)' "$LIST" | paste -sd '|')
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# ferroproc as installed into the interpreter (scripts/setup.sh builds and installs it).
"$PY" "$RUNNER" --module ferroproc --public \
    --start-method "$METHOD" --only "^($classes)\$" --timeout-per-class 240 \
    --output "$OUT/results.json" --logs "$OUT/logs"
