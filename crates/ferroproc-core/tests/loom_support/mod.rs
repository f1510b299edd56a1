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

/// A ring's bytes for models: one loom cell per 16-byte slot (records start on slot
/// boundaries), so loom reports a writer and a reader touching the same record at once as
/// a data race, and nothing else.
pub struct RingCells {
    slots: Vec<loom::cell::UnsafeCell<[u8; 16]>>,
}

// SAFETY: the cells are only touched through loom's `with`/`with_mut`, which check every
// access against the model's happens-before relation: an access the ring's protocol does
// not order is reported as a race instead of silently allowed.
unsafe impl Sync for RingCells {}

impl RingCells {
    pub fn new(capacity: u64) -> Self {
        let slots = (0..capacity / 16)
            .map(|_| loom::cell::UnsafeCell::new([0u8; 16]))
            .collect();
        Self { slots }
    }

    /// Calls `f(slot, range within the slot, range within the caller's buffer)` for each
    /// slot `len` bytes from `offset` touch.
    fn each_slot(
        offset: u64,
        len: usize,
        mut f: impl FnMut(usize, std::ops::Range<usize>, std::ops::Range<usize>),
    ) {
        let mut done = 0;
        while done < len {
            let at = offset as usize + done;
            let (slot, within) = (at / 16, at % 16);
            let n = (16 - within).min(len - done);
            f(slot, within..within + n, done..done + n);
            done += n;
        }
    }
}

impl ferroproc_core::channel::RingBytes for RingCells {
    fn write(&self, offset: u64, src: &[u8]) -> Result<(), ferroproc_core::channel::ChannelError> {
        Self::each_slot(offset, src.len(), |slot, inside, outside| {
            // SAFETY: loom checks that no other access to this slot is concurrent with
            // this one; the pointer is valid for the cell's lifetime.
            self.slots[slot]
                .with_mut(|cell| unsafe { (&mut *cell)[inside].copy_from_slice(&src[outside]) });
        });
        Ok(())
    }

    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
    ) -> Result<(), ferroproc_core::channel::ChannelError> {
        Self::each_slot(offset, dst.len(), |slot, inside, outside| {
            // SAFETY: as in `write`: loom checks this read against every write.
            self.slots[slot]
                .with(|cell| unsafe { dst[outside].copy_from_slice(&(&*cell)[inside]) });
        });
        Ok(())
    }
}
