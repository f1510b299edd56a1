//! The shared-memory channel within one process: order, sizes, limits, wrap-around.
#![cfg(not(loom))]

use std::time::{Duration, Instant};

use std::sync::Mutex;

use ferroproc_core::channel::{
    Channel, ChannelError, Env, PutLimits, Ring, RingBytes, Wait, MIN_CAPACITY,
};
use ferroproc_core::futex::FutexWaiter;
use ferroproc_core::sync::ProcessLiveness;

fn me() -> u32 {
    std::process::id()
}

fn now() -> Option<Instant> {
    Some(Instant::now())
}

fn put(channel: &Channel, message: &[u8]) {
    let outcome = channel
        .put(me(), &[message], PutLimits::default(), None, &mut || true)
        .unwrap();
    assert_eq!(outcome, Wait::Done(()));
}

fn get(channel: &Channel) -> Vec<u8> {
    match channel.get(me(), None, &mut || true).unwrap() {
        Wait::Done(message) => message,
        other => panic!("get ended with {other:?}"),
    }
}

#[test]
fn messages_come_out_in_order_across_wrap_around() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    for round in 0..200u32 {
        let message: Vec<u8> = (0..(round % 97) as u8).collect();
        put(&channel, &message);
        assert_eq!(get(&channel), message);
    }
    assert_eq!(channel.ring().len(), 0);
    assert_eq!(channel.ring().lost(), 0);
}

#[test]
fn a_message_made_of_parts_arrives_whole() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    let outcome = channel
        .put(
            me(),
            &[b"ab", b"", b"cde"],
            PutLimits::default(),
            None,
            &mut || true,
        )
        .unwrap();
    assert_eq!(outcome, Wait::Done(()));
    assert_eq!(get(&channel), b"abcde");
}

#[test]
fn an_empty_channel_times_out_and_a_full_one_refuses() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    let deadline = Some(Instant::now() + Duration::from_millis(20));
    assert_eq!(
        channel.get(me(), deadline, &mut || true).unwrap(),
        Wait::TimedOut
    );
    let limits = PutLimits {
        max_messages: 2,
        track_tasks: false,
    };
    for _ in 0..2 {
        assert_eq!(
            channel
                .put(me(), &[b"x"], limits, now(), &mut || true)
                .unwrap(),
            Wait::Done(())
        );
    }
    assert_eq!(
        channel
            .put(me(), &[b"x"], limits, now(), &mut || true)
            .unwrap(),
        Wait::TimedOut
    );
    assert_eq!(channel.ring().len(), 2);
}

#[test]
fn batches_keep_their_order() {
    let channel = Channel::create(4096).unwrap();
    let messages: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let views: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let producer = std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            channel
                .put_many(me(), &views, PutLimits::default(), None, &mut || true)
                .unwrap()
        });
        let mut received = Vec::new();
        while received.len() < messages.len() {
            let mut batch = Vec::new();
            let outcome = channel
                .get_many(me(), usize::MAX, &mut batch, None, &mut || true)
                .unwrap();
            assert!(matches!(outcome, Wait::Done(n) if n == batch.len()));
            received.extend(batch);
        }
        assert_eq!(received, messages);
        handle.join().unwrap()
    });
    assert_eq!(producer, (1000, Wait::Done(())));
}

#[test]
fn a_message_larger_than_the_ring_is_spilled_and_needs_no_reader() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    put(&channel, b"before");
    put(&channel, &big);
    put(&channel, b"after");
    assert_eq!(get(&channel), b"before");
    assert_eq!(get(&channel), big);
    assert_eq!(get(&channel), b"after");
    assert_eq!(channel.ring().lost(), 0);
}

/// A heap ring's bytes, for the streaming path that [`Channel`] never takes.
struct HeapBytes(Mutex<Vec<u8>>);

impl RingBytes for HeapBytes {
    fn write(&self, offset: u64, src: &[u8]) -> Result<(), ChannelError> {
        let offset = offset as usize;
        self.0.lock().unwrap()[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), ChannelError> {
        let offset = offset as usize;
        dst.copy_from_slice(&self.0.lock().unwrap()[offset..offset + dst.len()]);
        Ok(())
    }
}

fn heap_ring() -> (Ring, HeapBytes) {
    (
        Ring::new(MIN_CAPACITY),
        HeapBytes(Mutex::new(vec![0; MIN_CAPACITY as usize])),
    )
}

fn env(bytes: &HeapBytes) -> Env<'_, HeapBytes, FutexWaiter, ProcessLiveness> {
    Env {
        bytes,
        waiter: &FutexWaiter,
        liveness: &ProcessLiveness,
        me: me(),
    }
}

