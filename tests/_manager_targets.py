"""What manager tests' children run, and the classes their managers register.

Importable without pytest: spawned and fork-server children, and the managers' server
processes, import it by name.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from _support import MODULE_NAME, write_atomically

managers = importlib.import_module(f"{MODULE_NAME}.managers")


# --- registered types ----------------------------------------------------------------


class Counter:
    """A shared object with public, private and generator-returning methods."""

    def __init__(self, start: int = 0) -> None:
        self.value = start

    def increment(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def get(self) -> int:
        return self.value

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def _secret(self) -> str:
        return "secret"

    def squares(self, n: int) -> Any:
        return (i * i for i in range(n))

    def child(self) -> Counter:
        return Counter(self.value * 10)

    def __repr__(self) -> str:
        return f"Counter({self.value})"


class CounterProxy(managers.BaseProxy):  # type: ignore[misc, name-defined]
    _exposed_ = ("increment", "get", "__repr__")

    def increment(self, by: int = 1) -> Any:
        return self._callmethod("increment", (by,))

    def get(self) -> Any:
        return self._callmethod("get")


class LocalReadDictProxy(managers.DictProxy):  # type: ignore[misc, name-defined]
    """A proxy type that answers one method itself: what a store-backed proxy does."""

    def __getitem__(self, key: Any) -> Any:
        return ("local", key, self._token.typeid, self._serializer)


_global_counter = Counter(100)


def get_global_counter() -> Counter:
    return _global_counter


class CounterManager(managers.BaseManager):  # type: ignore[misc, name-defined]
    pass


CounterManager.register("Counter", Counter)
CounterManager.register("Private", Counter, exposed=("increment", "_secret"))
CounterManager.register("Typed", Counter, CounterProxy)
CounterManager.register(
    "Parent",
    Counter,
    exposed=("get", "child", "squares"),
    method_to_typeid={"child": "Child", "squares": "Iter"},
)
# Types that only methods return have no callable: the server wraps the result.
CounterManager.register("Child", proxytype=CounterProxy, create_method=False)
CounterManager.register("Iter", proxytype=managers.IteratorProxy, create_method=False)
CounterManager.register("Hidden", Counter, create_method=False)
CounterManager.register("global_counter", get_global_counter)
CounterManager.register("local_dict", dict, LocalReadDictProxy)


class RemoteManager(managers.BaseManager):  # type: ignore[misc, name-defined]
    """Serves one counter to whoever connects with the authkey."""


RemoteManager.register("get_counter", get_global_counter)


class RemoteClient(managers.BaseManager):  # type: ignore[misc, name-defined]
    """The same interface, without the callable: for connecting only."""


RemoteClient.register("get_counter")


# --- children ------------------------------------------------------------------------


def fill_containers(lst: Any, dct: Any, ns: Any, value: Any, array: Any) -> None:
    lst.append(os.getpid())
    lst.extend(["child"])
    dct["child"] = os.getpid()
    dct.update(extra=1)
    ns.name = "child"
    value.value = 42
    array[0] = 7


def use_sync_objects(queue: Any, event: Any, lock: Any, cond: Any, counter: Any) -> None:
    with lock:
        counter.value += 1
    queue.put(("from child", os.getpid()))
    with cond:
        cond.notify_all()
    event.set()


def add_to_nested(outer: Any) -> None:
    outer[0]["child"] = True
    outer.append({"appended": True})


def wait_on_barrier(barrier: Any, results: Any) -> None:
    results.append(barrier.wait(30))


def serve_forever(address_file: str, authkey: bytes) -> None:
    """Run a manager's server in this process, writing its address for the test."""
    manager = RemoteManager(address=("127.0.0.1", 0), authkey=authkey)
    server = manager.get_server()
    host, port = server.address
    write_atomically(address_file, f"{host} {port}")
    server.serve_forever()


def connect_and_increment(address: Any, authkey: bytes, serializer: str) -> None:
    manager = RemoteClient(address=address, authkey=authkey, serializer=serializer)
    manager.connect()
    manager.get_counter().increment(5)


def block_in_server(event: Any, ready: Any) -> None:
    """Signal, then wait in the server for an event nobody sets."""
    ready.set()
    event.wait()


def record_then_block(path: str, event: Any) -> None:
    write_atomically(path, str(os.getpid()))
    event.wait()


def call_from_forked_child(proxy: Any) -> None:
    proxy.append("forked")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("import this module; it is not a script")


def write_for_ever(shared: Any, lst: Any, name: str) -> None:
    """Writes to a managed dict and list until killed, every value checkable."""
    number = 0
    while True:
        number += 1
        shared[f"{name}-{number % 50}"] = (number, "x" * (number % 300))
        if number % 7 == 0:
            lst.append((number, "y" * (number % 200)))
        if number % 11 == 0 and len(lst) > 100:
            del lst[0]
