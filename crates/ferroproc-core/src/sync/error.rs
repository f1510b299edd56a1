//! The error type of the `sync` module.

use rustix::io::Errno;

/// Why a synchronisation operation failed. A timeout is not an error: operations that can
/// time out say so in their return value, as the stdlib's `acquire` returns `False`.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A signal arrived while waiting (`EINTR`); the caller runs handlers and retries.
    #[error("interrupted by a signal")]
    Interrupted,
    /// A system call failed.
    #[error("{op}: {source}")]
    Os {
        /// The operation that failed, named after its system call.
        op: &'static str,
        /// The error number the kernel returned.
        #[source]
        source: Errno,
    },
    /// A bounded semaphore or a lock was released more times than it was acquired
    /// (the stdlib raises `ValueError`).
    #[error("semaphore or lock released too many times")]
    OverReleased,
    /// A recursive lock (or a condition's lock) was released by a thread that does not own
    /// it (the stdlib raises `AssertionError` for `RLock`, `RuntimeError` for conditions).
    #[error("cannot release un-acquired lock")]
    NotOwner,
    /// The barrier is broken (aborted, reset while waiting, timed out, or a party died).
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// An argument is out of range (a negative count, zero parties, ...).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}
