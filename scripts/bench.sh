#!/usr/bin/env bash
# Builds and installs ferroproc, then runs the side-by-side benchmark against the stdlib.
# Extra arguments go to `python -m ferroproc bench`, e.g. `scripts/bench.sh --only process_start`.
# With --peers it first installs the peer libraries into .venv; one that will not install
# (no network, no wheel) is only left out of the comparison, and the report says so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Peer libraries (PyPI names) compared with --peers.
PEERS=(
    "faster-fifo"
    "loky"
    "mpire"
    "joblib"
    "UltraDict"
    "atomics" # not a peer: UltraDict(shared_lock=True) needs it
    "shared-memory-dict"
)

scripts/setup.sh
for arg in "$@"; do
    if [[ $arg == --peers ]]; then
        for peer in "${PEERS[@]}"; do
            .venv/bin/python -m pip install --quiet --disable-pip-version-check "$peer" \
                || echo "bench: could not install the peer $peer; its rows will be skipped" >&2
        done
        break
    fi
done
exec .venv/bin/python -m ferroproc bench --quick "$@"
