"""The Rust engine of ferroproc (private; use the public package instead)."""

from collections.abc import Sequence
from os import PathLike
from typing import final

__all__ = [
    "WAIT_TICK",
    "Child",
    "ParentLink",
    "__version__",
    "bootstrap_create",
    "bootstrap_read",
    "fork",
    "forkserver_listen",
    "forkserver_request",
    "forkserver_serve",
    "spawn",
]

__version__: str
WAIT_TICK: float
"""Longest time (seconds) a blocking call waits without running signal handlers."""

@final
class Child:
    """A started child process, supervised through its pidfd (or the fork server)."""

    @property
    def pid(self) -> int:
        """The process id."""
    @property
    def sentinel(self) -> int:
        """A descriptor that polls readable once the child has exited."""
    @property
    def returncode(self) -> int | None:
        """The return code once reaped: exit code, or the negated signal number."""
    def poll(self) -> int | None:
        """Reap the child if it has exited; return its return code or ``None``."""
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (forever if ``None``); ``None`` on timeout."""
    def send_signal(self, signo: int) -> bool:
        """Send ``signo``; ``False`` if the child had already exited."""
    def close(self) -> None:
        """Release the handle's descriptors; the process itself is left alone."""

@final
class ParentLink:
    """The parent of this process, held through its pidfd."""

    @staticmethod
    def to_parent(parent_pid: int, die_with_parent: bool = False) -> ParentLink | None:
        """Link to ``parent_pid``; ``None`` if it is no longer this process's parent."""
    @property
    def pid(self) -> int:
        """The parent's pid."""
    @property
    def sentinel(self) -> int:
        """A descriptor that polls readable once the parent has exited."""
    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the parent to exit; ``True`` if it has."""
    def die_with_parent(self) -> None:
        """Kill this process with SIGKILL as soon as the parent exits."""
    def close(self) -> None:
        """Release the parent's pidfd."""

def fork() -> Child | None:
    """Fork, running the interpreter's fork hooks.

    Returns the child in the parent and ``None`` in the child.
    """

def spawn(executable: str | PathLike[str], args: Sequence[str], pass_fds: Sequence[int]) -> Child:
    """posix_spawn ``executable`` with ``args``; ``pass_fds`` appear in the child from fd 3."""

def bootstrap_create(payload: bytes) -> int:
    """Store ``payload`` in a sealed memfd; return its descriptor (owned by the caller)."""

def bootstrap_read(fd: int) -> bytes:
    """Read the payload of a bootstrap memfd."""

def forkserver_listen(dir: str | PathLike[str] | None = None) -> tuple[int, str]:
    """Create a fork server's listening socket; return its descriptor and path."""

def forkserver_request(address: str | PathLike[str], fds: Sequence[int]) -> Child:
    """Ask the fork server at ``address`` for a child that receives ``fds``."""

def forkserver_serve(listener_fd: int, parent_pid: int) -> tuple[ParentLink, list[int]] | None:
    """Run the fork server loop; returns ``None`` in the server, ``(client, fds)`` in a child."""
