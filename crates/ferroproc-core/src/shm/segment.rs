//! [`Segment`]: one shared mapping of a file, and the only code that touches its bytes.
//!
//! A segment is a file mapped `MAP_SHARED` into this process: an anonymous `memfd` (no name
//! anywhere, passed to children as a descriptor, freed by the kernel when the last process
//! closes and unmaps it, so it cannot leak) or a named POSIX shared-memory object under
//! `/dev/shm` (found by name, lives until unlinked, as Python's `SharedMemory` needs). Both
//! are created owner-only (`0600`). Anonymous segments are sealed against shrinking and
//! growing once sized, so no holder can cut the file short under another's mapping (which
//! would make the other's next access fault with `SIGBUS`); named objects cannot be sealed,
//! so a named segment relies on its holders (all running as the same user) not to
//! truncate it.
//!
//! Access never forms a reference to bytes another process may write, except to
//! [`ShmSafe`] types, whose shared fields are atomics: [`Segment::get`] hands out `&T` for
//! those, and payload bytes move with [`Segment::copy_in`]/[`Segment::copy_out`] through raw
//! pointers, after bounds checks. Offsets are counted from the start of the segment's data,
//! which is just past the header for segments with one and the first byte for raw ones.
#![allow(unsafe_code)]

use std::mem::{align_of, size_of};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};

use rustix::fs::SealFlags;

use super::error::HeaderError;
use super::layout::{Header, Tag};
use super::{ShmError, ShmName, ShmSafe};
use crate::sys;

/// Where a new segment's memory comes from.
#[derive(Debug, Clone, Copy)]
pub enum Backing<'a> {
    /// An anonymous `memfd`: no name, shared by passing [`Segment::fd`] to other processes;
    /// freed when the last process closes and unmaps it.
    Anonymous,
    /// A POSIX shared-memory object with a fresh unguessable name ([`ShmName::random`]);
    /// lives until [unlinked](Segment::unlink).
    Named,
    /// A POSIX shared-memory object with the given name, which must not exist yet
    /// (`EEXIST` otherwise); lives until [unlinked](Segment::unlink).
    NamedAs(&'a ShmName),
}

