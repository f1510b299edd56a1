//! Turning a caller's timeout into the time left for each wait of a loop.

use std::time::{Duration, Instant};

/// When a wait of `timeout` must end; `None` inside means never.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// `timeout` from now; forever if `None` or too far to represent.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// The time left, for `poll`: `None` for forever, zero once passed.
    pub(crate) fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}
