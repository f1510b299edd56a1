"""The Rust engine of ferroproc (private; use the public package instead)."""

from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from typing import Any, ClassVar, final

__all__ = [
    "POOL_CANCELLED",
    "POOL_RAISED",
    "POOL_RETURNED",
    "POOL_TIMED_OUT",
    "POOL_UNDECODABLE",
    "POOL_WORKER_LOST",
    "RECURSIVE_MUTEX",
    "SEMAPHORE",
    "SEM_VALUE_MAX",
    "WAIT_TICK",
    "Arena",
    "Barrier",
    "BarrierTicket",
    "Channel",
    "Child",
    "Condition",
    "Event",
    "NamedSegment",
    "ParentLink",
    "PoolEngine",
    "PoolJob",
    "PoolWorker",
    "RawBlock",
    "SemLock",
    "SharedBuffer",
    "Store",
    "__version__",
    "bootstrap_create",
    "bootstrap_read",
    "cleanup_resource",
    "fork",
    "forkserver_listen",
    "forkserver_request",
    "forkserver_serve",
    "is_packet_socket",
    "note_fork",
    "poll",
    "recv_bytes",
    "recv_bytes_into",
    "recv_fds",
    "resource_tracker_send",
    "run_resource_tracker",
    "send_bytes",
    "send_fds",
    "spawn",
    "usable_cpu_count",
    "wait",
]

__version__: str
WAIT_TICK: float
"""Longest time (seconds) a blocking call waits without running signal handlers."""

@final
class Child:
    """A started child process, supervised through its pidfd (or the fork server)."""

    @property
    def pid(self) -> int:
        """The process id."""
    @property
    def sentinel(self) -> int:
        """A descriptor that polls readable once the child has exited."""
    @property
    def returncode(self) -> int | None:
        """The return code once reaped: exit code, or the negated signal number."""
    def poll(self) -> int | None:
        """Reap the child if it has exited; return its return code or ``None``."""
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (forever if ``None``); ``None`` on timeout."""
    def send_signal(self, signo: int) -> bool:
        """Send ``signo``; ``False`` if the child had already exited."""
    def close(self) -> None:
        """Release the handle's descriptors; the process itself is left alone."""

@final
class ParentLink:
    """The parent of this process, held through its pidfd."""

    @staticmethod
    def to_parent(parent_pid: int, die_with_parent: bool = False) -> ParentLink | None:
        """Link to ``parent_pid``; ``None`` if it is no longer this process's parent."""
    @property
    def pid(self) -> int:
        """The parent's pid."""
    @property
    def sentinel(self) -> int:
        """A descriptor that polls readable once the parent has exited."""
    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the parent to exit; ``True`` if it has."""
    def die_with_parent(self) -> None:
        """Kill this process with SIGKILL as soon as the parent exits."""
    def close(self) -> None:
        """Release the parent's pidfd."""

def fork() -> Child | None:
    """Fork, running the interpreter's fork hooks.

    Returns the child in the parent and ``None`` in the child.
    """

def spawn(
    executable: str | PathLike[str],
    args: Sequence[str],
    pass_fds: Sequence[int],
    blocked_signals: Sequence[int] = ...,
) -> Child:
    """posix_spawn ``executable`` with ``args``; ``pass_fds`` appear in the child from fd 3;
    it starts with ``blocked_signals`` blocked."""

def bootstrap_create(payload: bytes) -> int:
    """Store ``payload`` in a sealed memfd; return its descriptor (owned by the caller)."""

def bootstrap_read(fd: int) -> bytes:
    """Read the payload of a bootstrap memfd."""

def forkserver_listen(dir: str | PathLike[str] | None = None) -> tuple[int, str]:
    """Create a fork server's listening socket; return its descriptor and path."""

def forkserver_request(address: str | PathLike[str], fds: Sequence[int]) -> Child:
    """Ask the fork server at ``address`` for a child that receives ``fds``."""

def forkserver_serve(listener_fd: int, parent_pid: int) -> tuple[ParentLink, list[int]] | None:
    """Run the fork server loop; returns ``None`` in the server, ``(client, fds)`` in a child."""

def usable_cpu_count() -> int:
    """The number of CPUs this process can use: its affinity mask, limited by any cgroup CPU
    quota (rounded up to whole CPUs), and at least 1."""

