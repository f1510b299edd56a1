"""Process objects: the stdlib's ``multiprocessing.process`` API.

``BaseProcess`` mirrors ``threading.Thread``; a context subclass supplies ``_Popen``, the
launcher for one start method (``popen_fork``, ``popen_spawn_posix``, ``popen_forkserver``),
which drives a child handle from the Rust core (``ferroproc._core.Child``).
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterable, Mapping

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Callable

    from ferroproc._core import ParentLink

__all__ = ["BaseProcess", "active_children", "current_process", "parent_process"]

WNOHANG = os.WNOHANG

try:
    ORIGINAL_DIR: str | None = os.path.abspath(os.getcwd())
except OSError:
    ORIGINAL_DIR = None


def current_process() -> BaseProcess:
    """Return the process object of the calling process."""
    return _current_process


def active_children() -> list[BaseProcess]:
    """Return the live children of the calling process, reaping those that finished."""
    _cleanup()
    return list(_children)


def parent_process() -> BaseProcess | None:
    """Return the parent of the calling process, or ``None`` in the main process."""
    return _parent_process


def _cleanup() -> None:
    # Reap children that exited so they neither linger as zombies nor stay listed.
    for child in list(_children):
        popen = child._popen
        if popen is not None and popen.poll() is not None:
            _children.discard(child)


class BaseProcess:
    """A process that runs ``target(*args, **kwargs)`` (or an overridden ``run``)."""

    _start_method: str | None = None
    _identity: tuple[int, ...]
    _config: dict[str, Any]

    @staticmethod
    def _Popen(process_obj: BaseProcess) -> Any:
        raise NotImplementedError

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        assert group is None, "group argument must be None for now"
        count = next(_process_counter)
        self._identity = (*_current_process._identity, count)
        self._config = _current_process._config.copy()
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._popen: Any = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs) if kwargs is not None else {}
        self._name = name or (type(self).__name__ + "-" + ":".join(str(i) for i in self._identity))
        if daemon is not None:
            self.daemon = daemon
        _dangling.add(self)

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError("process object is closed")

    def run(self) -> None:
        """Method to be run in the child; calls the target by default."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        """Start the child process."""
        self._check_closed()
        assert self._popen is None, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), (
            "can only start a process object created by current process"
        )
        assert not _current_process._config.get("daemon"), (
            "daemonic processes are not allowed to have children"
        )
        _cleanup()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
        # The target and its arguments may hold large objects; the child has its own copy.
        del self._target, self._args, self._kwargs
        _children.add(self)

    def terminate(self) -> None:
        """Terminate the process with SIGTERM."""
        self._check_closed()
        self._popen.terminate()

    def kill(self) -> None:
        """Terminate the process with SIGKILL."""
        self._check_closed()
        self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the child exits, or until ``timeout`` seconds have passed."""
        self._check_closed()
        assert self._parent_pid == os.getpid(), "can only join a child process"
        assert self._popen is not None, "can only join a started process"
        if self._popen.wait(timeout) is not None:
            _children.discard(self)

    def is_alive(self) -> bool:
        """Return whether the child is alive."""
        self._check_closed()
        if self is _current_process:
            return True
        assert self._parent_pid == os.getpid(), "can only test a child process"
        if self._popen is None:
            return False
        if self._popen.poll() is None:
            return True
        _children.discard(self)
        return False

    def close(self) -> None:
        """Release the resources of a finished process object.

        Raises ``ValueError`` if the child is still running.
        """
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError(
                    "Cannot close a process while it is still running. "
                    "You should first call join() or terminate()."
                )
            self._popen.close()
            self._popen = None
            del self._sentinel
            _children.discard(self)
        self._closed = True

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        assert isinstance(name, str), "name must be a string"
        self._name = name

    @property
    def daemon(self) -> bool:
        """Whether the child is daemonic: killed with its parent, never joined at exit."""
        return bool(self._config.get("daemon", False))

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        assert self._popen is None, "process has already started"
        self._config["daemon"] = daemonic

    @property
    def authkey(self) -> bytes:
        return bytes(self._config["authkey"])

    @authkey.setter
    def authkey(self, authkey: bytes) -> None:
        self._config["authkey"] = AuthenticationString(authkey)

    @property
    def exitcode(self) -> int | None:
        """Exit code of the child: ``None`` while running, ``-N`` if killed by signal N."""
        self._check_closed()
        if self._popen is None:
            return None
        result: int | None = self._popen.poll()
        return result

    @property
    def ident(self) -> int | None:
        """The process id, or ``None`` before the process starts."""
        self._check_closed()
        if self is _current_process:
            return os.getpid()
        if self._popen is None:
            return None
        pid: int | None = self._popen.pid
        return pid

    pid = ident

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes ready (for ``select``) when the process ends."""
        self._check_closed()
        try:
            return int(self._sentinel)
        except AttributeError:
            raise ValueError("process not started") from None

    def __repr__(self) -> str:
        exitcode = None
        if self is _current_process:
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._parent_pid != os.getpid():
            status = "unknown"
        elif self._popen is None:
            status = "initial"
        else:
            exitcode = self._popen.poll()
            status = "started" if exitcode is None else "stopped"
        info = [type(self).__name__, f"name={self._name!r}"]
        if self._popen is not None:
            info.append(f"pid={self._popen.pid}")
        info.append(f"parent={self._parent_pid}")
        info.append(status)
        if exitcode is not None:
            info.append(f"exitcode={_exitcode_to_name.get(exitcode, exitcode)}")
        if self.daemon:
            info.append("daemon")
        return "<{}>".format(" ".join(info))

    def _bootstrap(self, parent_link: ParentLink | None = None) -> int:
        """Run in the new child: become the current process, call ``run``, return the exit code."""
        global _current_process, _parent_process, _process_counter, _children
        from . import util

        try:
            if self._start_method is not None:
                from . import context

                context._force_start_method(self._start_method)
            _process_counter = itertools.count(1)
            _children = set()
            util._close_stdin()
            old_process = _current_process
            _current_process = self
            _parent_process = _ParentProcess(self._parent_name, self._parent_pid, parent_link)
            if threading._HAVE_THREAD_NATIVE_ID:  # type: ignore[attr-defined]
                threading.main_thread()._set_native_id()  # type: ignore[attr-defined]
            try:
                self._after_fork()
            finally:
                # The parent's finalizers must not run in the child.
                del old_process
            util.info("child process calling self.run()")
            try:
                self.run()
                exitcode = 0
            finally:
                util._exit_function()
        except SystemExit as exc:
            exitcode = _exitcode_of_system_exit(exc)
        except BaseException:
            exitcode = 1
            import traceback

            sys.stderr.write(f"Process {self.name}:\n")
            traceback.print_exc()
        finally:
            threading._shutdown()  # type: ignore[attr-defined]
            util.info("process exiting with exitcode %d", exitcode)
            util._flush_std_streams()
        return exitcode

    @staticmethod
    def _after_fork() -> None:
        from . import util

        util._finalizer_registry.clear()
        util._run_after_forkers()


def _exitcode_of_system_exit(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(str(code) + "\n")
    return 1


class AuthenticationString(bytes):
    """An authkey: bytes that refuse to be pickled except to start a child."""

    def __reduce__(self) -> tuple[Any, ...]:
        from .context import get_spawning_popen

        if get_spawning_popen() is None:
            raise TypeError(
                "Pickling an AuthenticationString object is disallowed for security reasons"
            )
        return AuthenticationString, (bytes(self),)


class _MainProcess(BaseProcess):
    def __init__(self) -> None:
        self._identity = ()
        self._name = "MainProcess"
        self._parent_pid = None  # type: ignore[assignment]
        self._popen = None
        self._closed = False
        self._config = {"authkey": AuthenticationString(os.urandom(32)), "semprefix": "/fp"}

    def close(self) -> None:
        pass


class _ParentProcess(BaseProcess):
    """The parent as seen from a child: alive-ness and join through the parent's pidfd."""

    def __init__(self, name: str, pid: int, link: ParentLink | None) -> None:
        self._identity = ()
        self._name = name
        self._pid = pid
        self._parent_pid = None  # type: ignore[assignment]
        self._popen = None
        self._closed = False
        self._link = link
        self._config = {}
        if link is not None:
            self._sentinel = link.sentinel

    def is_alive(self) -> bool:
        return self._link is not None and not self._link.wait(0)

    @property
    def ident(self) -> int:
        return self._pid

    pid = ident

    def join(self, timeout: float | None = None) -> None:
        """Wait for the parent to exit."""
        if self._link is not None:
            self._link.wait(timeout)

    def close(self) -> None:
        pass


_parent_process: BaseProcess | None = None
_current_process: BaseProcess = _MainProcess()
_process_counter = itertools.count(1)
_children: set[BaseProcess] = set()
del _MainProcess

_dangling: weakref.WeakSet[BaseProcess] = weakref.WeakSet()

_exitcode_to_name = {-sig.value: "-" + sig.name for sig in signal.Signals}
