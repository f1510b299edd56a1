"""Child-side functions for the synchronisation tests.

Like ``_targets``, they live in an importable module so spawned and fork-server children
can unpickle them. Children report through exit codes (the constants below), files and the
primitives themselves; every wait in a child is bounded by ``DEADLINE`` so a broken
primitive makes a test fail instead of leaving a process behind.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from _support import DEADLINE, MODULE_NAME, mp, write_atomically

# Where the module under test defines its primitives (and ferroproc its OwnerDiedWarning).
synchronize = importlib.import_module(f"{MODULE_NAME}.synchronize")

# Exit codes a child uses to say what happened.
OK = 0
FAILED = 1  # an acquire or wait that should have succeeded returned False
TIMED_OUT = 2  # the test never gave the signal the child waited for
BROKEN = 3  # threading.BrokenBarrierError
NO_WARNING = 4  # a lock was taken over from a dead holder without OwnerDiedWarning
WRONG_ERROR = 5  # an operation did not raise what it should have
UNEXPECTED = 6  # a wait that should have timed out (or failed) succeeded

# How long a process that is going to be killed keeps itself alive.
FOREVER = DEADLINE * 4


def _exit(code: int) -> None:
    sys.exit(code)


def _linger_then_fail() -> None:
    """Waits to be killed; exits with a code the test will notice if it never is."""
    time.sleep(FOREVER)
    os._exit(TIMED_OUT)


# -- locks ---------------------------------------------------------------------------------


def increment_counter(lock: Any, path: str, times: int) -> None:
    """A read-modify-write of an integer in a file, ``times`` times, each under ``lock``."""
    counter = Path(path)
    for _ in range(times):
        with lock:
            value = int(counter.read_text())
            counter.write_text(str(value + 1))


def hold_until(lock: Any, held: Any, release: Any) -> None:
    """Acquires ``lock``, says so with ``held``, releases once ``release`` is set."""
    if not lock.acquire(timeout=DEADLINE):
        _exit(FAILED)
    held.set()
    if not release.wait(DEADLINE):
        lock.release()
        _exit(TIMED_OUT)
    lock.release()


def hold_and_die(lock: Any, held: Any, depth: int = 1, how: str = "linger") -> None:
    """Acquires ``lock`` ``depth`` times, says so, and dies without releasing it.

    ``how`` is ``"linger"`` (wait to be SIGKILLed) or ``"exit"`` (``os._exit`` at once).
    """
    for _ in range(depth):
        if not lock.acquire(timeout=DEADLINE):
            _exit(FAILED)
    held.set()
    if how == "exit":
        os._exit(OK)
    _linger_then_fail()


def start_holder(method: str, lock: Any, held: Any, release: Any) -> None:
    """Passes ``lock`` on to a child of its own, which runs :func:`hold_until`."""
    p = mp.get_context(method).Process(target=hold_until, args=(lock, held, release))
    p.start()
    p.join()
    _exit(p.exitcode)


def release(lock: Any) -> None:
    """Releases a lock this process did not acquire."""
    lock.release()


def release_expect_value_error(lock: Any) -> None:
    """``OK`` if releasing raises ValueError (an unlocked Lock, a full BoundedSemaphore)."""
    try:
        lock.release()
    except ValueError:
        _exit(OK)
    _exit(WRONG_ERROR)


def try_acquire(lock: Any, block: bool, timeout: float | None) -> None:
    """``OK`` if the acquire succeeded (then releases), ``FAILED`` if it returned False."""
    if lock.acquire(block, timeout):
        lock.release()
        _exit(OK)
    _exit(FAILED)


def try_release_foreign_rlock(rlock: Any) -> None:
    """``OK`` if releasing an RLock this process does not own raises AssertionError."""
    try:
        rlock.release()
    except AssertionError:
        _exit(OK)
    _exit(WRONG_ERROR)


def acquire_after_death(lock: Any, ready: Any) -> None:
    """Waits to take over a lock whose holder dies; checks the takeover is reported."""
    ready.set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if not lock.acquire(timeout=DEADLINE):
            _exit(FAILED)
    warning = getattr(synchronize, "OwnerDiedWarning", None)
    warned = warning is not None and any(issubclass(w.category, warning) for w in caught)
    if not (warned and lock.owner_died):
        _exit(NO_WARNING)
    lock.release()


# -- semaphores ----------------------------------------------------------------------------


def signal_then_acquire(sem: Any, ready: Any) -> None:
    """Says it is about to block, then blocks on ``sem``: ``OK`` once it gets it."""
    ready.set()
    _exit(OK if sem.acquire(timeout=DEADLINE) else FAILED)


# -- conditions ----------------------------------------------------------------------------


def condition_wait(cond: Any, sleeping: Any, woken: Any) -> None:
    """CPython's pattern: release ``sleeping`` with the lock held, wait, release ``woken``.

    The test knows every waiter is inside ``wait()`` once it has acquired ``sleeping`` for
    each and then the condition's lock (which a waiter only gives up inside ``wait()``).
    """
    with cond:
        sleeping.release()
        notified = cond.wait(DEADLINE)
        woken.release()
    _exit(OK if notified else FAILED)


def condition_wait_for(cond: Any, sleeping: Any, path: str) -> None:
    """Waits until ``path`` exists, woken by the condition: ``OK`` if the predicate held."""
    with cond:
        sleeping.release()
        result = cond.wait_for(Path(path).exists, DEADLINE)
    _exit(OK if result else FAILED)


def condition_notify(cond: Any, n: int | None) -> None:
    """``notify(n)``, or ``notify_all()`` when ``n`` is None."""
    with cond:
        if n is None:
            cond.notify_all()
        else:
            cond.notify(n)


def notify_and_hold_forever(cond: Any, notified: Any) -> None:
    """Notifies, says so, and keeps the condition's lock until it is killed."""
    cond.acquire()
    cond.notify()
    notified.set()
    _linger_then_fail()


