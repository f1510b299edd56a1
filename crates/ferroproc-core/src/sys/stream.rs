//! Reading and writing byte streams (sockets and pipes) without ever blocking.
//!
//! Sockets get `MSG_DONTWAIT` per call, so nothing changes the descriptor's flags, which
//! other processes holding the same open file may rely on. Pipes have no per-call flag:
//! callers first ask [`ready`] and then read or write at most what cannot block.

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::{Errno, Result};
use rustix::net::{RecvFlags, SendAncillaryBuffer, SendFlags};

/// The most bytes a pipe write is guaranteed to take whole once `poll` said the pipe is
/// writable (`PIPE_BUF`; Linux frees pipe space a page at a time).
pub(crate) const PIPE_ATOMIC_WRITE: usize = 4096;

/// `recv(fd, buf, MSG_DONTWAIT)`: `Ok(None)` when nothing is there yet, `Ok(Some(0))` at
/// end of file. Fails with `ENOTSOCK` on a pipe.
///
/// # References
///  - [recv(2)](https://man7.org/linux/man-pages/man2/recv.2.html)
pub(crate) fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>> {
    match rustix::net::recv(fd, buf, RecvFlags::DONTWAIT) {
        Ok((n, _)) => Ok(Some(n)),
        Err(Errno::AGAIN) => Ok(None),
        Err(other) => Err(other),
    }
}

/// `getsockopt(fd, SOL_SOCKET, SO_TYPE) == SOCK_SEQPACKET`: false for other sockets and
/// for descriptors that are not sockets.
///
/// # References
///  - [socket(7)](https://man7.org/linux/man-pages/man7/socket.7.html)
pub(crate) fn is_packet_socket(fd: BorrowedFd<'_>) -> Result<bool> {
    match rustix::net::sockopt::socket_type(fd) {
        Ok(kind) => Ok(kind == rustix::net::SocketType::SEQPACKET),
        Err(Errno::NOTSOCK) => Ok(false),
        Err(other) => Err(other),
    }
}

/// `read(fd, buf)`: blocks unless [`ready`] said the descriptor is readable.
///
/// # References
///  - [read(2)](https://man7.org/linux/man-pages/man2/read.2.html)
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    rustix::io::read(fd, buf)
}

/// `sendmsg(fd, iov, MSG_DONTWAIT | MSG_NOSIGNAL)`: `Ok(None)` when the socket buffer is
/// full. A gone peer is `EPIPE`, never `SIGPIPE`. Fails with `ENOTSOCK` on a pipe.
///
/// # References
///  - [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html)
pub(crate) fn send_nonblocking(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> Result<Option<usize>> {
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    match rustix::net::sendmsg(fd, iov, &mut SendAncillaryBuffer::default(), flags) {
        Ok(n) => Ok(Some(n)),
        Err(Errno::AGAIN) => Ok(None),
        Err(other) => Err(other),
    }
}

/// `writev(fd, iov)`: blocks unless the caller knows the bytes fit (see
/// [`PIPE_ATOMIC_WRITE`]).
///
/// # References
///  - [writev(2)](https://man7.org/linux/man-pages/man2/writev.2.html)
pub(crate) fn writev(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> Result<usize> {
    rustix::io::writev(fd, iov)
}

/// Which readiness to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Bytes (or end of file, or an error) to read.
    Read,
    /// Room to write (or an error).
    Write,
}

/// `poll(&{fd, events}, 1, timeout)` for one descriptor: true when the next read (or
/// write) will not block, which includes a hang-up or an error it would report. `None`
/// waits forever; `Some(ZERO)` only looks.
///
/// # References
///  - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
pub(crate) fn ready(
    fd: BorrowedFd<'_>,
    direction: Direction,
    timeout: Option<Duration>,
) -> Result<bool> {
    let wanted = match direction {
        Direction::Read => PollFlags::IN,
        Direction::Write => PollFlags::OUT,
    };
    let mut pollfd = [PollFd::new(&fd, wanted)];
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    rustix::event::poll(&mut pollfd, timeout.as_ref())?;
    let answered = wanted | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
    Ok(pollfd[0].revents().intersects(answered))
}
