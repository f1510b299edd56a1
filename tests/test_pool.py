"""The process ``Pool`` API with real workers, under every start method.

Everything not marked ``ferroproc_only`` is the stdlib's documented behaviour, and passes
with ``FERROPROC_TEST_MODULE=multiprocessing``. Waits are bounded (``DEADLINE``) and
assert outcomes; a task that must still be running when the test looks at it waits for
a file the test creates, never for a sleep to elapse.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import itertools
import pickle
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import _pool_targets as t
from _support import DEADLINE, MODULE_NAME, mp, pid_alive, wait_until

pool_module = importlib.import_module(f"{MODULE_NAME}.pool")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pool(ctx: Any) -> Iterator[Any]:
    """A two-worker pool of each start method in turn."""
    p = ctx.Pool(2)
    try:
        yield p
    finally:
        p.terminate()
        p.join()


def lazy(items: Any) -> Iterator[Any]:
    """``items`` as a generator: no ``len``, read once."""
    yield from items


# --- apply and apply_async -----------------------------------------------------------


def test_apply_returns_the_result(pool: Any) -> None:
    assert pool.apply(t.square, (7,)) == 49
    assert pool.apply(t.add, (1,), {"y": 2}) == 3
    assert pool.apply(t.add, kwds={"x": 4, "y": 5}) == 9


def test_apply_async_result_while_pending_and_when_done(pool: Any, tmp_path: Path) -> None:
    go = tmp_path / "go"
    result = pool.apply_async(t.wait_for_file, (str(go), "value"))
    assert not result.ready()
    with pytest.raises(ValueError):
        result.successful()
    assert result.wait(0.05) is None
    assert not result.ready()
    with pytest.raises(mp.TimeoutError):
        result.get(timeout=0.05)
    go.touch()
    assert result.get(timeout=DEADLINE) == "value"
    assert result.ready()
    assert result.successful()
    # A result can be read more than once.
    assert result.get() == "value"


def test_apply_async_that_raises(pool: Any) -> None:
    result = pool.apply_async(t.raise_value_error, ("boom",))
    result.wait(DEADLINE)
    assert result.ready()
    assert not result.successful()
    with pytest.raises(ValueError, match="boom"):
        result.get()
    with pytest.raises(ValueError, match="boom"):
        result.get()


def test_many_apply_async_results_each_get_their_own_value(pool: Any) -> None:
    results = [pool.apply_async(t.square, (i,)) for i in range(40)]
    assert [r.get(timeout=DEADLINE) for r in results] == [i * i for i in range(40)]


# --- map and starmap -----------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [None, 1, 7, 1000])
def test_map_family_returns_results_in_order(pool: Any, chunksize: int | None) -> None:
    items = list(range(50))
    squares = [x * x for x in items]
    sums = [x + x for x in items]
    pairs = [(x, x) for x in items]
    assert pool.map(t.square, items, chunksize) == squares
    assert pool.map(t.square, range(50), chunksize) == squares
    assert pool.map(t.square, tuple(items), chunksize) == squares
    assert pool.map_async(t.square, items, chunksize).get(DEADLINE) == squares
    assert pool.starmap(t.add, pairs, chunksize) == sums
    assert pool.starmap_async(t.add, pairs, chunksize).get(DEADLINE) == sums


@pytest.mark.parametrize("chunksize", [None, 1])
def test_map_family_with_empty_input(pool: Any, chunksize: int | None) -> None:
    assert pool.map(t.square, [], chunksize) == []
    assert pool.map_async(t.square, [], chunksize).get(DEADLINE) == []
    assert pool.starmap(t.add, [], chunksize) == []
    assert pool.starmap_async(t.add, [], chunksize).get(DEADLINE) == []
    assert pool.map(t.square, lazy([]), chunksize) == []
    assert list(pool.imap(t.square, [], chunksize or 1)) == []
    assert list(pool.imap_unordered(t.square, lazy([]), chunksize or 1)) == []


def test_map_reads_a_lazy_iterable(pool: Any) -> None:
    assert pool.map(t.square, lazy(range(30))) == [x * x for x in range(30)]
    assert pool.starmap(t.add, lazy([(1, 2), (3, 4)])) == [3, 7]


def test_map_reraises_a_task_exception(pool: Any) -> None:
    with pytest.raises(ValueError, match="bad item 5"):
        pool.map(functools.partial(t.raise_on, bad=5), range(10), chunksize=1)
    # The pool goes on.
    assert pool.map(t.square, range(4)) == [0, 1, 4, 9]


# --- imap and imap_unordered ---------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 3, 100])
@pytest.mark.parametrize("source", [list, lazy])
def test_imap_yields_in_order(pool: Any, chunksize: int, source: Any) -> None:
    items = source(range(25))
    assert list(pool.imap(t.square, items, chunksize)) == [x * x for x in range(25)]


@pytest.mark.parametrize("chunksize", [1, 3, 100])
@pytest.mark.parametrize("source", [list, lazy])
def test_imap_unordered_yields_every_result(pool: Any, chunksize: int, source: Any) -> None:
    items = source(range(25))
    results = list(pool.imap_unordered(t.square, items, chunksize))
    assert sorted(results) == [x * x for x in range(25)]


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_imap_next_with_timeout(pool: Any, tmp_path: Path, method: str) -> None:
    go = tmp_path / "go"
    it = getattr(pool, method)(t.wait_for_file, [str(go)])
    with pytest.raises(mp.TimeoutError):
        it.next(timeout=0.05)
    go.touch()
    assert it.next(timeout=DEADLINE) is None
    with pytest.raises(StopIteration):
        it.next(timeout=DEADLINE)


def test_imap_raises_at_the_failing_item_and_goes_on(pool: Any) -> None:
    it = pool.imap(functools.partial(t.raise_on, bad=3), range(6))
    assert [next(it), next(it), next(it)] == [0, 1, 4]
    with pytest.raises(ValueError, match="bad item 3"):
        next(it)
    assert list(it) == [16, 25]


def test_imap_rejects_a_chunksize_below_one(pool: Any) -> None:
    with pytest.raises(ValueError):
        pool.imap(t.square, range(3), 0)
    with pytest.raises(ValueError):
        pool.imap_unordered(t.square, range(3), 0)


# --- callbacks -----------------------------------------------------------------------


class Recorder:
    """Callbacks that record their calls; the slow one makes a race with ``get`` show."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.errors: list[BaseException] = []

    def callback(self, value: Any) -> None:
        time.sleep(0.1)
        self.values.append(value)

    def error_callback(self, error: BaseException) -> None:
        time.sleep(0.1)
        self.errors.append(error)


