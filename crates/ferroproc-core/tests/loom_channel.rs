//! Loom models of the channel's `Ring`: FIFO, exactly-once delivery, no lost wake-up on
//! either side (consumers waiting for data, producers waiting for room), batches, and a
//! streamed message read while it is written.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ferroproc-core --test loom_channel`.
//!
//! The ring's bytes are `RingCells` (one loom cell per 16-byte slot, in `loom_support`),
//! so a reader and a writer touching the same record without the tail/head handshake
//! ordering them is a data race loom reports. `ModelFutex` really blocks until woken, so
//! a commit that skips its wake-up while someone sleeps is a deadlock loom reports (the
//! ring orders sleeper and committer with `SeqCst` fences, which loom models exactly).
//! Every blocking call here has no deadline (loom has no clock).
#![cfg(loom)]

use ferroproc_core::channel::{Env, PutLimits, Ring, Wait, MIN_CAPACITY};
use loom::sync::Arc;
use loom::thread;

#[path = "loom_support/mod.rs"]
mod loom_support;
#[allow(unused_imports)]
use loom_support::*;

struct Shared {
    ring: Ring,
    cells: RingCells,
    futex: ModelFutex,
    deaths: Deaths,
}

impl Shared {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            ring: Ring::new(MIN_CAPACITY),
            cells: RingCells::new(MIN_CAPACITY),
            futex: ModelFutex::default(),
            deaths: Deaths::default(),
        })
    }

    fn env(&self, me: u32) -> Env<'_, RingCells, ModelFutex, Deaths> {
        Env {
            bytes: &self.cells,
            waiter: &self.futex,
            liveness: &self.deaths,
            me,
        }
    }

    fn put_limited(&self, me: u32, message: &[u8], limits: PutLimits) {
        let outcome = self
            .ring
            .put(self.env(me), &[message], limits, None, &mut || true)
            .unwrap();
        assert_eq!(outcome, Wait::Done(()));
    }

    fn put(&self, me: u32, message: &[u8]) {
        self.put_limited(me, message, PutLimits::default());
    }

    fn get(&self, me: u32) -> Vec<u8> {
        match self.ring.get(self.env(me), None, &mut || true).unwrap() {
            Wait::Done(message) => message,
            other => panic!("get ended with {other:?}"),
        }
    }

    /// Checks the ring ended empty, with nothing lost and the locks free.
    fn assert_drained(&self) {
        assert_eq!(self.ring.len(), 0);
        assert!(self.ring.is_empty());
        assert_eq!(self.ring.lost(), 0);
        assert_eq!(self.ring.used_bytes(), 0);
    }
}

const CONSUMER: u32 = 1;
const PRODUCER: u32 = 2;
const PRODUCER_2: u32 = 3;

/// (a) One producer, one consumer, two messages: FIFO, each exactly once, and the
/// consumer (blocking without a deadline) is always woken.
#[test]
fn one_to_one_is_fifo_without_lost_wakeups() {
    loom::model(|| {
        let shared = Shared::new();
        let producer = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.put(PRODUCER, b"first");
                shared.put(PRODUCER, b"second, longer than a slot");
            })
        };
        assert_eq!(shared.get(CONSUMER), b"first");
        assert_eq!(shared.get(CONSUMER), b"second, longer than a slot");
        producer.join().unwrap();
        shared.assert_drained();
    });
}

/// (b) Two producers, one message each, one consumer: both arrive, once each.
#[test]
fn two_producers_both_delivered_once() {
    loom::model(|| {
        let shared = Shared::new();
        let producers: Vec<_> = [(PRODUCER, b"from two"), (PRODUCER_2, b"from 3!!")]
            .into_iter()
            .map(|(pid, message)| {
                let shared = shared.clone();
                thread::spawn(move || shared.put(pid, message))
            })
            .collect();
        let mut got = vec![shared.get(CONSUMER), shared.get(CONSUMER)];
        for producer in producers {
            producer.join().unwrap();
        }
        got.sort();
        assert_eq!(got, vec![b"from 3!!".to_vec(), b"from two".to_vec()]);
        shared.assert_drained();
    });
}

/// (c) A batch put against batched gets: all of it, in order, whatever the split.
#[test]
fn batches_arrive_whole_and_in_order() {
    loom::model(|| {
        let shared = Shared::new();
        let producer = {
            let shared = shared.clone();
            thread::spawn(move || {
                let batch: [&[u8]; 3] = [b"a", b"", b"ccc"];
                let outcome = shared
                    .ring
                    .put_many(
                        shared.env(PRODUCER),
                        &batch,
                        PutLimits::default(),
                        None,
                        &mut || true,
                    )
                    .unwrap();
                assert_eq!(outcome, (3, Wait::Done(())));
            })
        };
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut batch = Vec::new();
            let outcome = shared
                .ring
                .get_many(
                    shared.env(CONSUMER),
                    usize::MAX,
                    &mut batch,
                    None,
                    &mut || true,
                )
                .unwrap();
            assert_eq!(outcome, Wait::Done(batch.len()));
            assert!(!batch.is_empty());
            got.extend(batch);
        }
        producer.join().unwrap();
        assert_eq!(got, vec![b"a".to_vec(), Vec::new(), b"ccc".to_vec()]);
        shared.assert_drained();
    });
}

/// (d) `max_messages = 1`: the producer's second put must sleep for room and the
/// consumer's get must wake it.
#[test]
fn a_full_ring_wakes_its_producer() {
    loom::model(|| {
        let shared = Shared::new();
        let limits = PutLimits {
            max_messages: 1,
            track_tasks: false,
        };
        let producer = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.put_limited(PRODUCER, b"one", limits);
                shared.put_limited(PRODUCER, b"two", limits);
            })
        };
        assert_eq!(shared.get(CONSUMER), b"one");
        assert_eq!(shared.get(CONSUMER), b"two");
        producer.join().unwrap();
        shared.assert_drained();
    });
}

/// (e) A message over half the ring streams in three chunks while the consumer gathers
/// it; a small message follows. Both arrive whole, in order, and the chunk handshake
/// orders every byte (no race on the cells).
#[test]
fn a_streamed_message_arrives_whole() {
    loom::model(|| {
        let shared = Shared::new();
        // 500 bytes > 496 (= 1024 / 2 - 16): chunks of 240, 240 and 20 bytes.
        let big: Vec<u8> = (0..500u32).map(|i| (i % 251) as u8).collect();
        let producer = {
            let shared = shared.clone();
            let big = big.clone();
            thread::spawn(move || {
                shared.put(PRODUCER, &big);
                shared.put(PRODUCER, b"after");
            })
        };
        assert_eq!(shared.get(CONSUMER), big);
        assert_eq!(shared.get(CONSUMER), b"after");
        producer.join().unwrap();
        shared.assert_drained();
    });
}

/// (e, longer) A 1000-byte message: five chunks, more than the ring holds, so the
/// producer sleeps for room mid-stream and the gathering consumer must wake it (and be
/// woken by it).
#[test]
fn a_stream_longer_than_the_ring_wakes_both_sides() {
    loom::model(|| {
        let shared = Shared::new();
        let big: Vec<u8> = (0..1000u32).map(|i| (i % 253) as u8).collect();
        let producer = {
            let shared = shared.clone();
            let big = big.clone();
            thread::spawn(move || shared.put(PRODUCER, &big))
        };
        assert_eq!(shared.get(CONSUMER), big);
        producer.join().unwrap();
        shared.assert_drained();
    });
}
