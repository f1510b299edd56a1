//! Loom models of `RawSemaphore`: no lost wake-up, exact counts, bounded over-release,
//! re-entry after a signal.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_semaphore`.
//!
//! `ModelFutex` really blocks until a `wake` picks it, so a release that skips its wake-up
//! while someone sleeps is a deadlock loom reports. Loom has no clock: no deadlines here.
#![cfg(loom)]

use ferroproc_core::futex::{SpinWaiter, WaitOutcome, Waiter};
use ferroproc_core::sync::{RawSemaphore, SyncError};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use std::time::Instant;

/// A futex for models: `wait` sleeps while the word holds `expected` (checked under the
/// mutex `wake` takes, so no wake-up falls in between) until a `wake` picks it; `wake(n)`
/// picks at most `n` sleepers on that word, oldest first, as `FUTEX_WAKE` does.
#[derive(Default)]
struct ModelFutex {
    sleepers: Mutex<Sleepers>,
    wakeups: Condvar,
}

#[derive(Default)]
struct Sleepers {
    next_ticket: u64,
    /// (ticket, address of the word, picked by a wake)
    queue: Vec<(u64, usize, bool)>,
}

impl Waiter for ModelFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, _deadline: Option<Instant>) -> WaitOutcome {
        let mut sleepers = self.sleepers.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return WaitOutcome::Woken;
        }
        let ticket = sleepers.next_ticket;
        sleepers.next_ticket += 1;
        sleepers
            .queue
            .push((ticket, word as *const AtomicU32 as usize, false));
        loop {
            sleepers = self.wakeups.wait(sleepers).unwrap();
            let picked = sleepers
                .queue
                .iter()
                .position(|&(t, _, picked)| t == ticket && picked);
            if let Some(index) = picked {
                sleepers.queue.remove(index);
                return WaitOutcome::Woken;
            }
        }
    }

    fn wake(&self, word: &AtomicU32, count: u32) -> u32 {
        let mut sleepers = self.sleepers.lock().unwrap();
        let address = word as *const AtomicU32 as usize;
        let mut woken = 0;
        for entry in sleepers.queue.iter_mut() {
            if woken < count && entry.1 == address && !entry.2 {
                entry.2 = true;
                woken += 1;
            }
        }
        if woken > 0 {
            self.wakeups.notify_all();
        }
        woken
    }
}

/// Reports a signal on its first wait, then behaves as `ModelFutex`.
#[derive(Default)]
struct InterruptOnce {
    interrupted: AtomicU32,
    futex: ModelFutex,
}

impl Waiter for InterruptOnce {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        if self.interrupted.swap(1, Ordering::Relaxed) == 0 {
            return WaitOutcome::Interrupted;
        }
        self.futex.wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32, count: u32) -> u32 {
        self.futex.wake(word, count)
    }
}

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