RECURSIVE_MUTEX: int
SEMAPHORE: int
SEM_VALUE_MAX: int

@final
class Arena:
    """An anonymous shared-memory segment that small shared objects are carved out of."""

    @staticmethod
    def create(capacity: int) -> Arena:
        """A new arena with room for about ``capacity`` bytes of blocks."""
    @staticmethod
    def attach(fd: int) -> Arena:
        """Map the arena behind ``fd``; the caller keeps (and may close) ``fd``."""
    @property
    def fd(self) -> int:
        """The arena's descriptor, to pass to a child being started."""
    @property
    def size(self) -> int:
        """The arena's size in bytes, bookkeeping included."""
    @property
    def data_offset(self) -> int:
        """Where the arena's data starts in its file, past the segment header.

        A block at ``offset`` is at ``data_offset + offset`` of a mapping of ``fd``, whose
        file holds ``data_offset + size`` bytes.
        """

@final
class RawBlock:
    """Plain bytes in a block of an arena: the memory of a small ``sharedctypes`` object.

    Zeroed when allocated; freed when dropped in the process that allocated it, unless
    another process may use it (it was pickled for a child, or this process forked since).
    """

    ALIGN: int
    """How the bytes are aligned, from the start of the arena's data."""
    MAX_SIZE: int
    """The most bytes a block holds; larger objects get a ``SharedBuffer``."""
    def __new__(cls, arena: Arena, size: int) -> RawBlock: ...
    @staticmethod
    def rebuild(arena: Arena, offset: int, size: int) -> RawBlock:
        """The block of ``size`` bytes another process allocated at ``offset`` of ``arena``."""
    @property
    def offset(self) -> int:
        """Where the bytes start, from the start of the arena's data."""
    @property
    def size(self) -> int:
        """How many bytes the block holds for its user."""
    @property
    def arena(self) -> Arena:
        """The arena the block lives in."""
    def _mark_shared(self) -> None:
        """Record that another process may use the block, so it is never freed."""

@final
class SharedBuffer:
    """A raw anonymous shared-memory segment (memfd), every byte the user's: the memory of
    a large ``sharedctypes`` array."""

    @staticmethod
    def create(size: int) -> SharedBuffer:
        """A new zero-filled segment of ``size`` bytes (``size`` must be positive)."""
    @staticmethod
    def attach(fd: int) -> SharedBuffer:
        """Map the segment behind ``fd``; the caller keeps (and may close) ``fd``."""
    @property
    def fd(self) -> int:
        """The segment's descriptor, to map it or pass it to a child being started."""
    @property
    def size(self) -> int:
        """The segment's size in bytes."""

@final
class NamedSegment:
    """A named raw shared-memory segment under ``/dev/shm`` (0600, created exclusively),
    every byte the user's: the memory of ``shared_memory.SharedMemory``."""

    @staticmethod
    def create(name: str | None, size: int) -> NamedSegment:
        """A new zero-filled segment of ``size`` bytes named ``name`` (a fresh unguessable
        name if ``None``); ``FileExistsError`` if the name is taken."""
    @staticmethod
    def attach(name: str) -> NamedSegment:
        """Attach the existing segment ``name``; ``FileNotFoundError`` if there is none."""
    @property
    def fd(self) -> int:
        """The segment's descriptor, to map it; ``ValueError`` once closed."""
    @property
    def size(self) -> int:
        """The segment's size in bytes."""
    @property
    def name(self) -> str:
        """The segment's name, without a leading ``/``."""
    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
    def unlink(self) -> None:
        """Remove the segment's name; ``FileNotFoundError`` if it is already gone."""
    def close(self) -> None:
        """Unmap the segment and close its descriptor in this process (idempotent)."""

# --- channel: the shared-memory queue behind Queue, JoinableQueue and SimpleQueue ---------

