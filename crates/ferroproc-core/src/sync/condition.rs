//! A process-shared condition variable over any of the crate's locks, whose waiters
//! survive the death of other waiters.
//!
//! # Algorithm
//!
//! A *waiter table* with one futex word per waiter: the specific-notification scheme of
//! Cargill's "Specific Notification for Java Thread Synchronization" (1996) and of
//! CPython's `threading.Condition`, which keeps a FIFO of per-waiter locks and releases
//! exactly the ones it notifies. Here the FIFO is a fixed table of [`SLOTS`](RawCondition)
//! slots in shared memory, ordered by tickets, so that nothing lives on a heap.
//!
//! - `wait` runs with the condition's lock held: it draws the next ticket, claims a free
//!   slot (`FREE -> WAITING(pid)`), releases the lock fully (every recursion level of an
//!   `RLock`), and sleeps on its own slot's word until that word leaves `WAITING`.
//! - `notify(n)` also runs with the lock held, so it sees exactly the waiters registered
//!   before it (a thread that starts waiting afterwards needs the lock to register, and
//!   cannot consume the notification). It moves the `n` oldest `WAITING` slots to
//!   `NOTIFIED` with a compare-and-swap each and wakes each slot's word, one waiter per
//!   word: no thundering herd, and a waiter only ever returns `true` when its own slot was
//!   notified (no spurious returns visible to the caller).
//! - A waiter whose deadline passes leaves with a compare-and-swap `WAITING -> FREE`. That
//!   races with the notifier's `WAITING -> NOTIFIED` on the same word, and exactly one of
//!   them wins: either the notification went to somebody else (the notifier's scan moves
//!   on to the next slot), or the waiter consumed it and reports `true`, as
//!   `threading.Condition.wait` does when a notification and a timeout cross.
//! - Either way the waiter reacquires the lock (restoring the recursion level) before it
//!   returns, also on timeout.
//!
//! # Robustness
//!
//! The owner's pid is part of the slot word, written by the same compare-and-swap that
//! claims the slot, so there is no moment when a slot is taken but its owner unknown.
//! `notify` asks [`Liveness`] about each waiter it picks (other than the caller's own
//! process): a waiter that was `SIGKILL`ed while waiting is not counted as woken, its slot
//! is freed, and the notification goes to the next live waiter. A waiter that dies *after*
//! it was notified has spent that notification, as a thread that returned from `wait` and
//! then died would have; its slot is reclaimed when the table fills up. A notifier that
//! dies with the lock held is the lock's business (its owner-death recovery); every step
//! of `notify` leaves the table consistent on its own.
//!
//! Limits: at most [`DEFAULT_SLOTS`] threads (of all processes together) wait on one
//! condition at a time by default; one more gets [`SyncError::Invalid`] once dead
//! waiters' slots have been reclaimed. Pids must be below 2^30 (Linux caps them at 2^22),
//! and liveness is judged by pid, so all processes must share a pid namespace. Tickets
//! wrap after 2^32 waits; a waiter still sleeping after that many later waits loses its
//! place in the FIFO order, never its notification.

use std::time::Instant;

use super::{Acquire, Liveness, Owner, RawLock, RawRLock, SyncError};
use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{AtomicU32, Ordering};
use crate::shm::ShmSafe;

/// Waiter slots in a [`RawCondition`] unless chosen otherwise: threads of all processes
/// together that may wait on one condition at the same time.
pub const DEFAULT_SLOTS: usize = 128;

/// Slot tag: nobody uses the slot (the whole word is 0).
const FREE: u32 = 0;
/// Slot tag: the owner is waiting to be notified.
const WAITING: u32 = 1;
/// Slot tag: the owner was notified and has not left yet.
const NOTIFIED: u32 = 2;
/// Bits of a slot word that hold the tag.
const TAG_MASK: u32 = 0b11;
/// How far the owner's pid is shifted left in a slot word.
const PID_SHIFT: u32 = 2;
/// The first pid that does not fit into a slot word.
const PID_LIMIT: u32 = 1 << (32 - PID_SHIFT);

/// A slot word saying `tag` for the process `pid`.
fn slot_word(pid: u32, tag: u32) -> u32 {
    (pid << PID_SHIFT) | tag
}

/// The tag of a slot word.
fn tag_of(word: u32) -> u32 {
    word & TAG_MASK
}

