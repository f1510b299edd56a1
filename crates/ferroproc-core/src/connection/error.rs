//! The error types of the `connection` module.

use rustix::io::Errno;

/// Why the bytes on a stream are not a well-formed frame. The stream cannot be trusted
/// after one of these: where the next frame starts is unknown, so the caller closes it
/// (the stdlib's "bad message length").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The 4-byte header holds a negative length other than -1 (the long-header marker).
    #[error("bad message length: the header announces a negative length ({0})")]
    NegativeLength(i32),
    /// The 8-byte length of a long header is larger than any buffer can be.
    #[error("bad message length: the header announces {0} bytes, more than memory can hold")]
    Impossible(u64),
    /// A packet (on a `SOCK_SEQPACKET` socket) held bytes past the end of its frame:
    /// our senders never pack two frames into one packet.
    #[error("bad message: a packet runs past the end of its frame")]
    PacketOverrun,
    /// The frame is longer than the reader accepts (`recv_bytes(maxlength)`).
    #[error("bad message length: {length} bytes announced, at most {max_length} accepted")]
    OverMaximum {
        /// The length the header announces.
        length: u64,
        /// The most the reader accepts.
        max_length: u64,
    },
}

/// Why sending or receiving a frame failed. A timeout is not an error: the waiting
/// functions return `Ok(None)` when their deadline passes.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer closed its end, and no part of a frame had arrived (Python's `EOFError`).
    #[error("end of file")]
    Eof,
    /// The peer closed its end in the middle of a frame.
    #[error("got end of file during message")]
    TruncatedFrame,
    /// The bytes received do not form a frame the reader accepts.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A signal arrived while waiting (`EINTR`); the caller runs handlers and retries.
    #[error("interrupted by a signal")]
    Interrupted,
    /// A system call failed (`EPIPE` when the peer is gone, `EBADF` for a closed
    /// descriptor, ...).
    #[error("{op}: {source}")]
    Os {
        /// The operation that failed, named after its system call.
        op: &'static str,
        /// The error number the kernel returned.
        #[source]
        source: Errno,
    },
}

impl ConnectionError {
    /// `EINTR` becomes [`ConnectionError::Interrupted`]; any other errno is kept with the
    /// name of the call that returned it.
    pub(crate) fn os(op: &'static str, errno: Errno) -> Self {
        if errno == Errno::INTR {
            Self::Interrupted
        } else {
            Self::Os { op, source: errno }
        }
    }

    /// The errno of an [`ConnectionError::Os`] error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. } => Some(source.raw_os_error()),
            Self::Interrupted => Some(Errno::INTR.raw_os_error()),
            _ => None,
        }
    }
}
