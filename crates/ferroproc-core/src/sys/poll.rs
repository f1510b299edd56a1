//! Waiting for descriptors to become readable.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Result;

/// `poll(fds, n, timeout)` for readability: one flag per descriptor, true when it is
/// readable, hung up or in error (each of which the next read reports). `None` waits
/// forever, as does a timeout too long to express.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/poll.2.html)
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Vec<bool>> {
    let mut pollfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    rustix::event::poll(&mut pollfds, timeout.as_ref())?;
    let ready = PollFlags::IN | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
    Ok(pollfds
        .iter()
        .map(|p| p.revents().intersects(ready))
        .collect())
}

/// [`poll_readable`] for one descriptor.
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
    Ok(poll_readable(&[fd], timeout)?[0])
}
