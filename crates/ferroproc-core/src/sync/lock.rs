//! A process-shared, robust, non-recursive lock: `multiprocessing.Lock`.
//!
//! # Algorithm
//!
//! A futex mutex in the style of Drepper's "Futexes Are Tricky" (mutex 2/3: a "there may be
//! sleepers" state so that an uncontended release makes no system call), with the holder's
//! process id in the lock word instead of a bare "locked" state, as in the kernel's robust
//! futexes (`FUTEX_OWNER_DIED`, Documentation/locking/robust-futexes.rst). Unlike kernel
//! robust futexes, nothing is registered with the kernel: a waiter notices a dead holder
//! itself, by asking a [`Liveness`] whenever a wait returns without the word having changed
//! (a timed-out slice of at most [`OWNER_CHECK_INTERVAL`], or a spurious wake-up), and then
//! takes the lock over with a compare-and-swap from the exact word it observed, so of
//! several waiters that saw the same dead holder exactly one wins.
//!
//! - acquire: `CAS(0 → pid)`; on failure, set [`WAITERS`] on the held word and sleep while
//!   the word is unchanged; after sleeping, acquire with `WAITERS` set (others may still
//!   sleep).
//! - release: `swap(0)`; wake one sleeper only if the old word had `WAITERS`.
//!
//! As in the stdlib (a `Lock` is a binary semaphore), any process may release the lock,
//! and releasing a free lock is an error ([`SyncError::OverReleased`], Python's
//! `ValueError`).
//!
//! The loop shared with [`RawRLock`](super::RawRLock) lives here (`lock_word`,
//! `unlock_word`), as do the deadline helpers the other primitives use.

use std::time::{Duration, Instant};

use super::{Liveness, SyncError};
use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{AtomicU32, Ordering};
use crate::shm::ShmSafe;

/// Bits of a lock word that hold the holder's process id (0: free). Linux process ids are
/// at most `PID_MAX_LIMIT` = 2²² (4 194 304), so 30 bits leave ample room.
pub(super) const PID_MASK: u32 = (1 << 30) - 1;
/// Lock-word bit: some process may be sleeping on the word, so a release must wake one.
pub(super) const WAITERS: u32 = 1 << 31;

/// `RawLock::flags` bit: the lock was once taken over from a holder that died.
const OWNER_DIED_EVER: u32 = 1;

/// How long a waiter sleeps at most before it checks again whether the holder is alive.
pub const OWNER_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How a blocking acquire ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the lock may not have been acquired"]
pub enum Acquire {
    /// The lock is now held by the caller.
    Acquired,
    /// The lock is now held by the caller, taken over from a holder that died holding it:
    /// whatever it protects may be half-updated. Python warns (`OwnerDiedWarning`).
    AcquiredOwnerDied,
    /// The deadline passed first; the lock is not held by the caller.
    TimedOut,
}

impl Acquire {
    /// Whether the caller now holds the lock (either `Acquired` variant).
    pub fn is_acquired(self) -> bool {
        !matches!(self, Acquire::TimedOut)
    }

    /// Whether the lock was taken over from a dead holder.
    pub fn owner_died(self) -> bool {
        matches!(self, Acquire::AcquiredOwnerDied)
    }
}

