"""ferroproc.util helpers that the stdlib exposes and other modules rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _support import mp

util = pytest.importorskip(f"{mp.__name__}.util")


@pytest.mark.ferroproc_only
@pytest.mark.timeout(60)
def test_close_all_fds_except_keeps_exactly_the_given_descriptors() -> None:
    # The stdlib's version closes everything when 0 is kept: on CPython 3.11
    # os.closerange(0, 0) closes every descriptor instead of none.
    r, w = os.pipe()
    spare_r, spare_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            util.close_all_fds_except([0, 1, 2, w])
            # listdir opens one descriptor of its own, at the lowest free number.
            remaining = sorted(int(name) for name in os.listdir("/proc/self/fd"))
            os.write(w, json.dumps(remaining).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.close(spare_r)
    os.close(spare_w)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    remaining = json.loads(os.read(r, 4096))
    os.close(r)
    assert w in remaining
    assert spare_r not in remaining or spare_r == min(set(remaining) - {0, 1, 2, w})
    assert spare_w not in remaining
    assert len(remaining) == 5


@pytest.mark.timeout(60)
def test_finalize_runs_once_and_reports_its_state() -> None:
    calls: list[int] = []

    class Owner:
        pass

    owner = Owner()
    finalizer = util.Finalize(owner, calls.append, args=(1,), exitpriority=5)
    assert finalizer.still_active()
    assert finalizer() is None
    assert not finalizer.still_active()
    assert finalizer() is None
    assert calls == [1]


@pytest.mark.ferroproc_only
def test_usable_cpu_count_is_within_the_affinity_mask() -> None:
    usable = util.usable_cpu_count()
    assert isinstance(usable, int)
    assert 1 <= usable <= len(os.sched_getaffinity(0))


@pytest.mark.ferroproc_only
@pytest.mark.timeout(60)
def test_usable_cpu_count_follows_an_affinity_mask_of_one_cpu() -> None:
    # CPU 0 may be outside this process's mask (a container's cpuset): pin the child to a
    # CPU it is allowed to run on.
    cpu = min(os.sched_getaffinity(0))
    code = (
        "import os, sys\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        f"from {util.__name__} import usable_cpu_count\n"
        "print(usable_cpu_count(), len(os.sched_getaffinity(0)), os.cpu_count())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    usable, mask, machine = (int(field) for field in done.stdout.split())
    assert (usable, mask) == (1, 1)
    assert machine == os.cpu_count()
