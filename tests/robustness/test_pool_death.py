"""Pool workers that die, tasks that overrun, a pool stopped or abandoned mid-work, a
parent interrupted or killed: nothing waits forever and nothing is left running.

With the stdlib, a worker killed mid-task leaves its result pending forever, a terminated
pool's results never arrive, and a SIGKILLed parent's workers live on. These are
ferroproc's promises (DESIGN.md, "Robustness"). Every wait is bounded: ``PROMPT`` for
what must happen promptly, generous so that it only ever catches a hang.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import _pool_targets as t
from _support import START_METHODS, mp, pid_alive, wait_until

pytestmark = [pytest.mark.ferroproc_only, pytest.mark.timeout(60)]

# Bounds a wait for something that must happen promptly; it fails a hang, it is no speed
# claim.
PROMPT = 10.0

# What a WorkerLostError's message must say for each way of dying.
DEATH_WORDS = {"sigkill": "SIGKILL", "os_exit": "code 3", "segfault": "SIGSEGV"}


def live_workers() -> set[int]:
    return {child.pid for child in mp.active_children()}


def all_dead(pids: Any, timeout: float = PROMPT) -> bool:
    return wait_until(lambda: not any(pid_alive(pid) for pid in pids), timeout)


def announced(directory: Path, count: int) -> dict[int, int]:
    """Waits until ``count`` tasks of ``announce_and_sleep`` have started; returns each
    task's index and the pid of the worker running it."""

    def started() -> list[Path]:
        # Only finished files: `write_atomically` writes a hidden temporary one first.
        return [path for path in directory.iterdir() if path.name.isdigit()]

    assert wait_until(lambda: len(started()) >= count), "tasks never started"
    return {int(path.name): int(path.read_text()) for path in started()}


def back_to_full_strength(pool_size: int, gone: set[int]) -> bool:
    """Whether the pool has ``pool_size`` live workers again, none of them in ``gone``."""

    def full() -> bool:
        live = live_workers()
        return len(live) == pool_size and not live & gone

    return wait_until(full, PROMPT)


# --- a worker dies under its task ----------------------------------------------------


@pytest.mark.parametrize("how", list(t.DEATHS))
def test_a_dying_worker_fails_only_its_own_task(ctx: Any, tmp_path: Path, how: str) -> None:
    pid_file = tmp_path / "pid"
    with ctx.Pool(2) as pool:
        workers = live_workers()
        before = [pool.apply_async(t.square, (i,)) for i in range(10)]
        dying = pool.apply_async(t.die_with_pid, (how, str(pid_file)))
        after = [pool.apply_async(t.square, (i,)) for i in range(10, 20)]

        with pytest.raises(mp.WorkerLostError) as info:
            dying.get(timeout=PROMPT)
        error = info.value
        pid = int(pid_file.read_text())
        assert isinstance(error, mp.ProcessError)
        assert error.pid == pid
        assert pid in workers
        assert error.exitcode == t.DEATHS[how]
        assert str(pid) in str(error)
        assert DEATH_WORDS[how] in str(error)

        assert [r.get(timeout=PROMPT) for r in before + after] == [i * i for i in range(20)]
        assert pool.map(t.square, range(10), chunksize=1) == [i * i for i in range(10)]
        assert back_to_full_strength(2, {pid})
        assert pool.map(t.square, range(10)) == [i * i for i in range(10)]


@pytest.mark.parametrize("chunksize", [None, 1])
def test_map_with_a_dying_item_raises_worker_lost(ctx: Any, chunksize: int | None) -> None:
    with ctx.Pool(2) as pool:
        with pytest.raises(mp.WorkerLostError) as info:
            pool.map(functools.partial(t.die_on, bad=3), range(8), chunksize)
        assert info.value.exitcode == -signal.SIGKILL
        with pytest.raises(mp.WorkerLostError):
            pool.map_async(functools.partial(t.die_on, bad=5), range(8), chunksize).get(PROMPT)
        assert pool.map(t.square, range(8), chunksize) == [i * i for i in range(8)]


def test_imap_raises_at_the_lost_item_and_goes_on(ctx: Any) -> None:
    with ctx.Pool(2) as pool:
        it = pool.imap(functools.partial(t.die_on, bad=2), range(6))
        assert [it.next(PROMPT), it.next(PROMPT)] == [0, 1]
        with pytest.raises(mp.WorkerLostError):
            it.next(PROMPT)
        assert [it.next(PROMPT) for _ in range(3)] == [9, 16, 25]
        with pytest.raises(StopIteration):
            it.next(PROMPT)
        unordered = pool.imap_unordered(functools.partial(t.die_on, bad=2), range(6))
        outcomes: list[Any] = []
        for _ in range(6):
            try:
                outcomes.append(unordered.next(PROMPT))
            except mp.WorkerLostError as error:
                outcomes.append(type(error))
        assert sorted(outcomes, key=str) == sorted([0, 1, mp.WorkerLostError, 9, 16, 25], key=str)


