//! The shared store across real processes: writers that attach through `/proc`, hammer a
//! map and a sequence, and are SIGKILLed at random points; the store must stay whole (every
//! value intact, the count right) and nobody may be left waiting.
//!
//! Writers are the test binary re-executed in the role [`WRITER_ROLE`]. Each value carries
//! a checksum of its key and contents, so a torn or misplaced write shows.
#![cfg(not(loom))]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferroproc_core::process::Child;
use ferroproc_core::store::{Store, StoreKind};
use ferroproc_core::sync::Owner;

const WRITER_ROLE: &str = "store-writer";
const HOLDER_ROLE: &str = "store-holder";
const TEST: &str = "writers_killed_at_random_leave_the_store_whole";

fn checksum(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &byte in *part {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A value for `key`: a checksum, then `length` bytes of a pattern from `seed`.
fn value_for(key: &[u8], seed: u64, length: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..length)
        .map(|i| (seed.wrapping_add(i as u64) % 251) as u8)
        .collect();
    let mut value = checksum(&[key, &body]).to_le_bytes().to_vec();
    value.extend_from_slice(&body);
    value
}

fn value_is_whole(key: &[u8], value: &[u8]) -> bool {
    value.len() >= 8 && value[..8] == checksum(&[key, &value[8..]]).to_le_bytes()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn attach(kind_var: &str) -> Store {
    let pid: u32 = env_var("STORE_PARENT");
    let fd: u32 = env_var(&format!("{kind_var}_FD"));
    let id: u64 = env_var(&format!("{kind_var}_ID"));
    Store::attach_from_process(pid, fd, id).expect("attach through /proc")
}

/// A writer: for ever, a random operation on the map or the sequence.
fn writer() {
    let map = attach("MAP");
    let seq = attach("SEQ");
    let me = Owner::current();
    let mut rng = Rng(u64::from(me.pid) * 0x9e37_79b9 + 1);
    loop {
        let key = format!("k{}", rng.next() % 300).into_bytes();
        let length = (rng.next() % 3000) as usize;
        let value = value_for(&key, rng.next(), length);
        match rng.next() % 8 {
            0 => {
                let locked = map.lock(me, None).unwrap().unwrap();
                locked.map_remove(&key, None).unwrap();
            }
            1 => {
                let locked = seq.lock(me, None).unwrap().unwrap();
                let len = locked.seq_len().unwrap();
                let start = rng.next() % (len + 1);
                let stop = (start + rng.next() % 4).min(len);
                locked
                    .seq_splice(
                        start,
                        stop,
                        &[&value_for(b"seq", 1, length), &value_for(b"seq", 2, 5)],
                    )
                    .unwrap();
            }
            2 => {
                let locked = seq.lock(me, None).unwrap().unwrap();
                if locked.seq_len().unwrap() < 2000 {
                    locked
                        .seq_push(&value_for(b"seq", rng.next(), length))
                        .unwrap();
                }
            }
            3 => {
                let locked = map.lock(me, None).unwrap().unwrap();
                if rng.next() % 50 == 0 {
                    locked.map_clear().unwrap();
                }
            }
            _ => {
                let locked = map.lock(me, None).unwrap().unwrap();
                locked.map_set(&key, b"extra", &value).unwrap();
            }
        }
    }
}

fn spawn_writer(map: &Store, seq: &Store) -> Child {
    let env = [
        format!("STORE_PARENT={}", std::process::id()),
        format!(
            "MAP_FD={}",
            std::os::fd::AsRawFd::as_raw_fd(&map.segment().fd())
        ),
        format!("MAP_ID={}", map.id()),
        format!(
            "SEQ_FD={}",
            std::os::fd::AsRawFd::as_raw_fd(&seq.segment().fd())
        ),
        format!("SEQ_ID={}", seq.id()),
    ];
    self_command(TEST, WRITER_ROLE, &env)
        .spawn()
        .expect("spawn a writer")
}

fn check_whole(map: &Store, seq: &Store) -> (u64, u64) {
    let me = Owner::current();
    let deadline = Some(Instant::now() + PATIENCE);
    let locked = map
        .lock(me, deadline)
        .unwrap()
        .expect("the map's lock is never stuck");
    // A writer killed while holding the lock left blocks behind; taking the lock over
    // gave them back. One killed outside it left nothing.
    assert_eq!(
        locked.leaked_blocks().unwrap(),
        0,
        "blocks leaked in the map"
    );
    let entries = locked.map_entries().unwrap();
    assert_eq!(
        locked.map_len().unwrap(),
        entries.len() as u64,
        "the map's count"
    );
    for entry in &entries {
        assert!(
            value_is_whole(entry.key(), &entry.value),
            "a torn map value"
        );
        assert_eq!(entry.extra(), b"extra");
        let mut again = Vec::new();
        assert!(
            locked.map_get(entry.key(), &mut again).unwrap(),
            "a listed key not found"
        );
        assert_eq!(again, entry.value);
    }
    drop(locked);
    let locked = seq
        .lock(me, deadline)
        .unwrap()
        .expect("the sequence's lock is never stuck");
    assert_eq!(
        locked.leaked_blocks().unwrap(),
        0,
        "blocks leaked in the sequence"
    );
    let items = locked.seq_items().unwrap();
    for item in &items {
        assert!(value_is_whole(b"seq", item), "a torn sequence item");
    }
    (entries.len() as u64, items.len() as u64)
}

#[test]
fn writers_killed_at_random_leave_the_store_whole() {
    if role().as_deref() == Some(WRITER_ROLE) {
        writer();
        return;
    }
    let _watchdog = watchdog(TEST);
    let map = Store::create(StoreKind::Map, 1 << 28).unwrap();
    let seq = Store::create(StoreKind::Sequence, 1 << 28).unwrap();
    let mut rng = Rng(0x1234_5678);
    let mut writers: Vec<Child> = (0..2).map(|_| spawn_writer(&map, &seq)).collect();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_micros(2000 + rng.next() % 20_000));
        let victim = (rng.next() % writers.len() as u64) as usize;
        let mut child = writers.swap_remove(victim);
        child.signal(libc::SIGKILL).unwrap();
        wait_for(&mut child);
        check_whole(&map, &seq);
        writers.push(spawn_writer(&map, &seq));
    }
    for mut child in writers {
        child.signal(libc::SIGKILL).unwrap();
        wait_for(&mut child);
    }
    let (keys, items) = check_whole(&map, &seq);
    eprintln!(
        "store survived 32 kills: {keys} keys, {items} items, {} + {} lock takeovers",
        map.recoveries().unwrap(),
        seq.recoveries().unwrap()
    );
}

