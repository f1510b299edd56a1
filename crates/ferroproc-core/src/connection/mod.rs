//! Connections: the stdlib's framed byte messages over a socket or a pipe.
//!
//! A `multiprocessing.Connection` is a descriptor carrying frames: a big-endian length,
//! then the payload ([`frame`] has the wire format, shared with CPython so either side may
//! be the stdlib). This module is the mechanism under `ferroproc.connection`: it encodes
//! and decodes frames ([`FrameDecoder`], which never allocates for a length it has only
//! been told about), sends and receives them without blocking past a deadline
//! ([`FrameSender`], [`FrameReceiver`]), and waits on many descriptors ([`wait_readable`]).
//!
//! ```text
//!  send_bytes(buf)                           recv_bytes()
//!     FrameSender: header+payload  ──fd──▶     FrameReceiver: read what is there,
//!     in one sendmsg/writev,                   spin SPIN_BUDGET, then poll(until);
//!     poll(POLLOUT) when full                  FrameDecoder grows with the bytes
//! ```
//!
//! On a `SOCK_SEQPACKET` socket (what `Pipe()` makes) frames travel as packets that never
//! span two frames, so a reader may take a packet whole: a small message arrives in one
//! system call instead of two (header, then payload). Stream sockets and pipes, and every
//! peer that may be the stdlib (`Listener`/`Client`), use the byte stream as it is.
//!
//! [`send_fds`]/[`recv_fds`] pass descriptors themselves, as the stdlib's
//! `reduction.sendfds`/`recvfds` do.
//!
//! Callers own the descriptors; nothing here opens or closes one (except those received).

mod error;
pub mod frame;
mod handles;
mod stream;
mod wait;

pub use error::{ConnectionError, FrameError};
pub use frame::{FrameDecoder, Header};
pub use handles::{recv_fds, send_fds, ReceivedFds, MAX_PASSED_FDS};
pub use stream::{
    is_packet_socket, readable_until, FrameReceiver, FrameSender, FIRST_PACKET_MAX, PACKET_MAX,
    SPIN_BUDGET,
};
pub use wait::wait_readable;
