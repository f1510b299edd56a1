"""The resource tracker: ``resource_tracker`` and the cleanup of leaked shared memory.

The tracker of this (pytest) process is started by the first test that needs it and lives
until pytest exits, as in CPython's own suite; a test that kills it starts a new one.
Scenarios that need a program to exit run as scripts in fresh interpreters; they take the
module under test's submodules from ``_tracker_targets``.
"""

from __future__ import annotations

import importlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

import _tracker_targets
from _support import IS_STDLIB, MODULE_NAME, mp, pid_alive, pid_exists, wait_until

pytestmark = pytest.mark.timeout(120)

resource_tracker: Any = importlib.import_module(f"{MODULE_NAME}.resource_tracker")
shared_memory: Any = importlib.import_module(f"{MODULE_NAME}.shared_memory")

LEAK_WARNING = "resource_tracker: There appear to be 1 leaked shared_memory objects"


def shm_exists(name: str) -> bool:
    return os.path.exists("/dev/shm/" + name.lstrip("/"))


def ignored_signals(pid: int) -> int:
    """The mask of signals ``pid`` ignores (``SigIgn`` in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


@pytest.fixture
def tracker() -> Any:
    """This process's tracker, running."""
    rt = resource_tracker._resource_tracker
    rt.ensure_running()
    return rt


def test_module_surface() -> None:
    for name in ("ensure_running", "register", "unregister", "getfd", "main"):
        assert callable(getattr(resource_tracker, name)), name
    assert isinstance(resource_tracker._resource_tracker, resource_tracker.ResourceTracker)
    assert {"noop", "shared_memory"} <= set(resource_tracker._CLEANUP_FUNCS)
    assert set(resource_tracker.__all__) == {"ensure_running", "register", "unregister"}


def test_getfd_runs_a_tracker(tracker: Any) -> None:
    fd = resource_tracker.getfd()
    assert fd == tracker._fd and fd is not None
    assert tracker._check_alive()
    assert pid_alive(tracker._pid)


def test_too_long_name_is_refused(tracker: Any) -> None:
    rtype = "shared_memory"
    with pytest.raises(ValueError):
        resource_tracker.register("a" * (512 - len(rtype)), rtype)
    # The tracker is unharmed.
    assert tracker._check_alive()


def test_children_share_the_tracker(ctx: Any, tracker: Any) -> None:
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_tracker_targets.report_tracker, args=(w, tracker._pid))
    p.start()
    w.close()
    try:
        assert r.poll(60), "the child did not answer"
        assert r.recv() is True
    finally:
        p.join(60)
        r.close()
    assert p.exitcode == 0


def test_segment_made_by_a_child_outlives_the_child(ctx: Any, tracker: Any) -> None:
    # The child registers with the tracker it shares with this process, which keeps the
    # segment until this process unlinks it.
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_tracker_targets.create_segment, args=(w, b"made by a child"))
    p.start()
    w.close()
    assert r.poll(60), "the child did not answer"
    name = r.recv()
    r.close()
    p.join(60)
    assert p.exitcode == 0
    shm = shared_memory.SharedMemory(name)
    try:
        assert bytes(shm.buf[:15]) == b"made by a child"
    finally:
        shm.close()
        shm.unlink()
    assert not shm_exists(name)


def test_tracker_ignores_sigint_and_sigterm(tracker: Any) -> None:
    pid = tracker._pid
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    assert wait_until(lambda: ignored_signals(pid) & wanted == wanted), "signals not ignored"
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    assert pid_alive(pid)
    assert tracker._check_alive()


def test_sigkilled_tracker_is_restarted(tracker: Any) -> None:
    old = tracker._pid
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(old))
    with pytest.warns(UserWarning, match="resource_tracker: process died unexpectedly"):
        tracker.ensure_running()
    assert tracker._pid != old
    assert tracker._check_alive()
    assert not pid_exists(old), "the dead tracker was not reaped"
    # The new tracker works: a registered segment is tracked, an unlinked one forgotten.
    shm = shared_memory.SharedMemory(create=True, size=8)
    shm.close()
    shm.unlink()


def test_cleanup_funcs_unlink_a_segment_by_name(tracker: Any) -> None:
    shm = shared_memory.SharedMemory(create=True, size=8)
    shm.close()
    name = shm._name
    resource_tracker.unregister(name, "shared_memory")
    resource_tracker._CLEANUP_FUNCS["shared_memory"](name)
    assert not shm_exists(name)
    with pytest.raises(FileNotFoundError):
        resource_tracker._CLEANUP_FUNCS["shared_memory"](name)


# Scripts: programs that exit, leaving the tracker to clean up after them.

LEAK = """
from _tracker_targets import resource_tracker, shared_memory

shm = shared_memory.SharedMemory(create=True, size=16)
print(shm.name, resource_tracker._resource_tracker._pid, flush=True)
"""


