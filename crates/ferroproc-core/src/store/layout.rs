//! Where a store keeps its bookkeeping: byte offsets into its segment's data.
//!
//! ```text
//! offset  size  field
//!      0    64  lock         a RawRLock: the one lock every operation takes
//!     64     8  kind         1: map, 2: sequence
//!     72     8  id           random, fixed at creation: names the store to whoever opens it
//!     80     8  seed         random, fixed at creation: keys' hashes depend on it
//!     88     8  table        the block holding the map's index and entries, or the list
//!     96     8  top          first never-allocated offset (heap.rs)
//!    104     8  reserved     bytes with memory behind them (fallocate), from offset 0
//!    112     8  recoveries   how many times a dead holder's lock was taken over
//!    128   320  free lists   the first free block of each size class (heap.rs)
//!    512     -  blocks       (HEAP_START)
//! ```

pub(super) const LOCK: u64 = 0;
pub(super) const KIND: u64 = 64;
pub(super) const ID: u64 = 72;
pub(super) const SEED: u64 = 80;
pub(super) const TABLE: u64 = 88;
pub(super) const TOP: u64 = 96;
pub(super) const RESERVED: u64 = 104;
pub(super) const RECOVERIES: u64 = 112;
pub(super) const FREE_LISTS: u64 = 128;
pub(super) const HEAP_START: u64 = 512;

const _: () = assert!(std::mem::size_of::<crate::sync::RawRLock>() <= KIND as usize);
const _: () = assert!(FREE_LISTS + 8 * super::heap::CLASSES as u64 <= HEAP_START);
