//! The atomics every concurrent algorithm in the crate is written against.
//!
//! Under `--cfg loom` these are loom's model-checked types, so the same algorithm code runs
//! in `tests/loom_*.rs` models; otherwise they are the standard library's. Code outside
//! this module must not name `core::sync::atomic` or `std::sync::atomic` directly
//! (`tests/source_rules.rs` checks it), so no algorithm escapes the models by accident.
//!
//! Loom cannot see futexes or other processes: algorithms therefore take their waiting
//! strategy as a [`Waiter`](crate::futex::Waiter) parameter, real futexes in production and
//! a loom-aware waiter in models.
// Some re-exports wait for the algorithms that use them.
#![allow(unused_imports, dead_code)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Spin-loop hint and yielding, model-aware.
pub(crate) mod hint {
    /// One iteration of a busy-wait.
    #[inline]
    pub(crate) fn spin_loop() {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        std::hint::spin_loop();
    }

    /// Gives up the processor (in models: lets loom schedule another thread).
    #[inline]
    pub(crate) fn yield_now() {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        std::thread::yield_now();
    }
}
