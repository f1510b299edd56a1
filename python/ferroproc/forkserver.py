"""The fork server: the stdlib's ``multiprocessing.forkserver`` API.

::

    client process                         fork server (spawned once, preloads modules)
    ──────────────                         ───────────────────────────────────────────
    Popen._launch
      bootstrap memfd ← pickled process
      _core.forkserver_request ──unix socket, SCM_RIGHTS [pidfd, memfd]──▶ Rust loop
                        ◀── pid + child pidfd ──────────────────────────── fork()
      Child (sentinel = the connection)                                     │
                        ◀── return code, when the server reaps it ───────────┘ child runs
                                                                             spawn._run_payload

The server's loop is in the Rust core (``_core.forkserver_serve``): it waits on the
listener, on its children's pidfds (reaping them and reporting their status) and on the
client's pidfd (exiting when the client dies). It returns into Python only in a new child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from . import _core, spawn, util

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "ForkServer",
    "connect_to_new_process",
    "ensure_running",
    "get_inherited_fds",
    "main",
    "set_forkserver_preload",
]


class ForkServer:
    """Starts the server on first use and asks it for children."""

    def __init__(self) -> None:
        self._address: str | None = None
        self._server: _core.Child | None = None
        self._forkserver_pid: int | None = None
        self._stopper: util.Finalize | None = None
        # The process that started the server: a forked child inherits this object but
        # not the server (which is not its child and serves its parent), so it starts its own.
        self._owner_pid: int | None = None
        self._preload_modules: list[str] = ["__main__"]
        self._lock = threading.Lock()

    def set_forkserver_preload(self, modules_names: Sequence[str]) -> None:
        """Modules the server imports before forking, so children start with them."""
        if not all(isinstance(name, str) for name in modules_names):
            raise TypeError("module_names must be a list of strings")
        self._preload_modules = list(modules_names)

    def _stop(self) -> None:
        """Stop the server if this process started it (CPython's tests call this)."""
        with self._lock:
            if self._server is None or self._owner_pid != os.getpid():
                return
            self._server = self._forkserver_pid = self._address = None
            stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()  # a finalizer runs once: at exit it does nothing more

    def get_inherited_fds(self) -> list[int] | None:
        """In a fork-server child: the descriptors its parent passed (after the bootstrap)."""
        return _inherited_fds

    def connect_to_new_process(self, fds: Sequence[int]) -> _core.Child:
        """Ask the server for a child that receives ``fds``; return its handle."""
        self.ensure_running()
        assert self._address is not None
        return _core.forkserver_request(self._address, list(fds))

    def ensure_running(self) -> None:
        """Start the server unless it is running (restart it if it died)."""
        with self._lock:
            if self._server is not None and self._owner_pid != os.getpid():
                self._server = self._forkserver_pid = self._address = None
            if self._server is not None:
                if self._server.poll() is None:
                    return
                self._server.close()
                self._server = self._forkserver_pid = self._address = None
            listener, address = _core.forkserver_listen(util.get_temp_dir())
            try:
                data = spawn.get_preparation_data("ignore")
                prog = (
                    "from ferroproc.forkserver import main; "
                    f"main({3}, {os.getpid()}, {self._preload_modules!r}, {data['sys_path']!r})"
                )
                server = _core.spawn(
                    spawn.get_executable(),
                    [*util._args_from_interpreter_flags(), "-c", prog],
                    [listener],
                )
            finally:
                os.close(listener)
            self._server = server
            self._forkserver_pid = server.pid
            self._owner_pid = os.getpid()
            self._address = os.fspath(address)
            self._stopper = util.Finalize(
                self, _stop_server, args=(server, self._address), exitpriority=-50
            )


def _stop_server(server: _core.Child, address: str) -> None:
    """At exit: the server would notice our death anyway; ending it now keeps exit tidy."""
    server.send_signal(signal.SIGTERM)
    server.wait(5.0)
    server.close()
    import shutil

    shutil.rmtree(os.path.dirname(address), ignore_errors=True)


_inherited_fds: list[int] | None = None


def main(
    listener_fd: int, parent_pid: int, preload: list[str], sys_path: list[str] | None = None
) -> None:
    """Entry point of the server process."""
    global _inherited_fds
    if sys_path is not None:
        sys.path[:] = sys_path
    for name in preload:
        # The parent's main module is re-imported by each child (as with spawn), never
        # in the server, where unguarded code would run once for every program.
        if name == "__main__":
            continue
        with contextlib.suppress(ImportError):
            __import__(name)
    # Every child re-runs the parent's main script through runpy, which imports pkgutil
    # (and with it typing): import them once here so children inherit them by fork.
    import pkgutil  # noqa: F401
    import runpy  # noqa: F401

    util._close_stdin()
    # Ctrl-C reaches the whole foreground group; the client decides what its children do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    result = _core.forkserver_serve(listener_fd, parent_pid)
    if result is None:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    client, fds = result
    bootstrap_fd, tracker_fd, *_inherited = fds
    _inherited_fds = _inherited
    from . import resource_tracker

    resource_tracker._set_inherited_fd(tracker_fd)
    code = 1
    try:
        try:
            payload = _core.bootstrap_read(bootstrap_fd)
        finally:
            os.close(bootstrap_fd)
        code = spawn._run_payload(payload, lambda daemon: _adopt_client(client, daemon))
    finally:
        os._exit(code)


def _adopt_client(client: _core.ParentLink, daemon: bool) -> _core.ParentLink:
    if daemon:
        client.die_with_parent()
    return client


_forkserver = ForkServer()
ensure_running = _forkserver.ensure_running
get_inherited_fds = _forkserver.get_inherited_fds
connect_to_new_process = _forkserver.connect_to_new_process
set_forkserver_preload = _forkserver.set_forkserver_preload
