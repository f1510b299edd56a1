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
//! - request: `b"FPFS"`, `i32` pid of the client, `u32` count of descriptors; ancillary
//!   `SCM_RIGHTS` `[client pidfd, fd_1, ..., fd_n]`. At most 252 descriptors (the kernel
//!   passes 253 per message, the pidfd included).
//! - reply on fork: `b"FPOK"`, `i32` pid; ancillary `SCM_RIGHTS [child pidfd]`.
//! - reply on exit: `i32` return code (Python convention: negative signal number).
//!
//! A request that is malformed, or not complete within a few seconds of the connection,
//! is answered by closing the connection; the client sees end of stream instead of a reply.
//!
//! The server side is split so the embedding runtime does the fork itself (the Python
//! bindings must run the interpreter's fork hooks): [`Server::next_request`] waits, reaping
//! children and reporting their status as they exit; the caller forks; then
//! [`Server::child_started`] in the server or [`Server::into_child`] in the child.

use std::fs::DirBuilder;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;

use super::child::send_signal;
use super::deadline::Deadline;
use super::{Child, ExitStatus, ParentLink, ProcessError, Result};
use crate::sys;
use crate::sys::scm::MAX_FDS;

const REQUEST_MAGIC: &[u8; 4] = b"FPFS";
const REPLY_MAGIC: &[u8; 4] = b"FPOK";
const REQUEST_LEN: usize = 12;
const REPLY_LEN: usize = 8;
/// How long the server waits for a request once a client has connected: long enough for
/// any live client, short enough that a stuck one delays the reaping of others only briefly.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const BACKLOG: i32 = 128;
/// The exit code reported for a child whose fork server died before telling its status:
/// only the server could reap it. 255 is the stdlib's choice for the same case.
pub const UNKNOWN_EXIT_CODE: i32 = 255;

/// Creates a listening Unix socket for a fork server in a fresh 0700 directory under
/// `dir` (the system's temporary directory if `None`). Returns the listener and its path.
///
/// The caller removes the socket and its directory (the path's parent) when done.
pub fn listen(dir: Option<&Path>) -> Result<(OwnedFd, PathBuf)> {
    let base = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let private = base.join(format!("ferroproc-{}", random_hex()?));
    DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| io_error("mkdir", &e))?;
    let path = private.join("sock");
    match sys::scm::listen(&path, BACKLOG) {
        Ok(listener) => Ok((listener, path)),
        Err((op, e)) => {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(&private);
            Err(ProcessError::os(op, e))
        }
    }
}

