//! The system-wide monotonic clock, readable by every process alike.

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds: unlike `std::time::Instant`, a value
/// one process writes to shared memory means the same instant to another.
///
/// # References
///  - [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
pub(crate) fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}
