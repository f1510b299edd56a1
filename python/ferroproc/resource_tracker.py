"""The resource tracker: the stdlib's ``multiprocessing.resource_tracker`` API.

::

    every process of the program                 tracker process (one per program)
    ────────────────────────────                 ─────────────────────────────────
    SharedMemory(create=True)
      register(name, "shared_memory") ──┐
    SharedMemory.unlink()               ├─ pipe: "REGISTER:name:rtype\\n", ... ─▶ core loop
      unregister(name, ...) ────────────┘   (each line one atomic write)         (_core.run_
                                                                                 resource_tracker)
    forked children inherit the write end;                                            │
    spawn / fork-server children are passed it                                        │
                                                                                      ▼
    when the last write end closes (every user exited, SIGKILL included): unlink what is
    still registered, and warn on stderr how many were leaked

The tracker is started on first use (a ``SharedMemory`` created here, or a child started
by spawn or the fork server, which must share it) as a fresh interpreter running
:func:`main`. Attaching a segment never registers it, so the tracker only ever removes
names that a process of this program created and did not unlink.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import warnings

from . import _core, util

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Callable

__all__ = ["ensure_running", "register", "unregister"]

_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The descriptor number the tracker finds its pipe at (the core passes descriptors from 3).
_TRACKER_FD = 3


def _noop(*args: object) -> None:
    return None


# How each resource type is cleaned up; the tracker process does the same in the core.
_CLEANUP_FUNCS: dict[str, Callable[..., None]] = {
    "noop": _noop,
    "shared_memory": functools.partial(_core.cleanup_resource, "shared_memory"),
}
# The tracker also takes "folder" (a directory it removes), which the stdlib of this
# Python version does not list here, and "semaphore", which it ignores: ferroproc has no
# named semaphores (the stdlib leaves the entry out in that case too).


class ReentrantCallError(RuntimeError):
    """The tracker was called again from inside one of its own calls (a finalizer run by
    the garbage collector in the middle of a call, for example)."""


class ResourceTracker:
    """This process's handle on the tracker: the pipe's write end and the tracker's pid."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid: int | None = None
        # The tracker's handle, held only by the process that started it (to reap it).
        self._child: _core.Child | None = None
        self._owner_pid: int | None = None

    def _after_fork_in_child(self) -> None:
        # A lock held by another thread at fork time would never be released here.
        self._lock = threading.RLock()
        self._depth = 0

    def _reentrant_call_error(self) -> None:
        raise ReentrantCallError("Reentrant call into the multiprocessing resource tracker")

    def _enter(self) -> bool:
        """Called with the lock held: whether this is the outermost call."""
        self._depth += 1
        return self._depth == 1

    def _stop(self) -> None:
        """Close this process's write end and wait for the tracker to exit (it does once no
        other process holds the pipe)."""
        with self._lock:
            try:
                if not self._enter():
                    return
                if self._fd is None:
                    return
                os.close(self._fd)
                self._fd = None
                self._reap(None)
                self._pid = None
            finally:
                self._depth -= 1

    def _reap(self, timeout: float | None) -> None:
        """Wait for the tracker if this process started it, then forget its handle."""
        child, self._child = self._child, None
        if child is not None and self._owner_pid == os.getpid():
            # Someone may have reaped it already (os.waitpid on its pid).
            with contextlib.suppress(ChildProcessError):
                child.wait(timeout)
            child.close()

    def getfd(self) -> int | None:
        """The pipe's write end, starting the tracker if needed."""
        self.ensure_running()
        return self._fd

    def ensure_running(self) -> None:
        """Make sure the tracker is running: start it, or start a new one if it died.

        Any process may call this; a child normally shares its parent's tracker.
        """
        with self._lock:
            try:
                if not self._enter():
                    self._reentrant_call_error()
                if self._fd is not None:
                    if self._check_alive():
                        return
                    # Dead: what it had registered is lost; start a new one.
                    with contextlib.suppress(OSError):
                        os.close(self._fd)
                    # It stopped reading, so it has exited or is about to.
                    self._reap(5.0)
                    self._fd = None
                    self._pid = None
                    warnings.warn(
                        "resource_tracker: process died unexpectedly, relaunching.  "
                        "Some resources might leak.",
                        stacklevel=2,
                    )
                self._launch()
            finally:
                self._depth -= 1

    def _launch(self) -> None:
        """Start a tracker reading a new pipe; keep the pipe's write end."""
        from . import spawn

        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        prog = (
            f"import sys; sys.path.insert(0, {package_dir!r}); "
            f"from ferroproc.resource_tracker import main; main({_TRACKER_FD})"
        )
        exe = spawn.get_executable()
        args = [*util._args_from_interpreter_flags(), "-c", prog]
        r, w = os.pipe()
        try:
            # The tracker must survive SIGINT and SIGTERM from the start: a Ctrl-C or
            # "killall python" while its interpreter starts would otherwise kill it. It
            # starts with them blocked, and main() ignores them before unblocking them.
            child = _core.spawn(exe, args, [r], list(_IGNORED_SIGNALS))
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._fd = w
        self._pid = child.pid
        self._child = child
        self._owner_pid = os.getpid()

    def _check_alive(self) -> bool:
        """Whether the tracker still reads the pipe: a probe fails once it does not."""
        if self._fd is None:
            return False
        try:
            _core.resource_tracker_send(self._fd, "PROBE", "0", "noop")
        except OSError:
            return False
        return True

    def register(self, name: str, rtype: str) -> None:
        """Have the tracker clean ``name`` up if no process of the program unregisters it."""
        self._send("REGISTER", name, rtype)

    def unregister(self, name: str, rtype: str) -> None:
        """Tell the tracker ``name`` was cleaned up by its user."""
        self._send("UNREGISTER", name, rtype)

    def _send(self, cmd: str, name: str, rtype: str) -> None:
        try:
            self.ensure_running()
        except ReentrantCallError:
            warnings.warn(
                f"ResourceTracker called reentrantly for resource cleanup, which is "
                f"unsupported. The {rtype} object {name!r} might leak.",
                stacklevel=3,
            )
        fd = self._fd
        if fd is None:
            return
        _core.resource_tracker_send(fd, cmd, name, rtype)


_resource_tracker = ResourceTracker()
ensure_running = _resource_tracker.ensure_running
register = _resource_tracker.register
unregister = _resource_tracker.unregister
getfd = _resource_tracker.getfd

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_resource_tracker._after_fork_in_child)


def _set_inherited_fd(fd: int) -> None:
    """In a spawned or fork-server child: use the parent's tracker, whose pipe is ``fd``."""
    os.set_inheritable(fd, False)
    _resource_tracker._fd = fd


def _detach_stdio() -> None:
    """Point standard input and output at /dev/null, so the tracker, which may outlive
    the program by a moment, does not hold a pipe someone reads to its end."""
    for stream in (sys.stdin, sys.stdout):
        try:
            if stream is not None:
                stream.close()
        except Exception:  # best effort, as the stdlib's tracker
            continue
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in (0, 1):
        try:
            os.dup2(devnull, fd)
        except OSError:
            continue
    if devnull > 1:
        os.close(devnull)


def main(fd: int) -> None:
    """Run the resource tracker on ``fd``, the read end of its pipe."""
    # Ctrl-C reaches the whole foreground group, and "killall python" every interpreter:
    # the tracker must outlive them to clean up after them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _IGNORED_SIGNALS)
    _detach_stdio()
    _core.run_resource_tracker(fd)
