//! The one place where core errors become Python exceptions.
//!
//! Exception classes that are ferroproc's own live in Python (`ferroproc.context`), so they
//! pickle by import path; they are imported lazily here.

use ferroproc_core::process::ProcessError;
use pyo3::exceptions::{PyInterruptedError, PyOSError};
use pyo3::prelude::*;

/// Exception classes defined in Python.
mod py_exceptions {
    pyo3::import_exception!(ferroproc.context, ProcessError);
}
use py_exceptions::ProcessError as PyProcessError;

/// Every error the core can return, so one conversion covers them all.
#[derive(Debug)]
pub enum CoreError {
    /// From `ferroproc_core::process`.
    Process(ProcessError),
}

impl From<ProcessError> for CoreError {
    fn from(err: ProcessError) -> Self {
        Self::Process(err)
    }
}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::Process(err) => match err {
                ProcessError::Os { op, source } => {
                    let errno = source.raw_os_error();
                    // OSError(errno, strerror) picks the subclass (FileNotFoundError, ...)
                    // the way `os` functions do; the operation goes in the message.
                    PyOSError::new_err((errno, format!("{op}: {source}")))
                }
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
        }
    }
}

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
