//! Lock, RLock, Semaphore and Event across real processes, on real futexes, with holders
//! SIGKILLed mid-hold.
//!
//! The primitives live in a `MAP_SHARED | MAP_ANONYMOUS` mapping made before `fork`, so
//! parent and children see the same words. Children are forked from the multithreaded test
//! process: they only touch the mapping, make plain system calls (futex, pidfd, pipe I/O),
//! report through their exit code and leave with `_exit` (no panics, no allocation).
//! Every test runs under a watchdog; nothing asserts how long anything takes.
#![cfg(not(loom))]

mod common;

use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ferroproc_core::futex::FutexWaiter;
use ferroproc_core::process::{Child, ExitStatus};
use ferroproc_core::shm::ShmSafe;
use ferroproc_core::sync::{
    Acquire, Owner, ProcessLiveness, RawEvent, RawLock, RawRLock, RawSemaphore, SyncError,
};

/// Everything the processes of one test share.
#[repr(C)]
#[derive(Debug)]
struct Board {
    lock: RawLock,
    rlock: RawRLock,
    semaphore: RawSemaphore,
    event: RawEvent,
    /// Updated under a lock with a separate load and store: lost updates show in the total.
    counter: AtomicU64,
    /// How many processes are inside the semaphore now, and the most there ever were.
    inside: AtomicU32,
    most_inside: AtomicU32,
}

// SAFETY: `#[repr(C)]`; its fields are the crate's `ShmSafe` primitives and standard
// atomics (the same types `crate::primitive` exports outside loom), with no pointers,
// descriptors or heap, and all zeros is a valid value of each.
unsafe impl ShmSafe for Board {}

/// A `T` in a fresh `MAP_SHARED | MAP_ANONYMOUS` mapping, zero-filled; children forked
/// after it is made share it.
struct SharedMap<T: ShmSafe> {
    ptr: NonNull<T>,
}

impl<T: ShmSafe> SharedMap<T> {
    fn new() -> Self {
        let len = std::mem::size_of::<T>();
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses; no existing
        // memory is affected. The result is checked against MAP_FAILED below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "mmap");
        // Page-aligned, so aligned for any `T`.
        let ptr = NonNull::new(addr.cast::<T>()).expect("mmap returned null");
        Self { ptr }
    }
}

impl<T: ShmSafe> Deref for SharedMap<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mapping is live until `self` is dropped, page-aligned and at least
        // `size_of::<T>()` long; it was zero-filled, which `ShmSafe` promises is a valid
        // `T`; and every field other processes write is atomic, so a shared reference is
        // sound while they do.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ShmSafe> Drop for SharedMap<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no reference into it outlives
        // `self` (they borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), std::mem::size_of::<T>()) };
    }
}

fn me() -> u32 {
    std::process::id()
}

/// Exit codes children report.
const OK: i32 = 0;
const TOOK_OVER: i32 = 10;
const GOT_IT: i32 = 11;
const FAILED: i32 = 1;

/// Acquires `lock` for this process, retrying after signals; `None` on any other error.
fn lock(lock: &RawLock, deadline: Option<Instant>) -> Option<Acquire> {
    loop {
        match lock.acquire(&FutexWaiter, &ProcessLiveness, me(), deadline) {
            Ok(outcome) => return Some(outcome),
            Err(SyncError::Interrupted) => {}
            Err(_) => return None,
        }
    }
}

fn exited(child: &mut Child) -> i32 {
    match wait_for(child) {
        ExitStatus::Exited(code) => code,
        other => panic!("child {} ended with {other:?}", child.pid()),
    }
}

/// Reads one byte per child that reported it is ready.
fn await_ready(fd: BorrowedFd<'_>, children: usize) {
    let mut bytes = vec![0u8; children];
    read_exact(fd, &mut bytes);
}

#[test]
fn lock_counts_exactly_across_processes() {
    let _watchdog = watchdog("lock_counts_exactly_across_processes");
    const CHILDREN: u64 = 4;
    const ROUNDS: u64 = 10_000;
    let board = SharedMap::<Board>::new();
    let mut children: Vec<Child> = (0..CHILDREN)
        .map(|_| {
            fork_child(|| {
                for _ in 0..ROUNDS {
                    if lock(&board.lock, None) != Some(Acquire::Acquired) {
                        return FAILED;
                    }
                    let value = board.counter.load(Ordering::Relaxed);
                    board.counter.store(value + 1, Ordering::Relaxed);
                    if board.lock.release(&FutexWaiter).is_err() {
                        return FAILED;
                    }
                }
                OK
            })
        })
        .collect();
    for child in &mut children {
        assert_eq!(exited(child), OK);
    }
    assert_eq!(board.counter.load(Ordering::Relaxed), CHILDREN * ROUNDS);
    assert!(!board.lock.is_locked());
    assert!(!board.lock.owner_died_ever());
    assert!(matches!(
        board.lock.release(&FutexWaiter),
        Err(SyncError::OverReleased)
    ));
}

