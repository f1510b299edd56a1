"""Functions that resource-tracker tests run in child processes (importable by spawn)."""

from __future__ import annotations

import importlib
from typing import Any

from _support import MODULE_NAME

resource_tracker = importlib.import_module(f"{MODULE_NAME}.resource_tracker")
shared_memory = importlib.import_module(f"{MODULE_NAME}.shared_memory")


def report_tracker(conn: Any, parent_tracker_pid: int) -> None:
    """Sends whether this child uses its parent's tracker (CPython's reuse check)."""
    tracker = resource_tracker._resource_tracker
    tracker.ensure_running()
    reused = tracker._pid in (None, parent_tracker_pid) and tracker._check_alive()
    conn.send(reused)
    conn.close()


def create_segment(conn: Any, payload: bytes) -> None:
    """Creates a segment holding ``payload``, sends its name and exits without unlinking."""
    shm = shared_memory.SharedMemory(create=True, size=len(payload))
    shm.buf[: len(payload)] = payload
    conn.send(shm.name)
    conn.close()
    shm.close()
