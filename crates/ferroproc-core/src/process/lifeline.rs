//! The link from a child to its parent: is the parent alive, and dying with it.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use super::Result;

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
        let _ = expected_ppid;
        todo!()
    }

    /// Links to a process through a pidfd received from it (fork-server children, whose
    /// parent in the kernel's sense is the server, not the process that asked for them).
    pub fn from_pidfd(pid: i32, pidfd: OwnedFd) -> Self {
        Self { pid, pidfd }
    }

    /// A pidfd of this very process, to send to a fork server.
    pub fn own_pidfd() -> Result<OwnedFd> {
        todo!()
    }

    /// The parent's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that polls readable once the parent has exited.
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        todo!("{:?}", self.pidfd)
    }

    /// Waits up to `timeout` (forever if `None`) for the parent to exit; `Ok(true)` if it
    /// has. [`ProcessError::Interrupted`](super::ProcessError) on a signal.
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Result<bool> {
        todo!("{timeout:?}")
    }

    /// Kills this process with `SIGKILL` as soon as the parent exits, however it exits.
    ///
    /// A background thread waits on a duplicate of the pidfd. Unlike
    /// `PR_SET_PDEATHSIG`, this does not depend on which thread of the parent started us.
    /// If the parent is already gone, the process is killed at once.
    pub fn die_with_parent(&self) -> Result<()> {
        todo!()
    }
}
