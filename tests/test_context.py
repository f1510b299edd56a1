"""Module-level functions, contexts and start methods, and the exception classes."""

from __future__ import annotations

import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

import _targets
from _support import START_METHODS, mp

pytestmark = pytest.mark.timeout(60)


# -- the current process -----------------------------------------------------------------


def test_current_process_in_main() -> None:
    me = mp.current_process()
    assert me is mp.current_process()
    assert me.name == "MainProcess"
    assert me.pid == os.getpid()
    assert me.ident == os.getpid()
    assert me.is_alive()
    assert me.daemon is False
    assert isinstance(me.authkey, bytes)


def test_parent_process_in_main() -> None:
    assert mp.parent_process() is None


def test_active_children_in_main_is_a_list() -> None:
    assert isinstance(mp.active_children(), list)


def test_cpu_count() -> None:
    count = mp.cpu_count()
    assert isinstance(count, int)
    assert count >= 1
    assert count == os.cpu_count()


# -- contexts and start methods ----------------------------------------------------------


def test_get_all_start_methods() -> None:
    import multiprocessing as stdlib  # the reference, imported by the test only

    methods = mp.get_all_start_methods()
    assert set(START_METHODS) <= set(methods)
    assert methods == stdlib.get_all_start_methods()


@pytest.mark.parametrize("method", START_METHODS)
def test_get_context(method: str) -> None:
    ctx = mp.get_context(method)
    assert ctx.get_start_method() == method
    assert mp.get_context(method).get_start_method() == method
    for name in (
        "Process",
        "current_process",
        "parent_process",
        "active_children",
        "cpu_count",
        "get_context",
        "get_start_method",
        "set_executable",
        "set_forkserver_preload",
        "freeze_support",
        "get_logger",
        "log_to_stderr",
    ):
        assert callable(getattr(ctx, name)), name
    assert ctx.get_context(method) is ctx


def test_get_context_unknown() -> None:
    with pytest.raises(ValueError):
        mp.get_context("no-such-method")


def test_concrete_context_start_method_is_fixed() -> None:
    with pytest.raises(ValueError):
        mp.get_context("spawn").set_start_method("fork")


def test_set_start_method() -> None:
    original = mp.get_start_method(allow_none=True)
    try:
        mp.set_start_method("spawn", force=True)
        assert mp.get_start_method() == "spawn"
        assert mp.get_context().get_start_method() == "spawn"
        with pytest.raises(RuntimeError):
            mp.set_start_method("fork")
        assert mp.get_start_method() == "spawn"
        mp.set_start_method("forkserver", force=True)
        assert mp.get_start_method() == "forkserver"
        with pytest.raises(ValueError):
            mp.set_start_method("no-such-method", force=True)
    finally:
        mp.set_start_method(original, force=True)
    assert mp.get_start_method(allow_none=True) == original


def test_set_start_method_is_used_by_process(tmp_path: Path) -> None:
    original = mp.get_start_method(allow_none=True)
    try:
        mp.set_start_method("spawn", force=True)
        p = mp.Process(target=_targets.exit_if_module_loaded, args=(__name__,))
        p.start()
        p.join()
        # A spawned child never imported this test module; a forked one would have it.
        assert p.exitcode == _targets.NOT_FOUND
    finally:
        mp.set_start_method(original, force=True)


def test_default_start_method_matches_stdlib(scripts: Any) -> None:
    result = scripts.run(
        """
        import multiprocessing as stdlib
        print(multiprocessing.get_start_method(allow_none=True))
        print(multiprocessing.get_start_method())
        print(stdlib.get_start_method())
        """
    )
    assert result.returncode == 0, result
    unset, ours, theirs = result.stdout.split()
    assert unset == "None"
    assert ours == theirs


def test_set_executable(tmp_path: Path) -> None:
    marker = tmp_path / "wrapper-ran"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    ctx = mp.get_context("spawn")
    try:
        ctx.set_executable(str(wrapper))
        p = ctx.Process(target=_targets.noop)
        p.start()
        p.join()
    finally:
        ctx.set_executable(sys.executable)
    assert p.exitcode == 0
    assert marker.exists()


def test_set_forkserver_preload_type_check() -> None:
    with pytest.raises(TypeError):
        mp.set_forkserver_preload([42])


@pytest.mark.parametrize("preload", [True, False])
def test_set_forkserver_preload(scripts: Any, preload: bool) -> None:
    # A fresh interpreter: the fork server is started once and preloads when it starts.
    result = scripts.run(
        f"""
        import _targets

        if __name__ == "__main__":
            ctx = multiprocessing.get_context("forkserver")
            if {preload}:
                ctx.set_forkserver_preload(["_preload_marker"])
            p = ctx.Process(target=_targets.exit_if_module_loaded, args=("_preload_marker",))
            p.start()
            p.join()
            print(p.exitcode)
        """
    )
    assert result.returncode == 0, result
    expected = _targets.FOUND if preload else _targets.NOT_FOUND
    assert result.stdout.split() == [str(expected)]


def test_freeze_support_is_a_no_op() -> None:
    assert mp.freeze_support() is None


# -- logging -----------------------------------------------------------------------------


def test_get_logger() -> None:
    logger = mp.get_logger()
    assert isinstance(logger, logging.Logger)
    assert logger is mp.get_logger()


def test_log_to_stderr(scripts: Any) -> None:
    result = scripts.run(
        """
        import logging

        logger = multiprocessing.log_to_stderr(logging.INFO)
        assert logger is multiprocessing.get_logger()
        assert logger.level == logging.INFO
        logger.info("hello from %s", "the parent")
        """
    )
    assert result.returncode == 0, result
    assert "[INFO/MainProcess] hello from the parent" in result.stderr.splitlines()


@pytest.mark.parametrize("method", START_METHODS)
def test_log_to_stderr_in_child(scripts: Any, method: str) -> None:
    result = scripts.run(
        """
        import logging
        import sys

        def work():
            multiprocessing.get_logger().info("hello from the child")

        if __name__ == "__main__":
            multiprocessing.log_to_stderr(logging.INFO)
            p = multiprocessing.get_context(sys.argv[1]).Process(target=work, name="kid")
            p.start()
            p.join()
            print(p.exitcode)
        """,
        method,
    )
    assert result.returncode == 0, result
    assert result.stdout.split() == ["0"], result
    assert "[INFO/kid] hello from the child" in result.stderr.splitlines(), result


# -- exceptions --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["TimeoutError", "AuthenticationError", "BufferTooShort"])
def test_exception_hierarchy(name: str) -> None:
    exc = getattr(mp, name)
    assert issubclass(mp.ProcessError, Exception)
    assert issubclass(exc, mp.ProcessError)
    for method in START_METHODS:
        assert getattr(mp.get_context(method), name) is exc
    assert mp.get_context("fork").ProcessError is mp.ProcessError


@pytest.mark.parametrize(
    "name", ["ProcessError", "TimeoutError", "AuthenticationError", "BufferTooShort"]
)
def test_exceptions_pickle(name: str) -> None:
    exc = getattr(mp, name)("what went wrong")
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert again.args == ("what went wrong",)
    with pytest.raises(mp.ProcessError, match="what went wrong"):
        raise exc