def test_callback_runs_once_before_get_returns(pool: Any) -> None:
    rec = Recorder()
    result = pool.apply_async(
        t.square, (3,), callback=rec.callback, error_callback=rec.error_callback
    )
    assert result.get(timeout=DEADLINE) == 9
    assert rec.values == [9]
    assert rec.errors == []

    rec = Recorder()
    result = pool.map_async(
        t.square, range(5), 1, callback=rec.callback, error_callback=rec.error_callback
    )
    assert result.get(timeout=DEADLINE) == [0, 1, 4, 9, 16]
    assert rec.values == [[0, 1, 4, 9, 16]]
    assert rec.errors == []

    rec = Recorder()
    result = pool.starmap_async(t.add, [(1, 2)], callback=rec.callback)
    result.wait(DEADLINE)
    assert rec.values == [[3]]


def test_error_callback_runs_once_before_get_raises(pool: Any) -> None:
    rec = Recorder()
    result = pool.apply_async(
        t.raise_value_error, ("boom",), callback=rec.callback, error_callback=rec.error_callback
    )
    with pytest.raises(ValueError, match="boom") as info:
        result.get(timeout=DEADLINE)
    assert rec.errors == [info.value]
    assert rec.values == []

    rec = Recorder()
    result = pool.map_async(
        functools.partial(t.raise_on, bad=2),
        range(5),
        1,
        callback=rec.callback,
        error_callback=rec.error_callback,
    )
    with pytest.raises(ValueError, match="bad item 2") as info:
        result.get(timeout=DEADLINE)
    assert rec.errors == [info.value]
    assert rec.values == []


# --- exceptions from tasks -----------------------------------------------------------


def test_exception_carries_the_worker_traceback(pool: Any) -> None:
    with pytest.raises(ValueError, match="boom") as info:
        pool.apply(t.raise_value_error, ("boom",))
    cause = info.value.__cause__
    assert isinstance(cause, pool_module.RemoteTraceback)
    assert "raise_value_error" in str(cause)
    assert "ValueError: boom" in str(cause)

    with pytest.raises(ValueError, match="bad item 1") as info:
        pool.map(functools.partial(t.raise_on, bad=1), range(3))
    cause = info.value.__cause__
    assert isinstance(cause, pool_module.RemoteTraceback)
    assert "raise_on" in str(cause)


