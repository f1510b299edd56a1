"""Named shared memory: the stdlib's ``multiprocessing.shared_memory``.

::

    SharedMemory ──▶ _core.NamedSegment ──▶ /dev/shm/<name>  (0600, created exclusively)
         │                                        ▲
         └── buf: memoryview over mmap.mmap(fd) ──┘
    ShareableList ──▶ a SharedMemory holding the stdlib's layout (below)

Segments are found by name, so any process (ferroproc's or the stdlib's) can attach them.
A segment created here is registered with the resource tracker (``resource_tracker.py``),
which unlinks it if no process of the program has by the time they have all exited (a
creator killed by SIGKILL leaks nothing); ``unlink`` unregisters it. Attaching never
registers anything, so a process never removes a segment someone else created (unlike
the stdlib before 3.13, gh-82300).

``ShareableList`` keeps the stdlib's layout, so either side can read the other's lists;
every field is 8-byte aligned::

    q                 number of items, n
    q * (n + 1)       where each item's slot starts, from the start of the data
    data              one slot per item: 8 bytes, or a multiple of 8 for str/bytes
    8s * n            each item's struct format ("q", "d", "xxxxxxx?", "xxxxxx?x", "<k>s")
    b * n             how to turn each stored value back (0 as is, 1 str, 2 bytes, 3 None)
"""

from __future__ import annotations

import contextlib
import mmap
import secrets
import struct
import types

from . import _core, resource_tracker

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, Callable, ClassVar

__all__ = ["ShareableList", "SharedMemory"]


def _core_name(name: str) -> str:
    """The name as the core takes it: without the leading ``/`` of ``shm_open(3)``."""
    return name.lstrip("/")


# The stdlib's names for how names are made (its suite patches ``_make_filename``).
_USE_POSIX = True
_SHM_NAME_PREFIX = "/fp_"


def _make_filename() -> str:
    """A fresh unguessable name: the prefix and 128 bits from the kernel's generator."""
    return _SHM_NAME_PREFIX + secrets.token_hex(16)


