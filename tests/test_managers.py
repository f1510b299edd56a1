"""Managers and proxies with real server processes, under every start method.

Everything not marked ``ferroproc_only`` is the stdlib's documented behaviour and passes
with ``FERROPROC_TEST_MODULE=multiprocessing``. Every wait is bounded.
"""

from __future__ import annotations

import copy
import importlib
import os
import pickle
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import _manager_targets as t
from _support import DEADLINE, MODULE_NAME, mp, pid_alive, read_when_present, wait_until

managers = importlib.import_module(f"{MODULE_NAME}.managers")
shared_memory = importlib.import_module(f"{MODULE_NAME}.shared_memory")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def manager(ctx: Any) -> Iterator[Any]:
    """A started SyncManager whose server was started with each start method in turn."""
    m = managers.SyncManager(ctx=ctx)
    m.start()
    try:
        yield m
    finally:
        m.shutdown()


@pytest.fixture
def fork_manager() -> Iterator[Any]:
    """A SyncManager for the tests that do not depend on the start method (one per test:
    conftest kills whatever child a test leaves running)."""
    m = managers.SyncManager(ctx=mp.get_context("fork"))
    m.start()
    try:
        yield m
    finally:
        m.shutdown()


def run_child(ctx: Any, target: Any, *args: Any) -> None:
    p = ctx.Process(target=target, args=args)
    p.start()
    p.join(DEADLINE)
    assert p.exitcode == 0


# --- every SyncManager type, round trip ----------------------------------------------


def test_queue_and_joinable_queue(fork_manager: Any) -> None:
    q = fork_manager.Queue()
    q.put([1, "two"])
    assert q.qsize() == 1
    assert q.get(timeout=DEADLINE) == [1, "two"]
    assert q.empty()
    jq = fork_manager.JoinableQueue(2)
    jq.put(1)
    jq.put(2)
    assert jq.full()
    assert jq.get() == 1
    jq.task_done()
    assert jq.get() == 2
    jq.task_done()
    jq.join()
    with pytest.raises(__import__("queue").Empty):
        q.get(timeout=0.01)


def test_event(fork_manager: Any) -> None:
    e = fork_manager.Event()
    assert not e.is_set()
    assert e.wait(0.01) is False
    e.set()
    assert e.is_set()
    assert e.wait() is True
    e.clear()
    assert not e.is_set()


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore", "BoundedSemaphore"])
def test_acquirers(fork_manager: Any, kind: str) -> None:
    lock = getattr(fork_manager, kind)()
    assert lock.acquire() is True
    if kind == "RLock":
        assert lock.acquire(False) is True
        lock.release()
    else:
        assert lock.acquire(False) is False
        assert lock.acquire(True, 0.01) is False
    lock.release()
    with lock:
        pass
    if kind == "BoundedSemaphore":
        with pytest.raises(ValueError):
            lock.release()
    if kind == "Semaphore":
        sem = fork_manager.Semaphore(2)
        assert sem.acquire(False) and sem.acquire(False)
        assert sem.acquire(False) is False


def test_rlock_release_by_non_owner_raises(fork_manager: Any) -> None:
    lock = fork_manager.RLock()
    with pytest.raises(RuntimeError):
        lock.release()


def test_condition(fork_manager: Any) -> None:
    cond = fork_manager.Condition()
    with cond:
        assert cond.wait(0.01) is False
        cond.notify()
        cond.notify_all()
    assert cond.acquire()
    assert cond.wait_for(lambda: True) is True
    assert cond.wait_for(lambda: 0, timeout=0.01) == 0
    cond.release()


def test_barrier(fork_manager: Any) -> None:
    barrier = fork_manager.Barrier(1)
    assert barrier.parties == 1
    assert barrier.n_waiting == 0
    assert barrier.broken is False
    assert barrier.wait() == 0
    barrier.abort()
    assert barrier.broken is True
    barrier.reset()
    assert barrier.broken is False


def test_pool(fork_manager: Any) -> None:
    with fork_manager.Pool(2) as pool:
        assert pool.apply(pow, (2, 5)) == 32
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
        assert pool.starmap(pow, [(2, 2), (3, 2)]) == [4, 9]
        result = pool.apply_async(pow, (3, 3))
        assert result.get(DEADLINE) == 27
        assert result.ready() and result.successful()
        assert pool.map_async(abs, [-4]).get(DEADLINE) == [4]
        assert list(pool.imap(abs, [-1, -2])) == [1, 2]
        assert sorted(pool.imap_unordered(abs, [-1, -2])) == [1, 2]