#[test]
fn a_holder_killed_with_the_lock_is_taken_over_and_the_store_repaired() {
    const NAME: &str = "a_holder_killed_with_the_lock_is_taken_over_and_the_store_repaired";
    if role().as_deref() == Some(HOLDER_ROLE) {
        let map = attach("MAP");
        let locked = map.lock(Owner::current(), None).unwrap().unwrap();
        locked
            .map_set(b"held", b"", b"by a process about to die")
            .unwrap();
        locked.keep();
        send_byte(inherited_fd(3));
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let _watchdog = watchdog(NAME);
    let map = Store::create(StoreKind::Map, 1 << 20).unwrap();
    let (read, write) = pipe();
    let env = [
        format!("STORE_PARENT={}", std::process::id()),
        format!(
            "MAP_FD={}",
            std::os::fd::AsRawFd::as_raw_fd(&map.segment().fd())
        ),
        format!("MAP_ID={}", map.id()),
    ];
    let mut command = self_command(NAME, HOLDER_ROLE, &env);
    assert_eq!(command.pass_fd(std::os::fd::AsFd::as_fd(&write)), 3);
    let mut child = command.spawn().expect("spawn the holder");
    drop(write);
    assert_eq!(wait_for_byte(std::os::fd::AsFd::as_fd(&read)), 0);
    let me = Owner::current();
    assert!(
        map.try_lock(me).unwrap().is_none(),
        "the holder holds the lock"
    );
    child.signal(libc::SIGKILL).unwrap();
    wait_for(&mut child);
    let locked = map
        .lock(me, Some(Instant::now() + PATIENCE))
        .unwrap()
        .expect("a dead holder's lock is taken over");
    assert!(locked.recovered());
    assert_eq!(locked.map_len().unwrap(), 1);
    drop(locked);
    assert_eq!(map.recoveries().unwrap(), 1);
}
