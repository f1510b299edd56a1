//! A handle to a direct child process, known by its pidfd.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use super::{ExitStatus, Result};

/// A direct child of this process (started by [`fork`](super::fork) or
/// [`SpawnCommand`](super::SpawnCommand)), held by a pidfd.
///
/// The child is reaped by [`Child::try_wait`]/[`Child::wait_timeout`]; once reaped its
/// status is cached and later calls return it without a system call. Dropping a `Child`
/// closes the pidfd but neither kills nor reaps the process.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
}

impl Child {
    /// Opens a pidfd for `pid`, which must be an unreaped child of this process (so the
    /// pid cannot have been recycled).
    pub fn from_pid(pid: i32) -> Result<Self> {
        todo!("pidfd_open({pid})")
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that polls readable once the child has exited (its pidfd).
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        todo!("{:?}", self.pidfd)
    }

    /// The exit status, if the child has been reaped already.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reaps the child if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        todo!()
    }

    /// Waits up to `timeout` (forever if `None`) for the child to exit, then reaps it.
    /// Returns `Ok(None)` on timeout and [`ProcessError::Interrupted`](super::ProcessError)
    /// when a signal arrives, so the caller can run handlers and wait again.
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
        todo!("{timeout:?}")
    }

    /// Sends signal `signo` through the pidfd. Returns `Ok(false)` when the child has
    /// already exited (reaped or not), `Ok(true)` when the signal was delivered.
    pub fn signal(&self, signo: i32) -> Result<bool> {
        todo!("{signo}")
    }
}