/// The owner's pid in a slot word.
fn pid_of(word: u32) -> u32 {
    word >> PID_SHIFT
}

/// The lock a [`RawCondition`] is used with, as the condition needs to see it.
///
/// Implemented for [`RawLock`] and [`RawRLock`]; models may implement it for toy locks.
pub trait ConditionLock {
    /// Who the caller is, as the lock names its owner (a pid, or a pid and a thread).
    /// Plain data, so a binding can carry it into a wait on another thread.
    type Owner: Copy + Send + Sync;
    /// What [`release_for_wait`](Self::release_for_wait) hands back for
    /// [`reacquire`](Self::reacquire) to restore (an `RLock`'s recursion level). Plain
    /// data, like `Owner`.
    type Saved: Copy + Send + Sync;

    /// The process id inside `owner`: the condition records it with each waiter so that a
    /// waiter whose process died can be skipped.
    fn owner_pid(owner: Self::Owner) -> u32;

    /// Whether `owner` holds the lock now.
    fn is_held_by(&self, owner: Self::Owner) -> bool;

    /// Releases the lock completely (all recursion levels), which `owner` holds.
    ///
    /// # Errors
    ///
    /// [`SyncError::NotOwner`] if `owner` does not hold it.
    fn release_for_wait<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        owner: Self::Owner,
    ) -> Result<Self::Saved, SyncError>;

    /// Acquires the lock again for `owner`, restoring what `saved` describes, until
    /// `deadline` (`None`: no deadline). [`Acquire::AcquiredOwnerDied`] says the previous
    /// holder died holding the lock and it was taken over.
    ///
    /// # Errors
    ///
    /// [`SyncError::Interrupted`] if a signal arrived (the lock is not held; the caller
    /// retries), or an error from the lock.
    fn reacquire<W: Waiter + ?Sized, V: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &V,
        owner: Self::Owner,
        saved: Self::Saved,
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError>;
}

/// A `Lock` knows its holder by process only, so any thread of the holding process passes
/// the ownership check (the Python layer adds the thread check `SemLock` makes).
impl ConditionLock for RawLock {
    type Owner = u32;
    type Saved = ();

    fn owner_pid(owner: u32) -> u32 {
        owner
    }

    fn is_held_by(&self, owner: u32) -> bool {
        self.owner_pid() == Some(owner)
    }

    fn release_for_wait<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        owner: u32,
    ) -> Result<(), SyncError> {
        if !self.is_held_by(owner) {
            return Err(SyncError::NotOwner);
        }
        self.release(waiter).map_err(|_| SyncError::NotOwner)
    }

    fn reacquire<W: Waiter + ?Sized, V: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &V,
        owner: u32,
        (): (),
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError> {
        self.acquire(waiter, liveness, owner, deadline)
    }
}

/// An `RLock` is released completely for the wait and its recursion count restored after.
impl ConditionLock for RawRLock {
    type Owner = Owner;
    type Saved = u32;

    fn owner_pid(owner: Owner) -> u32 {
        owner.pid
    }

    fn is_held_by(&self, owner: Owner) -> bool {
        self.is_owned_by(owner)
    }

    fn release_for_wait<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        owner: Owner,
    ) -> Result<u32, SyncError> {
        self.release_all(waiter, owner)
    }

    fn reacquire<W: Waiter + ?Sized, V: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &V,
        owner: Owner,
        count: u32,
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError> {
        self.acquire_restore(waiter, liveness, owner, count, deadline)
    }
}

/// One waiter's place in the table.
#[repr(C)]
#[derive(Debug)]
struct Slot {
    /// The futex word the owner sleeps on. Bits 0..=1: the tag (`0` free, `1` waiting,
    /// `2` notified); bits 2..=31: the owner's pid (zero when free).
    word: AtomicU32,
    /// The ticket drawn when the slot was claimed (FIFO order of `notify`); written by the
    /// lock holder before it publishes the slot as waiting, read by lock holders only.
    ticket: AtomicU32,
}