/// A child takes the lock and blocks; it is then SIGKILLed while two other children wait.
/// Exactly one of them takes the lock over; the other gets it normally afterwards.
#[test]
fn killed_holder_is_taken_over_by_exactly_one_waiter() {
    let _watchdog = watchdog("killed_holder_is_taken_over_by_exactly_one_waiter");
    let board = SharedMap::<Board>::new();
    let (ready_read, ready_write) = pipe();
    let (never_read, _never_write) = pipe();
    let mut holder = fork_child(|| {
        if lock(&board.lock, None) != Some(Acquire::Acquired) {
            return FAILED;
        }
        board.counter.store(1, Ordering::Relaxed);
        send_byte(&ready_write);
        wait_for_byte(never_read.as_fd());
        OK
    });
    await_ready(ready_read.as_fd(), 1);
    assert_eq!(board.lock.owner_pid(), Some(holder.pid() as u32));
    let mut waiters: Vec<Child> = (0..2)
        .map(|_| {
            fork_child(|| {
                send_byte(&ready_write);
                let code = match lock(&board.lock, None) {
                    Some(Acquire::AcquiredOwnerDied) => TOOK_OVER,
                    Some(Acquire::Acquired) => GOT_IT,
                    _ => return FAILED,
                };
                let value = board.counter.load(Ordering::Relaxed);
                board.counter.store(value + 1, Ordering::Relaxed);
                if board.lock.release(&FutexWaiter).is_err() {
                    return FAILED;
                }
                code
            })
        })
        .collect();
    await_ready(ready_read.as_fd(), 2);
    // Not reaped until the waiters are done: a zombie holder must count as dead.
    assert!(holder.signal(libc::SIGKILL).unwrap());
    let mut codes: Vec<i32> = waiters.iter_mut().map(exited).collect();
    codes.sort_unstable();
    assert_eq!(codes, [TOOK_OVER, GOT_IT]);
    assert_eq!(wait_for(&mut holder), ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(board.counter.load(Ordering::Relaxed), 3);
    assert!(board.lock.owner_died_ever());
    assert!(!board.lock.is_locked());
}

/// While the holder lives a timed acquire times out (and a try fails); once it is killed
/// and reaped, the parent takes the lock over.
#[test]
fn lock_times_out_while_the_holder_lives_then_recovers() {
    let _watchdog = watchdog("lock_times_out_while_the_holder_lives_then_recovers");
    let board = SharedMap::<Board>::new();
    let (ready_read, ready_write) = pipe();
    let (never_read, _never_write) = pipe();
    let mut holder = fork_child(|| {
        if lock(&board.lock, None) != Some(Acquire::Acquired) {
            return FAILED;
        }
        send_byte(&ready_write);
        wait_for_byte(never_read.as_fd());
        OK
    });
    await_ready(ready_read.as_fd(), 1);
    assert!(!board.lock.try_acquire(me()).unwrap());
    let soon = Instant::now() + Duration::from_millis(20);
    assert_eq!(lock(&board.lock, Some(soon)), Some(Acquire::TimedOut));
    // A deadline already past is a non-blocking attempt.
    assert_eq!(
        lock(&board.lock, Some(Instant::now())),
        Some(Acquire::TimedOut)
    );
    assert!(!board.lock.owner_died_ever());

    assert!(holder.signal(libc::SIGKILL).unwrap());
    assert_eq!(wait_for(&mut holder), ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(lock(&board.lock, None), Some(Acquire::AcquiredOwnerDied));
    assert_eq!(board.lock.owner_pid(), Some(me()));
    assert!(board.lock.owner_died_ever());
    board.lock.release(&FutexWaiter).unwrap();
    assert!(!board.lock.is_locked());
}

/// The parent sleeps on the lock in one thread while the holder is killed from another.
#[test]
fn sleeping_waiter_notices_the_holder_die() {
    let _watchdog = watchdog("sleeping_waiter_notices_the_holder_die");
    let board = SharedMap::<Board>::new();
    let (ready_read, ready_write) = pipe();
    let (never_read, _never_write) = pipe();
    let mut holder = fork_child(|| {
        if lock(&board.lock, None) != Some(Acquire::Acquired) {
            return FAILED;
        }
        send_byte(&ready_write);
        wait_for_byte(never_read.as_fd());
        OK
    });
    await_ready(ready_read.as_fd(), 1);
    let shared: &Board = &board;
    let outcome = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| lock(&shared.lock, None));
        assert!(holder.signal(libc::SIGKILL).unwrap());
        waiter.join().unwrap()
    });
    assert_eq!(outcome, Some(Acquire::AcquiredOwnerDied));
    board.lock.release(&FutexWaiter).unwrap();
    assert_eq!(wait_for(&mut holder), ExitStatus::Signaled(libc::SIGKILL));
}

