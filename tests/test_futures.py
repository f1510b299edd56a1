"""``ferroproc.futures.ProcessPoolExecutor`` with real workers, under every start method.

Everything not marked ``ferroproc_only`` is the stdlib executor's documented behaviour:
with ``FERROPROC_TEST_MODULE=multiprocessing`` it runs against
``concurrent.futures.ProcessPoolExecutor``. A call that must still be running (or still
waiting for a worker) when the test looks at it waits for a file the test creates, never
for a sleep to elapse.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import pickle
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import _futures_targets as t
from _support import DEADLINE, IS_STDLIB, mp, read_when_present

EXECUTOR_MODULE = "concurrent.futures.process" if IS_STDLIB else "ferroproc.futures"
executor_module = importlib.import_module(EXECUTOR_MODULE)
ProcessPoolExecutor: Any = executor_module.ProcessPoolExecutor
BrokenProcessPool: Any = executor_module.BrokenProcessPool

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def go(tmp_path: Path) -> Path:
    """The file that releases the calls waiting for it; created at teardown at the latest."""
    return tmp_path / "go"


@pytest.fixture
def executor(ctx: Any, go: Path) -> Iterator[Any]:
    """A two-worker executor of each start method in turn."""
    ex = ProcessPoolExecutor(2, mp_context=ctx)
    try:
        yield ex
    finally:
        go.touch()
        ex.shutdown(wait=True, cancel_futures=True)


def hold_both_workers(ex: Any, tmp_path: Path, go: Path) -> list[Any]:
    """Submits one call per worker that runs until ``go`` exists, and returns their futures
    once both are running."""
    held = [ex.submit(t.hold, str(tmp_path / f"started-{i}"), str(go), i) for i in range(2)]
    for i in range(2):
        read_when_present(tmp_path / f"started-{i}")
    return held


# --- submit and results --------------------------------------------------------------


def test_submit_returns_a_future_with_the_result(executor: Any) -> None:
    future = executor.submit(t.square, 7)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=DEADLINE) == 49
    assert future.done()
    assert not future.cancelled()
    assert future.exception() is None
    assert executor.submit(t.add, 1, y=2).result(timeout=DEADLINE) == 3
    assert executor.submit(t.add, x=4, y=5).result(timeout=DEADLINE) == 9


def test_an_exception_comes_back_with_the_worker_traceback(executor: Any) -> None:
    future = executor.submit(t.raise_value_error, "boom")
    with pytest.raises(ValueError, match="boom") as info:
        future.result(timeout=DEADLINE)
    cause = info.value.__cause__
    assert cause is not None
    assert "raise_value_error" in str(cause)
    assert isinstance(future.exception(), ValueError)


def test_result_times_out_while_the_call_runs(executor: Any, tmp_path: Path, go: Path) -> None:
    future = executor.submit(t.wait_for_file, str(go), "late")
    with pytest.raises(cf.TimeoutError):
        future.result(timeout=0.05)
    assert not future.done()
    go.touch()
    assert future.result(timeout=DEADLINE) == "late"


def test_an_argument_pickle_refuses_fails_only_its_future(executor: Any) -> None:
    future = executor.submit(t.add, threading.Lock(), 1)
    assert isinstance(future.exception(timeout=DEADLINE), TypeError)
    assert executor.submit(t.square, 3).result(timeout=DEADLINE) == 9


def test_done_callbacks_run_with_the_future(executor: Any) -> None:
    seen: list[Any] = []
    called = threading.Event()

    def callback(future: Any) -> None:
        seen.append(future.result())
        called.set()

    future = executor.submit(t.square, 5)
    future.add_done_callback(callback)
    assert called.wait(DEADLINE)
    assert seen == [25]


def test_submit_from_many_threads(executor: Any) -> None:
    futures: list[list[Any]] = [[] for _ in range(4)]

    def submit_some(mine: list[Any], base: int) -> None:
        mine.extend(executor.submit(t.square, base + i) for i in range(25))

    threads = [threading.Thread(target=submit_some, args=(futures[n], n * 25)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [f.result(timeout=DEADLINE) for mine in futures for f in mine]
    assert results == [i * i for i in range(100)]


# --- map -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 2, 7, 100])
def test_map_yields_results_in_order(executor: Any, chunksize: int) -> None:
    items = list(range(23))
    assert list(executor.map(t.square, items, chunksize=chunksize)) == [i * i for i in items]


def test_map_with_several_iterables_stops_at_the_shortest(executor: Any) -> None:
    assert list(executor.map(t.add, range(5), range(100))) == [0, 2, 4, 6, 8]
    assert list(executor.map(t.add, iter(range(5)), range(10), chunksize=2)) == [0, 2, 4, 6, 8]
    assert list(executor.map(t.square, [])) == []


def test_map_raises_when_it_reaches_the_failing_call(executor: Any) -> None:
    results = executor.map(t.square_unless, range(6), [3] * 6)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)
    with pytest.raises(StopIteration):
        next(results)


def test_map_in_chunks_raises_the_failing_call(executor: Any) -> None:
    with pytest.raises(ValueError, match="bad item 5"):
        list(executor.map(t.square_unless, range(10), [5] * 10, chunksize=3))


def test_map_times_out(executor: Any, go: Path) -> None:
    assert list(executor.map(t.square, range(4), timeout=DEADLINE)) == [0, 1, 4, 9]
    results = executor.map(t.wait_for_file, [str(go)], timeout=0.1)
    with pytest.raises(cf.TimeoutError):
        next(results)


def test_map_rejects_a_chunksize_below_one(executor: Any) -> None:
    with pytest.raises(ValueError):
        executor.map(t.square, range(3), chunksize=0)


# --- wait, as_completed --------------------------------------------------------------


def test_wait_and_as_completed(executor: Any, tmp_path: Path, go: Path) -> None:
    slow = executor.submit(t.hold, str(tmp_path / "started"), str(go), "slow")
    fast = executor.submit(t.square, 4)
    done, not_done = cf.wait([slow, fast], timeout=DEADLINE, return_when=cf.FIRST_COMPLETED)
    assert fast in done
    assert slow in not_done
    failing = executor.submit(t.raise_value_error, "x")
    done, not_done = cf.wait([slow, failing], timeout=DEADLINE, return_when=cf.FIRST_EXCEPTION)
    assert done == {failing}
    assert not_done == {slow}
    go.touch()
    finished = {f.result() for f in cf.as_completed([slow, fast], timeout=DEADLINE)}
    assert finished == {"slow", 16}
    done, not_done = cf.wait([slow, fast, failing], timeout=DEADLINE)
    assert not not_done


# --- cancel ----------------------------------------------------------------------------


def test_cancel_a_future_still_waiting_for_a_worker(
    executor: Any, tmp_path: Path, go: Path
) -> None:
    held = hold_both_workers(executor, tmp_path, go)
    # Enough calls to fill whatever the workers take ahead of time, then the one to cancel.
    queued = [executor.submit(t.wait_for_file, str(go), i) for i in range(5)]
    target = executor.submit(t.square, 3)
    called = threading.Event()
    target.add_done_callback(lambda _: called.set())

    assert target.cancel() is True
    assert target.cancelled()
    assert target.done()
    assert not target.running()
    assert called.is_set()
    assert target.cancel() is True
    with pytest.raises(cf.CancelledError):
        target.result(timeout=0)
    if not IS_STDLIB:
        # ferroproc drops the call at once; the stdlib only when it reaches its queue.
        done, _ = cf.wait([target], timeout=0)
        assert done == {target}

    go.touch()
    assert [f.result(timeout=DEADLINE) for f in held] == [0, 1]
    assert [f.result(timeout=DEADLINE) for f in queued] == list(range(5))
    done, not_done = cf.wait([target, *queued], timeout=DEADLINE)
    assert target in done
    assert not not_done
    assert target in set(cf.as_completed([target], timeout=DEADLINE))


@pytest.mark.ferroproc_only
def test_after_many_short_calls_a_worker_still_holds_only_one_call_ahead(
    executor: Any, tmp_path: Path, go: Path
) -> None:
    # Short calls teach the engine to queue deeply; an executor must keep what a worker
    # holds small, or the calls queued in its inbox could not be cancelled.
    assert list(executor.map(t.square, range(2000))) == [i * i for i in range(2000)]
    held = hold_both_workers(executor, tmp_path, go)
    queued = [executor.submit(t.wait_for_file, str(go), i) for i in range(6)]
    cancelled = [f.cancel() for f in queued]
    # One call may sit behind each running one; every other one is still cancellable.
    assert cancelled.count(True) >= len(queued) - 2
    go.touch()
    assert [f.result(timeout=DEADLINE) for f in held] == [0, 1]
    for future, was_cancelled in zip(queued, cancelled):
        if not was_cancelled:
            assert future.result(timeout=DEADLINE) in range(6)


def test_cancel_a_running_future_returns_false(executor: Any, tmp_path: Path, go: Path) -> None:
    held = hold_both_workers(executor, tmp_path, go)
    assert held[0].cancel() is False
    assert not held[0].cancelled()
    assert held[0].running()
    go.touch()
    assert held[0].result(timeout=DEADLINE) == 0
    assert held[0].cancel() is False


def test_shutdown_cancels_the_futures_waiting_for_a_worker(
    ctx: Any, tmp_path: Path, go: Path
) -> None:
    ex = ProcessPoolExecutor(2, mp_context=ctx)
    try:
        held = hold_both_workers(ex, tmp_path, go)
        queued = [ex.submit(t.square, i) for i in range(10)]
        ex.shutdown(wait=False, cancel_futures=True)
        go.touch()
        assert [f.result(timeout=DEADLINE) for f in held] == [0, 1]
        with pytest.raises(cf.CancelledError):
            queued[-1].result(timeout=DEADLINE)
        for i, future in enumerate(queued):
            # The first few may already have been with a worker: those ran.
            assert future.cancelled() or future.result(timeout=DEADLINE) == i * i
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            ex.submit(t.square, 1)
    finally:
        go.touch()
        ex.shutdown(wait=True)


# --- shutdown --------------------------------------------------------------------------


def test_submit_after_shutdown_raises(ctx: Any) -> None:
    ex = ProcessPoolExecutor(2, mp_context=ctx)
    assert ex.submit(t.square, 2).result(timeout=DEADLINE) == 4
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(t.square, 2)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.map(t.square, [1])
    ex.shutdown()  # again: nothing happens


def test_shutdown_of_an_unused_executor() -> None:
    ex = ProcessPoolExecutor(2)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(t.square, 2)


def test_the_context_manager_waits_for_the_calls(ctx: Any) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        futures = [ex.submit(t.sleep_then, 0.05, i) for i in range(4)]
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(4))


def test_shutdown_without_waiting_lets_the_calls_finish(ctx: Any, go: Path) -> None:
    ex = ProcessPoolExecutor(2, mp_context=ctx)
    try:
        futures = [ex.submit(t.wait_for_file, str(go), i) for i in range(3)]
        ex.shutdown(wait=False)
        go.touch()
        assert [f.result(timeout=DEADLINE) for f in futures] == [0, 1, 2]
    finally:
        go.touch()
        ex.shutdown(wait=True)


EXIT_SCRIPT = """
import sys

