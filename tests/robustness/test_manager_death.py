"""Managers when a process dies: the parent, a client, or the server itself.

- A SIGKILLed parent takes its manager's server with it (the stdlib's server lives on as
  an orphan: ferroproc-only).
- A client killed in the middle of a call costs the server only that client's thread.
- A client whose server is killed gets an error instead of waiting forever.
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import _manager_targets as t
from _support import DEADLINE, MODULE_NAME, START_METHODS, pid_alive, read_when_present, wait_until

managers = importlib.import_module(f"{MODULE_NAME}.managers")

pytestmark = pytest.mark.timeout(120)

PARENT = """
import sys
import threading

if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    manager = ctx.Manager()
    shared = manager.dict()
    shared["alive"] = True
    print(manager._process.pid, flush=True)
    threading.Event().wait()  # until killed
"""


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("method", START_METHODS)
def test_sigkilled_parent_takes_its_manager_server_with_it(scripts: Any, method: str) -> None:
    parent = scripts.start(PARENT, method)
    server = int(parent.stdout.readline())
    assert pid_alive(server)
    os.kill(parent.pid, signal.SIGKILL)
    assert parent.wait() == -signal.SIGKILL
    assert wait_until(lambda: not pid_alive(server)), f"manager server {server} outlived its parent"


@pytest.mark.ferroproc_only
def test_interrupted_parent_shuts_its_manager_down_cleanly(scripts: Any) -> None:
    parent = scripts.start(PARENT, "fork")
    server = int(parent.stdout.readline())
    # Ctrl-C in a terminal: SIGINT to the whole process group, server included.
    os.killpg(parent.pid, signal.SIGINT)
    _out, err = parent.communicate(timeout=DEADLINE)
    assert "KeyboardInterrupt" in err
    assert wait_until(lambda: not pid_alive(server))
    # Only the parent's own traceback: the server ignored the signal and was shut down.
    assert err.count("Traceback") == 1, err


@pytest.mark.parametrize("method", START_METHODS)
def test_client_killed_mid_call_leaves_server_and_others_working(method: str) -> None:
    ctx = importlib.import_module(MODULE_NAME).get_context(method)
    with managers.SyncManager(ctx=ctx) as manager:
        never = manager.Event()
        ready = manager.Event()
        shared = manager.dict()
        victim = ctx.Process(target=t.block_in_server, args=(never, ready))
        victim.start()
        assert ready.wait(DEADLINE)
        victim.kill()
        victim.join(DEADLINE)
        assert victim.exitcode == -signal.SIGKILL
        # The server and this client carry on, and so does a new client.
        shared["after"] = 1
        assert shared["after"] == 1
        # Proxies handed to a child must outlive its start: keep them referenced here.
        others = (manager.list(), shared, manager.Namespace(), manager.Value("i", 0))
        array = manager.Array("i", [0])
        survivor = ctx.Process(target=t.fill_containers, args=(*others, array))
        survivor.start()
        survivor.join(DEADLINE)
        assert survivor.exitcode == 0
        assert shared["child"] == survivor.pid
        assert manager._process.is_alive()


def test_killed_server_makes_calls_fail_instead_of_hanging() -> None:
    manager = managers.SyncManager()
    manager.start()
    try:
        never = manager.Event()
        shared = manager.dict(a=1)
        outcome: list[BaseException | None] = []

        def wait_forever() -> None:
            try:
                never.wait()
            except BaseException as exc:
                outcome.append(exc)
            else:  # pragma: no cover - reported below
                outcome.append(None)

        waiter = threading.Thread(target=wait_forever)
        waiter.start()
        # The waiter's call is in the server once the server counts its connection.
        assert shared["a"] == 1
        os.kill(manager._process.pid, signal.SIGKILL)
        waiter.join(DEADLINE)
        assert not waiter.is_alive(), "a call in progress hung after the server died"
        assert len(outcome) == 1
        assert isinstance(outcome[0], (EOFError, ConnectionError, OSError))
        with pytest.raises((EOFError, ConnectionError, OSError)):
            never.is_set()
        with pytest.raises((EOFError, ConnectionError, OSError)):
            manager.list()
        if MODULE_NAME == "ferroproc":
            # ferroproc's dict lives in shared memory, not in the server: what is
            # already there stays readable from this process's mapping.
            assert shared["a"] == 1
    finally:
        manager.shutdown()
    manager._process.join(DEADLINE)
    assert manager._process.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("method", START_METHODS)
def test_killed_server_fails_a_child_blocked_in_a_call(method: str, tmp_path: Path) -> None:
    ctx = importlib.import_module(MODULE_NAME).get_context(method)
    manager = managers.SyncManager(ctx=ctx)
    manager.start()
    try:
        never = manager.Event()
        pid_file = tmp_path / "pid"
        child = ctx.Process(target=t.record_then_block, args=(str(pid_file), never))
        child.start()
        read_when_present(pid_file)
        os.kill(manager._process.pid, signal.SIGKILL)
        child.join(DEADLINE)
        assert child.exitcode == 1, "the child's call did not fail when the server died"
    finally:
        manager.shutdown()


@pytest.mark.parametrize("method", START_METHODS)
def test_a_client_killed_mid_update_leaves_the_containers_whole(method: str) -> None:
    ctx = importlib.import_module(MODULE_NAME).get_context(method)
    with ctx.Manager() as manager:
        shared = manager.dict()
        lst = manager.list()
        for round_number in range(4):
            writer = ctx.Process(target=t.write_for_ever, args=(shared, lst, f"w{round_number}"))
            writer.start()
            assert wait_until(lambda: len(shared) > 0 and len(lst) > 0)
            os.kill(writer.pid, signal.SIGKILL)
            writer.join(DEADLINE)
            assert writer.exitcode == -signal.SIGKILL
            # Nothing is left locked, and every entry is whole.
            items = shared.items()
            assert len(items) == len(shared)
            for key, (number, text) in items:
                assert key.endswith(f"-{number % 50}")
                assert text == "x" * (number % 300)
            for number, text in lst[:]:
                assert text == "y" * (number % 200)
            shared.clear()
        shared["after"] = 1
        assert shared["after"] == 1
