//! `futex(2)` on words that may live in memory shared between processes.
//!
//! The operations here never set `FUTEX_PRIVATE_FLAG`: a private futex is keyed by the
//! address in one process's address space, so a waiter in another process mapping the same
//! page would never be woken. Shared futexes are keyed by the underlying page (the file and
//! offset for a shared mapping), which is what cross-process locks need.
//!
//! Loom models cannot see futexes, so none of this exists under `--cfg loom`.

use std::num::NonZeroU32;

use rustix::io::Result;
use rustix::thread::futex;
use rustix::time::{ClockId, Timespec};

use crate::primitive::AtomicU32;

/// `FUTEX_BITSET_MATCH_ANY`: a waiter that any wake-up may wake.
const MATCH_ANY: NonZeroU32 = NonZeroU32::MAX;

/// `syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, deadline, NULL,
/// FUTEX_BITSET_MATCH_ANY)`: sleeps while `*word == expected`, until woken, a signal
/// arrives, or the absolute `CLOCK_MONOTONIC` time `deadline` passes (`None`: no deadline).
///
/// The deadline is absolute (unlike `FUTEX_WAIT`'s relative timeout), so a caller that
/// retries after a spurious wake-up or `EINTR` never stretches its total wait.
///
/// Errors the caller must expect: `EAGAIN` (the word did not hold `expected`), `ETIMEDOUT`
/// (the deadline passed) and `EINTR` (a signal handler ran).
///
/// # References
///  - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub(crate) fn wait_until(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<&Timespec>,
) -> Result<()> {
    futex::wait_bitset(word, futex::Flags::empty(), expected, deadline, MATCH_ANY)
}

/// `syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0)`: wakes up to `count`
/// waiters sleeping on `word` (in any process); returns how many were woken.
///
/// The kernel reads `count` as a signed `int`, and a negative one would wake a single
/// waiter; counts above `i32::MAX` are therefore clamped to it, which wakes everyone.
///
/// # References
///  - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)
pub(crate) fn wake(word: &AtomicU32, count: u32) -> Result<usize> {
    let count = count.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), count)
}

/// `clock_gettime(CLOCK_MONOTONIC)`: the clock `FUTEX_WAIT_BITSET` measures deadlines on
/// (and the one `std::time::Instant` reads on Linux).
///
/// # References
///  - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
pub(crate) fn monotonic_now() -> Timespec {
    rustix::time::clock_gettime(ClockId::Monotonic)
}
