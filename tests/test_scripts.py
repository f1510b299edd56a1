"""Whole programs in fresh interpreters: child output, interpreter exit, the main module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from _support import pid_alive, read_when_present, wait_until

pytestmark = pytest.mark.timeout(120)


def test_child_errors_reach_stderr(scripts: Any, start_method: str) -> None:
    result = scripts.run(
        """
        import sys

        def boom():
            raise ValueError("boom from the child")

        def leave():
            sys.exit("goodbye from the child")

        if __name__ == "__main__":
            ctx = multiprocessing.get_context(sys.argv[1])
            for target in (boom, leave):
                p = ctx.Process(target=target, name=f"{target.__name__}-proc")
                p.start()
                p.join()
                print(target.__name__, p.exitcode, flush=True)
        """,
        start_method,
    )
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["boom 1", "leave 1"], result
    err = result.stderr
    assert "Process boom-proc:\nTraceback (most recent call last):" in err, result
    assert "ValueError: boom from the child" in err, result
    assert "goodbye from the child" in err.splitlines(), result
    # sys.exit(message) prints the message, not a traceback.
    assert err.count("Traceback (most recent call last):") == 1, result


def test_output_is_flushed_not_duplicated(scripts: Any, start_method: str) -> None:
    result = scripts.run(
        """
        import sys

        def speak():
            print("from the child")  # no flush: the child must flush at exit

        if __name__ == "__main__":
            print("before start")  # buffered (stdout is a pipe): must not be copied
            p = multiprocessing.get_context(sys.argv[1]).Process(target=speak)
            p.start()
            p.join()
            print("after join", p.exitcode)
        """,
        start_method,
    )
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines.count("before start") == 1, result
    assert lines.count("from the child") == 1, result
    assert lines[-1] == "after join 0", result


def test_interpreter_exit_terminates_daemons_and_joins_others(
    scripts: Any, start_method: str, tmp_path: Path
) -> None:
    result = scripts.run(
        """
        import sys
        import time

        import _targets
        from _support import read_when_present

        def slow_worker(done):
            # Still busy when the parent reaches its end: a parent that did not join it
            # would be gone before `done` is written.
            time.sleep(1.0)
            _targets.write_atomically(done, "done")

        if __name__ == "__main__":
            method, d = sys.argv[1], sys.argv[2]
            ctx = multiprocessing.get_context(method)
            daemon = ctx.Process(
                target=_targets.write_on_sigterm,
                args=(f"{d}/daemon-stopped", f"{d}/daemon-ready"),
                daemon=True,
            )
            daemon.start()
            worker = ctx.Process(target=slow_worker, args=(f"{d}/done",))
            worker.start()
            read_when_present(f"{d}/daemon-ready")
            print(daemon.pid, worker.pid, flush=True)
        """,
        start_method,
        str(tmp_path),
    )
    assert result.returncode == 0, result
    daemon_pid, worker_pid = map(int, result.stdout.split())
    # The non-daemonic child was joined: it had finished before the parent exited.
    assert (tmp_path / "done").read_text() == "done", result
    assert not pid_alive(worker_pid)
    # The daemonic child was stopped with SIGTERM (its handler ran), not left running.
    assert read_when_present(tmp_path / "daemon-stopped") == "terminated", result
    assert wait_until(lambda: not pid_alive(daemon_pid))


def test_missing_main_guard_under_spawn(scripts: Any) -> None:
    # Starting a process at import time, as a script without the guard does, must fail in
    # the child with the stdlib's explanation instead of starting children recursively.
    result = scripts.run(
        """
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(target=print, args=("never printed",))
        p.start()
        p.join()
        print("exitcode", p.exitcode, flush=True)
        """,
        timeout=60,
    )
    err = result.stderr
    assert "RuntimeError" in err, result
    assert "bootstrapping phase" in err, result
    assert "freeze_support()" in err, result
    assert "if __name__ == '__main__':" in err, result
    assert err.count("bootstrapping phase") == 1, result  # one child, not a cascade
    assert "never printed" not in result.stdout
    assert result.stdout.splitlines()[-1] == "exitcode 1", result
    assert result.returncode == 0, result


@pytest.mark.ferroproc_only
def test_runtime_never_imports_stdlib_multiprocessing(scripts: Any) -> None:
    result = scripts.run(
        """
        import json
        import sys

        import _targets

        def stdlib_modules():
            return [m for m in sys.modules if m == "multiprocessing"
                    or m.startswith("multiprocessing.")]

        if __name__ == "__main__":
            report = {"after_import": stdlib_modules(), "children": {}}
            for method in multiprocessing.get_all_start_methods():
                p = multiprocessing.get_context(method).Process(
                    target=_targets.exit_if_module_loaded, args=("multiprocessing",)
                )
                p.start()
                p.join()
                report["children"][method] = p.exitcode
            report["after_children"] = stdlib_modules()
            print(json.dumps(report))
        """
    )
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["after_import"] == []
    assert report["after_children"] == []
    # NOT_FOUND (1): no child imported it either.
    assert report["children"] == {"fork": 1, "spawn": 1, "forkserver": 1}
