//! Unix datagram socket pairs that carry one descriptor per message (`SCM_RIGHTS`).

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Result;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// `socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC)`: what is sent on one end arrives on
/// the other, one datagram at a time.
///
/// # References
///  - [socketpair(2)](https://man7.org/linux/man-pages/man2/socketpair.2.html)
pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
}

/// `sendmsg(fd, bytes + SCM_RIGHTS[passed], MSG_DONTWAIT | MSG_NOSIGNAL)`: `EAGAIN` when
/// the socket's buffer is full.
///
/// # References
///  - [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html)
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub(crate) fn send_fd_nonblocking(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    passed: BorrowedFd<'_>,
) -> Result<()> {
    let fds = [passed];
    let message = SendAncillaryMessage::ScmRights(&fds);
    let mut space = vec![MaybeUninit::uninit(); message.size()];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(message) {
        return Err(rustix::io::Errno::INVAL);
    }
    rustix::net::sendmsg(
        fd,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )
    .map(drop)
}

/// `recv(fd, buf, MSG_PEEK | MSG_DONTWAIT)`: the next datagram's bytes, left in place, with
/// no descriptor installed (there is no room for one). `EAGAIN` when there is none.
///
/// # References
///  - [recv(2)](https://man7.org/linux/man-pages/man2/recv.2.html)
pub(crate) fn peek_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
    Ok(rustix::net::recv(fd, buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)?.0)
}

/// `recvmsg(fd, buf + room for one descriptor, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)`: takes the
/// next datagram and the descriptor it carries, if any.
///
/// # References
///  - [recvmsg(2)](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
pub(crate) fn recv_fd_nonblocking(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Option<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        fd,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut passed = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut received) = message {
            // One is all a sender of ours passes; any extra closes as it drops.
            passed = passed.or_else(|| received.next());
        }
    }
    Ok((msg.bytes, passed))
}

/// `poll([{fd, POLLOUT}], timeout)`: whether `fd` became writable within `timeout`.
///
/// # References
///  - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
pub(crate) fn wait_writable(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> Result<bool> {
    let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(ready) => Ok(ready > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(other) => Err(other),
    }
}
