"""Named shared memory: ``shared_memory.SharedMemory`` and ``ShareableList``.

Cross-process tests run under fork, spawn and forkserver (the ``ctx`` fixture): the parent
creates a segment, a child attaches it by name (or receives it pickled, which is by name),
checks what the parent wrote and writes back, the parent checks the child's writes.
Children report through their exit code (an assertion failing in a child makes it exit
with 1). Every test unlinks what it creates in a ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from _support import DEADLINE, IS_STDLIB, mp

shared_memory = pytest.importorskip(f"{mp.__name__}.shared_memory")
SharedMemory = shared_memory.SharedMemory
ShareableList = shared_memory.ShareableList


def fresh_name() -> str:
    """A name no other test (or run) uses."""
    return f"fptest_{os.getpid()}_{secrets.token_hex(8)}"


def shm_path(name: str) -> str:
    return "/dev/shm/" + name.lstrip("/")


@contextlib.contextmanager
def created(size: int, name: str | None = None) -> Iterator[Any]:
    """A new segment, closed and unlinked afterwards whatever happens."""
    shm = SharedMemory(name, create=True, size=size)
    try:
        yield shm
    finally:
        shm.close()
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


def run_child(ctx: Any, target: Any, *args: Any) -> None:
    child = ctx.Process(target=target, args=args)
    child.start()
    child.join(DEADLINE)
    assert child.exitcode == 0


# --- what children run (module level, so spawned children can import it) -------------


def child_read_then_write(name: str) -> None:
    shm = SharedMemory(name)
    try:
        assert bytes(shm.buf[:5]) == b"hello"
        shm.buf[8:13] = b"world"
    finally:
        shm.close()


def child_uses_pickled(shm: Any, size: int) -> None:
    try:
        assert shm.size == size
        assert bytes(shm.buf[:3]) == b"abc"
        shm.buf[3:6] = b"xyz"
    finally:
        shm.close()


def child_attach_and_close(name: str) -> None:
    SharedMemory(name).close()


def child_edit_list(name: str) -> None:
    sl = ShareableList(name=name)
    try:
        assert list(sl) == [7, 2.5, True, "héllo", b"raw", None]
        sl[0] = -(2**63)
        sl[1] = "a str"
        sl[3] = "bye"
        sl[5] = 1.5
    finally:
        sl.shm.close()


def child_edit_pickled_list(sl: Any) -> None:
    try:
        assert sl[0] == "from parent"
        sl[0] = "from child"
    finally:
        sl.shm.close()


# --- SharedMemory across processes -------------------------------------------------------


def test_child_attaches_by_name_both_ways(ctx: Any) -> None:
    with created(64) as shm:
        shm.buf[:5] = b"hello"
        run_child(ctx, child_read_then_write, shm.name)
        assert bytes(shm.buf[8:13]) == b"world"


def test_pickled_segment_reaches_child(ctx: Any) -> None:
    with created(100) as shm:
        shm.buf[:3] = b"abc"
        run_child(ctx, child_uses_pickled, shm, 100)
        assert bytes(shm.buf[3:6]) == b"xyz"


def test_child_attaching_never_unlinks(ctx: Any) -> None:
    with created(16) as shm:
        run_child(ctx, child_attach_and_close, shm.name)
        assert os.path.exists(shm_path(shm.name))
        again = SharedMemory(shm.name)
        again.close()


# --- SharedMemory in one process --------------------------------------------------------


def test_attach_sees_writes_and_real_size() -> None:
    with created(4096) as shm:
        shm.buf[4095] = 9
        other = SharedMemory(shm.name, size=1)  # the size is ignored when attaching
        try:
            assert other.size == 4096
            assert other.buf[4095] == 9
            assert len(other.buf) == 4096
        finally:
            other.close()


def test_new_segment_is_zeroed() -> None:
    with created(1000) as shm:
        assert shm.size == 1000
        assert bytes(shm.buf) == bytes(1000)


def test_repr_and_reduce() -> None:
    with created(10) as shm:
        assert repr(shm) == f"SharedMemory({shm.name!r}, size=10)"
        assert shm.__reduce__() == (SharedMemory, (shm.name, False, 10))
        copy = pickle.loads(pickle.dumps(shm))
        try:
            shm.buf[0] = 42
            assert copy.buf[0] == 42
        finally:
            copy.close()


def test_name_with_leading_slash() -> None:
    name = fresh_name()
    with created(8, "/" + name) as shm:
        assert os.path.exists(shm_path(name))
        shm.buf[0] = 1
        for given in (name, "/" + name):
            other = SharedMemory(given)
            try:
                assert other.buf[0] == 1
            finally:
                other.close()
    assert not os.path.exists(shm_path(name))


def test_chosen_name() -> None:
    name = fresh_name()
    with created(8, name) as shm:
        assert shm.name == name
        assert os.path.exists(shm_path(name))


def test_unlink_removes_the_name() -> None:
    shm = SharedMemory(create=True, size=8)
    try:
        path = shm_path(shm.name)
        assert os.path.exists(path)
        shm.buf[0] = 3
        shm.unlink()
        assert not os.path.exists(path)
        assert shm.buf[0] == 3  # the memory lives on while mapped
        with pytest.raises(FileNotFoundError):
            SharedMemory(shm.name)
    finally:
        shm.close()
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


def test_close_is_idempotent_and_releases_buf() -> None:
    with created(8) as shm:
        shm.close()
        shm.close()
        assert shm.buf is None
        other = SharedMemory(shm.name)  # the segment lives on after close
        other.close()


@pytest.mark.parametrize("size", [0, -1])
def test_create_needs_a_positive_size(size: int) -> None:
    with pytest.raises(ValueError, match="'size' must be a positive"):
        SharedMemory(create=True, size=size)


def test_create_size_zero_message() -> None:
    with pytest.raises(ValueError) as info:
        SharedMemory(fresh_name(), create=True, size=0)
    assert str(info.value) == "'size' must be a positive number different from zero"


def test_negative_size_when_attaching() -> None:
    with pytest.raises(ValueError):
        SharedMemory(fresh_name(), size=-1)


def test_attach_without_name() -> None:
    with pytest.raises(ValueError):
        SharedMemory()


def test_attach_missing_name() -> None:
    name = fresh_name()
    with pytest.raises(FileNotFoundError):
        SharedMemory(name)
    assert not os.path.exists(shm_path(name))


def test_create_existing_name() -> None:
    with created(8) as shm:
        shm.buf[0] = 5
        with pytest.raises(FileExistsError):
            SharedMemory(shm.name, create=True, size=8)
        assert shm.buf[0] == 5
        assert os.path.exists(shm_path(shm.name))


@pytest.mark.ferroproc_only
def test_segments_are_owner_only() -> None:
    with created(8) as shm:
        assert os.stat(shm_path(shm.name)).st_mode & 0o777 == 0o600
    with created(8, fresh_name()) as shm:
        assert os.stat(shm_path(shm.name)).st_mode & 0o777 == 0o600


@pytest.mark.ferroproc_only
def test_random_names_are_prefixed_and_distinct() -> None:
    with created(8) as a, created(8) as b:
        for shm in (a, b):
            assert shm.name.startswith("fp_")
            assert len(shm.name) == 35
        assert a.name != b.name


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("name", ["a/b", "a\0b", "x" * 256])
def test_invalid_names_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError):
        SharedMemory(name, create=True, size=8)


# --- ShareableList -----------------------------------------------------------------------

ITEMS: list[Any] = [7, 2.5, True, "héllo", b"raw", None]


@contextlib.contextmanager
def shareable(sequence: Any = None, name: str | None = None) -> Iterator[Any]:
    sl = ShareableList(sequence, name=name)
    try:
        yield sl
    finally:
        sl.shm.close()
        with contextlib.suppress(FileNotFoundError):
            sl.shm.unlink()


def test_list_shared_with_child(ctx: Any) -> None:
    with shareable(ITEMS) as sl:
        run_child(ctx, child_edit_list, sl.shm.name)
        assert list(sl) == [-(2**63), "a str", True, "bye", b"raw", 1.5]


def test_pickled_list_reaches_child(ctx: Any) -> None:
    with shareable(["from parent", 1]) as sl:
        run_child(ctx, child_edit_pickled_list, sl)
        assert sl[0] == "from child"


def test_list_round_trips_every_type() -> None:
    with shareable(ITEMS) as sl:
        assert len(sl) == 6
        assert list(sl) == ITEMS
        assert [type(v) for v in sl] == [type(v) for v in ITEMS]
        assert sl[-1] is None
        assert sl[-6] == 7
        assert sl.format == "qdxxxxxxx?8s8sxxxxxx?x"
        other = ShareableList(name=sl.shm.name)
        try:
            assert list(other) == ITEMS
            other[0] = 99
            assert sl[0] == 99
        finally:
            other.shm.close()


def test_list_with_chosen_name() -> None:
    name = fresh_name()
    with shareable([1, 2], name=name) as sl:
        assert sl.shm.name == name
        assert list(ShareableList(name=name)) == [1, 2]


def test_empty_list() -> None:
    with shareable() as sl:
        assert len(sl) == 0
        assert list(sl) == []
        assert sl.format == ""
        with pytest.raises(IndexError):
            sl[0]


def test_list_index_errors() -> None:
    # The stdlib reads a wrong item for some negative positions past the start.
    positions = (2, 100) if IS_STDLIB else (2, 100, -3, -100)
    with shareable([1, 2]) as sl:
        for position in positions:
            with pytest.raises(IndexError):
                sl[position]
            with pytest.raises(IndexError):
                sl[position] = 0


def test_str_and_bytes_keep_their_room() -> None:
    with shareable(["abc", b"xy", 1]) as sl:
        sl[0] = "12345678"  # "abc" got 8 bytes
        assert sl[0] == "12345678"
        with pytest.raises(ValueError, match="exceeds available storage"):
            sl[0] = "123456789"
        assert sl[0] == "12345678"
        with pytest.raises(ValueError):
            sl[1] = b"x" * 9
        sl[1] = b""
        assert sl[1] == b""
        sl[2] = "fits in8"  # a number's slot holds 8 bytes of text
        assert sl[2] == "fits in8"
        with pytest.raises(ValueError):
            sl[2] = "nine byte"


def test_type_changes() -> None:
    with shareable([1, "text", None, 2.0]) as sl:
        sl[0] = 1.25
        sl[1] = 5
        sl[2] = False
        sl[3] = None
        assert list(sl) == [1.25, 5, False, None]
        assert sl.format == "dqxxxxxxx?xxxxxx?x"
        sl[1] = b"back"
        assert sl[1] == b"back"
        assert sl.format == "d8sxxxxxxx?xxxxxx?x"


def test_count_index_repr_reduce() -> None:
    with shareable([1, "a", 1, None]) as sl:
        assert sl.count(1) == 2
        assert sl.count("zz") == 0
        assert sl.index("a") == 1
        assert sl.index(None) == 3
        with pytest.raises(ValueError, match="not in this container"):
            sl.index(42)
        assert repr(sl) == f"ShareableList([1, 'a', 1, None], name={sl.shm.name!r})"
        copy = pickle.loads(pickle.dumps(sl))
        try:
            assert list(copy) == [1, "a", 1, None]
            copy[0] = 2
            assert sl[0] == 2
        finally:
            copy.shm.close()


def test_class_getitem() -> None:
    alias = ShareableList[int]
    assert alias.__origin__ is ShareableList
    assert alias.__args__ == (int,)


def test_unsupported_item_type() -> None:
    with pytest.raises(KeyError):
        ShareableList([[1]])


@pytest.mark.skipif(IS_STDLIB, reason="the stdlib sizes str slots by characters")
def test_non_ascii_str_gets_room_for_its_encoding() -> None:
    with shareable(["é" * 8]) as sl:
        assert sl[0] == "é" * 8
        sl[0] = "é" * 8
        assert sl[0] == "é" * 8
