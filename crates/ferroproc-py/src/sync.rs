//! Bindings of `ferroproc_core::sync`: `SemLock` (locks and semaphores), `Condition`,
//! `Event` and `Barrier`, each placed in an arena block.
//!
//! Every wait follows `blocking::wait_until`: a non-blocking attempt with the GIL held,
//! then slices of at most one tick with the GIL released and signal checks between them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use ferroproc_core::futex::FutexWaiter;
use ferroproc_core::sync::{
    Acquire, Arrival, BarrierTicket, Owner, ProcessLiveness, RawBarrier, RawCondition, RawEvent,
    RawLock, RawRLock, RawSemaphore, Release, Sleep, SyncError, SEM_VALUE_MAX,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::blocking::{deadline_after, slice_end, wait_until};
use crate::errors::OrRaise;
use crate::identity::{me_pid, me_thread};
use crate::shm::{Placed, PyArena};

/// Exception classes defined in Python.
mod py_warnings {
    pyo3::import_exception!(ferroproc.context, OwnerDiedWarning);
}

/// `SemLock.kind` of a recursive lock (the stdlib's value).
pub const RECURSIVE_MUTEX: i32 = 0;
/// `SemLock.kind` of a semaphore or a plain lock (the stdlib's value).
pub const SEMAPHORE: i32 = 1;

/// The deadline of an acquire: now for a non-blocking one.
fn acquire_deadline(block: bool, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    if block {
        deadline_after(timeout)
    } else {
        Ok(Some(Instant::now()))
    }
}

/// Which core primitive a `SemLock` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// A non-recursive lock (`Lock`, and a bounded semaphore of one): a robust `RawLock`.
    Lock,
    /// A recursive lock: `RawRLock`.
    RLock,
    /// A counting semaphore: `RawSemaphore`.
    Semaphore,
}

/// What this process knows of its own holds, as CPython's `SemLock` keeps `count` and
/// `last_tid`: how many acquires by this process are outstanding, and by which thread.
/// Only ever changed by a thread that holds (or just released) the primitive.
#[derive(Debug, Default)]
struct LocalHolds {
    count: AtomicU32,
    last_tid: AtomicU64,
}

/// A lock or semaphore in shared memory, with the stdlib's `_multiprocessing.SemLock`
/// interface.
#[pyclass(frozen, module = "ferroproc._core", name = "SemLock")]
#[derive(Debug)]
pub struct PySemLock {
    arena: Py<PyArena>,
    placed: Placed,
    flavor: Flavor,
    kind: i32,
    maxvalue: u32,
    local: LocalHolds,
    /// Whether the last acquire in this process took over from a holder that died.
    owner_died: AtomicBool,
}

impl PySemLock {
    fn lock_raw(&self) -> &RawLock {
        self.placed.get::<RawLock>()
    }

    fn rlock_raw(&self) -> &RawRLock {
        self.placed.get::<RawRLock>()
    }

    fn semaphore_raw(&self) -> &RawSemaphore {
        self.placed.get::<RawSemaphore>()
    }

    fn set_owner_died(&self, died: bool) {
        self.owner_died.store(died, Ordering::Relaxed);
    }

    /// Sets the process-local holds after the caller took the primitive `count` times.
    fn set_held(&self, count: u32) {
        self.local.count.store(count, Ordering::Relaxed);
        self.local
            .last_tid
            .store(me_thread().tid, Ordering::Relaxed);
    }

    fn flavor_of(kind: i32, value: u32, maxvalue: u32) -> PyResult<Flavor> {
        match kind {
            RECURSIVE_MUTEX => Ok(Flavor::RLock),
            // A lock is a semaphore of one; keeping the holder's pid makes it robust.
            SEMAPHORE if value == 1 && maxvalue == 1 => Ok(Flavor::Lock),
            SEMAPHORE => Ok(Flavor::Semaphore),
            _ => Err(PyValueError::new_err(format!(
                "unknown SemLock kind {kind}"
            ))),
        }
    }

    /// Records a successful acquire in the process-local holds.
    ///
    /// Called with the GIL held, which orders it against every other update of the
    /// process-local holds (as the GIL protects CPython's `SemLock` counters), so plain
    /// loads and stores suffice: no atomic read-modify-write on the hot path.
    fn note_acquired(&self, me: Owner, outcome: Acquire) {
        let count = self.local.count.load(Ordering::Relaxed);
        self.local
            .count
            .store(count.saturating_add(1), Ordering::Relaxed);
        self.local.last_tid.store(me.tid, Ordering::Relaxed);
        let died = outcome.owner_died();
        if died || self.owner_died.load(Ordering::Relaxed) {
            self.set_owner_died(died);
        }
    }

