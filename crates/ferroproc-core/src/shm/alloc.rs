//! [`Arena`]: small aligned blocks inside one shared segment, for any process that maps it.
//!
//! The role of the stdlib's `multiprocessing/heap.py` (where `Value`, `Array` and locks get
//! their memory), with two differences: the bookkeeping lives in the segment itself, as
//! atomics and offsets (never pointers), so every process mapping the arena can allocate
//! and free, not only the one that created it; and the memory is one segment of fixed
//! size, so large arrays get a segment of their own instead ([`Arena::MAX_BLOCK`]).
//!
//! # Algorithm
//!
//! Segregated free lists over a bump pointer. A request is rounded up to a power-of-two
//! *size class* from [`Arena::MIN_BLOCK`] to [`Arena::MAX_BLOCK`]; a block of class `c`
//! sits at an offset aligned to `min(c, 64)`. `alloc` pops the class's free list if it is
//! not empty, else bumps `top`; `free` pushes the block on its class's list, the link to
//! the next free block stored in the free block's own first 8 bytes. Blocks never split or
//! merge: simple, and right for what lives here (many small objects of few sizes).
//!
//! ```text
//! data offset  size  field
//!           0     4  lock     holder's pid in bits 0..=30 (0: free); bit 31: contended
//!           4     4  (zero)
//!           8     8  top      first never-allocated offset (below HEAP_START: empty)
//!          16   104  free[13] offset of the first free block of each class (0: none)
//!         128     -  blocks (HEAP_START)
//! ```
//!
//! A zero-filled segment is therefore an empty arena: nothing needs initialising.
//!
//! # The lock, and holders that die
//!
//! One lock word serialises every change to the bookkeeping. It holds the pid of its
//! holder, so a waiter can tell that the holder died (a process killed while allocating)
//! and take the lock over instead of waiting forever; it waits in slices of
//! [`RECHECK`] to notice. Taking over is safe because every operation changes the
//! bookkeeping with one final store (pop: `free[c] = next`; push: link, then
//! `free[c] = block`; bump: `top = end`): a holder that dies before that store changed
//! nothing anyone can see, and one that dies after it at worst leaks the block it was
//! handing out. Pids can be reused: a dead holder whose pid now belongs to a new process
//! looks alive until that process exits. The sync module's robust lock may replace this one
//! once it exists; the algorithm is model-checked with loom here (`--cfg loom`).
//!
//! Every offset read from shared memory is checked before use, so bookkeeping that a peer
//! scribbled over yields [`ShmError::ArenaCorrupt`], never an access outside the segment.
//! A double free cannot be detected (as with `free(3)`); the bindings free each block once.

use std::time::{Duration, Instant};

use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{AtomicU32, Ordering};

/// A block handed out by [`Arena::alloc`]: `size` bytes at `offset` into the arena
/// segment's data ([`Segment::get`](super::Segment::get) and
/// [`Segment::copy_in`](super::Segment::copy_in) take that offset). Plain numbers, so a
/// process that maps the same arena can use, and free, a block another one allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    /// Where the block starts, from the start of the segment's data.
    pub offset: usize,
    /// How many bytes it has: the size class, at least what was asked for.
    pub size: usize,
}

/// The contended bit of the lock word.
const CONTENDED: u32 = 1 << 31;

/// How long a waiter sleeps before checking again whether the holder still lives.
pub(crate) const RECHECK: Duration = Duration::from_millis(20);

/// Takes the arena lock for the process `me` (nonzero, below 2^31: a pid). A holder for
/// which `alive` says false is dead, and its lock is taken over.
pub(crate) fn lock(word: &AtomicU32, me: u32, waiter: &impl Waiter, alive: impl Fn(u32) -> bool) {
    debug_assert!(me != 0 && me & CONTENDED == 0);
    if word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    loop {
        let current = word.load(Ordering::Relaxed);
        if current == 0 || !alive(current & !CONTENDED) {
            // Free, or held by the dead. Others may be asleep, so leave the lock marked
            // contended: the unlock then wakes one of them.
            if word
                .compare_exchange(
                    current,
                    me | CONTENDED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return;
            }
            continue;
        }
        if current & CONTENDED == 0
            && word
                .compare_exchange(
                    current,
                    current | CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            continue;
        }
        match waiter.wait(word, current | CONTENDED, Some(Instant::now() + RECHECK)) {
            WaitOutcome::Woken | WaitOutcome::TimedOut | WaitOutcome::Interrupted => {}
        }
    }
}

