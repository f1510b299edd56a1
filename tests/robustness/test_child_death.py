"""Children that die abruptly: exit codes, and nothing left unreaped."""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path
from typing import Any

import pytest

import _targets
from _support import pid_exists, read_when_present, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name
)
def test_child_killing_itself_reports_negative_signal(ctx: Any, signum: int) -> None:
    p = ctx.Process(target=_targets.kill_self, args=(signum,))
    p.start()
    p.join()
    assert p.exitcode == -signum


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR2], ids=lambda s: s.name
)
def test_child_killed_from_outside_reports_negative_signal(
    ctx: Any, tmp_path: Path, signum: int
) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=_targets.write_ready_and_sleep, args=(str(ready),))
    p.start()
    read_when_present(ready)
    os.kill(p.pid, signum)
    p.join()
    assert p.exitcode == -signum


def test_os_exit_three(ctx: Any) -> None:
    p = ctx.Process(target=_targets.os_exit, args=(3,))
    p.start()
    p.join()
    assert p.exitcode == 3


def test_no_zombie_after_join(ctx: Any) -> None:
    p = ctx.Process(target=_targets.noop)
    p.start()
    pid = p.pid
    p.join()
    assert p.exitcode == 0
    assert not pid_exists(pid), f"child {pid} is still in /proc after join()"


def test_no_zombie_after_kill_and_join(ctx: Any, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=_targets.write_ready_and_sleep, args=(str(ready),))
    p.start()
    read_when_present(ready)
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    assert not pid_exists(p.pid)


def test_no_zombie_after_is_alive(ctx: Any) -> None:
    p = ctx.Process(target=_targets.exit_with, args=(7,))
    p.start()
    assert select.select([p.sentinel], [], [], 60)[0] == [p.sentinel]
    # The sentinel may fire a moment before the child can be reaped.
    assert wait_until(lambda: not p.is_alive())
    assert p.exitcode == 7
    assert not pid_exists(p.pid)
