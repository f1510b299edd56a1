//! Asking whether a process is still alive.
//!
//! The robust locks ([`RawLock`](super::RawLock), [`RawRLock`](super::RawRLock)) record
//! their holder's process id in the lock word. A waiter that has slept without the word
//! changing asks a [`Liveness`] whether that holder still exists, and takes the lock over
//! when it does not. [`ProcessLiveness`] asks the kernel; loom models and tests inject
//! their own answer (a holder "dies" when the model says so).
//!
//! A process id is only a name: once the holder is dead and reaped, the kernel may give its
//! id to a new process, which then looks like a live holder. Linux hands out ids in
//! increasing order up to `pid_max` (up to 2²² = 4 194 304) before it wraps, so this needs
//! millions of process creations while the lock stays abandoned; it is a documented limit,
//! not a correctness hole in normal use.

use crate::sys;

/// Tells whether a process is still alive. The real implementation asks the kernel
/// (through a pidfd, so a zombie counts as dead); loom models and tests inject their own.
pub trait Liveness {
    /// Whether the process `pid` is alive (a zombie is not).
    ///
    /// Implementations must be conservative: answer `true` when in doubt, since `false`
    /// lets another process take over a lock the holder may still be using. An
    /// implementation that models death must make the dying process's writes visible to
    /// whoever observes `false` (in models: an `Acquire` load of a flag the dying thread
    /// stored with `Release`).
    fn is_alive(&self, pid: u32) -> bool;
}

impl<L: Liveness + ?Sized> Liveness for &L {
    fn is_alive(&self, pid: u32) -> bool {
        (**self).is_alive(pid)
    }
}

/// Asks the kernel: a process is dead when `pidfd_open(pid)` fails with `ESRCH` or its
/// pidfd polls readable (it has exited; a zombie is dead). Where pidfds are unavailable it
/// falls back to `kill(pid, 0)`. Any other failure answers "alive", so a lock is never
/// taken from a holder that could not be proven dead.
///
/// Costs two or three system calls and allocates nothing; the locks ask only after a wait
/// returned without the lock word changing (a timed-out slice or a spurious wake-up), never
/// on their uncontended path.
///
/// Process ids are those of the caller's pid namespace: processes sharing a lock must see
/// each other under the same ids (the usual case: one process tree in one namespace).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessLiveness;

impl Liveness for ProcessLiveness {
    fn is_alive(&self, pid: u32) -> bool {
        let Ok(raw) = i32::try_from(pid) else {
            // No such process id exists on Linux; nobody can hold the lock under it.
            return false;
        };
        sys::pidfd::process_alive(raw).unwrap_or(true)
    }
}

/// Every process is alive: owner-death recovery never triggers. For tests, and for callers
/// that know their holders cannot die (threads of one process).
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysAlive;

impl Liveness for AlwaysAlive {
    fn is_alive(&self, _pid: u32) -> bool {
        true
    }
}
