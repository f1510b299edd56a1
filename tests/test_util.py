"""ferroproc.util helpers that the stdlib exposes and other modules rely on."""

from __future__ import annotations

import json
import os

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