/// Releases the arena lock, waking one waiter if any may be asleep.
pub(crate) fn unlock(word: &AtomicU32, waiter: &impl Waiter) {
    if word.swap(0, Ordering::Release) & CONTENDED != 0 {
        waiter.wake(word, 1);
    }
}

#[cfg(not(loom))]
pub use arena::Arena;

#[cfg(not(loom))]
mod arena {
    use super::{lock, unlock, Block};
    use crate::futex::FutexWaiter;
    use crate::primitive::{AtomicU32, AtomicU64, Ordering};
    use crate::shm::{Backing, Segment, ShmError, Source, Tag};
    use crate::sys;

    /// Number of size classes: `MIN_BLOCK << 0` to `MIN_BLOCK << (CLASSES - 1)`.
    const CLASSES: usize = 13;
    const LOCK_AT: usize = 0;
    const TOP_AT: usize = 8;
    const FREE_AT: usize = 16;
    /// Where blocks start: past the bookkeeping, cache-line aligned.
    const HEAP_START: usize = 128;
    const _: () = assert!(FREE_AT + 8 * CLASSES <= HEAP_START);

    /// An allocator of small aligned blocks in a shared segment (see the module docs for
    /// the algorithm and layout). Any process that maps the segment may allocate and free.
    #[derive(Debug)]
    pub struct Arena {
        segment: Segment,
    }

    impl Arena {
        /// The smallest block handed out, in bytes.
        pub const MIN_BLOCK: usize = 16;
        /// The largest block handed out, in bytes (64 KiB); larger objects belong in a
        /// segment of their own.
        pub const MAX_BLOCK: usize = Self::MIN_BLOCK << (CLASSES - 1);
        /// The largest alignment a block can have (a cache line).
        pub const MAX_ALIGN: usize = 64;

        /// Creates an arena segment with room for about `capacity` bytes of blocks (the
        /// segment is tagged [`Tag::ARENA`]; its bookkeeping takes a few bytes more).
        pub fn create(backing: Backing<'_>, capacity: usize) -> Result<Self, ShmError> {
            let size = capacity
                .checked_add(HEAP_START)
                .ok_or(ShmError::InvalidSize {
                    size: capacity as u64,
                    reason: "too large to map",
                })?;
            Self::new(Segment::create(backing, size, Tag::ARENA)?)
        }

        /// Attaches an arena another process created.
        pub fn attach(source: Source<'_>) -> Result<Self, ShmError> {
            Self::new(Segment::attach(source, Tag::ARENA)?)
        }

        /// An arena over `segment`, which must be tagged [`Tag::ARENA`].
        pub fn new(segment: Segment) -> Result<Self, ShmError> {
            if segment.tag() != Some(Tag::ARENA) {
                return Err(ShmError::InvalidBlock(
                    "the segment is not tagged as an arena",
                ));
            }
            if segment.len() < HEAP_START {
                return Err(ShmError::InvalidSize {
                    size: segment.len() as u64,
                    reason: "too small for an arena's bookkeeping",
                });
            }
            Ok(Self { segment })
        }

        /// The segment the blocks live in (to reach a block's bytes, or to pass its
        /// descriptor to another process).
        pub fn segment(&self) -> &Segment {
            &self.segment
        }

        /// A zero-filled block of at least `size` bytes whose offset is a multiple of
        /// `align` (a power of two, at most [`MAX_ALIGN`](Self::MAX_ALIGN)).
        pub fn alloc(&self, size: usize, align: usize) -> Result<Block, ShmError> {
            if !align.is_power_of_two() || align > Self::MAX_ALIGN {
                return Err(ShmError::InvalidBlock(
                    "alignment must be a power of two no larger than 64",
                ));
            }
            let class_size = size.max(align).max(Self::MIN_BLOCK);
            if class_size > Self::MAX_BLOCK {
                return Err(ShmError::InvalidBlock(
                    "larger than the arena's largest block; use a segment of its own",
                ));
            }
            let class_size = class_size.next_power_of_two();
            let block = {
                let _guard = self.lock()?;
                self.pop(class_size)?
                    .map_or_else(|| self.bump(class_size), Ok)?
            };
            // The block is ours alone now; clear what a previous owner left.
            self.segment.zero(block.offset, block.size)?;
            Ok(block)
        }