def test_leaked_segment_is_unlinked_when_the_program_exits(scripts: Any) -> None:
    result = scripts.run(LEAK)
    assert result.returncode == 0, result
    name, pid = result.stdout.split()
    assert wait_until(lambda: not shm_exists(name)), "the leaked segment is still there"
    assert wait_until(lambda: not pid_alive(int(pid))), "the tracker outlived the program"
    assert LEAK_WARNING in result.stderr


UNREGISTER = """
from _tracker_targets import resource_tracker, shared_memory

shm = shared_memory.SharedMemory(create=True, size=16)
resource_tracker.unregister(shm._name, "shared_memory")
print(shm.name, resource_tracker._resource_tracker._pid, flush=True)
"""


def test_unregistered_segment_is_left_alone(scripts: Any) -> None:
    result = scripts.run(UNREGISTER)
    assert result.returncode == 0, result
    name, pid = result.stdout.split()
    try:
        assert wait_until(lambda: not pid_alive(int(pid)))
        assert shm_exists(name), "an unregistered segment was unlinked"
        assert "leaked" not in result.stderr, result
    finally:
        resource_tracker._CLEANUP_FUNCS["shared_memory"](name)


UNLINK = """
from _tracker_targets import shared_memory

shm = shared_memory.SharedMemory(create=True, size=16)
lst = shared_memory.ShareableList([1, "two", None])
shm.close()
shm.unlink()
lst.shm.close()
lst.shm.unlink()
print(shm.name, lst.shm.name, flush=True)
"""


def test_unlinked_segments_are_not_reported(scripts: Any) -> None:
    result = scripts.run(UNLINK)
    assert result.returncode == 0, result
    for name in result.stdout.split():
        assert not shm_exists(name)
    assert "resource_tracker" not in result.stderr, result


SHAREABLE_LIST = """
from _tracker_targets import shared_memory

lst = shared_memory.ShareableList([1, 2.5, b"three"])
print(lst.shm.name, flush=True)
"""


def test_leaked_shareable_list_is_unlinked(scripts: Any) -> None:
    result = scripts.run(SHAREABLE_LIST)
    assert result.returncode == 0, result
    name = result.stdout.strip()
    assert wait_until(lambda: not shm_exists(name))
    assert LEAK_WARNING in result.stderr


BAD_MESSAGES = """
import os
from _tracker_targets import resource_tracker, shared_memory

fd = resource_tracker.getfd()
os.write(fd, b"garbage\\n")
os.write(fd, b"REGISTER:x:no_such_type\\n")
os.write(fd, b"UNREGISTER:a:b:c:shared_memory\\n")
shm = shared_memory.SharedMemory(create=True, size=16)
print(shm.name, flush=True)
"""


def test_bad_messages_do_not_stop_the_tracker(scripts: Any) -> None:
    result = scripts.run(BAD_MESSAGES)
    assert result.returncode == 0, result
    name = result.stdout.strip()
    assert wait_until(lambda: not shm_exists(name)), result
    assert LEAK_WARNING in result.stderr, result


ATTACH = """
import sys
from _tracker_targets import shared_memory

shm = shared_memory.SharedMemory(sys.argv[1])
print(bytes(shm.buf[:5]).decode(), flush=True)
shm.close()
"""


@pytest.mark.ferroproc_only
def test_attaching_never_unlinks_someone_elses_segment(scripts: Any, tracker: Any) -> None:
    # The stdlib (before 3.13) registers attached segments too, so a program that only
    # attached unlinks them when it exits (gh-82300).
    shm = shared_memory.SharedMemory(create=True, size=16)
    try:
        shm.buf[:5] = b"hello"
        result = scripts.run(ATTACH, shm.name)
        assert result.returncode == 0, result
        assert result.stdout.strip() == "hello"
        assert "resource_tracker" not in result.stderr, result
        assert shm_exists(shm.name)
    finally:
        shm.close()
        shm.unlink()


FOLDER = """
import os, sys
from _tracker_targets import resource_tracker

os.makedirs(os.path.join(sys.argv[1], "inner"))
open(os.path.join(sys.argv[1], "inner", "file"), "w").close()
resource_tracker.register(sys.argv[1], "folder")
"""


@pytest.mark.ferroproc_only
def test_leaked_folder_is_removed(scripts: Any, tmp_path: Path) -> None:
    folder = tmp_path / "leaked"
    result = scripts.run(FOLDER, str(folder))
    assert result.returncode == 0, result
    assert wait_until(lambda: not folder.exists())
    assert "1 leaked folder objects" in result.stderr


@pytest.mark.skipif(IS_STDLIB, reason="the stdlib's tracker keeps the program's stdout")
def test_tracker_does_not_hold_the_programs_stdout(scripts: Any) -> None:
    # A reader of the program's stdout sees its end when the program exits, even if the
    # tracker is still cleaning up.
    proc = scripts.start(LEAK)
    assert proc.stdout.readline()
    assert proc.stdout.read() == ""
    assert proc.wait(60) == 0
    assert mp is not None