@final
class Channel:
    """A multi-producer multi-consumer queue of Python objects in shared memory."""

    def __new__(cls, capacity: int = ..., maxsize: int = 0, track_tasks: bool = False) -> Channel:
        """A new channel whose ring holds ``capacity`` bytes (8 MiB by default)."""
    @staticmethod
    def attach(
        fd: int, spill_sender: int, spill_receiver: int, maxsize: int, track_tasks: bool
    ) -> Channel:
        """The channel whose segment descriptor is ``fd``, with its spill socket's ends
        (the caller keeps all three descriptors)."""
    def set_codec(self, dumps: Callable[[Any], Any], loads: Callable[[Any, Any], Any]) -> None:
        """Register the pickler (``dumps(obj) -> (pickle, buffers)``) and unpickler
        (``loads(data, buffers) -> obj``) for objects the native format cannot carry."""
    @property
    def fd(self) -> int:
        """The segment's descriptor, to pass to a child being started."""
    @property
    def spill_fds(self) -> tuple[int, int]:
        """The spill socket's (sender, receiver) descriptors, to pass along with ``fd``."""
    def put(self, obj: object, block: bool = True, timeout: float | None = None) -> bool:
        """Put ``obj``; ``queue.Full`` if the queue stayed at ``maxsize`` until the deadline.
        True when the ring was out of bytes and the message went to this process's overflow
        thread (wait for it with ``flush``)."""
    def put_many(
        self, objs: Iterable[object], block: bool = True, timeout: float | None = None
    ) -> bool:
        """Put every object in order; ``queue.Full(count_put)`` if the deadline passed.
        True when some went to the overflow thread."""
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until this process's overflow thread has written all it was given."""
    @property
    def overflowing(self) -> bool:
        """Whether this process has messages waiting in its overflow thread."""
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Take the oldest object; ``queue.Empty`` if none came by the deadline."""
    def get_many(
        self, block: bool = True, timeout: float | None = None, max_messages: int | None = None
    ) -> list[Any]:
        """Take at least one object (waiting like ``get``), then all already there."""
    def prefault(self) -> None:
        """Allocate every page of the ring now rather than at first use."""
    def qsize(self) -> int:
        """Messages in the queue (approximate)."""
    def empty(self) -> bool:
        """Whether the queue holds nothing (a snapshot)."""
    @property
    def lost(self) -> int:
        """Messages lost to processes killed mid-operation, or to corrupt data."""
    @property
    def capacity(self) -> int:
        """The ring's size in bytes."""
    @property
    def maxsize(self) -> int:
        """The message limit this handle enforces (0: none)."""
    @property
    def track_tasks(self) -> bool:
        """Whether puts count as unfinished tasks."""
    @property
    def unfinished_tasks(self) -> int:
        """Tasks put and not yet marked done."""
    def task_done(self) -> None:
        """Mark one task done; ``ValueError`` if none is unfinished."""
    def join(self, timeout: float | None = None) -> bool:
        """Wait until every task is done; False if ``timeout`` passed first."""

def note_fork() -> None:
    """Count a fork (registered to run before every fork)."""

