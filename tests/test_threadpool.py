"""``pool.ThreadPool``: ``Pool``'s API on threads of this process.

Nothing is pickled: tasks, arguments, results and exceptions pass as they are. Everything
not marked ``ferroproc_only`` passes with ``FERROPROC_TEST_MODULE=multiprocessing``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import itertools
import os
import pickle
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import _pool_targets as t
from _support import DEADLINE, MODULE_NAME, mp

pool_module = importlib.import_module(f"{MODULE_NAME}.pool")
dummy = importlib.import_module(f"{MODULE_NAME}.dummy")
ThreadPool = pool_module.ThreadPool

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pool() -> Iterator[Any]:
    p = ThreadPool(2)
    try:
        yield p
    finally:
        p.terminate()
        p.join()


def lazy(items: Any) -> Iterator[Any]:
    yield from items


def test_apply_and_apply_async(pool: Any, tmp_path: Path) -> None:
    assert pool.apply(t.add, (1,), {"y": 2}) == 3
    go = tmp_path / "go"
    result = pool.apply_async(t.wait_for_file, (str(go), "value"))
    assert not result.ready()
    with pytest.raises(ValueError):
        result.successful()
    with pytest.raises(mp.TimeoutError):
        result.get(timeout=0.05)
    go.touch()
    assert result.get(timeout=DEADLINE) == "value"
    assert result.successful()


@pytest.mark.parametrize("chunksize", [None, 1, 7, 1000])
def test_map_family(pool: Any, chunksize: int | None) -> None:
    items = list(range(40))
    squares = [x * x for x in items]
    pairs = [(x, 1) for x in items]
    assert pool.map(t.square, items, chunksize) == squares
    assert pool.map(t.square, lazy(items), chunksize) == squares
    assert pool.map_async(t.square, items, chunksize).get(DEADLINE) == squares
    assert pool.starmap(t.add, pairs, chunksize) == [x + 1 for x in items]
    assert pool.starmap_async(t.add, pairs, chunksize).get(DEADLINE) == [x + 1 for x in items]
    assert pool.map(t.square, [], chunksize) == []


@pytest.mark.parametrize("chunksize", [1, 4])
def test_imap_and_imap_unordered(pool: Any, chunksize: int) -> None:
    expected = [x * x for x in range(30)]
    assert list(pool.imap(t.square, range(30), chunksize)) == expected
    assert list(pool.imap(t.square, lazy(range(30)), chunksize)) == expected
    assert sorted(pool.imap_unordered(t.square, lazy(range(30)), chunksize)) == expected
    assert list(pool.imap(t.square, [], chunksize)) == []


def test_imap_next_with_timeout(pool: Any, tmp_path: Path) -> None:
    go = tmp_path / "go"
    it = pool.imap(t.wait_for_file, [str(go)])
    with pytest.raises(mp.TimeoutError):
        it.next(timeout=0.05)
    go.touch()
    assert it.next(timeout=DEADLINE) is None
    with pytest.raises(StopIteration):
        it.next(timeout=DEADLINE)


def test_tasks_run_in_threads_of_this_process(pool: Any) -> None:
    assert set(pool.map(t.getpid, range(4))) == {os.getpid()}
    names = set(pool.map(t.current_thread_name, range(8), 1))
    assert threading.current_thread().name not in names


def test_nothing_is_copied(pool: Any) -> None:
    items: list[Any] = []
    lock = threading.Lock()  # unpicklable: fine here
    assert pool.apply(t.append_to, (items, lock)) == 1
    assert items == [lock]
    assert pool.apply(lambda: lock) is lock


def test_exception_is_the_raised_object(pool: Any) -> None:
    raised: list[BaseException] = []

    def fail() -> None:
        error = ValueError("boom")
        raised.append(error)
        raise error

    with pytest.raises(ValueError, match="boom") as info:
        pool.apply(fail)
    assert info.value is raised[0]
    with pytest.raises(ValueError, match="bad item 3"):
        pool.map(functools.partial(t.raise_on, bad=3), range(6), 1)


def test_callbacks_run_once_before_get_returns(pool: Any) -> None:
    values: list[Any] = []
    errors: list[BaseException] = []
    result = pool.map_async(t.square, range(4), callback=values.append)
    assert result.get(timeout=DEADLINE) == [0, 1, 4, 9]
    assert values == [[0, 1, 4, 9]]
    failing = pool.apply_async(
        t.raise_value_error, ("boom",), callback=values.append, error_callback=errors.append
    )
    with pytest.raises(ValueError) as info:
        failing.get(timeout=DEADLINE)
    assert errors == [info.value]
    assert values == [[0, 1, 4, 9]]


def test_initializer_runs_in_each_thread() -> None:
    seen: list[str] = []

    def record() -> None:
        seen.append(threading.current_thread().name)

    with ThreadPool(3, initializer=record) as p:
        assert p.map(t.square, range(6)) == [x * x for x in range(6)]
        # Each worker thread runs the initializer before its first task.
        p.close()
        p.join()
    assert len(seen) == 3
    assert len(set(seen)) == 3


def test_lifecycle_errors() -> None:
    with pytest.raises(ValueError):
        ThreadPool(0)
    p = ThreadPool(2)
    assert re.fullmatch(r"<\S+ThreadPool state=RUN pool_size=2>", repr(p))
    with pytest.raises(ValueError):
        p.join()
    with pytest.raises(NotImplementedError):
        pickle.dumps(p)
    p.close()
    with pytest.raises(ValueError):
        p.apply(t.square, (1,))
    with pytest.raises(ValueError):
        p.imap(t.square, [1])
    p.join()


def test_close_and_join_finish_the_submitted_work() -> None:
    p = ThreadPool(2)
    results = [p.apply_async(t.square, (i,)) for i in range(20)]
    p.close()
    p.join()
    assert [r.get(0) for r in results] == [i * i for i in range(20)]


def test_context_manager_and_threads_exit() -> None:
    before = set(threading.enumerate())
    with ThreadPool(2) as p:
        assert p.apply(t.square, (3,)) == 9
    p.join()
    with pytest.raises(ValueError):
        p.apply(t.square, (3,))
    assert not [th for th in threading.enumerate() if th not in before and th.is_alive()]


def test_dummy_pool_is_a_thread_pool() -> None:
    p = dummy.Pool(2)
    try:
        assert isinstance(p, ThreadPool)
        assert p.map(t.square, range(3)) == [0, 1, 4]
    finally:
        p.terminate()
        p.join()


# --- beyond the stdlib ---------------------------------------------------------------


@pytest.mark.ferroproc_only
def test_results_can_be_awaited(pool: Any) -> None:
    async def main() -> Any:
        return await pool.apply_async(t.square, (6,)), await pool.map_async(t.square, [1, 2])

    assert asyncio.run(main()) == (36, [1, 4])


@pytest.mark.ferroproc_only
def test_imap_buffersize_bounds_reading_ahead(pool: Any) -> None:
    pulled: list[int] = []

    def numbers() -> Iterator[int]:
        for i in itertools.count():
            pulled.append(i)
            yield i

    it = pool.imap(t.square, numbers(), buffersize=2)
    assert list(itertools.islice(it, 10)) == [x * x for x in range(10)]
    assert len(pulled) <= 10 + 2 + 1
    del it


@pytest.mark.ferroproc_only
def test_system_exit_fails_only_its_task(pool: Any) -> None:
    # The stdlib's worker thread dies of it and the result never arrives.
    with pytest.raises(SystemExit):
        pool.apply_async(t.exit_task, (3,)).get(timeout=DEADLINE)
    assert pool.map(t.square, range(4), 1) == [0, 1, 4, 9]


@pytest.mark.ferroproc_only
def test_terminate_fails_the_tasks_not_started(tmp_path: Path) -> None:
    # Threads cannot be killed: the running tasks finish, the waiting ones fail at once.
    # The stdlib leaves them pending forever.
    go = tmp_path / "go"
    p = ThreadPool(2)
    running = [p.apply_async(t.wait_for_file, (str(go), i)) for i in range(2)]
    waiting = [p.apply_async(t.square, (i,)) for i in range(4)]
    stopper = threading.Thread(target=p.terminate)
    stopper.start()
    for result in waiting:
        with pytest.raises(mp.ProcessError) as info:
            result.get(timeout=DEADLINE)
        assert not isinstance(info.value, mp.TimeoutError)
    go.touch()
    stopper.join(DEADLINE)
    assert not stopper.is_alive()
    p.join()
    for result in running:
        result.wait(DEADLINE)
        assert result.ready()
