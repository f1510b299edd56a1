//! Loom models of `RawSemaphore`: no lost wake-up, exact counts, bounded over-release,
//! re-entry after a signal.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_semaphore`.
//!
//! `ModelFutex` really blocks until a `wake` picks it, so a release that skips its wake-up
//! while someone sleeps is a deadlock loom reports. Loom has no clock: no deadlines here.
#![cfg(loom)]

use ferroproc_core::futex::SpinWaiter;
use ferroproc_core::sync::{RawSemaphore, SyncError};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

#[path = "loom_support/mod.rs"]
mod loom_support;
#[allow(unused_imports)]
use loom_support::*;

struct Shared {
    semaphore: RawSemaphore,
    futex: ModelFutex,
    counter: AtomicU32,
}

impl Shared {
    fn new(value: u32, max: Option<u32>) -> Arc<Self> {
        Arc::new(Self {
            semaphore: RawSemaphore::new(value, max).unwrap(),
            futex: ModelFutex::default(),
            counter: AtomicU32::new(0),
        })
    }

    fn take(&self) {
        assert!(self.semaphore.acquire(&self.futex, None).unwrap());
    }
}

/// Two acquirers on an empty semaphore, two separate releases: both must wake.
#[test]
fn no_lost_wakeup() {
    loom::model(|| {
        let shared = Shared::new(0, None);
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || shared.take())
            })
            .collect();
        shared.semaphore.release(&shared.futex, 1).unwrap();
        shared.semaphore.release(&shared.futex, 1).unwrap();
        for taker in takers {
            taker.join().unwrap();
        }
        assert_eq!(shared.semaphore.get_value(), 0);
        assert_eq!(shared.semaphore.sleepers(), 0);
    });
}

/// One `release(2)` wakes both sleepers.
#[test]
fn release_n_wakes_n() {
    loom::model(|| {
        let shared = Shared::new(0, None);
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || shared.take())
            })
            .collect();
        shared.semaphore.release(&shared.futex, 2).unwrap();
        for taker in takers {
            taker.join().unwrap();
        }
        assert_eq!(shared.semaphore.get_value(), 0);
    });
}

/// A semaphore of 1 excludes: a load-then-store counter ends exact.
#[test]
fn binary_semaphore_excludes() {
    loom::model(|| {
        let shared = Shared::new(1, Some(1));
        let increment = |shared: &Shared| {
            shared.take();
            let value = shared.counter.load(Ordering::Relaxed);
            shared.counter.store(value + 1, Ordering::Relaxed);
            shared.semaphore.release(&shared.futex, 1).unwrap();
        };
        let other = {
            let shared = shared.clone();
            thread::spawn(move || increment(&shared))
        };
        increment(&shared);
        other.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
        assert_eq!(shared.semaphore.get_value(), 1);
    });
}

/// A spinning waiter gets its unit too.
#[test]
fn spinning_waiter_gets_its_unit() {
    loom::model(|| {
        let shared = Shared::new(0, None);
        let taker = {
            let shared = shared.clone();
            thread::spawn(move || assert!(shared.semaphore.acquire(&SpinWaiter, None).unwrap()))
        };
        shared.semaphore.release(&SpinWaiter, 1).unwrap();
        taker.join().unwrap();
        assert_eq!(shared.semaphore.get_value(), 0);
    });
}

/// Two concurrent releases of a full bounded semaphore of 1 whose unit one thread
/// holds: exactly one succeeds, the other is `OverReleased`, and the value stays 1.
#[test]
fn bounded_over_release_is_an_error() {
    loom::model(|| {
        let shared = Shared::new(1, Some(1));
        assert!(shared.semaphore.try_acquire());
        let failures = Arc::new(AtomicU32::new(0));
        let releasers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                let failures = failures.clone();
                thread::spawn(move || match shared.semaphore.release(&shared.futex, 1) {
                    Ok(()) => {}
                    Err(SyncError::OverReleased) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("unexpected {e}"),
                })
            })
            .collect();
        for releaser in releasers {
            releaser.join().unwrap();
        }
        assert_eq!(failures.load(Ordering::Relaxed), 1);
        assert_eq!(shared.semaphore.get_value(), 1);
        assert_eq!(shared.semaphore.max_value(), Some(1));
    });
}

/// An acquirer interrupted by a signal re-enters; its sleeper registration was undone.
#[test]
fn reentry_after_interrupt() {
    loom::model(|| {
        let shared = Shared::new(0, None);
        let waiter = Arc::new(InterruptOnce::default());
        let taker = {
            let shared = shared.clone();
            let waiter = waiter.clone();
            thread::spawn(move || loop {
                match shared.semaphore.acquire(&*waiter, None) {
                    Err(SyncError::Interrupted) => continue,
                    Ok(true) => break,
                    other => panic!("unexpected {other:?}"),
                }
            })
        };
        shared.semaphore.release(&*waiter, 1).unwrap();
        taker.join().unwrap();
        assert_eq!(shared.semaphore.get_value(), 0);
        assert_eq!(shared.semaphore.sleepers(), 0);
    });
}
