//! Bindings of `ferroproc_core::shm`: arenas, objects placed in their blocks, raw byte
//! blocks of an arena (small `sharedctypes` objects) and whole raw segments (large ones).
//!
//! Python reaches the bytes of a [`PyRawBlock`] or a [`PySharedBuffer`] through its own
//! `mmap.mmap` of the segment's descriptor: the mapping object then guards the lifetime
//! of every buffer exported from it, so this crate needs no buffer protocol of its own.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ferroproc_core::shm::layout::Header;
use ferroproc_core::shm::{Arena, Backing, Block, Segment, ShmSafe, Source};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::OrRaise;
use crate::fd::PyFd;
use crate::identity::{fork_count, me_pid};

/// A shared-memory arena: an anonymous segment (memfd) that small shared objects (locks,
/// events, small buffers) are carved out of, by any process that maps it.
#[pyclass(frozen, module = "ferroproc._core", name = "Arena")]
#[derive(Debug)]
pub struct PyArena {
    arena: Arc<Arena>,
}

#[pymethods]
impl PyArena {
    /// A new arena with room for about `capacity` bytes of blocks.
    #[staticmethod]
    fn create(py: Python<'_>, capacity: usize) -> PyResult<Self> {
        let arena = py
            .detach(|| Arena::create(Backing::Anonymous, capacity))
            .or_raise()?;
        Ok(Self {
            arena: Arc::new(arena),
        })
    }

    /// Maps the arena behind `fd` (received from a parent); the caller keeps `fd` and may
    /// close it, the arena holds its own duplicate.
    #[staticmethod]
    fn attach(py: Python<'_>, fd: RawFd) -> PyResult<Self> {
        let fd = PyFd::new(fd)?;
        let arena = py
            .detach(|| Arena::attach(Source::Fd(fd.borrow())))
            .or_raise()?;
        Ok(Self {
            arena: Arc::new(arena),
        })
    }

    /// The arena's descriptor, to pass to a child being started.
    #[getter]
    fn fd(&self) -> RawFd {
        self.arena.segment().fd().as_raw_fd()
    }

    /// The arena's size in bytes, bookkeeping included.
    #[getter]
    fn size(&self) -> usize {
        self.arena.segment().len()
    }

    /// Where the arena's data starts in its file, past the segment header: block offsets
    /// count from here, so a block at `offset` is at `data_offset + offset` of a mapping
    /// of [`fd`](Self::fd) (whose file holds `data_offset + size` bytes).
    #[getter]
    fn data_offset(&self) -> usize {
        // An arena's segment is always tagged, so it always has a header.
        Header::RESERVED
    }

    fn __repr__(&self) -> String {
        format!("<Arena fd={} size={}>", self.fd(), self.size())
    }
}

impl PyArena {
    /// The shared arena behind this Python object.
    pub fn shared(&self) -> Arc<Arena> {
        Arc::clone(&self.arena)
    }
}

/// The word at the start of every block an object is placed in: [`SHARED`] once the
/// object may be used by another process.
type BlockMark = AtomicU32;

/// [`BlockMark`] value: another process may use the object.
const SHARED: u32 = 1;

/// Where an object of type `T` sits: a block of an arena, starting with a [`BlockMark`].
///
/// The process that allocated the block frees it when its handle is dropped, unless
/// another process may still use the object: it was pickled for a child (the mark in
/// shared memory says so), or this process forked while the object lived (the child has a
/// copy of the handle). Such blocks live as long as the arena, which the kernel frees when
/// the last process lets go.
#[derive(Debug)]
pub struct Placed {
    arena: Arc<Arena>,
    block: Block,
    /// Where the object starts, past the mark, from the start of the arena's data.
    object: usize,
    /// The process that allocated the block, if this is it (and so may free it), and the
    /// fork count then.
    allocated: Option<(u32, u64)>,
}

impl Placed {
    /// Allocates a zeroed block for a `T` in `arena`.
    pub fn allocate<T: ShmSafe>(arena: Arc<Arena>) -> PyResult<Self> {
        Self::allocate_bytes(arena, std::mem::size_of::<T>(), std::mem::align_of::<T>())
    }

