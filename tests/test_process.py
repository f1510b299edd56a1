"""The ``Process`` API with real children, under every start method."""

from __future__ import annotations

import json
import os
import re
import select
import signal
from pathlib import Path
from typing import Any

import pytest

import _targets
from _support import MODULE_NAME, mp, read_when_present, wait_until

pytestmark = pytest.mark.timeout(60)


def run_child(ctx: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
    p = ctx.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join()
    return p


# -- starting, joining, exit codes -------------------------------------------------------


def test_start_join_exitcode_zero(ctx: Any) -> None:
    p = ctx.Process(target=_targets.noop)
    assert p.exitcode is None
    p.start()
    assert p.join() is None
    assert p.exitcode == 0
    assert not p.is_alive()


def test_return_value_is_ignored(ctx: Any) -> None:
    assert run_child(ctx, _targets.return_value).exitcode == 0


def test_no_target_runs_nothing(ctx: Any) -> None:
    p = ctx.Process()
    p.start()
    p.join()
    assert p.exitcode == 0


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (3, 3), (255, 255), (None, 0)])
def test_sys_exit_code(ctx: Any, code: Any, expected: int) -> None:
    assert run_child(ctx, _targets.exit_with, code).exitcode == expected


def test_sys_exit_message_gives_one(ctx: Any) -> None:
    assert run_child(ctx, _targets.exit_with, "a message, not a code").exitcode == 1


def test_exception_gives_one(ctx: Any) -> None:
    assert run_child(ctx, _targets.raise_value_error, "boom").exitcode == 1


def test_os_exit(ctx: Any) -> None:
    assert run_child(ctx, _targets.os_exit, 3).exitcode == 3


def test_module_level_process_uses_default_context() -> None:
    p = mp.Process(target=_targets.exit_with, args=(5,))
    p.start()
    p.join()
    assert p.exitcode == 5


# -- targets, arguments, subclasses ----------------------------------------------------


