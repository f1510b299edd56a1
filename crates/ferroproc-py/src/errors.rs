//! The one place where core errors become Python exceptions.
//!
//! Exception classes that are ferroproc's own live in Python (`ferroproc.context`), so they
//! pickle by import path; they are imported lazily here.

use ferroproc_core::channel::ChannelError;
use ferroproc_core::connection::ConnectionError;
use ferroproc_core::pool::PoolError;
use ferroproc_core::process::ProcessError;
use ferroproc_core::shm::ShmError;
use ferroproc_core::store::StoreError;
use ferroproc_core::sync::SyncError;
use ferroproc_core::tracker::TrackerError;
use pyo3::exceptions::{
    PyAssertionError, PyEOFError, PyIndexError, PyInterruptedError, PyMemoryError, PyOSError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;

/// Exception classes defined in Python.
mod py_exceptions {
    pyo3::import_exception!(ferroproc.context, ProcessError);
    pyo3::import_exception!(threading, BrokenBarrierError);
}
use py_exceptions::{BrokenBarrierError, ProcessError as PyProcessError};

/// Every error the core can return, so one conversion covers them all.
#[derive(Debug)]
pub enum CoreError {
    /// From `ferroproc_core::process`.
    Process(ProcessError),
    /// From `ferroproc_core::sync`.
    Sync(SyncError),
    /// From `ferroproc_core::shm`.
    Shm(ShmError),
    /// From `ferroproc_core::connection`.
    Connection(ConnectionError),
    /// From `ferroproc_core::channel`.
    Channel(ChannelError),
    /// From `ferroproc_core::pool`.
    Pool(PoolError),
    Store(StoreError),
    Tracker(TrackerError),
}

impl From<TrackerError> for CoreError {
    fn from(err: TrackerError) -> Self {
        Self::Tracker(err)
    }
}

impl From<StoreError> for CoreError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<PoolError> for CoreError {
    fn from(err: PoolError) -> Self {
        Self::Pool(err)
    }
}

impl From<ChannelError> for CoreError {
    fn from(err: ChannelError) -> Self {
        Self::Channel(err)
    }
}

impl From<ConnectionError> for CoreError {
    fn from(err: ConnectionError) -> Self {
        Self::Connection(err)
    }
}

impl From<ProcessError> for CoreError {
    fn from(err: ProcessError) -> Self {
        Self::Process(err)
    }
}

impl From<SyncError> for CoreError {
    fn from(err: SyncError) -> Self {
        Self::Sync(err)
    }
}

impl From<ShmError> for CoreError {
    fn from(err: ShmError) -> Self {
        Self::Shm(err)
    }
}

/// `OSError(errno, "op: strerror")`, which Python turns into the matching subclass
/// (`FileNotFoundError`, ...) the way `os` functions do.
fn os_error(op: &str, errno: i32, source: &dyn std::fmt::Display) -> PyErr {
    PyOSError::new_err((errno, format!("{op}: {source}")))
}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Process(err) => match err {
                ProcessError::Os { op, source } => os_error(op, source.raw_os_error(), &source),
                ProcessError::Interrupted => {
                    PyInterruptedError::new_err((libc_eintr(), "interrupted by a signal"))
                }
                ProcessError::ForkServer(message) => {
                    PyProcessError::new_err(format!("fork server: {message}"))
                }
                ProcessError::Bootstrap(message) => PyProcessError::new_err(format!(
                    "cannot read the start-up data of this process: {message}"
                )),
            },
            // The stdlib's SemLock contract: over-release is ValueError, releasing a
            // recursive lock one does not own is AssertionError.
            CoreError::Sync(err) => match err {
                SyncError::OverReleased => PyValueError::new_err(err.to_string()),
                SyncError::NotOwner => PyAssertionError::new_err(
                    "attempt to release recursive lock not owned by thread",
                ),
                SyncError::BrokenBarrier => BrokenBarrierError::new_err(()),
                SyncError::Invalid(message) => PyValueError::new_err(message),
                SyncError::Interrupted => {
                    PyInterruptedError::new_err((libc_eintr(), "interrupted by a signal"))
                }
                SyncError::Os { op, source } => os_error(op, source.raw_os_error(), &source),
            },
            CoreError::Shm(err) => match err {
                ShmError::Os { op, source } => os_error(op, source.raw_os_error(), &source),
                ShmError::ArenaFull { .. } => PyMemoryError::new_err(err.to_string()),
                other => PyValueError::new_err(other.to_string()),
            },
            // The stdlib's Connection: EOFError when the peer is gone, OSError (with its
            // messages) for a truncated or unacceptable frame.
            CoreError::Connection(err) => match err {
                ConnectionError::Eof => PyEOFError::new_err(()),
                ConnectionError::Os { op, source } => os_error(op, source.raw_os_error(), &source),
                ConnectionError::Interrupted => {
                    PyInterruptedError::new_err((libc_eintr(), "interrupted by a signal"))
                }
                other => PyOSError::new_err(other.to_string()),
            },
            CoreError::Channel(err) => match err {
                ChannelError::Shm(err) => CoreError::Shm(err).into(),
                ChannelError::Sync(err) => CoreError::Sync(err).into(),
                ChannelError::Refused { .. } => PyMemoryError::new_err(err.to_string()),
                ChannelError::InvalidCapacity { .. } | ChannelError::TaskDoneTooOften => {
                    PyValueError::new_err(err.to_string())
                }
                // Damaged shared data: an OSError with EBADMSG, like a corrupt frame.
                ChannelError::Corrupt(_) => PyOSError::new_err((EBADMSG, err.to_string())),
            },
            // The stdlib's Pool: using a closed pool is ValueError.
            CoreError::Pool(err) => match err {
                PoolError::Channel(err) => CoreError::Channel(err).into(),
                PoolError::Shm(err) => CoreError::Shm(err).into(),
                PoolError::Os { operation, source } => {
                    os_error(operation, source.raw_os_error().unwrap_or(0), &source)
                }
                PoolError::Corrupt(_) => PyOSError::new_err((EBADMSG, err.to_string())),
                other => PyValueError::new_err(other.to_string()),
            },
            CoreError::Store(err) => match err {
                StoreError::Shm(err) => CoreError::Shm(err).into(),
                StoreError::Sync(err) => CoreError::Sync(err).into(),
                StoreError::Full { .. } => PyMemoryError::new_err(err.to_string()),
                StoreError::OutOfRange { .. } => PyIndexError::new_err(err.to_string()),
                StoreError::WrongKind { .. } => PyTypeError::new_err(err.to_string()),
                StoreError::Corrupt(_) => PyOSError::new_err((EBADMSG, err.to_string())),
                StoreError::NotThisStore => PyValueError::new_err(err.to_string()),
            },
            // OSError with its errno (so Python picks BrokenPipeError, FileNotFoundError,
            // ...) for a failed system call; ValueError for a message that cannot be sent.
            CoreError::Tracker(err) => match err {
                TrackerError::Shm(err) => CoreError::Shm(err).into(),
                TrackerError::Unsendable(message) => PyValueError::new_err(message),
                TrackerError::BadMessage { .. } => PyValueError::new_err(err.to_string()),
                other => match other.raw_os_error() {
                    Some(errno) => PyOSError::new_err((errno, other.to_string())),
                    None => PyOSError::new_err(other.to_string()),
                },
            },
        }
    }
}

/// `EBADMSG` on Linux: "bad message".
const EBADMSG: i32 = 74;

fn libc_eintr() -> i32 {
    ProcessError::Interrupted.raw_os_error().unwrap_or(4)
}

/// `result.or_raise()?` converts any core error into the Python exception for it.
pub trait OrRaise<T> {
    /// Maps the error through [`CoreError`].
    fn or_raise(self) -> PyResult<T>;
}

impl<T, E> OrRaise<T> for Result<T, E>
where
    CoreError: From<E>,
{
    fn or_raise(self) -> PyResult<T> {
        self.map_err(|err| PyErr::from(CoreError::from(err)))
    }
}
