"""Preparing a spawned interpreter: the stdlib's ``multiprocessing.spawn`` API.

Parent side: ``get_preparation_data`` collects what a fresh interpreter needs to unpickle
the process object (``sys.path``, the working directory, the main module, the authkey,
logging); ``get_command_line`` builds the child's command. Child side: ``spawn_main``
reads the bootstrap the parent left in a memfd, re-imports the parent's main module as
``__mp_main__``, unpickles the process object and runs it.
"""

from __future__ import annotations

import io
import os
import pickle
import runpy
import sys
import types

from . import _core, process, util

# `typing` costs milliseconds of start-up in every child; annotations only need it
# when type checking.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = [
    "get_command_line",
    "get_executable",
    "get_preparation_data",
    "import_main_path",
    "is_forking",
    "prepare",
    "set_executable",
    "spawn_main",
]

WINEXE = False
WINSERVICE = False

_executable: str | None = sys.executable or None


def set_executable(executable: str | os.PathLike[str]) -> None:
    """Use ``executable`` as the interpreter of spawned children."""
    global _executable
    _executable = os.fsdecode(executable)


def get_executable() -> str:
    """The interpreter spawned children run."""
    if _executable is None:
        raise ValueError(
            "no interpreter to spawn children with: sys.executable is empty; call set_executable()"
        )
    return _executable


def is_forking(argv: list[str]) -> bool:
    """Whether ``argv`` is the command line of a spawned child."""
    return len(argv) >= 2 and argv[1] == "--multiprocessing-fork"


def freeze_support() -> None:
    """Run the child's code if this frozen program was started as a spawned child."""
    if is_forking(sys.argv):  # pragma: no cover - frozen Windows executables only
        kwds = {}
        for arg in sys.argv[2:]:
            name, value = arg.split("=")
            kwds[name] = None if value == "None" else int(value)
        spawn_main(**kwds)  # type: ignore[arg-type]
        sys.exit()


def get_command_line(**kwds: object) -> list[str]:
    """The command line of a spawned child; ``kwds`` become ``spawn_main``'s arguments."""
    prog = "from ferroproc.spawn import spawn_main; spawn_main({})".format(
        ", ".join("{}={!r}".format(*item) for item in kwds.items())
    )
    return [
        get_executable(),
        *util._args_from_interpreter_flags(),
        "-c",
        prog,
        "--multiprocessing-fork",
    ]


def spawn_main(bootstrap_fd: int, parent_pid: int, tracker_fd: int | None = None) -> None:
    """Entry point of a spawned child: run the process object, then exit with its code."""
    assert is_forking(sys.argv), "spawn_main() runs only in a spawned child"
    if tracker_fd is not None:
        from . import resource_tracker

        resource_tracker._set_inherited_fd(tracker_fd)
    try:
        payload = _core.bootstrap_read(bootstrap_fd)
    finally:
        os.close(bootstrap_fd)
    exitcode = _main(payload, parent_pid)
    sys.exit(exitcode)


def _main(payload: bytes, parent_pid: int) -> int:
    from .popen_fork import _link_to_parent

    return _run_payload(payload, lambda daemon: _link_to_parent(parent_pid, daemon))


def _run_payload(payload: bytes, link_to_parent: Callable[[bool], _core.ParentLink | None]) -> int:
    """Prepare this interpreter, unpickle the process object, link to the parent, run it."""
    stream = io.BytesIO(payload)
    current = process.current_process()
    current._inheriting = True  # type: ignore[attr-defined]
    try:
        preparation_data = pickle.load(stream)
        prepare(preparation_data)
        process_obj: process.BaseProcess = pickle.load(stream)
    finally:
        del current._inheriting  # type: ignore[attr-defined]
    return process_obj._bootstrap(parent_link=link_to_parent(process_obj.daemon))


