//! The error type of the `channel` module.

use crate::shm::ShmError;
use crate::sync::SyncError;

/// Why a channel operation failed. Running out of time is not an error: operations that
/// can time out say so in their return value ([`Wait::TimedOut`](super::Wait::TimedOut)).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Creating, attaching or touching the shared segment failed.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// One of the channel's locks failed (an invalid process id, a system call).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The requested capacity is unusable.
    #[error("invalid channel capacity {capacity}: {reason}")]
    InvalidCapacity {
        /// What was asked for, in bytes.
        capacity: u64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A record in the ring broke the format (written by a buggy or hostile process). The
    /// damaged bytes were discarded and counted as lost; the channel stays usable.
    #[error("corrupt record in shared-memory channel: {0}; the unread data was discarded")]
    Corrupt(&'static str),
    /// The reader's sink could not make room for a message (out of memory); the message
    /// stays in the queue.
    #[error("no room for a message of {len} bytes")]
    Refused {
        /// The message's length.
        len: usize,
    },
    /// `task_done` was called more often than messages were put (the stdlib's
    /// `ValueError`).
    #[error("task_done() called too many times")]
    TaskDoneTooOften,
}
