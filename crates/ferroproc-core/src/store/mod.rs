//! Containers in shared memory: an ordered map and a sequence of byte strings that any
//! process mapping the store can read and change, under one robust lock.
//!
//! This is what `Manager().dict()`, `.list()`, `.Namespace()` and `.Value()` are made of:
//! an operation is a lock, a hash probe and a copy, not a round trip to a server process.
//! The store knows nothing of Python: keys arrive as canonical bytes (two keys are equal
//! exactly when their bytes are), each with optional extra bytes stored beside it but not
//! compared (the bindings keep there what the key looked like, `1.0` or `True` for the
//! key `1`); values are opaque bytes.
//!
//! # Layout
//!
//! One segment (an anonymous memfd, sized up front and sparse: pages get memory as the
//! heap reaches them, reserved with `fallocate` so a full `/dev/shm` is an error, not a
//! `SIGBUS`). A fixed header (`layout.rs`) holds the lock, the store's kind and identity,
//! and the root of its structure; blocks of a power-of-two allocator (`heap.rs`) hold
//! everything else:
//! - a **map** (`map.rs`) is one table block: an open-addressing index of `u32` slots over
//!   an array of entries kept in insertion order (as CPython's compact dict), each entry
//!   a key hash and the offsets of a key block and a value block;
//! - a **sequence** (`seq.rs`) is one block: a length and the offsets of value blocks.
//!
//! # A process killed mid-update
//!
//! Every process that opens the store takes its lock (a [`RawRLock`]: it records its
//! holder's pid, and a waiter that finds the holder dead takes the lock over) around
//! every operation, so a killed process never blocks the others. And every operation
//! changes what readers can see with one final store, made after everything it points to
//! has been written: a new value block is written, then the entry's value offset switches
//! to it; a new entry is written past the end, indexed, then the entry count covers it; a
//! rebuilt table is filled, then the header's table offset switches to it. So a holder
//! killed at any instruction leaves the store as it was before the operation or as it is
//! after it. What it can leave is a block nobody points to and, for a map, a stale cached
//! count; the next holder, which takes the lock over, recounts and gives every such block
//! back ([`Locked::recovered`]). `tests/store_processes.rs` kills writers at
//! random points, across real processes, and checks this.
//!
//! Every offset read from the segment is checked before it is used, so a store another
//! process scribbled over yields [`StoreError::Corrupt`], never an access out of bounds.

mod heap;
mod layout;
mod map;
mod region;
mod seq;

use std::time::Instant;

use thiserror::Error;

pub use map::MapEntry;

use self::heap::Heap;
use self::layout::{HEAP_START, ID, KIND, LOCK, RECOVERIES, SEED, TABLE, TOP};
use self::region::Region;
use crate::futex::FutexWaiter;
use crate::shm::{Backing, Segment, ShmError, Source, Tag};
use crate::sync::{Acquire, Owner, ProcessLiveness, RawRLock, SyncError};
use crate::sys;

/// How many times [`Store::lock`] retries a held lock before it sleeps on it.
const SPINS: u32 = 200;

/// What a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// Keys to values, in insertion order (a `dict`).
    Map,
    /// Values by position (a `list`).
    Sequence,
}

