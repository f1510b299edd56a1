//! The resource tracker: names that must not outlive the processes that use them.
//!
//! Python's `multiprocessing.resource_tracker` protocol, kept byte for byte so the Python
//! layer can mirror the stdlib's API. One tracker process per program reads a pipe; every
//! process of the program holds a copy of the pipe's write end (forked children inherit
//! it, spawned and fork-server children are passed it). Each process writes one line per
//! event, each line shorter than `PIPE_BUF`, so lines from different writers never mix:
//!
//! ```text
//! REGISTER:<name>:<rtype>\n     a resource was created and must be cleaned up
//! UNREGISTER:<name>:<rtype>\n   it was cleaned up by its user
//! PROBE:0:noop\n                "are you there?": the write fails with EPIPE if not
//! ```
//!
//! When the last write end is closed, which happens when every process using the tracker
//! has exited, by whatever means (SIGKILL included: the kernel closes descriptors), the
//! read returns end of file and the tracker cleans up whatever is still registered:
//! `shared_memory` names are unlinked from `/dev/shm`, `folder`s are removed; `semaphore`
//! and `noop` are accepted and ignored (ferroproc's semaphores live in anonymous memory
//! the kernel frees by itself). It reports what it cleaned on a log (the stdlib's warning
//! text), and reports malformed lines without stopping.
//!
//! - [`Message`]: one line, parsed ([`Message::parse`]) or written ([`send`]).
//! - [`Registry`]: the set of registered resources, and their cleanup.
//! - [`Tracker`]: the reading side, driven in slices ([`Tracker::pump`]) or to the end
//!   ([`Tracker::run`]).
//!
//! Design after CPython's `Lib/multiprocessing/resource_tracker.py` (behaviour only).

mod error;
mod message;
mod registry;
mod server;

pub use error::TrackerError;
pub use message::{send, Command, Message, ResourceType, MAX_MESSAGE_LEN};
pub use registry::{cleanup, Registry};
pub use server::{Pumped, Tracker};

#[cfg(test)]
mod tests;