@final
class SemLock:
    """A lock or semaphore in shared memory (the stdlib's ``_multiprocessing.SemLock``)."""

    SIZE: int
    def __new__(cls, arena: Arena, kind: int, value: int, maxvalue: int) -> SemLock: ...
    @staticmethod
    def rebuild(arena: Arena, offset: int, kind: int, maxvalue: int) -> SemLock:
        """The ``SemLock`` another process placed at ``offset`` of ``arena``."""
    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Acquire; ``False`` if ``block`` is false or ``timeout`` passes first."""
    def __enter__(self) -> bool:
        """``acquire()`` without arguments: block until acquired, return ``True``."""
    def release(self) -> None:
        """Release (``ValueError`` if released too often, ``AssertionError`` if not owned)."""
    def _count(self) -> int: ...
    def _is_mine(self) -> bool: ...
    def _get_value(self) -> int: ...
    def _is_zero(self) -> bool: ...
    def _after_fork(self) -> None: ...
    def _mark_shared(self) -> None: ...
    @property
    def owner_died(self) -> bool:
        """Whether the last acquire in this process took over from a dead holder."""
    @property
    def kind(self) -> int:
        """``RECURSIVE_MUTEX`` or ``SEMAPHORE``."""
    @property
    def maxvalue(self) -> int:
        """The largest value a release may reach."""
    @property
    def offset(self) -> int:
        """Where the object sits in its arena."""
    @property
    def arena(self) -> Arena:
        """The arena the object lives in."""
    @property
    def owner_pid(self) -> int | None:
        """The pid of the holding process, for locks."""

@final
class Condition:
    """A condition variable in shared memory, used with a ``SemLock`` lock."""

    SIZE: int
    def __new__(cls, arena: Arena) -> Condition: ...
    @staticmethod
    def rebuild(arena: Arena, offset: int) -> Condition:
        """The condition another process placed at ``offset`` of ``arena``."""
    def wait(self, lock: SemLock, timeout: float | None = None) -> bool:
        """Release ``lock``, wait for a notification or the timeout, take ``lock`` again."""
    def notify(self, lock: SemLock, n: int = 1) -> int:
        """Wake at most ``n`` waiters; return how many were woken."""
    def notify_all(self, lock: SemLock) -> int:
        """Wake every waiter; return how many were woken."""
    def waiting(self) -> int:
        """How many are waiting (a snapshot)."""
    def _mark_shared(self) -> None: ...
    @property
    def offset(self) -> int:
        """Where the object sits in its arena."""
    @property
    def arena(self) -> Arena:
        """The arena the object lives in."""

@final
class Event:
    """A process-shared event flag."""

    SIZE: int
    def __new__(cls, arena: Arena) -> Event: ...
    @staticmethod
    def rebuild(arena: Arena, offset: int) -> Event:
        """The event another process placed at ``offset`` of ``arena``."""
    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` passes; return the flag."""
    def _mark_shared(self) -> None: ...
    @property
    def offset(self) -> int:
        """Where the object sits in its arena."""
    @property
    def arena(self) -> Arena:
        """The arena the object lives in."""

@final
class BarrierTicket:
    """A party's place in a round of a barrier."""

    @property
    def index(self) -> int:
        """The arrival index, distinct for each party of a round."""
    @property
    def completes(self) -> bool:
        """Whether this party completes the round (and runs the action)."""

@final
class Barrier:
    """A process-shared barrier."""

    SIZE: int
    def __new__(cls, arena: Arena, parties: int) -> Barrier: ...
    @staticmethod
    def rebuild(arena: Arena, offset: int) -> Barrier:
        """The barrier another process placed at ``offset`` of ``arena``."""
    def arrive(self, timeout: float | None = None) -> BarrierTicket:
        """Count the caller into the current round."""
    def await_release(self, ticket: BarrierTicket, timeout: float | None = None) -> int:
        """Wait until the ticket's round completes; a timeout breaks the barrier."""
    def complete(self, ticket: BarrierTicket) -> int:
        """Release the round after the last party ran the action."""
    def break_barrier(self) -> None: ...
    def abort(self) -> None: ...
    def reset(self) -> None: ...
    def _mark_shared(self) -> None: ...
    @property
    def parties(self) -> int: ...
    @property
    def n_waiting(self) -> int: ...
    @property
    def broken(self) -> bool: ...
    @property
    def offset(self) -> int:
        """Where the object sits in its arena."""
    @property
    def arena(self) -> Arena:
        """The arena the object lives in."""

# --- connection: framed messages over a descriptor, behind ferroproc.connection ------------
# Each function takes the descriptor as an int; the caller keeps it open during the call.

def send_fds(socket: int, fds: list[int]) -> None:
    """Send the descriptors ``fds`` over the Unix socket ``socket`` in one message (the
    stdlib's ``reduction.sendfds`` format)."""

def recv_fds(socket: int, max_fds: int, timeout: float | None = None) -> list[int] | None:
    """Receive one message of at most ``max_fds`` descriptors (new ones, the caller's);
    ``None`` on timeout, ``EOFError`` when the peer closed, ``RuntimeError`` for a message
    that is not a descriptor message."""

def is_packet_socket(fd: int) -> bool:
    """Whether ``fd`` is a ``SOCK_SEQPACKET`` socket: pass the answer as ``packets`` to the
    other calls (frames then travel as packets, a small one in one system call)."""

def send_bytes(fd: int, buffer: Any, packets: bool = False, /) -> None:
    """Send ``buffer`` (bytes or any C-contiguous buffer, not copied first) as one frame.

    Waits with the GIL released while the peer's buffer is full; ``BrokenPipeError`` when
    the peer is gone.
    """

