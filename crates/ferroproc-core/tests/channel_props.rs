//! The channel against a model, corrupt records, and deaths simulated on a heap ring.
//!
//! - Property: random puts (single and batched, whole or in parts, blocking or not,
//!   under a message limit), gets and batched gets, with sizes up to three times the ring
//!   (so some stream), on a heap `Ring` (`Channel` spills large messages instead of
//!   streaming them), single-threaded, checked after every step
//!   against a `VecDeque` model of the ring's contents, bytes included. Alone in a thread
//!   a stream can only finish if all of it fits; one that does not is aborted mid-way
//!   (non-blocking), which must leave the queue as if it had never been put.
//! - Corruption: garbage written over a record through a second mapping of the segment
//!   gives `Corrupt`, counts a loss, and leaves the channel usable and consistent.
//! - Deaths: a heap `Ring` whose "processes" are threads with made-up ids, killed by
//!   panicking inside the storage or the waiter at a chosen point (the lock stays held,
//!   as after SIGKILL), with a liveness oracle that declares them dead.
#![cfg(not(loom))]

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferroproc_core::channel::record::record_size;
use ferroproc_core::channel::{
    Channel, ChannelError, Env, PutLimits, Ring, RingBytes, Wait, MIN_CAPACITY,
};
use ferroproc_core::futex::{FutexWaiter, WaitOutcome, Waiter};
use ferroproc_core::shm::{Segment, Source};
use ferroproc_core::sync::Liveness;
use proptest::prelude::*;

fn me() -> u32 {
    std::process::id()
}

fn past() -> Option<Instant> {
    Some(Instant::now())
}

// ----- the model ----------------------------------------------------------------------

const CAPACITY: u64 = MIN_CAPACITY;
/// Messages above this stream (`capacity / 2 - header`).
const MAX_RECORD_PAYLOAD: u64 = CAPACITY / 2 - 16;
/// Payload of a stream's chunk (`capacity / 4 - header`).
const CHUNK_PAYLOAD: u64 = CAPACITY / 4 - 16;
/// An abort record's size, which a stream always keeps free.
const ABORT_ROOM: u64 = 16;

/// What occupies the ring, front first.
#[derive(Debug, Clone)]
enum Entry {
    /// A message and the bytes its records take; `streamed` when it is several records.
    Message {
        data: Vec<u8>,
        bytes: u64,
        streamed: bool,
    },
    /// The chunks of an aborted stream and its abort record: readers skip them.
    Aborted { bytes: u64 },
}

#[derive(Debug, Default)]
struct Model {
    entries: VecDeque<Entry>,
}

impl Model {
    fn used(&self) -> u64 {
        self.entries
            .iter()
            .map(|entry| match entry {
                Entry::Message { bytes, .. } | Entry::Aborted { bytes } => *bytes,
            })
            .sum()
    }

    fn messages(&self) -> u64 {
        self.entries
            .iter()
            .filter(|entry| matches!(entry, Entry::Message { .. }))
            .count() as u64
    }

    fn has_room(&self, bytes: u64, messages: u64, max_messages: u64) -> bool {
        CAPACITY - self.used() >= bytes
            && (max_messages == 0 || self.messages() + messages <= max_messages)
    }

    /// Puts one message without waiting; `true` if the whole of it went in. A stream that
    /// runs out of room after its first chunk leaves an aborted entry.
    fn put(&mut self, data: &[u8], max_messages: u64) -> bool {
        let total = data.len() as u64;
        if total <= MAX_RECORD_PAYLOAD {
            let size = record_size(total);
            if !self.has_room(size, 1, max_messages) {
                return false;
            }
            self.entries.push_back(Entry::Message {
                data: data.to_vec(),
                bytes: size,
                streamed: false,
            });
            return true;
        }
        let mut sent = 0;
        let mut written = 0;
        while sent < total {
            let len = CHUNK_PAYLOAD.min(total - sent);
            let size = record_size(len);
            let (messages, limit) = if sent == 0 { (1, max_messages) } else { (0, 0) };
            // The chunks written so far are not in `entries` yet: count them by hand.
            let free = CAPACITY - self.used() - written;
            let under_limit = limit == 0 || self.messages() + messages <= limit;
            if free < size + ABORT_ROOM || !under_limit {
                if sent > 0 {
                    self.entries.push_back(Entry::Aborted {
                        bytes: written + ABORT_ROOM,
                    });
                }
                return false;
            }
            written += size;
            sent += len;
        }
        self.entries.push_back(Entry::Message {
            data: data.to_vec(),
            bytes: written,
            streamed: true,
        });
        true
    }