    /// Allocates a zeroed block for `size` bytes aligned to `align` (a power of two, at
    /// most [`Arena::MAX_ALIGN`]) in `arena`: plain bytes, not an object made of atomics,
    /// so never reached through [`get`](Self::get).
    pub fn allocate_bytes(arena: Arc<Arena>, size: usize, align: usize) -> PyResult<Self> {
        let (size, object_at, align) = Self::layout_of(size, align);
        let block = arena.alloc(size, align).or_raise()?;
        let allocated = Some((me_pid(), fork_count()));
        Ok(Self {
            arena,
            block,
            object: block.offset + object_at,
            allocated,
        })
    }

    /// The handle of `size` bytes aligned to `align` that another process placed at
    /// `offset` (as given by [`Placed::offset`]) with [`allocate_bytes`](Self::allocate_bytes);
    /// checked to be in bounds and aligned.
    pub fn rebuild_bytes(
        arena: Arc<Arena>,
        offset: usize,
        size: usize,
        align: usize,
    ) -> PyResult<Self> {
        let (block_size, object_at, align) = Self::layout_of(size, align);
        let bad = || PyValueError::new_err("not the offset of a shared block");
        let start = offset.checked_sub(object_at).ok_or_else(bad)?;
        if offset % align != 0 {
            return Err(bad());
        }
        arena.segment().get::<BlockMark>(start).or_raise()?;
        if start
            .checked_add(block_size)
            .is_none_or(|end| end > arena.segment().len())
        {
            return Err(bad());
        }
        let block = Block {
            offset: start,
            size: block_size
                .max(align)
                .max(Arena::MIN_BLOCK)
                .next_power_of_two(),
        };
        Ok(Self {
            arena,
            block,
            object: offset,
            allocated: None,
        })
    }

    /// The handle of an object another process placed at `offset` (as given by
    /// [`Placed::offset`]) in `arena`; checked to be in bounds and aligned.
    pub fn rebuild<T: ShmSafe + Sync>(arena: Arc<Arena>, offset: usize) -> PyResult<Self> {
        let (size, object_at) = Self::layout::<T>();
        let start = offset.checked_sub(object_at).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err("not the offset of a shared object")
        })?;
        arena.segment().get::<BlockMark>(start).or_raise()?;
        arena.segment().get::<T>(offset).or_raise()?;
        let block = Block {
            offset: start,
            size: size.next_power_of_two().max(Arena::MIN_BLOCK),
        };
        Ok(Self {
            arena,
            block,
            object: offset,
            allocated: None,
        })
    }

    /// The block's size and where the object starts in it.
    fn layout<T>() -> (usize, usize) {
        let (size, object_at, _) =
            Self::layout_of(std::mem::size_of::<T>(), std::mem::align_of::<T>());
        (size, object_at)
    }

    /// For an object of `size` bytes aligned to `align`: the block's size, where the
    /// object starts in it, and the block's alignment (the mark's at least).
    fn layout_of(size: usize, align: usize) -> (usize, usize, usize) {
        let align = align.max(std::mem::align_of::<BlockMark>());
        let object_at = std::mem::size_of::<BlockMark>().next_multiple_of(align);
        (object_at.saturating_add(size), object_at, align)
    }

    /// The object, as a reference to a `ShmSafe` type made of atomics.
    pub fn get<T: ShmSafe + Sync>(&self) -> &T {
        // Checked in bounds and aligned when the handle was made; the segment cannot
        // shrink under us (anonymous segments are sealed), so this cannot fail later.
        self.arena
            .segment()
            .get::<T>(self.object)
            .expect("a placed object stays in bounds and aligned")
    }

    /// Records that another process may use the object, so its block is never freed.
    pub fn mark_shared(&self) {
        self.mark().store(SHARED, Ordering::Release);
    }

    fn mark(&self) -> &BlockMark {
        self.arena
            .segment()
            .get::<BlockMark>(self.block.offset)
            .expect("a placed block stays in bounds and aligned")
    }

    /// The object's offset, which together with the arena names it in every process.
    pub fn offset(&self) -> usize {
        self.object
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        let unshared = self.allocated == Some((me_pid(), fork_count()));
        if unshared && self.mark().load(Ordering::Acquire) != SHARED {
            // Nothing else can name this block: a failure here only leaks it.
            let _ = self.arena.free(self.block);
        }
    }
}

/// Where a raw block's bytes start, past its [`BlockMark`]: 16 bytes, so they are aligned
/// for every C type `ctypes` has (`long double` included), as `malloc` would align them.
const RAW_ALIGN: usize = 16;