/// The shared state of a condition variable: a table of waiter slots. It lives in shared
/// memory next to its lock and is valid when zeroed.
///
/// `SLOTS` is how many threads may wait at once; [`DEFAULT_SLOTS`] unless a model wants a
/// small table. Every operation that registers or notifies must be called with the lock
/// held, and says so by taking the lock as a parameter.
#[repr(C)]
#[derive(Debug)]
pub struct RawCondition<const SLOTS: usize = DEFAULT_SLOTS> {
    /// How many slots are not free, or more (a slot is freed before this is decremented):
    /// lets `notify` stop scanning once it has seen them all, and return at once when
    /// nobody waits. Incremented by the lock holder, decremented by whoever frees a slot.
    occupied: AtomicU32,
    /// The ticket the next waiter draws (wrapping); read and written by the lock holder.
    next_ticket: AtomicU32,
    /// The waiter table.
    slots: [Slot; SLOTS],
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `RawCondition` is `#[repr(C)]` and holds only `AtomicU32`s from
// `crate::primitive` (directly and through the `#[repr(C)]` `Slot`), so it has no pointers,
// descriptors or heap data, every process agrees on its layout, and all zeroes is its
// initial state (no waiters, ticket 0).
unsafe impl<const SLOTS: usize> ShmSafe for RawCondition<SLOTS> {}

/// A registered wait: the caller is in the waiter table and no longer holds the lock.
/// Made by [`RawCondition::begin_wait`], ended by [`RawCondition::end_wait`].
///
/// It is plain data (no borrow) so that a binding can carry it across its own
/// signal-checking loop; dropping it without [`end_wait`](RawCondition::end_wait) leaks
/// the slot until this process exits.
#[must_use = "a registered wait must be ended with `end_wait`, or its slot leaks"]
#[derive(Debug)]
pub struct CondWait<S> {
    slot: usize,
    word: u32,
    saved: S,
}

/// Why [`RawCondition::sleep`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sleep {
    /// This waiter was notified.
    Notified,
    /// The deadline passed first (a notification may still cross it: see
    /// [`RawCondition::end_wait`]).
    TimedOut,
    /// A signal arrived; the wait is still registered.
    Interrupted,
}

impl<const SLOTS: usize> Default for RawCondition<SLOTS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SLOTS: usize> RawCondition<SLOTS> {
    /// A condition with nobody waiting, for heap use and models; in shared memory a
    /// zeroed `RawCondition` is the same thing.
    pub fn new() -> Self {
        Self {
            occupied: AtomicU32::new(0),
            next_ticket: AtomicU32::new(0),
            slots: std::array::from_fn(|_| Slot {
                word: AtomicU32::new(FREE),
                ticket: AtomicU32::new(0),
            }),
        }
    }