    /// Tells the caller, with an `OwnerDiedWarning`, that the lock was taken over from a
    /// holder that died. If warnings are errors, the lock is released before raising:
    /// the caller will not enter its critical section, so it must not keep the lock.
    fn warn_owner_died(&self, py: Python<'_>) -> PyResult<()> {
        let category = py.get_type::<py_warnings::OwnerDiedWarning>();
        let warned = PyErr::warn(
            py,
            &category,
            c"a lock was acquired after its previous holder died while holding it; \
              the state it protects may be inconsistent",
            1,
        );
        if warned.is_err() {
            let _ = self.release();
        }
        warned
    }

    /// One blocking attempt of at most `until`; `Ok(None)` if it timed out.
    fn acquire_slice(&self, until: Instant) -> Result<Option<Acquire>, SyncError> {
        let waiter = FutexWaiter;
        let outcome = match self.flavor {
            Flavor::Lock => {
                self.lock_raw()
                    .acquire(&waiter, &ProcessLiveness, me_pid(), Some(until))?
            }
            Flavor::RLock => {
                self.rlock_raw()
                    .acquire(&waiter, &ProcessLiveness, me_thread(), Some(until))?
            }
            Flavor::Semaphore => {
                if self.semaphore_raw().acquire(&waiter, Some(until))? {
                    Acquire::Acquired
                } else {
                    Acquire::TimedOut
                }
            }
        };
        Ok(outcome.is_acquired().then_some(outcome))
    }

    /// The attempt that needs no system call, made with the GIL held.
    fn try_fast(&self, me: Owner) -> PyResult<bool> {
        match self.flavor {
            Flavor::Lock => self.lock_raw().try_acquire(me.pid).or_raise(),
            Flavor::RLock => self.rlock_raw().try_acquire(me).or_raise(),
            Flavor::Semaphore => Ok(self.semaphore_raw().try_acquire()),
        }
    }

    /// Whether the calling thread holds this lock (for conditions).
    pub fn is_mine(&self) -> bool {
        match self.flavor {
            Flavor::RLock => self.rlock_raw().is_owned_by(me_thread()),
            Flavor::Lock | Flavor::Semaphore => {
                self.local.count.load(Ordering::Relaxed) > 0
                    && self.local.last_tid.load(Ordering::Relaxed) == me_thread().tid
            }
        }
    }
}

#[pymethods]
impl PySemLock {
    /// Bytes an arena block needs for any kind of `SemLock`.
    #[classattr]
    const SIZE: usize = 256;

    /// A new lock or semaphore in a block of `arena`.
    #[new]
    fn new(arena: Bound<'_, PyArena>, kind: i32, value: u32, maxvalue: u32) -> PyResult<Self> {
        let flavor = Self::flavor_of(kind, value, maxvalue)?;
        let handle = arena.clone().unbind();
        let arena = arena.get().shared();
        let placed = match flavor {
            Flavor::Lock => Placed::allocate::<RawLock>(arena)?,
            Flavor::RLock => Placed::allocate::<RawRLock>(arena)?,
            Flavor::Semaphore => {
                let placed = Placed::allocate::<RawSemaphore>(arena)?;
                let max = (maxvalue < SEM_VALUE_MAX).then_some(maxvalue);
                placed.get::<RawSemaphore>().init(value, max).or_raise()?;
                placed
            }
        };
        Ok(Self::wrap(handle, placed, flavor, kind, maxvalue))
    }

    /// The `SemLock` another process placed at `offset` of `arena`.
    #[staticmethod]
    fn rebuild(
        arena: Bound<'_, PyArena>,
        offset: usize,
        kind: i32,
        maxvalue: u32,
    ) -> PyResult<Self> {
        let handle = arena.clone().unbind();
        let arena = arena.get().shared();
        let flavor = Self::flavor_of(kind, maxvalue.min(1), maxvalue)?;
        let placed = match flavor {
            Flavor::Lock => Placed::rebuild::<RawLock>(arena, offset)?,
            Flavor::RLock => Placed::rebuild::<RawRLock>(arena, offset)?,
            Flavor::Semaphore => Placed::rebuild::<RawSemaphore>(arena, offset)?,
        };
        Ok(Self::wrap(handle, placed, flavor, kind, maxvalue))
    }

