//! [`Ring`]: a multi-producer multi-consumer queue of byte messages in shared memory.
//!
//! # Algorithm
//!
//! A byte ring with two robust locks, one per side (the two-lock queue of Michael and
//! Scott, "Simple, Fast, and Practical Non-Blocking and Blocking Concurrent Queue
//! Algorithms", 1996, over a circular buffer). `tail` and `head` count bytes ever written
//! and ever consumed; the bytes in `[head, tail)` belong to consumers, the rest to
//! producers. A producer takes the put lock, writes a record past `tail`, and publishes it
//! with a `Release` store of `tail`: that store is the commit point, so a producer killed
//! before it leaves nothing visible (no torn message). A consumer takes the get lock, reads
//! the record at `head` and frees it with a `Release` store of `head`. The locks are
//! [`RawLock`]s: a side whose holder died is taken over by the next process, which then
//! repairs what the dead one left (see "Deaths" below).
//!
//! Messages up to half the capacity are one record. Larger ones stream: the producer keeps
//! the put lock and writes chunks as consumers free space, and the consumer that reads the
//! first chunk keeps the get lock until the last, so chunks of different messages never
//! interleave. A producer that runs out of time mid-stream writes an `ABORT` record (room
//! for one is always kept) and reports a timeout.
//!
//! # Waiting
//!
//! Nothing on the uncontended path makes a system call: a put is a compare-and-swap on the
//! lock, a copy, two stores and a load of the sleeper count. Before sleeping, a waiter
//! spins briefly (a message usually arrives within microseconds when both sides are busy,
//! and a futex wake-up across cores costs tens of microseconds). Then it registers in a
//! sleeper count, reads the side's sequence word, re-checks its condition and sleeps on the
//! word; the other side bumps the word after each commit and wakes sleepers only when the
//! count says there are some. A `SeqCst` fence sits between each side's store and its load
//! (the sleeper: register, fence, check; the committer: publish, bump, fence, read the
//! count), so either the sleeper sees the commit or the committer sees the sleeper
//! (Dekker's pattern; fences, unlike `SeqCst` accesses, are what loom models exactly), and
//! the futex's own check of the word closes the last gap. Waits are cut in slices of [`SLICE`]; after each slice
//! the caller's `keep_waiting` runs (the Python bindings check for signals there).
//!
//! # Deaths
//!
//! - A producer killed while writing: nothing was committed. It had recorded its intent
//!   (`writing`, and the `tail` it was about to publish) under the lock; whoever takes the
//!   put lock over counts the message as lost and undoes its share of the counters.
//! - A producer killed mid-stream: the consumer gathering the message finds the producer
//!   dead after a slice without progress, or meets the first record of the next message;
//!   either way it drops the partial message and counts it lost.
//! - A consumer killed before freeing a record: the record is still there for the next
//!   consumer; nothing is lost. A consumer killed mid-stream: the next consumer counts the
//!   message lost and skips its remaining chunks. A consumer killed after freeing a record
//!   but before handing it to its caller loses that message with it, invisibly.
//!
//! Losses accumulate in [`Ring::lost`], readable by every process.
//!
//! # Spilled messages
//!
//! A caller with a [`Spill`] store can keep large messages out of the ring altogether
//! ([`Ring::put_spilled`]): the message goes to the store under a fresh number, and the
//! ring carries a small record with that number, committed like any other. Readers
//! ([`Ring::get_many_with`]) take the message back from the store. This is what lets a
//! process put a message of any size and exit at once: nothing waits for a reader.

use std::time::Duration;

use super::record::{self, HEADER_LEN};
use super::ChannelError;
use crate::primitive::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use crate::shm::ShmSafe;
use crate::sync::RawLock;

mod consume;
mod produce;
mod waiting;

/// The longest a wait runs before the caller's `keep_waiting` is asked again.
pub const SLICE: Duration = Duration::from_millis(50);

/// How many times a waiter polls in a busy loop before it starts yielding.
const SPINS: u32 = if cfg!(loom) { 1 } else { 200 };

