//! [`Payload`]: a task's encoded arguments, kept by the parent until the task settles (so
//! it can be sent again if its worker dies).
//!
//! Small payloads are bytes, copied into a worker's inbox ring. Large ones (NumPy arrays)
//! are written once into a memfd of their own, [`TaskFile`], which travels to the worker
//! as a file descriptor: the worker maps it instead of copying it, and a task sent again
//! costs nothing more.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::SealFlags;

use super::wire::{TaskHeader, TASK_HEADER_LEN};
use super::PoolError;
use crate::channel::{ChannelError, Fill, MessageSink};
use crate::sys;

/// A task's encoded arguments.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Bytes, sent through the ring.
    Inline(Arc<[u8]>),
    /// A file, sent as a descriptor.
    File(Arc<TaskFile>),
}

impl Payload {
    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Inline(bytes) => bytes.len() as u64,
            Self::File(file) => file.len - TASK_HEADER_LEN as u64,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A task whose message (header and payload) lives in a memfd: the payload is written at
/// creation after room for the header, which is written, and the file sealed, once the
/// task has its ticket.
#[derive(Debug)]
pub struct TaskFile {
    file: OwnedFd,
    len: u64,
}

fn os(operation: &'static str) -> impl Fn(rustix::io::Errno) -> PoolError {
    move |errno| PoolError::Os {
        operation,
        source: errno.into(),
    }
}

/// The most threads that write task files at once (see [`TaskFile::create_many`]).
const WRITERS_MAX: usize = 4;

impl TaskFile {
    /// Writes a payload made of `parts` into a new memfd.
    pub fn create(parts: &[&[u8]]) -> Result<Self, PoolError> {
        let file = sys::memfd::create("ferroproc-task").map_err(os("memfd_create"))?;
        let mut offset = TASK_HEADER_LEN as u64;
        for part in parts {
            sys::memfd::pwrite_all(file.as_fd(), part, offset).map_err(os("pwrite"))?;
            offset += part.len() as u64;
        }
        Ok(Self { file, len: offset })
    }

    /// [`create`](Self::create) for several payloads, on several threads: what costs is
    /// the kernel allocating each file's pages (about 0.7 ms per MB on a small VM), which
    /// scales across files though not within one.
    pub fn create_many(payloads: &[Vec<&[u8]>]) -> Vec<Result<Self, PoolError>> {
        let writers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(WRITERS_MAX)
            .min(payloads.len());
        if writers <= 1 {
            return payloads.iter().map(|parts| Self::create(parts)).collect();
        }
        let mut results: Vec<Option<Result<Self, PoolError>>> =
            payloads.iter().map(|_| None).collect();
        let share = payloads.len().div_ceil(writers);
        std::thread::scope(|scope| {
            for (outputs, inputs) in results.chunks_mut(share).zip(payloads.chunks(share)) {
                scope.spawn(move || {
                    for (output, parts) in outputs.iter_mut().zip(inputs) {
                        *output = Some(Self::create(parts));
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|result| result.unwrap_or(Err(PoolError::Corrupt("a writer thread panicked"))))
            .collect()
    }

    /// Writes the task's header and seals the file: from here on nobody can change it, so
    /// a worker may trust and map it.
    pub(crate) fn seal(&self, header: TaskHeader) -> Result<(), PoolError> {
        sys::memfd::pwrite_all(self.file.as_fd(), &header.encode(), 0).map_err(os("pwrite"))?;
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
        sys::memfd::add_seals(self.file.as_fd(), seals).map_err(os("fcntl(F_ADD_SEALS)"))
    }

    /// The file.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The file's length: header and payload.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds nothing at all (never: it has room for a header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn file(&self) -> &OwnedFd {
        &self.file
    }
}

/// Reads the header at the start of a task file a worker received, after checking that
/// the file is sealed (its sender can no longer change it).
pub fn read_file_header(file: BorrowedFd<'_>) -> Result<(TaskHeader, u64), PoolError> {
    let (header, len) = read_sealed_prefix::<TASK_HEADER_LEN>(file)?;
    let (header, definition, _) = TaskHeader::decode(&header)?;
    if !definition.is_empty() {
        return Err(PoolError::Corrupt("a task file that claims a definition"));
    }
    Ok((header, len))
}

/// A message taken from a pool channel: its bytes, or (a spilled one) its sealed file.
#[derive(Debug)]
pub(crate) enum Received {
    Bytes(Vec<u8>),
    File(OwnedFd),
}

/// Takes messages as bytes, and spilled ones as their files, to be mapped, not copied.
#[derive(Debug, Default)]
pub(crate) struct ReceivedSink(pub(crate) Vec<Received>);

impl MessageSink for ReceivedSink {
    fn take(&mut self, len: usize, _first: u8, fill: &mut Fill<'_>) -> Result<(), ChannelError> {
        let mut message = vec![0u8; len];
        fill(0, &mut message)?;
        self.0.push(Received::Bytes(message));
        Ok(())
    }

    fn wants_files(&self) -> bool {
        true
    }

    fn take_file(&mut self, file: OwnedFd) -> Result<(), ChannelError> {
        self.0.push(Received::File(file));
        Ok(())
    }
}

/// Checks that a received file is sealed and reads its first `N` bytes; returns them and
/// the file's length.
pub(crate) fn read_sealed_prefix<const N: usize>(
    file: BorrowedFd<'_>,
) -> Result<([u8; N], u64), PoolError> {
    let seals = sys::memfd::seals(file).map_err(os("fcntl(F_GET_SEALS)"))?;
    if !seals.contains(SealFlags::SHRINK | SealFlags::WRITE) {
        return Err(PoolError::Corrupt("a file that is not sealed"));
    }
    let len = sys::memfd::size(file).map_err(os("fstat"))?;
    let mut prefix = [0u8; N];
    let read = sys::memfd::pread_full(file, &mut prefix, 0).map_err(os("pread"))?;
    if read != N {
        return Err(PoolError::Corrupt("a file shorter than its header"));
    }
    Ok((prefix, len))
}

/// Reads a whole received file (a large value the reader wants as bytes).
pub(crate) fn read_all(file: BorrowedFd<'_>, from: u64, len: u64) -> Result<Vec<u8>, PoolError> {
    let size = usize::try_from(len.saturating_sub(from))
        .map_err(|_| PoolError::Corrupt("a file too large to read"))?;
    let mut bytes = vec![0u8; size];
    let read = sys::memfd::pread_full(file, &mut bytes, from).map_err(os("pread"))?;
    if read != size {
        return Err(PoolError::Corrupt("a file shorter than it says"));
    }
    Ok(bytes)
}
