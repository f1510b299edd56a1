//! The error type of the `tracker` module.

use rustix::io::Errno;

use crate::shm::ShmError;

/// Why a tracker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// A system call failed; `op` names it (e.g. `"read"`).
    #[error("{op}: {source}")]
    Os {
        /// The operation that failed, named after its system call.
        op: &'static str,
        /// The error number the kernel returned.
        #[source]
        source: Errno,
    },
    /// A line that is not a tracker message.
    #[error("bad message {line:?}: {reason}")]
    BadMessage {
        /// The line as received (lossily decoded, without its newline).
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A message that cannot be sent: too long for one atomic pipe write, or a field
    /// holding a character the line format cannot carry.
    #[error("{0}")]
    Unsendable(String),
    /// Only part of a message was written (a pipe never does this for short writes).
    #[error("short write to the resource tracker: {written} of {len} bytes")]
    ShortWrite {
        /// Bytes written.
        written: usize,
        /// Bytes in the message.
        len: usize,
    },
    /// Unlinking a shared-memory segment failed.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// Removing a folder failed.
    #[error("{op}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The error the standard library returned.
        #[source]
        source: std::io::Error,
    },
}

impl TrackerError {
    /// Wraps an errno from the system call `op`.
    pub(crate) fn os(op: &'static str) -> impl FnOnce(Errno) -> Self {
        move |source| Self::Os { op, source }
    }

    /// The raw errno, when the error came from the system, so callers can report it the
    /// way Python does (`[Errno 2] ...`) or raise the matching `OSError` subclass.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. } => Some(source.raw_os_error()),
            Self::Shm(err) => err.raw_os_error(),
            Self::Io { source, .. } => source.raw_os_error(),
            Self::BadMessage { .. } | Self::Unsendable(_) | Self::ShortWrite { .. } => None,
        }
    }

    /// The error as Python's `str(OSError)` shows it (`[Errno 2] No such file or
    /// directory`), or this error's own text when it did not come from the system.
    pub fn describe(&self) -> String {
        match self.raw_os_error() {
            Some(errno) => {
                let text = std::io::Error::from_raw_os_error(errno).to_string();
                let suffix = format!(" (os error {errno})");
                let text = text.strip_suffix(&suffix).unwrap_or(&text);
                format!("[Errno {errno}] {text}")
            }
            None => self.to_string(),
        }
    }
}