    /// Acquires; returns `False` if `block` is false or `timeout` passes first.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let me = me_thread();
        if self.try_fast(me)? {
            self.note_acquired(me, Acquire::Acquired);
            return Ok(true);
        }
        let deadline = acquire_deadline(block, timeout)?;
        match wait_until(py, deadline, |until| self.acquire_slice(until))? {
            Some(outcome) => {
                self.note_acquired(me, outcome);
                if outcome.owner_died() {
                    self.warn_owner_died(py)?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `acquire()` with no arguments: blocks until acquired and returns `True`.
    ///
    /// Under the abi3 (3.9) build a method with optional arguments is called through an
    /// argument tuple; one without any takes CPython's fast no-argument path, so `with`
    /// blocks and locked `Value` accesses go through here.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    /// Releases (raises `ValueError` if released too many times, `AssertionError` for a
    /// recursive lock this thread does not own).
    fn release(&self) -> PyResult<()> {
        let waiter = FutexWaiter;
        match self.flavor {
            Flavor::Lock => self.lock_raw().release(&waiter),
            Flavor::RLock => self.rlock_raw().release(&waiter, me_thread()),
            Flavor::Semaphore => self.semaphore_raw().release(&waiter, 1),
        }
        .or_raise()?;
        // Only a holder releases, so nothing races this read-modify-write in-process
        // except another holder of a semaphore: saturate rather than wrap.
        let count = self.local.count.load(Ordering::Relaxed);
        self.local
            .count
            .store(count.saturating_sub(1), Ordering::Relaxed);
        Ok(())
    }

    /// How many acquires by this process are outstanding (an `RLock`'s recursion level
    /// when this thread owns it).
    fn _count(&self) -> u32 {
        match self.flavor {
            Flavor::RLock if self.rlock_raw().is_owned_by(me_thread()) => self.rlock_raw().count(),
            _ => self.local.count.load(Ordering::Relaxed),
        }
    }

    /// Whether the calling thread holds it.
    fn _is_mine(&self) -> bool {
        self.is_mine()
    }

    /// The semaphore's value; for locks, 1 when free and 0 when held.
    fn _get_value(&self) -> u32 {
        match self.flavor {
            Flavor::Lock => u32::from(!self.lock_raw().is_locked()),
            Flavor::RLock => u32::from(!self.rlock_raw().is_locked()),
            Flavor::Semaphore => self.semaphore_raw().get_value(),
        }
    }

    /// Whether the value is zero.
    fn _is_zero(&self) -> bool {
        self._get_value() == 0
    }

    /// In a forked child: this process holds nothing, whatever its parent held.
    fn _after_fork(&self) {
        self.local.count.store(0, Ordering::Relaxed);
    }

    /// Records that another process may use this object (it is being pickled for one).
    fn _mark_shared(&self) {
        self.placed.mark_shared();
    }

    /// Whether the last acquire in this process took over from a holder that died.
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died.load(Ordering::Relaxed)
    }

    /// The stdlib's kind: `RECURSIVE_MUTEX` or `SEMAPHORE`.
    #[getter]
    fn kind(&self) -> i32 {
        self.kind
    }

    /// The largest value a release may reach.
    #[getter]
    fn maxvalue(&self) -> u32 {
        self.maxvalue
    }

    /// Where the object sits in its arena (with the arena, its name in every process).
    #[getter]
    fn offset(&self) -> usize {
        self.placed.offset()
    }

    /// The arena the object lives in.
    #[getter]
    fn arena(&self, py: Python<'_>) -> Py<PyArena> {
        self.arena.clone_ref(py)
    }

    /// The pid of the process holding the lock, if held (locks only).
    #[getter]
    fn owner_pid(&self) -> Option<u32> {
        match self.flavor {
            Flavor::Lock => self.lock_raw().owner_pid(),
            Flavor::RLock => self.rlock_raw().owner_pid(),
            Flavor::Semaphore => None,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<SemLock kind={} value={} offset={}>",
            self.kind,
            self._get_value(),
            self.offset()
        )
    }
}

impl PySemLock {
    fn wrap(arena: Py<PyArena>, placed: Placed, flavor: Flavor, kind: i32, maxvalue: u32) -> Self {
        Self {
            arena,
            placed,
            flavor,
            kind,
            maxvalue,
            local: LocalHolds::default(),
            owner_died: AtomicBool::new(false),
        }
    }
}

/// A condition variable in shared memory, used with a `SemLock` lock.
#[pyclass(frozen, module = "ferroproc._core", name = "Condition")]
#[derive(Debug)]
pub struct PyCondition {
    arena: Py<PyArena>,
    placed: Placed,
}

type SharedCondition = RawCondition;

#[pymethods]
impl PyCondition {
    /// Bytes an arena block needs for a condition.
    #[classattr]
    const SIZE: usize = std::mem::size_of::<SharedCondition>() + 64;

    #[new]
    fn new(arena: Bound<'_, PyArena>) -> PyResult<Self> {
        let placed = Placed::allocate::<SharedCondition>(arena.get().shared())?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
        })
    }

