"""Queue, JoinableQueue and SimpleQueue: the stdlib's behaviour, across real processes.

Runs against the stdlib too (``FERROPROC_TEST_MODULE=multiprocessing``); promises the
stdlib does not keep are marked ``ferroproc_only``.
"""

from __future__ import annotations

import pickle
import queue
import threading
import time
from typing import Any

import pytest

import _queue_targets as qt
from _support import DEADLINE, IS_STDLIB, mp
from _sync_helpers import finish, start

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize(
    "obj",
    [
        0,
        -(2**63),
        2**63 - 1,
        2**100,
        True,
        False,
        None,
        3.25,
        float("inf"),
        "",
        "héllo wörld",
        "\udcff lone surrogate",
        b"",
        b"\x00" * 100,
        bytearray(b"ba"),
        (1, "two", [3.0]),
        {"k": {1, 2}},
        range(3),
        [1, 2, -(2**63), 2**63 - 1],
        [1, 2**64],
        [1, True],
        [1, 2.5],
        [0.5, -1e300, float("inf")],
        [0.5, 1],
        [[1], [2]],
    ],
)
def test_objects_round_trip_with_their_types(obj: Any) -> None:
    # Lists of numbers have a native form; mixed or oversized ones must still round-trip.
    q = mp.Queue()
    q.put(obj)
    got = q.get(timeout=DEADLINE)
    assert got == obj
    assert type(got) is type(obj)


class IntSubclass(int):
    pass


def test_subclasses_of_native_types_keep_their_class() -> None:
    q = mp.Queue()
    q.put(IntSubclass(7))
    got = q.get(timeout=DEADLINE)
    assert type(got) is IntSubclass
    assert got == 7


def test_fifo_order_within_one_process() -> None:
    q = mp.Queue()
    for i in range(1000):
        q.put(i)
    assert [q.get(timeout=DEADLINE) for _ in range(1000)] == list(range(1000))