        /// Returns a block to the arena. It must have come from [`alloc`](Self::alloc) on
        /// this arena (in any process) and not have been freed since; blocks that cannot
        /// have come from it are refused.
        pub fn free(&self, block: Block) -> Result<(), ShmError> {
            let class = class_of(block.size)
                .ok_or(ShmError::InvalidBlock("not the size of an arena block"))?;
            let _guard = self.lock()?;
            let top = self.top()?;
            if !self.is_block(block.offset, block.size, top) {
                return Err(ShmError::InvalidBlock("not a block of this arena"));
            }
            let head = self.free_head(class)?;
            let next = head.load(Ordering::Relaxed);
            self.segment
                .get::<AtomicU64>(block.offset)?
                .store(next, Ordering::Relaxed);
            head.store(block.offset as u64, Ordering::Relaxed);
            Ok(())
        }

        fn pop(&self, class_size: usize) -> Result<Option<Block>, ShmError> {
            let class = class_of(class_size).ok_or(ShmError::InvalidBlock("bad size class"))?;
            let head = self.free_head(class)?;
            let offset = head.load(Ordering::Relaxed);
            if offset == 0 {
                return Ok(None);
            }
            let top = self.top()?;
            let offset = usize::try_from(offset)
                .ok()
                .filter(|&offset| self.is_block(offset, class_size, top))
                .ok_or(ShmError::ArenaCorrupt(
                    "a free list points outside the heap",
                ))?;
            let next = self
                .segment
                .get::<AtomicU64>(offset)?
                .load(Ordering::Relaxed);
            head.store(next, Ordering::Relaxed);
            Ok(Some(Block {
                offset,
                size: class_size,
            }))
        }

        fn bump(&self, class_size: usize) -> Result<Block, ShmError> {
            let top_word = self.segment.get::<AtomicU64>(TOP_AT)?;
            let top = self.top()?;
            let align = class_size.min(Self::MAX_ALIGN);
            let full = ShmError::ArenaFull { size: class_size };
            let offset = top.checked_next_multiple_of(align).ok_or(full)?;
            let end = offset
                .checked_add(class_size)
                .filter(|&end| end <= self.segment.len())
                .ok_or(ShmError::ArenaFull { size: class_size })?;
            top_word.store(end as u64, Ordering::Relaxed);
            Ok(Block {
                offset,
                size: class_size,
            })
        }

        /// The bump pointer, checked.
        fn top(&self) -> Result<usize, ShmError> {
            let top = self
                .segment
                .get::<AtomicU64>(TOP_AT)?
                .load(Ordering::Relaxed);
            let top = usize::try_from(top)
                .ok()
                .filter(|&top| top <= self.segment.len())
                .ok_or(ShmError::ArenaCorrupt(
                    "the heap top is past the segment's end",
                ))?;
            Ok(top.max(HEAP_START))
        }

        /// Whether `size` bytes at `offset` can be a block of that size class.
        fn is_block(&self, offset: usize, size: usize, top: usize) -> bool {
            offset >= HEAP_START
                && offset % size.min(Self::MAX_ALIGN) == 0
                && offset.checked_add(size).is_some_and(|end| end <= top)
        }

        fn free_head(&self, class: usize) -> Result<&AtomicU64, ShmError> {
            self.segment.get::<AtomicU64>(FREE_AT + 8 * class)
        }

