"""A segment whose creator is SIGKILLed lives on while its program does, then goes.

The process that created a ``SharedMemory`` registered it with the program's resource
tracker; killing the creator loses nothing: the segment stays usable (attached mappings
and new attachments alike) until every process sharing the tracker has exited, and then
the tracker unlinks it and exits itself. Each scenario runs as a program of its own (a
script and its children), since the test process would keep the tracker alive.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from _support import START_METHODS, pid_alive, wait_until

pytestmark = pytest.mark.timeout(120)


def shm_exists(name: str) -> bool:
    return os.path.exists("/dev/shm/" + name.lstrip("/"))


def ignored_signals(pid: int) -> int:
    """The mask of signals ``pid`` ignores (``SigIgn`` in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


CREATOR_KILLED = """
import sys
import threading

from _tracker_targets import resource_tracker, shared_memory


def create(conn):
    shm = shared_memory.SharedMemory(create=True, size=64)
    shm.buf[:7] = b"payload"
    conn.send(shm.name)
    threading.Event().wait()  # until SIGKILLed


def attach(name, conn):
    shm = shared_memory.SharedMemory(name)
    conn.send(bytes(shm.buf[:9]))
    shm.close()


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    # Forked children share a tracker only if it was started before they were forked
    # (spawn and fork-server children are always given their parent's).
    resource_tracker.ensure_running()
    r, w = ctx.Pipe(duplex=False)
    creator = ctx.Process(target=create, args=(w,))
    creator.start()
    name = r.recv()
    mine = shared_memory.SharedMemory(name)  # attached before the kill
    creator.kill()
    creator.join()
    assert creator.exitcode == -9, creator.exitcode
    # The mapping made before the kill still works...
    mine.buf[7:9] = b"!!"
    # ...and so does attaching by name afterwards.
    r2, w2 = ctx.Pipe(duplex=False)
    attacher = ctx.Process(target=attach, args=(name, w2))
    attacher.start()
    seen = r2.recv()
    attacher.join()
    mine.close()
    print(name, resource_tracker._resource_tracker._pid, seen.decode(), flush=True)
"""


@pytest.mark.parametrize("method", START_METHODS)
def test_segment_of_a_killed_creator_lives_until_the_program_ends(
    scripts: Any, method: str
) -> None:
    result = scripts.run(CREATOR_KILLED, method)
    assert result.returncode == 0, result
    name, tracker_pid, seen = result.stdout.split()
    assert seen == "payload!!", result
    assert wait_until(lambda: not shm_exists(name)), f"{name} outlived its program"
    assert wait_until(lambda: not pid_alive(int(tracker_pid))), "the tracker outlived it"
    assert "1 leaked shared_memory objects" in result.stderr, result


PROGRAM_KILLED = """
import sys
import threading

from _tracker_targets import resource_tracker, shared_memory


def hold():
    threading.Event().wait()  # until killed


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    resource_tracker.ensure_running()
    shm = shared_memory.SharedMemory(create=True, size=64)
    child = ctx.Process(target=hold)
    child.start()
    print(shm.name, resource_tracker._resource_tracker._pid, child.pid, flush=True)
    threading.Event().wait()  # until killed
"""


@pytest.mark.parametrize("method", START_METHODS)
def test_sigkilled_program_leaks_no_segment(scripts: Any, method: str) -> None:
    proc = scripts.start(PROGRAM_KILLED, method)
    name, tracker, child = proc.stdout.readline().split()
    tracker_pid, child_pid = int(tracker), int(child)
    assert shm_exists(name)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    # The child still shares the tracker, so nothing is cleaned up yet.
    assert pid_alive(child_pid)
    assert pid_alive(tracker_pid)
    assert shm_exists(name), "the segment went while a process of its program was alive"
    os.kill(child_pid, signal.SIGKILL)
    assert wait_until(lambda: not shm_exists(name)), f"{name} was left in /dev/shm"
    assert wait_until(lambda: not pid_alive(tracker_pid)), "the tracker outlived the program"
    assert "1 leaked shared_memory objects" in proc.stderr.read()


def test_sigterm_to_the_whole_group_leaks_no_segment(scripts: Any) -> None:
    # "killall python": the tracker ignores SIGTERM and cleans up after the others.
    proc = scripts.start(PROGRAM_KILLED, "spawn")
    name, tracker, child = proc.stdout.readline().split()
    tracker_pid, child_pid = int(tracker), int(child)
    # The tracker ignores SIGTERM from the moment its launcher has started (a signal in
    # the first instants of its launch would still kill it, as with the stdlib's).
    wanted = 1 << (signal.SIGTERM - 1)
    assert wait_until(lambda: ignored_signals(tracker_pid) & wanted == wanted)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM
    assert wait_until(lambda: not pid_alive(child_pid))
    assert wait_until(lambda: not shm_exists(name)), f"{name} was left in /dev/shm"
    assert wait_until(lambda: not pid_alive(tracker_pid)), "the tracker outlived the program"
