//! Loom models of `RawCondition`: no lost wake-up, `notify(n)` wakes exactly `n` of the
//! current waiters, and a timeout that crosses a notification neither loses nor invents
//! one.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_condition`.
//!
//! Waiters here really block (`BlockingFutex`), so a wake-up that goes missing shows up as
//! a deadlock, which loom reports. Loom has no clock: a timeout is modelled by a waiter
//! that reports `TimedOut` instead of sleeping. "Processes" are threads with their own
//! pids.
#![cfg(loom)]

use std::time::Instant;

use ferroproc_core::futex::{WaitOutcome, Waiter};
use ferroproc_core::sync::{AlwaysAlive, ConditionLock, Liveness, RawCondition, RawLock, Sleep};
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A futex for models: sleeps on a loom condition variable while the word holds the
/// expected value, checked under the mutex that `wake` also takes (so a wake-up cannot
/// slip between the check and the sleep). Wakes everyone: spurious wake-ups are allowed.
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

/// A waiter whose deadline has always just passed.
struct Expired;

impl Waiter for Expired {
    fn wait(&self, word: &AtomicU32, expected: u32, _deadline: Option<Instant>) -> WaitOutcome {
        if word.load(Ordering::SeqCst) != expected {
            return WaitOutcome::Woken;
        }
        thread::yield_now();
        WaitOutcome::TimedOut
    }

    fn wake(&self, _word: &AtomicU32, _count: u32) -> u32 {
        0
    }
}

/// Processes the model has killed: bit `pid` set means dead. Set with `Release`, read
/// with `Acquire`, so whoever sees a death also sees what the dead process wrote before.
#[derive(Default)]
struct Graveyard(AtomicU32);

impl Graveyard {
    fn bury(&self, pid: u32) {
        self.0.fetch_or(1 << pid, Ordering::Release);
    }
}

impl Liveness for Graveyard {
    fn is_alive(&self, pid: u32) -> bool {
        self.0.load(Ordering::Acquire) & (1 << pid) == 0
    }
}

/// A lock, a condition over it, and the model's waiter, shared by every thread.
struct Shared {
    lock: RawLock,
    cond: RawCondition<2>,
    futex: BlockingFutex,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            lock: RawLock::new(),
            cond: RawCondition::new(),
            futex: BlockingFutex::default(),
        })
    }

    fn lock(&self, pid: u32) {
        let acquired = self.lock.acquire(&self.futex, &AlwaysAlive, pid, None);
        assert!(acquired.unwrap().is_acquired());
    }

    fn unlock(&self) {
        self.lock.release(&self.futex).unwrap();
    }

    /// Takes the lock once `ready` holds, spinning with the lock released in between.
    fn lock_when(&self, pid: u32, ready: impl Fn(&Self) -> bool) {
        loop {
            self.lock(pid);
            if ready(self) {
                return;
            }
            self.unlock();
            thread::yield_now();
        }
    }

    fn wait(&self, pid: u32) -> bool {
        self.cond
            .wait(&self.lock, pid, &self.futex, &AlwaysAlive, None)
            .unwrap()
    }

    fn notify(&self, pid: u32, n: u32) -> u32 {
        self.cond
            .notify(&self.lock, pid, &self.futex, &AlwaysAlive, n)
            .unwrap()
    }
}

/// The classic hand-off: a consumer waits in a loop for a flag a producer sets and
/// notifies under the lock. Whatever the interleaving, the consumer wakes (a lost wake-up
/// would deadlock), and it returns from `wait` only when notified.
#[test]
fn handoff_never_loses_a_wakeup() {
    loom::model(|| {
        let shared = Shared::new();
        let ready = Arc::new(AtomicBool::new(false));

        let consumer = {
            let (shared, ready) = (shared.clone(), ready.clone());
            thread::spawn(move || {
                shared.lock(1);
                let mut waits = 0;
                while !ready.load(Ordering::Relaxed) {
                    assert!(shared.wait(1), "returned without a notification");
                    waits += 1;
                }
                shared.unlock();
                waits
            })
        };

        shared.lock(2);
        ready.store(true, Ordering::Relaxed);
        let notified = shared.notify(2, 1);
        shared.unlock();

        let waits = consumer.join().unwrap();
        // Notified exactly when the consumer was waiting at the time.
        assert_eq!(notified, waits);
        assert_eq!(shared.cond.waiting(), 0);
    });
}

