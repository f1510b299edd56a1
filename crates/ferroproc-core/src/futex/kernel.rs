//! [`FutexWaiter`]: the [`Waiter`] that sleeps in the kernel.

use std::time::Instant;

use rustix::io::Errno;
use rustix::time::Timespec;

use super::{WaitOutcome, Waiter};
use crate::primitive::{hint, AtomicU32};
use crate::sys;

/// Waits with `FUTEX_WAIT_BITSET` and wakes with `FUTEX_WAKE`, on shared (not private)
/// futexes, so the word may live in a segment mapped by several processes.
///
/// Deadlines are [`Instant`]s, which on Linux read `CLOCK_MONOTONIC`, the clock the kernel
/// measures `FUTEX_WAIT_BITSET` deadlines on. Each wait turns the time left until the
/// deadline into an absolute `CLOCK_MONOTONIC` time once, and the kernel sleeps until that
/// time: an `EINTR` or a spurious return followed by a retry does not stretch the timeout.
///
/// A futex error other than the expected ones (`EAGAIN`, `ETIMEDOUT`, `EINTR`) cannot
/// happen with a valid word and deadline; should the kernel refuse futexes anyway (a
/// seccomp filter, say) the waiter degrades to yielding the processor and reporting a
/// spurious wake-up, which is correct, if wasteful, for every caller.
#[derive(Debug, Default, Clone, Copy)]
pub struct FutexWaiter;

impl Waiter for FutexWaiter {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        let timespec = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Past the deadline: the caller still learns whether the word changed.
                    return if word.load(crate::primitive::Ordering::Acquire) != expected {
                        WaitOutcome::Woken
                    } else {
                        WaitOutcome::TimedOut
                    };
                }
                // A deadline too far to represent is no deadline.
                Timespec::try_from(left)
                    .ok()
                    .and_then(|left| sys::futex::monotonic_now().checked_add(left))
            }
        };
        match sys::futex::wait_until(word, expected, timespec.as_ref()) {
            Ok(()) | Err(Errno::AGAIN) => WaitOutcome::Woken,
            Err(Errno::TIMEDOUT) => WaitOutcome::TimedOut,
            Err(Errno::INTR) => WaitOutcome::Interrupted,
            Err(_) => {
                hint::yield_now();
                WaitOutcome::Woken
            }
        }
    }

    fn wake(&self, word: &AtomicU32, count: u32) -> u32 {
        match sys::futex::wake(word, count) {
            Ok(woken) => u32::try_from(woken).unwrap_or(u32::MAX),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::primitive::Ordering;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let word = AtomicU32::new(1);
        let outcome = FutexWaiter.wait(&word, 0, None);
        assert_eq!(outcome, WaitOutcome::Woken);
    }

    #[test]
    fn wait_times_out() {
        let word = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_millis(10);
        // Spurious returns are allowed; the deadline must eventually be reported.
        loop {
            match FutexWaiter.wait(&word, 0, Some(deadline)) {
                WaitOutcome::TimedOut => break,
                WaitOutcome::Woken | WaitOutcome::Interrupted => {}
            }
        }
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn past_deadline_is_a_timeout_unless_the_word_changed() {
        let word = AtomicU32::new(0);
        let past = Instant::now();
        assert_eq!(
            FutexWaiter.wait(&word, 0, Some(past)),
            WaitOutcome::TimedOut
        );
        assert_eq!(FutexWaiter.wait(&word, 7, Some(past)), WaitOutcome::Woken);
    }

    #[test]
    fn far_deadline_is_no_deadline() {
        let word = AtomicU32::new(3);
        let far = Instant::now() + Duration::from_secs(u64::MAX / 4);
        assert_eq!(FutexWaiter.wait(&word, 0, Some(far)), WaitOutcome::Woken);
    }

    #[test]
    fn wake_reaches_a_sleeping_thread() {
        let word = Arc::new(AtomicU32::new(0));
        let sleeper = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 0 {
                    let _ = FutexWaiter.wait(&word, 0, None);
                }
            })
        };
        word.store(1, Ordering::Release);
        // Waking with no sleeper is fine; u32::MAX must mean "all", not "one".
        FutexWaiter.wake(&word, u32::MAX);
        sleeper.join().unwrap();
    }
}