/// How long a waiter polls (busy, then yielding) before it sleeps: the range in which a
/// busy peer usually answers, and under a futex round trip's cost across cores on a
/// virtual machine (measured here: ~18-80 µs).
const SPIN_TIME: Duration = Duration::from_micros(30);

/// The bytes of a ring, wherever they live: a shared segment in production, a model's
/// cells under loom. Offsets are in `0..capacity` and a call never crosses the end.
pub trait RingBytes {
    /// Copies `src` to `offset`.
    fn write(&self, offset: u64, src: &[u8]) -> Result<(), ChannelError>;
    /// Copies the bytes at `offset` into `dst`.
    fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), ChannelError>;
}

/// Where messages too large for the ring go: a store outside it that any process can take
/// them back from by number (the Python queues pass a memfd over a socket). A producer
/// stores the message, then publishes a small record naming its number; the reader of
/// that record takes it back. Numbers only grow, so a message whose record was never
/// published (its producer died in between) is recognised by its number and discarded.
pub trait Spill {
    /// Takes back the message stored under `number`, discarding any stored under smaller
    /// numbers (left by producers that died before publishing them). `None` if it is gone
    /// (a reader that died after taking it). With `as_file`, a store that keeps messages
    /// in files may hand over the file itself instead of its bytes.
    fn take(&self, number: u64, as_file: bool) -> Result<Option<Spilled>, ChannelError>;
}

/// A message taken back from a [`Spill`] store.
#[derive(Debug)]
pub enum Spilled {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// The sealed file that holds it (its size is the message's length).
    File(std::os::fd::OwnedFd),
}

/// Copies a message (from byte `skip` on) into the room a [`MessageSink`] made for it.
pub type Fill<'a> = dyn FnMut(usize, &mut [u8]) -> Result<(), ChannelError> + 'a;

/// Where a reader puts the messages it takes. The sink allocates each message's final home
/// itself (the Python bindings: a `bytes` object), so a message is copied out of the ring
/// once; a `Vec<Vec<u8>>` is the plain sink.
pub trait MessageSink {
    /// Takes a message of `len` bytes whose first byte is `first` (0 for an empty one):
    /// allocates room and calls `fill(skip, room)` once, with `room` the place for the
    /// message's bytes from `skip` on (a sink may leave out a leading tag). An error
    /// leaves the message in the ring.
    fn take(&mut self, len: usize, first: u8, fill: &mut Fill<'_>) -> Result<(), ChannelError>;

    /// Whether this sink takes spilled messages as their sealed files
    /// ([`take_file`](Self::take_file)) rather than as bytes: a reader that maps a large
    /// message instead of copying it.
    fn wants_files(&self) -> bool {
        false
    }

    /// Takes a spilled message as its sealed file (called only if
    /// [`wants_files`](Self::wants_files)).
    fn take_file(&mut self, file: std::os::fd::OwnedFd) -> Result<(), ChannelError> {
        drop(file);
        Err(ChannelError::Corrupt(
            "a sink that takes no files was given one",
        ))
    }
}

impl MessageSink for Vec<Vec<u8>> {
    fn take(&mut self, len: usize, _first: u8, fill: &mut Fill<'_>) -> Result<(), ChannelError> {
        let mut message = vec![0u8; len];
        fill(0, &mut message)?;
        self.push(message);
        Ok(())
    }
}

/// Hands a message already read out of the ring (spilled, or gathered from chunks) to a
/// sink.
pub(super) fn hand_over(sink: &mut dyn MessageSink, message: &[u8]) -> Result<(), ChannelError> {
    let first = message.first().copied().unwrap_or(0);
    sink.take(message.len(), first, &mut |skip, room| {
        room.copy_from_slice(&message[skip..]);
        Ok(())
    })
}

/// What a ring operation needs from its surroundings: the bytes, how to sleep, how to tell
/// whether a process is alive, and the caller's process id (for the locks).
#[derive(Debug)]
pub struct Env<'a, B: ?Sized, W: ?Sized, L: ?Sized> {
    /// The ring's data area.
    pub bytes: &'a B,
    /// Futexes (or a model's stand-in).
    pub waiter: &'a W,
    /// Who is alive (for taking over a dead holder's lock, and torn streams).
    pub liveness: &'a L,
    /// The caller's process id.
    pub me: u32,
}

