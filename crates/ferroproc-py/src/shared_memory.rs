//! Bindings of named raw segments: the memory of Python's `shared_memory.SharedMemory`.
//!
//! A [`PyNamedSegment`] is a POSIX shared-memory object under `/dev/shm`, created owner-only
//! (0600) and exclusively, every byte the user's (no header), so processes that know only
//! its name (ferroproc's or the stdlib's) can attach it. Python maps it with
//! `mmap.mmap(fd, size)` for its `buf`, as `heap.py` does for other segments.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};

use ferroproc_core::shm::{Backing, Segment, ShmName, Source};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::OrRaise;

/// A named raw shared-memory segment mapped into this process.
///
/// `close` unmaps it and closes its descriptor here (the name lives on); `unlink` removes
/// the name (the memory lives on until every process has closed it).
#[pyclass(frozen, module = "ferroproc._core", name = "NamedSegment")]
#[derive(Debug)]
pub struct PyNamedSegment {
    /// The segment, until [`close`](Self::close).
    segment: Mutex<Option<Segment>>,
    name: ShmName,
    size: usize,
}

impl PyNamedSegment {
    fn wrap(segment: Segment, name: ShmName) -> Self {
        let size = segment.len();
        Self {
            segment: Mutex::new(Some(segment)),
            name,
            size,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Segment>> {
        // Nothing panics while the lock is held; a poisoned lock still holds a valid value.
        self.segment
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyNamedSegment {
    /// A new zero-filled segment of `size` bytes named `name`, or a fresh unguessable name
    /// if `name` is `None`. `FileExistsError` if the name is taken; `ValueError` for an
    /// invalid name or a size of zero.
    #[staticmethod]
    #[pyo3(signature = (name, size))]
    fn create(py: Python<'_>, name: Option<&str>, size: usize) -> PyResult<Self> {
        let name = match name {
            Some(name) => ShmName::new(name).or_raise()?,
            None => ShmName::random().or_raise()?,
        };
        let segment = py
            .detach(|| Segment::create_raw(Backing::NamedAs(&name), size))
            .or_raise()?;
        Ok(Self::wrap(segment, name))
    }

    /// Attaches the existing segment `name`, all of it. `FileNotFoundError` if there is no
    /// such segment; `ValueError` for an invalid name or an empty segment.
    #[staticmethod]
    fn attach(py: Python<'_>, name: &str) -> PyResult<Self> {
        let name = ShmName::new(name).or_raise()?;
        let segment = py
            .detach(|| Segment::attach_raw(Source::Name(&name)))
            .or_raise()?;
        Ok(Self::wrap(segment, name))
    }

    /// The segment's descriptor, to map it; `ValueError` once closed.
    #[getter]
    fn fd(&self) -> PyResult<RawFd> {
        self.lock()
            .as_ref()
            .map(|segment| segment.fd().as_raw_fd())
            .ok_or_else(|| PyValueError::new_err("the shared memory segment is closed"))
    }

    /// The segment's size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// The segment's name, without a leading `/`.
    #[getter]
    fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Whether [`close`](Self::close) was called.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Removes the segment's name, so no one else can attach it; works after `close`
    /// too. `FileNotFoundError` if it is already gone.
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| Segment::unlink_name(&self.name)).or_raise()
    }

    /// Unmaps the segment and closes its descriptor in this process; idempotent. Python
    /// mappings made from the descriptor stay valid (they hold their own).
    fn close(&self) {
        let segment = self.lock().take();
        drop(segment);
    }

    fn __repr__(&self) -> String {
        format!(
            "<NamedSegment name={:?} size={}>",
            self.name.as_str(),
            self.size
        )
    }
}
