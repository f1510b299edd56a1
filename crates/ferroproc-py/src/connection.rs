//! Bindings of `ferroproc_core::connection`: framed messages over a descriptor, for
//! `ferroproc.connection.Connection`.
//!
//! Each function takes the descriptor as an `int` and the Python caller keeps it open for
//! the call. Sends try once attached (a small frame usually fits at once) and otherwise
//! wait with the GIL released; receives try once attached, then spin and sleep with the
//! GIL released, in slices, so Ctrl-C interrupts them.

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Instant;

use ferroproc_core::connection::{
    readable_until, wait_readable, ConnectionError, FrameError, FrameReceiver, FrameSender,
};
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::blocking::{deadline_after, wait_until, MaybeInterrupted};
use crate::buffer::HeldBuffer;
use crate::errors::OrRaise;
use crate::fd::PyFd;

impl MaybeInterrupted for ConnectionError {
    fn is_interrupted(&self) -> bool {
        matches!(self, ConnectionError::Interrupted)
    }
}

/// Frames up to this size are tried once without releasing the GIL: the copy into the
/// kernel is shorter than a release and re-acquire. Larger ones are written detached.
const ATTACHED_SEND_MAX: usize = 64 * 1024;

fn send_frame(py: Python<'_>, fd: PyFd, payload: &[u8], packets: bool) -> PyResult<()> {
    let mut sender = if packets {
        FrameSender::for_packets(payload)
    } else {
        FrameSender::new(payload)
    };
    if payload.len() <= ATTACHED_SEND_MAX {
        match sender.try_send(fd.borrow()) {
            Ok(true) => return Ok(()),
            Ok(false) | Err(ConnectionError::Interrupted) => {}
            Err(err) => return Err(err).or_raise(),
        }
    }
    wait_until(py, None, |until| {
        sender
            .send_until(fd.borrow(), until)
            .map(|done| done.then_some(()))
    })?;
    Ok(())
}

/// What a receive produced: the payload, or a header the reader must not trust.
type Received = Result<Vec<u8>, FrameError>;

fn receive_frame(
    py: Python<'_>,
    fd: PyFd,
    max_length: Option<u64>,
    timeout: Option<f64>,
    packets: bool,
) -> PyResult<Received> {
    let mut deadline = deadline_after(timeout)?;
    let mut receiver = if packets {
        FrameReceiver::for_packets(max_length)
    } else {
        FrameReceiver::new(max_length)
    };
    match receiver.try_receive(fd.borrow()) {
        Ok(Some(payload)) => return Ok(Ok(payload)),
        Err(ConnectionError::Frame(err)) => return Ok(Err(err)),
        Ok(None) | Err(ConnectionError::Interrupted) => {}
        Err(err) => return Err(err).or_raise(),
    }
    loop {
        let received = wait_until(py, deadline, |until| {
            match receiver.receive_until(fd.borrow(), until) {
                Ok(Some(payload)) => Ok(Some(Ok(payload))),
                Ok(None) => Ok(None),
                Err(ConnectionError::Frame(err)) => Ok(Some(Err(err))),
                Err(err) => Err(err),
            }
        })?;
        match received {
            Some(received) => return Ok(received),
            None if receiver.at_frame_boundary() => {
                return Err(PyTimeoutError::new_err("no message arrived in time"));
            }
            // Part of a frame is in: stopping now would leave the stream out of step.
            None => deadline = None,
        }
    }
}

/// Send `buffer` (any C-contiguous buffer) as one frame on descriptor `fd` (a packet
/// socket when `packets`, see `is_packet_socket`).
#[pyfunction]
#[pyo3(signature = (fd, buffer, packets=false, /))]
pub fn send_bytes(
    py: Python<'_>,
    fd: RawFd,
    buffer: &Bound<'_, PyAny>,
    packets: bool,
) -> PyResult<()> {
    let fd = PyFd::new(fd)?;
    if let Ok(bytes) = buffer.cast::<PyBytes>() {
        return send_frame(py, fd, bytes.as_bytes(), packets);
    }
    let held = HeldBuffer::readable(buffer)?;
    send_frame(py, fd, held.as_slice(), packets)
}

