"""A blocked ``join()`` lets Python signal handlers run, and their exceptions escape it."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import _targets
from _support import Interrupted, read_when_present

pytestmark = pytest.mark.timeout(120)


@pytest.mark.usefixtures("sigusr1_raises")
@pytest.mark.parametrize("timeout", [None, 90.0])
def test_signal_handler_exception_escapes_join(
    ctx: Any, tmp_path: Path, timeout: float | None
) -> None:
    ready = tmp_path / "ready"
    # The child outlives the test's patience: if join() were deaf to signals it would
    # return only when the child does, and the test would fail with "DID NOT RAISE".
    p = ctx.Process(target=_targets.write_ready_and_sleep, args=(str(ready), 60))
    p.start()
    read_when_present(ready)
    # Aim the signal at the main thread, where Python runs its handlers; it arrives
    # while the main thread is blocked in join().
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGUSR1))
    try:
        with pytest.raises(Interrupted):
            timer.start()
            p.join(timeout)
        # The wait was interrupted, not the child.
        assert p.is_alive()
        assert p.exitcode is None
    finally:
        timer.cancel()
        timer.join()
        p.kill()
        p.join()
    assert p.exitcode == -signal.SIGKILL
