//! Loom models of `RawEvent`: no lost wake-up, set-then-clear still releases sleepers,
//! re-entry after a signal.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_event`.
//!
//! `ModelFutex` really blocks until a `wake` picks it, so a `set` that skips its wake-up
//! while someone sleeps is a deadlock loom reports. Loom has no clock: no deadlines here.
#![cfg(loom)]

use ferroproc_core::futex::SpinWaiter;
use ferroproc_core::sync::{RawEvent, SyncError};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

#[path = "loom_support/mod.rs"]
mod loom_support;
#[allow(unused_imports)]
use loom_support::*;

#[derive(Default)]
struct Shared {
    event: RawEvent,
    futex: ModelFutex,
    /// Written before `set`; whoever returns from `wait` must see it.
    payload: AtomicU32,
}

/// Two sleepers, one `set`: both wake, and both see what was written before it.
#[test]
fn set_wakes_every_waiter() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    assert!(shared.event.wait(&shared.futex, None).unwrap());
                    assert_eq!(shared.payload.load(Ordering::Relaxed), 7);
                })
            })
            .collect();
        shared.payload.store(7, Ordering::Relaxed);
        shared.event.set(&shared.futex);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert!(shared.event.is_set());
        assert!(!shared.event.has_waiters());
    });
}

/// A `set` immediately followed by `clear` still releases a waiter that was waiting
/// (generation), as `threading.Event` notifies rather than polls.
#[test]
fn set_then_clear_releases_a_sleeper() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || assert!(shared.event.wait(&shared.futex, None).unwrap()))
        };
        while !shared.event.has_waiters() {
            thread::yield_now();
        }
        shared.event.set(&shared.futex);
        shared.event.clear();
        waiter.join().unwrap();
        assert!(!shared.event.is_set());
    });
}

/// Set, clear and set again with a spinning waiter; it returns true.
#[test]
fn spinning_waiter_sees_set() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || assert!(shared.event.wait(&SpinWaiter, None).unwrap()))
        };
        shared.event.set(&SpinWaiter);
        shared.event.clear();
        shared.event.set(&SpinWaiter);
        waiter.join().unwrap();
        assert!(shared.event.is_set());
    });
}

/// A waiter interrupted by a signal re-enters and is still woken by `set`.
#[test]
fn reentry_after_interrupt() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let waiter = Arc::new(InterruptOnce::default());
        let sleeper = {
            let shared = shared.clone();
            let waiter = waiter.clone();
            thread::spawn(move || loop {
                match shared.event.wait(&*waiter, None) {
                    Err(SyncError::Interrupted) => continue,
                    Ok(true) => break,
                    other => panic!("unexpected {other:?}"),
                }
            })
        };
        shared.event.set(&*waiter);
        sleeper.join().unwrap();
    });
}