    /// Takes what one `get_many(max)` takes: complete messages from the front, a streamed
    /// one (or an aborted stream, skipped) only as the first thing taken.
    fn get_many(&mut self, max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            match self.entries.front() {
                None => break,
                Some(Entry::Message {
                    streamed: false, ..
                }) => {}
                Some(Entry::Message { streamed: true, .. } | Entry::Aborted { .. }) => {
                    if !out.is_empty() {
                        break;
                    }
                }
            }
            if let Some(Entry::Message { data, .. }) = self.entries.pop_front() {
                out.push(data);
            }
        }
        out
    }
}

// ----- the operations -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Put one message, sent in two parts split at `split` (mod its length).
    Put {
        len: usize,
        split: usize,
        limit: u64,
        blocking: bool,
    },
    /// Put several messages at once.
    PutMany {
        lens: Vec<usize>,
        limit: u64,
        blocking: bool,
    },
    Get,
    GetMany {
        max: usize,
    },
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0..=MAX_RECORD_PAYLOAD as usize,
        1 => (MAX_RECORD_PAYLOAD as usize + 1)..=(3 * CAPACITY as usize),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (len_strategy(), any::<usize>(), 0u64..4, any::<bool>())
            .prop_map(|(len, split, limit, blocking)| Op::Put { len, split, limit, blocking }),
        1 => (prop::collection::vec(len_strategy(), 0..5), 0u64..6, any::<bool>())
            .prop_map(|(lens, limit, blocking)| Op::PutMany { lens, limit, blocking }),
        3 => Just(Op::Get),
        2 => (0usize..5).prop_map(|max| Op::GetMany { max }),
    ]
}

/// A message whose bytes say which one it is, so a mix-up cannot go unnoticed.
fn message(serial: u32, len: usize) -> Vec<u8> {
    let seed = serial.wrapping_mul(2_654_435_761);
    (0..len as u32)
        .map(|i| (seed.wrapping_add(i.wrapping_mul(31)) >> 7) as u8)
        .collect()
}