def test_unpicklable_result_fails_only_its_task(pool: Any) -> None:
    results = [pool.apply_async(t.unpicklable_on, (i, 2)) for i in range(5)]
    for i, result in enumerate(results):
        if i == 2:
            with pytest.raises(pool_module.MaybeEncodingError, match="lock"):
                result.get(timeout=DEADLINE)
        else:
            assert result.get(timeout=DEADLINE) == i
    with pytest.raises(pool_module.MaybeEncodingError):
        pool.map(functools.partial(t.unpicklable_on, bad=3), range(5), chunksize=1)
    assert pool.map(t.square, range(3)) == [0, 1, 4]


# --- lifecycle -----------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["close", "terminate"])
def test_a_stopped_pool_refuses_work(stop: str) -> None:
    p = mp.Pool(2)
    getattr(p, stop)()
    calls: list[Callable[[], object]] = [
        lambda: p.apply(t.square, (1,)),
        lambda: p.apply_async(t.square, (1,)),
        lambda: p.map(t.square, [1]),
        lambda: p.map_async(t.square, [1]),
        lambda: p.starmap(t.add, [(1, 2)]),
        lambda: p.starmap_async(t.add, [(1, 2)]),
        lambda: p.imap(t.square, [1]),
        lambda: p.imap_unordered(t.square, [1]),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    p.join()


def test_join_before_close_raises() -> None:
    with mp.Pool(2) as p:
        with pytest.raises(ValueError):
            p.join()
        assert p.apply(t.square, (2,)) == 4


def test_close_then_join_finishes_the_submitted_work(ctx: Any) -> None:
    p = ctx.Pool(2)
    results = [p.apply_async(t.square, (i,)) for i in range(10)]
    mapped = p.map_async(t.square, range(10), 1)
    p.close()
    p.join()
    assert [r.get(0) for r in results] == [i * i for i in range(10)]
    assert mapped.get(0) == [i * i for i in range(10)]
    assert mp.active_children() == []


def test_context_manager_terminates_the_pool(ctx: Any) -> None:
    with ctx.Pool(2) as p:
        assert p.apply(t.square, (3,)) == 9
        workers = [child.pid for child in mp.active_children()]
        assert len(workers) == 2
    with pytest.raises(ValueError):
        p.apply(t.square, (3,))
    assert wait_until(lambda: not any(pid_alive(pid) for pid in workers))
    p.join()


def test_maxtasksperchild_replaces_workers(ctx: Any) -> None:
    with ctx.Pool(2, maxtasksperchild=1) as p:
        pids = p.map(t.getpid, range(8), chunksize=1)
        # Each task ran in a worker of its own, and every result came back.
        assert len(pids) == 8
        assert len(set(pids)) == 8
        assert p.map(t.square, range(6), chunksize=1) == [x * x for x in range(6)]
    with ctx.Pool(2, maxtasksperchild=2) as p:
        pids = p.map(t.getpid, range(8), chunksize=1)
        assert max(pids.count(pid) for pid in pids) <= 2


def test_initializer_runs_in_each_worker(ctx: Any) -> None:
    with ctx.Pool(2, initializer=t.set_worker_global, initargs=("set by initializer",)) as p:
        assert p.map(t.read_worker_global, range(6), 1) == ["set by initializer"] * 6
    assert t.worker_global is None  # it ran in the workers, not here


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="Number of processes must be at least 1"):
        mp.Pool(0)
    with pytest.raises(ValueError, match="Number of processes must be at least 1"):
        mp.Pool(-1)
    with pytest.raises(ValueError):
        mp.Pool(2, maxtasksperchild=0)
    with pytest.raises(TypeError):
        mp.Pool(2, initializer=5)
    assert mp.active_children() == []


def test_a_pool_cannot_be_pickled() -> None:
    with mp.Pool(2) as p, pytest.raises(NotImplementedError):
        pickle.dumps(p)


def test_repr_shows_state_and_size() -> None:
    p = mp.Pool(2)
    assert re.fullmatch(rf"<{MODULE_NAME}\.pool\.Pool state=RUN pool_size=2>", repr(p))
    p.close()
    assert "state=CLOSE" in repr(p)
    p.terminate()
    assert "state=TERMINATE" in repr(p)
    p.join()


# --- beyond the stdlib ---------------------------------------------------------------