/// A process-shared, robust lock: `multiprocessing.Lock`. Place it in shared memory; all
/// zeros is a free lock.
///
/// Callers pass their own process id (`me_pid`, from `getpid()`, cached by the caller), a
/// [`Waiter`] (futexes, or a model's) and a [`Liveness`]. The uncontended acquire and
/// release are one atomic instruction each, with no system call and no liveness query.
#[repr(C)]
#[derive(Debug)]
pub struct RawLock {
    /// The lock word:
    ///
    /// ```text
    ///  31        30    29 ......................... 0
    /// +---------+-----+------------------------------+
    /// | WAITERS | 0   | holder pid (0: free)         |
    /// +---------+-----+------------------------------+
    /// ```
    ///
    /// A free lock is exactly 0 (a release clears `WAITERS` too). `WAITERS` is set by a
    /// process about to sleep on a held word; the next release sees it and wakes one
    /// sleeper, which then acquires with `WAITERS` set again in case others still sleep.
    word: AtomicU32,
    /// Sticky flags; bit 0 ([`OWNER_DIED_EVER`]): the lock was once taken over from a dead
    /// holder. Other bits are zero.
    flags: AtomicU32,
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `#[repr(C)]`, two `AtomicU32` from `crate::primitive` and nothing else: no
// pointers, descriptors or heap; every field other processes change is atomic, and all
// zeros is a valid (free) lock.
unsafe impl ShmSafe for RawLock {}

impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawLock {
    /// A free lock (for the heap and for models; in shared memory, zeroed bytes are one).
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            flags: AtomicU32::new(0),
        }
    }

    /// Resets the lock to free, clearing the owner-died flag. Only while no other process
    /// or thread uses it (right after creating it in a segment).
    pub fn init(&self) {
        self.word.store(0, Ordering::Release);
        self.flags.store(0, Ordering::Release);
    }

    /// Takes the lock if it is free, without waiting and without checking whether a
    /// holder died (for that, call [`acquire`](Self::acquire) with a deadline in the past).
    ///
    /// # Errors
    /// [`SyncError::Invalid`] if `me_pid` is not a valid process id (0 or above 2³⁰ - 1).
    pub fn try_acquire(&self, me_pid: u32) -> Result<bool, SyncError> {
        check_pid(me_pid)?;
        Ok(try_lock_word(&self.word, me_pid))
    }

    /// Takes the lock, sleeping while it is held, until `deadline` (`None`: no deadline).
    ///
    /// While waiting, the holder's liveness is checked whenever a wait returns without the
    /// lock word changing, so at least every [`OWNER_CHECK_INTERVAL`], and once more when
    /// the deadline has passed; a dead holder's lock is taken over
    /// ([`Acquire::AcquiredOwnerDied`], and [`owner_died_ever`](Self::owner_died_ever)
    /// becomes true). With a deadline already past this is a non-blocking attempt that
    /// still recovers a dead holder's lock.
    ///
    /// # Errors
    /// - [`SyncError::Interrupted`] if the waiter reported a signal; the lock is not held,
    ///   and calling again is correct (nothing needs undoing).
    /// - [`SyncError::Invalid`] if `me_pid` is not a valid process id.
    pub fn acquire<W, L>(
        &self,
        waiter: &W,
        liveness: &L,
        me_pid: u32,
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError>
    where
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        check_pid(me_pid)?;
        if try_lock_word(&self.word, me_pid) {
            return Ok(Acquire::Acquired);
        }
        let outcome = lock_word(&self.word, waiter, liveness, me_pid, deadline)?;
        if outcome.owner_died() {
            self.flags.fetch_or(OWNER_DIED_EVER, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    /// Releases the lock, whoever holds it (a `Lock` is a binary semaphore), waking one
    /// sleeper if any.
    ///
    /// # Errors
    /// [`SyncError::OverReleased`] if the lock is not held (Python's `ValueError`).
    pub fn release<W: Waiter + ?Sized>(&self, waiter: &W) -> Result<(), SyncError> {
        if unlock_word(&self.word, waiter) {
            Ok(())
        } else {
            Err(SyncError::OverReleased)
        }
    }

    /// Whether some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & PID_MASK != 0
    }

    /// The holder's process id, if the lock is held (a snapshot).
    pub fn owner_pid(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & PID_MASK {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Whether the lock has ever been taken over from a holder that died.
    pub fn owner_died_ever(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & OWNER_DIED_EVER != 0
    }
}

/// Checks that `pid` fits the lock word's holder field and is not the "free" value.
pub(super) fn check_pid(pid: u32) -> Result<(), SyncError> {
    if pid == 0 || pid > PID_MASK {
        Err(SyncError::Invalid("process id out of range"))
    } else {
        Ok(())
    }
}

/// The uncontended path: `CAS(0 → pid)`.
#[inline]
pub(super) fn try_lock_word(word: &AtomicU32, pid: u32) -> bool {
    word.compare_exchange(0, pid, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// The contended path of a lock word (see the module docs). `pid` has been checked.
pub(super) fn lock_word<W, L>(
    word: &AtomicU32,
    waiter: &W,
    liveness: &L,
    pid: u32,
    deadline: Option<Instant>,
) -> Result<Acquire, SyncError>
where
    W: Waiter + ?Sized,
    L: Liveness + ?Sized,
{
    let mut current = word.load(Ordering::Relaxed);
    // Once we have slept, others may be sleeping too: acquire with WAITERS set.
    let mut slept = false;
    // Set when a wait returned with the word unchanged: time to ask about the holder.
    let mut check_holder = false;
    loop {
        let holder = current & PID_MASK;
        if holder == 0 {
            let new = pid | if slept { WAITERS } else { 0 };
            match word.compare_exchange(current, new, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(Acquire::Acquired),
                Err(seen) => {
                    current = seen;
                    continue;
                }
            }
        }
        let expired = deadline_passed(deadline);
        if check_holder || expired {
            check_holder = false;
            // A holder in the caller's own process is alive (the caller is): asking the
            // kernel would cost a pidfd round trip on every non-blocking attempt.
            if holder != pid && !liveness.is_alive(holder) {
                // Exactly the word we saw: if anything changed since (a release, another
                // waiter's takeover), this fails and we look again.
                let new = pid | (current & WAITERS) | if slept { WAITERS } else { 0 };
                match word.compare_exchange(current, new, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => return Ok(Acquire::AcquiredOwnerDied),
                    Err(seen) => {
                        current = seen;
                        continue;
                    }
                }
            }
            if expired {
                return Ok(Acquire::TimedOut);
            }
        }
        if current & WAITERS == 0 {
            let flagged = current | WAITERS;
            match word.compare_exchange(current, flagged, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => current = flagged,
                Err(seen) => {
                    current = seen;
                    continue;
                }
            }
        }
        let outcome = waiter.wait(word, current, slice(deadline));
        slept = true;
        if outcome == WaitOutcome::Interrupted {
            // WAITERS stays set: at worst the next release wakes nobody. Nothing to undo.
            return Err(SyncError::Interrupted);
        }
        let seen = word.load(Ordering::Relaxed);
        check_holder = seen == current;
        current = seen;
    }
}

/// Releases a lock word: `swap(0)`, then wakes one sleeper if `WAITERS` was set. Returns
/// whether the word was held.
pub(super) fn unlock_word<W: Waiter + ?Sized>(word: &AtomicU32, waiter: &W) -> bool {
    let old = word.swap(0, Ordering::Release);
    if old & WAITERS != 0 {
        waiter.wake(word, 1);
    }
    old & PID_MASK != 0
}

/// Whether `deadline` has passed. Loom has no clock: in models, deadlines never pass (as
/// with [`SpinWaiter`](crate::futex::SpinWaiter)).
#[inline]
pub(crate) fn deadline_passed(deadline: Option<Instant>) -> bool {
    #[cfg(loom)]
    {
        let _ = deadline;
        false
    }
    #[cfg(not(loom))]
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

/// The deadline of one wait of a robust lock: `deadline`, but no later than
/// [`OWNER_CHECK_INTERVAL`] from now.
fn slice(deadline: Option<Instant>) -> Option<Instant> {
    #[cfg(loom)]
    {
        deadline
    }
    #[cfg(not(loom))]
    {
        let Some(check) = Instant::now().checked_add(OWNER_CHECK_INTERVAL) else {
            return deadline;
        };
        Some(deadline.map_or(check, |deadline| deadline.min(check)))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::futex::SpinWaiter;
    use crate::sync::AlwaysAlive;

    /// Every process but `alive` is dead.
    struct OnlyAlive(u32);

    impl Liveness for OnlyAlive {
        fn is_alive(&self, pid: u32) -> bool {
            pid == self.0
        }
    }

    #[test]
    fn uncontended_acquire_and_release() {
        let lock = RawLock::new();
        assert!(!lock.is_locked());
        assert_eq!(
            lock.acquire(&SpinWaiter, &AlwaysAlive, 5, None).unwrap(),
            Acquire::Acquired
        );
        assert_eq!(lock.owner_pid(), Some(5));
        assert!(!lock.try_acquire(6).unwrap());
        lock.release(&SpinWaiter).unwrap();
        assert!(matches!(
            lock.release(&SpinWaiter),
            Err(SyncError::OverReleased)
        ));
        assert!(lock.try_acquire(6).unwrap());
        assert_eq!(lock.owner_pid(), Some(6));
    }

    #[test]
    fn process_ids_are_checked() {
        let lock = RawLock::new();
        for pid in [0, PID_MASK + 1, u32::MAX] {
            assert!(matches!(lock.try_acquire(pid), Err(SyncError::Invalid(_))));
            assert!(matches!(
                lock.acquire(&SpinWaiter, &AlwaysAlive, pid, None),
                Err(SyncError::Invalid(_))
            ));
        }
        assert!(!lock.is_locked());
        assert!(lock.try_acquire(PID_MASK).unwrap());
    }

    #[test]
    fn expired_deadline_times_out_while_the_holder_lives() {
        let lock = RawLock::new();
        assert!(lock.try_acquire(5).unwrap());
        let now = Some(Instant::now());
        assert_eq!(
            lock.acquire(&SpinWaiter, &AlwaysAlive, 6, now).unwrap(),
            Acquire::TimedOut
        );
        assert_eq!(lock.owner_pid(), Some(5));
        assert!(!lock.owner_died_ever());
    }

    #[test]
    fn expired_deadline_still_recovers_a_dead_holder() {
        let lock = RawLock::new();
        assert!(lock.try_acquire(5).unwrap());
        let now = Some(Instant::now());
        assert_eq!(
            lock.acquire(&SpinWaiter, &OnlyAlive(6), 6, now).unwrap(),
            Acquire::AcquiredOwnerDied
        );
        assert_eq!(lock.owner_pid(), Some(6));
        assert!(lock.owner_died_ever());
        lock.release(&SpinWaiter).unwrap();
        assert!(lock.owner_died_ever(), "the flag is sticky");
        lock.init();
        assert!(!lock.owner_died_ever());
    }

    #[test]
    fn interrupted_wait_is_reported() {
        struct Interrupting;
        impl Waiter for Interrupting {
            fn wait(&self, _: &AtomicU32, _: u32, _: Option<Instant>) -> WaitOutcome {
                WaitOutcome::Interrupted
            }
            fn wake(&self, _: &AtomicU32, _: u32) -> u32 {
                0
            }
        }
        let lock = RawLock::new();
        assert!(lock.try_acquire(5).unwrap());
        assert!(matches!(
            lock.acquire(&Interrupting, &AlwaysAlive, 6, None),
            Err(SyncError::Interrupted)
        ));
        // The waiters bit it left makes the release wake (nobody): harmless.
        lock.release(&Interrupting).unwrap();
        assert!(lock.try_acquire(6).unwrap());
    }
}
