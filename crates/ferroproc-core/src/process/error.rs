//! The error type of the `process` module.

use rustix::io::Errno;

/// Why a process operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A system call failed; `op` names it (e.g. `"pidfd_open"`).
    #[error("{op}: {source}")]
    Os {
        /// The operation that failed, named after its system call.
        op: &'static str,
        /// The error number the kernel returned.
        #[source]
        source: Errno,
    },
    /// A blocking wait was interrupted by a signal (`EINTR`); the caller decides whether
    /// to run signal handlers and retry.
    #[error("interrupted by a signal")]
    Interrupted,
    /// The fork server broke its protocol or went away.
    #[error("fork server: {0}")]
    ForkServer(String),
    /// The bootstrap payload was malformed (wrong magic, truncated, oversized).
    #[error("bootstrap payload: {0}")]
    Bootstrap(String),
}

impl ProcessError {
    /// Wraps an errno from the system call `op`, turning `EINTR` into
    /// [`ProcessError::Interrupted`].
    pub(crate) fn os(op: &'static str, source: Errno) -> Self {
        if source == Errno::INTR {
            Self::Interrupted
        } else {
            Self::Os { op, source }
        }
    }

    /// The raw errno, when this is an OS error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. } => Some(source.raw_os_error()),
            Self::Interrupted => Some(Errno::INTR.raw_os_error()),
            _ => None,
        }
    }
}