/// Plain bytes in a block of an arena: the memory of a small `sharedctypes` object
/// (`Value`, `RawValue`, a small `Array`).
///
/// Python maps the arena once more with `mmap.mmap(arena.fd, arena.data_offset +
/// arena.size)` and finds the bytes at `arena.data_offset + offset`. The block is zeroed
/// when allocated, and freed when its handle is dropped under the same rule as every
/// object placed in an arena (see `Placed`): only in the process that allocated it, and
/// only if no other process may use it (it was never pickled for a child, and this
/// process has not forked since).
#[pyclass(frozen, module = "ferroproc._core", name = "RawBlock")]
#[derive(Debug)]
pub struct PyRawBlock {
    arena: Py<PyArena>,
    placed: Placed,
    size: usize,
}

#[pymethods]
impl PyRawBlock {
    /// How the bytes are aligned (from the start of the arena's data, itself aligned to
    /// a cache line).
    #[classattr]
    const ALIGN: usize = RAW_ALIGN;

    /// The most bytes a block can hold; larger objects get a [`PySharedBuffer`].
    #[classattr]
    const MAX_SIZE: usize = Arena::MAX_BLOCK - RAW_ALIGN;

    /// A zeroed block of `size` bytes in `arena`; `MemoryError` if the arena is full.
    #[new]
    fn new(arena: Bound<'_, PyArena>, size: usize) -> PyResult<Self> {
        if size > Self::MAX_SIZE {
            return Err(PyValueError::new_err(format!(
                "a raw block holds at most {} bytes, not {size}",
                Self::MAX_SIZE
            )));
        }
        let placed = Placed::allocate_bytes(arena.get().shared(), size, RAW_ALIGN)?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
            size,
        })
    }

    /// The block of `size` bytes another process allocated at `offset` of `arena`.
    #[staticmethod]
    fn rebuild(arena: Bound<'_, PyArena>, offset: usize, size: usize) -> PyResult<Self> {
        if size > Self::MAX_SIZE {
            return Err(PyValueError::new_err("not the size of a raw block"));
        }
        let placed = Placed::rebuild_bytes(arena.get().shared(), offset, size, RAW_ALIGN)?;
        Ok(Self {
            arena: arena.unbind(),
            placed,
            size,
        })
    }

    /// Where the bytes start, from the start of the arena's data.
    #[getter]
    fn offset(&self) -> usize {
        self.placed.offset()
    }

    /// How many bytes the block holds for its user (as asked for).
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// The arena the block lives in.
    #[getter]
    fn arena(&self, py: Python<'_>) -> Py<PyArena> {
        self.arena.clone_ref(py)
    }

    /// Records that another process may use the block (it is being pickled for a
    /// child), so it is never freed.
    fn _mark_shared(&self) {
        self.placed.mark_shared();
    }

    fn __repr__(&self) -> String {
        format!("<RawBlock offset={} size={}>", self.offset(), self.size)
    }
}

/// A raw shared-memory segment of its own: an anonymous, sealed memfd, every byte the
/// user's (no header). The memory of a large `sharedctypes` array; Python maps it with
/// `mmap.mmap(fd, size)`, and passes `fd` to children being started.
///
/// The kernel frees the memory once every process has dropped its handle, closed its
/// descriptors and unmapped it.
#[pyclass(frozen, module = "ferroproc._core", name = "SharedBuffer")]
#[derive(Debug)]
pub struct PySharedBuffer {
    segment: Segment,
}

#[pymethods]
impl PySharedBuffer {
    /// A new zero-filled segment of `size` bytes (`size` must be positive).
    #[staticmethod]
    fn create(py: Python<'_>, size: usize) -> PyResult<Self> {
        let segment = py
            .detach(|| Segment::create_raw(Backing::Anonymous, size))
            .or_raise()?;
        Ok(Self { segment })
    }

    /// Maps the segment behind `fd` (received from a parent); the caller keeps `fd` and
    /// may close it, the buffer holds its own duplicate.
    #[staticmethod]
    fn attach(py: Python<'_>, fd: RawFd) -> PyResult<Self> {
        let fd = PyFd::new(fd)?;
        let segment = py
            .detach(|| Segment::attach_raw(Source::Fd(fd.borrow())))
            .or_raise()?;
        Ok(Self { segment })
    }

    /// The segment's descriptor, to map it or pass it to a child being started.
    #[getter]
    fn fd(&self) -> RawFd {
        self.segment.fd().as_raw_fd()
    }

    /// The segment's size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.segment.len()
    }

    fn __repr__(&self) -> String {
        format!("<SharedBuffer fd={} size={}>", self.fd(), self.size())
    }
}