/// A bounded semaphore of 2 admits at most 2 of 4 processes at a time, ends full, and
/// refuses an over-release.
#[test]
fn bounded_semaphore_limits_processes() {
    let _watchdog = watchdog("bounded_semaphore_limits_processes");
    const ROUNDS: u32 = 2_000;
    let board = SharedMap::<Board>::new();
    board.semaphore.init(2, Some(2)).unwrap();
    let mut children: Vec<Child> = (0..4)
        .map(|_| {
            fork_child(|| {
                for _ in 0..ROUNDS {
                    loop {
                        match board.semaphore.acquire(&FutexWaiter, None) {
                            Ok(true) => break,
                            Err(SyncError::Interrupted) => {}
                            _ => return FAILED,
                        }
                    }
                    let now = board.inside.fetch_add(1, Ordering::Relaxed) + 1;
                    board.most_inside.fetch_max(now, Ordering::Relaxed);
                    board.inside.fetch_sub(1, Ordering::Relaxed);
                    if board.semaphore.release(&FutexWaiter, 1).is_err() {
                        return FAILED;
                    }
                }
                OK
            })
        })
        .collect();
    for child in &mut children {
        assert_eq!(exited(child), OK);
    }
    let most = board.most_inside.load(Ordering::Relaxed);
    assert!((1..=2).contains(&most), "{most} processes inside at once");
    assert_eq!(board.semaphore.get_value(), 2);
    assert!(matches!(
        board.semaphore.release(&FutexWaiter, 1),
        Err(SyncError::OverReleased)
    ));
    assert_eq!(board.semaphore.get_value(), 2);
}

/// Children block on an empty semaphore; each release lets one through.
#[test]
fn semaphore_release_wakes_waiting_processes() {
    let _watchdog = watchdog("semaphore_release_wakes_waiting_processes");
    let board = SharedMap::<Board>::new();
    let (ready_read, ready_write) = pipe();
    let mut children: Vec<Child> = (0..3)
        .map(|_| {
            fork_child(|| {
                send_byte(&ready_write);
                loop {
                    match board.semaphore.acquire(&FutexWaiter, None) {
                        Ok(true) => return OK,
                        Err(SyncError::Interrupted) => {}
                        _ => return FAILED,
                    }
                }
            })
        })
        .collect();
    await_ready(ready_read.as_fd(), 3);
    let soon = Instant::now() + Duration::from_millis(10);
    assert!(!board.semaphore.acquire(&FutexWaiter, Some(soon)).unwrap());
    board.semaphore.release(&FutexWaiter, 1).unwrap();
    board.semaphore.release(&FutexWaiter, 2).unwrap();
    for child in &mut children {
        assert_eq!(exited(child), OK);
    }
    assert_eq!(board.semaphore.get_value(), 0);
}

/// A child sets the event the parent waits on.
#[test]
fn event_set_by_a_child_wakes_the_parent() {
    let _watchdog = watchdog("event_set_by_a_child_wakes_the_parent");
    let board = SharedMap::<Board>::new();
    let (go_read, go_write) = pipe();
    let mut child = fork_child(|| {
        wait_for_byte(go_read.as_fd());
        board.counter.store(42, Ordering::Relaxed);
        board.event.set(&FutexWaiter);
        OK
    });
    let soon = Instant::now() + Duration::from_millis(10);
    assert!(!board.event.wait(&FutexWaiter, Some(soon)).unwrap());
    send_byte(&go_write);
    let set = loop {
        match board.event.wait(&FutexWaiter, None) {
            Err(SyncError::Interrupted) => {}
            other => break other.unwrap(),
        }
    };
    assert!(set);
    assert!(board.event.is_set());
    assert_eq!(board.counter.load(Ordering::Relaxed), 42);
    assert_eq!(exited(&mut child), OK);
    board.event.clear();
    assert!(!board.event.is_set());
}

/// The parent sets the event several children wait on.
#[test]
fn event_set_by_the_parent_wakes_every_child() {
    let _watchdog = watchdog("event_set_by_the_parent_wakes_every_child");
    let board = SharedMap::<Board>::new();
    let (ready_read, ready_write) = pipe();
    let mut children: Vec<Child> = (0..3)
        .map(|_| {
            fork_child(|| {
                send_byte(&ready_write);
                loop {
                    match board.event.wait(&FutexWaiter, None) {
                        Ok(true) => return OK,
                        Err(SyncError::Interrupted) => {}
                        _ => return FAILED,
                    }
                }
            })
        })
        .collect();
    await_ready(ready_read.as_fd(), 3);
    board.event.set(&FutexWaiter);
    for child in &mut children {
        assert_eq!(exited(child), OK);
    }
}

