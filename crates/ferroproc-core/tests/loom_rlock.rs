//! Loom models of `RawRLock`: recursion, mutual exclusion between threads of one process
//! and between processes, non-owner release, owner-death takeover, release_all and
//! acquire_restore.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_rlock`.
//!
//! Owners are `(pid, tid)` pairs made up by the model; a "process" dies when `Deaths` says
//! so. `ModelFutex` really blocks until a `wake` picks it (a missed wake-up is a deadlock
//! loom reports); death models use `SpinWaiter`, whose immediate returns stand in for the
//! real waiter's timed slices. Loom has no clock: no deadlines here.
#![cfg(loom)]

use ferroproc_core::futex::{SpinWaiter, Waiter};
use ferroproc_core::sync::{Acquire, AlwaysAlive, Liveness, Owner, RawRLock, SyncError};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

#[path = "loom_support/mod.rs"]
mod loom_support;
#[allow(unused_imports)]
use loom_support::*;

#[derive(Default)]
struct Shared {
    lock: RawRLock,
    futex: ModelFutex,
    deaths: Deaths,
    counter: AtomicU32,
    took_over: AtomicU32,
}

impl Shared {
    fn increment(&self) {
        let value = self.counter.load(Ordering::Relaxed);
        self.counter.store(value + 1, Ordering::Relaxed);
    }
}

const fn owner(pid: u32, tid: u64) -> Owner {
    Owner { pid, tid }
}

/// Takes the lock twice, increments, and releases twice, checking ownership throughout.
fn nested_increment<W: Waiter, L: Liveness>(shared: &Shared, waiter: &W, liveness: &L, me: Owner) {
    let first = shared.lock.acquire(waiter, liveness, me, None).unwrap();
    assert!(first.is_acquired());
    if first.owner_died() {
        shared.took_over.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(
        shared.lock.acquire(waiter, liveness, me, None).unwrap(),
        Acquire::Acquired
    );
    assert_eq!(shared.lock.count(), 2);
    shared.increment();
    shared.lock.release(waiter, me).unwrap();
    assert!(shared.lock.is_owned_by(me));
    assert_eq!(shared.lock.count(), 1);
    shared.lock.release(waiter, me).unwrap();
    assert!(!shared.lock.is_owned_by(me));
}

/// Two threads of one process, and a thread of another process with the same thread id:
/// the counter ends exact, every wake-up arrives.
#[test]
fn recursion_and_mutual_exclusion() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let others: Vec<_> = [owner(1, 2), owner(2, 1)]
            .into_iter()
            .map(|me| {
                let shared = shared.clone();
                thread::spawn(move || nested_increment(&shared, &shared.futex, &AlwaysAlive, me))
            })
            .collect();
        nested_increment(&shared, &shared.futex, &AlwaysAlive, owner(1, 1));
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(shared.counter.load(Ordering::Relaxed), 3);
        assert!(!shared.lock.is_locked());
        assert_eq!(shared.lock.count(), 0);
    });
}

/// Neither another thread of the owner's process nor the same thread id in another
/// process may release it.
#[test]
fn non_owner_release_is_an_error() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let me = owner(1, 1);
        assert!(matches!(
            shared.lock.release(&shared.futex, me),
            Err(SyncError::NotOwner)
        ));
        assert!(shared.lock.try_acquire(me).unwrap());
        let intruders: Vec<_> = [owner(1, 2), owner(2, 1)]
            .into_iter()
            .map(|intruder| {
                let shared = shared.clone();
                thread::spawn(move || {
                    assert!(matches!(
                        shared.lock.release(&shared.futex, intruder),
                        Err(SyncError::NotOwner)
                    ));
                    assert!(matches!(
                        shared.lock.release_all(&shared.futex, intruder),
                        Err(SyncError::NotOwner)
                    ));
                    assert!(!shared.lock.try_acquire(intruder).unwrap());
                })
            })
            .collect();
        for intruder in intruders {
            intruder.join().unwrap();
        }
        assert!(shared.lock.is_owned_by(me));
        shared.lock.release(&shared.futex, me).unwrap();
        assert!(!shared.lock.is_locked());
        assert!(matches!(
            shared.lock.try_acquire(owner(1, 0)),
            Err(SyncError::Invalid(_))
        ));
    });
}

/// Process 1's thread 7 dies holding the lock twice. Process 2's threads 9 and 7 (the
/// dead owner's thread id, as after a fork) both want it: exactly one takes it over with a
/// count of 1, and thread 7 of process 2 never mistakes the dead owner's id for its own.
#[test]
fn owner_death_takeover_by_one_thread() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let dead = owner(1, 7);
        assert!(shared.lock.try_acquire(dead).unwrap());
        assert!(shared.lock.try_acquire(dead).unwrap());
        shared.deaths.kill(1);
        let takers: Vec<_> = [owner(2, 9), owner(2, 7)]
            .into_iter()
            .map(|me| {
                let shared = shared.clone();
                thread::spawn(move || nested_increment(&shared, &SpinWaiter, &shared.deaths, me))
            })
            .collect();
        for taker in takers {
            taker.join().unwrap();
        }
        assert_eq!(shared.took_over.load(Ordering::Relaxed), 1);
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
        assert!(shared.lock.owner_died_ever());
        assert!(!shared.lock.is_locked());
    });
}

/// A condition's wait: the owner saves its level, another thread takes and frees the
/// lock, the owner restores its level.
#[test]
fn release_all_and_acquire_restore() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let me = owner(1, 1);
        for _ in 0..3 {
            assert!(shared.lock.try_acquire(me).unwrap());
        }
        let saved = shared.lock.release_all(&shared.futex, me).unwrap();
        assert_eq!(saved, 3);
        let other = {
            let shared = shared.clone();
            thread::spawn(move || {
                nested_increment(&shared, &shared.futex, &AlwaysAlive, owner(2, 1))
            })
        };
        let restored = shared
            .lock
            .acquire_restore(&shared.futex, &AlwaysAlive, me, saved, None)
            .unwrap();
        assert_eq!(restored, Acquire::Acquired);
        assert_eq!(shared.lock.count(), 3);
        shared.increment();
        for _ in 0..3 {
            shared.lock.release(&shared.futex, me).unwrap();
        }
        other.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
        assert!(!shared.lock.is_locked());
    });
}

/// The window of a takeover: process 2's thread 7 polls with `try_acquire` while its
/// thread 9 takes over from the dead owner `(1, 7)`. Thread 7 must never see itself as the
/// owner through the dead owner's leftover thread id.
#[test]
fn dead_owners_thread_id_is_never_mistaken() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        assert!(shared.lock.try_acquire(owner(1, 7)).unwrap());
        shared.deaths.kill(1);
        let poller = {
            let shared = shared.clone();
            thread::spawn(move || {
                let me = owner(2, 7);
                while !shared.lock.try_acquire(me).unwrap() {
                    thread::yield_now();
                }
                assert_eq!(shared.lock.count(), 1);
                shared.increment();
                shared.lock.release(&SpinWaiter, me).unwrap();
            })
        };
        let me = owner(2, 9);
        let outcome = shared
            .lock
            .acquire(&SpinWaiter, &shared.deaths, me, None)
            .unwrap();
        assert!(outcome.is_acquired());
        assert_eq!(shared.lock.count(), 1);
        shared.increment();
        shared.lock.release(&SpinWaiter, me).unwrap();
        poller.join().unwrap();
        assert_eq!(shared.counter.load(Ordering::Relaxed), 2);
    });
}