def recv_bytes(
    fd: int, maxlength: int | None = None, timeout: float | None = None, packets: bool = False
) -> bytes | None:
    """Receive one frame's payload.

    ``None`` when the header announces more than ``maxlength`` bytes or an impossible
    length: the stream is then out of step and the caller must stop reading it.
    ``EOFError`` when the peer closed between frames, ``OSError`` when it closed inside
    one. ``timeout`` (seconds, ``None``: no limit) applies until the first byte of the
    frame arrives; then ``TimeoutError``.
    """

def recv_bytes_into(
    fd: int, buffer: Any, offset: int = 0, timeout: float | None = None, packets: bool = False
) -> int | bytes | None:
    """Receive one frame into the writable ``buffer`` at byte ``offset``.

    Returns the payload's length; the payload itself as ``bytes`` when it does not fit;
    ``None`` for a header the reader cannot trust (as ``recv_bytes``).
    """

def poll(fd: int, timeout: float | None = 0.0) -> bool:
    """Whether ``fd`` has something to read (a frame, end of file or an error) within
    ``timeout`` seconds (``None``: as long as it takes)."""

def wait(fds: Sequence[int], timeout: float | None = None) -> list[int]:
    """Wait until at least one of ``fds`` is readable or ``timeout`` passes (``None``:
    forever); return the positions of the readable ones, in order (empty on timeout)."""

# --- pool: the task engine behind Pool -------------------------------------------------

POOL_RETURNED: int
POOL_RAISED: int
POOL_WORKER_LOST: int
POOL_TIMED_OUT: int
POOL_CANCELLED: int
POOL_UNDECODABLE: int

@final
class PoolEngine:
    """The parent side of a process pool: tasks, results and worker supervision."""

    FUNCTIONS_PER_WORKER: ClassVar[int]
    def __new__(
        cls,
        workers: int,
        results: Channel,
        dumps: Callable[[object], tuple[bytes, list[Any]]],
        loads: Callable[[Any, Any], Any],
        *,
        max_tasks_per_worker: int | None = None,
        task_timeout: float | None = None,
        retries: int = 0,
        max_held: int | None = None,
    ) -> PoolEngine: ...
    @property
    def slots_fd(self) -> int:
        """The descriptor of the workers' slots segment."""
    @property
    def closed(self) -> bool:
        """Whether ``close`` or ``terminate`` was called."""
    def add_worker(self, slot: int, inbox: Channel, child: Child) -> int:
        """Register the worker ``child`` started for ``slot``; return its generation."""
    def define(self, token: int, function: object) -> None:
        """Make ``function`` the callable that tasks naming ``token`` call."""
    def forget(self, token: int) -> None:
        """Forget the definition of ``token``."""
    def new_job(self, fail_fast: bool = True, notify: bool = False) -> PoolJob:
        """A new job."""
    def submit(
        self, job: PoolJob, token: int, tag: int, tasks: Iterable[object], seal: bool = False
    ) -> int:
        """Submit one task per item of ``tasks``; with ``seal`` the job takes no more."""
    def next_event(self, timeout: float | None = None) -> tuple[Any, ...] | None:
        """The next event: ``("ready", job)``, ``("exited", slot, pid, code, replace,
        started)`` or ``("finished",)``; ``None`` on timeout."""
    def break_with(self, reason: str) -> None:
        """Give up on the pool for ``reason``: terminate it; ``broken`` then says why."""
    @property
    def broken(self) -> str | None:
        """Why the pool was given up on, or ``None``."""
    def cancel_pending(self, job: PoolJob) -> int:
        """Cancel the tasks of ``job`` no worker was given yet; return how many."""
    def close(self) -> None:
        """Accept no more tasks; workers exit once every task is settled."""
    def terminate(self) -> None:
        """Cancel every unsettled task and kill every worker."""
    def shutdown(self) -> None:
        """Stop the engine's threads (terminating first if needed)."""
    def counts(self) -> tuple[int, int, int]:
        """``(live workers, tasks waiting, tasks held by workers)``."""
    def decode(self, data: bytes) -> Any:
        """Decode an encoded payload."""

