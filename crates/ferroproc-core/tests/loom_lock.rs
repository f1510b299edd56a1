//! Loom models of `RawLock`: mutual exclusion, no lost wake-up, owner-death takeover.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_lock`.
//!
//! Two waiters are used: `SpinWaiter` (never sleeps, so it cannot show a lost wake-up, but
//! it lets a waiter notice a dead holder, as the real waiter's timed slices do) and
//! `ModelFutex` (in `loom_support`), which really blocks until woken, so a missed wake-up is a deadlock
//! loom reports. Loom has no clock: nothing here uses deadlines.
#![cfg(loom)]

use ferroproc_core::futex::{SpinWaiter, Waiter};
use ferroproc_core::sync::{Acquire, AlwaysAlive, RawLock, SyncError};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

#[path = "loom_support/mod.rs"]
mod loom_support;
#[allow(unused_imports)]
use loom_support::*;

#[derive(Default)]
struct Shared {
    lock: RawLock,
    futex: ModelFutex,
    deaths: Deaths,
    /// Protected by the lock; updated with a load and a separate store, so a lost update
    /// (two holders at once, or a missing happens-before) shows in the total.
    counter: AtomicU32,
    /// How many acquires returned `AcquiredOwnerDied`.
    took_over: AtomicU32,
}

impl Shared {
    fn increment(&self) {
        let value = self.counter.load(Ordering::Relaxed);
        self.counter.store(value + 1, Ordering::Relaxed);
    }
}

fn locked_increment<W: Waiter>(shared: &Shared, waiter: &W, pid: u32) {
    let outcome = shared
        .lock
        .acquire(waiter, &AlwaysAlive, pid, None)
        .unwrap();
    assert_eq!(outcome, Acquire::Acquired);
    shared.increment();
    shared.lock.release(waiter).unwrap();
}

#[test]
fn mutual_exclusion_with_futex() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let other = {
            let shared = shared.clone();
            thread::spawn(move || {
                locked_increment(&shared, &shared.futex, 2);
                locked_increment(&shared, &shared.futex, 2);
            })
        };
        locked_increment(&shared, &shared.futex, 1);
        other.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 3);
        assert!(!shared.lock.is_locked());
    });
}

#[test]
fn mutual_exclusion_with_spinning() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let other = {
            let shared = shared.clone();
            thread::spawn(move || locked_increment(&shared, &SpinWaiter, 2))
        };
        locked_increment(&shared, &SpinWaiter, 1);
        other.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
        assert!(!shared.lock.is_locked());
    });
}

/// The holder is released while two others sleep: both must get the lock in turn (the
/// first one woken re-marks the word, or the second sleeps forever).
#[test]
fn no_lost_wakeup_with_two_sleepers() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        assert!(shared.lock.try_acquire(1).unwrap());
        let sleepers: Vec<_> = [2, 3]
            .into_iter()
            .map(|pid| {
                let shared = shared.clone();
                thread::spawn(move || locked_increment(&shared, &shared.futex, pid))
            })
            .collect();
        shared.increment();
        shared.lock.release(&shared.futex).unwrap();
        for sleeper in sleepers {
            sleeper.join().unwrap();
        }
        assert_eq!(shared.counter.load(Ordering::Relaxed), 3);
        assert!(!shared.lock.is_locked());
    });
}

/// A waiter interrupted by a signal re-enters and still gets the lock when it is released.
#[test]
fn reentry_after_interrupt() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let waiter = Arc::new(InterruptOnce::default());
        assert!(shared.lock.try_acquire(1).unwrap());
        let other = {
            let shared = shared.clone();
            let waiter = waiter.clone();
            thread::spawn(move || loop {
                match shared.lock.acquire(&*waiter, &AlwaysAlive, 2, None) {
                    Err(SyncError::Interrupted) => continue,
                    Ok(Acquire::Acquired) => {
                        shared.increment();
                        shared.lock.release(&*waiter).unwrap();
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            })
        };
        shared.increment();
        shared.lock.release(&*waiter).unwrap();
        other.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
    });
}

/// The holder (pid 1) writes, then dies holding the lock; the waiter takes over and sees
/// the write.
#[test]
fn owner_death_is_recovered() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        assert!(shared.lock.try_acquire(1).unwrap());
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || {
                let outcome = shared
                    .lock
                    .acquire(&SpinWaiter, &shared.deaths, 2, None)
                    .unwrap();
                assert_eq!(outcome, Acquire::AcquiredOwnerDied);
                assert_eq!(shared.lock.owner_pid(), Some(2));
                assert_eq!(shared.counter.load(Ordering::Relaxed), 1);
                shared.increment();
                shared.lock.release(&SpinWaiter).unwrap();
            })
        };
        shared.increment();
        shared.deaths.kill(1);
        waiter.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
        assert!(shared.lock.owner_died_ever());
        assert!(!shared.lock.is_locked());
    });
}

/// Two waiters see the same dead holder: exactly one takes over, the other gets the lock
/// normally afterwards, and they never hold it together.
#[test]
fn exactly_one_waiter_takes_over() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        assert!(shared.lock.try_acquire(1).unwrap());
        shared.deaths.kill(1);
        let waiters: Vec<_> = [2, 3]
            .into_iter()
            .map(|pid| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let outcome = shared
                        .lock
                        .acquire(&SpinWaiter, &shared.deaths, pid, None)
                        .unwrap();
                    assert!(outcome.is_acquired());
                    if outcome.owner_died() {
                        shared.took_over.fetch_add(1, Ordering::Relaxed);
                    }
                    shared.increment();
                    shared.lock.release(&SpinWaiter).unwrap();
                })
            })
            .collect();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(shared.took_over.load(Ordering::Relaxed), 1);
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
        assert!(!shared.lock.is_locked());
    });
}

/// Releasing a free lock is an error, also right after a contended release.
#[test]
fn over_release_is_an_error() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        assert!(matches!(
            shared.lock.release(&shared.futex),
            Err(SyncError::OverReleased)
        ));
        let other = {
            let shared = shared.clone();
            thread::spawn(move || locked_increment(&shared, &shared.futex, 2))
        };
        locked_increment(&shared, &shared.futex, 1);
        other.join().unwrap();
        assert!(matches!(
            shared.lock.release(&shared.futex),
            Err(SyncError::OverReleased)
        ));
        assert!(matches!(
            shared.lock.try_acquire(0),
            Err(SyncError::Invalid(_))
        ));
    });
}
