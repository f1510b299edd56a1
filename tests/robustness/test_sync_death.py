"""Processes that die while holding, or waiting on, a synchronisation primitive.

With the stdlib, a process killed while holding a ``Lock`` leaves every other process
waiting forever, and a dead ``Barrier`` party or ``Condition`` waiter hangs the rest:
those tests are ``ferroproc_only``. ferroproc hands a dead holder's lock to the next
acquirer with an ``OwnerDiedWarning`` (and ``lock.owner_died``), breaks a barrier whose
party died, and keeps a condition's live waiters reachable. Waits are bounded by
``DEADLINE`` and assert the outcome, never how long it took.
"""

from __future__ import annotations

import importlib
import signal
import threading
from typing import Any

import pytest

import _sync_targets as st
from _support import DEADLINE, MODULE_NAME, mp, wait_until
from _sync_helpers import finish, start, wait_blocked

pytestmark = pytest.mark.timeout(90)

synchronize = importlib.import_module(f"{MODULE_NAME}.synchronize")
# Only ferroproc has it; the tests that use it are skipped for the stdlib.
OwnerDiedWarning: type[Warning] = getattr(synchronize, "OwnerDiedWarning", RuntimeWarning)

BRIEFLY = 0.2


def kill(p: Any) -> None:
    p.kill()
    assert finish(p) == -signal.SIGKILL


def make_lock(ctx: Any, kind: str) -> Any:
    return ctx.Lock() if kind == "Lock" else ctx.RLock()


def owner_repr(lock: Any, depth: int = 1) -> str:
    if "RLock" in type(lock).__name__:
        return f"<RLock(MainProcess, {depth})>"
    return "<Lock(owner=MainProcess)>"


@pytest.mark.ferroproc_only
def test_owner_died_warning_is_public() -> None:
    # The issue promises `ferroproc.OwnerDiedWarning`; it is a RuntimeWarning so that
    # filters on RuntimeWarning catch it.
    assert issubclass(synchronize.OwnerDiedWarning, RuntimeWarning)
    assert mp.OwnerDiedWarning is synchronize.OwnerDiedWarning


# -- a holder dies -------------------------------------------------------------------------


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_dead_holders_lock_goes_to_next_acquirer(ctx: Any, kind: str, how: str) -> None:
    lock, held = make_lock(ctx, kind), ctx.Event()
    depth = 2 if kind == "RLock" else 1
    p = start(ctx, st.hold_and_die, lock, held, depth, "linger" if how == "sigkill" else "exit")
    assert held.wait(DEADLINE)
    if how == "sigkill":
        kill(p)
    else:
        assert finish(p) == 0
    with pytest.warns(OwnerDiedWarning):
        assert lock.acquire(timeout=DEADLINE) is True
    assert lock.owner_died is True
    # Ours now, at depth one whatever the dead holder's depth was.
    assert repr(lock) == owner_repr(lock)
    assert lock.acquire(False) is (kind == "RLock")
    if kind == "RLock":
        lock.release()
    lock.release()
    # An ordinary acquire afterwards: no warning (filterwarnings=error), flag cleared.
    assert lock.acquire(timeout=DEADLINE) is True
    assert lock.owner_died is False
    lock.release()
    if kind == "Lock":
        with pytest.raises(ValueError):
            lock.release()
    else:
        with pytest.raises(AssertionError):
            lock.release()


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_dead_holders_lock_goes_to_a_blocked_waiter(ctx: Any, kind: str) -> None:
    lock, held, ready = make_lock(ctx, kind), ctx.Event(), ctx.Event()
    holder = start(ctx, st.hold_and_die, lock, held)
    assert held.wait(DEADLINE)
    waiter = start(ctx, st.acquire_after_death, lock, ready)
    assert ready.wait(DEADLINE)
    wait_blocked(waiter)
    kill(holder)
    # The waiter got the lock, saw the warning and the flag, and released it.
    assert finish(waiter) == st.OK
    assert lock.acquire(timeout=DEADLINE) is True
    assert lock.owner_died is False
    lock.release()


@pytest.mark.ferroproc_only
def test_dead_holders_lock_context_manager_warns(ctx: Any) -> None:
    lock, held = ctx.Lock(), ctx.Event()
    p = start(ctx, st.hold_and_die, lock, held)
    assert held.wait(DEADLINE)
    kill(p)
    with pytest.warns(OwnerDiedWarning, match="died"), lock:
        assert repr(lock) == "<Lock(owner=MainProcess)>"
    assert repr(lock) == "<Lock(owner=None)>"


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("lock_kind", ["Lock", "RLock"])
def test_condition_lock_holder_dies_while_we_wait(ctx: Any, lock_kind: str) -> None:
    # We wait; a child takes the lock, notifies us, and is killed before releasing it.
    # Our wait() must get the lock back from the dead process, and say so.
    lock = make_lock(ctx, lock_kind)
    cond, notified = ctx.Condition(lock), ctx.Event()
    with cond:
        p = start(ctx, st.notify_and_hold_forever, cond, notified)
        killer = threading.Thread(target=lambda: notified.wait(DEADLINE) and p.kill())
        killer.start()
        try:
            with pytest.warns(OwnerDiedWarning):
                assert cond.wait(DEADLINE) is True
        finally:
            killer.join(DEADLINE)
        assert repr(lock) == owner_repr(lock)
        assert lock.owner_died is True
        cond.notify()  # we own the lock
    assert finish(p) == -signal.SIGKILL


