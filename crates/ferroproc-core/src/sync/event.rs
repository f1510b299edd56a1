//! A process-shared event: `multiprocessing.Event`.
//!
//! # Algorithm
//!
//! One futex word holds the flag, a "there may be sleepers" bit and a generation that
//! every `set` of a clear event advances. A waiter sets the sleepers bit and sleeps while
//! the word is unchanged; `set` swaps in the new word and issues `FUTEX_WAKE` (all) only if
//! the old word had the sleepers bit, so setting an event nobody waits on makes no system
//! call. A waiter returns `true` when the flag is set *or* the generation moved since it
//! started waiting: a `set` immediately followed by `clear` still releases everyone who was
//! waiting, as with `threading.Event` (whose waiters are notified, not polled).

use std::time::Instant;

use super::lock::deadline_passed;
use super::SyncError;
use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{AtomicU32, Ordering};
use crate::shm::ShmSafe;

/// Word bit: the event is set.
const SET: u32 = 1;
/// Word bit: some process may be sleeping on the word.
const WAITERS: u32 = 1 << 1;
/// One step of the generation (bits 2 to 31).
const GENERATION_ONE: u32 = 1 << 2;
/// The generation bits.
const GENERATION_MASK: u32 = !(SET | WAITERS);

/// A process-shared event. Place it in shared memory; all zeros is a clear event.
#[repr(C)]
#[derive(Debug)]
pub struct RawEvent {
    /// The event word:
    ///
    /// ```text
    ///  31 ....................... 2   1         0
    /// +------------------------------+---------+-----+
    /// | generation (wraps)           | WAITERS | SET |
    /// +------------------------------+---------+-----+
    /// ```
    ///
    /// `set` on a clear event advances the generation, sets `SET` and clears `WAITERS`
    /// (waking everyone if it was set); `clear` clears `SET` only. `WAITERS` is only ever
    /// set while `SET` is clear. The generation wraps after 2³⁰ sets; a waiter would have
    /// to sleep through exactly that many to miss one.
    word: AtomicU32,
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `#[repr(C)]`, one `AtomicU32` from `crate::primitive`: no pointers, descriptors
// or heap; the only field is atomic, and all zeros is a valid (clear) event.
unsafe impl ShmSafe for RawEvent {}

impl Default for RawEvent {
    fn default() -> Self {
        Self::new()
    }
}

impl RawEvent {
    /// A clear event (for the heap and for models; in shared memory, zeroed bytes are one).
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
        }
    }

    /// Resets the event to clear. Only while no other process or thread uses it.
    pub fn init(&self) {
        self.word.store(0, Ordering::Release);
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        self.word.load(Ordering::Acquire) & SET != 0
    }

    /// Sets the event and wakes every waiter (a system call only if one may be sleeping).
    /// Setting a set event does nothing.
    pub fn set<W: Waiter + ?Sized>(&self, waiter: &W) {
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            if current & SET != 0 {
                // Already set, so nobody sleeps (WAITERS is only set while SET is clear).
                return;
            }
            let new = (current & GENERATION_MASK).wrapping_add(GENERATION_ONE) | SET;
            match self.word.compare_exchange_weak(
                current,
                new,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if current & WAITERS != 0 {
            waiter.wake(&self.word, u32::MAX);
        }
    }

    /// Clears the event. Waiters sleeping since before the last `set` have been released
    /// already and still return `true`.
    pub fn clear(&self) {
        self.word.fetch_and(!SET, Ordering::Release);
    }

    /// Waits until the event is set, or until `deadline` (`None`: no deadline). Returns
    /// `true` if it was set (now, or at some point since the call began), `false` if the
    /// deadline passed first (the stdlib's `False`).
    ///
    /// # Errors
    /// [`SyncError::Interrupted`] if the waiter reported a signal; calling again is
    /// correct (a stale `WAITERS` bit costs at most one needless wake).
    pub fn wait<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        deadline: Option<Instant>,
    ) -> Result<bool, SyncError> {
        let mut current = self.word.load(Ordering::Acquire);
        let generation = current & GENERATION_MASK;
        loop {
            if current & SET != 0 || current & GENERATION_MASK != generation {
                return Ok(true);
            }
            if deadline_passed(deadline) {
                return Ok(false);
            }
            if current & WAITERS == 0 {
                let flagged = current | WAITERS;
                match self.word.compare_exchange_weak(
                    current,
                    flagged,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => current = flagged,
                    Err(seen) => {
                        current = seen;
                        continue;
                    }
                }
            }
            if waiter.wait(&self.word, current, deadline) == WaitOutcome::Interrupted {
                return Err(SyncError::Interrupted);
            }
            current = self.word.load(Ordering::Acquire);
        }
    }

    /// Whether a waiter may be sleeping on the event (a hint, for diagnostics and tests:
    /// a waiter that timed out or was interrupted leaves it set until the next `set`).
    pub fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::futex::SpinWaiter;

    #[test]
    fn set_clear_and_wait() {
        let event = RawEvent::default();
        assert!(!event.is_set());
        let now = Some(Instant::now());
        assert!(!event.wait(&SpinWaiter, now).unwrap());
        assert!(
            !event.has_waiters(),
            "an expired deadline does not register"
        );
        let soon = Some(Instant::now() + std::time::Duration::from_millis(5));
        assert!(!event.wait(&SpinWaiter, soon).unwrap());
        assert!(event.has_waiters(), "a timed-out waiter leaves the hint");
        event.set(&SpinWaiter);
        assert!(event.is_set());
        assert!(!event.has_waiters());
        event.set(&SpinWaiter);
        assert!(event.wait(&SpinWaiter, now).unwrap());
        event.clear();
        assert!(!event.is_set());
        assert!(!event.wait(&SpinWaiter, now).unwrap());
    }

    #[test]
    fn generation_wraps() {
        let event = RawEvent::default();
        event.word.store(GENERATION_MASK, Ordering::Relaxed);
        event.set(&SpinWaiter);
        assert_eq!(event.word.load(Ordering::Relaxed), SET);
        assert!(event.is_set());
    }
}
