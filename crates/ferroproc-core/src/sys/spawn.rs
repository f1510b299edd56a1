//! `posix_spawn(3)`, with descriptor renumbering and default signal state.
//!
//! rustix has no `posix_spawn`, so this goes through glibc (which runs it as
//! `clone(CLONE_VM | CLONE_VFORK)` + `execve`, no copy of the address space).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr;

use rustix::io::{Errno, Result};

/// posix_spawn functions return the error number instead of setting `errno`.
fn check(rc: libc::c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(rc))
    }
}

/// Owns an initialised `posix_spawn_file_actions_t`. Boxed so that its address does not
/// change between `init` and `destroy` (glibc keeps a heap array hanging off it).
struct FileActions(Box<MaybeUninit<libc::posix_spawn_file_actions_t>>);

impl FileActions {
    fn new() -> Result<Self> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: `raw` is a writable, properly aligned slot for the struct; init fills it.
        check(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        Ok(Self(raw))
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        self.0.as_mut_ptr()
    }

    fn add_dup2(&mut self, fd: RawFd, target: RawFd) -> Result<()> {
        // SAFETY: the struct was initialised by `new` and is not destroyed until drop.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(self.as_mut_ptr(), fd, target) })
    }

    fn add_close_from(&mut self, from: RawFd) -> Result<()> {
        // SAFETY: as in `add_dup2`; glibc 2.34+ provides the function (we require 2.34).
        check(unsafe { libc::posix_spawn_file_actions_addclosefrom_np(self.as_mut_ptr(), from) })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised by `new`, destroyed exactly once, here.
        unsafe { libc::posix_spawn_file_actions_destroy(self.as_mut_ptr()) };
    }
}

/// Owns an initialised `posix_spawnattr_t`.
struct Attributes(Box<MaybeUninit<libc::posix_spawnattr_t>>);

impl Attributes {
    fn new() -> Result<Self> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: `raw` is a writable, properly aligned slot for the struct; init fills it.
        check(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        Ok(Self(raw))
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        self.0.as_mut_ptr()
    }

    /// Only `blocked` blocked, and `SIGPIPE` and `SIGXFSZ` back at their default action.
    ///
    /// Those two are the ones a Python parent ignores for itself (CPython's subprocess
    /// restores the same pair); every other ignored signal stays ignored, so a program
    /// started under `nohup` keeps its children immune to `SIGHUP`, as with `exec`.
    fn reset_signals(&mut self, blocked: &[i32]) -> Result<()> {
        let mut mask = empty_signal_set();
        for &signo in blocked {
            // SAFETY: `mask` is an initialised sigset_t we own; sigaddset rejects an
            // invalid signal number with EINVAL rather than touching anything else.
            if unsafe { libc::sigaddset(&mut mask, signo) } != 0 {
                return Err(rustix::io::Errno::INVAL);
            }
        }
        let mut restored = empty_signal_set();
        for signo in [libc::SIGPIPE, libc::SIGXFSZ] {
            // SAFETY: `restored` is an initialised sigset_t we own; the signal is valid.
            unsafe { libc::sigaddset(&mut restored, signo) };
        }
        // Both flags fit in a c_short (they are 0x04 and 0x08).
        let flags = (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short;
        // SAFETY: the attributes were initialised by `new` and are live until drop.
        check(unsafe { libc::posix_spawnattr_setflags(self.as_mut_ptr(), flags) })?;
        // SAFETY: as above; `mask` is an initialised sigset_t that glibc copies.
        check(unsafe { libc::posix_spawnattr_setsigmask(self.as_mut_ptr(), &mask) })?;
        // SAFETY: as above; `restored` is an initialised sigset_t that glibc copies.
        check(unsafe { libc::posix_spawnattr_setsigdefault(self.as_mut_ptr(), &restored) })
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: initialised by `new`, destroyed exactly once, here.
        unsafe { libc::posix_spawnattr_destroy(self.as_mut_ptr()) };
    }
}

/// An empty signal set.
fn empty_signal_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `set` is a writable slot for a sigset_t; sigemptyset initialises it fully.
    unsafe { libc::sigemptyset(set.as_mut_ptr()) };
    // SAFETY: sigemptyset above initialised the whole set (it cannot fail for a valid
    // pointer).
    unsafe { set.assume_init() }
}

/// A null-terminated array of pointers into `strings`, as `argv`/`envp` want it.
fn c_array(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr().cast_mut())
        .chain(std::iter::once(ptr::null_mut()))
        .collect()
}

/// `posix_spawn(&pid, program, actions, attrs, argv, envp)` with these file actions, in
/// order: `dup2(fd, target)` for each pair of `dups` (which clears close-on-exec on the
/// target), then `closefrom(close_from)`; and these attributes: a signal mask of exactly
/// `blocked`, and `SIGPIPE`/`SIGXFSZ` reset to their default action. Returns the child's
/// pid.
///
/// Each source descriptor in `dups` must be numbered at or above every target, so that
/// no `dup2` overwrites a source that a later one still needs.
///
/// # References
///  - [posix_spawn(3)](https://man7.org/linux/man-pages/man3/posix_spawn.3.html)
///  - [posix_spawn_file_actions_adddup2(3p)](https://man7.org/linux/man-pages/man3/posix_spawn_file_actions_adddup2.3p.html)
///  - [posix_spawn_file_actions_addclosefrom_np (glibc 2.34)](https://sourceware.org/glibc/manual/latest/html_node/Process-Creation-Concepts.html)
///  - [posix_spawnattr_setsigdefault(3p)](https://man7.org/linux/man-pages/man3/posix_spawnattr_setsigdefault.3p.html)
pub(crate) fn posix_spawn(
    program: &CStr,
    argv: &[CString],
    envp: &[CString],
    dups: &[(BorrowedFd<'_>, RawFd)],
    close_from: RawFd,
    blocked: &[i32],
) -> Result<i32> {
    let mut actions = FileActions::new()?;
    for (fd, target) in dups {
        actions.add_dup2(fd.as_raw_fd(), *target)?;
    }
    actions.add_close_from(close_from)?;
    let mut attributes = Attributes::new()?;
    attributes.reset_signals(blocked)?;

    let argv = c_array(argv);
    let envp = c_array(envp);
    let mut pid: libc::pid_t = 0;
    // SAFETY: `pid` is writable; `program` and every string behind `argv`/`envp` are
    // NUL-terminated and outlive the call (borrowed from the caller), and both arrays are
    // null-terminated; `actions` and `attributes` are initialised. The descriptors in
    // `dups` are borrowed, so open, for the duration of the call. posix_spawn does not keep
    // any of these pointers after it returns.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            actions.as_mut_ptr(),
            attributes.as_mut_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    check(rc)?;
    Ok(pid)
}
