//! The link from a child to its parent: is the parent alive, and dying with it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;

use super::{ProcessError, Result};
use crate::sys;

/// A child's handle on its parent process, held by a pidfd of the parent.
#[derive(Debug)]
pub struct ParentLink {
    pid: i32,
    pidfd: OwnedFd,
}

impl ParentLink {
    /// Links to the parent whose pid is `expected_ppid`. Returns `Ok(None)` when that
    /// process is no longer this process's parent (it died before the link was made);
    /// the check after `pidfd_open` rules out a recycled pid.
    pub fn to_parent(expected_ppid: i32) -> Result<Option<Self>> {
        if expected_ppid <= 0 {
            return Ok(None);
        }
        let pidfd = match sys::pidfd::pidfd_open(expected_ppid) {
            Ok(pidfd) => pidfd,
            Err(Errno::SRCH) => return Ok(None),
            Err(e) => return Err(ProcessError::os("pidfd_open", e)),
        };
        // If the parent died before pidfd_open, its pid may since belong to a stranger;
        // we are then reparented, so getppid tells. If it dies after, the pidfd is its.
        if sys::pidfd::getppid() != expected_ppid {
            return Ok(None);
        }
        Ok(Some(Self {
            pid: expected_ppid,
            pidfd,
        }))
    }

    /// Links to a process through a pidfd received from it (fork-server children, whose
    /// parent in the kernel's sense is the server, not the process that asked for them).
    pub fn from_pidfd(pid: i32, pidfd: OwnedFd) -> Self {
        Self { pid, pidfd }
    }

    /// A pidfd of this very process, to send to a fork server.
    pub fn own_pidfd() -> Result<OwnedFd> {
        sys::pidfd::pidfd_open(sys::pidfd::getpid()).map_err(|e| ProcessError::os("pidfd_open", e))
    }

    /// The parent's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that polls readable once the parent has exited.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Waits up to `timeout` (forever if `None`) for the parent to exit; `Ok(true)` if it
    /// has. [`ProcessError::Interrupted`](super::ProcessError) on a signal.
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Result<bool> {
        sys::poll::readable(self.pidfd.as_fd(), timeout).map_err(|e| ProcessError::os("poll", e))
    }

    /// Kills this process with `SIGKILL` as soon as the parent exits, however it exits.
    ///
    /// A background thread waits on a duplicate of the pidfd. Unlike
    /// `PR_SET_PDEATHSIG`, this does not depend on which thread of the parent started us.
    /// If the parent is already gone, the process is killed at once.
    ///
    /// Threads do not survive `fork`: a process forked from this one must call this again.
    pub fn die_with_parent(&self) -> Result<()> {
        if self.wait_timeout(Some(Duration::ZERO))? {
            sys::pidfd::kill_self();
        }
        // The thread owns its own copy, so dropping this link does not cut the lifeline.
        let pidfd =
            sys::fd::dup_above(self.pidfd.as_fd(), 0).map_err(|e| ProcessError::os("fcntl", e))?;
        std::thread::Builder::new()
            .name("ferroproc-lifeline".into())
            .spawn(move || watch_parent(pidfd))
            .map_err(|e| {
                let errno = e
                    .raw_os_error()
                    .map_or(Errno::AGAIN, Errno::from_raw_os_error);
                ProcessError::os("pthread_create", errno)
            })?;
        Ok(())
    }
}

/// The lifeline thread: kill the process once `pidfd` says the parent has exited.
fn watch_parent(pidfd: OwnedFd) {
    loop {
        match sys::poll::readable(pidfd.as_fd(), None) {
            Ok(true) => break,
            // Signals and memory pressure are passing; keep watching.
            Ok(false) | Err(Errno::INTR | Errno::AGAIN | Errno::NOMEM) => {}
            // The parent can no longer be watched; outliving it unnoticed would break the
            // promise this thread exists for, so err on the side of dying.
            Err(_) => break,
        }
    }
    sys::pidfd::kill_self();
}
