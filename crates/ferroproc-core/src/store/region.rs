//! The store's segment seen as words and bytes at `u64` offsets, every access checked.

use super::layout::RESERVED;
use super::StoreError;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::shm::Segment;

/// A checked view of a store's segment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Region<'a> {
    segment: &'a Segment,
}

/// One 64-bit word of the segment. Loads acquire and stores release, so that a process
/// taking over the lock of one that was killed sees its stores in the order it made them:
/// the one-store commits rely on that.
#[derive(Clone, Copy)]
pub(super) struct Word<'a>(&'a AtomicU64);

impl Word<'_> {
    pub(super) fn load(self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    pub(super) fn store(self, value: u64) {
        self.0.store(value, Ordering::Release);
    }
}

/// One 32-bit word of the segment, ordered like [`Word`].
#[derive(Clone, Copy)]
pub(super) struct Half<'a>(&'a AtomicU32);

impl Half<'_> {
    pub(super) fn load(self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    pub(super) fn store(self, value: u32) {
        self.0.store(value, Ordering::Release);
    }
}

fn offset(at: u64) -> Result<usize, StoreError> {
    usize::try_from(at).map_err(|_| StoreError::Corrupt("an offset beyond the address space"))
}

impl<'a> Region<'a> {
    pub(super) fn new(segment: &'a Segment) -> Self {
        Self { segment }
    }

    /// Bytes of data in the segment.
    pub(super) fn len(self) -> u64 {
        self.segment.len() as u64
    }

    pub(super) fn word(self, at: u64) -> Result<Word<'a>, StoreError> {
        Ok(Word(self.segment.get::<AtomicU64>(offset(at)?)?))
    }

    pub(super) fn half(self, at: u64) -> Result<Half<'a>, StoreError> {
        Ok(Half(self.segment.get::<AtomicU32>(offset(at)?)?))
    }

    pub(super) fn copy_in(self, at: u64, bytes: &[u8]) -> Result<(), StoreError> {
        Ok(self.segment.copy_in(offset(at)?, bytes)?)
    }

    pub(super) fn copy_out(self, at: u64, bytes: &mut [u8]) -> Result<(), StoreError> {
        Ok(self.segment.copy_out(offset(at)?, bytes)?)
    }

    /// Whether the `bytes.len()` bytes at `at` equal `bytes`, compared a chunk at a time.
    pub(super) fn equals(self, at: u64, bytes: &[u8]) -> Result<bool, StoreError> {
        let mut chunk = [0u8; 256];
        let mut at = at;
        for expected in bytes.chunks(chunk.len()) {
            let seen = &mut chunk[..expected.len()];
            self.copy_out(at, seen)?;
            if seen != expected {
                return Ok(false);
            }
            at += expected.len() as u64;
        }
        Ok(true)
    }

    /// Makes sure memory backs the segment up to `end`, reserving at least `step` bytes
    /// past what is already reserved (or doubling it) so that this is rarely a system call.
    pub(super) fn reserve_to(self, end: u64, step: u64) -> Result<(), StoreError> {
        let reserved = self.word(RESERVED)?;
        let have = reserved.load();
        if end <= have {
            return Ok(());
        }
        let want = end
            .max(have.saturating_mul(2))
            .max(have + step)
            .min(self.len());
        self.segment
            .reserve(offset(want)?)
            .map_err(|error| match error {
                crate::shm::ShmError::Os { source, .. } if source == rustix::io::Errno::NOSPC => {
                    StoreError::Full { needed: end - have }
                }
                other => StoreError::Shm(other),
            })?;
        reserved.store(want);
        Ok(())
    }
}