def test_empty_and_full_raise_the_stdlib_exceptions() -> None:
    q = mp.Queue(maxsize=2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    q.put(1)
    q.put(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.05)
    assert q.get() == 1
    assert not q.full()
    q.put(3)
    assert [q.get(), q.get()] == [2, 3]


def test_qsize_and_empty_follow_the_contents() -> None:
    q = mp.Queue()
    assert q.empty()
    for i in range(5):
        q.put(i)
    assert wait_for(lambda: q.qsize() == 5)
    assert wait_for(lambda: not q.empty())  # the stdlib's feeder thread lags behind put
    for _ in range(5):
        q.get()
    assert q.qsize() == 0
    assert q.empty()


def wait_for(predicate: Any) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_closed_queue_refuses_put_and_get() -> None:
    q = mp.Queue()
    q.put(1)
    q.close()
    with pytest.raises(ValueError, match="is closed"):
        q.put(2)
    with pytest.raises(ValueError, match="is closed"):
        q.get()
    q.join_thread()


def test_join_thread_requires_close() -> None:
    q = mp.Queue()
    with pytest.raises(AssertionError):
        q.join_thread()
    q.cancel_join_thread()


@pytest.mark.ferroproc_only  # the stdlib fails in its feeder thread, not in put
def test_an_unpicklable_object_fails_in_put_and_the_queue_stays_usable() -> None:
    q = mp.Queue()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        q.put(lambda: None)
    with pytest.raises(TypeError):
        q.put(threading.Lock())
    q.put("still fine")
    assert q.get(timeout=DEADLINE) == "still fine"
    assert q.lost_messages == 0


def test_queues_cannot_be_pickled_outside_process_start() -> None:
    q = mp.Queue()
    with pytest.raises(RuntimeError, match="inheritance"):
        pickle.dumps(q)
    with pytest.raises(RuntimeError, match="inheritance"):
        pickle.dumps(mp.SimpleQueue())


def test_a_queue_cannot_be_put_on_a_queue() -> None:
    q = mp.Queue()
    if IS_STDLIB:
        pytest.skip("the stdlib fails in its feeder thread, printing a traceback")
    with pytest.raises(RuntimeError, match="inheritance"):
        q.put(mp.Queue())


def test_messages_cross_processes_under_every_start_method(ctx: Any) -> None:
    q = ctx.Queue()
    out = ctx.Queue()
    count = 5000
    consumer = start(ctx, qt.sum_from, q, count, out)
    producer = start(ctx, qt.put_range, q, 0, count)
    assert out.get(timeout=DEADLINE) == count * (count - 1) // 2
    assert finish(producer) == 0
    assert finish(consumer) == 0


def test_many_producers_and_consumers_deliver_everything_once(ctx: Any) -> None:
    q = ctx.Queue()
    out = ctx.Queue()
    per_producer, producers, consumers = 3000, 3, 2
    total = per_producer * producers
    share = [total // consumers + (1 if i < total % consumers else 0) for i in range(consumers)]
    readers = [start(ctx, qt.sum_from, q, n, out) for n in share]
    writers = [
        start(ctx, qt.put_range, q, i * per_producer, (i + 1) * per_producer)
        for i in range(producers)
    ]
    sums = [out.get(timeout=DEADLINE) for _ in readers]
    assert sum(sums) == total * (total - 1) // 2
    for p in readers + writers:
        assert finish(p) == 0


def test_each_producers_messages_stay_in_order(ctx: Any) -> None:
    q = ctx.Queue()
    writers = [start(ctx, qt.put_tagged, q, tag, 2000) for tag in range(2)]
    seen: dict[int, int] = {0: -1, 1: -1}
    for _ in range(4000):
        tag, i = q.get(timeout=DEADLINE)
        assert i == seen[tag] + 1
        seen[tag] = i
    for p in writers:
        assert finish(p) == 0


def test_a_producer_may_exit_before_anyone_reads(ctx: Any) -> None:
    # gh-73983: with the stdlib, joining a child that put more than a pipe holds
    # deadlocks (the child waits at exit for its feeder thread). Well within the ring
    # here, so the child's messages are in shared memory when it exits.
    if IS_STDLIB:
        pytest.skip("the stdlib deadlocks here (gh-73983)")
    q = ctx.Queue()
    p = start(ctx, qt.put_then_exit, q, 200, 1000)
    assert finish(p) == 0
    got = [q.get(timeout=DEADLINE) for _ in range(200)]
    assert [i for i, _ in got] == list(range(200))
    assert all(payload == b"x" * 1000 for _, payload in got)


def test_a_message_larger_than_the_ring_reaches_another_process(ctx: Any) -> None:
    kwargs = {} if IS_STDLIB else {"capacity": 64 * 1024}
    q = ctx.Queue(**kwargs)
    size = 3 * 1024 * 1024
    p = start(ctx, qt.put_big_then_exit, q, size)
    got = q.get(timeout=DEADLINE)
    assert got == b"\x07" * size
    assert finish(p) == 0


def test_a_producer_of_a_large_message_may_exit_before_anyone_reads(ctx: Any) -> None:
    # The big version of gh-73983: far more than the ring (and a pipe) holds.
    if IS_STDLIB:
        pytest.skip("the stdlib deadlocks here (gh-73983)")
    q = ctx.Queue(capacity=64 * 1024)
    size = 20 * 1024 * 1024
    p = start(ctx, qt.put_big_then_exit, q, size)
    assert finish(p) == 0
    assert q.get(timeout=DEADLINE) == b"\x07" * size


def test_a_large_put_and_get_in_one_thread_do_not_deadlock() -> None:
    kwargs = {} if IS_STDLIB else {"capacity": 64 * 1024}
    q = mp.Queue(**kwargs)
    big = bytes(range(256)) * 4096  # 1 MiB, sixteen times the ring
    q.put(big)
    q.put("after")
    assert q.get(timeout=DEADLINE) == big
    assert q.get(timeout=DEADLINE) == "after"


def test_put_never_blocks_an_unbounded_queue(ctx: Any) -> None:
    # Far more than the ring holds, with nobody reading: the stdlib buffers in its feeder
    # thread; ferroproc's overflow thread takes over when the ring is out of bytes.
    kwargs = {} if IS_STDLIB else {"capacity": 4096}
    q = ctx.Queue(**kwargs)
    for i in range(5000):
        q.put((i, "x" * (i % 50)))
    assert [q.get(timeout=DEADLINE) for _ in range(5000)] == [
        (i, "x" * (i % 50)) for i in range(5000)
    ]


def test_a_child_with_unread_overflow_waits_at_exit_unless_cancelled(ctx: Any) -> None:
    kwargs = {} if IS_STDLIB else {"capacity": 4096}
    q = ctx.Queue(**kwargs)
    p = start(ctx, qt.put_many_then_cancel, q, 5000)
    # The child cancelled its join: it exits without waiting for a reader.
    assert finish(p) == 0
    got = []
    while True:
        try:
            got.append(q.get(timeout=0.5))
        except queue.Empty:
            break
    # Whatever arrived is a prefix, in order.
    assert got == list(range(len(got)))


def test_round_trips_through_a_child(ctx: Any) -> None:
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = start(ctx, qt.echo, inbox, outbox)
    for item in [1, "two", (3,), b"four" * 10000, None]:
        inbox.put(item)
        if item is not None:
            assert outbox.get(timeout=DEADLINE) == item
    assert finish(p) == 0


def test_joinable_queue_counts_tasks(ctx: Any) -> None:
    q = ctx.JoinableQueue()
    results = ctx.Queue()
    worker = start(ctx, qt.work_and_mark_done, q, results)
    for i in range(100):
        q.put(i)
    q.put(None)
    q.join()
    assert sorted(results.get(timeout=DEADLINE) for _ in range(100)) == [2 * i for i in range(100)]
    assert finish(worker) == 0
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


def test_simple_queue(ctx: Any) -> None:
    q = ctx.SimpleQueue()
    assert q.empty()
    q.put("x")
    assert not q.empty()
    assert q.get() == "x"
    inbox, outbox = ctx.SimpleQueue(), ctx.SimpleQueue()
    p = start(ctx, qt.echo, inbox, outbox)
    inbox.put([1, 2])
    assert outbox.get() == [1, 2]
    inbox.put(None)
    assert finish(p) == 0
    q.close()
    q.close()
    with pytest.raises(OSError):
        q.get()


def test_generic_aliases() -> None:
    from types import GenericAlias

    assert isinstance(mp.queues.SimpleQueue[int], GenericAlias)


# --- ferroproc's extensions ------------------------------------------------------------


@pytest.mark.ferroproc_only
def test_put_many_and_get_many_keep_order() -> None:
    q = mp.Queue()
    q.put_many(range(10_000))
    got: list[int] = []
    while len(got) < 10_000:
        got.extend(q.get_many(timeout=DEADLINE))
    assert got == list(range(10_000))
    with pytest.raises(queue.Empty):
        q.get_many(block=False)
    q.put_many(["a", "b", "c"])
    assert q.get_many(max_messages=2) == ["a", "b"]
    assert q.get_many() == ["c"]
    with pytest.raises(ValueError):
        q.get_many(max_messages=0)


@pytest.mark.ferroproc_only
def test_put_many_reports_how_many_fit() -> None:
    q = mp.Queue(maxsize=3)
    with pytest.raises(queue.Full) as raised:
        q.put_many(range(5), timeout=0.05)
    assert raised.value.args == (3,)
    assert q.get_many() == [0, 1, 2]


@pytest.mark.ferroproc_only
def test_large_buffers_travel_out_of_band_and_arrive_writable() -> None:
    numpy = pytest.importorskip("numpy")
    q = mp.Queue()
    array = numpy.arange(200_000, dtype=numpy.float64)
    q.put({"a": array, "small": numpy.arange(3)})
    got = q.get(timeout=DEADLINE)
    assert numpy.array_equal(got["a"], array)
    assert got["a"].flags.writeable
    got["a"][0] = -1.0
    assert numpy.array_equal(got["small"], numpy.arange(3))


def test_lists_of_arrays_round_trip_with_dtype_and_shape() -> None:
    numpy = pytest.importorskip("numpy")
    q = mp.Queue()
    cases = [
        numpy.array_split(numpy.random.rand(1000), 7),
        [numpy.arange(5, dtype=numpy.int32), numpy.arange(3, dtype=numpy.int32)],
        [numpy.arange(5, dtype=numpy.int32), numpy.arange(3)],  # mixed dtypes
        [numpy.zeros((2, 2))],  # two-dimensional
        [numpy.arange(10)[::2]],  # not contiguous
        [numpy.array([True, False])],
        [numpy.zeros(3, dtype=">f8")],  # byte-swapped
        [numpy.zeros(0)],
    ]
    for arrays in cases:
        q.put(arrays)
        got = q.get(timeout=DEADLINE)
        assert len(got) == len(arrays)
        for sent, received in zip(arrays, got):
            # (The stdlib's pickle may bring a byte-swapped array back in native order.)
            assert (received.dtype.kind, received.dtype.itemsize) == (
                sent.dtype.kind,
                sent.dtype.itemsize,
            )
            assert received.shape == sent.shape
            assert numpy.array_equal(received, sent)
            assert received.flags.writeable


@pytest.mark.ferroproc_only
def test_pickle_buffers_round_trip() -> None:
    q = mp.Queue()
    payload = bytearray(range(256)) * 1024
    q.put(pickle.PickleBuffer(payload))
    got = q.get(timeout=DEADLINE)
    assert bytes(got) == bytes(payload)


@pytest.mark.ferroproc_only
def test_capacity_is_validated() -> None:
    with pytest.raises(ValueError, match="capacity"):
        mp.Queue(capacity=100)
    with pytest.raises(ValueError, match="capacity"):
        mp.Queue(capacity=4097)


@pytest.mark.ferroproc_only
def test_repr_says_what_the_queue_is() -> None:
    q = mp.Queue(maxsize=4)
    q.put(1)
    assert "Queue" in repr(q) and "maxsize=4" in repr(q) and "size=1" in repr(q)
    q.close()
    assert "closed" in repr(q)


@pytest.mark.ferroproc_only
def test_join_with_a_timeout() -> None:
    q = mp.JoinableQueue()
    q.put(1)
    assert q.join(timeout=0.05) is False
    q.get()
    q.task_done()
    assert q.join(timeout=DEADLINE) is True