fn check_against_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let channel = HeapQueue(World::new());
    let mut model = Model::default();
    let mut serial = 0u32;
    for op in ops {
        match op {
            Op::Put {
                len,
                split,
                limit,
                blocking,
            } => {
                serial += 1;
                let data = message(serial, len);
                let (front, back) = data.split_at(if len == 0 { 0 } else { split % (len + 1) });
                let limits = PutLimits {
                    max_messages: limit,
                    track_tasks: false,
                };
                let fits = model.put(&data, limit);
                // Block only when it will not have to wait (alone, it would wait forever).
                let deadline = if blocking && fits { None } else { past() };
                let outcome = channel
                    .put(me(), &[front, back], limits, deadline, &mut || true)
                    .unwrap();
                let expected = if fits { Wait::Done(()) } else { Wait::TimedOut };
                prop_assert_eq!(outcome, expected, "put of {} bytes", len);
            }
            Op::PutMany {
                lens,
                limit,
                blocking,
            } => {
                let batch: Vec<Vec<u8>> = lens
                    .iter()
                    .map(|&len| {
                        serial += 1;
                        message(serial, len)
                    })
                    .collect();
                let views: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                let limits = PutLimits {
                    max_messages: limit,
                    track_tasks: false,
                };
                let mut sent = 0;
                while sent < batch.len() && model.put(&batch[sent], limit) {
                    sent += 1;
                }
                let all = sent == batch.len();
                let deadline = if blocking && all { None } else { past() };
                let outcome = channel
                    .put_many(me(), &views, limits, deadline, &mut || true)
                    .unwrap();
                let expected = (sent, if all { Wait::Done(()) } else { Wait::TimedOut });
                prop_assert_eq!(outcome, expected, "put_many of {:?}", lens);
            }
            Op::Get => {
                let expected = model.get_many(1);
                let outcome = channel.get(me(), past(), &mut || true).unwrap();
                match expected.into_iter().next() {
                    Some(data) => prop_assert_eq!(outcome, Wait::Done(data)),
                    None => prop_assert_eq!(outcome, Wait::TimedOut),
                }
            }
            Op::GetMany { max } => {
                let expected = model.get_many(max);
                let mut got = Vec::new();
                let outcome = channel
                    .get_many(me(), max, &mut got, past(), &mut || true)
                    .unwrap();
                if expected.is_empty() {
                    prop_assert_eq!(outcome, Wait::TimedOut);
                } else {
                    prop_assert_eq!(outcome, Wait::Done(expected.len()));
                }
                prop_assert_eq!(got, expected);
            }
        }
        let ring = channel.ring();
        prop_assert_eq!(ring.len(), model.messages(), "len()");
        prop_assert_eq!(ring.used_bytes(), model.used(), "bytes in the ring");
        prop_assert_eq!(ring.lost(), 0, "nothing is lost single-threaded");
    }
    // Whatever is left comes out, in order.
    let rest = model.get_many(usize::MAX);
    let mut got = Vec::new();
    while let Wait::Done(_) = channel
        .get_many(me(), usize::MAX, &mut got, past(), &mut || true)
        .unwrap()
    {}
    let mut expected = rest;
    while !model.entries.is_empty() {
        expected.extend(model.get_many(usize::MAX));
    }
    prop_assert_eq!(got, expected);
    prop_assert_eq!(channel.ring().len(), 0);
    prop_assert!(channel.ring().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn the_channel_behaves_like_a_queue(ops in prop::collection::vec(op_strategy(), 1..60)) {
        check_against_model(ops)?;
    }
}

/// A heap ring with `Channel`'s methods. (`Channel` itself sends messages over half its
/// ring through a spill socket; the ring's own streaming is what this checks.)
struct HeapQueue(World);

type Kw<'a> = &'a mut dyn FnMut() -> bool;

impl HeapQueue {
    fn put(
        &self,
        me: u32,
        parts: &[&[u8]],
        limits: PutLimits,
        deadline: Option<Instant>,
        kw: Kw<'_>,
    ) -> Result<Wait<()>, ChannelError> {
        self.0.ring.put(self.0.env(me), parts, limits, deadline, kw)
    }

    fn put_many(
        &self,
        me: u32,
        messages: &[&[u8]],
        limits: PutLimits,
        deadline: Option<Instant>,
        kw: Kw<'_>,
    ) -> Result<(usize, Wait<()>), ChannelError> {
        self.0
            .ring
            .put_many(self.0.env(me), messages, limits, deadline, kw)
    }

    fn get(
        &self,
        me: u32,
        deadline: Option<Instant>,
        kw: Kw<'_>,
    ) -> Result<Wait<Vec<u8>>, ChannelError> {
        self.0.ring.get(self.0.env(me), deadline, kw)
    }

    fn get_many(
        &self,
        me: u32,
        max: usize,
        out: &mut Vec<Vec<u8>>,
        deadline: Option<Instant>,
        kw: Kw<'_>,
    ) -> Result<Wait<usize>, ChannelError> {
        self.0.ring.get_many(self.0.env(me), max, out, deadline, kw)
    }

    fn ring(&self) -> &Ring {
        &self.0.ring
    }
}

// ----- corruption -----------------------------------------------------------------------

/// Where the ring's bytes start in a channel's segment (`segment.rs`'s `DATA_OFFSET`).
const DATA_OFFSET: usize = 256;

