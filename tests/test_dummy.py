"""``dummy`` and ``dummy.connection``: the multiprocessing API over threads.

Every test runs real threads and joins them. With ``FERROPROC_TEST_MODULE=multiprocessing``
the same tests check the stdlib's ``multiprocessing.dummy``, except the few marked
``ferroproc_only`` where ferroproc goes further.
"""

from __future__ import annotations

import array
import importlib
import multiprocessing.dummy as stdlib_dummy
import os
import queue
import threading
from typing import Any

import pytest

from _support import DEADLINE, MODULE_NAME

dummy = importlib.import_module(f"{MODULE_NAME}.dummy")
connection = importlib.import_module(f"{MODULE_NAME}.dummy.connection")

pytestmark = pytest.mark.timeout(120)


def joined(thread: threading.Thread) -> None:
    """Joins ``thread``, failing the test if it is still running after the deadline."""
    thread.join(DEADLINE)
    assert not thread.is_alive()


# --- names ---------------------------------------------------------------------------


def test_all_is_the_stdlib_list() -> None:
    assert sorted(dummy.__all__) == sorted(stdlib_dummy.__all__)
    for name in dummy.__all__:
        assert hasattr(dummy, name), name


def test_the_names_outside_all_are_there_too() -> None:
    for name in ("Namespace", "Value", "Array", "shutdown", "dict", "list", "connection"):
        assert hasattr(dummy, name), name
    assert dummy.dict is dict
    assert dummy.list is list
    assert sorted(connection.__all__) == ["Client", "Listener", "Pipe"]
    assert connection.families == [None]


def test_primitives_and_queues_are_the_threading_ones() -> None:
    assert dummy.Lock is threading.Lock
    assert dummy.RLock is threading.RLock
    assert dummy.Semaphore is threading.Semaphore
    assert dummy.BoundedSemaphore is threading.BoundedSemaphore
    assert dummy.Condition is threading.Condition
    assert dummy.Event is threading.Event
    assert dummy.Barrier is threading.Barrier
    assert dummy.Queue is queue.Queue
    assert dummy.JoinableQueue is queue.Queue
    assert dummy.Pipe is connection.Pipe
    assert dummy.current_process is threading.current_thread


def test_freeze_support_and_shutdown_do_nothing() -> None:
    assert dummy.freeze_support() is None
    assert dummy.shutdown() is None


# --- Process -------------------------------------------------------------------------


def test_process_runs_its_target_in_a_thread_of_this_process() -> None:
    seen: list[tuple[int, int, Any, dict[str, Any]]] = []

    def target(*args: Any, **kwargs: Any) -> None:
        seen.append((os.getpid(), threading.get_ident(), args, kwargs))

    p = dummy.Process(target=target, args=(1, 2), kwargs={"x": 3})
    p.start()
    joined(p)
    [(pid, ident, args, kwargs)] = seen
    assert pid == os.getpid()
    assert ident != threading.get_ident()
    assert args == (1, 2)
    assert kwargs == {"x": 3}


def test_process_exitcode_is_none_until_it_has_run_then_zero() -> None:
    go = threading.Event()
    p = dummy.Process(target=go.wait, args=(DEADLINE,))
    assert p.exitcode is None
    assert not p.is_alive()
    p.start()
    try:
        assert p.is_alive()
        assert p.exitcode is None
    finally:
        go.set()
        joined(p)
    assert not p.is_alive()
    assert p.exitcode == 0


def test_process_name_and_daemon() -> None:
    p = dummy.Process(target=lambda: None, name="worker-1")
    assert p.name == "worker-1"
    p.name = "renamed"
    assert p.name == "renamed"
    assert p.daemon is False
    p.daemon = True
    assert p.daemon is True
    p.start()
    joined(p)
    unnamed = dummy.Process(target=lambda: None)
    assert isinstance(unnamed.name, str)
    assert unnamed.name


@pytest.mark.ferroproc_only
def test_process_takes_daemon_as_a_keyword_like_process() -> None:
    p = dummy.Process(target=lambda: None, daemon=True)
    assert p.daemon is True


def test_process_subclass_overrides_run() -> None:
    class Worker(dummy.Process):
        def __init__(self, results: list[str]) -> None:
            super().__init__()
            self.results = results

        def run(self) -> None:
            self.results.append(dummy.current_process().name)

    results: list[str] = []
    worker = Worker(results)
    worker.start()
    joined(worker)
    assert results == [worker.name]
    assert worker.exitcode == 0


def test_current_process_inside_a_process_is_that_process() -> None:
    seen: list[Any] = []
    p = dummy.Process(target=lambda: seen.append(dummy.current_process()))
    p.start()
    joined(p)
    assert seen == [p]
    assert dummy.current_process() is threading.current_thread()