// By hand: the derives would demand `B: Copy` and so on, but only references are copied.
impl<B: ?Sized, W: ?Sized, L: ?Sized> Clone for Env<'_, B, W, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: ?Sized, W: ?Sized, L: ?Sized> Copy for Env<'_, B, W, L> {}

/// How a blocking operation ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Wait<T> {
    /// It completed.
    Done(T),
    /// Its deadline passed first (a put: no room; a get: nothing to get). Nothing changed.
    TimedOut,
    /// `keep_waiting` said to stop (a signal handler raised). Nothing changed.
    Stopped,
}

impl<T> Wait<T> {
    /// Applies `f` to a completed operation's value; timeouts and stops pass through.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Wait<U> {
        match self {
            Wait::Done(value) => Wait::Done(f(value)),
            Wait::TimedOut => Wait::TimedOut,
            Wait::Stopped => Wait::Stopped,
        }
    }
}

/// Limits on a put.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutLimits {
    /// At most this many messages in the queue (0: no limit), the stdlib's `maxsize`.
    pub max_messages: u64,
    /// Count each message as an unfinished task (`JoinableQueue`).
    pub track_tasks: bool,
}

#[repr(C, align(64))]
#[derive(Debug)]
struct ProducerSide {
    lock: RawLock,
    /// Bytes ever committed: the end of readable data.
    tail: AtomicU64,
    /// Bumped after every commit; consumers sleep on it.
    put_seq: AtomicU32,
    /// Consumers sleeping (or about to) on `put_seq`.
    consumers_sleeping: AtomicU32,
    /// What the put-lock holder is doing: [`IDLE`], [`COPYING`], [`COUNTED`], [`STREAMING`].
    writing: AtomicU32,
    /// The process id of the producer streaming a message (for torn-stream detection).
    stream_owner: AtomicU32,
    /// The `tail` the holder is about to publish (to tell, after its death, whether it did).
    pending_tail: AtomicU64,
    /// The message count the holder added before publishing (undone if it never did).
    pending_tasks: AtomicU32,
    _pad: AtomicU32,
    /// The next number to store a spilled message under (see [`Spill`]).
    next_spill: AtomicU64,
}

#[repr(C, align(64))]
#[derive(Debug)]
struct ConsumerSide {
    lock: RawLock,
    /// Bytes ever consumed: the start of readable data.
    head: AtomicU64,
    /// Bumped after every consume; producers waiting for room sleep on it.
    get_seq: AtomicU32,
    /// Producers sleeping (or about to) on `get_seq`.
    producers_sleeping: AtomicU32,
    /// 1 while the get-lock holder is gathering a streamed message.
    gathering: AtomicU32,
    _pad: AtomicU32,
}

#[repr(C, align(64))]
#[derive(Debug)]
struct SharedSide {
    /// Size of the data area in bytes, a multiple of [`record::RECORD_ALIGN`].
    capacity: AtomicU64,
    /// Whole messages committed and not yet consumed (approximate, see [`Ring::len`]).
    messages: AtomicU64,
    /// Messages lost to processes killed mid-operation, or to corruption.
    lost: AtomicU64,
    /// `JoinableQueue`: messages put and not yet marked done.
    unfinished: AtomicU64,
    /// Bumped when `unfinished` reaches zero; `join` sleeps on it.
    unfinished_seq: AtomicU32,
    /// Processes sleeping (or about to) on `unfinished_seq`.
    joiners: AtomicU32,
}

/// `ProducerSide::writing` states.
const IDLE: u32 = 0;
/// Copying a record that is not yet counted or published.
const COPYING: u32 = 1;
/// Counted (messages, tasks) but perhaps not published.
const COUNTED: u32 = 2;
/// A stream has published its first chunk; readers will notice if it tears.
const STREAMING: u32 = 3;