    /// The condition another process placed at `offset` of `arena`.
    #[staticmethod]
    fn rebuild(arena: Bound<'_, PyArena>, offset: usize) -> PyResult<Self> {
        let placed = Placed::rebuild::<SharedCondition>(arena.get().shared(), offset)?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
        })
    }

    /// Releases `lock` (held by the caller), waits until notified or `timeout` passes,
    /// takes `lock` again; returns whether it was notified. A signal handler that raises
    /// interrupts the wait, and the exception propagates once the lock is held again.
    #[pyo3(signature = (lock, timeout=None))]
    fn wait(&self, py: Python<'_>, lock: &PySemLock, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline_after(timeout)?;
        match lock.flavor {
            Flavor::Lock => self.wait_with(py, lock, lock.lock_raw(), me_pid(), deadline),
            Flavor::RLock => self.wait_with(py, lock, lock.rlock_raw(), me_thread(), deadline),
            Flavor::Semaphore => Err(not_a_lock()),
        }
    }

    /// Wakes at most `n` of the processes and threads waiting now.
    #[pyo3(signature = (lock, n=1))]
    fn notify(&self, lock: &PySemLock, n: u32) -> PyResult<u32> {
        let cond = self.placed.get::<SharedCondition>();
        let (waiter, liveness) = (FutexWaiter, ProcessLiveness);
        match lock.flavor {
            Flavor::Lock => cond.notify(lock.lock_raw(), me_pid(), &waiter, &liveness, n),
            Flavor::RLock => cond.notify(lock.rlock_raw(), me_thread(), &waiter, &liveness, n),
            Flavor::Semaphore => return Err(not_a_lock()),
        }
        .or_raise()
    }

    /// Wakes every process and thread waiting now.
    fn notify_all(&self, lock: &PySemLock) -> PyResult<u32> {
        let cond = self.placed.get::<SharedCondition>();
        let waiter = FutexWaiter;
        match lock.flavor {
            Flavor::Lock => cond.notify_all(lock.lock_raw(), me_pid(), &waiter),
            Flavor::RLock => cond.notify_all(lock.rlock_raw(), me_thread(), &waiter),
            Flavor::Semaphore => return Err(not_a_lock()),
        }
        .or_raise()
    }

    /// How many are waiting (a snapshot).
    fn waiting(&self) -> usize {
        self.placed.get::<SharedCondition>().waiting()
    }

    fn _mark_shared(&self) {
        self.placed.mark_shared();
    }

    #[getter]
    fn offset(&self) -> usize {
        self.placed.offset()
    }

    /// The arena the object lives in.
    #[getter]
    fn arena(&self, py: Python<'_>) -> Py<PyArena> {
        self.arena.clone_ref(py)
    }
}

fn not_a_lock() -> PyErr {
    PyTypeError::new_err("a condition needs a Lock or an RLock, not a semaphore")
}

