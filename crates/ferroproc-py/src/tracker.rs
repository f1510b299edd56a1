//! Bindings of the resource tracker (`ferroproc_core::tracker`): the tracker process's
//! loop, sending one message, and cleaning up one resource.

use std::os::fd::RawFd;

use ferroproc_core::tracker::{self, Command, Message, Pumped, ResourceType, Tracker};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::blocking::TICK;
use crate::errors::{CoreError, OrRaise};
use crate::fd::PyFd;

fn resource_type(rtype: &str) -> PyResult<ResourceType> {
    ResourceType::parse(rtype)
        .ok_or_else(|| PyValueError::new_err(format!("unknown resource type {rtype:?}")))
}

/// Runs the tracker on `fd`, the read end of its pipe, which it takes over and closes:
/// reads messages until every writer has closed the pipe, then cleans up what is still
/// registered, reporting on standard error. Waits with the GIL released, running signal
/// handlers every tick; if one raises, the cleanup still happens before the exception
/// propagates.
#[pyfunction]
pub fn run_resource_tracker(py: Python<'_>, fd: RawFd) -> PyResult<()> {
    let mut tracker = Tracker::new(PyFd::new(fd)?.into_owned());
    let outcome = loop {
        let pumped = py.detach(|| tracker.pump(Some(TICK), &mut std::io::stderr()));
        match pumped {
            Ok(Pumped::Open) => {}
            Ok(Pumped::Closed) => break Ok(()),
            Err(err) => break Err(CoreError::from(err).into()),
        }
        if let Err(err) = py.check_signals() {
            break Err(err);
        }
    };
    py.detach(|| tracker.finish(&mut std::io::stderr()));
    outcome
}

/// Writes `command:name:rtype` to the tracker's pipe `fd` in one atomic write.
/// `ValueError` if the message is too long or a field cannot be written; `OSError`
/// (`BrokenPipeError` once the tracker is gone) if the write fails.
#[pyfunction]
pub fn resource_tracker_send(
    py: Python<'_>,
    fd: RawFd,
    command: &str,
    name: &str,
    rtype: &str,
) -> PyResult<()> {
    let command = Command::parse(command)
        .ok_or_else(|| PyValueError::new_err(format!("unrecognized command {command:?}")))?;
    let message = Message::new(command, name, resource_type(rtype)?);
    let fd = PyFd::new(fd)?;
    py.detach(|| tracker::send(fd.borrow(), &message))
        .or_raise()
}

/// Cleans up one resource as the tracker would: unlinks a `shared_memory` name, removes a
/// `folder`; nothing for `semaphore` and `noop`. `OSError` if that fails.
#[pyfunction]
pub fn cleanup_resource(py: Python<'_>, rtype: &str, name: &str) -> PyResult<()> {
    let rtype = resource_type(rtype)?;
    py.detach(|| tracker::cleanup(rtype, name)).or_raise()
}