/// Whether `fd` is a `SOCK_SEQPACKET` socket, whose frames go as packets (ask once per
/// descriptor and pass the answer as `packets` to the other calls).
#[pyfunction]
pub fn is_packet_socket(fd: RawFd) -> PyResult<bool> {
    let fd = PyFd::new(fd)?;
    ferroproc_core::connection::is_packet_socket(fd.borrow()).or_raise()
}

/// Receive one frame from `fd`: its payload, or `None` when the header announces a
/// length over `maxlength` or an impossible one (the stream is then out of step).
#[pyfunction]
#[pyo3(signature = (fd, maxlength=None, timeout=None, packets=false))]
pub fn recv_bytes<'py>(
    py: Python<'py>,
    fd: RawFd,
    maxlength: Option<u64>,
    timeout: Option<f64>,
    packets: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let fd = PyFd::new(fd)?;
    Ok(receive_frame(py, fd, maxlength, timeout, packets)?
        .ok()
        .map(|payload| PyBytes::new(py, &payload)))
}

/// Receive one frame from `fd` into `buffer` at byte `offset`: the payload's length, or
/// the payload as `bytes` when it does not fit, or `None` for a bad header.
#[pyfunction]
#[pyo3(signature = (fd, buffer, offset=0, timeout=None, packets=false))]
pub fn recv_bytes_into<'py>(
    py: Python<'py>,
    fd: RawFd,
    buffer: &Bound<'py, PyAny>,
    offset: usize,
    timeout: Option<f64>,
    packets: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let fd = PyFd::new(fd)?;
    let mut held = HeldBuffer::writable(buffer)?;
    if offset > held.as_mut_slice().len() {
        return Err(PyValueError::new_err("offset too large"));
    }
    let payload = match receive_frame(py, fd, None, timeout, packets)? {
        Ok(payload) => payload,
        Err(_) => return Ok(None),
    };
    let room = &mut held.as_mut_slice()[offset..];
    if payload.len() > room.len() {
        return Ok(Some(PyBytes::new(py, &payload).into_any()));
    }
    room[..payload.len()].copy_from_slice(&payload);
    Ok(Some(payload.len().into_pyobject(py)?.into_any()))
}

/// Whether `fd` has something to read (a message, end of file or an error) within
/// `timeout` seconds (`None`: wait as long as it takes).
#[pyfunction]
#[pyo3(signature = (fd, timeout=0.0))]
pub fn poll(py: Python<'_>, fd: RawFd, timeout: Option<f64>) -> PyResult<bool> {
    let fd = PyFd::new(fd)?;
    let deadline = deadline_after(timeout)?;
    let now = Instant::now();
    match readable_until(fd.borrow(), now, false) {
        Ok(true) => return Ok(true),
        Ok(false) | Err(ConnectionError::Interrupted) => {}
        Err(err) => return Err(err).or_raise(),
    }
    if deadline.is_some_and(|deadline| deadline <= now) {
        return Ok(false);
    }
    let mut spin_first = true;
    let ready = wait_until(py, deadline, |until| {
        let ready = readable_until(fd.borrow(), until, std::mem::take(&mut spin_first))?;
        Ok::<_, ConnectionError>(ready.then_some(()))
    })?;
    Ok(ready.is_some())
}

/// Wait until at least one of `fds` is readable or `timeout` seconds pass (`None`:
/// forever); return the positions in `fds` of those that are, in order.
#[pyfunction]
#[pyo3(signature = (fds, timeout=None))]
pub fn wait(py: Python<'_>, fds: Vec<RawFd>, timeout: Option<f64>) -> PyResult<Vec<usize>> {
    let fds = fds
        .into_iter()
        .map(PyFd::new)
        .collect::<PyResult<Vec<_>>>()?;
    let deadline = deadline_after(timeout)?;
    let ready = wait_until(py, deadline, |until| {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(PyFd::borrow).collect();
        let flags = wait_readable(&borrowed, Some(until))?;
        let ready: Vec<usize> = (0..flags.len()).filter(|&i| flags[i]).collect();
        Ok::<_, ConnectionError>((!ready.is_empty()).then_some(ready))
    })?;
    Ok(ready.unwrap_or_default())
}
