"""Helpers shared by the synchronisation tests: starting, finishing and watching children."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from _support import DEADLINE, wait_until


def start(ctx: Any, target: Callable[..., object], *args: Any) -> Any:
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def finish(p: Any, timeout: float = DEADLINE) -> int:
    """Joins ``p`` and returns its exit code; kills it (and fails) if it does not exit."""
    p.join(timeout)
    if p.exitcode is None:
        p.kill()
        p.join()
        pytest.fail(f"{p!r} did not exit within {timeout} s")
    return int(p.exitcode)


def process_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (``S``: sleeping in a wait)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]


def wait_blocked(p: Any) -> None:
    """Waits until child ``p``, which said it is about to block, sleeps in the kernel.

    The child sets a ready event right before its blocking call and does nothing else
    in between, so once it sleeps it is inside that call.
    """
    assert wait_until(lambda: process_state(p.pid) == "S"), f"{p!r} never blocked"