impl StoreKind {
    fn code(self) -> u64 {
        match self {
            StoreKind::Map => 1,
            StoreKind::Sequence => 2,
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(StoreKind::Map),
            2 => Some(StoreKind::Sequence),
            _ => None,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Creating, mapping or reserving the segment failed.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// Taking or releasing the lock failed (an interrupted wait, a release by a thread
    /// that does not hold it).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The store's segment has no room left for `needed` more bytes.
    #[error("the shared store is full: no room for {needed} more bytes")]
    Full {
        /// Bytes the operation needed.
        needed: u64,
    },
    /// The store's bookkeeping is not what this code writes: a process wrote over it.
    #[error("the shared store is corrupt: {0}")]
    Corrupt(&'static str),
    /// The operation is for another kind of store.
    #[error("a {found:?} store does not support this operation")]
    WrongKind {
        /// What the store is.
        found: StoreKind,
    },
    /// A sequence position past the end.
    #[error("index {index} out of range for a sequence of {len}")]
    OutOfRange {
        /// The position asked for.
        index: u64,
        /// The sequence's length.
        len: u64,
    },
    /// The segment found where the store was looked for is another store.
    #[error("the segment is not the store that was asked for")]
    NotThisStore,
}

/// A map or sequence in shared memory. Cheap to share between threads (`&Store`); every
/// process that maps it (a forked child, or one that [attached](Store::attach) its
/// segment) sees the same contents.
#[derive(Debug)]
pub struct Store {
    segment: Segment,
    kind: StoreKind,
    id: u64,
    seed: u64,
}

impl Store {
    /// The tag of store segments.
    pub const TAG: Tag = Tag::new(*b"stor");

    /// A new empty store of `kind` in an anonymous segment of `capacity` bytes (address
    /// space, not memory: the heap takes memory as it grows).
    ///
    /// # Errors
    /// [`StoreError::Shm`] if the segment cannot be created, [`StoreError::Full`] if
    /// `capacity` is too small to hold the empty structure.
    pub fn create(kind: StoreKind, capacity: usize) -> Result<Self, StoreError> {
        let segment = Segment::create(Backing::Anonymous, capacity.max(4096), Self::TAG)?;
        let mut random = [0u8; 16];
        sys::shm::random_bytes(&mut random).map_err(ShmError::os("getrandom"))?;
        let id = u64::from_le_bytes(random[..8].try_into().expect("8 bytes")) | 1;
        let seed = u64::from_le_bytes(random[8..].try_into().expect("8 bytes"));
        let region = Region::new(&segment);
        segment.get::<RawRLock>(LOCK as usize)?.init();
        region.word(TOP)?.store(HEAP_START);
        region.word(SEED)?.store(seed);
        let heap = Heap { region };
        let table = match kind {
            StoreKind::Map => map::new_table(&heap, 0)?,
            StoreKind::Sequence => seq::new_table(&heap, &[], 0)?,
        };
        region.word(TABLE)?.store(table);
        region.word(ID)?.store(id);
        // Last: a segment with a kind is a finished store.
        region.word(KIND)?.store(kind.code());
        Ok(Self {
            segment,
            kind,
            id,
            seed,
        })
    }

    /// The store in the segment `source` names.
    ///
    /// # Errors
    /// [`StoreError::Shm`] if it cannot be mapped or is not a store segment,
    /// [`StoreError::Corrupt`] if its header is not a finished store's.
    pub fn attach(source: Source<'_>) -> Result<Self, StoreError> {
        Self::from_segment(Segment::attach(source, Self::TAG)?)
    }

    /// The store with identity `id` that process `pid` holds as its descriptor `fd`,
    /// opened through `/proc` (same user, same machine).
    ///
    /// # Errors
    /// As [`attach`](Self::attach), and [`StoreError::NotThisStore`] if that descriptor
    /// now names another store.
    pub fn attach_from_process(pid: u32, fd: u32, id: u64) -> Result<Self, StoreError> {
        let store = Self::from_segment(Segment::attach_from_process(pid, fd, Self::TAG)?)?;
        if store.id != id {
            return Err(StoreError::NotThisStore);
        }
        Ok(store)
    }

    fn from_segment(segment: Segment) -> Result<Self, StoreError> {
        let region = Region::new(&segment);
        let kind = StoreKind::from_code(region.word(KIND)?.load())
            .ok_or(StoreError::Corrupt("not a finished store"))?;
        let id = region.word(ID)?.load();
        let seed = region.word(SEED)?.load();
        Ok(Self {
            segment,
            kind,
            id,
            seed,
        })
    }

    /// What the store holds.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The store's identity: random, fixed at creation.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The segment, whose descriptor another process may attach.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// How many times a holder's death was recovered from.
    pub fn recoveries(&self) -> Result<u64, StoreError> {
        Region::new(&self.segment)
            .word(RECOVERIES)
            .map(|word| word.load())
    }

    fn lock_word(&self) -> Result<&RawRLock, StoreError> {
        Ok(self.segment.get::<RawRLock>(LOCK as usize)?)
    }

    /// Takes the lock for the thread `me` without waiting and without a system call:
    /// `None` if another thread holds it. Recursive: a holder may lock again.
    ///
    /// # Errors
    /// [`StoreError::Sync`] for an invalid owner.
    pub fn try_lock(&self, me: Owner) -> Result<Option<Locked<'_>>, StoreError> {
        if self.lock_word()?.try_acquire(me)? {
            Ok(Some(self.locked(me, false)?))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock for the thread `me`, waiting until `deadline` (`None`: for ever);
    /// `None` if the deadline passed first. A holder that died is taken over, and the
    /// store repaired ([`Locked::recovered`]).
    ///
    /// # Errors
    /// [`StoreError::Sync`] if the wait was interrupted by a signal (nothing is held).
    pub fn lock(
        &self,
        me: Owner,
        deadline: Option<Instant>,
    ) -> Result<Option<Locked<'_>>, StoreError> {
        // Operations hold the lock for well under a microsecond: a holder on another core
        // is usually done before a futex sleep and wake-up (several microseconds) would be.
        for _ in 0..SPINS {
            if let Some(locked) = self.try_lock(me)? {
                return Ok(Some(locked));
            }
            std::hint::spin_loop();
        }
        let outcome = self
            .lock_word()?
            .acquire(&FutexWaiter, &ProcessLiveness, me, deadline)?;
        match outcome {
            Acquire::TimedOut => Ok(None),
            Acquire::Acquired => Ok(Some(self.locked(me, false)?)),
            Acquire::AcquiredOwnerDied => Ok(Some(self.locked(me, true)?)),
        }
    }

    fn locked(&self, me: Owner, recovered: bool) -> Result<Locked<'_>, StoreError> {
        let locked = Locked {
            store: self,
            me,
            recovered,
        };
        if recovered {
            if let Err(error) = locked.repair() {
                drop(locked);
                return Err(error);
            }
        }
        Ok(locked)
    }

    /// Releases one level of a lock the thread `me` kept with [`Locked::keep`].
    ///
    /// # Errors
    /// [`StoreError::Sync`] if `me` does not hold the lock.
    pub fn unlock(&self, me: Owner) -> Result<(), StoreError> {
        self.lock_word()?.release(&FutexWaiter, me)?;
        Ok(())
    }

    /// Whether the thread `me` holds the lock.
    pub fn is_locked_by(&self, me: Owner) -> bool {
        self.lock_word().is_ok_and(|lock| lock.is_owned_by(me))
    }
}

/// The store, locked by one thread: every operation goes through here. Dropping it
/// releases one level of the (recursive) lock.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a Store,
    me: Owner,
    recovered: bool,
}

impl<'a> Locked<'a> {
    /// Whether taking the lock meant taking it over from a holder that died: its last
    /// operation may or may not have happened (one or the other, never half), and the
    /// store's cached counts were recomputed.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Keeps the lock held after this guard is gone; [`Store::unlock`] releases it.
    pub fn keep(self) {
        std::mem::forget(self);
    }

