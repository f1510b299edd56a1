//! Shared-memory channels: queues of byte messages between processes.
//!
//! - [`Ring`] (`ring.rs`) is the algorithm: a multi-producer multi-consumer queue of byte
//!   messages in a byte ring, robust to a process killed mid-operation, written against
//!   [`RingBytes`], [`Waiter`](crate::futex::Waiter) and [`Liveness`](crate::sync::Liveness)
//!   so loom models and property tests run the very same code.
//! - [`record`] is the format of a message inside the ring.
//! - [`Channel`] puts a ring in an anonymous shared-memory segment (a memfd: freed by the
//!   kernel with its last user, never left in `/dev/shm`) and runs it on futexes.
//! - [`SpillSocket`] keeps messages too large for the ring in memfds of their own, passed
//!   over a socket pair the channel's processes share, so a `put` of any size returns at
//!   once and survives its producer.

mod error;
pub mod record;
mod ring;

pub use error::ChannelError;
pub use ring::{
    Env, Fill, MessageSink, PutLimits, Ring, RingBytes, Spill, Spilled, Wait, MAX_CAPACITY,
    MIN_CAPACITY, SLICE,
};

#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod spill;
#[cfg(not(loom))]
pub use segment::{Channel, DEFAULT_CAPACITY};
#[cfg(not(loom))]
pub use spill::SpillSocket;
