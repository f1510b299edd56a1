//! A payload handed to a new process through a sealed memfd.
//!
//! Spawned and fork-server children need their start-up data (for ferroproc: the pickled
//! process object and how to prepare the interpreter). A pipe would make the parent block
//! until the child reads, and lose the data if the child dies first; a memfd is written
//! once, sealed against change, and read by the child whenever it gets there.
//!
//! Layout: 8-byte magic `b"FPBOOT01"`, then the payload length as a little-endian `u64`,
//! then the payload. The reader checks the magic, the length against the file size, and
//! the seals.

use std::os::fd::{BorrowedFd, OwnedFd};

use super::Result;

/// Writes and reads bootstrap payloads.
#[derive(Debug)]
pub struct Bootstrap;

impl Bootstrap {
    /// Creates a sealed, close-on-exec memfd holding `payload`.
    pub fn create(payload: &[u8]) -> Result<OwnedFd> {
        let _ = payload;
        todo!()
    }

    /// Reads and validates the payload of a memfd made by [`Bootstrap::create`].
    pub fn read(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
        let _ = fd;
        todo!()
    }
}
