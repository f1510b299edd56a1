//! A handle to a direct child process, known by its pidfd.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;

use super::deadline::Deadline;
use super::{ExitStatus, ProcessError, Result};
use crate::sys;

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
        let pidfd = sys::pidfd::pidfd_open(pid).map_err(|e| ProcessError::os("pidfd_open", e))?;
        Ok(Self {
            pid,
            pidfd,
            status: None,
        })
    }

    /// [`Child::from_pid`] for a child we just started: if its pidfd cannot be opened,
    /// the child is killed and reaped, so that nothing runs on unsupervised.
    pub(crate) fn adopt(pid: i32) -> Result<Self> {
        Self::from_pid(pid).inspect_err(|_| sys::pidfd::kill_and_reap(pid))
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that polls readable once the child has exited (its pidfd).
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// The exit status, if the child has been reaped already.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reaps the child if it has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            let reaped = sys::pidfd::reap_nohang(self.pidfd.as_fd())
                .map_err(|e| ProcessError::os("waitid", e))?;
            self.status = reaped.map(|r| match r {
                Ok(code) => ExitStatus::Exited(code),
                Err(signo) => ExitStatus::Signaled(signo),
            });
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` (forever if `None`) for the child to exit, then reaps it.
    /// Returns `Ok(None)` on timeout and [`ProcessError::Interrupted`](super::ProcessError)
    /// when a signal arrives, so the caller can run handlers and wait again.
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let deadline = Deadline::after(timeout);
        loop {
            let exited = sys::poll::readable(self.pidfd.as_fd(), deadline.remaining())
                .map_err(|e| ProcessError::os("poll", e))?;
            if !exited {
                return Ok(None);
            }
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
        }
    }

    /// Sends signal `signo` through the pidfd. Returns `Ok(false)` when the child has
    /// already exited (reaped or not), `Ok(true)` when the signal was delivered.
    pub fn signal(&self, signo: i32) -> Result<bool> {
        if self.status.is_some() {
            return Ok(false);
        }
        send_signal(self.pidfd.as_fd(), signo)
    }
}

/// Signals the process behind `pidfd` unless it has exited. The kernel would accept a
/// signal for a zombie, so exit is checked first through the pidfd's readability.
pub(crate) fn send_signal(pidfd: BorrowedFd<'_>, signo: i32) -> Result<bool> {
    if sys::poll::readable(pidfd, Some(Duration::ZERO)).map_err(|e| ProcessError::os("poll", e))? {
        return Ok(false);
    }
    match sys::pidfd::pidfd_send_signal(pidfd, signo) {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(e) => Err(ProcessError::os("pidfd_send_signal", e)),
    }
}