    fn region(&self) -> Region<'a> {
        Region::new(&self.store.segment)
    }

    fn heap(&self) -> Heap<'a> {
        Heap {
            region: self.region(),
        }
    }

    fn expect(&self, kind: StoreKind) -> Result<(), StoreError> {
        if self.store.kind == kind {
            Ok(())
        } else {
            Err(StoreError::WrongKind {
                found: self.store.kind,
            })
        }
    }

    fn table(&self) -> Result<u64, StoreError> {
        self.region().word(TABLE).map(|word| word.load())
    }

    /// Makes a new table current (the commit of a rebuild) and frees the old one.
    fn replace_table(&self, new: u64) -> Result<(), StoreError> {
        let word = self.region().word(TABLE)?;
        let old = word.load();
        word.store(new);
        self.heap().free(old)
    }

    fn repair(&self) -> Result<(), StoreError> {
        let word = self.region().word(RECOVERIES)?;
        word.store(word.load() + 1);
        let reachable = match self.store.kind {
            StoreKind::Map => {
                map::recount(self)?;
                map::blocks_in_use(self)?
            }
            StoreKind::Sequence => seq::blocks_in_use(self)?,
        };
        self.reclaim(reachable)
    }

    /// Gives back every block that neither the structure nor a free list holds: what a
    /// holder that died between taking a block and linking it (or between unlinking one
    /// and freeing it) left behind. Each give-back is an ordinary free, so dying in the
    /// middle of this only leaves the rest for the next repair.
    fn reclaim(&self, mut reachable: Vec<u64>) -> Result<(), StoreError> {
        let heap = self.heap();
        let blocks = heap.blocks()?;
        reachable.extend(heap.free_blocks(blocks.len())?);
        reachable.sort_unstable();
        for block in blocks {
            if reachable.binary_search(&block).is_err() {
                heap.free(block)?;
            }
        }
        Ok(())
    }

    /// How many blocks are neither in use nor free: what a holder that died left behind,
    /// until the next takeover of the lock gives them back. Zero whenever no holder has
    /// died since the last takeover. A diagnostic: it walks the whole heap.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a damaged store.
    pub fn leaked_blocks(&self) -> Result<usize, StoreError> {
        let heap = self.heap();
        let blocks = heap.blocks()?;
        let mut known = match self.store.kind {
            StoreKind::Map => map::blocks_in_use(self)?,
            StoreKind::Sequence => seq::blocks_in_use(self)?,
        };
        known.extend(heap.free_blocks(blocks.len())?);
        known.sort_unstable();
        Ok(blocks
            .iter()
            .filter(|block| known.binary_search(block).is_err())
            .count())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Only fails if the lock is not ours, which a live guard rules out.
        let _ = self.store.unlock(self.me);
    }
}

/// The 64-bit hash of a canonical key under a store's seed: a multiply-rotate mix of
/// 8-byte words, finished with MurmurHash3's avalanche. Fixed across processes and runs
/// (unlike Python's `hash` of a `str`), which is what lets every process find a key.
fn key_hash(seed: u64, key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = seed ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        hash = (hash ^ word).wrapping_mul(K).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests;
