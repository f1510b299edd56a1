//! The only place where ferroproc makes raw system calls.
//!
//! Each wrapper takes and returns safe types (`BorrowedFd`, `OwnedFd`, integers) and
//! documents the C call it makes. Everything else in the crate is `#![deny(unsafe_code)]`.
//! Wrappers return `rustix::io::Result`; callers attach the operation's name when they turn
//! the errno into their module's error type.

#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod clock;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod dgram;
pub(crate) mod fd;
pub(crate) mod fork;
#[cfg(not(loom))]
pub(crate) mod futex;
pub(crate) mod memfd;
pub(crate) mod mmap;
pub(crate) mod pidfd;
pub(crate) mod poll;
pub(crate) mod scm;
pub(crate) mod shm;
pub(crate) mod spawn;
pub(crate) mod stream;
#[cfg_attr(loom, allow(dead_code))]
pub(crate) mod wake;