class SharedMemory:
    """A named block of shared memory, created or attached by name.

    ``SharedMemory(name=None, create=False, size=0)``: with ``create=True`` a new segment
    of ``size`` bytes (a fresh unguessable name if ``name`` is None); otherwise the
    existing segment ``name``, all of it (``size`` is then ignored).
    """

    _segment: _core.NamedSegment | None = None
    _mmap: mmap.mmap | None = None
    _buf: memoryview | None = None

    def __init__(self, name: str | None = None, create: bool = False, size: int = 0) -> None:
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        generated = False
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if name is None:
                # A fresh name, and another in the unlikely event that it is taken.
                while True:
                    chosen = _make_filename()
                    try:
                        segment = _core.NamedSegment.create(_core_name(chosen), size)
                    except FileExistsError:
                        continue
                    break
                name, generated = chosen, True
            else:
                segment = _core.NamedSegment.create(_core_name(name), size)
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            segment = _core.NamedSegment.attach(_core_name(name))
        try:
            self._mmap = mmap.mmap(segment.fd, segment.size)
        except BaseException:
            segment.close()
            if create:
                segment.unlink()
            raise
        self._segment = segment
        # As in the stdlib: `_name` is what shm_open(3) takes, with a leading "/", and
        # `name` shows it without that one slash ("/x" for "/x", "x" for "x").
        self._name = name if generated else "/" + name
        self._size = segment.size
        self._buf = memoryview(self._mmap)
        if create:
            try:
                resource_tracker.register(segment.name, "shared_memory")
            except BaseException:
                self.close()
                segment.unlink()
                raise

    def __del__(self) -> None:
        with contextlib.suppress(OSError, BufferError):
            self.close()

    def __reduce__(self) -> tuple[type[SharedMemory], tuple[str, bool, int]]:
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    @property
    def buf(self) -> memoryview:
        """A memoryview of the segment's bytes (``None`` once closed, as in the stdlib)."""
        return self._buf  # type: ignore[return-value]

    @property
    def name(self) -> str:
        """The segment's name, by which other processes attach it."""
        return self._name[1:]

    @property
    def size(self) -> int:
        """The segment's size in bytes."""
        return self._size

    def close(self) -> None:
        """Stop using the segment from this instance; the segment itself lives on."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._segment is not None:
            self._segment.close()

    def unlink(self) -> None:
        """Remove the segment's name, so no one else can attach it; the memory is freed
        once every process has closed it. Call it once, from one process."""
        if self._segment is not None:
            self._segment.unlink()
            # Whoever unlinks it (its creator or not) tells the tracker, if this process
            # has one: the program's tracker is shared with its children. Never start a
            # tracker just for this.
            if resource_tracker._resource_tracker._fd is not None:
                resource_tracker.unregister(self._segment.name, "shared_memory")


_ENCODING = "utf8"


def _as_is(value: Any) -> Any:
    return value


def _to_str(value: bytes) -> str:
    return value.rstrip(b"\x00").decode(_ENCODING)


def _to_bytes(value: bytes) -> bytes:
    return value.rstrip(b"\x00")


def _to_none(value: Any) -> None:
    return None


_BACK_TRANSFORMS: dict[int, Callable[[Any], Any]] = {
    0: _as_is,
    1: _to_str,
    2: _to_bytes,
    3: _to_none,
}


class _UnsupportedTypeError(TypeError, KeyError):
    """An item of a type a ``ShareableList`` cannot hold (a ``KeyError`` in the stdlib)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ShareableList:
    """A fixed-length list of int, float, bool, str, bytes and None in shared memory.

    ``ShareableList(sequence)`` creates one (named ``name``, or a fresh name);
    ``ShareableList(name=name)`` attaches an existing one. A str or bytes item keeps the
    room it was created with (its encoded length rounded up to the next multiple of 8).
    """

    _types_mapping: ClassVar[dict[type, str]] = {
        int: "q",
        float: "d",
        bool: "xxxxxxx?",
        str: "%ds",
        bytes: "%ds",
        type(None): "xxxxxx?x",
    }
    _alignment = 8
    _back_transforms_mapping: ClassVar[dict[int, Callable[[Any], Any]]] = _BACK_TRANSFORMS

    @staticmethod
    def _extract_recreation_code(value: object) -> int:
        if isinstance(value, str):
            return 1
        if isinstance(value, bytes):
            return 2
        if value is None:
            return 3
        return 0

    @classmethod
    def _format_of(cls, item: object) -> str:
        if isinstance(item, (str, bytes)):
            # The slot is sized from len(item), characters for a str, as the stdlib does
            # (so formats agree with its lists); storing checks the encoded length.
            return cls._types_mapping[str] % (cls._alignment * (len(item) // cls._alignment + 1),)
        try:
            return cls._types_mapping[type(item)]
        except KeyError:
            raise _UnsupportedTypeError(
                f"ShareableList cannot hold an item of type {type(item).__name__!r}"
            ) from None

    def __init__(self, sequence: Iterable[Any] | None = None, *, name: str | None = None) -> None:
        if name is None or sequence is not None:
            items = list(sequence or ())
            formats = [self._format_of(item) for item in items]
            self._list_len = len(formats)
            offset = 0
            self._allocated_offsets = [0]
            for fmt in formats:
                offset += self._alignment if fmt[-1] != "s" else int(fmt[:-1])
                self._allocated_offsets.append(offset)
            size = struct.calcsize(
                "q"
                + self._format_size_metainfo
                + "".join(formats)
                + self._format_packing_metainfo
                + self._format_back_transform_codes
            )
            self.shm = SharedMemory(name, create=True, size=size)
            buf = self.shm.buf
            struct.pack_into(
                "q" + self._format_size_metainfo, buf, 0, self._list_len, *self._allocated_offsets
            )
            struct.pack_into(
                "".join(formats),
                buf,
                self._offset_data_start,
                *(v.encode(_ENCODING) if isinstance(v, str) else v for v in items),
            )
            struct.pack_into(
                self._format_packing_metainfo,
                buf,
                self._offset_packing_formats,
                *(fmt.encode(_ENCODING) for fmt in formats),
            )
            struct.pack_into(
                self._format_back_transform_codes,
                buf,
                self._offset_back_transform_codes,
                *(self._extract_recreation_code(v) for v in items),
            )
        else:
            self.shm = SharedMemory(name)
            self._list_len = len(self)
            self._allocated_offsets = list(
                struct.unpack_from(self._format_size_metainfo, self.shm.buf, 8)
            )

    def _check_position(self, position: int) -> None:
        if position >= self._list_len or self._list_len < 0:
            raise IndexError("Requested position out of range.")

    def _get_packing_format(self, position: int) -> str:
        position = position if position >= 0 else position + self._list_len
        self._check_position(position)
        (raw,) = struct.unpack_from("8s", self.shm.buf, self._offset_packing_formats + position * 8)
        return str(raw.rstrip(b"\x00").decode(_ENCODING))

    def _get_back_transform(self, position: int) -> Callable[[Any], Any]:
        self._check_position(position)
        (code,) = struct.unpack_from(
            "b", self.shm.buf, self._offset_back_transform_codes + position
        )
        return self._back_transforms_mapping[code]

    def _set_packing_format_and_transform(self, position: int, fmt: str, value: object) -> None:
        self._check_position(position)
        struct.pack_into(
            "8s", self.shm.buf, self._offset_packing_formats + position * 8, fmt.encode(_ENCODING)
        )
        struct.pack_into(
            "b",
            self.shm.buf,
            self._offset_back_transform_codes + position,
            self._extract_recreation_code(value),
        )

    def __getitem__(self, position: int) -> Any:
        position = position if position >= 0 else position + self._list_len
        try:
            if position < 0:
                raise IndexError
            offset = self._offset_data_start + self._allocated_offsets[position]
            (value,) = struct.unpack_from(self._get_packing_format(position), self.shm.buf, offset)
        except IndexError:
            raise IndexError("index out of range") from None
        return self._get_back_transform(position)(value)

    def __setitem__(self, position: int, value: Any) -> None:
        position = position if position >= 0 else position + self._list_len
        try:
            if position < 0:
                raise IndexError
            item_offset = self._allocated_offsets[position]
            offset = self._offset_data_start + item_offset
            current_format = self._get_packing_format(position)
        except IndexError:
            raise IndexError("assignment index out of range") from None
        encoded: Any
        if isinstance(value, (str, bytes)):
            allocated = self._allocated_offsets[position + 1] - item_offset
            encoded = value.encode(_ENCODING) if isinstance(value, str) else value
            if len(encoded) > allocated:
                raise ValueError("bytes/str item exceeds available storage")
            if current_format[-1] == "s":
                new_format = current_format
            else:
                new_format = self._types_mapping[str] % (allocated,)
        else:
            new_format = self._format_of(value)
            encoded = value
        self._set_packing_format_and_transform(position, new_format, value)
        struct.pack_into(new_format, self.shm.buf, offset, encoded)

    def __iter__(self) -> Iterator[Any]:
        for position in range(self._list_len):
            yield self[position]

    def __reduce__(self) -> tuple[Callable[..., ShareableList], tuple[type[ShareableList], str]]:
        return (_rebuild_shareable_list, (self.__class__, self.shm.name))

    def __len__(self) -> int:
        return int(struct.unpack_from("q", self.shm.buf, 0)[0])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self)}, name={self.shm.name!r})"

    @property
    def format(self) -> str:
        """The struct format of all the items, in order."""
        return "".join(self._get_packing_format(i) for i in range(self._list_len))

    @property
    def _format_size_metainfo(self) -> str:
        return "q" * (self._list_len + 1)

    @property
    def _format_packing_metainfo(self) -> str:
        return "8s" * self._list_len

    @property
    def _format_back_transform_codes(self) -> str:
        return "b" * self._list_len

    @property
    def _offset_data_start(self) -> int:
        return (self._list_len + 2) * 8

    @property
    def _offset_packing_formats(self) -> int:
        return self._offset_data_start + self._allocated_offsets[-1]

    @property
    def _offset_back_transform_codes(self) -> int:
        return self._offset_packing_formats + self._list_len * 8

    def count(self, value: object) -> int:
        """How many items equal ``value``."""
        return sum(value == entry for entry in self)

    def index(self, value: object) -> int:
        """The position of the first item equal to ``value``; ``ValueError`` if none."""
        for position, entry in enumerate(self):
            if value == entry:
                return position
        raise ValueError(f"{value!r} not in this container")

    def __class_getitem__(cls, item: Any) -> types.GenericAlias:
        return types.GenericAlias(cls, item)


def _rebuild_shareable_list(cls: type[ShareableList], name: str) -> ShareableList:
    """Unpickles a ``ShareableList`` by attaching its segment by name."""
    return cls(name=name)
