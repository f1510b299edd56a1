//! Stand-ins for the kernel in loom models: a futex that really blocks (so a lost wake-up
//! is a deadlock loom reports), one that reports a signal once, and processes that die
//! when the model says so. Included by the `loom_*.rs` models with `#[path]`.
#![allow(dead_code)]

use ferroproc_core::futex::{WaitOutcome, Waiter};
use ferroproc_core::sync::Liveness;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Condvar, Mutex};
use std::time::Instant;

/// A futex for models: `wait` sleeps while the word holds `expected` (checked under the
/// mutex `wake` takes, so no wake-up falls in between) until a `wake` picks it; `wake(n)`
/// picks at most `n` sleepers on that word, oldest first, as `FUTEX_WAKE` does.
#[derive(Default)]
pub struct ModelFutex {
    sleepers: Mutex<Sleepers>,
    wakeups: Condvar,
}

#[derive(Default)]
pub struct Sleepers {
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
pub struct InterruptOnce {
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

/// Processes die when the model says so: bit `pid` set means dead. The dying thread stores
/// with `Release`, so whoever sees it dead also sees what it wrote before dying.
#[derive(Default)]
pub struct Deaths(AtomicU32);

impl Deaths {
    pub fn kill(&self, pid: u32) {
        self.0.fetch_or(1 << pid, Ordering::Release);
    }
}

impl Liveness for Deaths {
    fn is_alive(&self, pid: u32) -> bool {
        self.0.load(Ordering::Acquire) & (1 << pid) == 0
    }
}
