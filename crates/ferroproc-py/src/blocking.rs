//! The one helper every blocking call goes through.
//!
//! CPython's `SemLock.acquire` pattern: wait with the GIL released, but never longer than
//! one [`TICK`] at a time, and between slices run the interpreter's signal handlers, so
//! Ctrl-C (or any handler that raises) interrupts a wait promptly.

use std::time::{Duration, Instant};

use ferroproc_core::process::ProcessError;
use ferroproc_core::sync::SyncError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::{CoreError, OrRaise};

/// The longest the main thread waits without running Python's signal handlers.
pub const TICK: Duration = Duration::from_millis(50);

/// Turns a Python timeout (seconds, `None` = forever) into a deadline.
pub fn deadline_after(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(seconds) if seconds.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
        Some(seconds) => {
            let seconds = seconds.max(0.0);
            Ok(Some(
                Duration::try_from_secs_f64(seconds)
                    .ok()
                    .and_then(|span| Instant::now().checked_add(span))
                    // An absurdly long timeout is as good as none.
                    .unwrap_or_else(far_future),
            ))
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(60 * 60 * 24 * 365)
}

/// The end of the next slice of a wait that must end by `deadline`.
pub fn slice_end(deadline: Option<Instant>) -> Instant {
    let tick = Instant::now() + TICK;
    deadline.map_or(tick, |deadline| deadline.min(tick))
}

/// A core error that may just mean "a signal arrived" (`EINTR`).
pub trait MaybeInterrupted {
    /// Whether this error is the core's `Interrupted`.
    fn is_interrupted(&self) -> bool;
}

impl MaybeInterrupted for ProcessError {
    fn is_interrupted(&self) -> bool {
        matches!(self, ProcessError::Interrupted)
    }
}

impl MaybeInterrupted for ferroproc_core::store::StoreError {
    fn is_interrupted(&self) -> bool {
        matches!(
            self,
            ferroproc_core::store::StoreError::Sync(SyncError::Interrupted)
        )
    }
}

impl MaybeInterrupted for SyncError {
    fn is_interrupted(&self) -> bool {
        matches!(self, SyncError::Interrupted)
    }
}

/// Runs `attempt(slice_deadline)` with the GIL released until it yields a value or
/// `deadline` passes, checking signals between slices. `attempt` waits at most until the
/// deadline it is given and returns `Ok(None)` when nothing happened by then.
pub fn wait_until<T, E, F>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: F,
) -> PyResult<Option<T>>
where
    T: Send,
    E: MaybeInterrupted + Send,
    CoreError: From<E>,
    F: FnMut(Instant) -> Result<Option<T>, E> + Send,
{
    loop {
        let until = slice_end(deadline);
        match py.detach(|| attempt(until)) {
            Ok(Some(value)) => return Ok(Some(value)),
            Ok(None) => {}
            Err(err) if err.is_interrupted() => {}
            Err(other) => return Err(other).or_raise(),
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(None);
        }
    }
}