fn put(channel: &Channel, data: &[u8]) {
    let outcome = channel
        .put(me(), &[data], PutLimits::default(), past(), &mut || true)
        .unwrap();
    assert_eq!(outcome, Wait::Done(()));
}

fn scribble(channel: &Channel, at: u64, garbage: &[u8]) {
    let segment = Segment::attach(Source::Fd(channel.fd()), Channel::TAG).unwrap();
    segment.copy_in(DATA_OFFSET + at as usize, garbage).unwrap();
}

#[test]
fn a_corrupt_record_is_reported_counted_and_skipped() {
    let channel = Channel::create(CAPACITY).unwrap();
    for data in [&b"one"[..], b"two", b"three"] {
        put(&channel, data);
    }
    // The first record's header: unknown flags, absurd lengths.
    scribble(&channel, 0, &[0xa5; 16]);
    let outcome = channel.get(me(), past(), &mut || true);
    assert!(
        matches!(outcome, Err(ChannelError::Corrupt(_))),
        "{outcome:?}"
    );
    assert_eq!(channel.ring().lost(), 1);
    assert!(channel.ring().is_empty(), "the damaged data was discarded");
    // Usable afterwards, from both ends.
    put(&channel, b"after");
    assert_eq!(
        channel.get(me(), None, &mut || true).unwrap(),
        Wait::Done(b"after".to_vec())
    );
    assert_eq!(
        channel.get(me(), past(), &mut || true).unwrap(),
        Wait::TimedOut
    );
}

#[test]
fn a_corrupt_length_is_refused_without_allocating_it() {
    let channel = Channel::create(CAPACITY).unwrap();
    put(&channel, b"victim");
    // A plausible-looking single record claiming far more than is committed.
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&400u32.to_le_bytes());
    header[4..8].copy_from_slice(&3u32.to_le_bytes());
    header[8..16].copy_from_slice(&400u64.to_le_bytes());
    scribble(&channel, 0, &header);
    let mut out = Vec::new();
    let outcome = channel.get_many(me(), 10, &mut out, past(), &mut || true);
    assert!(
        matches!(outcome, Err(ChannelError::Corrupt(_))),
        "{outcome:?}"
    );
    assert!(out.is_empty());
    assert_eq!(channel.ring().lost(), 1);
    put(&channel, b"next");
    assert_eq!(
        channel.get(me(), past(), &mut || true).unwrap(),
        Wait::Done(b"next".to_vec())
    );
}

/// After the damaged messages are discarded, `len()` must not go on counting them:
/// with a message limit, a stale count would refuse every later put.
#[test]
fn a_corrupt_record_does_not_leave_the_queue_looking_full() {
    let channel = Channel::create(CAPACITY).unwrap();
    let limits = PutLimits {
        max_messages: 2,
        track_tasks: false,
    };
    for data in [&b"one"[..], b"two"] {
        assert_eq!(
            channel
                .put(me(), &[data], limits, past(), &mut || true)
                .unwrap(),
            Wait::Done(())
        );
    }
    scribble(&channel, 0, &[0xa5; 16]);
    assert!(channel.get(me(), past(), &mut || true).is_err());
    assert_eq!(
        channel.ring().len(),
        0,
        "the discarded messages are still counted"
    );
    assert_eq!(
        channel
            .put(me(), &[b"again"], limits, past(), &mut || true)
            .unwrap(),
        Wait::Done(()),
        "the queue is empty but refuses a put"
    );
}

// ----- simulated deaths on a heap ring ---------------------------------------------------

thread_local! {
    /// Storage calls this thread may still make before it "dies" (panics) in the next.
    static FUSE: Cell<Option<u32>> = const { Cell::new(None) };
    /// Whether this thread "dies" when it would sleep on a futex.
    static DIE_ON_SLEEP: Cell<bool> = const { Cell::new(false) };
}

const DEATH: &str = "simulated SIGKILL";