import {module} as futures
import _futures_targets as t


def main():
    ctx = multiprocessing.get_context(sys.argv[2])
    left_open = futures.ProcessPoolExecutor(2, mp_context=ctx)
    left_open.submit(t.write_later, sys.argv[1] + "-open", 0.2)
    not_waited = futures.ProcessPoolExecutor(1, mp_context=ctx)
    not_waited.submit(t.write_later, sys.argv[1] + "-nowait", 0.2)
    not_waited.shutdown(wait=False)
    dropped = futures.ProcessPoolExecutor(1, mp_context=ctx)
    dropped.submit(t.write_later, sys.argv[1] + "-dropped", 0.2)
    del dropped
    print("leaving", flush=True)
    return left_open


if __name__ == "__main__":
    kept = main()
"""


def test_interpreter_exit_completes_the_submitted_calls(
    scripts: Any, start_method: str, tmp_path: Path
) -> None:
    base = tmp_path / "written"
    result = scripts.run(
        EXIT_SCRIPT.format(module=EXECUTOR_MODULE), str(base), start_method, timeout=DEADLINE
    )
    assert result.returncode == 0, result
    assert "leaving" in result.stdout
    for suffix in ("open", "nowait", "dropped"):
        assert Path(f"{base}-{suffix}").read_text() == "done"


@pytest.mark.ferroproc_only
def test_a_child_process_exit_completes_the_submitted_calls(
    ctx: Any, start_method: str, tmp_path: Path
) -> None:
    # The stdlib's child process terminates its daemonic executor workers at exit before
    # its executor waits for them: the call is lost (and under fork a worker is orphaned).
    path = tmp_path / "written"
    child = ctx.Process(
        target=t.leave_an_executor_open, args=(EXECUTOR_MODULE, start_method, str(path))
    )
    child.start()
    child.join(DEADLINE)
    assert child.exitcode == 0
    assert path.read_text() == "done"


# --- constructor -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_workers": 0}, ValueError, "max_workers must be greater than 0"),
        ({"max_workers": -3}, ValueError, "max_workers must be greater than 0"),
        ({"initializer": 5}, TypeError, "initializer must be a callable"),
        ({"max_tasks_per_child": 0}, ValueError, "max_tasks_per_child must be >= 1"),
        ({"max_tasks_per_child": "1"}, TypeError, "max_tasks_per_child must be an integer"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ProcessPoolExecutor(mp_context=mp.get_context("spawn"), **kwargs)


def test_default_size_is_positive() -> None:
    ex = ProcessPoolExecutor()
    try:
        assert ex._max_workers >= 1
    finally:
        ex.shutdown()


def test_initializer_runs_in_each_worker(ctx: Any) -> None:
    with ProcessPoolExecutor(
        2, mp_context=ctx, initializer=t.set_worker_global, initargs=("initialized",)
    ) as ex:
        assert list(ex.map(t.read_worker_global, range(6))) == ["initialized"] * 6


def test_a_failing_initializer_breaks_the_executor(ctx: Any) -> None:
    ex = ProcessPoolExecutor(1, mp_context=ctx, initializer=t.fail_to_initialize)
    try:
        future = ex.submit(t.square, 2)
        with pytest.raises(BrokenProcessPool) as info:
            future.result(timeout=DEADLINE)
        if not IS_STDLIB:
            # ferroproc says why, with the initializer's traceback.
            assert "initializer failed on purpose" in str(info.value)
            assert "fail_to_initialize" in str(info.value.__cause__)
        with pytest.raises(BrokenProcessPool):
            ex.submit(t.square, 2)
    finally:
        ex.shutdown(wait=True)


def test_max_tasks_per_child_replaces_workers(ctx: Any, start_method: str) -> None:
    if IS_STDLIB and start_method == "fork":
        pytest.skip("the stdlib refuses max_tasks_per_child with fork")
    with ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=2) as ex:
        pids = [ex.submit(t.getpid).result(timeout=DEADLINE) for _ in range(6)]
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


def test_broken_process_pool_is_a_broken_executor() -> None:
    assert issubclass(BrokenProcessPool, cf.BrokenExecutor)


# --- ferroproc only: robustness and extras ---------------------------------------------


@pytest.mark.ferroproc_only
def test_a_killed_worker_fails_only_its_own_future(executor: Any) -> None:
    victim = executor.submit(t.kill_own_worker)
    others = [executor.submit(t.square, i) for i in range(10)]
    with pytest.raises(mp.WorkerLostError) as info:
        victim.result(timeout=DEADLINE)
    assert info.value.exitcode == -signal.SIGKILL
    assert str(info.value.pid) in str(info.value)
    assert [f.result(timeout=DEADLINE) for f in others] == [i * i for i in range(10)]
    # The executor is not broken: it takes and runs new work.
    assert executor.submit(t.square, 12).result(timeout=DEADLINE) == 144
    assert list(executor.map(t.square, range(4), chunksize=2)) == [0, 1, 4, 9]


@pytest.mark.ferroproc_only
def test_a_killed_worker_fails_only_its_chunk_of_a_map(executor: Any) -> None:
    functions = [t.square, t.square, t.kill_own_worker, t.square]
    results = executor.map(t.call, functions, [1, 2, None, 4])
    assert [next(results), next(results)] == [1, 4]
    with pytest.raises(mp.WorkerLostError):
        next(results)
    assert executor.submit(t.square, 6).result(timeout=DEADLINE) == 36


@pytest.mark.ferroproc_only
def test_task_timeout_fails_only_the_slow_call(ctx: Any) -> None:
    with ProcessPoolExecutor(2, mp_context=ctx, task_timeout=0.5) as ex:
        slow = ex.submit(t.sleep_then, DEADLINE * 2)
        quick = [ex.submit(t.square, i) for i in range(4)]
        with pytest.raises(mp.TaskTimeoutError):
            slow.result(timeout=DEADLINE)
        assert [f.result(timeout=DEADLINE) for f in quick] == [0, 1, 4, 9]
        assert ex.submit(t.square, 5).result(timeout=DEADLINE) == 25


@pytest.mark.ferroproc_only
def test_retries_run_a_call_again_when_its_worker_dies(ctx: Any, tmp_path: Path) -> None:
    with ProcessPoolExecutor(1, mp_context=ctx, retries=1) as ex:
        future = ex.submit(t.die_first_time, str(tmp_path / "marker"))
        assert future.result(timeout=DEADLINE) == "survived"


@pytest.mark.ferroproc_only
def test_max_tasks_per_child_works_with_fork() -> None:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("fork"), max_tasks_per_child=1) as ex:
        pids = [ex.submit(t.getpid).result(timeout=DEADLINE) for _ in range(3)]
    assert len(set(pids)) == 3


@pytest.mark.ferroproc_only
def test_lambdas_and_closures(executor: Any) -> None:
    offset = 10
    assert executor.submit(lambda x: x + offset, 1).result(timeout=DEADLINE) == 11
    assert list(executor.map(lambda x: -x, range(3), chunksize=2)) == [0, -1, -2]


@pytest.mark.ferroproc_only
def test_a_stdlib_context_means_its_start_method() -> None:
    import multiprocessing

    ex = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        assert ex._mp_context is mp.get_context("spawn")
        assert ex.submit(t.square, 3).result(timeout=DEADLINE) == 9
    finally:
        ex.shutdown()


@pytest.mark.ferroproc_only
def test_more_ferroproc_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="task_timeout"):
        ProcessPoolExecutor(2, task_timeout=0)
    with pytest.raises(ValueError, match="retries"):
        ProcessPoolExecutor(2, retries=-1)
    with pytest.raises(TypeError, match="mp_context"):
        ProcessPoolExecutor(2, mp_context=object())


@pytest.mark.ferroproc_only
def test_a_pool_that_cannot_start_workers_raises_broken_process_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool_module = importlib.import_module("ferroproc.pool")

    def refuse(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError("no more processes")

    monkeypatch.setattr(pool_module.Pool, "Process", staticmethod(refuse))
    ex = ProcessPoolExecutor(2)
    try:
        with pytest.raises(BrokenProcessPool, match="could not start") as info:
            ex.submit(t.square, 1)
        assert isinstance(info.value.__cause__, OSError)
        with pytest.raises(BrokenProcessPool):
            ex.submit(t.square, 1)
    finally:
        ex.shutdown()


@pytest.mark.ferroproc_only
def test_an_executor_cannot_be_pickled() -> None:
    ex = ProcessPoolExecutor(1)
    try:
        with pytest.raises(TypeError):
            pickle.dumps(ex)
    finally:
        ex.shutdown()