# -- events --------------------------------------------------------------------------------


def event_wait(event: Any, ready: Any, timeout: float | None = DEADLINE) -> None:
    """Says it is about to wait; ``OK`` if the event was set, ``FAILED`` if it timed out."""
    ready.set()
    _exit(OK if event.wait(timeout) else FAILED)


def event_wait_expect_timeout(event: Any, timeout: float) -> None:
    """``OK`` if waiting on an unset event times out with False."""
    _exit(OK if event.wait(timeout) is False else UNEXPECTED)


def event_set(event: Any) -> None:
    event.set()


def event_ping_pong(ping: Any, pong: Any, rounds: int) -> None:
    """Waits for ``ping``, clears it, sets ``pong``; ``rounds`` times."""
    for _ in range(rounds):
        if not ping.wait(DEADLINE):
            _exit(TIMED_OUT)
        ping.clear()
        pong.set()


# -- barriers ------------------------------------------------------------------------------


def append_line(path: str) -> None:
    """A barrier action: one line per call (appends of a few bytes are atomic)."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def raise_value_error() -> None:
    """A barrier action that fails."""
    raise ValueError("action failed")


def barrier_rounds(barrier: Any, rounds: int, directory: str) -> None:
    """Passes the barrier ``rounds`` times, writing the index it got each round."""
    for r in range(rounds):
        try:
            index = barrier.wait(DEADLINE)
        except threading.BrokenBarrierError:
            _exit(BROKEN)
        write_atomically(Path(directory) / f"round{r}-{os.getpid()}", str(index))


def barrier_wait(barrier: Any, timeout: float | None = DEADLINE) -> None:
    """``OK`` if the barrier is passed, ``BROKEN`` on BrokenBarrierError."""
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        _exit(BROKEN)
    except ValueError:
        _exit(WRONG_ERROR)


def barrier_wait_forever(barrier: Any) -> None:
    """Waits with no timeout: only a broken barrier (or passing it) ends the wait."""
    barrier_wait(barrier, None)


# -- everything at once --------------------------------------------------------------------


def use_every_primitive(prims: dict[str, Any]) -> None:
    """Exercises each primitive it was given (in a dict); ``OK`` when each behaves."""
    lock, rlock, sem, bsem = prims["lock"], prims["rlock"], prims["sem"], prims["bsem"]
    cond, event, barrier = prims["cond"], prims["event"], prims["barrier"]
    checks = []
    with lock:
        checks.append(not lock.acquire(False))
    with rlock, rlock:
        checks.append(True)
    checks.append(sem.acquire(timeout=DEADLINE))
    checks.append(sem.get_value() == 1)
    checks.append(bsem.acquire(False))
    bsem.release()
    try:
        bsem.release()
    except ValueError:
        checks.append(True)
    else:
        checks.append(False)
    with cond:
        cond.notify_all()
        checks.append(cond.wait(0.01) is False)
    event.set()
    try:
        checks.append(barrier.wait(DEADLINE) in (0, 1))
    except threading.BrokenBarrierError:
        checks.append(False)
    _exit(OK if all(checks) else FAILED)
