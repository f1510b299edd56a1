"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier.

Real processes under every start method; the stdlib's behaviour, error types and reprs
(check with ``FERROPROC_TEST_MODULE=multiprocessing``). Children report through exit
codes (``_sync_targets``), files and the primitives themselves; nothing sleeps to
synchronise. A negative ("nobody else woke up") is checked with a short bounded wait.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import _sync_targets as st
from _support import DEADLINE, mp, wait_until
from _sync_helpers import finish, process_state, start, wait_blocked

pytestmark = pytest.mark.timeout(60)

# How long a test waits to see that something does NOT happen. A bound on a negative
# check, never a speed claim.
BRIEFLY = 0.2

RELEASED_TOO_MANY = "semaphore or lock released too many times"
NOT_SHAREABLE = "should only be shared between processes through inheritance"


def acquire_n(sem: Any, n: int) -> None:
    """Acquires ``sem`` ``n`` times, each within the deadline."""
    for i in range(n):
        assert sem.acquire(timeout=DEADLINE), f"acquire {i + 1} of {n} timed out"


def in_thread(func: Callable[[], object]) -> object:
    """Runs ``func`` in another thread of this process and returns what it returned."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(func()))
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    return result[0]


# -- Lock ----------------------------------------------------------------------------------


def test_lock_protects_read_modify_write(ctx: Any, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    lock = ctx.Lock()
    times, children = 100, 3
    procs = [start(ctx, st.increment_counter, lock, str(counter), times) for _ in range(children)]
    st.increment_counter(lock, str(counter), times)
    assert [finish(p) for p in procs] == [st.OK] * children
    assert int(counter.read_text()) == times * (children + 1)


def test_lock_held_elsewhere(ctx: Any) -> None:
    lock, held, release = ctx.Lock(), ctx.Event(), ctx.Event()
    p = start(ctx, st.hold_until, lock, held, release)
    assert held.wait(DEADLINE)
    assert lock.acquire(False) is False
    assert lock.acquire(block=False, timeout=DEADLINE) is False  # timeout ignored
    assert lock.acquire(timeout=BRIEFLY) is False
    assert lock.acquire(True, 0) is False
    assert repr(lock) == "<Lock(owner=SomeOtherProcess)>"
    release.set()
    # Blocks until the child lets go.
    assert lock.acquire() is True
    assert repr(lock) == "<Lock(owner=MainProcess)>"
    assert finish(p) == st.OK
    lock.release()
    assert repr(lock) == "<Lock(owner=None)>"


def test_lock_child_sees_parent_holding(ctx: Any) -> None:
    lock = ctx.Lock()
    with lock:
        assert finish(start(ctx, st.try_acquire, lock, False, None)) == st.FAILED
        assert finish(start(ctx, st.try_acquire, lock, True, BRIEFLY)) == st.FAILED
    assert finish(start(ctx, st.try_acquire, lock, True, DEADLINE)) == st.OK
    assert lock.acquire(False) is True
    lock.release()


def test_lock_released_by_another_process(ctx: Any) -> None:
    # Unlike an RLock, a Lock is not owned: any process may release it.
    lock = ctx.Lock()
    assert lock.acquire()
    assert finish(start(ctx, st.release, lock)) == st.OK
    assert lock.acquire(False) is True
    lock.release()


def test_lock_released_by_another_thread() -> None:
    lock = mp.Lock()
    assert in_thread(lock.acquire) is True
    assert repr(lock) == "<Lock(owner=SomeOtherThread)>"
    lock.release()
    assert repr(lock) == "<Lock(owner=None)>"


def test_release_unlocked_lock_raises_value_error(ctx: Any) -> None:
    lock = ctx.Lock()
    with pytest.raises(ValueError, match=RELEASED_TOO_MANY):
        lock.release()
    lock.acquire()
    lock.release()
    with pytest.raises(ValueError, match=RELEASED_TOO_MANY):
        lock.release()
    assert finish(start(ctx, st.release_expect_value_error, lock)) == st.OK


def test_lock_is_not_recursive() -> None:
    lock = mp.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=BRIEFLY) is False
    lock.release()


def test_lock_context_manager() -> None:
    lock = mp.Lock()
    with lock as acquired:
        assert acquired is True
        assert repr(lock) == "<Lock(owner=MainProcess)>"
        assert lock.acquire(False) is False
    assert repr(lock) == "<Lock(owner=None)>"
    with pytest.raises(KeyError), lock:
        raise KeyError("released on the way out")
    assert lock.acquire(False) is True
    lock.release()


def test_lock_repr_names_the_owning_thread() -> None:
    lock = mp.Lock()

    def acquire_and_describe() -> str:
        with lock:
            return repr(lock)

    name = "worker-thread"
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(acquire_and_describe()), name=name)
    thread.start()
    thread.join(DEADLINE)
    assert result == [f"<Lock(owner=MainProcess|{name})>"]


# -- RLock ---------------------------------------------------------------------------------


def test_rlock_recursion() -> None:
    rlock = mp.RLock()
    assert repr(rlock) == "<RLock(None, 0)>"
    for depth in range(1, 4):
        assert rlock.acquire() is True
        assert repr(rlock) == f"<RLock(MainProcess, {depth})>"
    assert rlock.acquire(False) is True
    rlock.release()
    rlock.release()
    assert repr(rlock) == "<RLock(MainProcess, 2)>"
    rlock.release()
    rlock.release()
    assert repr(rlock) == "<RLock(None, 0)>"
    with pytest.raises(AssertionError):
        rlock.release()


def test_rlock_context_manager_nests() -> None:
    rlock = mp.RLock()
    with rlock, rlock:
        assert repr(rlock) == "<RLock(MainProcess, 2)>"
    assert repr(rlock) == "<RLock(None, 0)>"


def test_rlock_release_by_other_thread_raises_assertion_error() -> None:
    rlock = mp.RLock()
    rlock.acquire()

    def release_from_thread() -> object:
        try:
            rlock.release()
        except AssertionError as exc:
            return exc
        return None

    assert isinstance(in_thread(release_from_thread), AssertionError)
    assert repr(rlock) == "<RLock(MainProcess, 1)>"
    rlock.release()


def test_rlock_held_by_other_thread() -> None:
    rlock = mp.RLock()
    assert in_thread(rlock.acquire) is True
    assert repr(rlock) == "<RLock(SomeOtherThread, nonzero)>"
    assert rlock.acquire(False) is False
    assert rlock.acquire(timeout=BRIEFLY) is False
    with pytest.raises(AssertionError):
        rlock.release()


def test_rlock_held_by_other_process(ctx: Any) -> None:
    rlock, held, release = ctx.RLock(), ctx.Event(), ctx.Event()
    p = start(ctx, st.hold_until, rlock, held, release)
    assert held.wait(DEADLINE)
    assert rlock.acquire(False) is False
    assert rlock.acquire(timeout=BRIEFLY) is False
    assert repr(rlock) == "<RLock(SomeOtherProcess, nonzero)>"
    with pytest.raises(AssertionError):
        rlock.release()
    release.set()
    assert rlock.acquire(timeout=DEADLINE) is True
    assert finish(p) == st.OK
    rlock.release()


def test_rlock_child_does_not_own_parents_rlock(ctx: Any) -> None:
    # Under fork too: the child is another process, whatever the parent held at fork.
    rlock = ctx.RLock()
    with rlock:
        assert finish(start(ctx, st.try_release_foreign_rlock, rlock)) == st.OK
        assert finish(start(ctx, st.try_acquire, rlock, True, BRIEFLY)) == st.FAILED
        assert repr(rlock) == "<RLock(MainProcess, 1)>"
    assert finish(start(ctx, st.try_acquire, rlock, True, DEADLINE)) == st.OK


# -- Semaphore, BoundedSemaphore -------------------------------------------------------------


def test_semaphore_values() -> None:
    assert mp.Semaphore().get_value() == 1
    sem = mp.Semaphore(3)
    assert repr(sem) == "<Semaphore(value=3)>"
    for value in (2, 1, 0):
        assert sem.acquire() is True
        assert sem.get_value() == value
    assert sem.acquire(False) is False
    assert sem.acquire(timeout=BRIEFLY) is False
    assert repr(sem) == "<Semaphore(value=0)>"
    for value in (1, 2, 3, 4):
        sem.release()
        assert sem.get_value() == value
    # A plain semaphore may go above its initial value.
    assert repr(sem) == "<Semaphore(value=4)>"
    with sem:
        assert sem.get_value() == 3
    assert sem.get_value() == 4


def test_semaphore_zero() -> None:
    sem = mp.Semaphore(0)
    assert sem.get_value() == 0
    assert sem.acquire(False) is False
    sem.release()
    assert sem.acquire(False) is True


def test_bounded_semaphore_over_release_raises_value_error(ctx: Any) -> None:
    bsem = ctx.BoundedSemaphore(2)
    assert repr(bsem) == "<BoundedSemaphore(value=2, maxvalue=2)>"
    with pytest.raises(ValueError, match=RELEASED_TOO_MANY):
        bsem.release()
    assert bsem.get_value() == 2
    assert bsem.acquire() is True
    assert repr(bsem) == "<BoundedSemaphore(value=1, maxvalue=2)>"
    assert finish(start(ctx, st.release, bsem)) == st.OK
    assert bsem.get_value() == 2
    assert finish(start(ctx, st.release_expect_value_error, bsem)) == st.OK
    assert bsem.get_value() == 2


def test_semaphore_blocks_across_processes(ctx: Any) -> None:
    sem, ready = ctx.Semaphore(0), ctx.Event()
    assert finish(start(ctx, st.try_acquire, sem, False, None)) == st.FAILED
    assert finish(start(ctx, st.try_acquire, sem, True, BRIEFLY)) == st.FAILED
    p = start(ctx, st.signal_then_acquire, sem, ready)
    assert ready.wait(DEADLINE)
    wait_blocked(p)
    sem.release()
    assert finish(p) == st.OK
    assert sem.get_value() == 0


def test_semaphore_counts_across_processes(ctx: Any) -> None:
    sem = ctx.Semaphore(2)
    assert sem.acquire() is True
    # One unit left: a child takes it and gives it back; with none left it cannot.
    assert finish(start(ctx, st.try_acquire, sem, False, None)) == st.OK
    assert sem.acquire() is True
    assert finish(start(ctx, st.try_acquire, sem, True, BRIEFLY)) == st.FAILED
    assert finish(start(ctx, st.release, sem)) == st.OK
    assert sem.get_value() == 1


# -- Condition -----------------------------------------------------------------------------


def make_condition(ctx: Any, lock_kind: str) -> tuple[Any, Any]:
    """A condition and the lock it uses (over an RLock by default)."""
    if lock_kind == "default":
        cond = ctx.Condition()
        # The default lock is an RLock; reach it through the public acquire/release.
        return cond, None
    lock = ctx.Lock() if lock_kind == "Lock" else ctx.RLock()
    return ctx.Condition(lock), lock


def start_waiters(ctx: Any, cond: Any, n: int) -> tuple[list[Any], Any]:
    """Starts ``n`` children waiting on ``cond``; returns once all of them are inside wait()."""
    sleeping, woken = ctx.Semaphore(0), ctx.Semaphore(0)
    procs = [start(ctx, st.condition_wait, cond, sleeping, woken) for _ in range(n)]
    acquire_n(sleeping, n)
    # Each waiter held the lock when it released `sleeping` and gives the lock up only
    # inside wait(): once we hold it, every waiter is waiting.
    with cond:
        pass
    return procs, woken


@pytest.mark.parametrize("lock_kind", ["default", "Lock"])
def test_condition_notify_one_wakes_exactly_one(ctx: Any, lock_kind: str) -> None:
    cond, _ = make_condition(ctx, lock_kind)
    procs, woken = start_waiters(ctx, cond, 2)
    with cond:
        cond.notify(1)
    assert woken.acquire(timeout=DEADLINE)
    assert wait_until(lambda: sum(p.exitcode is not None for p in procs) == 1)
    assert woken.acquire(timeout=BRIEFLY) is False
    assert sum(p.is_alive() for p in procs) == 1
    with cond:
        cond.notify()  # n defaults to 1
    assert woken.acquire(timeout=DEADLINE)
    assert [finish(p) for p in procs] == [st.OK, st.OK]


def test_condition_notify_n(ctx: Any) -> None:
    cond, _ = make_condition(ctx, "RLock")
    procs, woken = start_waiters(ctx, cond, 3)
    with cond:
        cond.notify(2)
    acquire_n(woken, 2)
    assert woken.acquire(timeout=BRIEFLY) is False
    with cond:
        cond.notify(5)  # more than are waiting: wakes the one left
    assert woken.acquire(timeout=DEADLINE)
    assert [finish(p) for p in procs] == [st.OK] * 3


@pytest.mark.parametrize("lock_kind", ["default", "Lock"])
def test_condition_notify_all(ctx: Any, lock_kind: str) -> None:
    cond, _ = make_condition(ctx, lock_kind)
    procs, woken = start_waiters(ctx, cond, 3)
    with cond:
        cond.notify_all()
    acquire_n(woken, 3)
    assert [finish(p) for p in procs] == [st.OK] * 3


def test_condition_notify_from_child(ctx: Any) -> None:
    cond, lock = make_condition(ctx, "Lock")
    with cond:
        p = start(ctx, st.condition_notify, cond, 1)
        # The child needs the lock to notify, which wait() gives up: no lost wake-up.
        assert cond.wait(DEADLINE) is True
        assert repr(lock) == "<Lock(owner=MainProcess)>"
    assert finish(p) == st.OK


def test_condition_wait_releases_every_level_of_an_rlock(ctx: Any) -> None:
    rlock = ctx.RLock()
    cond = ctx.Condition(rlock)
    with rlock, rlock:
        p = start(ctx, st.condition_notify, cond, None)
        assert cond.wait(DEADLINE) is True
        assert repr(rlock) == "<RLock(MainProcess, 2)>"
    assert repr(rlock) == "<RLock(None, 0)>"
    assert finish(p) == st.OK


def test_condition_wait_for_across_processes(ctx: Any, tmp_path: Path) -> None:
    cond = ctx.Condition()
    sleeping = ctx.Semaphore(0)
    flag = tmp_path / "flag"
    p = start(ctx, st.condition_wait_for, cond, sleeping, str(flag))
    assert sleeping.acquire(timeout=DEADLINE)
    with cond:
        cond.notify_all()  # the predicate is still false: the child waits on
    with cond:
        flag.touch()
        cond.notify_all()
    assert finish(p) == st.OK


@pytest.mark.parametrize("lock_kind", ["Lock", "RLock"])
def test_condition_wait_timeout_returns_false_with_lock_held(lock_kind: str) -> None:
    cond, lock = make_condition(mp, lock_kind)
    with cond:
        assert cond.wait(BRIEFLY) is False
        assert cond.wait(0) is False
        owner = "<Lock(owner=MainProcess)>" if lock_kind == "Lock" else "<RLock(MainProcess, 1)>"
        assert repr(lock) == owner
    assert lock.acquire(False) is True
    lock.release()


def test_condition_wait_for_returns_the_predicate_value() -> None:
    cond = mp.Condition()
    with cond:
        assert cond.wait_for(lambda: "ready") == "ready"
        assert cond.wait_for(lambda: 0, BRIEFLY) == 0
        assert cond.wait_for(lambda: None, 0) is None
        calls: list[int] = []

        def predicate() -> bool:
            calls.append(1)
            return False

        # Checked before waiting and again when the wait times out.
        assert cond.wait_for(predicate, BRIEFLY) is False
        assert len(calls) >= 2


@pytest.mark.parametrize("lock_kind", ["default", "Lock", "RLock"])
@pytest.mark.parametrize("method", ["wait", "notify", "notify_all"])
def test_condition_methods_need_the_lock(lock_kind: str, method: str) -> None:
    cond, _ = make_condition(mp, lock_kind)
    with pytest.raises(AssertionError):
        getattr(cond, method)()
    # Held by another thread of this process is not held by us.
    assert in_thread(cond.acquire) is True
    with pytest.raises(AssertionError):
        getattr(cond, method)()


def test_condition_wait_for_needs_the_lock() -> None:
    cond = mp.Condition()
    with pytest.raises(AssertionError):
        cond.wait_for(lambda: False, BRIEFLY)


def test_condition_repr_counts_waiters(ctx: Any) -> None:
    cond, _ = make_condition(ctx, "RLock")
    assert repr(cond) == "<Condition(<RLock(None, 0)>, 0)>"
    procs, woken = start_waiters(ctx, cond, 2)
    with cond:
        assert repr(cond) == "<Condition(<RLock(MainProcess, 1)>, 2)>"
        cond.notify_all()
    acquire_n(woken, 2)
    assert [finish(p) for p in procs] == [st.OK] * 2
    assert repr(cond) == "<Condition(<RLock(None, 0)>, 0)>"


# -- Event ---------------------------------------------------------------------------------


def test_event_in_process() -> None:
    event = mp.Event()
    assert event.is_set() is False
    assert event.wait(BRIEFLY) is False
    assert event.wait(0) is False
    event.set()
    assert event.is_set() is True
    assert event.wait() is True
    assert event.wait(0) is True
    event.set()  # idempotent
    event.clear()
    assert event.is_set() is False
    assert event.wait(0) is False


def test_event_wakes_every_waiter(ctx: Any) -> None:
    event = ctx.Event()
    readies = [ctx.Event() for _ in range(3)]
    procs = [start(ctx, st.event_wait, event, ready) for ready in readies]
    for ready, p in zip(readies, procs):
        assert ready.wait(DEADLINE)
        wait_blocked(p)
    event.set()
    assert [finish(p) for p in procs] == [st.OK] * 3


def test_event_set_by_child(ctx: Any) -> None:
    event = ctx.Event()
    p = start(ctx, st.event_set, event)
    assert event.wait(DEADLINE) is True
    assert event.is_set()
    assert finish(p) == st.OK


def test_event_wait_timeout_in_child(ctx: Any) -> None:
    event = ctx.Event()
    assert finish(start(ctx, st.event_wait_expect_timeout, event, BRIEFLY)) == st.OK
    event.set()
    event.clear()
    assert finish(start(ctx, st.event_wait_expect_timeout, event, BRIEFLY)) == st.OK
    event.set()
    assert finish(start(ctx, st.event_wait, event, ctx.Event(), 0)) == st.OK


def test_event_set_and_clear_ping_pong(ctx: Any) -> None:
    ping, pong = ctx.Event(), ctx.Event()
    rounds = 5
    p = start(ctx, st.event_ping_pong, ping, pong, rounds)
    for _ in range(rounds):
        ping.set()
        assert pong.wait(DEADLINE)
        pong.clear()
    assert finish(p) == st.OK
    assert not ping.is_set()


# -- Barrier -------------------------------------------------------------------------------


def test_barrier_rounds_indices_and_action(ctx: Any, tmp_path: Path) -> None:
    actions = tmp_path / "actions"
    actions.touch()
    rounds, parties = 4, 3
    barrier = ctx.Barrier(parties, action=partial(st.append_line, str(actions)))
    assert barrier.parties == parties
    procs = [start(ctx, st.barrier_rounds, barrier, rounds, str(tmp_path)) for _ in range(parties)]
    assert [finish(p) for p in procs] == [st.OK] * parties
    for r in range(rounds):
        indices = sorted(int(f.read_text()) for f in tmp_path.glob(f"round{r}-*"))
        assert indices == list(range(parties)), f"round {r}"
    # The action ran once per round, in one of the parties.
    runners = actions.read_text().split()
    assert len(runners) == rounds
    assert set(runners) <= {str(p.pid) for p in procs}
    assert barrier.n_waiting == 0
    assert barrier.broken is False


def test_barrier_of_one() -> None:
    calls: list[int] = []
    barrier = mp.Barrier(1, action=lambda: calls.append(1))
    assert [barrier.wait() for _ in range(3)] == [0, 0, 0]
    assert calls == [1, 1, 1]


def test_barrier_n_waiting_and_abort(ctx: Any) -> None:
    barrier = ctx.Barrier(3)
    assert (barrier.parties, barrier.n_waiting, barrier.broken) == (3, 0, False)
    procs = [start(ctx, st.barrier_wait_forever, barrier) for _ in range(2)]
    assert wait_until(lambda: barrier.n_waiting == 2)
    barrier.abort()
    assert [finish(p) for p in procs] == [st.BROKEN] * 2
    assert barrier.broken is True
    assert barrier.n_waiting == 0
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(DEADLINE)
    # Broken for later arrivals too, in any process.
    assert finish(start(ctx, st.barrier_wait, barrier)) == st.BROKEN


def test_barrier_reset_breaks_waiters_then_works(ctx: Any) -> None:
    barrier = ctx.Barrier(3)
    procs = [start(ctx, st.barrier_wait_forever, barrier) for _ in range(2)]
    assert wait_until(lambda: barrier.n_waiting == 2)
    barrier.reset()
    assert [finish(p) for p in procs] == [st.BROKEN] * 2
    assert barrier.broken is False
    assert wait_until(lambda: barrier.n_waiting == 0)
    procs = [start(ctx, st.barrier_wait, barrier) for _ in range(2)]
    assert barrier.wait(DEADLINE) in (0, 1, 2)
    assert [finish(p) for p in procs] == [st.OK] * 2


def test_barrier_reset_after_abort() -> None:
    barrier = mp.Barrier(1)
    barrier.abort()
    assert barrier.broken is True
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    barrier.reset()
    assert barrier.broken is False
    assert barrier.wait() == 0


def test_barrier_timeout_breaks_it(ctx: Any) -> None:
    barrier = ctx.Barrier(3)
    p = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 1)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(BRIEFLY)
    assert finish(p) == st.BROKEN
    assert barrier.broken is True


def test_barrier_default_timeout_breaks_it(ctx: Any) -> None:
    barrier = ctx.Barrier(2, timeout=BRIEFLY)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    assert barrier.broken is True
    # The default timeout travels to children too.
    barrier.reset()
    assert finish(start(ctx, st.barrier_wait, barrier, None)) == st.BROKEN


def test_barrier_failing_action_breaks_it(ctx: Any) -> None:
    barrier = ctx.Barrier(2, action=st.raise_value_error)
    p = start(ctx, st.barrier_wait_forever, barrier)
    assert wait_until(lambda: barrier.n_waiting == 1)
    # We arrive last, so we run the action; its exception is ours, the others' is broken.
    with pytest.raises(ValueError, match="action failed"):
        barrier.wait(DEADLINE)
    assert finish(p) == st.BROKEN
    assert barrier.broken is True


# -- pickling ------------------------------------------------------------------------------

FACTORIES: dict[str, Callable[[Any], Any]] = {
    "Lock": lambda m: m.Lock(),
    "RLock": lambda m: m.RLock(),
    "Semaphore": lambda m: m.Semaphore(2),
    "BoundedSemaphore": lambda m: m.BoundedSemaphore(2),
    "Condition": lambda m: m.Condition(),
    "Event": lambda m: m.Event(),
    "Barrier": lambda m: m.Barrier(2),
}


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_pickling_outside_process_start_raises_runtime_error(kind: str) -> None:
    obj = FACTORIES[kind](mp)
    with pytest.raises(RuntimeError, match=NOT_SHAREABLE):
        pickle.dumps(obj)


def test_every_primitive_passes_to_a_child(ctx: Any) -> None:
    lock, rlock, event = ctx.Lock(), ctx.RLock(), ctx.Event()
    sem, bsem = ctx.Semaphore(2), ctx.BoundedSemaphore(1)
    cond, barrier = ctx.Condition(), ctx.Barrier(2)
    prims = {"lock": lock, "rlock": rlock, "sem": sem, "bsem": bsem}
    prims.update(cond=cond, event=event, barrier=barrier)
    p = start(ctx, st.use_every_primitive, prims)
    assert barrier.wait(DEADLINE) in (0, 1)
    assert finish(p) == st.OK
    assert event.is_set()
    assert sem.get_value() == 1
    assert bsem.get_value() == 1
    assert lock.acquire(False) is True
    assert rlock.acquire(False) is True


def test_primitives_pass_to_a_grandchild_through_a_child(ctx: Any) -> None:
    # A child that received a lock passes it on at its own process start.
    lock, held, release = ctx.Lock(), ctx.Event(), ctx.Event()
    p = start(ctx, st.start_holder, ctx.get_start_method(), lock, held, release)
    assert held.wait(DEADLINE)
    assert lock.acquire(False) is False
    release.set()
    assert finish(p) == st.OK
    assert lock.acquire(timeout=DEADLINE) is True


# -- signals -------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


class Interrupter:
    """Interrupts the main thread's next blocking call with a signal whose handler raises.

    ``with interrupter.during(): blocking_call()``: a thread waits until the main thread
    sleeps in the kernel (it is inside the call), then signals it; the handler raises the
    chosen exception once (later, stray signals are ignored). A wait deaf to signals never
    sees it, and the test times out.
    """

    def __init__(self) -> None:
        self.pending: type[BaseException] | None = None

    def handler(self, signum: int, frame: object) -> None:
        exc, self.pending = self.pending, None
        if exc is not None:
            raise exc(signum)

    @contextlib.contextmanager
    def during(
        self, exc: type[BaseException] = Interrupted, signum: int = signal.SIGUSR1
    ) -> Iterator[None]:
        main = threading.main_thread()
        ident, native_id = main.ident, main.native_id
        assert threading.current_thread() is main
        assert ident is not None and native_id is not None
        stop = threading.Event()

        def send_when_blocked() -> None:
            while not stop.is_set():
                if wait_until(lambda: stop.is_set() or process_state(native_id) == "S"):
                    if stop.is_set():
                        return
                    signal.pthread_kill(ident, signum)
                # Still blocked a second later (the handler already ran elsewhere, say
                # between two waits of the call): signal again.
                stop.wait(1.0)

        self.pending = exc
        thread = threading.Thread(target=send_when_blocked, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(DEADLINE)
            self.pending = None


@pytest.fixture
def interrupter() -> Iterator[Interrupter]:
    assert threading.current_thread() is threading.main_thread()
    interrupter = Interrupter()
    previous = {
        signum: signal.signal(signum, interrupter.handler)
        for signum in (signal.SIGUSR1, signal.SIGINT)
    }
    try:
        yield interrupter
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("timeout", [None, 90.0])
def test_signal_interrupts_lock_acquire(interrupter: Interrupter, timeout: float | None) -> None:
    lock = mp.Lock()
    lock.acquire()
    with pytest.raises(Interrupted), interrupter.during():
        lock.acquire(timeout=timeout)
    # Still ours (the interrupted acquire took nothing), and still usable.
    assert repr(lock) == "<Lock(owner=MainProcess)>"
    lock.release()
    assert lock.acquire(False) is True
    lock.release()


def test_ctrl_c_interrupts_lock_acquire_and_event_wait(interrupter: Interrupter) -> None:
    # SIGINT whose handler raises KeyboardInterrupt: what Ctrl-C does by default.
    lock, event = mp.Lock(), mp.Event()
    lock.acquire()
    with pytest.raises(KeyboardInterrupt), interrupter.during(KeyboardInterrupt, signal.SIGINT):
        lock.acquire()
    with pytest.raises(KeyboardInterrupt), interrupter.during(KeyboardInterrupt, signal.SIGINT):
        event.wait()
    lock.release()


def test_signal_interrupts_lock_held_by_child(ctx: Any, interrupter: Interrupter) -> None:
    lock, held, release = ctx.Lock(), ctx.Event(), ctx.Event()
    p = start(ctx, st.hold_until, lock, held, release)
    assert held.wait(DEADLINE)
    with pytest.raises(Interrupted), interrupter.during():
        lock.acquire()
    release.set()
    assert finish(p) == st.OK
    assert lock.acquire(timeout=DEADLINE) is True


@pytest.mark.parametrize("timeout", [None, 90.0])
def test_signal_interrupts_rlock_and_semaphore(
    interrupter: Interrupter, timeout: float | None
) -> None:
    rlock = mp.RLock()
    assert in_thread(rlock.acquire) is True
    with pytest.raises(Interrupted), interrupter.during():
        rlock.acquire(timeout=timeout)
    assert repr(rlock) == "<RLock(SomeOtherThread, nonzero)>"
    sem = mp.Semaphore(0)
    with pytest.raises(Interrupted), interrupter.during():
        sem.acquire(timeout=timeout)
    assert sem.get_value() == 0


@pytest.mark.parametrize("timeout", [None, 90.0])
def test_signal_interrupts_event_wait(interrupter: Interrupter, timeout: float | None) -> None:
    event = mp.Event()
    with pytest.raises(Interrupted), interrupter.during():
        event.wait(timeout)
    event.set()
    assert event.wait(0) is True


@pytest.mark.parametrize("lock_kind", ["Lock", "RLock"])
@pytest.mark.parametrize("timeout", [None, 90.0])
def test_signal_interrupts_condition_wait_and_lock_is_held_again(
    interrupter: Interrupter, lock_kind: str, timeout: float | None
) -> None:
    cond, lock = make_condition(mp, lock_kind)
    with cond:
        with pytest.raises(Interrupted), interrupter.during():
            cond.wait(timeout)
        owner = "<Lock(owner=MainProcess)>" if lock_kind == "Lock" else "<RLock(MainProcess, 1)>"
        assert repr(lock) == owner
        cond.notify()  # we hold the lock: no AssertionError
    assert lock.acquire(False) is True
    lock.release()


@pytest.mark.parametrize("timeout", [None, 90.0])
def test_signal_interrupts_barrier_wait(interrupter: Interrupter, timeout: float | None) -> None:
    barrier = mp.Barrier(2)
    with pytest.raises(Interrupted), interrupter.during():
        barrier.wait(timeout)
    # The interrupted party has left the round. (The stdlib's threading.Barrier leaves the
    # barrier intact, ferroproc breaks it as a timeout would; both are fine here.)
    assert barrier.n_waiting == 0


def test_signal_to_child_blocked_on_lock_ends_it(ctx: Any) -> None:
    # The default SIGTERM action still ends a child blocked in acquire() (no handler
    # installed by the library that would swallow it).
    lock = ctx.Lock()
    lock.acquire()
    ready = ctx.Event()
    p = start(ctx, st.signal_then_acquire, lock, ready)
    assert ready.wait(DEADLINE)
    wait_blocked(p)
    p.terminate()
    assert finish(p) == -signal.SIGTERM
    lock.release()
