"""Starting a child through the fork server."""

from __future__ import annotations

import io
import os

from . import _core, context, forkserver, popen_fork, resource_tracker, spawn

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from .process import BaseProcess

__all__ = ["Popen"]


class Popen(popen_fork.Popen):
    """Asks the fork server for a child; the pickled process object goes in a bootstrap memfd."""

    method = "forkserver"

    def __init__(self, process_obj: BaseProcess) -> None:
        self._fds: list[int] = []
        super().__init__(process_obj)

    def duplicate_for_child(self, fd: int) -> int:
        """The child finds ``fd`` at this index of ``forkserver.get_inherited_fds()``."""
        if fd not in self._fds:
            self._fds.append(fd)
        return self._fds.index(fd)

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
        bootstrap_fd = _core.bootstrap_create(buf.getvalue())
        try:
            # The child shares this process's resource tracker, as with the stdlib: the
            # server passes its pipe on right after the bootstrap.
            tracker_fd = resource_tracker.getfd()
            assert tracker_fd is not None
            child: _core.Child = forkserver.connect_to_new_process(
                [bootstrap_fd, tracker_fd, *self._fds]
            )
        finally:
            os.close(bootstrap_fd)
        self._child = child
        self.pid = child.pid
