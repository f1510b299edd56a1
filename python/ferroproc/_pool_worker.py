"""The loop a pool worker process runs, and how it reports exceptions.

A worker takes tasks from its own inbox through ``_core.PoolWorker`` (which records each
task as started in shared memory before returning it, so the parent knows what died with
a worker), runs them and reports each result on the pool's shared result channel.
"""

from __future__ import annotations

import collections
import itertools
import pickle
import signal
import traceback

from . import _core, queues, reduction

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

#: What a task asks for (its tag), and so what its payload is: ``(args, kwds)`` for
#: APPLY, ``[item, ...]`` for MAP, ``[args, ...]`` for STARMAP.
APPLY = 0
MAP = 1
STARMAP = 2


class _Undecodable:
    """Stands for a function whose definition could not be unpickled in this worker: every
    task that calls it raises the same error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __call__(self, *args: object, **kwds: object) -> object:
        raise self.error


def exception_report(exc: BaseException) -> tuple[str, str, bytes | None]:
    """What a worker sends for an exception: its formatted traceback, its one-line summary
    and its pickle (``None`` if it cannot be pickled). The text survives even when the
    exception cannot be rebuilt in the parent."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    exc.__traceback__ = None
    try:
        pickled: bytes | memoryview | None = reduction.ForkingPickler.dumps(exc, protocol=5)
    except Exception:
        pickled = None
    return text, summary, bytes(pickled) if pickled is not None else None


def run(function: Callable[..., Any], kind: int, data: Any) -> Any:
    """Runs one task's payload."""
    if kind == APPLY:
        args, kwds = data
        return function(*args, **kwds)
    if kind == MAP:
        return list(map(function, data))
    return list(itertools.starmap(function, data))


def worker(
    *,
    inbox: Any,
    results: Any,
    slots: Any,
    slot: int,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    maxtasks: int | None,
) -> None:
    """The body of a pool worker process."""
    # Ctrl-C is the parent's business: it stops the pool, and a traceback from every
    # worker would only bury its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    link = _core.PoolWorker(
        inbox.channel, results.channel, slots.fd, slot, queues._dumps, queues._loads
    )
    slots.close()
    inbox.channel.prefault()
    if initializer is not None:
        initializer(*initargs)
    functions: dict[int, Callable[..., Any]] = {}
    learned: collections.deque[int] = collections.deque()
    keep = _core.PoolEngine.FUNCTIONS_PER_WORKER
    completed = 0
    while maxtasks is None or completed < maxtasks:
        task = link.next_task()
        if task is None:
            break
        ticket, kind, token, function, payload, error = task
        if function is not None or error is not None:
            # Mirror the parent's record of what this worker knows, evicting alike.
            functions[token] = function if error is None else _Undecodable(error)
            learned.append(token)
            if len(learned) > keep:
                functions.pop(learned.popleft(), None)
        if not ticket:
            continue  # a definition sent ahead of a task that travels as a file
        try:
            if error is not None:
                raise error
            value = run(functions[token], kind, payload)
        except BaseException as exc:
            link.report(ticket, True, exception_report(exc))
        else:
            try:
                link.report(ticket, False, value)
            except Exception as exc:
                link.report(ticket, True, _encoding_failure(exc, value))
        completed += 1
        task = payload = value = None


def _encoding_failure(exc: Exception, value: object) -> tuple[str, str, bytes | None]:
    """The report for a result that could not be pickled: a ``MaybeEncodingError``."""
    from .pool import MaybeEncodingError

    failure = MaybeEncodingError(exc, value)
    return "", str(failure), pickle.dumps(failure)