/// The control block of a ring: place it in shared memory beside the ring's bytes. Zeroed
/// memory followed by [`init`](Self::init) is an empty ring.
#[repr(C)]
#[derive(Debug)]
pub struct Ring {
    producers: ProducerSide,
    consumers: ConsumerSide,
    shared: SharedSide,
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `#[repr(C)]` structs (alignment padding only) of `RawLock`s (themselves
// `ShmSafe`) and integer atomics from `crate::primitive`: no pointers or descriptors,
// every bit pattern valid, all zeros an empty ring of capacity 0 (which `init` sets).
#[cfg(not(loom))]
unsafe impl ShmSafe for Ring {}

/// The smallest capacity: room for a few records.
pub const MIN_CAPACITY: u64 = 1024;
/// The largest capacity (record lengths are `u32`; chunks are at most half the ring).
pub const MAX_CAPACITY: u64 = 1 << 32;

impl Default for Ring {
    fn default() -> Self {
        Self::new(MIN_CAPACITY)
    }
}

impl Ring {
    /// An empty ring for `capacity` bytes, on the heap (for models and tests).
    pub fn new(capacity: u64) -> Self {
        let ring = Self {
            producers: ProducerSide {
                lock: RawLock::new(),
                tail: AtomicU64::new(0),
                put_seq: AtomicU32::new(0),
                consumers_sleeping: AtomicU32::new(0),
                writing: AtomicU32::new(IDLE),
                stream_owner: AtomicU32::new(0),
                pending_tail: AtomicU64::new(0),
                pending_tasks: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
                next_spill: AtomicU64::new(0),
            },
            consumers: ConsumerSide {
                lock: RawLock::new(),
                head: AtomicU64::new(0),
                get_seq: AtomicU32::new(0),
                producers_sleeping: AtomicU32::new(0),
                gathering: AtomicU32::new(0),
                _pad: AtomicU32::new(0),
            },
            shared: SharedSide {
                capacity: AtomicU64::new(0),
                messages: AtomicU64::new(0),
                lost: AtomicU64::new(0),
                unfinished: AtomicU64::new(0),
                unfinished_seq: AtomicU32::new(0),
                joiners: AtomicU32::new(0),
            },
        };
        ring.shared.capacity.store(capacity, Ordering::Relaxed);
        ring
    }

    /// Checks a capacity: a multiple of the record alignment within the bounds.
    pub fn check_capacity(capacity: u64) -> Result<(), ChannelError> {
        let reason = if capacity < MIN_CAPACITY {
            "smaller than the minimum of 1024 bytes"
        } else if capacity > MAX_CAPACITY {
            "larger than the maximum of 4 GiB"
        } else if capacity % record::RECORD_ALIGN != 0 {
            "not a multiple of 16"
        } else {
            return Ok(());
        };
        Err(ChannelError::InvalidCapacity { capacity, reason })
    }

    /// Sets up a zeroed control block for `capacity` bytes of data. Only before any other
    /// process or thread uses it.
    pub fn init(&self, capacity: u64) -> Result<(), ChannelError> {
        Self::check_capacity(capacity)?;
        self.shared.capacity.store(capacity, Ordering::Release);
        Ok(())
    }

    /// The data area's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.shared.capacity.load(Ordering::Relaxed)
    }

    /// Messages in the queue. Approximate, as the stdlib's `qsize`: it moves while you
    /// read it, and a producer killed at the wrong instant can leave it one too high
    /// until its lock is taken over.
    pub fn len(&self) -> u64 {
        self.shared.messages.load(Ordering::Relaxed)
    }

    /// Whether the queue holds no committed data (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.producers.tail.load(Ordering::Acquire) == self.consumers.head.load(Ordering::Acquire)
    }

    /// Messages lost so far to processes killed mid-operation or to corrupt records.
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Tasks put and not yet marked done (`JoinableQueue`).
    pub fn unfinished_tasks(&self) -> u64 {
        self.shared.unfinished.load(Ordering::Relaxed)
    }

    /// Bytes committed and not yet consumed.
    pub fn used_bytes(&self) -> u64 {
        let head = self.consumers.head.load(Ordering::Acquire);
        self.producers
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(head)
    }

    /// The largest message that travels as one record; longer ones stream through the
    /// ring, which needs a reader draining it at the same time.
    pub fn max_record_payload(&self) -> u64 {
        self.capacity() / 2 - HEADER_LEN
    }
}