/// 128 random bits in hex, so that other users cannot guess (and pre-create) the path.
fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| io_error("read", &e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn io_error(op: &'static str, e: &std::io::Error) -> ProcessError {
    ProcessError::os(op, Errno::from_io_error(e).unwrap_or(Errno::IO))
}

/// Reads exactly `buf.len()` bytes, taking the descriptors that come with the first
/// ones. `None` when the peer closed the stream first or sent more descriptors than
/// `max_fds`. Retries on `EINTR`; any receive timeout on the socket applies.
fn recv_exact_with_fds(
    conn: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> rustix::io::Result<Option<Vec<OwnedFd>>> {
    let first = loop {
        match sys::scm::recv_with_fds(conn, buf, max_fds) {
            Err(Errno::INTR) => {}
            other => break other?,
        }
    };
    if first.len == 0 || first.truncated {
        return Ok(None);
    }
    let mut filled = first.len;
    while filled < buf.len() {
        match sys::scm::recv(conn, &mut buf[filled..]) {
            Ok(0) => return Ok(None),
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(first.fds))
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
    /// The connection to the client; `None` once handed to the child, which must not keep
    /// the client's sentinel open.
    conn: Option<OwnedFd>,
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
    /// Supervised children, each with the connection its exit status goes to.
    children: Vec<(Child, OwnedFd)>,
}

impl Server {
    /// A server accepting on `listener`, exiting its loop when `parent` exits.
    pub fn new(listener: OwnedFd, parent: ParentLink) -> Self {
        Self {
            listener,
            parent,
            children: Vec::new(),
        }
    }

    /// Waits up to `timeout` (forever if `None`) for a request. Meanwhile reaps children
    /// that exit and writes their return code to their client's connection. A client that
    /// sends a malformed request is disconnected and the wait goes on.
    pub fn next_request(&mut self, timeout: Option<Duration>) -> Result<Event> {
        let deadline = Deadline::after(timeout);
        loop {
            let ready = {
                let mut fds = vec![self.listener.as_fd(), self.parent.sentinel()];
                fds.extend(self.children.iter().map(|(child, _)| child.sentinel()));
                sys::poll::poll_readable(&fds, deadline.remaining())
                    .map_err(|e| ProcessError::os("poll", e))?
            };
            if !ready.contains(&true) {
                return Ok(Event::Timeout);
            }
            // Children first, so their clients hear of them even when we are about to go.
            self.report_exits(&ready[2..])?;
            if ready[1] {
                return Ok(Event::ParentExited);
            }
            if ready[0] {
                if let Some(request) = self.accept_request()? {
                    return Ok(Event::Request(request));
                }
            }
        }
    }

    /// Reaps the children flagged in `exited` and sends each status to its client.
    fn report_exits(&mut self, exited: &[bool]) -> Result<()> {
        for i in (0..exited.len()).rev() {
            if !exited[i] {
                continue;
            }
            let status = match self.children[i].0.try_wait() {
                Ok(Some(status)) => Some(status),
                Ok(None) => continue,
                // Someone else reaped it (a stray waitpid(-1)): the status is lost, and
                // closing the connection tells the client the server cannot report it.
                Err(ProcessError::Os {
                    source: Errno::CHILD,
                    ..
                }) => None,
                Err(e) => return Err(e),
            };
            let (_child, conn) = self.children.swap_remove(i);
            if let Some(status) = status {
                // The client may be gone or not listening any more; nothing to do then.
                let _ = sys::scm::send(conn.as_fd(), &status.returncode().to_le_bytes());
            }
        }
        Ok(())
    }

    /// Accepts a connection and reads its request; `None` when it was not a valid one.
    fn accept_request(&mut self) -> Result<Option<Request>> {
        let conn = match sys::scm::accept(self.listener.as_fd()) {
            Ok(conn) => conn,
            // The client gave up between poll and accept, or someone else accepted it.
            Err(Errno::AGAIN | Errno::CONNABORTED) => return Ok(None),
            Err(e) => return Err(ProcessError::os("accept", e)),
        };
        if sys::scm::set_recv_timeout(conn.as_fd(), Some(REQUEST_TIMEOUT)).is_err() {
            return Ok(None);
        }
        let mut header = [0u8; REQUEST_LEN];
        let Ok(Some(mut fds)) = recv_exact_with_fds(conn.as_fd(), &mut header, MAX_FDS) else {
            return Ok(None);
        };
        let [m0, m1, m2, m3, p0, p1, p2, p3, c0, c1, c2, c3] = header;
        let magic = [m0, m1, m2, m3];
        let pid = i32::from_le_bytes([p0, p1, p2, p3]);
        let count = u32::from_le_bytes([c0, c1, c2, c3]);
        let count_matches = usize::try_from(count).is_ok_and(|n| n + 1 == fds.len());
        if &magic != REQUEST_MAGIC || pid <= 0 || !count_matches {
            return Ok(None);
        }
        let client = ParentLink::from_pidfd(pid, fds.remove(0));
        Ok(Some(Request {
            conn: Some(conn),
            client,
            fds,
        }))
    }

    /// In the server, after forking for `request`: replies with the child's pid and pidfd
    /// and supervises it until it exits.
    pub fn child_started(&mut self, request: Request, child: Child) -> Result<()> {
        let Some(conn) = request.conn else {
            return Err(ProcessError::ForkServer(
                "the request was already handed to a child".into(),
            ));
        };
        let mut reply = [0u8; REPLY_LEN];
        reply[..4].copy_from_slice(REPLY_MAGIC);
        reply[4..].copy_from_slice(&child.pid().to_le_bytes());
        let sent = sys::scm::send_with_fds(conn.as_fd(), &reply, &[child.sentinel()]);
        // Supervised even if the client is gone: someone has to reap it.
        self.children.push((child, conn));
        match sent {
            Ok(_) | Err(Errno::PIPE | Errno::CONNRESET) => Ok(()),
            Err(e) => Err(ProcessError::os("sendmsg", e)),
        }
    }

    /// In the forked child: closes the server's descriptors (listener, other clients'
    /// connections, other children's pidfds) and returns the request.
    pub fn into_child(self, mut request: Request) -> Request {
        drop(self);
        request.conn = None;
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
    /// The return code as far as it has arrived (a stream may deliver it in pieces).
    code: [u8; 4],
    code_len: usize,
    /// The server closed the connection before sending the return code.
    server_gone: bool,
}

/// Asks the server listening at `address` for a child that receives `fds`.
///
/// Blocks until the server has forked the child (retrying on `EINTR`, since giving up
/// halfway would leave a child nobody hears of). [`ProcessError::ForkServer`] if the
/// server closes the connection instead.
pub fn request_fork(address: &Path, fds: &[BorrowedFd<'_>]) -> Result<ServerChild> {
    let count = u32::try_from(fds.len())
        .ok()
        .filter(|&n| (n as usize) < MAX_FDS)
        .ok_or(ProcessError::os("sendmsg", Errno::INVAL))?;
    let conn = sys::scm::connect(address).map_err(|(op, e)| ProcessError::os(op, e))?;
    let own = ParentLink::own_pidfd()?;
    let mut request = [0u8; REQUEST_LEN];
    request[..4].copy_from_slice(REQUEST_MAGIC);
    request[4..8].copy_from_slice(&sys::pidfd::getpid().to_le_bytes());
    request[8..].copy_from_slice(&count.to_le_bytes());
    let mut passed = Vec::with_capacity(fds.len() + 1);
    passed.push(own.as_fd());
    passed.extend_from_slice(fds);
    send_all(conn.as_fd(), &request, &passed)?;

    let mut reply = [0u8; REPLY_LEN];
    let received = match recv_exact_with_fds(conn.as_fd(), &mut reply, 1) {
        Ok(received) => received,
        Err(Errno::CONNRESET) => None,
        Err(e) => return Err(ProcessError::os("recvmsg", e)),
    };
    let Some(mut received) = received else {
        return Err(ProcessError::ForkServer(
            "the fork server closed the connection instead of starting a child".into(),
        ));
    };
    let [m0, m1, m2, m3, p0, p1, p2, p3] = reply;
    let magic = [m0, m1, m2, m3];
    let pid = i32::from_le_bytes([p0, p1, p2, p3]);
    if &magic != REPLY_MAGIC || pid <= 0 || received.len() != 1 {
        return Err(ProcessError::ForkServer(
            "malformed reply to a fork request".into(),
        ));
    }
    let pidfd = received.remove(0);
    Ok(ServerChild {
        pid,
        pidfd,
        conn,
        status: None,
        code: [0; 4],
        code_len: 0,
        server_gone: false,
    })
}

/// Sends `bytes` with `fds` attached to the first of them, retrying on `EINTR`.
fn send_all(conn: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let result = if sent == 0 {
            sys::scm::send_with_fds(conn, bytes, fds)
        } else {
            sys::scm::send(conn, &bytes[sent..])
        };
        match result {
            Ok(n) => sent += n,
            Err(Errno::INTR) => {}
            Err(Errno::PIPE | Errno::CONNRESET) => {
                return Err(ProcessError::ForkServer(
                    "the fork server closed the connection before the request was sent".into(),
                ))
            }
            Err(e) => return Err(ProcessError::os("sendmsg", e)),
        }
    }
    Ok(())
}

impl ServerChild {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Polls readable once the server has reported the child's exit (or has died).
    pub fn sentinel(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }

    /// The exit status, if it has been received already.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reads the exit status if the server has sent it, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.wait_timeout(Some(Duration::ZERO))
    }

    /// Waits up to `timeout` for the exit status; same contract as
    /// [`Child::wait_timeout`]. If the server dies first, waits for the child itself
    /// through its pidfd and reports it as exited with [`UNKNOWN_EXIT_CODE`].
    pub fn wait_timeout(&mut self, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
        let deadline = Deadline::after(timeout);
        loop {
            if self.status.is_some() {
                return Ok(self.status);
            }
            if self.server_gone {
                // Only the server could reap the child and learn its status; the most we
                // can do is wait for it to end, so that the caller does not race it.
                let exited = sys::poll::readable(self.pidfd.as_fd(), deadline.remaining())
                    .map_err(|e| ProcessError::os("poll", e))?;
                if exited {
                    self.status = Some(ExitStatus::Exited(UNKNOWN_EXIT_CODE));
                }
                return Ok(self.status);
            }
            let readable = sys::poll::readable(self.conn.as_fd(), deadline.remaining())
                .map_err(|e| ProcessError::os("poll", e))?;
            if !readable {
                return Ok(None);
            }
            self.read_code()?;
        }
    }

    /// Takes whatever part of the return code has arrived, without blocking.
    fn read_code(&mut self) -> Result<()> {
        match sys::scm::recv_nonblocking(self.conn.as_fd(), &mut self.code[self.code_len..]) {
            Ok(0) | Err(Errno::CONNRESET) => self.server_gone = true,
            Ok(n) => {
                self.code_len += n;
                if self.code_len == self.code.len() {
                    let code = i32::from_le_bytes(self.code);
                    self.status = Some(ExitStatus::from_returncode(code));
                }
            }
            Err(Errno::AGAIN) => {}
            Err(e) => return Err(ProcessError::os("recv", e)),
        }
        Ok(())
    }

    /// Sends `signo` through the child's pidfd; `Ok(false)` when it has already exited.
    pub fn signal(&self, signo: i32) -> Result<bool> {
        if self.status.is_some() {
            return Ok(false);
        }
        send_signal(self.pidfd.as_fd(), signo)
    }
}
