//! Process-shared counting semaphores: `multiprocessing.Semaphore` and `BoundedSemaphore`.
//!
//! # Algorithm
//!
//! The count is the futex word; a separate count of sleepers lets `release` skip
//! `FUTEX_WAKE` when nobody sleeps (the uncontended paths make no system call). An acquirer
//! decrements the count with a compare-and-swap when it is positive; otherwise it registers
//! as a sleeper and sleeps while the count is 0. The sleeper registration and the release
//! form the classic store-buffering pattern (each side writes one word, then reads the
//! other), so each side puts a sequentially consistent fence between its write and its
//! read: either the releaser sees the sleeper and wakes it, or the sleeper's futex check
//! sees the new count and does not sleep (the "waiters counter" futex of Drepper's
//! "Futexes Are Tricky", with the fences C11 needs made explicit).
//!
//! A semaphore has no owner, so the death of a process that acquired it cannot be
//! detected or undone: its units are lost, as with POSIX semaphores and the stdlib. A
//! process that dies while *waiting* leaves the sleeper count one too high, which costs
//! only a spurious `FUTEX_WAKE` per release.

use std::time::Instant;

use super::lock::deadline_passed;
use super::SyncError;
use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{fence, AtomicU32, Ordering};
use crate::shm::ShmSafe;

/// The largest value of a semaphore: the stdlib's `SEM_VALUE_MAX` on Linux (`INT_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// `RawSemaphore::bound` bit: the semaphore is bounded (its maximum is in the low bits).
const BOUNDED: u32 = 1 << 31;

/// A process-shared counting semaphore, bounded or not. Place it in shared memory; all
/// zeros is an unbounded semaphore with value 0.
#[repr(C)]
#[derive(Debug)]
pub struct RawSemaphore {
    /// The value (0 ..= [`SEM_VALUE_MAX`]); acquirers sleep on this word while it is 0.
    value: AtomicU32,
    /// How many acquirers are registered as (about to be) sleeping on `value`. Only a
    /// release that sees it non-zero issues `FUTEX_WAKE`.
    sleepers: AtomicU32,
    /// Written once at initialisation:
    ///
    /// ```text
    ///  31        30 .......................... 0
    /// +---------+-------------------------------+
    /// | BOUNDED | maximum value (if BOUNDED)     |
    /// +---------+-------------------------------+
    /// ```
    ///
    /// 0 is unbounded (the maximum is [`SEM_VALUE_MAX`]).
    bound: AtomicU32,
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `#[repr(C)]`, three `AtomicU32` from `crate::primitive` and nothing else: no
// pointers, descriptors or heap; every field other processes change is atomic, and all
// zeros is a valid semaphore (unbounded, value 0).
unsafe impl ShmSafe for RawSemaphore {}

impl Default for RawSemaphore {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl RawSemaphore {
    fn zeroed() -> Self {
        Self {
            value: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            bound: AtomicU32::new(0),
        }
    }

    /// A semaphore holding `value`; `max: Some(m)` makes it bounded (`BoundedSemaphore`),
    /// so that a release taking it above `m` fails.
    ///
    /// # Errors
    /// [`SyncError::Invalid`] if `value` (or `max`) exceeds [`SEM_VALUE_MAX`], or `value`
    /// exceeds `max`.
    pub fn new(value: u32, max: Option<u32>) -> Result<Self, SyncError> {
        let semaphore = Self::zeroed();
        semaphore.init(value, max)?;
        Ok(semaphore)
    }

    /// Sets the initial value and bound, as [`new`](Self::new) does. Only while no other
    /// process or thread uses the semaphore (right after creating it in a segment); on
    /// error the semaphore is left unchanged.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn init(&self, value: u32, max: Option<u32>) -> Result<(), SyncError> {
        let limit = max.unwrap_or(SEM_VALUE_MAX);
        if limit > SEM_VALUE_MAX {
            return Err(SyncError::Invalid("semaphore maximum above SEM_VALUE_MAX"));
        }
        if value > limit {
            return Err(SyncError::Invalid("semaphore value above its maximum"));
        }
        let bound = max.map_or(0, |max| BOUNDED | max);
        self.bound.store(bound, Ordering::Relaxed);
        self.sleepers.store(0, Ordering::Relaxed);
        self.value.store(value, Ordering::Release);
        Ok(())
    }

    /// Takes one unit if the value is positive, without waiting.
    pub fn try_acquire(&self) -> bool {
        let mut value = self.value.load(Ordering::Relaxed);
        while value > 0 {
            match self.value.compare_exchange_weak(
                value,
                value - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => value = seen,
            }
        }
        false
    }

