//! A process-shared, robust, recursive lock: `multiprocessing.RLock`.
//!
//! # Algorithm
//!
//! The lock word and its contended path are [`RawLock`](super::RawLock)'s (see
//! `lock.rs`): the word holds the owner's process id, and a waiter that finds the owner's
//! process dead takes the word over with a compare-and-swap from the exact word it saw.
//! Next to the word sit the owner (process and thread) and the recursion count, written
//! only by the owner while it holds the word, as CPython's `SemLock` keeps `last_tid` and
//! `count` next to its semaphore.
//!
//! Ownership is `(pid, tid)`, packed into one 64-bit word ([`Owner::key`]) that only the
//! owner writes: its key after it takes the lock word, 0 before it frees it. Since no two
//! live threads share a key, a thread that reads its own key wrote it and has not cleared
//! it since (coherence forbids it reading its own older write after its later 0), so "am
//! I the owner" is one atomic load, exact without any lock. A separate pid and thread-id
//! word would not be: between reading one and the other the lock can change hands, and
//! thread ids repeat across processes (a forked child's first thread, a model's made-up
//! ids). After a takeover the dead owner's key lingers until the new owner overwrites it,
//! which is harmless: it names a process that no longer runs (unless its pid has been
//! recycled, the limit [`Liveness`] documents).
//!
//! Liveness is per process: if the owning *thread* ends without releasing while its
//! process lives on, the lock stays held, as with the stdlib; and a new thread that gets
//! the dead thread's id then owns it (CPython's `RLock` has the same reuse with
//! `get_ident`).

use std::time::Instant;

use super::lock::{check_pid, lock_word, try_lock_word, unlock_word, PID_MASK};
use super::{Acquire, Liveness, SyncError};
use crate::futex::Waiter;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::shm::ShmSafe;
use crate::sys;

/// `RawRLock::flags` bit: the lock was once taken over from an owner that died.
const OWNER_DIED_EVER: u32 = 1;

/// Who owns a recursive lock: a thread of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The process id (`getpid()`), between 1 and 2³⁰ - 1.
    pub pid: u32,
    /// The thread's kernel id (`gettid()`, Python's `threading.get_native_id()`): never 0,
    /// at most `u32::MAX` (Linux thread ids are below 2²²), unique among the live threads
    /// of the process. Kept in a `u64` for callers' convenience.
    pub tid: u64,
}

impl Owner {
    /// The calling thread: `getpid()` and `gettid()` (two system calls; callers on a hot
    /// path cache the result per thread, and refresh it in a forked child).
    pub fn current() -> Self {
        Self {
            pid: sys::pidfd::getpid().unsigned_abs(),
            tid: u64::from(sys::pidfd::gettid().unsigned_abs()),
        }
    }

    /// The owner word of this owner: `pid` in the high half, `tid` in the low half. Never
    /// 0 for a valid owner.
    pub fn key(self) -> u64 {
        (u64::from(self.pid) << 32) | (self.tid & u64::from(u32::MAX))
    }

    fn check(self) -> Result<(), SyncError> {
        check_pid(self.pid)?;
        if self.tid == 0 || self.tid > u64::from(u32::MAX) {
            return Err(SyncError::Invalid("thread id out of range"));
        }
        Ok(())
    }
}