def test_target_args_and_kwargs(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "args.json"
    p = ctx.Process(
        target=_targets.write_args,
        args=(str(out), 1, "two", [3.0, None]),
        kwargs={"key": "value", "n": 7},
    )
    p.start()
    p.join()
    assert p.exitcode == 0
    assert json.loads(out.read_text()) == {
        "args": [1, "two", [3.0, None]],
        "kwargs": {"key": "value", "n": 7},
    }


def test_subclass_run(start_method: str, tmp_path: Path) -> None:
    out = tmp_path / "sub.json"
    p = _targets.WRITERS[start_method](str(out), "from the subclass")
    assert re.fullmatch(rf"{type(p).__name__}-\d+", p.name)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert json.loads(out.read_text()) == {"value": "from the subclass", "name": p.name}


def test_subclass_of_module_level_process() -> None:
    p = _targets.ExitingProcess(6)
    assert isinstance(p, mp.Process)
    p.start()
    p.join()
    assert p.exitcode == 6


def test_run_in_this_process_calls_target() -> None:
    seen: list[Any] = []
    p = mp.Process(target=seen.append, args=("called",))
    p.run()
    assert seen == ["called"]
    assert p.exitcode is None  # run() does not start anything


def test_group_must_be_none() -> None:
    with pytest.raises(AssertionError):
        mp.Process(group=object(), target=_targets.noop)


# -- properties ------------------------------------------------------------------------


def test_properties_before_start(ctx: Any) -> None:
    p = ctx.Process(target=_targets.noop)
    assert p.pid is None
    assert p.ident is None
    assert p.exitcode is None
    assert p.daemon is False
    assert not p.is_alive()
    assert re.fullmatch(rf"{type(p).__name__}-\d+", p.name)
    with pytest.raises(ValueError, match="not started"):
        p.sentinel  # noqa: B018


def test_default_names_count_up() -> None:
    first, second = mp.Process(), mp.Process()
    n1 = int(first.name.rsplit("-", 1)[1])
    n2 = int(second.name.rsplit("-", 1)[1])
    assert n2 == n1 + 1


def test_name(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    p = ctx.Process(target=_targets.describe_self, args=(str(out),), name="given")
    assert p.name == "given"
    p.name = "renamed"
    assert p.name == "renamed"
    with pytest.raises(AssertionError):
        p.name = 42
    p.start()
    p.join()
    assert p.exitcode == 0
    assert json.loads(out.read_text())["name"] == "renamed"


def test_pid_ident_and_child_view(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    p = ctx.Process(target=_targets.describe_self, args=(str(out),))
    p.start()
    pid = p.pid
    assert isinstance(pid, int)
    assert pid > 0
    assert pid != os.getpid()
    assert p.ident == pid
    p.join()
    assert p.exitcode == 0
    assert p.pid == pid  # still known after exit
    info = json.loads(out.read_text())
    assert info["pid"] == pid
    assert info["me_pid"] == pid
    assert info["ident"] == pid
    assert info["name"] == p.name
    assert info["alive"] is True
    assert info["daemon"] is False
    assert info["children"] == 0


@pytest.mark.parametrize("daemon", [True, False])
def test_daemon(ctx: Any, tmp_path: Path, daemon: bool) -> None:
    out = tmp_path / "info.json"
    p = ctx.Process(target=_targets.describe_self, args=(str(out),), daemon=daemon)
    assert p.daemon is daemon
    p.daemon = not daemon
    assert p.daemon is not daemon
    p.daemon = daemon
    p.start()
    with pytest.raises(AssertionError):
        p.daemon = not daemon
    p.join()
    assert p.exitcode == 0
    assert p.daemon is daemon
    assert json.loads(out.read_text())["daemon"] is daemon


def test_daemonic_process_cannot_have_children(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "error.txt"
    method = ctx.get_start_method()
    p = ctx.Process(target=_targets.try_start_child, args=(method, str(out)), daemon=True)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert "daemonic processes are not allowed to have children" in out.read_text()


def test_authkey(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    p = ctx.Process(target=_targets.describe_self, args=(str(out),))
    inherited = p.authkey
    assert isinstance(inherited, bytes)
    assert inherited == mp.current_process().authkey
    assert len(inherited) >= 32
    p.authkey = b"a key of our own"
    assert p.authkey == b"a key of our own"
    p.start()
    p.join()
    assert p.exitcode == 0
    assert json.loads(out.read_text())["authkey"] == b"a key of our own".hex()


def test_inherited_authkey_reaches_child(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    p = run_child(ctx, _targets.describe_self, str(out))
    assert p.exitcode == 0
    assert json.loads(out.read_text())["authkey"] == bytes(mp.current_process().authkey).hex()


def test_parent_process_in_child(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    assert run_child(ctx, _targets.describe_self, str(out)).exitcode == 0
    parent = json.loads(out.read_text())["parent"]
    assert parent == {"pid": os.getpid(), "name": mp.current_process().name, "alive": True}


def test_grandchild_names_and_parent(ctx: Any, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    method = ctx.get_start_method()
    p = ctx.Process(target=_targets.start_grandchild, args=(method, str(out)))
    p.start()
    p.join()
    assert p.exitcode == 0
    info = json.loads(out.read_text())
    assert info["name"] == f"{p.name}:1"
    assert info["parent"] == {"pid": p.pid, "name": p.name, "alive": True}


# -- start/close misuse ------------------------------------------------------------------


def test_start_twice(ctx: Any) -> None:
    p = ctx.Process(target=_targets.noop)
    p.start()
    with pytest.raises(AssertionError):
        p.start()
    p.join()
    with pytest.raises(AssertionError):
        p.start()
    assert p.exitcode == 0


def test_join_before_start(ctx: Any) -> None:
    with pytest.raises(AssertionError):
        ctx.Process(target=_targets.noop).join()


def test_close_after_exit(ctx: Any) -> None:
    p = run_child(ctx, _targets.noop)
    p.close()
    p.close()  # closing twice is allowed
    for attempt in (
        p.start,
        p.join,
        p.is_alive,
        p.terminate,
        p.kill,
        lambda: p.pid,
        lambda: p.ident,
        lambda: p.exitcode,
        lambda: p.sentinel,
    ):
        with pytest.raises(ValueError, match="closed"):
            attempt()
    assert p.name  # name and daemon stay readable
    assert p.daemon is False


def test_close_before_start(ctx: Any) -> None:
    p = ctx.Process(target=_targets.noop)
    p.close()
    with pytest.raises(ValueError, match="closed"):
        p.start()


def test_close_running_process(ctx: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    p = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    p.start()
    with pytest.raises(ValueError):
        p.close()
    assert p.is_alive()  # the failed close changed nothing
    release.touch()
    p.join()
    assert p.exitcode == 0
    p.close()


# -- reprs -------------------------------------------------------------------------------


def test_repr_through_life(ctx: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    p = ctx.Process(target=_targets.wait_for_release, args=(str(release),), name="watched")
    cls, me = type(p).__name__, os.getpid()
    assert repr(p) == f"<{cls} name='watched' parent={me} initial>"
    p.start()
    assert repr(p) == f"<{cls} name='watched' pid={p.pid} parent={me} started>"
    release.touch()
    p.join()
    assert repr(p) == f"<{cls} name='watched' pid={p.pid} parent={me} stopped exitcode=0>"
    p.close()
    assert repr(p) == f"<{cls} name='watched' parent={me} closed>"


def test_repr_daemon_and_exit_code(ctx: Any) -> None:
    p = ctx.Process(target=_targets.exit_with, args=(4,), name="d", daemon=True)
    cls, me = type(p).__name__, os.getpid()
    assert repr(p) == f"<{cls} name='d' parent={me} initial daemon>"
    p.start()
    p.join()
    assert repr(p) == f"<{cls} name='d' pid={p.pid} parent={me} stopped exitcode=4 daemon>"


def test_repr_signal_exit_code(ctx: Any, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=_targets.write_ready_and_sleep, args=(str(ready),), name="t")
    p.start()
    read_when_present(ready)
    p.terminate()
    p.join()
    cls, me = type(p).__name__, os.getpid()
    assert repr(p) == f"<{cls} name='t' pid={p.pid} parent={me} stopped exitcode=-SIGTERM>"


def test_repr_main_process() -> None:
    assert re.fullmatch(r"<\w+ name='MainProcess' parent=None started>", repr(mp.current_process()))


# -- watching and stopping ---------------------------------------------------------------


def test_join_timeout_while_running(ctx: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    p = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    p.start()
    assert p.is_alive()
    assert p.join(0) is None
    assert p.join(0.05) is None
    assert p.exitcode is None
    assert p.is_alive()
    release.touch()
    assert p.join(60) is None
    assert p.exitcode == 0
    assert not p.is_alive()


def test_terminate(ctx: Any, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=_targets.write_ready_and_sleep, args=(str(ready),))
    p.start()
    assert int(read_when_present(ready)) == p.pid
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM
    p.terminate()  # stopping a stopped process is harmless
    p.kill()
    assert p.exitcode == -signal.SIGTERM


def test_kill(ctx: Any, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    p = ctx.Process(target=_targets.write_ready_and_sleep, args=(str(ready),))
    p.start()
    read_when_present(ready)
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL


def test_terminate_right_after_start(ctx: Any) -> None:
    p = ctx.Process(target=_targets.sleep, args=(60,))
    p.start()
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM


def test_sentinel_with_select(ctx: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    p = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    p.start()
    sentinel = p.sentinel
    assert isinstance(sentinel, int)
    assert p.sentinel == sentinel
    assert select.select([sentinel], [], [], 0)[0] == []
    release.touch()
    assert select.select([sentinel], [], [], 60)[0] == [sentinel]
    p.join()
    assert p.exitcode == 0


def test_sentinel_with_connection_wait(ctx: Any, tmp_path: Path) -> None:
    connection = pytest.importorskip(f"{MODULE_NAME}.connection")
    release = tmp_path / "release"
    p = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    p.start()
    assert connection.wait([p.sentinel], timeout=0) == []
    release.touch()
    assert connection.wait([p.sentinel], timeout=60) == [p.sentinel]
    p.join()
    assert p.exitcode == 0


def test_sentinel_waits_for_several(ctx: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    waiting = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    quick = ctx.Process(target=_targets.noop)
    waiting.start()
    quick.start()
    ready = select.select([waiting.sentinel, quick.sentinel], [], [], 60)[0]
    assert ready == [quick.sentinel]
    release.touch()
    waiting.join()
    quick.join()
    assert (waiting.exitcode, quick.exitcode) == (0, 0)


def test_active_children(ctx: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    a = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    b = ctx.Process(target=_targets.wait_for_release, args=(str(release),))
    assert a not in mp.active_children()
    a.start()
    b.start()
    children = mp.active_children()
    assert a in children
    assert b in children
    release.touch()
    a.join()
    assert a not in mp.active_children()
    b.join()
    assert b not in mp.active_children()


def test_active_children_reaps_exited(ctx: Any) -> None:
    p = ctx.Process(target=_targets.noop)
    p.start()
    assert select.select([p.sentinel], [], [], 60)[0] == [p.sentinel]
    # An exited child is dropped even though nobody joined it.
    assert wait_until(lambda: p not in mp.active_children())
    assert p.exitcode == 0
