//! Sealed anonymous files (`memfd`), read and written by offset.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::{Errno, Result};

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
pub(crate) fn create(name: &str) -> Result<OwnedFd> {
    rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
}

/// `fcntl(fd, F_ADD_SEALS, seals)`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: SealFlags) -> Result<()> {
    rustix::fs::fcntl_add_seals(fd, seals)
}

/// `fcntl(fd, F_GET_SEALS)`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub(crate) fn seals(fd: BorrowedFd<'_>) -> Result<SealFlags> {
    rustix::fs::fcntl_get_seals(fd)
}

/// `fstat(fd).st_size`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fstat.2.html)
pub(crate) fn size(fd: BorrowedFd<'_>) -> Result<u64> {
    u64::try_from(rustix::fs::fstat(fd)?.st_size).map_err(|_| Errno::INVAL)
}

/// `pwrite(fd, buf, len, offset)` until all of `buf` is written, retrying on `EINTR`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/pwrite.2.html)
pub(crate) fn pwrite_all(fd: BorrowedFd<'_>, mut buf: &[u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
        match rustix::io::pwrite(fd, buf, offset) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `pread(fd, buf, len, offset)` until `buf` is full or the file ends, retrying on
/// `EINTR`. Returns how many bytes were read; fewer than `buf.len()` means end of file.
/// Reading by offset leaves the file position alone, which other holders may share.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/pread.2.html)
pub(crate) fn pread_full(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `fallocate(fd, 0, 0, len)`: allocates the file's pages now, so the first writes into a
/// mapping of it do not each stop to allocate one.
///
/// # References
///  - [fallocate(2)](https://man7.org/linux/man-pages/man2/fallocate.2.html)
pub(crate) fn allocate(fd: BorrowedFd<'_>, len: u64) -> Result<()> {
    rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len)
}
