//! Shared mappings of a file descriptor.
#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::ptr::{self, NonNull};

use rustix::io::{Errno, Result};
use rustix::mm::{MapFlags, ProtFlags};

/// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`: maps the first `len` bytes
/// of `fd`, readable and writable, shared with every other mapping of the same file.
///
/// The kernel picks the address (no `MAP_FIXED`), so the new mapping never replaces memory
/// the program already uses; the caller owns the returned region and must [`unmap`] it.
/// `len` must not be zero. Touching a page past the end of the file raises `SIGBUS`, so the
/// caller must not map more than the file holds (and must keep the file from shrinking).
///
/// # References
///  - [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> Result<NonNull<u8>> {
    if len == 0 {
        return Err(Errno::INVAL);
    }
    // SAFETY: a null address without MAP_FIXED lets the kernel choose where to put the
    // mapping, so it cannot overlap or replace any memory this program already uses; the
    // returned region is new and owned by the caller, which is all mmap(2) requires of us.
    let addr = unsafe {
        rustix::mm::mmap(
            ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }?;
    NonNull::new(addr.cast::<u8>()).ok_or(Errno::NOMEM)
}

/// `munmap(addr, len)`: removes a mapping made by [`map_shared`].
///
/// # Safety
///
/// `addr` and `len` must be exactly a region returned by [`map_shared`] and not unmapped
/// since, and nothing may use the region afterwards: no reference into it may outlive this
/// call.
///
/// # References
///  - [munmap(2)](https://man7.org/linux/man-pages/man2/munmap.2.html)
pub(crate) unsafe fn unmap(addr: NonNull<u8>, len: usize) -> Result<()> {
    // SAFETY: the caller passes a whole region of ours, which nothing uses any more (this
    // function's contract), so removing it cannot pull memory from under a live reference.
    unsafe { rustix::mm::munmap(addr.as_ptr().cast(), len) }
}
