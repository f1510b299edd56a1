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

/// Opens the file behind descriptor `fd` of process `pid` afresh, read-write and
/// close-on-exec, through `/proc/<pid>/fd/<fd>`: how a process reaches a memfd that another
/// process of the same user holds, without inheriting it or receiving it over a socket.
/// The kernel checks the same permission as for reading that process's memory maps.
///
/// # References
///  - [proc_pid_fd(5)](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html)
pub(crate) fn open_of_process(pid: u32, fd: u32) -> Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let path = format!("/proc/{pid}/fd/{fd}");
    rustix::fs::open(
        path.as_str(),
        OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}
