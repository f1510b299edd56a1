//! POSIX shared-memory objects (files under `/dev/shm`) and the file calls segments need.
//!
//! `shm_open(3)` is a library function: glibc opens `/dev/shm/<name>` with
//! `O_NOFOLLOW | O_CLOEXEC` added. We make the same `open(2)` directly, which lets us say
//! exactly which flags are used.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::io::{Errno, Result};
use rustix::rand::GetRandomFlags;

/// Where POSIX shared-memory objects live on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm/";

/// Owner read and write, nothing for anyone else.
const OWNER_ONLY: Mode = Mode::RUSR.union(Mode::WUSR);

/// `shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600)`, that is
/// `open("/dev/shm/<name>", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)`:
/// creates a new, empty shared-memory object, failing with `EEXIST` if the name is taken.
///
/// `name` must already be a valid single path component (see `shm::name`).
///
/// # References
///  - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
///  - [open(2)](https://man7.org/linux/man-pages/man2/open.2.html)
pub(crate) fn create(name: &str) -> Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(format!("{SHM_DIR}{name}"), flags, OWNER_ONLY)
}

/// `shm_open(name, O_RDWR, 0)`, that is
/// `open("/dev/shm/<name>", O_RDWR | O_NOFOLLOW | O_CLOEXEC)`: opens an existing object.
///
/// # References
///  - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
///  - [open(2)](https://man7.org/linux/man-pages/man2/open.2.html)
pub(crate) fn open(name: &str) -> Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(format!("{SHM_DIR}{name}"), flags, Mode::empty())
}

/// `shm_unlink(name)`, that is `unlink("/dev/shm/<name>")`: removes the name; the memory
/// lives on until the last mapping and descriptor are gone.
///
/// # References
///  - [shm_unlink(3)](https://man7.org/linux/man-pages/man3/shm_unlink.3.html)
///  - [unlink(2)](https://man7.org/linux/man-pages/man2/unlink.2.html)
pub(crate) fn unlink(name: &str) -> Result<()> {
    rustix::fs::unlink(format!("{SHM_DIR}{name}"))
}

/// `ftruncate(fd, size)`: sets the file's size; new bytes read as zero.
///
/// # References
///  - [ftruncate(2)](https://man7.org/linux/man-pages/man2/ftruncate.2.html)
pub(crate) fn set_size(fd: BorrowedFd<'_>, size: u64) -> Result<()> {
    rustix::fs::ftruncate(fd, size)
}

/// `fchmod(fd, 0600)`: owner read and write only.
///
/// # References
///  - [fchmod(2)](https://man7.org/linux/man-pages/man2/fchmod.2.html)
pub(crate) fn make_owner_only(fd: BorrowedFd<'_>) -> Result<()> {
    rustix::fs::fchmod(fd, OWNER_ONLY)
}

/// What a segment needs to know about its file, from one `fstat(fd)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileInfo {
    /// `st_size`.
    pub(crate) size: u64,
    /// Whether `st_mode` says regular file (shm objects and memfds are).
    pub(crate) regular: bool,
}

/// `fstat(fd)`: the file's size and type.
///
/// # References
///  - [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html)
pub(crate) fn stat(fd: BorrowedFd<'_>) -> Result<FileInfo> {
    let stat = rustix::fs::fstat(fd)?;
    let regular =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
    let size = u64::try_from(stat.st_size).map_err(|_| Errno::INVAL)?;
    Ok(FileInfo { size, regular })
}

/// `getrandom(buf, len, 0)` until `buf` is full, retrying on `EINTR`: bytes from the
/// kernel's cryptographic random generator (the source of `/dev/urandom`).
///
/// # References
///  - [getrandom(2)](https://man7.org/linux/man-pages/man2/getrandom.2.html)
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
