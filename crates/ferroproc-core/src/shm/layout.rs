//! What may be placed in shared memory, and the header every segment starts with.
//!
//! Every segment ferroproc makes for its own use begins with a [`Header`] in a reserved
//! area of [`Header::RESERVED`] bytes; the caller's data follows it. The header says that
//! the segment is ferroproc's (a magic number), which layout it uses (a version, bumped on
//! any incompatible change), what it is for (a [`Tag`], so a channel segment is never
//! attached as a lock), and how large it is. Attaching checks all four against the file
//! itself before anything is mapped for the caller. Segments for Python's
//! `shared_memory.SharedMemory` are *raw*: every byte is the user's, and there is no header.
#![allow(unsafe_code)]

use std::fmt;

#[cfg(not(loom))]
use crate::primitive::AtomicI32;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};

/// A type that can live in memory shared between processes.
///
/// # Safety
///
/// An implementor must be `#[repr(C)]` (so every process agrees on its layout), contain no
/// pointers, references, file descriptors, heap allocations or anything else that means
/// something in one process only (offsets into a segment instead of addresses), be valid
/// when all its bytes are zero (a fresh segment is zero-filled), and make every field that
/// another process may change concurrently an atomic from `crate::primitive`.
///
/// Because another process (buggy, or killed half-way through a write) can leave any bytes
/// at all in a segment, every bit pattern must be a valid value: integer atomics qualify,
/// `AtomicBool`, enums and `char` do not. Implementors must not need `Drop`: nothing runs
/// destructors on shared memory. Under `--cfg loom` the crate's atomics are loom's, which
/// cannot live in a mapping; the impls below for atomics therefore exist only outside loom,
/// and models place their algorithms on the heap instead.
pub unsafe trait ShmSafe: Sized {}

// SAFETY: a `#[repr(C, align(4))]` wrapper of a `u32` (std documents the same layout as
// `u32`), valid for every bit pattern including zero, no pointers, no `Drop`.
#[cfg(not(loom))]
unsafe impl ShmSafe for AtomicU32 {}
// SAFETY: same layout as `i32`, valid for every bit pattern including zero, no `Drop`.
#[cfg(not(loom))]
unsafe impl ShmSafe for AtomicI32 {}
// SAFETY: same layout as `u64` (align 8), valid for every bit pattern including zero.
#[cfg(not(loom))]
unsafe impl ShmSafe for AtomicU64 {}
// SAFETY: an array is laid out as its elements back to back with no padding between
// them, and is valid exactly when each element is, so it keeps every promise `T` makes.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// What a segment is for, checked on attach: four ASCII bytes read as a little-endian
/// `u32`, so they show up readable in a hex dump (e.g. `Tag::new(*b"chan")`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(u32);

impl Tag {
    /// The tag of allocator arenas ([`Arena`](super::Arena)).
    pub const ARENA: Tag = Tag::new(*b"aren");

    /// A tag from four bytes (conventionally ASCII).
    pub const fn new(bytes: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(bytes))
    }

    /// The tag as stored in the header.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.to_le_bytes();
        if bytes.iter().all(|b| b.is_ascii_graphic()) {
            bytes
                .iter()
                .try_for_each(|&b| write!(f, "{}", char::from(b)))
        } else {
            write!(f, "{:#010x}", self.0)
        }
    }
}

/// The first bytes of every segment ferroproc makes for itself (all but raw ones).
///
/// ```text
/// offset  size  field
///      0     8  magic    Header::MAGIC; stored last, with Release, by the creator
///      8     4  version  Header::VERSION, the layout version
///     12     4  tag      Tag: what the segment is for
///     16     8  size     the whole segment in bytes, header area included
///     24     4  flags    bit 0: the segment is named (POSIX shm), else anonymous (memfd)
///     28     4  (reserved, zero)
///     32    32  (reserved, zero) up to Header::RESERVED, where the caller's data begins
/// ```
///
/// All fields are atomics, so a process may read a header another is writing. The creator
/// writes every other field before it stores the magic number with `Release`; an attacher
/// loads the magic with `Acquire` first, so once it sees the magic it sees the rest.
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    tag: AtomicU32,
    size: AtomicU64,
    flags: AtomicU32,
    _reserved: AtomicU32,
}

// SAFETY: `#[repr(C)]`, made only of integer atomics (valid for every bit pattern, zero
// included), no pointers, no `Drop`.
#[cfg(not(loom))]
unsafe impl ShmSafe for Header {}

/// The values read from a header, before they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    pub(crate) tag: Tag,
    pub(crate) size: u64,
    pub(crate) named: bool,
}

impl Header {
    /// `"ferroshm"` read as a little-endian `u64`.
    pub const MAGIC: u64 = u64::from_le_bytes(*b"ferroshm");
    /// The layout version this build writes and accepts.
    pub const VERSION: u32 = 1;
    /// Bytes reserved at the start of a segment for the header: a cache line, so the
    /// caller's data starts cache-line aligned.
    pub const RESERVED: usize = 64;

    const FLAG_NAMED: u32 = 1;

    /// Writes a header for a fresh segment, magic last.
    pub(crate) fn publish(&self, tag: Tag, size: u64, named: bool) {
        self.version.store(Self::VERSION, Ordering::Relaxed);
        self.tag.store(tag.get(), Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
        let flags = if named { Self::FLAG_NAMED } else { 0 };
        self.flags.store(flags, Ordering::Relaxed);
        self.magic.store(Self::MAGIC, Ordering::Release);
    }

    /// Reads the header, magic first.
    pub(crate) fn read(&self) -> HeaderFields {
        let magic = self.magic.load(Ordering::Acquire);
        HeaderFields {
            magic,
            version: self.version.load(Ordering::Relaxed),
            tag: Tag(self.tag.load(Ordering::Relaxed)),
            size: self.size.load(Ordering::Relaxed),
            named: self.flags.load(Ordering::Relaxed) & Self::FLAG_NAMED != 0,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Header>() <= Header::RESERVED);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tags_print_as_text() {
        assert_eq!(Tag::new(*b"chan").to_string(), "chan");
        assert_eq!(format!("{:?}", Tag::ARENA), "Tag(aren)");
        assert_eq!(Tag::new([0, 1, 2, 3]).to_string(), "0x03020100");
    }

    #[test]
    fn header_round_trips() {
        let header = Header {
            magic: AtomicU64::new(0),
            version: AtomicU32::new(0),
            tag: AtomicU32::new(0),
            size: AtomicU64::new(0),
            flags: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
        };
        assert_eq!(header.read().magic, 0);
        header.publish(Tag::ARENA, 4096, true);
        let fields = header.read();
        assert_eq!(
            fields,
            HeaderFields {
                magic: Header::MAGIC,
                version: Header::VERSION,
                tag: Tag::ARENA,
                size: 4096,
                named: true
            }
        );
    }
}
