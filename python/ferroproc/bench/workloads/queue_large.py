"""``queue_large``: 1 MiB ``bytes`` messages through a queue, 1 producer → 1 consumer.

Unit: gigabytes (10⁹ bytes) of message per second (higher is better). The trial runs as
in ``queue_small`` (``_channels.py``: processes forked and released together, the clock
stopped at the consumer's last message). The producer puts ``count`` messages of ``size``
bytes, message ``i`` being the ``i % DISTINCT``-th of :data:`DISTINCT` prepared ``bytes``
objects, each filled with its own byte value; preparing them is not timed.

Check: every process exited with 0, the consumer got exactly ``count`` messages, and each
had ``size`` bytes with, at a position that moves from message to message, the byte its
place in the sequence calls for: a lost, repeated, reordered or torn message fails the row.

Target: ≥4x the stdlib's ``Queue``. Peers (``--peers``): faster-fifo (with a ring of
:data:`FASTER_FIFO_BYTES`), and a one-way ``Pipe`` with ``send_bytes``/``recv_bytes``
(no pickling at all).

Floor: memcpy bandwidth: copying a ``floor_bytes`` buffer into another through a
``memoryview`` (best of three, after one copy to fault the pages in).
"""

from __future__ import annotations

import time
from functools import partial

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload
    from ferroproc.bench.workloads._channels import Channel

#: Messages per trial, (full, --quick).
COUNT = (2_000, 200)
#: Bytes per message.
SIZE = 1 << 20
#: How many different messages the producer cycles through.
DISTINCT = 7
#: Bytes copied by the memcpy floor, (full, --quick).
FLOOR_BYTES = (256 << 20, 64 << 20)
#: faster-fifo's ring: room for 16 messages, so the producer need not wait for each get.
FASTER_FIFO_BYTES = 16 * SIZE + (1 << 16)
#: Peer name → channel kind (see ``_channels.KINDS``); anything else is an implementation.
PEER_KINDS = {"faster-fifo": "faster_fifo", "Pipe.send_bytes": "pipe_bytes"}


def expected_byte(index: int) -> int:
    """The value every byte of message ``index`` holds."""
    return 1 + index % DISTINCT


def checked_position(index: int, size: int) -> int:
    """Where the consumer looks in message ``index``: a different place each time."""
    return (index * 104_729) % size


def check_messages(channel: Channel, size: int) -> tuple[int, int]:
    """A consumer: return (messages, how many had the wrong length or content)."""
    get = channel.get_function()
    count = bad = 0
    while True:
        message = get()
        if not message:  # the end marker: None, or b"" through a raw Pipe
            return count, bad
        if len(message) != size or message[checked_position(count, size)] != expected_byte(count):
            bad += 1
        count += 1


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Move ``count`` messages of ``size`` bytes from one process to another; return GB/s."""
    import importlib

    from ferroproc.bench.workloads import _channels, _gate
    from ferroproc.bench.workloads._base import CheckFailed

    count = _gate.positive_int(params, "count")
    size = _gate.positive_int(params, "size")
    kind = PEER_KINDS.get(impl, "queue")
    processes = importlib.import_module("multiprocessing") if kind == "faster_fifo" else module
    ctx = processes.get_context(str(params["method"]))
    channel = _channels.make_channel(
        kind, module, ctx, many=False, require_many=False, max_size_bytes=FASTER_FIFO_BYTES
    )
    prepared = [bytes([expected_byte(k)]) * size for k in range(DISTINCT)]
    items = [prepared[i % DISTINCT] for i in range(count)]
    fold = partial(check_messages, size=size)
    measured = _channels.measure(ctx, channel, [items], batch=1, consumers=1, fold=fold)

    [(got, bad)] = measured.reports
    if got != count or bad:
        raise CheckFailed(
            f"the consumer got {got} messages of {count}, {bad} of them with the wrong"
            " length or content"
        )
    return count * size / measured.seconds / 1e9


def memcpy_floor(params: Params) -> float:
    """Copy ``floor_bytes`` bytes into a second buffer; return GB/s of the best copy."""
    from ferroproc.bench.workloads._base import CheckFailed

    size = params["floor_bytes"]
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"floor_bytes must be a positive int, not {size!r}")
    source = bytearray(b"\xa5") * size
    target = memoryview(bytearray(size))
    target[:] = source
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        target[:] = source
        best = min(best, time.perf_counter() - started)
    if target != source:
        raise CheckFailed("the copy differs from its source")
    return size / best / 1e9


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    params: Params = {
        "method": "fork",
        "count": sizing.count(*COUNT),
        "size": SIZE,
        "floor_bytes": sizing.count(*FLOOR_BYTES),
    }
    return [Variant("1to1", params, floor="memcpy", target=Target("baseline", 4.0))]


def workload() -> Workload:
    """Describe ``queue_large`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Peer, Workload

    return Workload(
        name="queue_large",
        description="1 MiB bytes messages from one process to another through a Queue;"
        " count, lengths and contents checked",
        unit="GB/s",
        better="higher",
        variants=_variants,
        run=run,
        floors={
            "memcpy": Floor(
                "memcpy", "memcpy bandwidth: one buffer copied into another", memcpy_floor
            )
        },
        peers=(
            Peer("faster-fifo", "faster_fifo"),
            Peer("Pipe.send_bytes", "multiprocessing"),
        ),
        order=30,
    )
