//! Waiting for any of many descriptors to become readable (`connection.wait`).

use std::os::fd::BorrowedFd;
use std::time::Instant;

use super::error::ConnectionError;
use crate::sys::poll::poll_readable;

/// Waits until at least one of `fds` is readable (has bytes, end of file, a hang-up or
/// an error to report), or until `until` passes (`None`: no limit). Returns one flag per
/// descriptor, all false on timeout. A descriptor that is not open counts as ready, as it
/// does for the stdlib's `selectors.PollSelector`: the next read reports the error.
pub fn wait_readable(
    fds: &[BorrowedFd<'_>],
    until: Option<Instant>,
) -> Result<Vec<bool>, ConnectionError> {
    let timeout = until.map(|until| until.saturating_duration_since(Instant::now()));
    poll_readable(fds, timeout).map_err(|e| ConnectionError::os("poll", e))
}