def test_process_starts_only_once() -> None:
    p = dummy.Process(target=lambda: None)
    p.start()
    joined(p)
    with pytest.raises(RuntimeError):
        p.start()


def test_only_the_creating_thread_may_start_a_process() -> None:
    p = dummy.Process(target=lambda: None)
    raised: list[BaseException] = []

    def start_elsewhere() -> None:
        try:
            p.start()
        except RuntimeError as exc:
            raised.append(exc)

    other = threading.Thread(target=start_elsewhere)
    other.start()
    joined(other)
    assert len(raised) == 1
    assert p.exitcode is None
    p.start()
    joined(p)
    assert p.exitcode == 0


def test_active_children_lists_running_processes_only() -> None:
    go = threading.Event()
    p = dummy.Process(target=go.wait, args=(DEADLINE,))
    assert p not in dummy.active_children()
    p.start()
    try:
        assert p in dummy.active_children()
    finally:
        go.set()
        joined(p)
    assert p not in dummy.active_children()


def test_a_process_can_start_and_list_its_own_children() -> None:
    seen: list[bool] = []

    def parent() -> None:
        go = threading.Event()
        child = dummy.Process(target=go.wait, args=(DEADLINE,))
        child.start()
        seen.append(child in dummy.active_children())
        go.set()
        joined(child)
        seen.append(child in dummy.active_children())

    p = dummy.Process(target=parent)
    p.start()
    joined(p)
    assert seen == [True, False]


# --- the stdlib's plain stand-ins ----------------------------------------------------


def test_namespace_holds_attributes_and_shows_the_public_ones_sorted() -> None:
    ns = dummy.Namespace(b=2, a="x", _hidden=1)
    ns.c = [3]
    assert (ns.a, ns.b, ns.c, ns._hidden) == ("x", 2, [3], 1)
    assert repr(ns) == "Namespace(a='x', b=2, c=[3])"


def test_value_boxes_a_value() -> None:
    v = dummy.Value("i", 5)
    assert v.value == 5
    v.value += 1
    assert v.value == 6
    assert repr(v) == "<Value('i', 6)>"
    assert dummy.Value("d", 1.5, lock=False).value == 1.5


def test_array_is_an_array_array() -> None:
    a = dummy.Array("i", [1, 2, 3])
    assert isinstance(a, array.array)
    assert a.typecode == "i"
    assert list(a) == [1, 2, 3]
    assert list(dummy.Array("d", range(2), lock=False)) == [0.0, 1.0]


def test_manager_is_the_module_and_its_objects_work_across_threads() -> None:
    manager = dummy.Manager()
    assert manager is dummy
    q = manager.Queue()
    lock = manager.Lock()
    ns = manager.Namespace(total=0)

    def add(n: int) -> None:
        with lock:
            ns.total += n
        q.put(n)

    workers = [manager.Process(target=add, args=(n,)) for n in range(5)]
    for w in workers:
        w.start()
    for w in workers:
        joined(w)
    assert ns.total == 10
    assert sorted(q.get(timeout=DEADLINE) for _ in range(5)) == [0, 1, 2, 3, 4]


def test_joinable_queue_tracks_tasks() -> None:
    q = dummy.JoinableQueue()

    def consume() -> None:
        for _ in range(3):
            q.get(timeout=DEADLINE)
            q.task_done()

    consumer = dummy.Process(target=consume)
    consumer.start()
    for n in range(3):
        q.put(n)
    q.join()
    joined(consumer)


# --- Pool ----------------------------------------------------------------------------


def _square(n: int) -> int:
    return n * n


def test_pool_makes_a_thread_pool_from_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    pool_module = pytest.importorskip(f"{MODULE_NAME}.pool")
    calls: list[tuple[Any, ...]] = []
    made = object()

    def thread_pool(*args: Any) -> object:
        calls.append(args)
        return made

    # Looked up when Pool is called, so the fake stands in for the real ThreadPool.
    monkeypatch.setattr(pool_module, "ThreadPool", thread_pool)
    assert dummy.Pool(3, print, (1,)) is made
    assert dummy.Pool() is made
    assert calls == [(3, print, (1,)), (None, None, ())]


def test_pool_runs_tasks_on_worker_threads() -> None:
    pytest.importorskip(f"{MODULE_NAME}.pool")
    initialised: list[int] = []

    pool = dummy.Pool(2, initialised.append, (1,))
    try:
        assert pool.map(_square, range(10)) == [n * n for n in range(10)]
        idents = set(pool.map(lambda _: threading.get_ident(), range(20)))
        assert threading.get_ident() not in idents
    finally:
        pool.close()
        pool.join()
    assert initialised == [1, 1]


# --- Pipe ----------------------------------------------------------------------------


