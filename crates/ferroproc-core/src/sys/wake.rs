//! An eventfd: a descriptor one thread makes readable to wake another out of `poll`.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::EventfdFlags;
use rustix::io::{Errno, Result};

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`.
///
/// # References
///  - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
pub(crate) fn eventfd() -> Result<OwnedFd> {
    rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

/// Adds 1 to the counter, making the descriptor readable. A full counter is already
/// readable, so `EAGAIN` is success.
pub(crate) fn signal(fd: BorrowedFd<'_>) -> Result<()> {
    match rustix::io::write(fd, &1u64.to_ne_bytes()) {
        Ok(_) | Err(Errno::AGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Resets the counter to 0 so the descriptor stops polling readable.
pub(crate) fn drain(fd: BorrowedFd<'_>) -> Result<()> {
    let mut buf = [0u8; 8];
    match rustix::io::read(fd, &mut buf) {
        Ok(_) | Err(Errno::AGAIN) => Ok(()),
        Err(e) => Err(e),
    }
}