@pytest.mark.ferroproc_only
def test_lambdas_and_closures_are_accepted(pool: Any) -> None:
    pytest.importorskip("cloudpickle")
    offset = 10

    def shifted(x: int) -> int:
        return x + offset

    assert pool.map(lambda x: x * 3, range(5)) == [0, 3, 6, 9, 12]
    assert pool.apply(shifted, (1,)) == 11
    assert list(pool.imap(shifted, lazy(range(3)))) == [10, 11, 12]


@pytest.mark.ferroproc_only
def test_results_can_be_awaited(pool: Any) -> None:
    async def main() -> tuple[Any, ...]:
        single = await pool.apply_async(t.square, (5,))
        mapped = await pool.map_async(t.square, range(4))
        gathered = await asyncio.gather(*(pool.apply_async(t.square, (i,)) for i in range(6)))
        return single, mapped, gathered

    single, mapped, gathered = asyncio.run(main())
    assert single == 25
    assert mapped == [0, 1, 4, 9]
    assert gathered == [i * i for i in range(6)]


@pytest.mark.ferroproc_only
def test_awaiting_a_failed_result_raises(pool: Any) -> None:
    async def main() -> Any:
        return await pool.apply_async(t.raise_value_error, ("awaited",))

    with pytest.raises(ValueError, match="awaited"):
        asyncio.run(main())


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_imap_buffersize_reads_an_infinite_input_only_as_far_as_asked(
    pool: Any, method: str
) -> None:
    pulled: list[int] = []

    def numbers() -> Iterator[int]:
        for i in itertools.count():
            pulled.append(i)
            yield i

    buffersize = 2
    it = getattr(pool, method)(t.square, numbers(), buffersize=buffersize)
    first = list(itertools.islice(it, 10))
    if method == "imap":
        assert first == [x * x for x in range(10)]
    else:
        assert len(set(first)) == 10
    # Give a runaway reader the chance to show itself: it must not read on.
    time.sleep(0.3)
    # Ten consumed, at most `buffersize` submitted ahead, and one item in hand.
    assert len(pulled) <= 10 + buffersize + 1
    assert next(it) in {x * x for x in range(len(pulled))}
    del it


@pytest.mark.ferroproc_only
def test_imap_buffersize_must_be_positive(pool: Any) -> None:
    with pytest.raises(ValueError, match="buffersize"):
        pool.imap(t.square, range(3), buffersize=0)


@pytest.mark.ferroproc_only
def test_progress_bar(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    assert pool.map(t.square, range(20), progress=True) == [x * x for x in range(20)]
    assert pool.starmap(t.add, [(1, 2), (3, 4)], progress=True) == [3, 7]
    assert "20/20" in capsys.readouterr().err


@pytest.mark.ferroproc_only
def test_progress_without_tqdm_says_so(pool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match="tqdm"):
        pool.map(t.square, range(5), progress=True)
    assert pool.map(t.square, range(5)) == [0, 1, 4, 9, 16]


@pytest.mark.ferroproc_only
def test_unpicklable_argument_fails_at_submission(pool: Any) -> None:
    with pytest.raises((TypeError, pickle.PicklingError), match="lock"):
        pool.apply_async(t.square, (threading.Lock(),))
    with pytest.raises((TypeError, pickle.PicklingError), match="lock"):
        pool.map(t.square, [1, threading.Lock(), 3])
    assert pool.apply(t.square, (3,)) == 9
    assert pool.map(t.square, range(4)) == [0, 1, 4, 9]


@pytest.mark.ferroproc_only
def test_exception_that_cannot_be_unpickled_is_a_clear_error(pool: Any) -> None:
    # CPython gh-79492: the stdlib's result handler dies on it and get() waits forever.
    result = pool.apply_async(t.raise_unloadable)
    with pytest.raises(pool_module.MaybeEncodingError) as info:
        result.get(timeout=DEADLINE)
    message = str(info.value)
    assert "UnloadableError" in message
    assert "first/second" in message
    assert pool.apply(t.square, (4,)) == 16


@pytest.mark.ferroproc_only
def test_system_exit_in_a_task_fails_only_that_task(pool: Any) -> None:
    others = [pool.apply_async(t.square, (i,)) for i in range(6)]
    exiting = pool.apply_async(t.exit_task, (3,))
    with pytest.raises(SystemExit) as info:
        exiting.get(timeout=DEADLINE)
    assert info.value.code == 3
    assert [r.get(timeout=DEADLINE) for r in others] == [i * i for i in range(6)]
    assert pool.map(t.square, range(4), chunksize=1) == [0, 1, 4, 9]
