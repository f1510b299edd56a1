//! Loom models of `RawBarrier`: parties pass several generations with distinct indices,
//! the last party's action happens before anybody passes, `abort` and `reset` wake the
//! waiters with `BrokenBarrier`.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_barrier`.
//!
//! Waiters really block (`BlockingFutex`), so a lost wake-up is a deadlock loom reports.
//! Loom has no clock, so nothing times out and no liveness check runs here: those are
//! exercised with real processes in `sync_condition_barrier.rs`.
#![cfg(loom)]

use std::time::Instant;

use ferroproc_core::futex::{WaitOutcome, Waiter};
use ferroproc_core::sync::{AlwaysAlive, Arrival, RawBarrier, Release, SyncError};
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A futex for models: sleeps on a loom condition variable while the word holds the
/// expected value, checked under the mutex that `wake` also takes.
#[derive(Default)]
struct BlockingFutex {
    mutex: Mutex<()>,
    changed: Condvar,
}

impl Waiter for BlockingFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, _deadline: Option<Instant>) -> WaitOutcome {
        let held = self.mutex.lock().unwrap();
        if word.load(Ordering::SeqCst) == expected {
            drop(self.changed.wait(held).unwrap());
        }
        WaitOutcome::Woken
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) -> u32 {
        let _held = self.mutex.lock().unwrap();
        self.changed.notify_all();
        0
    }
}

struct Shared {
    barrier: RawBarrier<4>,
    futex: BlockingFutex,
}

impl Shared {
    fn new(parties: u32) -> Arc<Self> {
        Arc::new(Self {
            barrier: RawBarrier::new(parties).unwrap(),
            futex: BlockingFutex::default(),
        })
    }

    fn wait(&self, pid: u32) -> Result<u32, SyncError> {
        self.barrier.wait(&self.futex, &AlwaysAlive, pid, None)
    }
}

/// Checks that `indices` are exactly `0..indices.len()`.
fn assert_distinct(mut indices: Vec<u32>) {
    indices.sort_unstable();
    let expected: Vec<u32> = (0..indices.len() as u32).collect();
    assert_eq!(indices, expected);
}

/// Two parties pass two generations; each generation hands out indices 0 and 1.
#[test]
fn two_parties_pass_two_generations() {
    loom::model(|| {
        let shared = Shared::new(2);
        let other = {
            let shared = shared.clone();
            thread::spawn(move || [shared.wait(1).unwrap(), shared.wait(1).unwrap()])
        };
        let mine = [shared.wait(2).unwrap(), shared.wait(2).unwrap()];
        let theirs = other.join().unwrap();
        assert_distinct(vec![mine[0], theirs[0]]);
        assert_distinct(vec![mine[1], theirs[1]]);
        assert!(!shared.barrier.broken());
        assert_eq!(shared.barrier.n_waiting(), 0);
    });
}

/// Three parties pass one generation (with distinct indices), then pass again.
#[test]
fn three_parties_pass_with_distinct_indices() {
    loom::model(|| {
        let shared = Shared::new(3);
        let others: Vec<_> = [1, 2]
            .into_iter()
            .map(|pid| {
                let shared = shared.clone();
                thread::spawn(move || shared.wait(pid).unwrap())
            })
            .collect();
        let mine = shared.wait(3).unwrap();
        let mut indices = vec![mine];
        indices.extend(others.into_iter().map(|other| other.join().unwrap()));
        assert_distinct(indices);
        assert_eq!(shared.barrier.n_waiting(), 0);
    });
}

/// The last party's action (here: setting a flag) is done before any party passes.
#[test]
fn action_runs_before_anyone_passes() {
    loom::model(|| {
        let shared = Shared::new(2);
        let action_done = Arc::new(AtomicBool::new(false));
        let run = |shared: &Shared, action_done: &AtomicBool, pid: u32| match shared
            .barrier
            .arrive(&shared.futex, &AlwaysAlive, pid, None)
            .unwrap()
        {
            Arrival::Last(ticket) => {
                action_done.store(true, Ordering::Relaxed);
                shared
                    .barrier
                    .complete(ticket, &shared.futex, &AlwaysAlive, pid)
                    .unwrap()
            }
            Arrival::Waiting(ticket) => {
                let released = shared
                    .barrier
                    .await_release(ticket, &shared.futex, &AlwaysAlive, pid, None)
                    .unwrap();
                assert_eq!(released, Release::Passed);
                ticket.index()
            }
        };
        let other = {
            let (shared, action_done) = (shared.clone(), action_done.clone());
            thread::spawn(move || {
                let index = run(&shared, &action_done, 1);
                assert!(action_done.load(Ordering::Relaxed));
                index
            })
        };
        let mine = run(&shared, &action_done, 2);
        assert!(action_done.load(Ordering::Relaxed));
        assert_distinct(vec![mine, other.join().unwrap()]);
    });
}

/// `abort` breaks the barrier for the parties waiting and for those still to come.
#[test]
fn abort_wakes_waiters_with_broken_barrier() {
    loom::model(|| {
        let shared = Shared::new(3);
        let waiters: Vec<_> = [1, 2]
            .into_iter()
            .map(|pid| {
                let shared = shared.clone();
                thread::spawn(move || shared.wait(pid))
            })
            .collect();
        shared
            .barrier
            .abort(&shared.futex, &AlwaysAlive, 3)
            .unwrap();
        for waiter in waiters {
            assert!(matches!(
                waiter.join().unwrap(),
                Err(SyncError::BrokenBarrier)
            ));
        }
        assert!(shared.barrier.broken());
        assert!(matches!(shared.wait(3), Err(SyncError::BrokenBarrier)));
    });
}

/// `reset` while a party waits: it gets `BrokenBarrier`, and the barrier works again.
#[test]
fn reset_breaks_waiters_and_mends_the_barrier() {
    loom::model(|| {
        let shared = Shared::new(2);
        let other = {
            let shared = shared.clone();
            thread::spawn(move || {
                let first = shared.wait(1);
                (first, shared.wait(1))
            })
        };
        while shared.barrier.n_waiting() == 0 {
            thread::yield_now();
        }
        shared
            .barrier
            .reset(&shared.futex, &AlwaysAlive, 2)
            .unwrap();
        assert!(!shared.barrier.broken());
        let mine = shared.wait(2).unwrap();
        let (first, second) = other.join().unwrap();
        assert!(matches!(first, Err(SyncError::BrokenBarrier)));
        assert_distinct(vec![mine, second.unwrap()]);
    });
}