        fn lock(&self) -> Result<Guard<'_>, ShmError> {
            let word = self.segment.get::<AtomicU32>(LOCK_AT)?;
            let me = sys::pidfd::getpid().unsigned_abs();
            lock(word, me, &FutexWaiter, is_alive);
            Ok(Guard { word })
        }
    }

    /// Releases the arena lock when dropped.
    struct Guard<'a> {
        word: &'a AtomicU32,
    }

    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            unlock(self.word, &FutexWaiter);
        }
    }

    /// The index of the size class of exactly `size` bytes.
    fn class_of(size: usize) -> Option<usize> {
        if size.is_power_of_two() && (Arena::MIN_BLOCK..=Arena::MAX_BLOCK).contains(&size) {
            Some((size / Arena::MIN_BLOCK).trailing_zeros() as usize)
        } else {
            None
        }
    }

    /// Whether process `pid` is alive. A zombie is dead (its pidfd is readable), so a
    /// killed holder counts as dead before its parent reaps it; when in doubt, alive (the
    /// same answer as the sync module's `ProcessLiveness`).
    fn is_alive(pid: u32) -> bool {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        sys::pidfd::process_alive(pid).unwrap_or(true)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn arena(capacity: usize) -> Arena {
            Arena::create(Backing::Anonymous, capacity).unwrap()
        }

        #[test]
        fn blocks_are_aligned_distinct_and_zeroed() {
            let arena = arena(64 * 1024);
            let mut blocks = Vec::new();
            for (size, align) in [(1, 1), (8, 8), (24, 8), (100, 64), (17, 16), (4096, 64)] {
                let block = arena.alloc(size, align).unwrap();
                assert!(block.size >= size && block.size.is_power_of_two());
                assert_eq!(block.offset % align, 0);
                let mut bytes = vec![1u8; block.size];
                arena.segment().copy_out(block.offset, &mut bytes).unwrap();
                assert!(bytes.iter().all(|&b| b == 0));
                arena
                    .segment()
                    .copy_in(block.offset, &vec![0xAB; block.size])
                    .unwrap();
                blocks.push(block);
            }
            for (i, a) in blocks.iter().enumerate() {
                for b in &blocks[i + 1..] {
                    let apart = a.offset + a.size <= b.offset || b.offset + b.size <= a.offset;
                    assert!(apart, "{a:?} overlaps {b:?}");
                }
            }
        }

        #[test]
        fn freed_blocks_are_reused_zeroed() {
            let arena = arena(4096);
            let a = arena.alloc(32, 8).unwrap();
            arena.segment().copy_in(a.offset, &[0xFF; 32]).unwrap();
            arena.free(a).unwrap();
            let b = arena.alloc(30, 4).unwrap();
            assert_eq!(a, b);
            let mut bytes = [1u8; 32];
            arena.segment().copy_out(b.offset, &mut bytes).unwrap();
            assert_eq!(bytes, [0; 32]);
        }

        #[test]
        fn exhaustion_is_an_error_and_free_makes_room() {
            let arena = arena(1024);
            let mut blocks = Vec::new();
            let err = loop {
                match arena.alloc(64, 64) {
                    Ok(block) => blocks.push(block),
                    Err(e) => break e,
                }
            };
            assert!(matches!(err, ShmError::ArenaFull { size: 64 }), "{err}");
            assert!(!blocks.is_empty());
            arena.free(blocks.pop().unwrap()).unwrap();
            arena.alloc(64, 64).unwrap();
        }

        #[test]
        fn bad_requests_are_refused() {
            let arena = arena(4096);
            for (size, align) in [(8, 3), (8, 128), (Arena::MAX_BLOCK + 1, 8), (usize::MAX, 8)] {
                let err = arena.alloc(size, align).unwrap_err();
                assert!(matches!(err, ShmError::InvalidBlock(_)), "{err}");
            }
            let block = arena.alloc(16, 16).unwrap();
            for bogus in [
                Block {
                    offset: 0,
                    size: 16,
                },
                Block {
                    offset: block.offset + 1,
                    size: 16,
                },
                Block {
                    offset: block.offset,
                    size: 24,
                },
                Block {
                    offset: 1 << 40,
                    size: 16,
                },
            ] {
                let err = arena.free(bogus).unwrap_err();
                assert!(matches!(err, ShmError::InvalidBlock(_)), "{bogus:?}: {err}");
            }
        }

        #[test]
        fn corrupt_bookkeeping_is_detected() {
            let arena = arena(4096);
            let block = arena.alloc(16, 16).unwrap();
            arena.free(block).unwrap();
            // A peer scribbles over the free list head and the top.
            arena
                .segment()
                .copy_in(FREE_AT, &(1u64 << 40).to_le_bytes())
                .unwrap();
            let err = arena.alloc(16, 16).unwrap_err();
            assert!(matches!(err, ShmError::ArenaCorrupt(_)), "{err}");
            arena
                .segment()
                .copy_in(TOP_AT, &u64::MAX.to_le_bytes())
                .unwrap();
            let err = arena.alloc(32, 16).unwrap_err();
            assert!(matches!(err, ShmError::ArenaCorrupt(_)), "{err}");
        }

        #[test]
        fn a_dead_holders_lock_is_taken_over() {
            let arena = arena(4096);
            // A lock word naming a process that does not exist (pids stay below 2^22).
            let dead = (1u32 << 30) - 3;
            arena
                .segment()
                .get::<AtomicU32>(LOCK_AT)
                .unwrap()
                .store(dead, Ordering::Relaxed);
            arena.alloc(16, 16).unwrap();
            assert_eq!(
                arena
                    .segment()
                    .get::<AtomicU32>(LOCK_AT)
                    .unwrap()
                    .load(Ordering::Relaxed),
                0
            );
        }

        #[test]
        fn threads_allocate_without_overlap() {
            let arena = std::sync::Arc::new(arena(256 * 1024));
            let threads: Vec<_> = (0..4u8)
                .map(|t| {
                    let arena = std::sync::Arc::clone(&arena);
                    std::thread::spawn(move || {
                        let mut mine = Vec::new();
                        for round in 0..200 {
                            let block = arena.alloc(16 << (round % 4), 16).unwrap();
                            arena
                                .segment()
                                .copy_in(block.offset, &vec![t; block.size])
                                .unwrap();
                            mine.push(block);
                            if round % 3 == 0 {
                                arena.free(mine.swap_remove(0)).unwrap();
                            }
                        }
                        for block in &mine {
                            let mut bytes = vec![0; block.size];
                            arena.segment().copy_out(block.offset, &mut bytes).unwrap();
                            assert!(bytes.iter().all(|&b| b == t), "block {block:?} overwritten");
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2
    //! cargo test --release -p ferroproc-core --lib shm::alloc`

    use std::time::Instant;

    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Condvar, Mutex};

    use super::*;
    use crate::futex::SpinWaiter;

    /// A futex for models: the check of the word and the sleep are one step (under the
    /// mutex), as in the kernel, and a sleeper really blocks, so loom reports a lost
    /// wake-up as a deadlock. It ignores deadlines: models never time out.
    #[derive(Default)]
    struct ModelFutex {
        lock: Mutex<()>,
        sleepers: Condvar,
    }

    impl Waiter for ModelFutex {
        fn wait(&self, word: &AtomicU32, expected: u32, _: Option<Instant>) -> WaitOutcome {
            let guard = self.lock.lock().unwrap();
            if word.load(Ordering::SeqCst) == expected {
                drop(self.sleepers.wait(guard).unwrap());
            }
            WaitOutcome::Woken
        }

        fn wake(&self, _word: &AtomicU32, _count: u32) -> u32 {
            let _guard = self.lock.lock().unwrap();
            // Waking everyone is a correct futex wake of `count` plus spurious wake-ups.
            self.sleepers.notify_all();
            0
        }
    }

    /// Enters the critical section: fails the model if anyone else is inside.
    fn critical_section(inside: &AtomicU32) {
        assert_eq!(
            inside.fetch_add(1, Ordering::Relaxed),
            0,
            "two holders at once"
        );
        inside.fetch_sub(1, Ordering::Relaxed);
    }

    /// Processes 1 to `n` (threads standing for them) contend while all alive: the lock
    /// excludes, no wake-up is lost (a sleeper never woken is a loom deadlock), and the
    /// lock is free at the end.
    fn contend(n: u32) {
        loom::model(move || {
            let word = Arc::new(AtomicU32::new(0));
            let inside = Arc::new(AtomicU32::new(0));
            let futex = Arc::new(ModelFutex::default());
            let others: Vec<_> = (2..=n)
                .map(|pid| {
                    let (word, inside, futex) =
                        (Arc::clone(&word), Arc::clone(&inside), Arc::clone(&futex));
                    loom::thread::spawn(move || {
                        lock(&word, pid, &*futex, |_| true);
                        critical_section(&inside);
                        unlock(&word, &*futex);
                    })
                })
                .collect();
            lock(&word, 1, &*futex, |_| true);
            critical_section(&inside);
            unlock(&word, &*futex);
            for other in others {
                other.join().unwrap();
            }
            assert_eq!(word.load(Ordering::Relaxed), 0);
        });
    }

    #[test]
    fn lock_excludes_two() {
        contend(2);
    }

    #[test]
    fn lock_excludes_three() {
        contend(3);
    }

    /// Process 1 dies holding the lock; process 2 takes it over, and is never inside
    /// while 1 still is. (A spinning waiter: nobody wakes a sleeper when a holder dies;
    /// the real lock re-checks after a timed slice.)
    #[test]
    fn dead_holder_is_taken_over() {
        loom::model(|| {
            let word = Arc::new(AtomicU32::new(0));
            let dead = Arc::new(AtomicBool::new(false));
            let inside = Arc::new(AtomicU32::new(0));
            let victim = {
                let (word, dead, inside) =
                    (Arc::clone(&word), Arc::clone(&dead), Arc::clone(&inside));
                loom::thread::spawn(move || {
                    lock(&word, 1, &SpinWaiter, |_| true);
                    inside.fetch_add(1, Ordering::Relaxed);
                    // Killed here: it never unlocks, and its time inside ends with it.
                    inside.fetch_sub(1, Ordering::Relaxed);
                    dead.store(true, Ordering::Release);
                })
            };
            let alive = |pid: u32| pid != 1 || !dead.load(Ordering::Acquire);
            lock(&word, 2, &SpinWaiter, alive);
            critical_section(&inside);
            unlock(&word, &SpinWaiter);
            victim.join().unwrap();
        });
    }
}
