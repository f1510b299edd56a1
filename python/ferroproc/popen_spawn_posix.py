"""Starting a child by spawn: a fresh interpreter that unpickles the process object."""

from __future__ import annotations

import io
import os

from . import _core, context, popen_fork, resource_tracker, spawn

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from .process import BaseProcess

__all__ = ["Popen"]

# The core renumbers passed descriptors from 3 in the order given.
FIRST_PASSED_FD = 3


class Popen(popen_fork.Popen):
    """Spawns ``python -c 'from ferroproc.spawn import spawn_main; ...'``.

    The pickled preparation data and process object travel in a sealed memfd (the
    bootstrap), so the parent never blocks writing them and nothing is lost if the child
    dies early. Descriptors that pickled objects need are passed with
    ``duplicate_for_child`` and appear in the child renumbered.
    """

    method = "spawn"

    def __init__(self, process_obj: BaseProcess) -> None:
        self._fds: list[int] = []
        super().__init__(process_obj)

    def duplicate_for_child(self, fd: int) -> int:
        # Slot 0 is the bootstrap; passed descriptors follow it, each passed once.
        if fd not in self._fds:
            self._fds.append(fd)
        return FIRST_PASSED_FD + 1 + self._fds.index(fd)

    def _launch(self, process_obj: BaseProcess) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            # Looked up at each start, so a replaced `ctx.reducer` takes effect.
            context._default_context.reducer.dump(prep_data, buf)
            context._default_context.reducer.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        # The child shares this process's resource tracker, as with the stdlib.
        tracker_fd = resource_tracker.getfd()
        child_tracker_fd = None if tracker_fd is None else self.duplicate_for_child(tracker_fd)
        bootstrap_fd = _core.bootstrap_create(buf.getvalue())
        try:
            args = spawn.get_command_line(
                bootstrap_fd=FIRST_PASSED_FD, parent_pid=os.getpid(), tracker_fd=child_tracker_fd
            )
            child = _core.spawn(spawn.get_executable(), args[1:], [bootstrap_fd, *self._fds])
        finally:
            os.close(bootstrap_fd)
        self._child = child
        self.pid = child.pid
