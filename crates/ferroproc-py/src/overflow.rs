//! The overflow thread: how `put` on an unbounded queue never blocks.
//!
//! The stdlib's `put` appends to a buffer that a feeder thread writes to the pipe, so it
//! never waits. Ours writes straight into the ring, and only when the ring's bytes are all
//! in use (megabytes of messages nobody has read yet) does it hand the message to this
//! thread instead, which writes it as soon as readers make room. Later puts of the same
//! process follow it through the thread until the thread has caught up, so one process's
//! messages stay in order. As with the stdlib's feeder, a process waits at exit for its
//! overflow to drain (`Queue.join_thread`; `cancel_join_thread` skips that wait).

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use ferroproc_core::channel::{Channel, PutLimits};

/// A process's overflow thread for one channel.
pub struct Overflow {
    /// The process that started the thread: a forked child has no such thread.
    pid: u32,
    outbox: Sender<Vec<u8>>,
    backlog: Arc<Backlog>,
}

/// Messages handed over and not yet written.
#[derive(Default)]
pub struct Backlog {
    pending: Mutex<usize>,
    drained: Condvar,
}

impl Backlog {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages not yet written.
    pub fn pending(&self) -> usize {
        *self.lock()
    }

    fn finish_one(&self) {
        let mut pending = self.lock();
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            self.drained.notify_all();
        }
    }

    /// Waits up to `slice` for the backlog to empty; whether it did.
    pub fn wait_drained(&self, slice: Duration) -> bool {
        let (pending, _) = self
            .drained
            .wait_timeout_while(self.lock(), slice, |pending| *pending > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *pending == 0
    }
}

impl Overflow {
    /// Starts the thread for process `me`, writing to `channel`.
    pub fn start(target: Arc<Channel>, limits: PutLimits, me: u32) -> std::io::Result<Self> {
        let (outbox, inbox) = channel::<Vec<u8>>();
        let backlog = Arc::new(Backlog::default());
        let done = Arc::clone(&backlog);
        std::thread::Builder::new()
            .name("ferroproc-queue-overflow".into())
            .spawn(move || {
                for message in inbox {
                    // Only a corrupt ring fails a put, and its readers report that.
                    let _ = target.put(me, &[&message], limits, None, &mut || true);
                    done.finish_one();
                }
            })?;
        Ok(Self {
            pid: me,
            outbox,
            backlog,
        })
    }

    /// Whether this is the calling process's thread.
    pub fn belongs_to(&self, pid: u32) -> bool {
        self.pid == pid
    }

    /// The backlog, to wait on.
    pub fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }

    /// Hands `message` to the thread; false if the thread is gone.
    pub fn hand_over(&self, message: Vec<u8>) -> bool {
        *self.backlog.lock() += 1;
        if self.outbox.send(message).is_err() {
            self.backlog.finish_one();
            return false;
        }
        true
    }
}
