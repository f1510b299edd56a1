//! The error type of the `pool` module.

use crate::channel::ChannelError;
use crate::shm::ShmError;

/// Why a pool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool no longer accepts tasks (`close` or `terminate` was called).
    #[error("the pool is not running")]
    NotRunning,
    /// A worker slot outside the pool's size.
    #[error("the pool has no worker slot {0}")]
    NoSuchSlot(usize),
    /// A task named a function the pool was never given.
    #[error("the pool has no function with token {0}")]
    UnknownFunction(u64),
    /// A message broke the pool's format (from a buggy or hostile process).
    #[error("corrupt pool message: {0}")]
    Corrupt(&'static str),
    /// A channel between the pool and its workers failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The shared slots could not be created or attached.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// A system call failed.
    #[error("{operation} failed: {source}")]
    Os {
        /// The call.
        operation: &'static str,
        /// Its error.
        source: std::io::Error,
    },
}
