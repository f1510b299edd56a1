//! A fork server: a process that forks children on request.
//!
//! The client (the process that wants children) creates the listening Unix socket with
//! [`listen`] in a private (0700) temporary directory and hands the listener to the server
//! process when it starts it. For each child the client calls [`request_fork`]: it connects,
//! sends its own pidfd and the descriptors the child needs (`SCM_RIGHTS`), and receives the
//! child's pid and pidfd. The server later writes the child's return code on the same
//! connection when it reaps it, so the connection is the child's sentinel for the client.
//!
//! Wire protocol (all integers little-endian):
//! - request: `b"FPFS"`, `u32` count of descriptors; ancillary `SCM_RIGHTS`
//!   `[client pidfd, fd_1, ..., fd_n]`.
//! - reply on fork: `b"FPOK"`, `i32` pid; ancillary `SCM_RIGHTS [child pidfd]`.
//! - reply on exit: `i32` return code (Python convention: negative signal number).
//!
//! The server side is split so the embedding runtime does the fork itself (the Python
//! bindings must run the interpreter's fork hooks): [`Server::next_request`] waits, reaping
//! children and reporting their status as they exit; the caller forks; then
//! [`Server::child_started`] in the server or [`Server::into_child`] in the child.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Child, ExitStatus, ParentLink, Result};

/// Creates a listening Unix socket for a fork server in a fresh 0700 directory under
/// `dir` (the system's temporary directory if `None`). Returns the listener and its path.
pub fn listen(dir: Option<&Path>) -> Result<(OwnedFd, PathBuf)> {
    let _ = dir;
    todo!()
}

/// What the server was woken for.
#[derive(Debug)]
pub enum Event {
    /// A client asked for a child.
    Request(Request),
    /// The process that started the server has exited; the server should exit too.
    ParentExited,
    /// The timeout passed with nothing to do.
    Timeout,
}

/// One client's request for a child, as received by the server.
#[derive(Debug)]
pub struct Request {
    conn: OwnedFd,
    client: ParentLink,
    fds: Vec<OwnedFd>,
}

impl Request {
    /// The requesting client: the new child's parent in the program's sense.
    pub fn client(&self) -> &ParentLink {
        &self.client
    }

    /// The descriptors the client passed for the child, in order.
    pub fn fds(&self) -> &[OwnedFd] {
        &self.fds
    }

    /// Splits the request into the client link and the descriptors (used in the child).
    pub fn into_parts(self) -> (ParentLink, Vec<OwnedFd>) {
        (self.client, self.fds)
    }
}

/// The server side.
#[derive(Debug)]
pub struct Server {
    listener: OwnedFd,
    parent: ParentLink,
    children: Vec<(Child, OwnedFd)>,
}

impl Server {
    /// A server accepting on `listener`, exiting its loop when `parent` exits.
    pub fn new(listener: OwnedFd, parent: ParentLink) -> Self {
        Self { listener, parent, children: Vec::new() }
    }

    /// Waits up to `timeout` (forever if `None`) for a request. Meanwhile reaps children
    /// that exit and writes their return code to their client's connection. A client that
    /// sends a malformed request is disconnected and the wait goes on.
    pub fn next_request(&mut self, timeout: Option<Duration>) -> Result<Event> {
        let _ = timeout;
        todo!("{:?} {:?} {:?}", self.listener, self.parent, self.children)
    }

    /// In the server, after forking for `request`: replies with the child's pid and pidfd
    /// and supervises it until it exits.
    pub fn child_started(&mut self, request: Request, child: Child) -> Result<()> {
        let _ = (request, child);
        todo!()
    }

    /// In the forked child: closes the server's descriptors (listener, other clients'
    /// connections, other children's pidfds) and returns the request.
    pub fn into_child(self, request: Request) -> Request {
        let _ = self;
        request
    }
}

/// The client's view of a child forked by a server.
#[derive(Debug)]
pub struct ServerChild {
    pid: i32,
    pidfd: OwnedFd,
    conn: OwnedFd,
    status: Option<ExitStatus>,
}

/// Asks the server listening at `address` for a child that receives `fds`.
pub fn request_fork(address: &Path, fds: &[BorrowedFd<'_>]) -> Result<ServerChild> {
    let _ = (address, fds);
    todo!()
}

impl ServerChild {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Polls readable once the server has reported the child's exit (or has died).
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        todo!("{:?} {:?}", self.conn, self.pidfd)
    }

    /// The exit status, if it has been received already.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reads the exit status if the server has sent it, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        todo!()
    }

    /// Waits up to `timeout` for the exit status; same contract as
    /// [`Child::wait_timeout`]. If the server dies first, waits for the child itself
    /// through its pidfd and reports [`ProcessError::ForkServer`](super::ProcessError).
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
        todo!("{timeout:?}")
    }

    /// Sends `signo` through the child's pidfd; `Ok(false)` when it has already exited.
    pub fn signal(&self, signo: i32) -> Result<bool> {
        todo!("{signo}")
    }
}
