"""Shared ctypes objects: ``Value``, ``Array``, ``RawValue``, ``RawArray``, ``sharedctypes``.

Every cross-process test runs under fork, spawn and forkserver (the ``ctx`` fixture): the
parent writes, a child checks what it sees and writes back, the parent checks the child's
writes. Children report through their exit code (an assertion failing in a child makes it
exit with 1). The functions children run live at module level so spawned children can
import them from this module.
"""

from __future__ import annotations

import ctypes
import pickle
import time
from typing import Any

import pytest

from _support import DEADLINE, mp

sharedctypes = pytest.importorskip(f"{mp.__name__}.sharedctypes")

# Typecodes with a value to store first and one for the child to store.
SCALARS = [
    ("b", -7, 100),
    ("B", 200, 3),
    ("h", -30000, 1234),
    ("H", 60000, 7),
    ("i", -(2**31), 2**31 - 1),
    ("I", 2**32 - 1, 5),
    ("l", -(2**62), 2**62),
    ("L", 2**63, 11),
    ("q", -(2**63), 42),
    ("Q", 2**64 - 1, 0),
    ("f", 0.5, -2.25),
    ("d", 3.141592653589793, -1e300),
    ("c", b"x", b"y"),
    ("u", "\u00e9", "z"),
]


class Point(ctypes.Structure):
    _fields_ = (("x", ctypes.c_int), ("y", ctypes.c_double))


def run_child(ctx: Any, target: Any, *args: Any) -> None:
    """Runs ``target(*args)`` in a child of ``ctx`` and checks it succeeded."""
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(DEADLINE)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        pytest.fail(f"child {target.__name__} did not finish within {DEADLINE} s")
    assert proc.exitcode == 0, f"child {target.__name__} failed (exit code {proc.exitcode})"


# --- children -------------------------------------------------------------------------


def child_check_and_set_value(value: Any, expected: Any, new: Any) -> None:
    assert value.value == expected, (value.value, expected)
    value.value = new


def child_check_and_set_array(array: Any, expected: list[Any], new: list[Any]) -> None:
    assert array[:] == expected, (array[:], expected)
    array[:] = new


def child_char_array(array: Any) -> None:
    assert array.value == b"hello"
    assert array.raw == b"hello\x00\x00\x00"
    array.value = b"bye"


def child_point(point: Any) -> None:
    assert (point.x, point.y) == (3, 0.25)
    point.x = -1
    point.y = 8.5


def child_slices(array: Any) -> None:
    assert array[2:5] == [2, 3, 4]
    assert array[::-3] == [9, 6, 3, 0]
    array[1:3] = [100, 200]
    array[-1] = -9


def child_check_lock(value: Any, lock: Any) -> None:
    # The wrapper's lock is the one given, shared with the parent: the parent holds it.
    assert value.get_lock() is not None
    assert not value.acquire(False)
    assert not lock.acquire(False)
    value.get_obj().value = 77


def child_increment(value: Any, times: int) -> None:
    for _ in range(times):
        with value.get_lock():
            value.value += 1