def test_pipe_round_trip_in_both_directions() -> None:
    left, right = dummy.Pipe()
    left.send({"n": 1})
    assert right.recv() == {"n": 1}
    right.send("back")
    assert left.recv() == "back"
    left.send_bytes(b"raw")
    assert right.recv_bytes() == b"raw"


def test_pipe_passes_objects_without_copying() -> None:
    left, right = connection.Pipe()
    payload = [1, 2, 3]
    left.send(payload)
    assert right.recv() is payload


def test_pipe_between_threads() -> None:
    left, right = connection.Pipe()

    def echo() -> None:
        while (item := right.recv()) is not None:
            right.send(item * 2)

    worker = dummy.Process(target=echo)
    worker.start()
    try:
        for n in range(100):
            left.send(n)
            assert left.recv() == n * 2
    finally:
        left.send(None)
        joined(worker)


def test_pipe_without_duplex_still_gives_two_ends() -> None:
    reader, writer = connection.Pipe(duplex=False)
    writer.send(1)
    assert reader.recv() == 1


def test_poll_says_whether_something_waits() -> None:
    left, right = connection.Pipe()
    assert not right.poll()
    assert not right.poll(0)
    assert not right.poll(-1)
    assert not right.poll(0.05)
    left.send("x")
    assert right.poll()
    assert right.poll(0.05)
    assert right.recv() == "x"
    assert not right.poll()


def test_poll_with_a_timeout_sees_a_message_sent_by_another_thread() -> None:
    left, right = connection.Pipe()
    sender = threading.Thread(target=left.send, args=("late",))
    sender.start()
    try:
        assert right.poll(DEADLINE)
        assert right.recv() == "late"
    finally:
        joined(sender)


@pytest.mark.ferroproc_only
def test_poll_with_none_waits_for_a_message() -> None:
    left, right = connection.Pipe()
    sender = threading.Thread(target=left.send, args=("later",))
    sender.start()
    try:
        assert right.poll(None)
        assert right.recv() == "later"
    finally:
        joined(sender)


@pytest.mark.ferroproc_only
def test_send_bytes_honours_offset_and_size() -> None:
    left, right = connection.Pipe()
    left.send_bytes(b"abcdef", 2)
    left.send_bytes(bytearray(b"abcdef"), 1, 3)
    left.send_bytes(memoryview(b"abcdef"), 6)
    assert right.recv_bytes() == b"cdef"
    assert right.recv_bytes() == b"bcd"
    assert right.recv_bytes() == b""
    with pytest.raises(ValueError):
        left.send_bytes(b"abc", 4)
    with pytest.raises(ValueError):
        left.send_bytes(b"abc", 1, 5)
    with pytest.raises(ValueError):
        left.send_bytes(b"abc", -1)
    assert not right.poll()


def test_connections_are_context_managers() -> None:
    left, right = connection.Pipe()
    with left as entered:
        assert entered is left
    # Closing a dummy connection releases nothing: it still works, as in the stdlib.
    left.send(1)
    assert right.recv() == 1
    right.close()


# --- Listener and Client -------------------------------------------------------------


def test_listener_and_client_round_trip() -> None:
    with connection.Listener() as listener:
        replies: list[Any] = []

        def client() -> None:
            with connection.Client(listener.address) as conn:
                conn.send("ping")
                replies.append(conn.recv())

        worker = dummy.Process(target=client)
        worker.start()
        try:
            with listener.accept() as conn:
                assert conn.recv() == "ping"
                conn.send("pong")
        finally:
            joined(worker)
    assert replies == ["pong"]


def test_listener_serves_several_clients_in_turn() -> None:
    listener = connection.Listener(backlog=2)
    clients = [connection.Client(listener.address) for _ in range(2)]
    for n, conn in enumerate(clients):
        conn.send(n)
    served = [listener.accept() for _ in range(2)]
    assert [conn.recv() for conn in served] == [0, 1]
    for n, conn in enumerate(served):
        conn.send(n + 10)
    assert [conn.recv() for conn in clients] == [10, 11]
    assert clients[0].poll(0.01) is False
    listener.close()


def test_listener_accepts_the_stdlib_arguments() -> None:
    listener = connection.Listener(address=None, family=None, backlog=1)
    client = connection.Client(listener.address)
    server = listener.accept()
    client.send("hi")
    assert server.poll(DEADLINE)
    assert server.recv() == "hi"
    listener.close()


def test_closed_listener_has_no_address() -> None:
    listener = connection.Listener()
    assert listener.address is not None
    listener.close()
    assert listener.address is None


@pytest.mark.ferroproc_only
def test_accept_on_a_closed_listener_raises_oserror() -> None:
    listener = connection.Listener()
    listener.close()
    with pytest.raises(OSError, match="listener is closed"):
        listener.accept()
