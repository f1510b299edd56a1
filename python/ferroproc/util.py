"""Logging, finalizers and exit handling: the stdlib's ``multiprocessing.util`` API."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import sys
import threading
import weakref

from . import process

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable
    from typing import Any, Callable, TextIO

__all__ = [
    "Finalize",
    "ForkAwareLocal",
    "ForkAwareThreadLock",
    "abstract_sockets_supported",
    "close_all_fds_except",
    "debug",
    "get_logger",
    "get_temp_dir",
    "info",
    "is_exiting",
    "log_to_stderr",
    "register_after_fork",
    "sub_debug",
    "sub_warning",
    "usable_cpu_count",
]

NOTSET = 0
SUBDEBUG = 5
DEBUG = 10
INFO = 20
SUBWARNING = 25

LOGGER_NAME = "multiprocessing"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"

_logger: logging.Logger | None = None
_log_to_stderr = False


def sub_debug(msg: str, *args: object) -> None:
    if _logger:
        _logger.log(SUBDEBUG, msg, *args, stacklevel=2)


def debug(msg: str, *args: object) -> None:
    if _logger:
        _logger.log(DEBUG, msg, *args, stacklevel=2)


def info(msg: str, *args: object) -> None:
    if _logger:
        _logger.log(INFO, msg, *args, stacklevel=2)


def sub_warning(msg: str, *args: object) -> None:
    if _logger:
        _logger.log(SUBWARNING, msg, *args, stacklevel=2)


def get_logger() -> logging.Logger:
    """Return the package's logger (named ``multiprocessing``, as the stdlib's).

    Keeping the stdlib's logger name means existing logging configuration applies
    unchanged when a program switches to ferroproc.
    """
    global _logger
    import logging

    with logging._lock:  # type: ignore[attr-defined]
        if not _logger:
            _logger = logging.getLogger(LOGGER_NAME)
            _logger.propagate = False
            _logger.addFilter(_stamp_process_name)
            logging.addLevelName(SUBDEBUG, "SUBDEBUG")
            logging.addLevelName(SUBWARNING, "SUBWARNING")
    return _logger


def _stamp_process_name(record: logging.LogRecord) -> bool:
    # logging fills `processName` from the stdlib's `multiprocessing` module, which
    # ferroproc never imports: stamp the name of ferroproc's current process instead.
    record.processName = process.current_process().name
    return True


def log_to_stderr(level: int | str | None = None) -> logging.Logger:
    """Turn on logging to standard error, optionally at ``level``; return the logger."""
    global _log_to_stderr
    import logging

    logger = get_logger()
    formatter = logging.Formatter(DEFAULT_LOGGING_FORMAT)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    _log_to_stderr = True
    return logger


# --- CPUs ----------------------------------------------------------------------------


def usable_cpu_count() -> int:
    """The number of CPUs this process can actually use; the default size of a pool.

    Unlike ``os.cpu_count()`` (the machine's CPUs, which ``cpu_count()`` keeps returning as
    the stdlib's does), this counts only the CPUs in the process's affinity mask
    (``taskset``, a container's cpuset) and lowers that to any cgroup v2 or v1 CPU quota,
    rounded up to whole CPUs: a container allowed 1.5 CPUs gets 2. Never less than 1.
    """
    from . import _core

    return _core.usable_cpu_count()


# --- temporary directory -------------------------------------------------------------


def get_temp_dir() -> str:
    """A private temporary directory for this process, removed at exit."""
    tempdir = process.current_process()._config.get("tempdir")
    if tempdir is None:
        import shutil
        import tempfile

        tempdir = tempfile.mkdtemp(prefix="ferroproc-")
        info("created temp directory %s", tempdir)
        Finalize(None, _remove_temp_dir, args=(shutil.rmtree, tempdir), exitpriority=-100)
        process.current_process()._config["tempdir"] = tempdir
    return str(tempdir)


def _remove_temp_dir(rmtree: Callable[..., None], tempdir: str) -> None:
    # `rmtree` is bound at registration: module globals may be gone at interpreter exit.
    rmtree(tempdir, ignore_errors=True)
    current = process.current_process()
    if current is not None:
        current._config["tempdir"] = None


# --- after-fork callbacks ------------------------------------------------------------

_afterfork_registry: weakref.WeakValueDictionary[tuple[int, int, Callable[..., object]], Any] = (
    weakref.WeakValueDictionary()
)
_afterfork_counter = itertools.count()


def _run_after_forkers() -> None:
    for (_index, _ident, func), obj in sorted(_afterfork_registry.items(), key=lambda i: i[0][:2]):
        try:
            func(obj)
        except Exception as exc:
            info("after forker raised exception %s", exc)


def register_after_fork(obj: Any, func: Callable[[Any], object]) -> None:
    """Call ``func(obj)`` in each child started after this call, while ``obj`` lives."""
    _afterfork_registry[(next(_afterfork_counter), id(obj), func)] = obj


# --- finalizers ----------------------------------------------------------------------

_finalizer_registry: dict[tuple[Any, int], Finalize] = {}
_finalizer_counter = itertools.count()


class Finalize:
    """Call ``callback(*args, **kwargs)`` once: when ``obj`` is collected, when called, or
    at exit if ``exitpriority`` is not ``None`` (higher priorities first)."""

    def __init__(
        self,
        obj: object,
        callback: Callable[..., object],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        exitpriority: int | None = None,
    ) -> None:
        if exitpriority is not None and not isinstance(exitpriority, int):
            raise TypeError(
                f"Exitpriority ({exitpriority!r}) must be None or int, not {type(exitpriority)}"
            )
        if obj is not None:
            self._weakref: weakref.ref[Any] | None = weakref.ref(obj, self)
        elif exitpriority is None:
            raise ValueError("Without object, exitpriority cannot be None")
        else:
            self._weakref = None
        self._callback: Callable[..., object] | None = callback
        self._args = args
        self._kwargs = kwargs or {}
        self._key: tuple[Any, int] | None = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        _finalizer_registry[self._key] = self

    def __call__(self, wr: object = None) -> object:
        """Run the callback unless it already ran or belongs to another process."""
        try:
            del _finalizer_registry[self._key]  # type: ignore[arg-type]
        except KeyError:
            sub_debug("finalizer no longer registered")
            return None
        if self._pid != os.getpid():
            sub_debug("finalizer ignored because different process")
            return None
        sub_debug(
            "finalizer calling %s with args %s and kwargs %s",
            self._callback,
            self._args,
            self._kwargs,
        )
        assert self._callback is not None
        result = self._callback(*self._args, **self._kwargs)
        self._weakref = self._callback = self._key = None
        self._args = ()
        self._kwargs = {}
        return result

    def cancel(self) -> None:
        """Cancel the finalizer without running it."""
        try:
            del _finalizer_registry[self._key]  # type: ignore[arg-type]
        except KeyError:
            pass
        else:
            self._weakref = self._callback = self._key = None
            self._args = ()
            self._kwargs = {}

    def still_active(self) -> bool:
        """Whether the callback has neither run nor been cancelled."""
        return self._key in _finalizer_registry

    def __repr__(self) -> str:
        try:
            obj = self._weakref() if self._weakref is not None else None
        except (AttributeError, TypeError):
            obj = None
        if self._callback is None:
            return f"<{type(self).__name__} object, dead>"
        callback = getattr(self._callback, "__name__", self._callback)
        parts = [f"<{type(self).__name__} object, callback={callback}"]
        if obj is not None:
            parts.append(f", obj={obj!r}")
        if self._args:
            parts.append(", args=" + str(self._args))
        if self._kwargs:
            parts.append(", kwargs=" + str(self._kwargs))
        if self._key is not None and self._key[0] is not None:
            parts.append(", exitpriority=" + str(self._key[0]))
        return "".join(parts) + ">"


def _run_finalizers(minpriority: int | None = None) -> None:
    """Run finalizers with priority >= ``minpriority`` (all with a priority if ``None``)."""
    if minpriority is None:

        def wanted(priority: int | None) -> bool:
            return priority is not None

    else:

        def wanted(priority: int | None) -> bool:
            return priority is not None and priority >= minpriority

    # Copy the keys: finalizers may register or cancel others while running.
    keys = sorted((key for key in list(_finalizer_registry) if wanted(key[0])), reverse=True)
    for key in keys:
        finalizer = _finalizer_registry.get(key)
        if finalizer is None:
            continue
        sub_debug("calling %s", finalizer)
        try:
            finalizer()
        except Exception:
            import traceback

            traceback.print_exc()
    if minpriority is None:
        _finalizer_registry.clear()


# --- exit ----------------------------------------------------------------------------

_exiting = False


def is_exiting() -> bool:
    """Whether this process is shutting down."""
    return _exiting


def _exit_function() -> None:
    """At exit: run finalizers, terminate daemonic children, join the others."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    info("process shutting down")
    debug('running all "atexit" finalizers with priority >= 0')
    _run_finalizers(0)
    if process.current_process() is not None:
        for child in process.active_children():
            if child.daemon:
                info("calling terminate() for daemon %s", child.name)
                child._popen.terminate()
        for child in process.active_children():
            info("calling join() for process %s", child.name)
            child.join()
    debug('running the remaining "atexit" finalizers')
    _run_finalizers()


atexit.register(_exit_function)


# --- fork-aware helpers --------------------------------------------------------------


class ForkAwareThreadLock:
    """A ``threading.Lock`` that is replaced by a fresh one in each child."""

    def __init__(self) -> None:
        self._reset()
        register_after_fork(self, ForkAwareThreadLock._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> None:
        self._lock.__exit__(*args)


class ForkAwareLocal(threading.local):
    """Thread-local storage that is emptied in each child."""

    def __init__(self) -> None:
        register_after_fork(self, lambda obj: obj.__dict__.clear())

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), ()


# --- standard streams ----------------------------------------------------------------


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (AttributeError, ValueError):
            pass


_devnull_stdin: TextIO | None = None


def _prepare_devnull_stdin() -> None:
    """Open the /dev/null stdin that forked children will use, once, in the parent.

    A forked child then only swaps it in. Building a text file object in every child
    writes to many pages it shares with the parent, and each first write to a shared
    page is a copy-on-write fault: this alone was a tenth of the cost of a fork start.
    """
    global _devnull_stdin
    if _devnull_stdin is None:
        with contextlib.suppress(OSError, ValueError):
            # closefd=False: the descriptor (close-on-exec) lives as long as this process;
            # the file object never owns it, so no child or parent warns about it.
            fd = os.open(os.devnull, os.O_RDONLY)
            _devnull_stdin = open(fd, encoding="utf-8", closefd=False)  # noqa: SIM115


def _close_stdin() -> None:
    """Give the child /dev/null as stdin: two processes must not read one terminal."""
    if sys.stdin is None:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.close()
    if _devnull_stdin is not None:
        sys.stdin = _devnull_stdin
        return
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            sys.stdin = open(fd, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as sys.stdin
        except BaseException:
            os.close(fd)
            raise
    except (OSError, ValueError):
        pass


try:
    MAXFD = os.sysconf("SC_OPEN_MAX")
except (OSError, ValueError):
    MAXFD = 256


def close_all_fds_except(fds: Iterable[int]) -> None:
    """Close every descriptor of this process except those in ``fds``."""
    start = 0
    for fd in sorted(set(fds)):
        # Never an empty range: CPython 3.11 turns closerange(n, n) into "close all".
        if fd > start:
            os.closerange(start, fd)
        start = max(start, fd + 1)
    if start < MAXFD:
        os.closerange(start, MAXFD)


def _args_from_interpreter_flags() -> list[str]:
    """The command-line flags that reproduce this interpreter's settings in a child."""
    import subprocess

    return list(subprocess._args_from_interpreter_flags())  # type: ignore[attr-defined]


#: Whether Unix sockets may have abstract names (a leading NUL byte): Linux's own.
abstract_sockets_supported = sys.platform.startswith("linux")


def _cleanup_tests() -> None:
    """What CPython's multiprocessing tests call when they finish: reap children, stop the
    fork server and the resource tracker, and run pending finalizers (removing temporary
    directories) now rather than at exit."""
    from . import forkserver, process, resource_tracker

    process._cleanup()
    stop_forkserver = getattr(forkserver._forkserver, "_stop", None)
    if stop_forkserver is not None:
        stop_forkserver()
    resource_tracker._resource_tracker._stop()
    _run_finalizers()
    import gc

    gc.collect()