def _check_not_importing_main() -> None:
    if getattr(process.current_process(), "_inheriting", False):
        raise RuntimeError(
            "An attempt has been made to start a new process before the current process "
            "has finished its bootstrapping phase.\n\n"
            "With the spawn and forkserver start methods each child imports the main "
            "module again, so code that starts processes must not run at import time. "
            "Put it under the main-module guard:\n\n"
            "    if __name__ == '__main__':\n"
            "        freeze_support()  # only needed for frozen executables\n"
            "        ...\n\n"
            "See 'Safe importing of main module' in the multiprocessing documentation."
        )


def get_preparation_data(name: str) -> dict[str, Any]:
    """What a spawned child needs before it can unpickle the process object."""
    _check_not_importing_main()
    from .context import _default_context

    data: dict[str, Any] = {
        "log_to_stderr": util._log_to_stderr,
        "authkey": process.current_process().authkey,
    }
    if util._logger is not None:
        data["log_level"] = util._logger.getEffectiveLevel()
    # An empty entry means "the current directory at start-up", which the child's differs from.
    sys_path = [process.ORIGINAL_DIR if entry == "" else entry for entry in sys.path]
    data.update(
        name=name,
        sys_path=sys_path,
        sys_argv=sys.argv,
        orig_dir=process.ORIGINAL_DIR,
        dir=os.getcwd(),
        start_method=_default_context.get_start_method(),
    )
    main_module = sys.modules["__main__"]
    main_mod_name = getattr(main_module.__spec__, "name", None)
    if main_mod_name is not None:
        data["init_main_from_name"] = main_mod_name
    else:
        main_path = getattr(main_module, "__file__", None)
        if main_path is not None:
            if not os.path.isabs(main_path) and process.ORIGINAL_DIR is not None:
                main_path = os.path.join(process.ORIGINAL_DIR, main_path)
            data["init_main_from_path"] = os.path.normpath(main_path)
    return data


old_main_modules: list[types.ModuleType] = []


def prepare(data: dict[str, Any]) -> None:
    """Make this fresh interpreter look like the parent, so the process object unpickles."""
    from .context import _default_context

    current = process.current_process()
    if "name" in data:
        current.name = data["name"]
    if "authkey" in data:
        current.authkey = data["authkey"]
    if data.get("log_to_stderr"):
        util.log_to_stderr()
    if "log_level" in data:
        util.get_logger().setLevel(data["log_level"])
    if "sys_path" in data:
        sys.path = data["sys_path"]
    if "sys_argv" in data:
        sys.argv = data["sys_argv"]
    if "dir" in data:
        os.chdir(data["dir"])
    if "orig_dir" in data:
        process.ORIGINAL_DIR = data["orig_dir"]
    if "start_method" in data:
        _default_context.set_start_method(data["start_method"], force=True)
    if "init_main_from_name" in data:
        _fixup_main_from_name(data["init_main_from_name"])
    elif "init_main_from_path" in data:
        _fixup_main_from_path(data["init_main_from_path"])


def _install_main(main_content: dict[str, Any]) -> None:
    """Make the re-run main module both ``__main__`` and ``__mp_main__``."""
    old_main_modules.append(sys.modules["__main__"])
    main_module = types.ModuleType("__mp_main__")
    main_module.__dict__.update(main_content)
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main_module


def _fixup_main_from_name(mod_name: str) -> None:
    # A package's or directory's __main__ runs its main-only code unguarded: leave it alone.
    if mod_name == "__main__" or mod_name.endswith(".__main__"):
        return
    if getattr(sys.modules["__main__"].__spec__, "name", None) == mod_name:
        return
    _install_main(runpy.run_module(mod_name, run_name="__mp_main__", alter_sys=True))


def _fixup_main_from_path(main_path: str) -> None:
    # IPython's launcher has no main guard; treat it like a package __main__.
    if os.path.splitext(os.path.basename(main_path))[0] == "ipython":
        return
    if getattr(sys.modules["__main__"], "__file__", None) == main_path:
        return
    _install_main(runpy.run_path(main_path, run_name="__mp_main__"))


def import_main_path(main_path: str) -> None:
    """Import the script at ``main_path`` as ``__mp_main__`` (set ``__main__`` to it)."""
    _fixup_main_from_path(main_path)