def child_large(array: Any, n: int) -> None:
    assert len(array) == n
    assert array[0] == 0.5
    assert array[n - 1] == 1.5
    assert array[n // 2] == 2.5
    for i in range(0, n, 1000):
        array[i] = float(i)
    array[n - 1] = -1.0


def child_same_memory(first: Any, second: Any, raw: Any) -> None:
    # The same objects passed twice arrive as views of the same memory.
    first[0] = 11.0
    assert second[0] == 11.0
    raw.value = 12


def child_die_holding_lock(value: Any, ready: Any) -> None:
    value.get_lock().acquire()
    value.value = -1  # half-way through an update
    ready.set()
    time.sleep(DEADLINE * 2)


def child_pass_on(value: Any, array: Any, method: str) -> None:
    """Passes the objects on to a grandchild started with ``method``."""
    run_child(mp.get_context(method), child_grandchild, value, array)
    assert value.value == 99
    assert array[0] == 99.0


def child_grandchild(value: Any, array: Any) -> None:
    value.value = 99
    array[0] = 99.0


# --- values and arrays across processes -----------------------------------------------


@pytest.mark.parametrize(("typecode", "first", "second"), SCALARS, ids=[s[0] for s in SCALARS])
def test_value_written_both_ways(ctx: Any, typecode: str, first: Any, second: Any) -> None:
    value = ctx.Value(typecode, first)
    assert value.value == first
    run_child(ctx, child_check_and_set_value, value, first, second)
    assert value.value == second


@pytest.mark.parametrize("typecode", ["i", "d", "q", "B"])
def test_raw_value_written_both_ways(ctx: Any, typecode: str) -> None:
    value = ctx.RawValue(typecode, 7)
    run_child(ctx, child_check_and_set_value, value, 7, 9)
    assert value.value == 9


@pytest.mark.parametrize(
    ("typecode", "first", "second"),
    [
        ("i", [1, -2, 3], [4, 5, -6]),
        ("d", [0.5, 1.5, 2.5, 3.5], [-1.0, 0.0, 1e-300, 2.0]),
        ("B", list(range(10)), list(range(250, 240, -1))),
        ("q", [2**62, -(2**62)], [1, 2]),
        ("f", [0.25], [8.0]),
    ],
)
def test_array_written_both_ways(
    ctx: Any, typecode: str, first: list[Any], second: list[Any]
) -> None:
    array = ctx.Array(typecode, first)
    assert array[:] == first
    assert len(array) == len(first)
    run_child(ctx, child_check_and_set_array, array, first, second)
    assert array[:] == second


def test_raw_array_written_both_ways(ctx: Any) -> None:
    array = ctx.RawArray("h", 5)
    assert array[:] == [0] * 5
    array[:] = [1, 2, 3, 4, 5]
    run_child(ctx, child_check_and_set_array, array, [1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert array[:] == [5, 4, 3, 2, 1]


def test_char_array_value_and_raw(ctx: Any) -> None:
    array = ctx.Array("c", 8)
    assert array.raw == b"\x00" * 8
    array.value = b"hello"
    assert array.value == b"hello"
    run_child(ctx, child_char_array, array)
    assert array.value == b"bye"
    assert array.raw == b"bye\x00o\x00\x00\x00"
    assert array[0] == b"b"


def test_char_array_from_bytes() -> None:
    array = mp.Array("c", b"abc")
    assert array.value == b"abc"
    assert array.raw == b"abc"
    assert array[:] == b"abc"
    raw = mp.RawArray("c", b"xyz")
    assert raw.value == b"xyz"


def test_structure(ctx: Any) -> None:
    point = ctx.Value(Point, 3, 0.25)
    assert (point.x, point.y) == (3, 0.25)
    assert type(point).__name__ == "SynchronizedPoint"
    run_child(ctx, child_point, point)
    assert (point.x, point.y) == (-1, 8.5)
    raw = ctx.RawValue(Point, 3, 0.25)
    assert isinstance(raw, Point)
    run_child(ctx, child_point, raw)
    assert (raw.x, raw.y) == (-1, 8.5)


def test_array_of_structures() -> None:
    points = mp.Array(Point, [(1, 1.0), (2, 2.0)])
    assert [(p.x, p.y) for p in points[:]] == [(1, 1.0), (2, 2.0)]
    points[1] = Point(5, 5.5)
    assert points[1].x == 5


def test_slicing(ctx: Any) -> None:
    array = ctx.Array("i", range(10))
    assert array[3] == 3
    assert array[-1] == 9
    assert array[2:5] == [2, 3, 4]
    assert array[::2] == [0, 2, 4, 6, 8]
    run_child(ctx, child_slices, array)
    assert array[:] == [0, 100, 200, 3, 4, 5, 6, 7, 8, -9]
    with pytest.raises(IndexError):
        array[10]
    with pytest.raises(ValueError):
        array[0:2] = [1, 2, 3]


def test_large_array_shared_with_child(ctx: Any) -> None:
    n = (1 << 20) // ctypes.sizeof(ctypes.c_double)  # 1 MiB of doubles
    array = ctx.Array("d", n)
    assert len(array) == n
    obj = array.get_obj()
    assert ctypes.sizeof(obj) == 1 << 20
    obj[0], obj[n // 2], obj[n - 1] = 0.5, 2.5, 1.5
    run_child(ctx, child_large, array, n)
    assert array[1000] == 1000.0
    assert obj[n - 1000 - n % 1000] == float(n - 1000 - n % 1000)
    assert array[n - 1] == -1.0
    assert array[1] == 0.0


def test_large_raw_array_shared_with_child(ctx: Any) -> None:
    n = 100_000  # 800 KB: past an arena block
    array = ctx.RawArray("d", n)
    array[0], array[n // 2], array[n - 1] = 0.5, 2.5, 1.5
    run_child(ctx, child_large, array, n)
    assert array[5000] == 5000.0
    assert array[n - 1] == -1.0


def test_same_objects_passed_twice(ctx: Any) -> None:
    large = ctx.RawArray("d", 20_000)
    raw = ctx.RawValue("i", 0)
    run_child(ctx, child_same_memory, large, large, raw)
    assert large[0] == 11.0
    assert raw.value == 12


def test_passed_on_to_grandchild(ctx: Any) -> None:
    # The grandchild is started with the same method (the stdlib refuses to pass a lock
    # made for fork children to a spawned one).
    value = ctx.Value("i", 0)
    array = ctx.RawArray("d", 10_000)
    run_child(ctx, child_pass_on, value, array, ctx.get_start_method())
    assert value.value == 99
    assert array[0] == 99.0


def test_locked_increments_are_exact(ctx: Any) -> None:
    value = ctx.Value("i", 0)
    procs = [ctx.Process(target=child_increment, args=(value, 2000)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(DEADLINE)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert value.value == 4000


@pytest.mark.ferroproc_only
def test_holder_killed_does_not_deadlock(ctx: Any) -> None:
    synchronize = pytest.importorskip(f"{mp.__name__}.synchronize")
    value = ctx.Value("i", 5)
    ready = ctx.Event()
    proc = ctx.Process(target=child_die_holding_lock, args=(value, ready))
    proc.start()
    try:
        assert ready.wait(DEADLINE)
    finally:
        proc.kill()
        proc.join()
    with pytest.warns(synchronize.OwnerDiedWarning), value.get_lock():
        assert value.value == -1
        value.value = 6
    assert value.value == 6


# --- locks ----------------------------------------------------------------------------


def test_lock_false_returns_the_raw_object() -> None:
    value = mp.Value("i", 3, lock=False)
    assert isinstance(value, ctypes.c_int)
    assert value.value == 3
    array = mp.Array("d", 4, lock=False)
    assert isinstance(array, ctypes.Array)
    assert not hasattr(array, "get_lock")


@pytest.mark.parametrize("lock", [True, None, 1])
def test_lock_true_makes_a_recursive_lock(lock: Any) -> None:
    value = mp.Value("i", 0, lock=lock)
    the_lock = value.get_lock()
    assert type(the_lock).__name__ == "RLock"
    with value.get_lock(), value.get_lock():  # recursive
        value.value += 1
    assert value.acquire()
    assert value.acquire()
    value.release()
    value.release()
    with value:
        assert value.value == 1


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_custom_lock(ctx: Any, kind: str) -> None:
    lock = getattr(ctx, kind)()
    value = ctx.Value("i", 1, lock=lock)
    array = ctx.Array("i", 3, lock=lock)
    assert value.get_lock() is lock
    assert array.get_lock() is lock
    with lock:
        run_child(ctx, child_check_lock, value, lock)
    assert value.value == 77
    assert lock.acquire(False)
    lock.release()


def test_get_obj() -> None:
    value = mp.Value("d", 2.5)
    obj = value.get_obj()
    assert isinstance(obj, ctypes.c_double)
    obj.value = 4.0
    assert value.value == 4.0
    array = mp.Array("i", [1, 2])
    assert isinstance(array.get_obj(), ctypes.Array)
    assert array.get_obj()[:] == [1, 2]


def test_synchronized() -> None:
    raw = mp.RawValue("i", 5)
    wrapped = sharedctypes.synchronized(raw)
    assert type(wrapped).__name__ == "Synchronized"
    assert wrapped.get_obj() is raw
    assert type(wrapped.get_lock()).__name__ == "RLock"
    lock = mp.Lock()
    assert sharedctypes.synchronized(raw, lock).get_lock() is lock
    string = sharedctypes.synchronized(mp.RawArray("c", b"ab"))
    assert type(string).__name__ == "SynchronizedString"
    assert string.value == b"ab"
    ints = sharedctypes.synchronized(mp.RawArray("i", 2))
    assert type(ints).__name__ == "SynchronizedArray"
    point = sharedctypes.synchronized(mp.RawValue(Point, 1, 2.0))
    assert type(point).__name__ == "SynchronizedPoint"
    point.x = 4
    assert point.get_obj().x == 4
    with pytest.raises(AssertionError):
        sharedctypes.synchronized(wrapped)


# --- copy, typecodes, errors, reprs ---------------------------------------------------


def test_copy(ctx: Any) -> None:
    value = ctx.Value("d", 1.25)
    copied = sharedctypes.copy(value.get_obj())
    assert isinstance(copied, ctypes.c_double)
    assert copied.value == 1.25
    copied.value = 3.0
    assert value.value == 1.25
    run_child(ctx, child_check_and_set_value, copied, 3.0, 4.5)
    assert copied.value == 4.5

    array = ctx.RawArray("i", [1, 2, 3])
    array_copy = sharedctypes.copy(array)
    array_copy[0] = 10
    assert array[:] == [1, 2, 3]
    assert array_copy[:] == [10, 2, 3]
    point_copy = sharedctypes.copy(ctx.RawValue(Point, 7, 7.5))
    assert (point_copy.x, point_copy.y) == (7, 7.5)


def test_typecodes() -> None:
    assert sharedctypes.typecode_to_type["i"] is ctypes.c_int
    assert sharedctypes.typecode_to_type["d"] is ctypes.c_double
    assert sharedctypes.typecode_to_type["c"] is ctypes.c_char
    for typecode, ctype in sharedctypes.typecode_to_type.items():
        assert isinstance(mp.RawValue(typecode), ctype)
        array = mp.RawArray(typecode, 3)
        assert array._type_ is ctype
        assert ctypes.sizeof(array) == 3 * ctypes.sizeof(ctype)
    assert isinstance(mp.RawValue(ctypes.c_short, 3), ctypes.c_short)


def test_defaults_are_zero() -> None:
    assert mp.RawValue("d").value == 0.0
    assert mp.Value("i").value == 0
    assert mp.RawArray("q", 4)[:] == [0, 0, 0, 0]
    point = mp.RawValue(Point)
    assert (point.x, point.y) == (0, 0.0)
    assert mp.RawArray("i", 0)[:] == []


def test_bad_typecode() -> None:
    with pytest.raises(TypeError):
        mp.Value("x")
    with pytest.raises(TypeError):
        mp.RawArray("x", 3)
    with pytest.raises(TypeError):
        mp.Array(object(), 3)


def test_bad_initialiser() -> None:
    with pytest.raises(TypeError):
        mp.Value("i", "not a number")
    with pytest.raises(TypeError):
        mp.RawArray("i", ["a"])


def test_lock_without_acquire() -> None:
    with pytest.raises(AttributeError, match=r"'navy' has no method 'acquire'"):
        mp.Value("i", 2, lock="navy")
    with pytest.raises(AttributeError, match=r"has no method 'acquire'"):
        mp.Array("i", 2, lock=object())


def test_pickling_outside_process_start() -> None:
    forking_pickler = mp.reduction.ForkingPickler
    for obj in (mp.Value("i", 1), mp.Array("d", 2), mp.Array("c", b"ab")):
        with pytest.raises(RuntimeError):
            pickle.dumps(obj)
        with pytest.raises(RuntimeError):
            forking_pickler.dumps(obj)
    for raw in (mp.RawValue("i", 1), mp.RawArray("d", 3), mp.RawArray("d", 100_000)):
        with pytest.raises(RuntimeError):
            forking_pickler.dumps(raw)


def test_reprs() -> None:
    assert repr(mp.Value("i", 5)) == "<Synchronized wrapper for c_int(5)>"
    assert repr(mp.Value("d", 0.5)) == "<Synchronized wrapper for c_double(0.5)>"
    assert repr(mp.RawValue("i", 7)) == "c_int(7)"
    text = repr(mp.Array("i", 3))
    assert text.startswith("<SynchronizedArray wrapper for <")
    assert "c_int_Array_3 object at 0x" in text
    assert repr(mp.Array("c", 2)).startswith("<SynchronizedString wrapper for <")
    assert repr(mp.Value(Point)).startswith("<SynchronizedPoint wrapper for <")


@pytest.mark.ferroproc_only
def test_dropped_values_free_their_blocks() -> None:
    heap = pytest.importorskip("ferroproc.heap")
    mp.RawValue("i")
    arenas = len(heap._by_inode)
    # Far more than one arena holds if nothing were freed (each value takes a 32-byte block).
    for _ in range(300_000):
        mp.RawValue("i", 1)
    assert len(heap._by_inode) <= arenas + 1
