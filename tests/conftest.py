"""Shared fixtures: the module under test, one ``ctx`` per start method, script runners.

``FERROPROC_TEST_MODULE=multiprocessing`` runs the suite against the stdlib; tests of
promises the stdlib does not keep carry ``@pytest.mark.ferroproc_only`` and are skipped
there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

# Children must import `_targets` and `_support`: put this folder on sys.path here, and on
# PYTHONPATH for interpreters started by spawn, by the fork server and by the script tests.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p
)

from _support import IS_STDLIB, MODULE_NAME, START_METHODS, mp  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ferroproc_only: a promise ferroproc makes and the stdlib does not keep; "
        "skipped when FERROPROC_TEST_MODULE=multiprocessing",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"module under test: {MODULE_NAME} ({mp.__file__})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not IS_STDLIB:
        return
    skip = pytest.mark.skip(reason="ferroproc-only promise; the stdlib does not keep it")
    for item in items:
        if item.get_closest_marker("ferroproc_only") is not None:
            item.add_marker(skip)


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    """Each start method in turn."""
    return str(request.param)


@pytest.fixture
def ctx(start_method: str) -> object:
    """The module's context for each start method in turn."""
    return mp.get_context(start_method)


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    """Kills and reaps whatever child a failing test left behind."""
    yield
    for child in mp.active_children():
        child.kill()
        child.join()


class ScriptResult:
    """What a script run by :class:`ScriptRunner` printed and how it exited."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return (
            f"ScriptResult(returncode={self.returncode})\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


class ScriptRunner:
    """Runs Python scripts in fresh interpreters, each in its own process group.

    A script is written to a file (so spawned children can re-import it as their main
    module, as with a real program) and starts with ``import <module> as multiprocessing``.
    Every process group is SIGKILLed at teardown, so a failing test leaves nothing behind.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.groups: list[int] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.count = 0

    def write(self, source: str) -> Path:
        self.count += 1
        path = self.directory / f"script_{self.count}.py"
        header = f"import {MODULE_NAME} as multiprocessing\n"
        path.write_text(header + textwrap.dedent(source))
        return path

    def start(self, source: str, *args: str) -> subprocess.Popen[str]:
        """Starts a script with its output piped; the caller talks to it."""
        path = self.write(source)
        proc = subprocess.Popen(
            [sys.executable, str(path), *args],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.groups.append(proc.pid)
        self.procs.append(proc)
        return proc

    def run(self, source: str, *args: str, timeout: float = 60) -> ScriptResult:
        """Runs a script to completion and returns what it printed."""
        proc = self.start(source, *args)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(proc.pid)
            stdout, stderr = proc.communicate()
            pytest.fail(
                f"script did not finish within {timeout} s\n"
                f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            )
        return ScriptResult(proc.returncode, stdout, stderr)

    @staticmethod
    def kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def close(self) -> None:
        for pgid in self.groups:
            self.kill_group(pgid)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture
def scripts(tmp_path: Path) -> Iterator[ScriptRunner]:
    """Runs scripts in fresh interpreters; see :class:`ScriptRunner`."""
    runner = ScriptRunner(tmp_path)
    try:
        yield runner
    finally:
        runner.close()
