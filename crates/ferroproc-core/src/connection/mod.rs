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
//! Callers own the descriptors; nothing here opens or closes one.

mod error;
pub mod frame;
mod stream;
mod wait;

pub use error::{ConnectionError, FrameError};
pub use frame::{FrameDecoder, Header};
pub use stream::{readable_until, FrameReceiver, FrameSender, SPIN_BUDGET};
pub use wait::wait_readable;
