"""A parent that dies, even by SIGKILL, takes its daemonic children with it.

The stdlib leaves them running (they are reparented and live on), so these tests are
ferroproc-only promises.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from _support import START_METHODS, pid_alive, read_when_present, wait_until

pytestmark = [pytest.mark.ferroproc_only, pytest.mark.timeout(120)]

PARENT = """
import sys
import threading

import _targets
from _support import read_when_present

if __name__ == "__main__":
    method, how, info = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = multiprocessing.get_context(method)
    children = []

    def start():
        p = ctx.Process(target=_targets.write_pid_and_ppid_and_sleep, args=(info,), daemon=True)
        p.start()
        children.append(p)

    if how == "thread":
        # Started from a thread that is gone by the time the parent dies: the child must
        # not be tied to the thread (PR_SET_PDEATHSIG would kill it when the thread exits).
        t = threading.Thread(target=start)
        t.start()
        t.join()
    else:
        start()
    read_when_present(info)
    print("ready", flush=True)
    threading.Event().wait()  # until SIGKILLed
"""


@pytest.mark.parametrize("how", ["main", "thread"])
@pytest.mark.parametrize("method", START_METHODS)
def test_sigkilled_parent_leaves_no_daemonic_child(
    scripts: Any, tmp_path: Path, method: str, how: str
) -> None:
    info_path = tmp_path / "child.json"
    parent = scripts.start(PARENT, method, how, str(info_path))
    assert parent.stdout.readline() == "ready\n"
    info = json.loads(read_when_present(info_path))
    child, child_parent = info["pid"], info["ppid"]
    assert pid_alive(child), "the daemonic child died before its parent"

    os.kill(parent.pid, signal.SIGKILL)
    assert parent.wait() == -signal.SIGKILL

    assert wait_until(lambda: not pid_alive(child)), f"daemonic child {child} outlived its parent"
    # Under forkserver the kernel parent is the server, which must not outlive its client.
    assert wait_until(lambda: not pid_alive(child_parent)), f"{child_parent} outlived the parent"