fn burn_fuse() {
    FUSE.with(|fuse| match fuse.get() {
        Some(0) => std::panic::panic_any(DEATH),
        Some(n) => fuse.set(Some(n - 1)),
        None => {}
    });
}

/// A ring's bytes on the heap, with the fuse checked on every call.
struct HeapBytes(Mutex<Vec<u8>>);

impl RingBytes for HeapBytes {
    fn write(&self, offset: u64, src: &[u8]) -> Result<(), ChannelError> {
        burn_fuse();
        let offset = offset as usize;
        self.0.lock().unwrap()[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), ChannelError> {
        burn_fuse();
        let offset = offset as usize;
        dst.copy_from_slice(&self.0.lock().unwrap()[offset..offset + dst.len()]);
        Ok(())
    }
}

/// Real futexes, except that a thread marked to die does so when it would sleep.
struct DyingWaiter;

impl Waiter for DyingWaiter {
    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> WaitOutcome {
        if DIE_ON_SLEEP.with(Cell::get) {
            std::panic::panic_any(DEATH);
        }
        FutexWaiter.wait(word, expected, deadline)
    }

    fn wake(&self, word: &AtomicU32, count: u32) -> u32 {
        FutexWaiter.wake(word, count)
    }
}

/// Made-up process ids; bit `pid` set in `dead` means dead.
#[derive(Default)]
struct Deaths(AtomicU32);

impl Liveness for Deaths {
    fn is_alive(&self, pid: u32) -> bool {
        self.0.load(Ordering::Acquire) & (1 << pid) == 0
    }
}

struct World {
    ring: Ring,
    bytes: HeapBytes,
    deaths: Deaths,
}

impl World {
    fn new() -> Self {
        Self {
            ring: Ring::new(CAPACITY),
            bytes: HeapBytes(Mutex::new(vec![0; CAPACITY as usize])),
            deaths: Deaths::default(),
        }
    }

    fn env(&self, me: u32) -> Env<'_, HeapBytes, DyingWaiter, Deaths> {
        Env {
            bytes: &self.bytes,
            waiter: &DyingWaiter,
            liveness: &self.deaths,
            me,
        }
    }

    /// Runs `body` as process `pid` in a thread that dies (`FUSE` storage calls in, or
    /// when it would sleep), leaving whatever it held held; then declares it dead.
    fn die_during(
        &self,
        pid: u32,
        fuse: Option<u32>,
        die_on_sleep: bool,
        body: impl FnOnce(&Self) + Send,
    ) {
        std::thread::scope(|scope| {
            let result = scope
                .spawn(|| {
                    FUSE.with(|cell| cell.set(fuse));
                    DIE_ON_SLEEP.with(|cell| cell.set(die_on_sleep));
                    catch_unwind(AssertUnwindSafe(|| body(self)))
                })
                .join()
                .unwrap();
            let payload = result.expect_err("the doomed process finished its operation");
            assert_eq!(
                payload.downcast_ref::<&str>(),
                Some(&DEATH),
                "it died of something else"
            );
        });
        self.deaths.0.fetch_or(1 << pid, Ordering::Release);
    }

    fn put(&self, pid: u32, data: &[u8], deadline: Option<Instant>) -> Wait<()> {
        self.ring
            .put(
                self.env(pid),
                &[data],
                PutLimits::default(),
                deadline,
                &mut || true,
            )
            .unwrap()
    }

    /// A get that gives up after about `patience` of unproductive wait slices (so a bug
    /// shows as `Stopped`, not as a hang).
    fn get(&self, pid: u32, deadline: Option<Instant>, patience: Duration) -> Wait<Vec<u8>> {
        let give_up = Instant::now() + patience;
        self.ring
            .get(self.env(pid), deadline, &mut || Instant::now() < give_up)
            .unwrap()
    }
}

const PRODUCER: u32 = 2;
const CONSUMER: u32 = 3;
const PRODUCER_2: u32 = 4;
const CONSUMER_2: u32 = 5;

fn big(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i % 251) as u8).collect()
}

