//! Unix stream sockets, and passing descriptors over them (`SCM_RIGHTS`).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::io::Result;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// The most descriptors one `SCM_RIGHTS` message may carry (`SCM_MAX_FD` in the kernel).
pub(crate) const MAX_FDS: usize = 253;

fn stream_socket() -> Result<OwnedFd> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`, `bind(path)`, `listen(backlog)`.
///
/// # References
///  - [socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html)
///  - [bind(2)](https://man7.org/linux/man-pages/man2/bind.2.html)
///  - [listen(2)](https://man7.org/linux/man-pages/man2/listen.2.html)
pub(crate) fn listen(
    path: &Path,
    backlog: i32,
) -> std::result::Result<OwnedFd, (&'static str, rustix::io::Errno)> {
    let addr = SocketAddrUnix::new(path).map_err(|e| ("bind", e))?;
    let socket = stream_socket().map_err(|e| ("socket", e))?;
    rustix::net::bind(&socket, &addr).map_err(|e| ("bind", e))?;
    rustix::net::listen(&socket, backlog).map_err(|e| ("listen", e))?;
    Ok(socket)
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`, `connect(path)`.
///
/// # References
///  - [socket(2)](https://man7.org/linux/man-pages/man2/socket.2.html)
///  - [connect(2)](https://man7.org/linux/man-pages/man2/connect.2.html)
pub(crate) fn connect(
    path: &Path,
) -> std::result::Result<OwnedFd, (&'static str, rustix::io::Errno)> {
    let addr = SocketAddrUnix::new(path).map_err(|e| ("connect", e))?;
    let socket = stream_socket().map_err(|e| ("socket", e))?;
    rustix::net::connect(&socket, &addr).map_err(|e| ("connect", e))?;
    Ok(socket)
}

/// `accept4(listener, NULL, NULL, SOCK_CLOEXEC)`. The new socket is blocking whatever the
/// listener's mode.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/accept4.2.html)
pub(crate) fn accept(listener: BorrowedFd<'_>) -> Result<OwnedFd> {
    rustix::net::accept_with(listener, SocketFlags::CLOEXEC)
}

/// `setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout)`; `None` blocks forever.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man7/socket.7.html)
pub(crate) fn set_recv_timeout(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<()> {
    rustix::net::sockopt::set_socket_timeout(fd, rustix::net::sockopt::Timeout::Recv, timeout)
}

/// `sendmsg(fd, {bytes, SCM_RIGHTS fds}, MSG_NOSIGNAL)`: a peer that has gone away is
/// `EPIPE`, not a `SIGPIPE`. Returns how many bytes were sent; the descriptors travel with
/// the first byte.
///
/// # References
///  - [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html)
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub(crate) fn send_with_fds(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize> {
    let message = SendAncillaryMessage::ScmRights(fds);
    let mut space = vec![MaybeUninit::uninit(); if fds.is_empty() { 0 } else { message.size() }];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(message) {
        return Err(rustix::io::Errno::INVAL);
    }
    rustix::net::sendmsg(
        fd,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
}

/// `send(fd, bytes, MSG_NOSIGNAL)`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/send.2.html)
pub(crate) fn send(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize> {
    rustix::net::send(fd, bytes, SendFlags::NOSIGNAL)
}

/// What [`recv_with_fds`] got.
pub(crate) struct Received {
    /// Bytes read into the buffer; 0 means end of stream.
    pub(crate) len: usize,
    /// Descriptors received, close-on-exec.
    pub(crate) fds: Vec<OwnedFd>,
    /// The sender sent more descriptors than there was room for (the rest were closed).
    pub(crate) truncated: bool,
}

/// `recvmsg(fd, {buf, control}, MSG_CMSG_CLOEXEC)` with room for up to `max_fds`
/// descriptors (at most [`MAX_FDS`]).
///
/// # References
///  - [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub(crate) fn recv_with_fds(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> Result<Received> {
    let max_fds = max_fds.clamp(1, MAX_FDS);
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max_fds))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        fd,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok(Received {
        len: msg.bytes,
        fds,
        truncated: msg.flags.contains(ReturnFlags::CTRUNC),
    })
}

/// `recv(fd, buf, MSG_DONTWAIT)`: `EAGAIN` when nothing is there yet, 0 at end of stream.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/recv.2.html)
pub(crate) fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    Ok(rustix::net::recv(fd, buf, RecvFlags::DONTWAIT)?.0)
}

/// `recv(fd, buf, 0)`, blocking (subject to the socket's receive timeout).
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/recv.2.html)
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    Ok(rustix::net::recv(fd, buf, RecvFlags::empty())?.0)
}
