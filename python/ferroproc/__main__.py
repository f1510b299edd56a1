"""``python -m ferroproc``: the command-line entry point.

::

    python -m ferroproc bench [OPTIONS]   run the benchmarks (see ``bench --help``)
    python -m ferroproc script.py [ARGS]  run a script on ferroproc (not available yet)

A command is a name in ``COMMANDS`` mapped to a function taking the remaining words and
returning the exit status; anything else is taken for a script to run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Callable

USAGE = """\
usage: python -m ferroproc COMMAND [ARGS...]
       python -m ferroproc SCRIPT.py [ARGS...]   (not available yet)

commands:
  bench    run the benchmarks against the stdlib's multiprocessing
           (python -m ferroproc bench --help for its options, --list for the workloads)
"""


def _bench(argv: Sequence[str]) -> int:
    from ferroproc.bench.cli import main

    return main(argv)


#: Subcommands: name -> function(remaining argv) -> exit status.
COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"bench": _bench}


def run_script(argv: Sequence[str]) -> int:
    """Run ``argv[0]`` as a script on ferroproc: not available yet, so say so (exit 2)."""
    print(
        f"python -m ferroproc: cannot run {argv[0]!r}: running scripts on ferroproc is not"
        " available yet (the only command is 'bench'; see python -m ferroproc --help)",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``python -m ferroproc`` to a command or a script; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    command = COMMANDS.get(args[0])
    if command is not None:
        return command(args[1:])
    return run_script(args)


if __name__ == "__main__":
    sys.exit(main())