@final
class PoolJob:
    """The results of one call into a pool."""

    @property
    def id(self) -> int:
        """The job's number in its pool."""
    @property
    def submitted(self) -> int:
        """How many tasks were submitted."""
    @property
    def finished(self) -> int:
        """How many tasks have finished."""
    def seal(self) -> None:
        """Declare that no more tasks will be submitted."""
    def ready(self) -> bool:
        """Whether every task finished (or, failing fast, one failed)."""
    def wait(self, timeout: float | None = None) -> bool:
        """Wait until ready or ``timeout``; return readiness."""
    def take_all(self) -> tuple[bool, Any]:
        """``(True, [value, ...])`` or ``(False, (kind, detail))``."""
    def next_ordered(self, timeout: float | None = None) -> tuple[int, Any] | None:
        """The next outcome in task order; ``StopIteration`` when all were yielded."""
    def next_finished(self, timeout: float | None = None) -> tuple[int, tuple[int, Any]] | None:
        """The next ``(index, outcome)`` in finishing order; ``StopIteration`` at the end."""
    def wait_for_room(
        self, limit: int, unconsumed: bool = False, timeout: float | None = None
    ) -> bool:
        """Wait until fewer than ``limit`` tasks are in flight; return whether they are."""

@final
class PoolWorker:
    """A worker process's side of a pool."""

    def __new__(
        cls,
        inbox: Channel,
        results: Channel,
        slots_fd: int,
        slot: int,
        dumps: Callable[[object], tuple[bytes, list[Any]]],
        loads: Callable[[Any, Any], Any],
    ) -> PoolWorker: ...
    def next_task(self) -> tuple[int, int, int, Any, Any, BaseException | None] | None:
        """``(ticket, tag, token, function, payload, error)``; ``None`` to exit."""
    def report(self, ticket: int, raised: bool, value: object) -> None:
        """Report how task ``ticket`` ended."""

def run_resource_tracker(fd: int) -> None:
    """Run the resource tracker on ``fd`` (the read end of its pipe, taken over): read
    messages until every writer has closed the pipe, then clean up what is registered."""

def resource_tracker_send(fd: int, command: str, name: str, rtype: str) -> None:
    """Write ``command:name:rtype`` to the tracker's pipe ``fd`` in one atomic write;
    ``ValueError`` if it cannot be sent, ``BrokenPipeError`` once the tracker is gone."""

def cleanup_resource(rtype: str, name: str) -> None:
    """Clean up one resource as the tracker would (unlink a ``shared_memory`` name,
    remove a ``folder``); ``OSError`` if that fails."""

@final
class Store:
    """A map or a sequence in shared memory, holding Python objects."""

    def __new__(cls, kind: str, capacity: int, pickling: Any) -> Store: ...
    @staticmethod
    def attach_from_process(pid: int, fd: int, id: int, pickling: Any) -> Store:
        """The store ``id`` that process ``pid`` holds as descriptor ``fd``."""
    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def fd(self) -> int: ...
    @property
    def recoveries(self) -> int: ...
    def acquire(self, block: bool = True, timeout: float | None = None) -> bool: ...
    def release(self) -> None: ...
    def map_get(self, key: object) -> Any: ...
    def map_get_or(self, key: object, default: object) -> Any: ...
    def map_set(self, key: object, value: object) -> None: ...
    def map_update(self, pairs: list[tuple[Any, Any]]) -> None: ...
    def map_setdefault(self, key: object, default: object) -> Any: ...
    def map_delete(self, key: object) -> None: ...
    def map_pop(self, key: object, *default: object) -> Any: ...
    def map_popitem(self) -> tuple[Any, Any]: ...
    def map_contains(self, key: object) -> bool: ...
    def map_len(self) -> int: ...
    def map_items(self) -> list[tuple[Any, Any]]: ...
    def map_keys(self) -> list[Any]: ...
    def map_values(self) -> list[Any]: ...
    def map_clear(self) -> None: ...
    def seq_len(self) -> int: ...
    def seq_get(self, index: int) -> Any: ...
    def seq_set(self, index: int, value: object) -> None: ...
    def seq_append(self, value: object) -> None: ...
    def seq_splice(self, start: int, stop: int | None, values: Iterable[Any]) -> None: ...
    def seq_items(self) -> list[Any]: ...
