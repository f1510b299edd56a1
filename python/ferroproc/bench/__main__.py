"""``python -m ferroproc.bench``: the same as ``python -m ferroproc bench``."""

from __future__ import annotations

import sys

from ferroproc.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