/// A process-shared, robust, recursive lock: `multiprocessing.RLock`. Place it in shared
/// memory; all zeros is a free lock.
///
/// The uncontended acquire is one compare-and-swap plus two plain stores, a recursive one
/// a load and a store; no system call, no liveness query.
#[repr(C)]
#[derive(Debug)]
pub struct RawRLock {
    /// The lock word, exactly as [`RawLock`](super::RawLock)'s:
    ///
    /// ```text
    ///  31        30    29 ......................... 0
    /// +---------+-----+------------------------------+
    /// | WAITERS | 0   | owner pid (0: free)          |
    /// +---------+-----+------------------------------+
    /// ```
    word: AtomicU32,
    /// Sticky flags; bit 0: the lock was once taken over from an owner that died.
    flags: AtomicU32,
    /// The owner, 0 while free (or a dead owner's, just after a takeover):
    ///
    /// ```text
    ///  63 ............... 32   31 ................ 0
    /// +----------------------+----------------------+
    /// | owner pid            | owner thread id      |
    /// +----------------------+----------------------+
    /// ```
    ///
    /// Written by the owner only: its [`Owner::key`] after taking `word`, 0 before
    /// freeing it.
    owner: AtomicU64,
    /// The recursion count (0 while free). Written by the owner only.
    count: AtomicU32,
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `#[repr(C)]`, atomics from `crate::primitive` and nothing else: no pointers,
// descriptors or heap; every field other processes change is atomic, and all zeros is a
// valid (free) lock. (The trailing padding is never read.)
unsafe impl ShmSafe for RawRLock {}

impl Default for RawRLock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawRLock {
    /// A free lock (for the heap and for models; in shared memory, zeroed bytes are one).
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            count: AtomicU32::new(0),
        }
    }

    /// Resets the lock to free, clearing the owner-died flag. Only while no other process
    /// or thread uses it.
    pub fn init(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        self.flags.store(0, Ordering::Relaxed);
        self.word.store(0, Ordering::Release);
    }

    /// Whether `me` owns the lock. Exact when `me` is the calling thread (see the module
    /// docs); for any other thread a snapshot.
    pub fn is_owned_by(&self, me: Owner) -> bool {
        me.check().is_ok() && self.owner.load(Ordering::Relaxed) == me.key()
    }

    /// Takes the lock if it is free or already owned by `me` (then the count goes up),
    /// without waiting and without checking for a dead owner.
    ///
    /// # Errors
    /// [`SyncError::Invalid`] if `me` is not a valid owner (pid or tid out of range) or
    /// the recursion count would overflow.
    pub fn try_acquire(&self, me: Owner) -> Result<bool, SyncError> {
        me.check()?;
        if self.is_owned_by(me) {
            self.recurse()?;
            return Ok(true);
        }
        if try_lock_word(&self.word, me.pid) {
            self.install(me, 1);
            return Ok(true);
        }
        Ok(false)
    }

    /// Takes the lock, or takes it once more if `me` already owns it, sleeping until
    /// `deadline` (`None`: no deadline) while another thread owns it. A dead owner's lock
    /// is taken over as [`RawLock::acquire`](super::RawLock::acquire) does, with a count
    /// of 1 ([`Acquire::AcquiredOwnerDied`]).
    ///
    /// # Errors
    /// - [`SyncError::Interrupted`] if the waiter reported a signal; the lock is not
    ///   taken, and calling again is correct.
    /// - [`SyncError::Invalid`] if `me` is not a valid owner or the recursion count would
    ///   overflow.
    pub fn acquire<W, L>(
        &self,
        waiter: &W,
        liveness: &L,
        me: Owner,
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError>
    where
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        me.check()?;
        if self.is_owned_by(me) {
            self.recurse()?;
            return Ok(Acquire::Acquired);
        }
        self.acquire_fresh(waiter, liveness, me, 1, deadline)
    }

    /// Releases one level; the last one frees the lock and wakes one sleeper if any.
    ///
    /// # Errors
    /// [`SyncError::NotOwner`] if `me` does not own the lock (Python's `AssertionError`
    /// for `RLock`, `RuntimeError` for a condition's lock).
    pub fn release<W: Waiter + ?Sized>(&self, waiter: &W, me: Owner) -> Result<(), SyncError> {
        if !self.is_owned_by(me) {
            return Err(SyncError::NotOwner);
        }
        let count = self.count.load(Ordering::Relaxed);
        if count > 1 {
            self.count.store(count - 1, Ordering::Relaxed);
        } else {
            self.free(waiter);
        }
        Ok(())
    }

    /// Releases every level at once and returns how many there were, for a condition's
    /// `wait` (the stdlib's `_release_save`). Give the count back to
    /// [`acquire_restore`](Self::acquire_restore).
    ///
    /// # Errors
    /// [`SyncError::NotOwner`] if `me` does not own the lock.
    pub fn release_all<W: Waiter + ?Sized>(&self, waiter: &W, me: Owner) -> Result<u32, SyncError> {
        if !self.is_owned_by(me) {
            return Err(SyncError::NotOwner);
        }
        let count = self.count.load(Ordering::Relaxed);
        self.free(waiter);
        Ok(count)
    }

    /// Takes the lock with recursion count `count`, as saved by
    /// [`release_all`](Self::release_all) (the stdlib's `_acquire_restore`). Otherwise as
    /// [`acquire`](Self::acquire) for a thread that does not own the lock; on
    /// [`Acquire::TimedOut`] or an error the lock is not held.
    ///
    /// # Errors
    /// - [`SyncError::Interrupted`] as for [`acquire`](Self::acquire).
    /// - [`SyncError::Invalid`] if `count` is 0, `me` is not a valid owner, or `me`
    ///   already owns the lock.
    pub fn acquire_restore<W, L>(
        &self,
        waiter: &W,
        liveness: &L,
        me: Owner,
        count: u32,
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError>
    where
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        me.check()?;
        if count == 0 {
            return Err(SyncError::Invalid("recursion count 0"));
        }
        if self.is_owned_by(me) {
            return Err(SyncError::Invalid("lock already owned by the caller"));
        }
        self.acquire_fresh(waiter, liveness, me, count, deadline)
    }

    /// The recursion count: exact for the owner, a snapshot for anyone else (0: free).
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether some thread owns the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & PID_MASK != 0
    }

    /// The owning process's id, if the lock is held (a snapshot).
    pub fn owner_pid(&self) -> Option<u32> {
        match self.word.load(Ordering::Relaxed) & PID_MASK {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Whether the lock has ever been taken over from an owner that died.
    pub fn owner_died_ever(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & OWNER_DIED_EVER != 0
    }

    fn recurse(&self) -> Result<(), SyncError> {
        let count = self.count.load(Ordering::Relaxed);
        let more = count
            .checked_add(1)
            .ok_or(SyncError::Invalid("recursion count overflow"))?;
        self.count.store(more, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the word for `me` (who does not own it) and installs `count`.
    fn acquire_fresh<W, L>(
        &self,
        waiter: &W,
        liveness: &L,
        me: Owner,
        count: u32,
        deadline: Option<Instant>,
    ) -> Result<Acquire, SyncError>
    where
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        if try_lock_word(&self.word, me.pid) {
            self.install(me, count);
            return Ok(Acquire::Acquired);
        }
        let outcome = lock_word(&self.word, waiter, liveness, me.pid, deadline)?;
        match outcome {
            Acquire::Acquired => self.install(me, count),
            Acquire::AcquiredOwnerDied => {
                self.install(me, count);
                self.flags.fetch_or(OWNER_DIED_EVER, Ordering::Relaxed);
            }
            Acquire::TimedOut => {}
        }
        Ok(outcome)
    }

    /// Writes the owner fields; the caller holds the word.
    fn install(&self, me: Owner, count: u32) {
        self.count.store(count, Ordering::Relaxed);
        self.owner.store(me.key(), Ordering::Relaxed);
    }

    /// Frees the lock; the caller owns it.
    fn free<W: Waiter + ?Sized>(&self, waiter: &W) {
        self.count.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        // Release: the next owner, whichever process, sees the fields cleared.
        unlock_word(&self.word, waiter);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::futex::SpinWaiter;
    use crate::sync::AlwaysAlive;

    const ME: Owner = Owner { pid: 10, tid: 11 };

    #[test]
    fn owners_are_checked_and_packed() {
        let lock = RawRLock::new();
        for bad in [
            Owner { pid: 0, tid: 1 },
            Owner { pid: 1, tid: 0 },
            Owner {
                pid: 1,
                tid: u64::from(u32::MAX) + 1,
            },
        ] {
            assert!(matches!(lock.try_acquire(bad), Err(SyncError::Invalid(_))));
            assert!(!lock.is_owned_by(bad));
        }
        assert_eq!(ME.key(), (10 << 32) | 11);
        let current = Owner::current();
        assert_eq!(current.pid, std::process::id());
        assert!(current.tid != 0);
    }

    #[test]
    fn recursion_counts_levels() {
        let lock = RawRLock::default();
        for level in 1..=3 {
            assert_eq!(
                lock.acquire(&SpinWaiter, &AlwaysAlive, ME, None).unwrap(),
                Acquire::Acquired
            );
            assert_eq!(lock.count(), level);
        }
        assert!(lock.is_owned_by(ME));
        assert_eq!(lock.owner_pid(), Some(10));
        let other = Owner { pid: 10, tid: 12 };
        assert!(!lock.is_owned_by(other));
        assert!(!lock.try_acquire(other).unwrap());
        assert!(matches!(
            lock.release(&SpinWaiter, other),
            Err(SyncError::NotOwner)
        ));
        for level in (0..3).rev() {
            lock.release(&SpinWaiter, ME).unwrap();
            assert_eq!(lock.count(), level);
        }
        assert!(!lock.is_locked());
        assert!(matches!(
            lock.release(&SpinWaiter, ME),
            Err(SyncError::NotOwner)
        ));
    }

    #[test]
    fn release_all_and_restore() {
        let lock = RawRLock::new();
        assert!(lock.try_acquire(ME).unwrap());
        assert!(lock.try_acquire(ME).unwrap());
        assert!(matches!(
            lock.acquire_restore(&SpinWaiter, &AlwaysAlive, ME, 2, None),
            Err(SyncError::Invalid(_))
        ));
        let saved = lock.release_all(&SpinWaiter, ME).unwrap();
        assert_eq!(saved, 2);
        assert!(!lock.is_locked());
        assert!(matches!(
            lock.acquire_restore(&SpinWaiter, &AlwaysAlive, ME, 0, None),
            Err(SyncError::Invalid(_))
        ));
        assert_eq!(
            lock.acquire_restore(&SpinWaiter, &AlwaysAlive, ME, saved, None)
                .unwrap(),
            Acquire::Acquired
        );
        assert_eq!(lock.count(), 2);
        assert!(lock.is_owned_by(ME));
    }

    #[test]
    fn recursion_overflow_is_an_error() {
        let lock = RawRLock::new();
        assert_eq!(
            lock.acquire_restore(&SpinWaiter, &AlwaysAlive, ME, u32::MAX, None)
                .unwrap(),
            Acquire::Acquired
        );
        assert!(matches!(lock.try_acquire(ME), Err(SyncError::Invalid(_))));
        assert_eq!(lock.count(), u32::MAX);
    }
}