# -- a waiter dies -------------------------------------------------------------------------


def test_killed_lock_waiter_does_not_disturb_others(ctx: Any) -> None:
    lock = ctx.Lock()
    lock.acquire()
    ready = ctx.Event()
    a = start(ctx, st.signal_then_acquire, lock, ready)
    assert ready.wait(DEADLINE)
    wait_blocked(a)
    kill(a)
    b = start(ctx, st.try_acquire, lock, True, DEADLINE)
    lock.release()
    # b gets the lock (and releases it); nobody inherits a dead waiter's turn.
    assert finish(b) == st.OK
    assert lock.acquire(False) is True
    lock.release()


@pytest.mark.ferroproc_only
@pytest.mark.parametrize("lock_kind", ["default", "Lock"])
def test_killed_condition_waiter_does_not_swallow_notify(ctx: Any, lock_kind: str) -> None:
    lock = None if lock_kind == "default" else ctx.Lock()
    cond = ctx.Condition(lock)
    sleeping = ctx.Semaphore(0)
    woken_a, woken_b = ctx.Semaphore(0), ctx.Semaphore(0)
    # a waits first, so a first-in-first-out notify would pick it.
    a = start(ctx, st.condition_wait, cond, sleeping, woken_a)
    assert sleeping.acquire(timeout=DEADLINE)
    b = start(ctx, st.condition_wait, cond, sleeping, woken_b)
    assert sleeping.acquire(timeout=DEADLINE)
    with cond:  # both are inside wait() once we hold the lock
        pass
    kill(a)
    with cond:
        cond.notify(1)
    assert woken_b.acquire(timeout=DEADLINE)
    assert finish(b) == st.OK
    # The condition still works for newcomers.
    woken_c = ctx.Semaphore(0)
    c = start(ctx, st.condition_wait, cond, sleeping, woken_c)
    assert sleeping.acquire(timeout=DEADLINE)
    with cond:
        cond.notify_all()
    assert woken_c.acquire(timeout=DEADLINE)
    assert finish(c) == st.OK


@pytest.mark.ferroproc_only
def test_killed_event_waiter_does_not_disturb_others(ctx: Any) -> None:
    event = ctx.Event()
    ready_a, ready_b = ctx.Event(), ctx.Event()
    a = start(ctx, st.event_wait, event, ready_a)
    b = start(ctx, st.event_wait, event, ready_b)
    assert ready_a.wait(DEADLINE)
    assert ready_b.wait(DEADLINE)
    wait_blocked(a)
    wait_blocked(b)
    kill(a)
    event.set()
    assert finish(b) == st.OK
    assert event.is_set()
    event.clear()
    assert event.wait(BRIEFLY) is False
    c = start(ctx, st.event_wait, event, ctx.Event())
    event.set()
    assert finish(c) == st.OK


# -- a barrier party dies ------------------------------------------------------------------


@pytest.mark.ferroproc_only
def test_killed_barrier_party_breaks_it_for_waiting_children(ctx: Any) -> None:
    barrier = ctx.Barrier(3)
    a = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 1)
    b = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 2)
    kill(a)
    # b waits with no timeout: only the barrier breaking ends its wait.
    assert finish(b) == st.BROKEN
    assert wait_until(lambda: barrier.broken)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(DEADLINE)


@pytest.mark.ferroproc_only
def test_killed_barrier_party_breaks_it_for_us(ctx: Any) -> None:
    barrier = ctx.Barrier(3)
    a = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 1)

    def kill_a_once_we_wait() -> None:
        if wait_until(lambda: barrier.n_waiting == 2):
            a.kill()

    killer = threading.Thread(target=kill_a_once_we_wait)
    killer.start()
    try:
        with pytest.raises(threading.BrokenBarrierError):
            barrier.wait()
    finally:
        killer.join(DEADLINE)
    assert finish(a) == -signal.SIGKILL
    assert barrier.broken is True


@pytest.mark.ferroproc_only
def test_barrier_broken_by_a_death_can_be_reset(ctx: Any) -> None:
    barrier = ctx.Barrier(3)
    a = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 1)
    b = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 2)
    kill(a)
    assert finish(b) == st.BROKEN
    barrier.reset()
    assert barrier.broken is False
    assert barrier.n_waiting == 0
    procs = [start(ctx, st.barrier_wait, barrier) for _ in range(2)]
    assert barrier.wait(DEADLINE) in (0, 1, 2)
    assert [finish(p) for p in procs] == [st.OK] * 2


@pytest.mark.ferroproc_only
def test_dead_party_counts_once_the_round_completes(ctx: Any) -> None:
    # A party that arrived and then died did arrive: if the others complete the round
    # before anyone notices, the round passes (stdlib semantics), and the next round
    # works with live parties.
    barrier = ctx.Barrier(2)
    a = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 1)
    kill(a)
    try:
        barrier.wait(DEADLINE)
    except threading.BrokenBarrierError:
        # ferroproc may notice the death first and break the round instead.
        assert barrier.broken
        barrier.reset()
    b = start(ctx, st.barrier_wait, barrier)
    assert barrier.wait(DEADLINE) in (0, 1)
    assert finish(b) == st.OK
