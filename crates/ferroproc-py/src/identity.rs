//! Who the caller is (process and thread), without a system call on the hot path.
//!
//! Locks record their holder as a pid (and an `RLock` as a pid and a kernel thread id).
//! `getpid` and `gettid` are system calls, and an uncontended acquire+release would make
//! three of them: more than the lock itself costs. So each thread caches its identity,
//! tagged with the process's fork count; `ferroproc.heap` registers [`note_fork`] to run
//! before every fork, so after a fork the count differs (in both processes) and the cache
//! is refreshed once.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use ferroproc_core::sync::Owner;
use pyo3::prelude::*;

/// How many times this process has forked (or was about to, counted before each fork).
static FORKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ME: Cell<Option<(u64, Owner)>> = const { Cell::new(None) };
}

/// Counts a fork; `ferroproc.heap` registers it with `os.register_at_fork(before=...)`.
#[pyfunction]
pub fn note_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// How many forks this process has counted; changes across every fork.
pub fn fork_count() -> u64 {
    FORKS.load(Ordering::Relaxed)
}

/// The calling thread, as a lock's owner.
pub fn me_thread() -> Owner {
    let forks = fork_count();
    ME.with(|me| match me.get() {
        Some((seen, owner)) if seen == forks => owner,
        _ => {
            let owner = Owner::current();
            me.set(Some((forks, owner)));
            owner
        }
    })
}

/// The calling process's pid.
pub fn me_pid() -> u32 {
    me_thread().pid
}
