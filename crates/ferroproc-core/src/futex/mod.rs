//! Waiting on a 32-bit word in (possibly shared) memory.
//!
//! Every blocking algorithm in the crate (locks, semaphores, events, conditions, barriers,
//! channels) is written against the [`Waiter`] trait, not against the futex system call, so
//! that it can be model-checked with loom, which cannot see futexes (iceoryx2's split of
//! algorithm and mechanism). [`FutexWaiter`] is the real thing: `FUTEX_WAIT_BITSET` (with
//! an absolute `CLOCK_MONOTONIC` deadline) and `FUTEX_WAKE` on a word that may live in
//! memory shared between processes (so never the `_PRIVATE` variants). [`SpinWaiter`]
//! yields instead of sleeping; loom models use it. Under `--cfg loom` `FutexWaiter` does not
//! exist (loom's atomics cannot be futex words).
//!
//! The contract both waiters keep, and every algorithm relies on: a wait may return
//! spuriously, so callers re-check their condition in a loop; a wait never sleeps when the
//! word already differs from what the caller last saw (the check and the sleep are one
//! atomic step in the kernel, which is what makes a lost wake-up impossible); and a
//! deadline is an absolute [`Instant`], so retrying after a spurious return never extends
//! the caller's total timeout.

use std::time::Instant;

use crate::primitive::AtomicU32;

#[cfg(not(loom))]
mod kernel;

#[cfg(not(loom))]
pub use kernel::FutexWaiter;

/// Why a [`Waiter::wait`] returned. Every outcome allows spurious returns: callers always
/// re-check their condition in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken by [`Waiter::wake`], or the word no longer held `expected` on entry, or a
    /// spurious wake-up.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// A signal arrived (`EINTR`); the caller decides whether to run handlers and retry.
    Interrupted,
}

/// A way to sleep until a word changes.
pub trait Waiter {
    /// Sleeps while `word` holds `expected`, until woken, `deadline` passes (`None`: no
    /// deadline) or a signal arrives. Returns at once if `word` differs from `expected`.
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome;

    /// Wakes up to `count` waiters sleeping on `word`; returns how many were woken
    /// (`u32::MAX` wakes all).
    fn wake(&self, word: &AtomicU32, count: u32) -> u32;
}

/// A waiter that never sleeps in the kernel: it yields and returns, so callers re-check
/// their condition. It is what loom models use (loom schedules another thread at each
/// yield) and a correct, if wasteful, waiter anywhere. `wake` has nothing to do.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinWaiter;

impl Waiter for SpinWaiter {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        use crate::primitive::{hint, Ordering};
        if word.load(Ordering::Acquire) != expected {
            return WaitOutcome::Woken;
        }
        // Loom has no clock: in models a deadline is never reached.
        #[cfg(not(loom))]
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return WaitOutcome::TimedOut;
        }
        #[cfg(loom)]
        let _ = deadline;
        hint::yield_now();
        WaitOutcome::Woken
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) -> u32 {
        0
    }
}