/// Two waiters, `notify(1)`: exactly one wakes, and the other keeps waiting until the
/// second `notify(1)`.
#[test]
fn notify_one_wakes_exactly_one() {
    loom::model(|| {
        let shared = Shared::new();
        let woken = Arc::new(AtomicU32::new(0));

        let waiters: Vec<_> = [1, 2]
            .into_iter()
            .map(|pid| {
                let (shared, woken) = (shared.clone(), woken.clone());
                thread::spawn(move || {
                    shared.lock(pid);
                    assert!(shared.wait(pid), "returned without a notification");
                    woken.fetch_add(1, Ordering::Relaxed);
                    shared.unlock();
                })
            })
            .collect();

        // Both registered (registration happens under the lock).
        shared.lock_when(3, |shared| shared.cond.waiting() == 2);
        assert_eq!(shared.notify(3, 1), 1);
        shared.unlock();

        shared.lock_when(3, |_| woken.load(Ordering::Relaxed) >= 1);
        assert_eq!(woken.load(Ordering::Relaxed), 1, "notify(1) woke two");
        assert_eq!(shared.cond.waiting(), 1);
        assert_eq!(shared.notify(3, 1), 1);
        shared.unlock();

        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::Relaxed), 2);
    });
}

/// A waiter that times out while the notifier runs: every notification `notify` reports
/// is consumed by exactly one waiter (the one timing out reports `true` if it got it), and
/// the blocking waiter is always woken in the end.
#[test]
fn timeout_neither_loses_nor_invents_a_notification() {
    loom::model(|| {
        let shared = Shared::new();
        let done = Arc::new(AtomicBool::new(false));

        let blocking = {
            let (shared, done) = (shared.clone(), done.clone());
            thread::spawn(move || {
                shared.lock(1);
                let notified = shared.wait(1);
                done.store(true, Ordering::Relaxed);
                shared.unlock();
                u32::from(notified)
            })
        };
        let timing_out = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.lock(2);
                let registered = shared
                    .cond
                    .begin_wait(&shared.lock, 2, &shared.futex, &AlwaysAlive)
                    .unwrap();
                let slept = shared.cond.sleep(&registered, &Expired, None);
                let (notified, ()) = shared.cond.end_wait(registered);
                assert!(slept == Sleep::TimedOut || notified);
                let reacquired = shared
                    .lock
                    .reacquire(&shared.futex, &AlwaysAlive, 2, (), None);
                assert!(reacquired.unwrap().is_acquired());
                shared.unlock();
                u32::from(notified)
            })
        };

        // Notify one at a time until the blocking waiter has returned.
        let mut granted = 0;
        loop {
            shared.lock(3);
            if done.load(Ordering::Relaxed) {
                shared.unlock();
                break;
            }
            granted += shared.notify(3, 1);
            shared.unlock();
            thread::yield_now();
        }

        let consumed = blocking.join().unwrap() + timing_out.join().unwrap();
        assert_eq!(consumed, granted);
        assert_eq!(shared.cond.waiting(), 0);
    });
}

/// A waiter that dies while waiting (registered, lock released, never comes back) does
/// not absorb a notification: `notify(1)` skips it and wakes the live waiter, whichever
/// registered first (a notification spent on the dead one would deadlock the model).
#[test]
fn notify_skips_a_dead_waiter() {
    loom::model(|| {
        let shared = Shared::new();
        let graveyard = Arc::new(Graveyard::default());

        let doomed = {
            let (shared, graveyard) = (shared.clone(), graveyard.clone());
            thread::spawn(move || {
                shared.lock(1);
                let registered = shared
                    .cond
                    .begin_wait(&shared.lock, 1, &shared.futex, &*graveyard)
                    .unwrap();
                // Killed here: the registration is never ended.
                std::mem::forget(registered);
                graveyard.bury(1);
            })
        };
        let live = {
            let (shared, graveyard) = (shared.clone(), graveyard.clone());
            thread::spawn(move || {
                shared.lock(2);
                let notified = shared
                    .cond
                    .wait(&shared.lock, 2, &shared.futex, &*graveyard, None)
                    .unwrap();
                shared.unlock();
                notified
            })
        };

        shared.lock_when(3, |shared| {
            shared.cond.waiting() == 2 && !graveyard.is_alive(1)
        });
        let notified = shared
            .cond
            .notify(&shared.lock, 3, &shared.futex, &*graveyard, 1)
            .unwrap();
        assert_eq!(notified, 1);
        // If the live waiter was older, the dead one was not looked at yet: the next
        // notification finds it dead, frees its slot, and has nobody to wake.
        let more = shared
            .cond
            .notify(&shared.lock, 3, &shared.futex, &*graveyard, 1)
            .unwrap();
        assert_eq!(more, 0);
        assert_eq!(shared.cond.waiting(), 0, "the dead waiter's slot is freed");
        shared.unlock();

        doomed.join().unwrap();
        assert!(live.join().unwrap());
    });
}