def test_every_worker_dying_again_and_again_never_wedges_the_pool(ctx: Any) -> None:
    with ctx.Pool(2) as pool:
        with pytest.raises(mp.WorkerLostError):
            pool.map(t.die, ["sigkill"] * 6, chunksize=1)
        results = [pool.apply_async(t.die, ("os_exit",)) for _ in range(6)]
        for result in results:
            with pytest.raises(mp.WorkerLostError):
                result.get(timeout=PROMPT)
        assert pool.map(t.square, range(6), chunksize=1) == [i * i for i in range(6)]


def test_a_worker_killed_from_outside_is_reported_and_replaced(ctx: Any, tmp_path: Path) -> None:
    with ctx.Pool(2) as pool:
        # Idle: it is simply replaced.
        idle = min(live_workers())
        os.kill(idle, signal.SIGKILL)
        assert back_to_full_strength(2, {idle})
        assert pool.map(t.square, range(6), chunksize=1) == [i * i for i in range(6)]
        # Busy: its task fails, naming it.
        running = pool.apply_async(t.announce_and_sleep, (str(tmp_path), 0, 60))
        busy = announced(tmp_path, 1)[0]
        os.kill(busy, signal.SIGKILL)
        with pytest.raises(mp.WorkerLostError) as info:
            running.get(timeout=PROMPT)
        assert info.value.pid == busy
        assert info.value.exitcode == -signal.SIGKILL
        assert back_to_full_strength(2, {idle, busy})
        assert pool.apply(t.square, (5,)) == 25


# --- retries -------------------------------------------------------------------------


def test_retries_rerun_a_task_whose_worker_died(ctx: Any, tmp_path: Path) -> None:
    with ctx.Pool(2, retries=1) as pool:
        assert pool.apply(t.die_first_time, (str(tmp_path / "once"),)) == "survived"
        markers = [str(tmp_path / f"item-{i}") for i in range(4)]
        assert pool.map(t.die_first_time, markers, chunksize=1) == ["survived"] * 4
        # A task that always dies is tried 1 + retries times, then fails.
        attempts = tmp_path / "attempts"
        attempts.mkdir()
        with pytest.raises(mp.WorkerLostError):
            pool.apply_async(t.die_counting, (str(attempts),)).get(timeout=PROMPT)
        assert len(list(attempts.iterdir())) == 2
    with ctx.Pool(2) as pool, pytest.raises(mp.WorkerLostError):
        # No retries by default.
        pool.apply_async(t.die_first_time, (str(tmp_path / "never"),)).get(timeout=PROMPT)


# --- task timeouts -------------------------------------------------------------------


def test_task_timeout_kills_an_overrunning_task(ctx: Any) -> None:
    with ctx.Pool(2, task_timeout=0.5) as pool:
        workers = live_workers()
        slow = pool.apply_async(t.sleep_then, (30, "late"))
        others = [pool.apply_async(t.square, (i,)) for i in range(20)]
        with pytest.raises(mp.TaskTimeoutError) as info:
            slow.get(timeout=PROMPT)
        error = info.value
        assert isinstance(error, mp.TimeoutError)
        assert error.timeout == 0.5
        assert error.pid in workers
        assert str(error.pid) in str(error)
        assert [r.get(timeout=PROMPT) for r in others] == [i * i for i in range(20)]
        assert all_dead([error.pid])
        assert back_to_full_strength(2, {error.pid})
        with pytest.raises(mp.TaskTimeoutError):
            pool.map(t.sleep_then, [0, 30, 0], chunksize=1)
        assert pool.map(t.square, range(4)) == [0, 1, 4, 9]


# --- terminate -----------------------------------------------------------------------


def test_a_failing_initializer_breaks_the_pool_instead_of_respawning_forever(ctx: Any) -> None:
    # The stdlib starts replacement workers forever here and the task never finishes.
    pool = ctx.Pool(2, initializer=t.failing_initializer)
    try:
        result = pool.apply_async(t.square, (3,))
        with pytest.raises(mp.ProcessError, match="initializer"):
            result.get(timeout=PROMPT)
        with pytest.raises(ValueError):
            pool.apply_async(t.square, (3,))
        pool.close()
        pool.join()
        assert mp.active_children() == []
    finally:
        pool.terminate()


