"""Starting a child by fork: the parent's memory, copied on write."""

from __future__ import annotations

import os
import signal

from . import _core, util

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from .process import BaseProcess

__all__ = ["Popen"]


class Popen:
    """Drives one child through a ``ferroproc._core.Child`` handle.

    The same class serves every start method: subclasses only change ``_launch``.
    """

    method = "fork"

    def __init__(self, process_obj: BaseProcess) -> None:
        util._flush_std_streams()
        self.returncode: int | None = None
        self.pid: int | None = None
        self._child: _core.Child | None = None
        self._launch(process_obj)

    @property
    def sentinel(self) -> int:
        assert self._child is not None
        return self._child.sentinel

    def duplicate_for_child(self, fd: int) -> int:
        """A forked child inherits every descriptor under the same number."""
        return fd

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        """Return the exit code if the child has ended (waiting for it unless ``WNOHANG``)."""
        if self.returncode is None and self._child is not None:
            if flag & os.WNOHANG:
                self.returncode = self._child.poll()
            else:
                self.returncode = self._child.wait(None)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds for the child; return its exit code or ``None``."""
        if self.returncode is None and self._child is not None:
            self.returncode = self._child.wait(timeout)
        return self.returncode

    def _send_signal(self, sig: int) -> None:
        if self.returncode is None and self._child is not None:
            # A child that already exited is not an error, as in the stdlib.
            self._child.send_signal(sig)

    def terminate(self) -> None:
        self._send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self._send_signal(signal.SIGKILL)

    def close(self) -> None:
        if self._child is not None:
            self._child.close()

    def _launch(self, process_obj: BaseProcess) -> None:
        parent_pid = os.getpid()
        util._prepare_devnull_stdin()
        child = _core.fork()
        if child is None:
            code = 1
            try:
                link = _link_to_parent(parent_pid, process_obj.daemon)
                code = process_obj._bootstrap(parent_link=link)
            finally:
                os._exit(code)
        self._child = child
        self.pid = child.pid


def _link_to_parent(parent_pid: int, daemon: bool) -> _core.ParentLink | None:
    """Link a new child to its parent; a daemonic child dies with it.

    A daemonic child whose parent is already gone has nothing to serve: it ends at once,
    the way it would have if the parent had died a moment later.
    """
    link = _core.ParentLink.to_parent(parent_pid, die_with_parent=daemon)
    if link is None and daemon:
        os.kill(os.getpid(), signal.SIGKILL)
    return link