    /// Takes one unit, sleeping while the value is 0, until `deadline` (`None`: no
    /// deadline). Returns `false` if the deadline passed first (the stdlib's `False`).
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] if the waiter reported a signal; nothing was taken and
    /// the sleeper registration is undone, so calling again is correct.
    pub fn acquire<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        deadline: Option<Instant>,
    ) -> Result<bool, SyncError> {
        loop {
            if self.try_acquire() {
                return Ok(true);
            }
            if deadline_passed(deadline) {
                return Ok(false);
            }
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            // Pairs with the fence in `release`: after it, either our futex check sees the
            // releaser's new value, or the releaser sees our registration.
            fence(Ordering::SeqCst);
            let outcome = waiter.wait(&self.value, 0, deadline);
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            if outcome == WaitOutcome::Interrupted {
                return Err(SyncError::Interrupted);
            }
        }
    }

    /// Adds `n` units, waking up to `n` sleepers if any are registered.
    ///
    /// # Errors
    /// - [`SyncError::OverReleased`] if the semaphore is bounded and the value would
    ///   exceed its maximum (Python's `ValueError`); nothing is added.
    /// - [`SyncError::Os`] with `EOVERFLOW` if an unbounded semaphore would exceed
    ///   [`SEM_VALUE_MAX`] (what `sem_post` reports, an `OSError` in Python).
    pub fn release<W: Waiter + ?Sized>(&self, waiter: &W, n: u32) -> Result<(), SyncError> {
        if n == 0 {
            return Ok(());
        }
        let bound = self.bound.load(Ordering::Relaxed);
        let limit = if bound & BOUNDED != 0 {
            bound & !BOUNDED
        } else {
            SEM_VALUE_MAX
        };
        let mut value = self.value.load(Ordering::Relaxed);
        loop {
            let new = match value.checked_add(n) {
                Some(new) if new <= limit => new,
                _ if bound & BOUNDED != 0 => return Err(SyncError::OverReleased),
                _ => {
                    return Err(SyncError::Os {
                        op: "sem_post",
                        source: rustix::io::Errno::OVERFLOW,
                    })
                }
            };
            match self
                .value
                .compare_exchange_weak(value, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(seen) => value = seen,
            }
        }
        // Pairs with the fence in `acquire` (see there).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            waiter.wake(&self.value, n);
        }
        Ok(())
    }

    /// The current value (a snapshot; the stdlib's `get_value`).
    pub fn get_value(&self) -> u32 {
        self.value.load(Ordering::Relaxed)
    }

    /// The maximum value if the semaphore is bounded.
    pub fn max_value(&self) -> Option<u32> {
        let bound = self.bound.load(Ordering::Relaxed);
        (bound & BOUNDED != 0).then_some(bound & !BOUNDED)
    }

    /// How many acquirers are registered as sleeping (a snapshot, for diagnostics: it can
    /// include one that is just about to re-check, or one that died while waiting).
    pub fn sleepers(&self) -> u32 {
        self.sleepers.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::futex::SpinWaiter;

    #[test]
    fn zeroed_is_unbounded_and_empty() {
        let semaphore = RawSemaphore::default();
        assert_eq!(semaphore.get_value(), 0);
        assert_eq!(semaphore.max_value(), None);
        assert!(!semaphore.try_acquire());
        semaphore.release(&SpinWaiter, 3).unwrap();
        assert_eq!(semaphore.get_value(), 3);
    }

    #[test]
    fn init_checks_its_arguments() {
        assert!(matches!(
            RawSemaphore::new(2, Some(1)),
            Err(SyncError::Invalid(_))
        ));
        assert!(matches!(
            RawSemaphore::new(SEM_VALUE_MAX + 1, None),
            Err(SyncError::Invalid(_))
        ));
        assert!(matches!(
            RawSemaphore::new(0, Some(SEM_VALUE_MAX + 1)),
            Err(SyncError::Invalid(_))
        ));
        let semaphore = RawSemaphore::new(0, Some(0)).unwrap();
        assert_eq!(semaphore.max_value(), Some(0));
        assert!(matches!(
            semaphore.release(&SpinWaiter, 1),
            Err(SyncError::OverReleased)
        ));
    }

    #[test]
    fn bounded_release_never_exceeds_the_maximum() {
        let semaphore = RawSemaphore::new(1, Some(3)).unwrap();
        assert!(matches!(
            semaphore.release(&SpinWaiter, 3),
            Err(SyncError::OverReleased)
        ));
        assert_eq!(semaphore.get_value(), 1);
        semaphore.release(&SpinWaiter, 2).unwrap();
        assert_eq!(semaphore.get_value(), 3);
        semaphore.release(&SpinWaiter, 0).unwrap();
    }

    #[test]
    fn unbounded_overflow_is_eoverflow() {
        let semaphore = RawSemaphore::new(SEM_VALUE_MAX, None).unwrap();
        match semaphore.release(&SpinWaiter, 1) {
            Err(SyncError::Os { source, .. }) => assert_eq!(source, rustix::io::Errno::OVERFLOW),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(semaphore.get_value(), SEM_VALUE_MAX);
    }

    #[test]
    fn acquire_times_out_and_unregisters() {
        let semaphore = RawSemaphore::new(1, None).unwrap();
        let now = Some(Instant::now());
        assert!(semaphore.acquire(&SpinWaiter, now).unwrap());
        assert!(!semaphore.acquire(&SpinWaiter, now).unwrap());
        let soon = Some(Instant::now() + std::time::Duration::from_millis(5));
        assert!(!semaphore.acquire(&SpinWaiter, soon).unwrap());
        assert_eq!(semaphore.sleepers(), 0);
    }
}