/// A child owns the RLock twice: the parent cannot release it or take it; once the child
/// is killed the parent takes it over with a count of 1.
#[test]
fn rlock_owned_by_a_killed_child_is_taken_over() {
    let _watchdog = watchdog("rlock_owned_by_a_killed_child_is_taken_over");
    let board = SharedMap::<Board>::new();
    let (ready_read, ready_write) = pipe();
    let (never_read, _never_write) = pipe();
    // The same thread id in both processes, as after a fork of the same thread.
    const TID: u64 = 1;
    let mut owner = fork_child(|| {
        let me = Owner {
            pid: me(),
            tid: TID,
        };
        for _ in 0..2 {
            match board
                .rlock
                .acquire(&FutexWaiter, &ProcessLiveness, me, None)
            {
                Ok(Acquire::Acquired) => {}
                _ => return FAILED,
            }
        }
        send_byte(&ready_write);
        wait_for_byte(never_read.as_fd());
        OK
    });
    await_ready(ready_read.as_fd(), 1);
    let parent = Owner {
        pid: me(),
        tid: TID,
    };
    assert!(!board.rlock.is_owned_by(parent));
    assert_eq!(board.rlock.count(), 2);
    assert!(matches!(
        board.rlock.release(&FutexWaiter, parent),
        Err(SyncError::NotOwner)
    ));
    let soon = Instant::now() + Duration::from_millis(20);
    assert_eq!(
        board
            .rlock
            .acquire(&FutexWaiter, &ProcessLiveness, parent, Some(soon))
            .unwrap(),
        Acquire::TimedOut
    );
    assert!(owner.signal(libc::SIGKILL).unwrap());
    let outcome = loop {
        match board
            .rlock
            .acquire(&FutexWaiter, &ProcessLiveness, parent, None)
        {
            Err(SyncError::Interrupted) => {}
            other => break other.unwrap(),
        }
    };
    assert_eq!(outcome, Acquire::AcquiredOwnerDied);
    assert!(board.rlock.is_owned_by(parent));
    assert_eq!(board.rlock.count(), 1);
    assert!(board.rlock.owner_died_ever());
    board.rlock.release(&FutexWaiter, parent).unwrap();
    assert!(!board.rlock.is_locked());
    assert_eq!(wait_for(&mut owner), ExitStatus::Signaled(libc::SIGKILL));
}

/// The RLock excludes processes: 3 children nest it twice per increment.
#[test]
fn rlock_counts_exactly_across_processes() {
    let _watchdog = watchdog("rlock_counts_exactly_across_processes");
    const ROUNDS: u64 = 5_000;
    let board = SharedMap::<Board>::new();
    let mut children: Vec<Child> = (0..3)
        .map(|_| {
            fork_child(|| {
                let me = Owner::current();
                for _ in 0..ROUNDS {
                    for _ in 0..2 {
                        match board
                            .rlock
                            .acquire(&FutexWaiter, &ProcessLiveness, me, None)
                        {
                            Ok(Acquire::Acquired) => {}
                            _ => return FAILED,
                        }
                    }
                    let value = board.counter.load(Ordering::Relaxed);
                    board.counter.store(value + 1, Ordering::Relaxed);
                    for _ in 0..2 {
                        if board.rlock.release(&FutexWaiter, me).is_err() {
                            return FAILED;
                        }
                    }
                }
                OK
            })
        })
        .collect();
    for child in &mut children {
        assert_eq!(exited(child), OK);
    }
    assert_eq!(board.counter.load(Ordering::Relaxed), 3 * ROUNDS);
    assert!(!board.rlock.is_locked());
}

#[test]
fn process_liveness_sees_exits_and_zombies() {
    use ferroproc_core::sync::Liveness;
    let _watchdog = watchdog("process_liveness_sees_exits_and_zombies");
    assert!(ProcessLiveness.is_alive(me()));
    let (read_end, write_end) = pipe();
    let mut child = fork_child(|| wait_for_byte(read_end.as_fd()));
    let pid = child.pid() as u32;
    assert!(ProcessLiveness.is_alive(pid));
    send_byte(&write_end);
    // Exited but not reaped: a zombie, which counts as dead.
    let exited = rustix::event::poll(
        &mut [rustix::event::PollFd::new(
            &child.sentinel(),
            rustix::event::PollFlags::IN,
        )],
        None,
    );
    assert_eq!(exited.unwrap(), 1);
    assert!(!ProcessLiveness.is_alive(pid));
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
    assert!(!ProcessLiveness.is_alive(pid));
}
