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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::SealFlags;

use super::{ProcessError, Result};
use crate::sys;

const MAGIC: &[u8; 8] = b"FPBOOT01";
const HEADER_LEN: usize = 16;

/// The seals that make the contents immutable; `SEAL` itself keeps anyone from lifting
/// them, though a reader only needs the first three.
const CONTENT_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::WRITE);

/// Writes and reads bootstrap payloads.
#[derive(Debug)]
pub struct Bootstrap;

impl Bootstrap {
    /// Creates a sealed, close-on-exec memfd holding `payload`.
    pub fn create(payload: &[u8]) -> Result<OwnedFd> {
        let fd = sys::memfd::create("ferroproc-bootstrap")
            .map_err(|e| ProcessError::os("memfd_create", e))?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        sys::memfd::pwrite_all(fd.as_fd(), &header, 0)
            .and_then(|()| sys::memfd::pwrite_all(fd.as_fd(), payload, HEADER_LEN as u64))
            .map_err(|e| ProcessError::os("pwrite", e))?;
        sys::memfd::add_seals(fd.as_fd(), CONTENT_SEALS | SealFlags::SEAL)
            .map_err(|e| ProcessError::os("fcntl", e))?;
        Ok(fd)
    }

    /// Reads and validates the payload of a memfd made by [`Bootstrap::create`].
    pub fn read(fd: BorrowedFd<'_>) -> Result<Vec<u8>> {
        fn bad<T>(msg: String) -> Result<T> {
            Err(ProcessError::Bootstrap(msg))
        }
        // A file that could still change under us might pass the checks and then change.
        match sys::memfd::seals(fd) {
            Ok(seals) if seals.contains(CONTENT_SEALS) => {}
            Ok(_) | Err(rustix::io::Errno::INVAL) => {
                return bad("the descriptor is not a sealed memfd".into())
            }
            Err(e) => return Err(ProcessError::os("fcntl", e)),
        }
        let size = sys::memfd::size(fd).map_err(|e| ProcessError::os("fstat", e))?;
        let mut header = [0u8; HEADER_LEN];
        let got =
            sys::memfd::pread_full(fd, &mut header, 0).map_err(|e| ProcessError::os("pread", e))?;
        if got < HEADER_LEN {
            return bad(format!("truncated header ({size} bytes in the file)"));
        }
        if &header[..8] != MAGIC {
            return bad("wrong magic number (not a ferroproc bootstrap file)".into());
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&header[8..]);
        let claimed = u64::from_le_bytes(len_bytes);
        // Checked before allocating, so a corrupt length cannot make us reserve memory.
        let actual = size.saturating_sub(HEADER_LEN as u64);
        if claimed != actual {
            return bad(format!(
                "header says {claimed} payload bytes, the file holds {actual}"
            ));
        }
        let len = usize::try_from(claimed)
            .or_else(|_| bad(format!("payload of {claimed} bytes is too large")))?;
        let mut payload = vec![0u8; len];
        let got = sys::memfd::pread_full(fd, &mut payload, HEADER_LEN as u64)
            .map_err(|e| ProcessError::os("pread", e))?;
        if got != len {
            return bad(format!("payload truncated at {got} of {len} bytes"));
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use rustix::fs::SealFlags;

    use super::{Bootstrap, MAGIC};
    use crate::process::ProcessError;
    use crate::sys;

    /// A sealed memfd holding exactly `bytes`, header or not.
    fn sealed_file(bytes: &[u8]) -> OwnedFd {
        let fd = sys::memfd::create("test").unwrap();
        sys::memfd::pwrite_all(fd.as_fd(), bytes, 0).unwrap();
        sys::memfd::add_seals(fd.as_fd(), super::CONTENT_SEALS).unwrap();
        fd
    }

    fn file_with_header(magic: &[u8; 8], claimed: u64, payload: &[u8]) -> OwnedFd {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&claimed.to_le_bytes());
        bytes.extend_from_slice(payload);
        sealed_file(&bytes)
    }

    fn assert_rejected(fd: &OwnedFd, what: &str) {
        match Bootstrap::read(fd.as_fd()) {
            Err(ProcessError::Bootstrap(msg)) => assert!(msg.contains(what), "{msg}"),
            other => panic!("expected a bootstrap error about {what:?}, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        for payload in [&b""[..], b"x", &[0xa5; 100_000]] {
            let fd = Bootstrap::create(payload).unwrap();
            assert_eq!(Bootstrap::read(fd.as_fd()).unwrap(), payload);
            // Reading again (from another holder of the same file) gives the same bytes.
            assert_eq!(Bootstrap::read(fd.as_fd()).unwrap(), payload);
        }
    }

    #[test]
    fn created_file_is_sealed_against_change() {
        let fd = Bootstrap::create(b"payload").unwrap();
        let seals = sys::memfd::seals(fd.as_fd()).unwrap();
        assert!(seals.contains(super::CONTENT_SEALS | SealFlags::SEAL));
        assert!(sys::memfd::pwrite_all(fd.as_fd(), b"X", 20).is_err());
    }

    #[test]
    fn wrong_magic_is_rejected() {
        assert_rejected(&file_with_header(b"FPBOOT99", 3, b"abc"), "magic");
    }

    #[test]
    fn truncated_header_is_rejected() {
        assert_rejected(&sealed_file(&MAGIC[..5]), "truncated header");
    }

    #[test]
    fn length_not_matching_the_file_is_rejected() {
        assert_rejected(&file_with_header(MAGIC, 4, b"abc"), "header says 4");
        assert_rejected(&file_with_header(MAGIC, 2, b"abc"), "header says 2");
        // A huge claim is refused before any allocation.
        assert_rejected(&file_with_header(MAGIC, u64::MAX, b"abc"), "header says");
    }

    #[test]
    fn unsealed_or_foreign_descriptors_are_rejected() {
        let unsealed = sys::memfd::create("test").unwrap();
        assert_rejected(&unsealed, "not a sealed memfd");
        let (read_end, _write_end) = rustix::pipe::pipe().unwrap();
        assert_rejected(&read_end, "not a sealed memfd");
    }
}
