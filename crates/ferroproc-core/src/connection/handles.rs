//! Passing descriptors over a Unix socket (`reduction.sendfds`, `recvfds`, `send_handle`,
//! `recv_handle`), in the stdlib's format: one byte holding the count modulo 256, with the
//! descriptors as `SCM_RIGHTS`, and no acknowledgement (as on Linux in the stdlib).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use super::error::ConnectionError;
use crate::sys::{poll, scm};

/// The most descriptors one message may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_PASSED_FDS: usize = scm::MAX_FDS;

/// Sends `fds` over the Unix socket `socket` in one message.
pub fn send_fds(socket: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> Result<(), ConnectionError> {
    if fds.is_empty() || fds.len() > MAX_PASSED_FDS {
        return Err(ConnectionError::os("sendmsg", rustix::io::Errno::INVAL));
    }
    let count = [(fds.len() % 256) as u8];
    loop {
        match scm::send_with_fds(socket, &count, fds) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(ConnectionError::os("sendmsg", errno)),
        }
    }
}

/// What [`recv_fds`] got.
#[derive(Debug)]
pub enum ReceivedFds {
    /// The descriptors of one message.
    Fds(Vec<OwnedFd>),
    /// The peer closed the socket.
    Eof,
    /// A message that is not one of `send_fds`'s (its descriptors, if any, are closed).
    Invalid,
}

/// Receives one message of at most `max_fds` descriptors from `socket`, waiting until
/// `until` for it; `Ok(None)` if none came by then.
pub fn recv_fds(
    socket: BorrowedFd<'_>,
    max_fds: usize,
    until: Instant,
) -> Result<Option<ReceivedFds>, ConnectionError> {
    let left = until.saturating_duration_since(Instant::now());
    if !poll::readable(socket, Some(left)).map_err(|e| ConnectionError::os("poll", e))? {
        return Ok(None);
    }
    let mut count = [0u8; 1];
    let received = match scm::recv_with_fds(socket, &mut count, max_fds) {
        Ok(received) => received,
        Err(errno) => return Err(ConnectionError::os("recvmsg", errno)),
    };
    if received.len == 0 && received.fds.is_empty() {
        return Ok(Some(ReceivedFds::Eof));
    }
    let expected = usize::from(count[0]);
    let well_formed = received.len == 1
        && !received.truncated
        && !received.fds.is_empty()
        && received.fds.len() % 256 == expected;
    Ok(Some(if well_formed {
        ReceivedFds::Fds(received.fds)
    } else {
        ReceivedFds::Invalid
    }))
}
