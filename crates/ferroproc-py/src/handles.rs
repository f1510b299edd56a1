//! `_core.send_fds` / `_core.recv_fds`: descriptors over a Unix socket, for
//! `reduction.sendfds`, `recvfds`, `send_handle` and `recv_handle`.

use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};

use ferroproc_core::connection::{
    recv_fds as core_recv_fds, send_fds as core_send_fds, ReceivedFds,
};
use pyo3::exceptions::{PyEOFError, PyRuntimeError};
use pyo3::prelude::*;

use crate::blocking::{deadline_after, wait_until};
use crate::errors::OrRaise;
use crate::fd::PyFd;

/// Send the descriptors `fds` over the Unix socket `socket` in one message.
#[pyfunction]
pub fn send_fds(py: Python<'_>, socket: RawFd, fds: Vec<RawFd>) -> PyResult<()> {
    let socket = PyFd::new(socket)?;
    let fds: Vec<PyFd> = fds.into_iter().map(PyFd::new).collect::<PyResult<_>>()?;
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(PyFd::borrow).collect();
    py.detach(|| core_send_fds(socket.borrow(), &borrowed))
        .or_raise()
}

/// Receive one message of at most `max_fds` descriptors from the Unix socket `socket`:
/// new descriptors, owned by the caller. `EOFError` if the peer closed the socket,
/// `RuntimeError` for a message that is not a descriptor message.
#[pyfunction]
#[pyo3(signature = (socket, max_fds, timeout=None))]
pub fn recv_fds(
    py: Python<'_>,
    socket: RawFd,
    max_fds: usize,
    timeout: Option<f64>,
) -> PyResult<Option<Vec<RawFd>>> {
    let socket = PyFd::new(socket)?;
    let deadline = deadline_after(timeout)?;
    let received = wait_until(py, deadline, |until| {
        core_recv_fds(socket.borrow(), max_fds, until)
    })?;
    match received {
        None => Ok(None),
        Some(ReceivedFds::Fds(fds)) => {
            Ok(Some(fds.into_iter().map(IntoRawFd::into_raw_fd).collect()))
        }
        Some(ReceivedFds::Eof) => Err(PyEOFError::new_err(())),
        Some(ReceivedFds::Invalid) => Err(PyRuntimeError::new_err("Invalid data received")),
    }
}
