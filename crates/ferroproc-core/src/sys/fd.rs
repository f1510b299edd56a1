//! Descriptor plumbing.

use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use rustix::io::Result;

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a close-on-exec copy of `fd` numbered `min` or above.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub(crate) fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, min)
}
