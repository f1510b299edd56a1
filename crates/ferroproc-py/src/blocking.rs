//! The one helper every blocking call goes through.
//!
//! CPython's `SemLock.acquire` pattern: wait with the GIL released, but never longer than
//! one [`TICK`] at a time, and between slices run the interpreter's signal handlers, so
//! Ctrl-C (or any handler that raises) interrupts a wait promptly.

use std::time::{Duration, Instant};

use ferroproc_core::process::ProcessError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::OrRaise;

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

/// Runs `attempt(slice)` with the GIL released until it yields a value or `deadline`
/// passes, checking signals between slices. `attempt` waits at most `slice` and returns
/// `Ok(None)` when nothing happened in that time.
pub fn wait_until<T, F>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: F,
) -> PyResult<Option<T>>
where
    T: Send,
    F: FnMut(Duration) -> Result<Option<T>, ProcessError> + Send,
{
    loop {
        let slice = match deadline {
            None => TICK,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(TICK),
        };
        match py.detach(|| attempt(slice)) {
            Ok(Some(value)) => return Ok(Some(value)),
            Ok(None) | Err(ProcessError::Interrupted) => {}
            Err(other) => return Err(other).or_raise(),
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(None);
        }
    }
}
