//! [`SpillSocket`]: messages too large for a ring, each in a memfd of its own.
//!
//! The producer writes the message into a fresh memfd, seals it, and sends the descriptor
//! with the message's spill number over a Unix datagram socket pair that every process of
//! the channel holds (inherited, or passed with the channel). The kernel keeps a
//! descriptor in flight alive, so the message outlives its producer: a process may put a
//! gigabyte and exit at once, with no reader in sight. The memfd is freed when its
//! reader closes it, or with the socket when the last process lets go of the channel;
//! nothing can be left in `/dev/shm`.
//!
//! Readers take datagrams in order under the ring's get lock. A datagram numbered below
//! the record being read was sent by a producer that died before publishing its record:
//! it is dropped. Numbered above (or none at all): the record's own datagram was taken by a
//! reader that died before freeing the record, and the message is gone.
//!
//! The socket buffers a few hundred datagrams (about 278 with Linux's default buffer
//! sizes); a producer with more spilled messages in flight waits for readers to take some.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::fs::SealFlags;
use rustix::io::Errno;

use super::{ChannelError, Spill, Spilled};
use crate::shm::ShmError;
use crate::sys;

/// How long a producer waits for socket room between checks.
const SEND_RETRY: Duration = Duration::from_millis(50);

/// The socket pair of a channel's spilled messages: producers send on one end, readers
/// receive on the other.
#[derive(Debug)]
pub struct SpillSocket {
    sender: OwnedFd,
    receiver: OwnedFd,
}

fn os(op: &'static str) -> impl FnOnce(Errno) -> ChannelError {
    move |source| ChannelError::Shm(ShmError::Os { op, source })
}

impl SpillSocket {
    /// A new socket pair.
    pub fn new() -> Result<Self, ChannelError> {
        let (sender, receiver) = sys::dgram::pair().map_err(os("socketpair"))?;
        Ok(Self { sender, receiver })
    }

    /// The socket pair whose ends another process passed.
    pub fn from_fds(sender: OwnedFd, receiver: OwnedFd) -> Self {
        Self { sender, receiver }
    }

    /// The end producers send on.
    pub fn sender_fd(&self) -> BorrowedFd<'_> {
        self.sender.as_fd()
    }

    /// The end readers receive on.
    pub fn receiver_fd(&self) -> BorrowedFd<'_> {
        self.receiver.as_fd()
    }

    /// Writes a message into a fresh sealed memfd (before taking any lock: this is the
    /// long part).
    pub fn prepare(&self, parts: &[&[u8]]) -> Result<OwnedFd, ChannelError> {
        let memfd = sys::memfd::create("ferroproc-spilled").map_err(os("memfd_create"))?;
        let mut offset = 0u64;
        for part in parts {
            sys::memfd::pwrite_all(memfd.as_fd(), part, offset).map_err(os("pwrite"))?;
            offset += part.len() as u64;
        }
        // Readers trust the size: nobody may change the file any more.
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
        sys::memfd::add_seals(memfd.as_fd(), seals).map_err(os("fcntl(F_ADD_SEALS)"))?;
        Ok(memfd)
    }

    /// Sends a prepared message under `number`, waiting while the socket is full.
    pub fn send(&self, number: u64, memfd: &OwnedFd) -> Result<(), ChannelError> {
        loop {
            match sys::dgram::send_fd_nonblocking(
                self.sender.as_fd(),
                &number.to_le_bytes(),
                memfd.as_fd(),
            ) {
                Ok(()) => return Ok(()),
                Err(Errno::AGAIN | Errno::INTR) => {
                    sys::dgram::wait_writable(self.sender.as_fd(), SEND_RETRY)
                        .map_err(os("poll"))?;
                }
                Err(other) => return Err(os("sendmsg")(other)),
            }
        }
    }

    /// Refuses a file someone could still change under its reader.
    fn check_sealed(memfd: &OwnedFd) -> Result<(), ChannelError> {
        let seals = sys::memfd::seals(memfd.as_fd()).map_err(os("fcntl(F_GET_SEALS)"))?;
        if !seals.contains(SealFlags::SHRINK | SealFlags::WRITE) {
            return Err(ChannelError::Corrupt(
                "a spilled message that is not sealed",
            ));
        }
        Ok(())
    }

    fn read_message(memfd: &OwnedFd) -> Result<Vec<u8>, ChannelError> {
        Self::check_sealed(memfd)?;
        let len = sys::memfd::size(memfd.as_fd()).map_err(os("fstat"))?;
        let len = usize::try_from(len)
            .map_err(|_| ChannelError::Corrupt("a spilled message too large to map"))?;
        let mut message = vec![0u8; len];
        let read = sys::memfd::pread_full(memfd.as_fd(), &mut message, 0).map_err(os("pread"))?;
        if read != len {
            return Err(ChannelError::Corrupt(
                "a spilled message shorter than its file",
            ));
        }
        Ok(message)
    }
}

impl Spill for SpillSocket {
    fn take(&self, number: u64, as_file: bool) -> Result<Option<Spilled>, ChannelError> {
        loop {
            let mut label = [0u8; 8];
            match sys::dgram::peek_nonblocking(self.receiver.as_fd(), &mut label) {
                Ok(8) => {}
                Ok(_) => {
                    // Not one of ours: drop it.
                    let _ = sys::dgram::recv_fd_nonblocking(self.receiver.as_fd(), &mut label);
                    continue;
                }
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::INTR) => continue,
                Err(other) => return Err(os("recv")(other)),
            }
            let found = u64::from_le_bytes(label);
            if found > number {
                return Ok(None);
            }
            let (_, memfd) = sys::dgram::recv_fd_nonblocking(self.receiver.as_fd(), &mut label)
                .map_err(os("recvmsg"))?;
            if found < number {
                continue;
            }
            let memfd = memfd.ok_or(ChannelError::Corrupt("a spilled message without its file"))?;
            if as_file {
                Self::check_sealed(&memfd)?;
                return Ok(Some(Spilled::File(memfd)));
            }
            return Self::read_message(&memfd).map(|bytes| Some(Spilled::Bytes(bytes)));
        }
    }
}