/// A producer killed while copying a record (nothing published): the next producer takes
/// the put lock over, counts the loss, and the queue goes on.
#[test]
fn a_producer_killed_mid_copy_loses_only_its_message() {
    let world = World::new();
    world.die_during(PRODUCER, Some(0), false, |world| {
        let _ = world.put(PRODUCER, b"doomed", None);
    });
    assert_eq!(world.put(PRODUCER_2, b"survivor", None), Wait::Done(()));
    assert_eq!(world.ring.lost(), 1);
    assert_eq!(
        world.get(CONSUMER, past(), Duration::from_secs(5)),
        Wait::Done(b"survivor".to_vec())
    );
    assert_eq!(world.ring.len(), 0);
    assert!(world.ring.is_empty());
}

/// A producer killed mid-stream, with the consumer gathering: the partial message is
/// dropped and counted once, and the next message arrives.
#[test]
fn a_producer_killed_mid_stream_is_dropped_by_its_reader() {
    let world = World::new();
    // 1000 bytes: three chunks fit, then the producer sleeps for room, and dies there.
    world.die_during(PRODUCER, None, true, |world| {
        let _ = world.put(PRODUCER, &big(1000), None);
    });
    let got = world.get(CONSUMER, past(), Duration::from_secs(10));
    assert_eq!(
        got,
        Wait::TimedOut,
        "the torn message must be dropped, not delivered"
    );
    assert_eq!(world.ring.lost(), 1);
    assert_eq!(world.put(PRODUCER_2, b"next", None), Wait::Done(()));
    assert_eq!(
        world.ring.lost(),
        1,
        "the lock's takeover must not count it again"
    );
    assert_eq!(
        world.get(CONSUMER, past(), Duration::from_secs(5)),
        Wait::Done(b"next".to_vec())
    );
    assert_eq!(world.ring.len(), 0);
}

/// As above, but another producer took the put lock over (and found no room) before any
/// consumer looked: the takeover clears `stream_owner`, so the reader has nobody to
/// watch. It must still drop the torn message instead of waiting for chunks that will
/// never come.
#[test]
fn a_torn_stream_is_dropped_even_after_its_lock_was_taken_over() {
    let world = World::new();
    world.die_during(PRODUCER, None, true, |world| {
        let _ = world.put(PRODUCER, &big(1000), None);
    });
    // 768 bytes of chunks are in the ring: a 300-byte message (a 320-byte record) has no
    // room, so this non-blocking put takes the lock over and leaves.
    assert_eq!(world.put(PRODUCER_2, &big(300), past()), Wait::TimedOut);
    let got = world.get(CONSUMER, past(), Duration::from_secs(3));
    assert_eq!(
        got,
        Wait::TimedOut,
        "the reader waited for a dead producer's chunks"
    );
    assert_eq!(world.ring.lost(), 1);
}

/// A consumer killed while gathering a streamed message: the next consumer takes the get
/// lock over, counts the loss, skips the orphan chunks, and gets what follows; the
/// message count ends at zero (the orphaned message was counted when it was complete).
#[test]
fn a_consumer_killed_mid_stream_does_not_block_the_next() {
    let world = World::new();
    // 500 bytes: three chunks (240, 240, 20), all fit.
    assert_eq!(world.put(PRODUCER, &big(500), None), Wait::Done(()));
    assert_eq!(world.put(PRODUCER, b"after", None), Wait::Done(()));
    assert_eq!(world.ring.len(), 2);
    // Reads: first header, first payload, then dies reading the second header.
    world.die_during(CONSUMER, Some(2), false, |world| {
        let _ = world.get(CONSUMER, None, Duration::from_secs(5));
    });
    let got = world.get(CONSUMER_2, None, Duration::from_secs(5));
    assert_eq!(got, Wait::Done(b"after".to_vec()));
    assert_eq!(world.ring.lost(), 1);
    assert!(world.ring.is_empty());
    assert_eq!(world.ring.len(), 0, "the orphaned message is still counted");
}