/// An existing segment to attach.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A descriptor of the segment's file (inherited, or received over a socket); the
    /// segment keeps its own duplicate, so the caller may close this one.
    Fd(BorrowedFd<'a>),
    /// The name of a POSIX shared-memory object.
    Name(&'a ShmName),
}

/// A shared-memory segment mapped into this process.
///
/// Dropping it unmaps the memory and closes its descriptor; it does not unlink a name
/// (Python's `close` and `unlink` are separate too). A segment may be used from several
/// threads at once; what the bytes mean, and who may write them when, is the protocol of
/// the code that placed them there.
#[derive(Debug)]
pub struct Segment {
    /// The start of the mapping.
    base: NonNull<u8>,
    /// How many bytes are mapped: never more than the file held when it was mapped.
    map_len: usize,
    /// Where the caller's data starts: [`Header::RESERVED`], or 0 for raw segments.
    data_offset: usize,
    /// How many bytes of data the caller may use, from `data_offset`.
    data_len: usize,
    fd: OwnedFd,
    name: Option<ShmName>,
    tag: Option<Tag>,
}

// SAFETY: a `Segment` owns its mapping and descriptor outright; the raw pointer is only an
// address, valid until `Drop`, and the mapping is not tied to the thread that made it.
// Moving the owner to another thread changes nothing about who may touch the bytes.
unsafe impl Send for Segment {}
// SAFETY: every method taking `&self` either reads fields that never change after
// construction, hands out `&T` only for `T: ShmSafe + Sync` (shared fields are atomics, so
// concurrent use through `&T` is what those types are built for), or copies bytes through
// raw pointers after bounds checks without ever forming a reference to them. Concurrent
// writes to the same bytes from two threads are then no different from writes by two
// processes: the bytes are unspecified until the caller's own protocol orders them, but no
// reference aliases them, and the mapping cannot go away while `&self` is held.
unsafe impl Sync for Segment {}

/// The largest segment we map: offsets must fit in `isize` for pointer arithmetic.
const MAX_SIZE: u64 = isize::MAX as u64;

impl Segment {
    /// Creates a segment with `size` bytes of data after a [`Header`] tagged `tag`.
    ///
    /// The data starts zero-filled and cache-line aligned. A named segment whose setup
    /// fails half-way is unlinked again before the error is returned.
    pub fn create(backing: Backing<'_>, size: usize, tag: Tag) -> Result<Self, ShmError> {
        let total = (size as u64)
            .checked_add(Header::RESERVED as u64)
            .filter(|&total| total <= MAX_SIZE)
            .ok_or(ShmError::InvalidSize {
                size: size as u64,
                reason: "too large to map",
            })?;
        let segment = Self::create_mapped(backing, total, Header::RESERVED, Some(tag))?;
        let header = segment.header()?;
        header.publish(tag, total, segment.name.is_some());
        Ok(segment)
    }

    /// Creates a raw segment of `size` bytes with no header, every byte the caller's (for
    /// Python's `shared_memory.SharedMemory`). `size` must not be zero.
    pub fn create_raw(backing: Backing<'_>, size: usize) -> Result<Self, ShmError> {
        if size == 0 || size as u64 > MAX_SIZE {
            return Err(ShmError::InvalidSize {
                size: size as u64,
                reason: "must be positive and small enough to map",
            });
        }
        Self::create_mapped(backing, size as u64, 0, None)
    }

    /// Attaches an existing segment after checking its header: the magic number, the
    /// layout version, that it is tagged `tag`, and that the size it claims is no larger
    /// than the file really is (only the real file is ever mapped, so a lying header
    /// cannot make us touch memory past its end).
    pub fn attach(source: Source<'_>, tag: Tag) -> Result<Self, ShmError> {
        let (fd, name) = open_source(source)?;
        let file_size = file_size(&fd)?;
        if file_size < Header::RESERVED as u64 {
            return Err(HeaderError::TooSmall {
                file_size,
                header_size: Header::RESERVED as u64,
            }
            .into());
        }
        let mut segment = Self::map(fd, name, file_size, Header::RESERVED, Some(tag))?;
        let fields = segment.header()?.read();
        let problem = if fields.magic != Header::MAGIC {
            Some(HeaderError::BadMagic {
                found: fields.magic,
            })
        } else if fields.version != Header::VERSION {
            Some(HeaderError::Version {
                found: fields.version,
                expected: Header::VERSION,
            })
        } else if fields.tag != tag {
            Some(HeaderError::WrongTag {
                found: fields.tag,
                expected: tag,
            })
        } else if fields.size > file_size || fields.size < Header::RESERVED as u64 {
            Some(HeaderError::BadSize {
                claimed: fields.size,
                file_size,
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(problem.into());
        }
        // `fields.size <= file_size == map_len`, checked just above.
        segment.data_len = fields.size as usize - Header::RESERVED;
        Ok(segment)
    }

    /// Attaches an existing segment as raw bytes, header or not: all of the file is data.
    /// An empty file is refused (there is nothing to map).
    pub fn attach_raw(source: Source<'_>) -> Result<Self, ShmError> {
        let (fd, name) = open_source(source)?;
        let file_size = file_size(&fd)?;
        if file_size == 0 {
            return Err(ShmError::InvalidSize {
                size: 0,
                reason: "cannot map an empty segment",
            });
        }
        Self::map(fd, name, file_size, 0, None)
    }

    /// Removes the name of a named segment, so no one else can attach it; the memory lives
    /// on until every process has dropped its segment. Fails with
    /// [`ShmError::NotNamed`] for an anonymous segment (or one attached by descriptor).
    pub fn unlink(&self) -> Result<(), ShmError> {
        let name = self.name.as_ref().ok_or(ShmError::NotNamed)?;
        Self::unlink_name(name)
    }

    /// Removes a named segment by name without attaching it (cleaning up after a process
    /// that died holding it, for example). `ENOENT` if there is no such segment.
    pub fn unlink_name(name: &ShmName) -> Result<(), ShmError> {
        sys::shm::unlink(name.as_str()).map_err(ShmError::os("shm_unlink"))
    }

    /// The name, for a segment created named or attached by name.
    pub fn name(&self) -> Option<&ShmName> {
        self.name.as_ref()
    }

    /// The tag checked or written on creation; `None` for raw segments.
    pub fn tag(&self) -> Option<Tag> {
        self.tag
    }

    /// How many bytes of data the segment has (not counting its header).
    pub fn len(&self) -> usize {
        self.data_len
    }

    /// Whether the segment has no data bytes.
    pub fn is_empty(&self) -> bool {
        self.data_len == 0
    }

    /// The segment's file, to pass to another process (which attaches it with
    /// [`Source::Fd`]). It is close-on-exec; whoever passes it to a new program says so.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Makes sure the first `len` bytes of data have memory behind them (`fallocate`), so
    /// that touching them later cannot fault with `SIGBUS` when the shared-memory
    /// filesystem is full: the caller gets `ENOSPC` here instead. Idempotent.
    pub fn reserve(&self, len: usize) -> Result<(), ShmError> {
        self.check_bounds(0, len)?;
        sys::memfd::allocate(self.fd.as_fd(), (self.data_offset + len) as u64)
            .map_err(ShmError::os("fallocate"))
    }

    /// Opens the segment another process of the same user holds as its descriptor `fd`
    /// (through `/proc/<pid>/fd/<fd>`), checking that it carries `tag`.
    pub fn attach_from_process(pid: u32, fd: u32, tag: Tag) -> Result<Self, ShmError> {
        let file =
            sys::fd::open_of_process(pid, fd).map_err(ShmError::os("open /proc/<pid>/fd"))?;
        Self::attach(Source::Fd(file.as_fd()), tag)
    }

    /// The first data byte, for exporting the segment through Python's buffer protocol.
    ///
    /// The pointer is valid for reads and writes of [`len`](Self::len) bytes for as long
    /// as this segment is alive (the exporter must keep it alive while any view exists).
    /// Other processes may write these bytes at any time, so Rust code must never turn
    /// the pointer into a `&[u8]` or `&mut [u8]`: use [`copy_in`](Self::copy_in),
    /// [`copy_out`](Self::copy_out) or [`get`](Self::get) instead.
    pub fn as_ptr(&self) -> *mut u8 {
        self.data_ptr(0)
    }

    /// A reference to the [`ShmSafe`] object at `offset`, which must be in bounds and
    /// aligned for `T`.
    pub fn get<T: ShmSafe + Sync>(&self, offset: usize) -> Result<&T, ShmError> {
        self.check_bounds(offset, size_of::<T>())?;
        let ptr = self.data_ptr(offset).cast::<T>();
        if !ptr.is_aligned() {
            return Err(ShmError::Misaligned {
                offset,
                align: align_of::<T>(),
            });
        }
        // SAFETY: `ptr` is inside our live mapping for `size_of::<T>()` bytes (bounds
        // checked above) and aligned for `T` (checked above). `T: ShmSafe` promises that any
        // bytes, which is what another process may have left there, are a valid `T`, and
        // that everything others may change concurrently is atomic, so a shared `&T` never
        // sees a data race. The reference borrows `self`, so the mapping outlives it.
        Ok(unsafe { &*ptr })
    }

    /// Copies `src` into the segment at `offset`.
    ///
    /// The copy is plain byte stores: if another process reads or writes the same bytes at
    /// the same time it may see them half-written. Ordering the copy (after a reservation,
    /// before a release-store that publishes it) is the caller's protocol.
    pub fn copy_in(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        self.check_bounds(offset, src.len())?;
        let dst = self.data_ptr(offset);
        // SAFETY: `dst..dst + src.len()` is inside our live, writable mapping (bounds
        // checked above), and `src` is a valid slice. No Rust reference covers the
        // destination (the API hands out none to plain bytes). `ptr::copy` (memmove)
        // rather than the nonoverlapping form, in case a caller's `src` was itself read out
        // of this mapping by unsafe code elsewhere (a Python buffer, say).
        unsafe { ptr::copy(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Copies bytes from the segment at `offset` into `dst`. Like [`copy_in`](Self::copy_in),
    /// a concurrent writer can leave the copy torn; the caller's protocol orders it.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        self.check_bounds(offset, dst.len())?;
        let src = self.data_ptr(offset);
        // SAFETY: `src..src + dst.len()` is inside our live mapping (bounds checked above),
        // and `dst` is a unique, valid slice. `dst` cannot lie inside the mapping: safe code
        // gets no `&mut` into it, so the two regions do not overlap.
        unsafe { ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to zero (the arena hands out zero-filled blocks).
    /// Plain byte stores, ordered by the caller's protocol like [`copy_in`](Self::copy_in).
    #[cfg_attr(loom, allow(dead_code))] // Only the arena uses it, and it is not built under loom.
    pub(crate) fn zero(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.check_bounds(offset, len)?;
        let dst = self.data_ptr(offset);
        // SAFETY: `dst..dst + len` is inside our live, writable mapping (bounds checked
        // above) and no Rust reference covers plain bytes of it.
        unsafe { ptr::write_bytes(dst, 0, len) };
        Ok(())
    }

    fn check_bounds(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.data_len => Ok(()),
            _ => Err(ShmError::OutOfBounds {
                offset,
                len,
                size: self.data_len,
            }),
        }
    }

    /// The address `offset` bytes into the data; `offset` must be at most `data_len`.
    fn data_ptr(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.data_len);
        // `wrapping_add` cannot actually wrap: `data_offset + offset <= map_len`, inside
        // one allocation, which is also why it stays in bounds and keeps provenance.
        self.base
            .as_ptr()
            .wrapping_add(self.data_offset)
            .wrapping_add(offset)
    }

    /// The header at the start of the mapping (of a segment that has one).
    fn header(&self) -> Result<&Header, ShmError> {
        debug_assert!(self.map_len >= Header::RESERVED);
        let ptr = self.base.as_ptr().cast::<Header>();
        // A page-aligned mapping is aligned for the header; checked rather than assumed.
        if self.map_len < Header::RESERVED || !ptr.is_aligned() {
            return Err(HeaderError::TooSmall {
                file_size: self.map_len as u64,
                header_size: Header::RESERVED as u64,
            }
            .into());
        }
        // SAFETY: the mapping holds at least `Header::RESERVED >= size_of::<Header>()` bytes
        // and `ptr` is aligned (both checked above). `Header` is `ShmSafe`: made of integer
        // atomics, valid for any bytes a peer may have written. The reference borrows `self`.
        Ok(unsafe { &*ptr })
    }

    fn create_mapped(
        backing: Backing<'_>,
        total: u64,
        data_offset: usize,
        tag: Option<Tag>,
    ) -> Result<Self, ShmError> {
        let (fd, name) = match backing {
            Backing::Anonymous => (create_anonymous(total)?, None),
            Backing::Named => {
                let name = ShmName::random()?;
                (create_named(&name, total)?, Some(name))
            }
            Backing::NamedAs(name) => (create_named(name, total)?, Some(name.clone())),
        };
        let unlink_on_error = name.clone();
        Self::map(fd, name, total, data_offset, tag).inspect_err(|_| {
            if let Some(name) = unlink_on_error {
                let _ = sys::shm::unlink(name.as_str());
            }
        })
    }

    /// Maps all `file_size` bytes of `fd`; the data is everything after `data_offset`.
    fn map(
        fd: OwnedFd,
        name: Option<ShmName>,
        file_size: u64,
        data_offset: usize,
        tag: Option<Tag>,
    ) -> Result<Self, ShmError> {
        let map_len = usize::try_from(file_size)
            .ok()
            .filter(|&len| len as u64 <= MAX_SIZE && len >= data_offset)
            .ok_or(ShmError::InvalidSize {
                size: file_size,
                reason: "too large to map",
            })?;
        let base = sys::mmap::map_shared(fd.as_fd(), map_len).map_err(ShmError::os("mmap"))?;
        Ok(Self {
            base,
            map_len,
            data_offset,
            data_len: map_len - data_offset,
            fd,
            name,
            tag,
        })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly the region `map` got from `map_shared`, unmapped
        // nowhere else; every reference `get` handed out borrows `self`, so none outlives
        // this drop.
        let _ = unsafe { sys::mmap::unmap(self.base, self.map_len) };
    }
}

/// A sized, sealed, owner-only memfd.
fn create_anonymous(size: u64) -> Result<OwnedFd, ShmError> {
    let fd = sys::memfd::create("ferroproc-shm").map_err(ShmError::os("memfd_create"))?;
    sys::shm::make_owner_only(fd.as_fd()).map_err(ShmError::os("fchmod"))?;
    sys::shm::set_size(fd.as_fd(), size).map_err(ShmError::os("ftruncate"))?;
    let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    sys::memfd::add_seals(fd.as_fd(), seals).map_err(ShmError::os("fcntl(F_ADD_SEALS)"))?;
    Ok(fd)
}

/// A new, sized, owner-only POSIX shm object; unlinked again if sizing fails.
fn create_named(name: &ShmName, size: u64) -> Result<OwnedFd, ShmError> {
    let fd = sys::shm::create(name.as_str()).map_err(ShmError::os("shm_open"))?;
    if let Err(e) = sys::shm::set_size(fd.as_fd(), size) {
        let _ = sys::shm::unlink(name.as_str());
        return Err(ShmError::os("ftruncate")(e));
    }
    Ok(fd)
}

fn open_source(source: Source<'_>) -> Result<(OwnedFd, Option<ShmName>), ShmError> {
    match source {
        Source::Fd(fd) => {
            let own = sys::fd::dup_above(fd, 0).map_err(ShmError::os("fcntl(F_DUPFD_CLOEXEC)"))?;
            Ok((own, None))
        }
        Source::Name(name) => {
            let fd = sys::shm::open(name.as_str()).map_err(ShmError::os("shm_open"))?;
            Ok((fd, Some(name.clone())))
        }
    }
}

fn file_size(fd: &OwnedFd) -> Result<u64, ShmError> {
    let info = sys::shm::stat(fd.as_fd()).map_err(ShmError::os("fstat"))?;
    if !info.regular {
        return Err(ShmError::Os {
            op: "fstat",
            source: rustix::io::Errno::NODEV,
        });
    }
    Ok(info.size)
}
