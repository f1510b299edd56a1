"""``queue_small``: small ints through a queue, 1 producer → 1 consumer, then 2 → 2.

Unit: messages per second, all consumers together (higher is better). Each trial makes
one channel, forks the producers and consumers, and starts the clock when all of them
are started and released together; it stops when the last consumer has its last message
(``_channels.py`` says how, and how the end is signalled without the implementation's
help). Producer ``p`` of ``P`` puts the ints ``p, p + P, p + 2P, ...`` below ``count``.

Rows:

- ``1to1``, ``2to2``: ``put``/``get`` one message at a time; target ≥4x the stdlib.
- ``1to1_many``, ``2to2_many``: the candidate puts with ``put_many`` in batches of
  :data:`BATCH` and gets with ``get_many()`` (no maximum); the stdlib's ``Queue`` has
  neither, so the baseline does the same ``put``/``get`` as in the plain rows (ferroproc
  without them is an error, not a fallback); target ≥10x the stdlib.

Peers (``--peers``): faster-fifo with ``put``/``get`` in the plain rows and, as
``faster-fifo get_many``, with ``put_many``/``get_many`` in the ``_many`` rows; for
reference the stdlib's ``SimpleQueue`` (plain rows) and a one-way ``Pipe`` with
``send``/``recv`` (``1to1`` only: a ``Pipe`` has no locks for several readers or writers).

Check: every process exited with 0, and the consumers together got exactly ``count``
messages summing to ``count * (count - 1) / 2``: a lost or repeated message fails the row.

Floor: ``pickle.loads(pickle.dumps(i))`` of each int, per second: the work every
pickling queue must do per message.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from ferroproc.bench.workloads._base import Params, Sizing, Variant, Workload
    from ferroproc.bench.workloads._channels import Channel

#: Messages per trial, all producers together, (full, --quick).
COUNT = (500_000, 100_000)
#: Messages per ``put_many`` call in the ``_many`` rows.
BATCH = 1_000
#: faster-fifo's ring: ample for small messages, so producers seldom wait for room.
FASTER_FIFO_BYTES = 1_000_000
#: Peer name → channel kind (see ``_channels.KINDS``); anything else is an implementation.
PEER_KINDS = {
    "faster-fifo": "faster_fifo",
    "faster-fifo get_many": "faster_fifo",
    "SimpleQueue": "simple",
    "Pipe": "pipe",
}


def sum_one_by_one(channel: Channel) -> tuple[int, int]:
    """A consumer getting one message at a time: return (messages, their sum)."""
    get = channel.get_function()
    count = total = 0
    while True:
        item = get()
        if item is None:
            return count, total
        count += 1
        total += item


def sum_in_batches(channel: Channel) -> tuple[int, int]:
    """A consumer using ``get_many()``: return (messages, their sum).

    End markers come after every message, so a batch holding one ends with it.
    """
    get_many = channel.receiver.get_many
    count = total = 0
    while True:
        batch = get_many()
        if batch and batch[-1] is None:
            items = [item for item in batch if item is not None]
            channel.put_back_end_markers(len(batch) - len(items) - 1)
            return count + len(items), total + sum(items)
        count += len(batch)
        total += sum(batch)


def run(impl: str, module: ModuleType, params: Params) -> float:
    """Move ``count`` ints from the producers to the consumers; return messages/s."""
    import importlib

    from ferroproc.bench.workloads import _channels, _gate
    from ferroproc.bench.workloads._base import CheckFailed

    count = _gate.positive_int(params, "count")
    producers = _gate.positive_int(params, "producers")
    consumers = _gate.positive_int(params, "consumers")
    many = params["api"] == "many"
    kind = PEER_KINDS.get(impl, "queue")
    # faster-fifo has queues only: its processes are the stdlib's.
    processes = importlib.import_module("multiprocessing") if kind == "faster_fifo" else module
    ctx = processes.get_context(str(params["method"]))
    channel = _channels.make_channel(
        kind,
        module,
        ctx,
        many=many,
        require_many=impl == "ferroproc",
        max_size_bytes=FASTER_FIFO_BYTES,
    )
    batch = _gate.positive_int(params, "batch") if many else 1
    fold = sum_in_batches if channel.many else sum_one_by_one
    items = [range(p, count, producers) for p in range(producers)]
    measured = _channels.measure(ctx, channel, items, batch=batch, consumers=consumers, fold=fold)

    got = sum(n for n, _ in measured.reports)
    total = sum(s for _, s in measured.reports)
    expected = count * (count - 1) // 2
    if got != count or total != expected:
        raise CheckFailed(
            f"the consumers got {got} messages summing to {total};"
            f" {count} summing to {expected} were put"
        )
    return count / measured.seconds


def pickle_floor(params: Params) -> float:
    """``pickle.loads(pickle.dumps(i))`` for ``count`` ints; return ints per second."""
    import pickle

    from ferroproc.bench.workloads._base import CheckFailed

    count = params["count"]
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, not {count!r}")
    dumps, loads = pickle.dumps, pickle.loads
    total = 0
    started = time.perf_counter()
    for i in range(count):
        total += loads(dumps(i))
    elapsed = time.perf_counter() - started
    if total != count * (count - 1) // 2:
        raise CheckFailed(f"the round-tripped ints sum to {total}")
    return count / elapsed


def _variants(sizing: Sizing) -> list[Variant]:
    from ferroproc.bench.workloads._base import Target, Variant

    count = sizing.count(*COUNT)
    rows = []
    for procs in (1, 2):
        name = f"{procs}to{procs}"
        shape = {"method": "fork", "producers": procs, "consumers": procs, "count": count}
        rows.append(
            Variant(name, {**shape, "api": "plain"}, floor="pickle", target=Target("baseline", 4.0))
        )
        rows.append(
            Variant(
                f"{name}_many",
                {**shape, "api": "many", "batch": BATCH},
                floor="pickle",
                target=Target("baseline", 10.0),
            )
        )
    return rows


def workload() -> Workload:
    """Describe ``queue_small`` for the registry."""
    from ferroproc.bench.workloads._base import Floor, Peer, Workload

    plain, many = ("1to1", "2to2"), ("1to1_many", "2to2_many")
    return Workload(
        name="queue_small",
        description="small ints from producer to consumer processes through a Queue;"
        " count and sum checked",
        unit="msg/s",
        better="higher",
        variants=_variants,
        run=run,
        floors={
            "pickle": Floor(
                "pickle", "pickle.dumps + pickle.loads of each int, per second", pickle_floor
            )
        },
        peers=(
            Peer("faster-fifo", "faster_fifo", only_variants=plain),
            Peer("faster-fifo get_many", "faster_fifo", only_variants=many),
            Peer("SimpleQueue", "multiprocessing", only_variants=plain),
            Peer("Pipe", "multiprocessing", only_variants=("1to1",)),
        ),
        order=20,
    )