impl PyCondition {
    fn wait_with<L>(
        &self,
        py: Python<'_>,
        semlock: &PySemLock,
        lock: &L,
        owner: L::Owner,
        deadline: Option<Instant>,
    ) -> PyResult<bool>
    where
        L: ferroproc_core::sync::ConditionLock + Sync,
        L::Owner: Send,
        L::Saved: Send,
    {
        let cond = self.placed.get::<SharedCondition>();
        let (waiter, liveness) = (FutexWaiter, ProcessLiveness);
        let registered = cond
            .begin_wait(lock, owner, &waiter, &liveness)
            .or_raise()?;
        let held_before = semlock.local.count.swap(0, Ordering::Relaxed);
        // Sleep in slices; a signal handler that raises ends the wait early, but the
        // exception waits until the lock is held again, as the caller expects.
        let mut pending: Option<PyErr> = None;
        loop {
            let until = slice_end(deadline);
            match py.detach(|| cond.sleep(&registered, &waiter, Some(until))) {
                Sleep::Notified => break,
                Sleep::TimedOut | Sleep::Interrupted => {}
            }
            if let Err(err) = py.check_signals() {
                pending = Some(err);
                break;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
        }
        let (notified, saved) = cond.end_wait(registered);
        let outcome = loop {
            let until = slice_end(None);
            match py.detach(|| lock.reacquire(&waiter, &liveness, owner, saved, Some(until))) {
                Ok(Acquire::TimedOut) | Err(SyncError::Interrupted) => {
                    if let Err(err) = py.check_signals() {
                        pending.get_or_insert(err);
                    }
                }
                Ok(outcome) => break outcome,
                Err(other) => return Err(other).or_raise(),
            }
        };
        semlock.set_held(held_before.max(1));
        semlock.set_owner_died(outcome.owner_died());
        if outcome.owner_died() {
            // The lock must stay held: the caller of wait() owns it on every return.
            let category = py.get_type::<py_warnings::OwnerDiedWarning>();
            let warned = PyErr::warn(
                py,
                &category,
                c"a condition's lock was reacquired after its previous holder died while \
                  holding it; the state it protects may be inconsistent",
                1,
            );
            if let Err(err) = warned {
                pending.get_or_insert(err);
            }
        }
        match pending {
            Some(err) => Err(err),
            None => Ok(notified),
        }
    }
}

/// A process-shared event flag.
#[pyclass(frozen, module = "ferroproc._core", name = "Event")]
#[derive(Debug)]
pub struct PyEvent {
    arena: Py<PyArena>,
    placed: Placed,
}

#[pymethods]
impl PyEvent {
    /// Bytes an arena block needs for an event.
    #[classattr]
    const SIZE: usize = std::mem::size_of::<RawEvent>() + 64;

    #[new]
    fn new(arena: Bound<'_, PyArena>) -> PyResult<Self> {
        let placed = Placed::allocate::<RawEvent>(arena.get().shared())?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
        })
    }

    /// The event another process placed at `offset` of `arena`.
    #[staticmethod]
    fn rebuild(arena: Bound<'_, PyArena>, offset: usize) -> PyResult<Self> {
        let placed = Placed::rebuild::<RawEvent>(arena.get().shared(), offset)?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
        })
    }

    fn is_set(&self) -> bool {
        self.placed.get::<RawEvent>().is_set()
    }

    fn set(&self) {
        self.placed.get::<RawEvent>().set(&FutexWaiter);
    }

    fn clear(&self) {
        self.placed.get::<RawEvent>().clear();
    }

    /// Waits until set or `timeout` passes; returns the flag.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let event = self.placed.get::<RawEvent>();
        if event.is_set() {
            return Ok(true);
        }
        let deadline = deadline_after(timeout)?;
        let set = wait_until(py, deadline, |until| {
            Ok::<_, SyncError>(event.wait(&FutexWaiter, Some(until))?.then_some(()))
        })?;
        Ok(set.is_some())
    }

    fn _mark_shared(&self) {
        self.placed.mark_shared();
    }

    #[getter]
    fn offset(&self) -> usize {
        self.placed.offset()
    }

    /// The arena the object lives in.
    #[getter]
    fn arena(&self, py: Python<'_>) -> Py<PyArena> {
        self.arena.clone_ref(py)
    }
}

/// A process-shared barrier.
#[pyclass(frozen, module = "ferroproc._core", name = "Barrier")]
#[derive(Debug)]
pub struct PyBarrier {
    arena: Py<PyArena>,
    placed: Placed,
}

/// A party's place in a round of a barrier.
#[pyclass(frozen, module = "ferroproc._core", name = "BarrierTicket")]
#[derive(Debug)]
pub struct PyBarrierTicket {
    ticket: BarrierTicket,
    completes: bool,
}

#[pymethods]
impl PyBarrierTicket {
    /// The arrival index: distinct for each party of a round.
    #[getter]
    fn index(&self) -> u32 {
        self.ticket.index()
    }

    /// Whether this party completes the round (and runs the action).
    #[getter]
    fn completes(&self) -> bool {
        self.completes
    }
}

