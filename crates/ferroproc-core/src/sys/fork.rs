//! `fork(2)`.
#![allow(unsafe_code)]

use rustix::io::{Errno, Result};

/// Which side of a fork the caller is on.
pub(crate) enum ForkResult {
    /// The parent; the child's pid.
    Parent(i32),
    /// The new child.
    Child,
}

/// `fork()`: duplicates the calling process.
///
/// glibc's `fork` runs the `pthread_atfork` handlers and leaves `malloc` usable in the
/// child. The child of a multithreaded process has only the calling thread; locks held by
/// the others stay held forever, so until it execs or exits it should restrict itself to
/// async-signal-safe calls. That obligation is the caller's, as it is with `os.fork`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fork.2.html)
pub(crate) fn fork() -> Result<ForkResult> {
    // SAFETY: fork(2) takes no arguments and touches no memory of ours; both processes
    // continue with a valid copy of the address space. What the child may safely do
    // afterwards in a multithreaded program is the caller's contract (documented above and
    // on `process::fork`), not a precondition of the call itself.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(last_errno()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent(pid)),
    }
}

fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}
