//! Shared-memory segments: anonymous (memfd) and named (POSIX shm), their mapping, the
//! header every segment starts with, and an allocator inside a segment.
//!
//! - [`Segment`] (in `segment.rs`, the module's only unsafe code besides `layout.rs`) owns
//!   one mapping and is the only way to touch its bytes: [`Segment::get`] for [`ShmSafe`]
//!   objects made of atomics, [`Segment::copy_in`]/[`Segment::copy_out`] for payload bytes.
//! - [`layout`] says what may live in shared memory ([`ShmSafe`]) and defines the
//!   [`Header`](layout::Header) (magic, layout version, [`Tag`], size) that every segment
//!   made for ferroproc's own structures starts with and that attaching validates. Raw
//!   segments, for Python's `shared_memory.SharedMemory`, have none.
//! - [`ShmName`]: validated and unguessable names for named segments.
//! - [`Arena`]: small aligned blocks (locks, `Value`s, small arrays) carved out of one
//!   segment by any process that maps it, the role of the stdlib's `heap.py`.
//!
//! Anonymous segments are the default: the kernel frees them when the last process lets
//! go, so even a `SIGKILL`ed parent leaves nothing behind in `/dev/shm`. Named segments
//! exist for the stdlib API that needs them, and live until someone unlinks them.

mod alloc;
mod error;
pub mod layout;
mod name;
mod segment;

#[cfg(not(loom))]
pub use alloc::Arena;
pub use alloc::Block;
pub use error::{HeaderError, ShmError};
pub use layout::{ShmSafe, Tag};
pub use name::{ShmName, MAX_LEN as MAX_NAME_LEN, RANDOM_PREFIX};
pub use segment::{Backing, Segment, Source};