#[pymethods]
impl PyBarrier {
    /// Bytes an arena block needs for a barrier.
    #[classattr]
    const SIZE: usize = std::mem::size_of::<RawBarrier>() + 64;

    #[new]
    fn new(arena: Bound<'_, PyArena>, parties: u32) -> PyResult<Self> {
        let placed = Placed::allocate::<RawBarrier>(arena.get().shared())?;
        placed.get::<RawBarrier>().init(parties).or_raise()?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
        })
    }

    /// The barrier another process placed at `offset` of `arena`.
    #[staticmethod]
    fn rebuild(arena: Bound<'_, PyArena>, offset: usize) -> PyResult<Self> {
        let placed = Placed::rebuild::<RawBarrier>(arena.get().shared(), offset)?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
        })
    }

    /// Counts the caller into the current round, waiting up to `timeout` if the previous
    /// round is still being released.
    #[pyo3(signature = (timeout=None))]
    fn arrive(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyBarrierTicket> {
        let barrier = self.placed.get::<RawBarrier>();
        let deadline = deadline_after(timeout)?;
        let arrival = loop {
            match py.detach(|| barrier.arrive(&FutexWaiter, &ProcessLiveness, me_pid(), deadline)) {
                Err(SyncError::Interrupted) => py.check_signals()?,
                other => break other.or_raise()?,
            }
        };
        Ok(match arrival {
            Arrival::Waiting(ticket) => PyBarrierTicket {
                ticket,
                completes: false,
            },
            Arrival::Last(ticket) => PyBarrierTicket {
                ticket,
                completes: true,
            },
        })
    }

    /// Waits until the ticket's round completes; a timeout breaks the barrier.
    #[pyo3(signature = (ticket, timeout=None))]
    fn await_release(
        &self,
        py: Python<'_>,
        ticket: &PyBarrierTicket,
        timeout: Option<f64>,
    ) -> PyResult<u32> {
        let barrier = self.placed.get::<RawBarrier>();
        let deadline = deadline_after(timeout)?;
        let (waiter, liveness, me) = (FutexWaiter, ProcessLiveness, me_pid());
        loop {
            let until = slice_end(deadline);
            let release = py
                .detach(|| {
                    barrier.await_release(ticket.ticket, &waiter, &liveness, me, Some(until))
                })
                .or_raise()?;
            match release {
                Release::Passed => return Ok(ticket.ticket.index()),
                Release::TimedOut | Release::Interrupted => {}
            }
            if let Err(err) = py.check_signals() {
                // Leaving the round breaks it for the others, as a timeout does.
                let _ = barrier.abandon(ticket.ticket, &waiter, &liveness, me);
                return Err(err);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return barrier
                    .abandon(ticket.ticket, &waiter, &liveness, me)
                    .or_raise();
            }
        }
    }

    /// Releases the round after the last party ran the action.
    fn complete(&self, ticket: &PyBarrierTicket) -> PyResult<u32> {
        self.placed
            .get::<RawBarrier>()
            .complete(ticket.ticket, &FutexWaiter, &ProcessLiveness, me_pid())
            .or_raise()
    }

    /// Breaks the barrier (the action raised).
    fn break_barrier(&self) -> PyResult<()> {
        self.placed
            .get::<RawBarrier>()
            .break_barrier(&FutexWaiter, &ProcessLiveness, me_pid())
            .or_raise()
    }

    fn abort(&self) -> PyResult<()> {
        self.placed
            .get::<RawBarrier>()
            .abort(&FutexWaiter, &ProcessLiveness, me_pid())
            .or_raise()
    }

    fn reset(&self) -> PyResult<()> {
        self.placed
            .get::<RawBarrier>()
            .reset(&FutexWaiter, &ProcessLiveness, me_pid())
            .or_raise()
    }

    #[getter]
    fn parties(&self) -> u32 {
        self.placed.get::<RawBarrier>().parties()
    }

    #[getter]
    fn n_waiting(&self) -> u32 {
        self.placed.get::<RawBarrier>().n_waiting()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.placed.get::<RawBarrier>().broken()
    }

    fn _mark_shared(&self) {
        self.placed.mark_shared();
    }

    #[getter]
    fn offset(&self) -> usize {
        self.placed.offset()
    }

    /// The arena the object lives in.
    #[getter]
    fn arena(&self, py: Python<'_>) -> Py<PyArena> {
        self.arena.clone_ref(py)
    }
}