def test_list(fork_manager: Any) -> None:
    lst = fork_manager.list(range(3))
    assert len(lst) == 3
    assert lst[1] == 1
    assert lst[:] == [0, 1, 2]
    assert 2 in lst
    lst.append(3)
    lst.extend([4, 5])
    lst.insert(0, -1)
    assert lst.pop() == 5
    lst.remove(-1)
    assert lst.index(3) == 3
    assert lst.count(0) == 1
    lst.reverse()
    lst.sort()
    lst[0] = 10
    del lst[0]
    assert lst + [9] == [1, 2, 3, 4, 9]  # noqa: RUF005 - the proxy's __add__
    assert lst * 2 == [1, 2, 3, 4] * 2
    assert list(reversed(lst)) == [4, 3, 2, 1]
    same = lst
    lst += [5]
    assert lst is same
    lst *= 2
    assert lst is same
    assert lst[:] == [1, 2, 3, 4, 5] * 2
    assert lst._getvalue() == [1, 2, 3, 4, 5] * 2
    assert copy.deepcopy(lst) == [1, 2, 3, 4, 5] * 2


def test_dict(fork_manager: Any) -> None:
    d = fork_manager.dict({"a": 1}, b=2)
    d["c"] = 3
    assert len(d) == 3
    assert d["a"] == 1
    assert "b" in d
    assert d.get("x", 0) == 0
    assert sorted(d) == ["a", "b", "c"]
    assert sorted(d.keys()) == ["a", "b", "c"]
    assert sorted(d.values()) == [1, 2, 3]
    assert sorted(d.items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert d.setdefault("d", 4) == 4
    assert d.pop("d") == 4
    d.update({"e": 5})
    del d["e"]
    assert d.copy() == {"a": 1, "b": 2, "c": 3}
    assert d.popitem() == ("c", 3)
    with pytest.raises(KeyError):
        d["missing"]
    d.clear()
    assert d._getvalue() == {}


def test_value_array_namespace(fork_manager: Any) -> None:
    v = fork_manager.Value("i", 5)
    assert v.value == 5
    v.value = 6
    assert v.get() == 6
    v.set(7)
    assert v.value == 7
    a = fork_manager.Array("i", range(4))
    assert len(a) == 4
    assert a[2] == 2
    a[2] = 20
    assert list(a[:]) == [0, 1, 20, 3]
    ns = fork_manager.Namespace(x=1)
    ns.y = "two"
    assert ns.x == 1
    assert ns.y == "two"
    del ns.x
    with pytest.raises(AttributeError):
        _ = ns.x
    assert str(ns) == "Namespace(y='two')"


def test_dict_iteration_yields_keys_and_notices_a_change_of_size(fork_manager: Any) -> None:
    d = fork_manager.dict(a=1, b=2)
    it = iter(d)
    assert list(it) == ["a", "b"]
    assert list(it) == []
    it = iter(d)
    d["c"] = 3
    with pytest.raises(RuntimeError, match="changed size"):
        next(it)


# --- repr, str, number of objects ----------------------------------------------------


def test_repr_and_str(fork_manager: Any) -> None:
    d = fork_manager.dict(a=1)
    assert re.fullmatch(r"<DictProxy object, typeid 'dict' at 0x[0-9a-f]+>", repr(d))
    assert str(d) == "{'a': 1}"
    lst = fork_manager.list([1])
    assert re.fullmatch(r"<ListProxy object, typeid 'list' at 0x[0-9a-f]+>", repr(lst))
    assert str(lst) == "[1]"
    q = fork_manager.Queue()
    assert re.fullmatch(r"<AutoProxy\[Queue\] object, typeid 'Queue' at 0x[0-9a-f]+>", repr(q))
    assert str(fork_manager.Value("i", 3)) == "Value('i', 3)"


def test_objects_are_released_with_their_proxies(ctx: Any) -> None:
    with managers.SyncManager(ctx=ctx) as m:
        assert m._number_of_objects() == 0
        d = m.dict()
        lst = m.list()
        assert m._number_of_objects() == 2
        assert "refcount=1" in m._debug_info()
        del d
        assert m._number_of_objects() == 1
        del lst
        assert m._number_of_objects() == 0


# --- proxies in children -------------------------------------------------------------


def test_proxies_in_children(ctx: Any, manager: Any) -> None:
    lst = manager.list(["parent"])
    dct = manager.dict()
    ns = manager.Namespace(name="parent")
    value = manager.Value("i", 0)
    array = manager.Array("i", [0, 0])
    p = ctx.Process(target=t.fill_containers, args=(lst, dct, ns, value, array))
    p.start()
    p.join(DEADLINE)
    assert p.exitcode == 0
    assert lst[:] == ["parent", p.pid, "child"]
    assert dct.copy() == {"child": p.pid, "extra": 1}
    assert ns.name == "child"
    assert value.value == 42
    assert list(array[:]) == [7, 0]


def test_sync_proxies_in_children(ctx: Any, manager: Any) -> None:
    queue = manager.Queue()
    event = manager.Event()
    lock = manager.Lock()
    cond = manager.Condition()
    counter = manager.Value("i", 0)
    p = ctx.Process(target=t.use_sync_objects, args=(queue, event, lock, cond, counter))
    p.start()
    assert event.wait(DEADLINE)
    assert queue.get(timeout=DEADLINE) == ("from child", p.pid)
    p.join(DEADLINE)
    assert p.exitcode == 0
    assert counter.value == 1


def test_barrier_across_processes(ctx: Any, manager: Any) -> None:
    barrier = manager.Barrier(3)
    results = manager.list()
    children = [ctx.Process(target=t.wait_on_barrier, args=(barrier, results)) for _ in range(2)]
    for p in children:
        p.start()
    results.append(barrier.wait(DEADLINE))
    for p in children:
        p.join(DEADLINE)
        assert p.exitcode == 0
    assert sorted(results) == [0, 1, 2]


def test_proxy_inherited_by_forked_child_holds_its_own_reference() -> None:
    ctx = mp.get_context("fork")
    with managers.SyncManager(ctx=ctx) as m:
        lst = m.list()
        run_child(ctx, t.call_from_forked_child, lst)
        assert lst[:] == ["forked"]
        assert m._number_of_objects() == 1


def test_proxy_pickles_only_to_start_a_child_with_its_authkey(fork_manager: Any) -> None:
    d = fork_manager.dict(a=1)
    clone = pickle.loads(pickle.dumps(d))
    assert clone["a"] == 1
    assert clone._token.id == d._token.id
    assert clone._authkey == d._authkey


# --- nested proxies ------------------------------------------------------------------


def test_list_of_dicts(ctx: Any, manager: Any) -> None:
    inner = manager.dict(name="inner")
    outer = manager.list([inner])
    del inner
    run_child(ctx, t.add_to_nested, outer)
    first = outer[0]
    assert first["name"] == "inner"
    assert first["child"] is True
    assert outer[1] == {"appended": True}


def test_dict_of_managed_dicts(fork_manager: Any) -> None:
    outer = fork_manager.dict()
    outer["a"] = fork_manager.dict(x=1)
    outer["b"] = fork_manager.dict(y=2)
    # The managed dicts live on while only the outer dict refers to them.
    assert outer["a"]["x"] == 1
    outer["a"]["x"] = 10
    assert outer["a"]["x"] == 10
    assert {k: v.copy() for k, v in outer.items()} == {"a": {"x": 10}, "b": {"y": 2}}
    del outer
    assert wait_until(lambda: fork_manager._number_of_objects() == 0)


def test_nested_lists(fork_manager: Any) -> None:
    a = fork_manager.list([1])
    b = fork_manager.list([a])
    a.append(2)
    assert b[0][:] == [1, 2]
    b[0].append(3)
    assert a[:] == [1, 2, 3]


# --- register ------------------------------------------------------------------------


@pytest.fixture
def counters(ctx: Any) -> Iterator[Any]:
    m = t.CounterManager(ctx=ctx)
    m.start()
    try:
        yield m
    finally:
        m.shutdown()


def test_register_auto_proxy_exposes_public_methods(counters: Any) -> None:
    c = counters.Counter(3)
    assert c.increment() == 4
    assert c.get() == 4
    assert not hasattr(c, "_secret")
    assert c._callmethod("increment", (2,)) == 6
    with pytest.raises(managers.RemoteError):
        c._callmethod("_secret")
    assert str(c) == "Counter(6)"


def test_register_exposed(counters: Any) -> None:
    p = counters.Private()
    assert sorted(n for n in ("increment", "get", "_secret") if hasattr(p, n)) == [
        "_secret",
        "increment",
    ]
    assert p._secret() == "secret"
    with pytest.raises(managers.RemoteError):
        p._callmethod("get")


def test_register_proxytype(counters: Any) -> None:
    c = counters.Typed(1)
    assert isinstance(c, t.CounterProxy)
    assert c.increment(4) == 5
    assert str(c) == "Counter(5)"


def test_register_method_to_typeid(counters: Any) -> None:
    parent = counters.Parent(2)
    child = parent.child()
    assert isinstance(child, t.CounterProxy)
    assert child.get() == 20
    assert child.increment() == 21
    squares = parent.squares(4)
    assert isinstance(squares, managers.IteratorProxy)
    assert list(squares) == [0, 1, 4, 9]


def test_register_create_method_false(counters: Any) -> None:
    assert not hasattr(counters, "Hidden")
    token, exposed = counters._create("Hidden", 9)
    proxy = managers.AutoProxy(token, "pickle", manager=counters, exposed=exposed)
    assert proxy.get() == 9


def test_register_on_subclass_does_not_touch_the_base() -> None:
    class Sub(managers.BaseManager):  # type: ignore[misc, name-defined]
        pass

    Sub.register("thing", dict)
    assert hasattr(Sub, "thing")
    assert not hasattr(managers.BaseManager, "thing")
    assert "thing" not in managers.BaseManager._registry


@pytest.mark.ferroproc_only
def test_proxy_subclass_can_answer_without_the_server(counters: Any) -> None:
    d = counters.local_dict(a=1)
    assert d["a"] == ("local", "a", "local_dict", "pickle")
    assert d.get("a") == 1
    assert d._manager is counters
    assert isinstance(d._authkey, bytes)


# --- errors --------------------------------------------------------------------------


def test_method_error_is_raised_in_the_caller(counters: Any) -> None:
    c = counters.Counter()
    with pytest.raises(ValueError, match="boom"):
        c.fail("boom")


@pytest.mark.ferroproc_only
def test_method_error_carries_the_server_traceback(counters: Any) -> None:
    c = counters.Counter()
    with pytest.raises(ValueError) as info:
        c.fail("boom")
    assert "in fail" in str(info.value.__cause__)


def test_remote_error_carries_the_traceback(counters: Any) -> None:
    c = counters.Counter()
    with pytest.raises(managers.RemoteError) as info:
        c._callmethod("no_such_method")
    text = str(info.value)
    assert "Traceback" in text
    assert "no_such_method" in text
    assert text.startswith("\n" + "-" * 75)


def test_unknown_typeid_is_a_remote_error(counters: Any) -> None:
    with pytest.raises(managers.RemoteError, match="KeyError"):
        counters._create("nothing")


# --- states and shutdown -------------------------------------------------------------


def test_context_manager_starts_and_shuts_down(ctx: Any) -> None:
    m = managers.SyncManager(ctx=ctx)
    with m as entered:
        assert entered is m
        assert m._process.is_alive()
        d = m.dict(a=1)
        assert d["a"] == 1
    m._process.join(DEADLINE)
    assert m._process.exitcode == 0
    with pytest.raises(mp.ProcessError, match="Manager has shut down"), m:
        pass


def test_state_errors(fork_manager: Any) -> None:
    with pytest.raises(mp.ProcessError, match="Already started server"):
        fork_manager.start()
    with pytest.raises(mp.ProcessError, match="Already started server"):
        fork_manager.get_server()
    m = managers.SyncManager()
    with pytest.raises(TypeError):
        m.start(1)
    m.start()
    m.shutdown()
    with pytest.raises(mp.ProcessError, match="Manager has shut down"):
        m.start()
    m.join(DEADLINE)
    assert m._process is None


def test_shutdown_is_idempotent_and_join_waits() -> None:
    m = managers.SyncManager()
    assert m.address is None
    assert not hasattr(m, "shutdown")
    m.start()
    assert m.address is not None
    process = m._process
    m.shutdown()
    m.shutdown()
    m.join(DEADLINE)
    assert not process.is_alive()


def test_manager_function_returns_a_started_sync_manager(ctx: Any) -> None:
    m = ctx.Manager()
    try:
        assert isinstance(m, managers.SyncManager)
        assert m.list([1])[:] == [1]
    finally:
        m.shutdown()
    top = mp.Manager()
    try:
        assert top.dict(x=1)["x"] == 1
    finally:
        top.shutdown()


def test_server_ignores_sigint(fork_manager: Any) -> None:
    import signal

    d = fork_manager.dict()
    os.kill(fork_manager._process.pid, signal.SIGINT)
    d["after"] = 1
    assert d["after"] == 1
    assert fork_manager._process.is_alive()


def test_initializer_runs_in_the_server(tmp_path: Path) -> None:
    marker = tmp_path / "init"
    m = managers.SyncManager()
    m.start(marker.write_text, ("ran",))
    try:
        assert marker.read_text() == "ran"
    finally:
        m.shutdown()


# --- remote managers -----------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["pickle", "xmlrpclib"])
def test_remote_manager_over_tcp(ctx: Any, serializer: str) -> None:
    authkey = os.urandom(16)
    server = t.RemoteManager(
        address=("127.0.0.1", 0), authkey=authkey, serializer=serializer, ctx=ctx
    )
    server.start()
    try:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        before = server.get_counter().get()
        run_child(ctx, t.connect_and_increment, server.address, authkey, serializer)
        client = t.RemoteClient(address=server.address, authkey=authkey, serializer=serializer)
        client.connect()
        assert client.get_counter().get() == before + 5
    finally:
        server.shutdown()


def test_remote_manager_rejects_a_wrong_authkey() -> None:
    server = t.RemoteManager(address=("127.0.0.1", 0), authkey=b"right")
    server.start()
    try:
        client = t.RemoteClient(address=server.address, authkey=b"wrong")
        with pytest.raises(mp.AuthenticationError):
            client.connect()
        # The server goes on serving those who know the key.
        good = t.RemoteClient(address=server.address, authkey=b"right")
        good.connect()
        assert isinstance(good.get_counter().get(), int)
    finally:
        server.shutdown()


def test_xmlrpclib_cannot_send_a_function(fork_manager: Any) -> None:
    server = t.RemoteManager(address=("127.0.0.1", 0), authkey=b"k", serializer="xmlrpclib")
    server.start()
    try:
        counter = server.get_counter()
        with pytest.raises(TypeError):
            counter.increment(len)
    finally:
        server.shutdown()


def test_connect_to_serve_forever_in_another_process(ctx: Any, tmp_path: Path) -> None:
    authkey = os.urandom(16)
    address_file = tmp_path / "address"
    p = ctx.Process(target=t.serve_forever, args=(str(address_file), authkey))
    p.start()
    try:
        host, port = read_when_present(address_file).split()
        client = t.RemoteClient(address=(host, int(port)), authkey=authkey)
        client.connect()
        counter = client.get_counter()
        start = counter.get()
        assert counter.increment(2) == start + 2
        del counter
        # A client can stop such a server, as a manager that started one would.
        conn = client._Client(client.address, authkey=authkey)
        managers.dispatch(conn, None, "shutdown")
        conn.close()
        p.join(DEADLINE)
        assert p.exitcode == 0
    finally:
        if p.is_alive():
            p.kill()
            p.join()


# --- shared memory -------------------------------------------------------------------


def shm_exists(name: str) -> bool:
    return os.path.exists("/dev/shm/" + name.lstrip("/"))


def test_shared_memory_manager_unlinks_at_shutdown(ctx: Any) -> None:
    smm = managers.SharedMemoryManager(ctx=ctx)
    with pytest.raises(ValueError):
        smm.SharedMemory(8)
    smm.start()
    block = smm.SharedMemory(64)
    block.buf[:3] = b"abc"
    shareable = smm.ShareableList([1, "two", 3.0])
    names = [block.name, shareable.shm.name]
    assert all(shm_exists(n) for n in names)
    other = shared_memory.SharedMemory(name=block.name)
    assert bytes(other.buf[:3]) == b"abc"
    other.close()
    smm.shutdown()
    assert not any(shm_exists(n) for n in names)
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name=names[0])
    block.close()
    shareable.shm.close()


def test_shared_memory_manager_as_context_manager() -> None:
    with managers.SharedMemoryManager() as smm:
        sl = smm.ShareableList("howdy")
        name = sl.shm.name
        assert sl[0] == "h"
    assert not shm_exists(name)
    sl.shm.close()


@pytest.mark.ferroproc_only
def test_shared_memory_server_unlinks_when_its_parent_dies(scripts: Any) -> None:
    result = scripts.run(
        """
        import os
        from multiprocessing.managers import SharedMemoryManager
        smm = SharedMemoryManager()
        smm.start()
        sl = smm.ShareableList(range(4))
        print(sl.shm.name, smm._process.pid, flush=True)
        os._exit(0)  # no finalizers: the server must notice on its own
        """.replace("multiprocessing.managers", f"{MODULE_NAME}.managers")
    )
    assert result.returncode == 0, result
    name, pid = result.stdout.split()
    assert wait_until(lambda: not pid_alive(int(pid))), result
    assert not shm_exists(name)


def test_threads_share_a_proxy(fork_manager: Any) -> None:
    lst = fork_manager.list()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                lst.append((n, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(DEADLINE)
    assert not errors
    assert len(lst) == 80
