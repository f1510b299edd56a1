"""Functions and classes that run in child processes.

They live in an importable module (not in the test files) so that spawned and fork-server
children can unpickle them: ``conftest`` puts this folder on ``sys.path`` and on
``PYTHONPATH``. Children report back through files and exit codes only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from _support import DEADLINE, mp, wait_until, write_atomically

# Exit codes a child uses to say what it found.
FOUND = 0
NOT_FOUND = 1
RELEASE_TIMED_OUT = 2


def noop() -> None:
    """Does nothing: the child exits with 0."""


def return_value() -> int:
    """Returns a value, which the child ignores: exit code 0."""
    return 42


def exit_with(code: Any) -> None:
    sys.exit(code)


def os_exit(code: int) -> None:
    os._exit(code)


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def kill_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    # A signal sent to oneself is delivered before kill() returns unless it is blocked;
    # wait anyway so the child cannot exit normally by accident.
    time.sleep(DEADLINE)
    os._exit(99)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def write_ready_and_sleep(ready: str, seconds: float = DEADLINE * 2) -> None:
    """Says the child runs Python code, then waits to be stopped."""
    write_atomically(ready, str(os.getpid()))
    time.sleep(seconds)


def wait_for_release(release: str) -> None:
    """Exits with 0 once ``release`` exists, with 2 if it never appears."""
    if not wait_until(Path(release).exists):
        sys.exit(RELEASE_TIMED_OUT)


def write_args(path: str, *args: Any, **kwargs: Any) -> None:
    write_atomically(path, json.dumps({"args": list(args), "kwargs": kwargs}))


def describe_self(path: str) -> None:
    """Writes what the child knows about itself and its parent."""
    me = mp.current_process()
    parent = mp.parent_process()
    info = {
        "pid": os.getpid(),
        "name": me.name,
        "ident": me.ident,
        "me_pid": me.pid,
        "daemon": me.daemon,
        "authkey": bytes(me.authkey).hex(),
        "alive": me.is_alive(),
        "parent": None
        if parent is None
        else {"pid": parent.pid, "name": parent.name, "alive": parent.is_alive()},
        "children": len(mp.active_children()),
    }
    write_atomically(path, json.dumps(info))


def start_grandchild(method: str, path: str) -> None:
    """Starts a child of its own that describes itself; exits with that child's code."""
    child = mp.get_context(method).Process(target=describe_self, args=(path,))
    child.start()
    child.join()
    sys.exit(child.exitcode)


def try_start_child(method: str, path: str) -> None:
    """Tries to start a child; writes the AssertionError it gets (daemonic parents)."""
    child = mp.get_context(method).Process(target=noop)
    try:
        child.start()
    except AssertionError as exc:
        write_atomically(path, str(exc))
        return
    child.join()
    write_atomically(path, "started")


def exit_if_module_loaded(name: str) -> None:
    """Exit code 0 if ``name`` or a submodule of it is imported here, 1 if not."""
    loaded = [m for m in sys.modules if m == name or m.startswith(name + ".")]
    sys.exit(FOUND if loaded else NOT_FOUND)


def write_pid_and_ppid_and_sleep(path: str) -> None:
    """The daemonic child of the parent-death tests: says who it is, then waits."""
    write_atomically(path, json.dumps({"pid": os.getpid(), "ppid": os.getppid()}))
    time.sleep(600)


def write_on_sigterm(path: str, ready: str) -> None:
    """Records that it was stopped by SIGTERM (what the stdlib sends at exit)."""

    def on_term(signum: int, frame: object) -> None:
        write_atomically(path, "terminated")
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    write_atomically(ready, str(os.getpid()))
    time.sleep(600)


class _WriterMixin:
    """A ``Process`` subclass body: ``run()`` writes the constructor's value to a file."""

    def __init__(self, path: str, value: str) -> None:
        super().__init__()
        self.path = path
        self.value = value

    def run(self) -> None:
        name = mp.current_process().name
        write_atomically(self.path, json.dumps({"value": self.value, "name": name}))


# One subclass per start method, each importable by name (spawned children unpickle them).
class ForkWriter(_WriterMixin, mp.get_context("fork").Process):
    pass


class SpawnWriter(_WriterMixin, mp.get_context("spawn").Process):
    pass


class ForkserverWriter(_WriterMixin, mp.get_context("forkserver").Process):
    pass


WRITERS = {"fork": ForkWriter, "spawn": SpawnWriter, "forkserver": ForkserverWriter}


class ExitingProcess(mp.Process):
    """A subclass of the module-level ``Process`` whose ``run`` exits with a code."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def run(self) -> None:
        sys.exit(self.code)
