"""What the channel workloads (``queue_small``, ``queue_large``) share: producers and
consumers around one channel, started before the clock and released together.

One trial, in the trial process (the *parent*)::

    make_channel ── a Queue, SimpleQueue, faster-fifo Queue or Pipe
    measure      ── forks P producers and C consumers (the fork start method: nothing
                    is pickled and no child imports anything), waits until all say ready
                    on a raw os.pipe, then (clock starts) writes "go" to all of them
      producers  ── put their items (put_many in batches when the channel has it), make
                    sure what they put is on its way (close + join_thread for a Queue,
                    whose feeder thread may still hold it), say done
      parent     ── once every producer is done, puts C end markers: every message is
                    then ahead of every end marker
      consumers  ── fold what they get until an end marker, then send back the time
                    (clock ends at the last one), their message count and a checksum

A consumer that takes several end markers in one ``get_many`` batch puts the others back,
so every consumer sees one. The start and end signalling uses raw pipes, never the
implementation under test. Only the parent imports this module; under fork the children
reach it through the inherited memory.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from ferroproc.bench.workloads._gate import (
    check_exit_codes,
    put_away,
    read_exactly,
)

#: Channel kinds: an implementation's ``Queue``, its ``SimpleQueue``, faster-fifo's
#: ``Queue``, a one-way ``Pipe`` with ``send``/``recv`` or with ``send_bytes``/``recv_bytes``.
KINDS = ("queue", "simple", "faster_fifo", "pipe", "pipe_bytes")
#: A consumer's report: its end time, how many messages it got, and its checksum.
_REPORT = struct.Struct("dqq")


@dataclass
class Channel:
    """One channel under test: where producers send and consumers receive.

    ``many`` says whether producers and consumers use ``put_many``/``get_many``.
    """

    kind: str
    sender: Any
    receiver: Any
    many: bool

    @property
    def end_marker(self) -> object:
        """What tells a consumer there is no more: ``None``, or ``b""`` for raw bytes."""
        return b"" if self.kind == "pipe_bytes" else None

    def put_function(self) -> Callable[[Any], object]:
        """The bound method a producer calls once per message."""
        if self.kind == "pipe_bytes":
            return self.sender.send_bytes  # type: ignore[no-any-return]
        if self.kind == "pipe":
            return self.sender.send  # type: ignore[no-any-return]
        return self.sender.put  # type: ignore[no-any-return]

    def get_function(self) -> Callable[[], Any]:
        """The bound method a consumer calls once per message."""
        if self.kind == "pipe_bytes":
            return self.receiver.recv_bytes  # type: ignore[no-any-return]
        if self.kind == "pipe":
            return self.receiver.recv  # type: ignore[no-any-return]
        return self.receiver.get  # type: ignore[no-any-return]

    def flush(self) -> None:
        """In a producer after its last put: wait until what it put has left the process."""
        if self.kind == "queue":
            self.sender.close()
            self.sender.join_thread()

    def end(self, consumers: int) -> None:
        """In the parent, after every producer is done: one end marker per consumer."""
        put = self.put_function()
        for _ in range(consumers):
            put(self.end_marker)

    def put_back_end_markers(self, count: int) -> None:
        """In a consumer that got ``count`` end markers too many: leave them for the others."""
        for _ in range(count):
            self.sender.put(self.end_marker)


def make_channel(
    kind: str, module: Any, ctx: Any, *, many: bool, require_many: bool, max_size_bytes: int
) -> Channel:
    """Create the channel of ``kind``; ``module`` is the peer's module for faster-fifo.

    With ``many``, ``put_many``/``get_many`` are used where the channel has them (the
    stdlib's ``Queue`` has not: it uses ``put``/``get``, as its users must); with
    ``require_many`` a channel without them is an error rather than a quiet fallback.
    """
    if kind == "queue":
        queue = ctx.Queue()
        has_many = hasattr(queue, "put_many") and hasattr(queue, "get_many")
        if many and require_many and not has_many:
            raise RuntimeError(f"{type(queue).__qualname__} has no put_many/get_many")
        return Channel(kind, queue, queue, many and has_many)
    if kind == "simple":
        simple = ctx.SimpleQueue()
        return Channel(kind, simple, simple, False)
    if kind == "faster_fifo":
        fifo = module.Queue(max_size_bytes=max_size_bytes)
        return Channel(kind, fifo, fifo, many)
    if kind in ("pipe", "pipe_bytes"):
        reader, writer = ctx.Pipe(duplex=False)
        return Channel(kind, writer, reader, False)
    raise ValueError(f"unknown channel kind {kind!r}; known: {', '.join(KINDS)}")


def produce(
    channel: Channel, items: Sequence[object], batch: int, *, ready_w: int, go_r: int, done_w: int
) -> None:
    """A producer: say ready, wait for go, put ``items`` in order, flush, say done."""
    chunks: list[list[object]] = []
    if channel.many:
        chunks = [list(items[i : i + batch]) for i in range(0, len(items), batch)]
    os.write(ready_w, b"r")
    if os.read(go_r, 1) != b"g":
        raise RuntimeError("the trial went away before the start signal")
    if channel.many:
        put_many = channel.sender.put_many
        for chunk in chunks:
            put_many(chunk)
    else:
        put = channel.put_function()
        for item in items:
            put(item)
    channel.flush()
    os.write(done_w, b"d")


#: A consumer's loop: receive until an end marker; return (messages, checksum).
Fold = Callable[[Channel], tuple[int, int]]


def consume(channel: Channel, fold: Fold, *, ready_w: int, go_r: int, report_w: int) -> None:
    """A consumer: say ready, wait for go, run ``fold``, report its end time and result."""
    os.write(ready_w, b"r")
    if os.read(go_r, 1) != b"g":
        raise RuntimeError("the trial went away before the start signal")
    count, checksum = fold(channel)
    os.write(report_w, _REPORT.pack(time.perf_counter(), count, checksum))


@dataclass
class Measurement:
    """What a trial saw: seconds from go to the last consumer's end, and each report."""

    seconds: float
    reports: list[tuple[int, int]]


def measure(
    ctx: Any,
    channel: Channel,
    producer_items: Sequence[Sequence[object]],
    *,
    batch: int,
    consumers: int,
    fold: Fold,
) -> Measurement:
    """Run one trial (see the module's docstring) and return what it measured.

    Raises :class:`CheckFailed` when a process dies, exits with an error, or a signal
    does not come within ``WAIT_S``; whatever is left is killed.
    """
    fds = dict(zip(("ready_r", "ready_w"), os.pipe()))
    fds.update(zip(("go_r", "go_w"), os.pipe()))
    fds.update(zip(("done_r", "done_w"), os.pipe()))
    fds.update(zip(("report_r", "report_w"), os.pipe()))
    producers = [
        ctx.Process(
            target=produce,
            args=(channel, items, batch),
            kwargs={"ready_w": fds["ready_w"], "go_r": fds["go_r"], "done_w": fds["done_w"]},
            name=f"producer-{n}",
        )
        for n, items in enumerate(producer_items)
    ]
    consumer_processes = [
        ctx.Process(
            target=consume,
            args=(channel, fold),
            kwargs={"ready_w": fds["ready_w"], "go_r": fds["go_r"], "report_w": fds["report_w"]},
            name=f"consumer-{n}",
        )
        for n in range(consumers)
    ]
    workers = [*producers, *consumer_processes]
    finished = False
    try:
        for worker in workers:
            worker.start()
        # Only the children write to these now: end of file once every one is gone.
        for key in ("ready_w", "done_w", "report_w"):
            os.close(fds.pop(key))
        read_exactly(fds["ready_r"], len(workers), "the ready signals", workers)
        started = time.perf_counter()
        os.write(fds["go_w"], b"g" * len(workers))
        read_exactly(fds["done_r"], len(producers), "the producers' done signals", workers)
        channel.end(consumers)
        raw = read_exactly(
            fds["report_r"], consumers * _REPORT.size, "the consumers' reports", workers
        )
        finished = True
    finally:
        put_away(workers, fds.values(), measured=finished)
    check_exit_codes(workers)
    reports = list(_REPORT.iter_unpack(raw))
    ended = max(stamp for stamp, _, _ in reports)
    return Measurement(ended - started, [(count, checksum) for _, count, checksum in reports])
