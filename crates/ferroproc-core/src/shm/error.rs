//! The error type of the `shm` module.

use rustix::io::Errno;

/// Why a shared-memory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call failed; `op` names it (e.g. `"shm_open"`).
    #[error("{op}: {source}")]
    Os {
        /// The operation that failed, named after its system call.
        op: &'static str,
        /// The error number the kernel returned.
        #[source]
        source: Errno,
    },
    /// The segment is not one this caller may attach: not made by ferroproc, made by an
    /// incompatible version, meant for another use, or damaged.
    #[error("not a usable ferroproc segment: {0}")]
    BadHeader(#[from] HeaderError),
    /// A segment name was refused.
    #[error("invalid shared memory name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A segment size was refused (zero, or too large to map).
    #[error("invalid shared memory size {size}: {reason}")]
    InvalidSize {
        /// The size asked for, in bytes.
        size: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An access would reach outside the segment.
    #[error("{len} bytes at offset {offset} are outside a segment of {size} bytes")]
    OutOfBounds {
        /// Where the access starts, from the start of the segment's data.
        offset: usize,
        /// How many bytes it covers.
        len: usize,
        /// How many bytes of data the segment has.
        size: usize,
    },
    /// An object would be placed at an address its type cannot live at.
    #[error("offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// The offending offset, from the start of the segment's data.
        offset: usize,
        /// The alignment the type needs.
        align: usize,
    },
    /// The operation needs a named segment and this one is anonymous.
    #[error("an anonymous segment has no name to unlink")]
    NotNamed,
    /// An arena has no room left for a block of this size.
    #[error("shared memory arena exhausted: no room for a block of {size} bytes")]
    ArenaFull {
        /// The size of the block asked for, in bytes.
        size: usize,
    },
    /// A block request the arena cannot serve at all (too large, bad alignment, or a block
    /// that did not come from this arena).
    #[error("invalid arena request: {0}")]
    InvalidBlock(&'static str),
    /// The arena's bookkeeping in shared memory is inconsistent (a peer wrote over it).
    #[error("shared memory arena is corrupt: {0}")]
    ArenaCorrupt(&'static str),
}

impl ShmError {
    /// Wraps an errno from the system call `op`.
    pub(crate) fn os(op: &'static str) -> impl FnOnce(Errno) -> Self {
        move |source| Self::Os { op, source }
    }

    /// The raw errno, when this is an OS error, so the bindings can raise the matching
    /// `OSError` subclass (`FileNotFoundError` for a missing name, `FileExistsError` for a
    /// taken one).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Os { source, .. } => Some(source.raw_os_error()),
            _ => None,
        }
    }
}

/// What is wrong with a segment's header (see [`Header`](super::layout::Header)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The file is smaller than a header.
    #[error("the file holds {file_size} bytes, fewer than the {header_size}-byte header")]
    TooSmall {
        /// The file's size.
        file_size: u64,
        /// The size of the reserved header area.
        header_size: u64,
    },
    /// The magic number is wrong: not a ferroproc segment (or not initialised yet).
    #[error("bad magic number {found:#018x} (not a ferroproc segment, or not initialised yet)")]
    BadMagic {
        /// The magic number found.
        found: u64,
    },
    /// Made by a ferroproc with another segment layout.
    #[error("layout version {found}, this ferroproc understands version {expected}")]
    Version {
        /// The version found.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
    /// Made for another use (a channel segment attached as an arena, say).
    #[error("segment is tagged {found}, expected {expected}")]
    WrongTag {
        /// The tag found.
        found: super::layout::Tag,
        /// The tag the caller asked for.
        expected: super::layout::Tag,
    },
    /// The header claims a size the file does not have.
    #[error("header claims {claimed} bytes but the file holds {file_size}")]
    BadSize {
        /// The size in the header.
        claimed: u64,
        /// The file's real size.
        file_size: u64,
    },
}