def test_terminate_with_long_tasks_running_fails_them_promptly(ctx: Any, tmp_path: Path) -> None:
    pool = ctx.Pool(2)
    results = [pool.apply_async(t.announce_and_sleep, (str(tmp_path), i, 60)) for i in range(4)]
    mapped = pool.map_async(t.sleep_then, [60] * 4, chunksize=1)
    busy = set(announced(tmp_path, 2).values())
    stopper = threading.Thread(target=pool.terminate)
    stopper.start()
    stopper.join(PROMPT)
    assert not stopper.is_alive(), "terminate() did not return"
    for result in [*results, mapped]:
        with pytest.raises(mp.ProcessError) as info:
            result.get(timeout=PROMPT)
        assert not isinstance(info.value, mp.TimeoutError), "a terminated task never ended"
    assert all_dead(busy)
    pool.join()
    assert mp.active_children() == []


# --- Ctrl-C --------------------------------------------------------------------------

INTERRUPTED_MAP = """
import json
import sys

import _pool_targets as t

if __name__ == "__main__":
    method, directory = sys.argv[1], sys.argv[2]
    pool = multiprocessing.get_context(method).Pool(2)
    print(json.dumps([p.pid for p in multiprocessing.active_children()]), flush=True)
    pool.starmap(t.announce_and_sleep, [(directory, i, 60) for i in range(8)], chunksize=1)
    print("map returned", flush=True)
"""


@pytest.mark.parametrize("target", ["parent", "group"])
@pytest.mark.parametrize("method", START_METHODS)
def test_ctrl_c_stops_a_running_map(scripts: Any, tmp_path: Path, method: str, target: str) -> None:
    directory = tmp_path / "started"
    directory.mkdir()
    proc = scripts.start(INTERRUPTED_MAP, method, str(directory))
    workers = json.loads(proc.stdout.readline())
    assert len(workers) == 2
    announced(directory, 2)
    # A terminal's Ctrl-C reaches the whole foreground process group, workers included.
    if target == "group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=PROMPT)
    assert proc.returncode == -signal.SIGINT, stderr
    assert "map returned" not in stdout
    assert stderr.count("Traceback (most recent call last)") == 1, stderr
    assert stderr.rstrip().splitlines()[-1] == "KeyboardInterrupt", stderr
    assert all_dead(workers), "pool workers outlived the interrupted parent"


# --- the parent dies -----------------------------------------------------------------

KILLED_PARENT = """
import json
import sys
import threading

import _pool_targets as t
from _support import wait_until

if __name__ == "__main__":
    method, busy, directory = sys.argv[1], sys.argv[2] == "busy", sys.argv[3]
    pool = multiprocessing.get_context(method).Pool(2)
    assert pool.apply(t.square, (3,)) == 9
    if busy:
        import os
        pool.starmap_async(t.announce_and_sleep, [(directory, i, 60) for i in range(4)], 1)
        wait_until(lambda: len([n for n in os.listdir(directory) if n.isdigit()]) >= 2)
    print(json.dumps([p.pid for p in multiprocessing.active_children()]), flush=True)
    threading.Event().wait()  # until SIGKILLed
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
@pytest.mark.parametrize("method", START_METHODS)
def test_sigkilled_parent_leaves_no_pool_worker(
    scripts: Any, tmp_path: Path, method: str, state: str
) -> None:
    proc = scripts.start(KILLED_PARENT, method, state, str(tmp_path))
    workers = json.loads(proc.stdout.readline())
    assert len(workers) == 2
    assert all(pid_alive(pid) for pid in workers)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(PROMPT) == -signal.SIGKILL
    assert all_dead(workers, timeout=3.0), "pool workers outlived their SIGKILLed parent"


# --- an abandoned pool ---------------------------------------------------------------


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_a_dropped_pool_leaves_no_worker(ctx: Any, tmp_path: Path, state: str) -> None:
    pool = ctx.Pool(2)
    workers = live_workers()
    assert pool.map(t.square, range(4)) == [0, 1, 4, 9]
    if state == "busy":
        pool.starmap_async(t.announce_and_sleep, [(str(tmp_path), i, 60) for i in range(4)], 1)
        announced(tmp_path, 2)
    with pytest.warns(ResourceWarning, match="unclosed running multiprocessing pool"):
        del pool
        gc.collect()
    assert all_dead(workers), "a dropped pool left its workers running"
    assert wait_until(lambda: mp.active_children() == [], PROMPT)


UNCLOSED_AT_EXIT = """
import sys

import _pool_targets as t

if __name__ == "__main__":
    method, busy = sys.argv[1], sys.argv[2] == "busy"
    pool = multiprocessing.get_context(method).Pool(2)
    print(pool.map(t.square, range(5)), flush=True)
    if busy:
        pool.apply_async(t.sleep_then, (60,))
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
@pytest.mark.parametrize("method", START_METHODS)
def test_a_program_that_never_closes_its_pool_exits_promptly(
    scripts: Any, method: str, state: str
) -> None:
    result = scripts.run(UNCLOSED_AT_EXIT, method, state, timeout=PROMPT)
    assert result.returncode == 0, result
    assert result.stdout == "[0, 1, 4, 9, 16]\n", result
    assert "Traceback" not in result.stderr, result