    /// How many threads are waiting and not yet notified: exact for the lock holder (only
    /// it can add waiters or notify them; a waiter may still leave on a timeout), a
    /// snapshot for anyone else. For diagnostics and tests.
    pub fn waiting(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| tag_of(slot.word.load(Ordering::Acquire)) == WAITING)
            .count()
    }

    /// Waits until notified or until `deadline` passes (`None`: no deadline), like
    /// `threading.Condition.wait`. The caller must hold `lock`; it is released completely
    /// while waiting and held again (at the same recursion level) whenever this returns,
    /// except when it returns `NotOwner` or `Invalid` (then it was never released).
    ///
    /// Returns `true` if notified, `false` if the deadline passed first.
    ///
    /// # Errors
    ///
    /// - [`SyncError::NotOwner`]: the caller does not hold `lock`.
    /// - [`SyncError::Invalid`]: the waiter table is full, or the pid does not fit.
    /// - [`SyncError::Interrupted`]: a signal arrived before any notification; the caller
    ///   holds the lock again and is no longer waiting (no notification can have been
    ///   missed, since notifying takes the lock), so it may run handlers and wait again.
    /// - A system error from reacquiring the lock.
    pub fn wait<L: ConditionLock, W: Waiter + ?Sized, V: Liveness + ?Sized>(
        &self,
        lock: &L,
        owner: L::Owner,
        waiter: &W,
        liveness: &V,
        deadline: Option<Instant>,
    ) -> Result<bool, SyncError> {
        let registered = self.begin_wait(lock, owner, waiter, liveness)?;
        let slept = self.sleep(&registered, waiter, deadline);
        let (notified, saved) = self.end_wait(registered);
        loop {
            match lock.reacquire(waiter, liveness, owner, saved, None) {
                Ok(_) => break,
                Err(SyncError::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        if slept == Sleep::Interrupted && !notified {
            return Err(SyncError::Interrupted);
        }
        Ok(notified)
    }

    /// The first step of [`wait`](Self::wait): registers the caller as a waiter and
    /// releases `lock` completely. Follow with [`sleep`](Self::sleep) (as many times as
    /// the caller likes, e.g. in slices between signal checks), then
    /// [`end_wait`](Self::end_wait), then reacquire the lock with the saved state.
    ///
    /// # Errors
    ///
    /// [`SyncError::NotOwner`] if the caller does not hold `lock`; [`SyncError::Invalid`]
    /// if the table is full of live waiters or the pid does not fit. The lock is still
    /// held after an error.
    pub fn begin_wait<L: ConditionLock, W: Waiter + ?Sized, V: Liveness + ?Sized>(
        &self,
        lock: &L,
        owner: L::Owner,
        waiter: &W,
        liveness: &V,
    ) -> Result<CondWait<L::Saved>, SyncError> {
        if !lock.is_held_by(owner) {
            return Err(SyncError::NotOwner);
        }
        let pid = L::owner_pid(owner);
        if pid == 0 || pid >= PID_LIMIT {
            return Err(SyncError::Invalid(
                "process id out of range for a condition",
            ));
        }
        let slot = match self.claim(pid) {
            Some(slot) => slot,
            None => {
                self.reclaim_dead(pid, liveness);
                self.claim(pid).ok_or(SyncError::Invalid(
                    "too many threads waiting on one condition at once",
                ))?
            }
        };
        match lock.release_for_wait(waiter, owner) {
            Ok(saved) => Ok(CondWait {
                slot,
                word: slot_word(pid, WAITING),
                saved,
            }),
            Err(e) => {
                // Still the lock holder, so nobody can have notified the slot.
                self.free(slot, slot_word(pid, WAITING));
                Err(e)
            }
        }
    }

    /// Sleeps until this waiter is notified, `deadline` passes or a signal arrives. The
    /// lock is not held. Returns at once if already notified.
    pub fn sleep<S, W: Waiter + ?Sized>(
        &self,
        registered: &CondWait<S>,
        waiter: &W,
        deadline: Option<Instant>,
    ) -> Sleep {
        let word = &self.slots[registered.slot].word;
        loop {
            let now = word.load(Ordering::Acquire);
            if now != registered.word {
                // Notified (or, impossibly for a live owner, reclaimed): either way this
                // waiter's turn is over.
                return Sleep::Notified;
            }
            match waiter.wait(word, now, deadline) {
                WaitOutcome::Woken => {}
                WaitOutcome::TimedOut => return Sleep::TimedOut,
                WaitOutcome::Interrupted => return Sleep::Interrupted,
            }
        }
    }

    /// Leaves the waiter table; returns whether this waiter was notified (also when a
    /// notification crossed a timeout: it is consumed, not lost) and the lock state to
    /// restore. The caller then reacquires the lock with
    /// [`ConditionLock::reacquire`].
    pub fn end_wait<S>(&self, registered: CondWait<S>) -> (bool, S) {
        let word = &self.slots[registered.slot].word;
        let pid = pid_of(registered.word);
        let notified =
            match word.compare_exchange(registered.word, FREE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.occupied.fetch_sub(1, Ordering::AcqRel);
                    false
                }
                Err(now) if now == slot_word(pid, NOTIFIED) => {
                    self.free(registered.slot, now);
                    true
                }
                // Reclaimed by a notifier that took this process for dead: impossible while
                // it runs, unless pids are not shared (see the module docs).
                Err(_) => false,
            };
        (notified, registered.saved)
    }

    /// Wakes at most `n` of the threads waiting now, oldest first, like
    /// `threading.Condition.notify(n)`; returns how many were notified. Waiters in
    /// processes that have died are skipped (and their slots freed). The caller must hold
    /// `lock`.
    ///
    /// # Errors
    ///
    /// [`SyncError::NotOwner`] if the caller does not hold `lock`.
    pub fn notify<L: ConditionLock, W: Waiter + ?Sized, V: Liveness + ?Sized>(
        &self,
        lock: &L,
        owner: L::Owner,
        waiter: &W,
        liveness: &V,
        n: u32,
    ) -> Result<u32, SyncError> {
        if !lock.is_held_by(owner) {
            return Err(SyncError::NotOwner);
        }
        let me = L::owner_pid(owner);
        let mut notified = 0;
        while notified < n {
            let Some((index, word)) = self.oldest_waiting() else {
                break;
            };
            let pid = pid_of(word);
            if pid != me && !liveness.is_alive(pid) {
                // Died while waiting: it will never consume a notification.
                if self.slots[index]
                    .word
                    .compare_exchange(word, FREE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.occupied.fetch_sub(1, Ordering::AcqRel);
                }
                continue;
            }
            if self.grant(index, word, waiter) {
                notified += 1;
            }
            // Otherwise it timed out just now and left: try the next one.
        }
        Ok(notified)
    }

    /// Wakes every thread waiting now, like `threading.Condition.notify_all`; returns how
    /// many were notified (dead ones included: checking them would cost more than
    /// notifying them). The caller must hold `lock`.
    ///
    /// # Errors
    ///
    /// [`SyncError::NotOwner`] if the caller does not hold `lock`.
    pub fn notify_all<L: ConditionLock, W: Waiter + ?Sized>(
        &self,
        lock: &L,
        owner: L::Owner,
        waiter: &W,
    ) -> Result<u32, SyncError> {
        if !lock.is_held_by(owner) {
            return Err(SyncError::NotOwner);
        }
        let mut notified = 0;
        for (index, slot) in self.slots.iter().enumerate() {
            let word = slot.word.load(Ordering::Acquire);
            if tag_of(word) == WAITING && self.grant(index, word, waiter) {
                notified += 1;
            }
        }
        Ok(notified)
    }

    /// Moves slot `index` from `word` (waiting) to notified and wakes its owner; false if
    /// the owner left first.
    fn grant<W: Waiter + ?Sized>(&self, index: usize, word: u32, waiter: &W) -> bool {
        let slot = &self.slots[index].word;
        let granted = slot_word(pid_of(word), NOTIFIED);
        if slot
            .compare_exchange(word, granted, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // Only the slot's owner sleeps on this word. The slot cannot be claimed again
        // before this wake: claiming needs the lock, which the caller holds.
        waiter.wake(slot, 1);
        true
    }

    /// The waiting slot with the oldest ticket, and its word. Lock holder only.
    fn oldest_waiting(&self) -> Option<(usize, u32)> {
        let mut remaining = self.occupied.load(Ordering::Acquire);
        let next = self.next_ticket.load(Ordering::Relaxed);
        let mut best: Option<(usize, u32, u32)> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            if remaining == 0 {
                // `occupied` never undercounts, and only the lock holder claims slots:
                // every taken slot has been seen.
                break;
            }
            let word = slot.word.load(Ordering::Acquire);
            if word == FREE {
                continue;
            }
            remaining -= 1;
            if tag_of(word) != WAITING {
                continue;
            }
            let age = next.wrapping_sub(slot.ticket.load(Ordering::Relaxed));
            if best.is_none_or(|(_, _, oldest)| age > oldest) {
                best = Some((index, word, age));
            }
        }
        best.map(|(index, word, _)| (index, word))
    }

    /// Takes a free slot for `pid` with the next ticket. Lock holder only.
    fn claim(&self, pid: u32) -> Option<usize> {
        self.occupied.fetch_add(1, Ordering::AcqRel);
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.word.load(Ordering::Acquire) != FREE {
                continue;
            }
            let ticket = self.next_ticket.load(Ordering::Relaxed);
            // Only the lock holder claims, so the slot stays free until the exchange;
            // the ticket is read by lock holders only, who synchronise through the lock.
            slot.ticket.store(ticket, Ordering::Relaxed);
            if slot
                .word
                .compare_exchange(
                    FREE,
                    slot_word(pid, WAITING),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                self.next_ticket
                    .store(ticket.wrapping_add(1), Ordering::Relaxed);
                return Some(index);
            }
        }
        self.occupied.fetch_sub(1, Ordering::AcqRel);
        None
    }

    /// Frees the slots of waiters whose process died (waiting or notified). Lock holder
    /// only; `me` is the caller's pid, alive by definition.
    fn reclaim_dead<V: Liveness + ?Sized>(&self, me: u32, liveness: &V) {
        for slot in &self.slots {
            let word = slot.word.load(Ordering::Acquire);
            if word == FREE || pid_of(word) == me || liveness.is_alive(pid_of(word)) {
                continue;
            }
            if slot
                .word
                .compare_exchange(word, FREE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.occupied.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Frees slot `index`, which holds `word` and belongs to the caller.
    fn free(&self, index: usize, word: u32) {
        if self.slots[index]
            .word
            .compare_exchange(word, FREE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.occupied.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
