//! Descriptors crossing the Python boundary as plain integers.
//!
//! Python hands descriptors around as `int`s (`os.pipe()`, `fileno()`); the core takes
//! `BorrowedFd`/`OwnedFd`. This module is the only place the conversion happens.
#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A descriptor number received from Python, valid for the duration of one call.
#[derive(Debug, Clone, Copy)]
pub struct PyFd(RawFd);

impl PyFd {
    /// Checks the number is a plausible descriptor.
    pub fn new(fd: RawFd) -> PyResult<Self> {
        if fd < 0 {
            return Err(PyValueError::new_err(format!(
                "invalid file descriptor: {fd}"
            )));
        }
        Ok(Self(fd))
    }

    /// Borrows the descriptor for as long as `self` is borrowed.
    pub fn borrow(&self) -> BorrowedFd<'_> {
        // SAFETY: `PyFd` values live only for the Python call that passed the number in,
        // and the Python caller keeps the descriptor open for that call, as with every
        // `os` function taking a descriptor; a descriptor closed meanwhile makes the
        // system calls fail with EBADF, as they would in C.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }

    /// Takes ownership of the descriptor: the Python caller gives it up (documented on
    /// every function that calls this) and must not close it afterwards.
    pub fn into_owned(self) -> OwnedFd {
        // SAFETY: the Python API that calls this documents that the descriptor is handed
        // over, so from here on this `OwnedFd` is its only owner and the one to close it.
        unsafe { OwnedFd::from_raw_fd(self.0) }
    }
}
