//! [`WorkerSlots`]: what each worker is running, in shared memory the parent can read
//! after the worker is gone.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::PoolError;
use crate::primitive::{AtomicU64, Ordering};
use crate::shm::{Backing, Segment, Source, Tag};
use crate::sys;

/// One cache line per worker, so workers never contend on a line.
const SLOT_BYTES: usize = 64;
const STARTED: usize = 0;
const STARTED_AT: usize = 8;

/// The task each worker of a pool started last, and when.
///
/// A worker writes a task's ticket here before it calls the task's function. When the
/// worker dies, the parent reads its slot: a ticket that has no result yet is the task
/// that died with it, and the tasks queued behind it never started. The supervisor also
/// reads the start time to kill a worker whose task ran past its timeout.
#[derive(Debug)]
pub struct WorkerSlots {
    segment: Segment,
    count: usize,
}

/// What a slot says: the last task its worker started, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The task's ticket (tickets start at 1; 0 means none was started).
    pub ticket: u64,
    /// When it started, on the system's monotonic clock, in nanoseconds.
    pub at_ns: u64,
}

impl WorkerSlots {
    /// What the segment is tagged with.
    pub const TAG: Tag = Tag::new(*b"pool");

    /// Creates slots for `count` workers, all empty.
    pub fn create(count: usize) -> Result<Self, PoolError> {
        let size = count.max(1).saturating_mul(SLOT_BYTES);
        let segment = Segment::create(Backing::Anonymous, size, Self::TAG)?;
        Ok(Self { segment, count })
    }

    /// Attaches the slots created elsewhere, given their segment's descriptor.
    pub fn attach(fd: BorrowedFd<'_>) -> Result<Self, PoolError> {
        let segment = Segment::attach(Source::Fd(fd), Self::TAG)?;
        let count = segment.len() / SLOT_BYTES;
        Ok(Self { segment, count })
    }

    /// The segment's descriptor, for the workers.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn word(&self, slot: usize, offset: usize) -> Result<&AtomicU64, PoolError> {
        if slot >= self.count {
            return Err(PoolError::NoSuchSlot(slot));
        }
        Ok(self.segment.get::<AtomicU64>(slot * SLOT_BYTES + offset)?)
    }

    /// Records, in `slot`, that its worker starts the task `ticket` now.
    pub fn start(&self, slot: usize, ticket: u64) -> Result<(), PoolError> {
        self.word(slot, STARTED_AT)?
            .store(sys::clock::monotonic_ns(), Ordering::Relaxed);
        // Release: whoever sees the ticket sees its start time.
        self.word(slot, STARTED)?.store(ticket, Ordering::Release);
        Ok(())
    }

    /// Empties `slot` for the worker that takes it over.
    pub fn clear(&self, slot: usize) -> Result<(), PoolError> {
        self.word(slot, STARTED)?.store(0, Ordering::Release);
        Ok(())
    }

    /// What `slot` says.
    pub fn read(&self, slot: usize) -> Result<Started, PoolError> {
        let ticket = self.word(slot, STARTED)?.load(Ordering::Acquire);
        let at_ns = self.word(slot, STARTED_AT)?.load(Ordering::Relaxed);
        Ok(Started { ticket, at_ns })
    }

    /// How long the task in `slot` has been running, if one ever started there.
    pub fn running_for(&self, slot: usize) -> Result<Option<(u64, Duration)>, PoolError> {
        let started = self.read(slot)?;
        if started.ticket == 0 {
            return Ok(None);
        }
        let now = sys::clock::monotonic_ns();
        Ok(Some((
            started.ticket,
            Duration::from_nanos(now.saturating_sub(started.at_ns)),
        )))
    }
}