#[test]
fn a_ring_without_a_spill_store_streams_large_messages_to_a_reader() {
    let (ring, bytes) = heap_ring();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let outcome = ring
                .put(
                    env(&bytes),
                    &[&big],
                    PutLimits::default(),
                    None,
                    &mut || true,
                )
                .unwrap();
            assert_eq!(outcome, Wait::Done(()));
        });
        match ring.get(env(&bytes), None, &mut || true).unwrap() {
            Wait::Done(message) => assert_eq!(message, big),
            other => panic!("get ended with {other:?}"),
        }
    });
    assert_eq!(ring.lost(), 0);
}

#[test]
fn a_stream_that_runs_out_of_time_is_aborted_and_dropped() {
    let (ring, bytes) = heap_ring();
    let big = vec![7u8; 10 * MIN_CAPACITY as usize];
    let deadline = Some(Instant::now() + Duration::from_millis(30));
    let outcome = ring
        .put(
            env(&bytes),
            &[&big],
            PutLimits::default(),
            deadline,
            &mut || true,
        )
        .unwrap();
    assert_eq!(outcome, Wait::TimedOut);
    let outcome = ring
        .put(
            env(&bytes),
            &[b"next"],
            PutLimits::default(),
            None,
            &mut || true,
        )
        .unwrap();
    assert_eq!(outcome, Wait::Done(()));
    assert_eq!(
        ring.get(env(&bytes), None, &mut || true).unwrap(),
        Wait::Done(b"next".to_vec())
    );
    assert_eq!(ring.lost(), 0);
}

#[test]
fn tasks_are_joined_when_all_are_done() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    let limits = PutLimits {
        max_messages: 0,
        track_tasks: true,
    };
    for _ in 0..3 {
        let _ = channel
            .put(me(), &[b"t"], limits, None, &mut || true)
            .unwrap();
    }
    assert_eq!(channel.ring().unfinished_tasks(), 3);
    assert_eq!(channel.join_tasks(now(), &mut || true), Wait::TimedOut);
    for _ in 0..3 {
        channel.task_done().unwrap();
    }
    assert!(channel.task_done().is_err());
    assert_eq!(channel.join_tasks(None, &mut || true), Wait::Done(()));
}

#[test]
fn a_stop_request_ends_a_wait() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    let mut asked = 0;
    let outcome = channel
        .get(me(), None, &mut || {
            asked += 1;
            asked < 3
        })
        .unwrap();
    assert_eq!(outcome, Wait::Stopped);
}

#[test]
fn attaching_checks_the_segment() {
    let channel = Channel::create(MIN_CAPACITY).unwrap();
    let spill = (
        channel.spill().sender_fd().try_clone_to_owned().unwrap(),
        channel.spill().receiver_fd().try_clone_to_owned().unwrap(),
    );
    let other = Channel::attach(channel.fd(), spill).unwrap();
    put(&channel, b"shared");
    assert_eq!(get(&other), b"shared");
}

#[test]
fn a_segment_that_is_not_a_channel_is_refused() {
    use ferroproc_core::shm::{Backing, Segment, Tag};
    let spill = || {
        let channel = Channel::create(MIN_CAPACITY).unwrap();
        (
            channel.spill().sender_fd().try_clone_to_owned().unwrap(),
            channel.spill().receiver_fd().try_clone_to_owned().unwrap(),
        )
    };
    // Another kind of segment (its tag says so).
    let arena = Segment::create(Backing::Anonymous, 4096, Tag::ARENA).unwrap();
    assert!(Channel::attach(arena.fd(), spill()).is_err());
    // A channel segment whose ring claims more bytes than the segment has.
    let small = Segment::create(Backing::Anonymous, 512, Channel::TAG).unwrap();
    // The capacity is the first word of the control block's third cache line.
    small.copy_in(128, &(1u64 << 20).to_le_bytes()).unwrap();
    let refused = Channel::attach(small.fd(), spill()).unwrap_err();
    assert!(
        refused.to_string().contains("claims more bytes"),
        "{refused}"
    );
    // A raw segment: no header at all.
    let raw = Segment::create_raw(Backing::Anonymous, 1 << 16).unwrap();
    assert!(Channel::attach(raw.fd(), spill()).is_err());
}
