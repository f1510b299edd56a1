//! `RawCondition` and `RawBarrier` across real processes, on futexes, with parties and
//! waiters killed mid-wait.
//!
//! State lives in an anonymous shared segment made before forking; children are forked
//! from this (multithreaded) test process and make only async-signal-safe calls (futex,
//! pidfd and `getpid` system calls; no allocation, no panics), leaving with `_exit`. Every
//! test runs under a watchdog, and none asserts how long anything takes: waiting for
//! another process to reach a state is a poll of shared state, never a sleep.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ferroproc_core::futex::FutexWaiter;
use ferroproc_core::process::ExitStatus;
use ferroproc_core::shm::{Backing, Segment};
use ferroproc_core::sync::{
    AlwaysAlive, Owner, ProcessLiveness, RawBarrier, RawCondition, RawLock, RawRLock, Sleep,
    SyncError,
};

/// Exit codes of children: what went wrong, so a failure says where.
const OK: i32 = 0;
const NOT_NOTIFIED: i32 = 10;
const WAIT_FAILED: i32 = 11;
const LOCK_FAILED: i32 = 12;
const NOT_BROKEN: i32 = 13;
const BAD_INDEX: i32 = 14;

/// Offsets of the objects placed in the test segment (page-aligned, far apart).
const LOCK_AT: usize = 0;
const COND_AT: usize = 4096;
const BARRIER_AT: usize = 8192;
const COUNTERS_AT: usize = 16384;
const SEGMENT_SIZE: usize = 32768;

fn me() -> u32 {
    rustix::process::getpid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// A fresh shared segment (zero-filled: every object in it starts free/empty).
fn segment() -> Segment {
    Segment::create_raw(Backing::Anonymous, SEGMENT_SIZE).expect("shared segment")
}

fn counter(segment: &Segment, index: usize) -> &AtomicU32 {
    segment
        .get(COUNTERS_AT + 4 * index)
        .expect("counter in segment")
}

/// Polls `ready` until it holds (bounded by the watchdog, never by a timed assertion).
fn poll_until(what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Takes a `RawLock` in a child; false if that failed.
fn child_lock(lock: &RawLock, pid: u32) -> bool {
    matches!(
        lock.acquire(&FutexWaiter, &ProcessLiveness, pid, None),
        Ok(acquired) if acquired.is_acquired()
    )
}

/// A child's part in the condition tests: take the lock, count itself in `registered`,
/// wait once, count itself in `woken`. Exits `OK` only if `wait` said it was notified.
fn condition_waiter(lock: &RawLock, cond: &RawCondition, woken: &AtomicU32) -> i32 {
    let pid = me();
    if !child_lock(lock, pid) {
        return LOCK_FAILED;
    }
    let outcome = loop {
        match cond.wait(lock, pid, &FutexWaiter, &ProcessLiveness, None) {
            Err(SyncError::Interrupted) => {}
            other => break other,
        }
    };
    woken.fetch_add(1, Ordering::SeqCst);
    if lock.release(&FutexWaiter).is_err() {
        return LOCK_FAILED;
    }
    match outcome {
        Ok(true) => OK,
        Ok(false) => NOT_NOTIFIED,
        Err(_) => WAIT_FAILED,
    }
}

/// Parent side: takes the lock (no one it waits for can die holding it here).
fn parent_lock(lock: &RawLock) {
    let acquired = lock
        .acquire(&FutexWaiter, &ProcessLiveness, me(), None)
        .expect("lock");
    assert!(acquired.is_acquired());
}

/// Waits until `n` waiters are registered (checked under the lock, where they register).
fn until_waiting(lock: &RawLock, cond: &RawCondition, n: usize) {
    poll_until("the children wait", || {
        parent_lock(lock);
        let waiting = cond.waiting();
        lock.release(&FutexWaiter).unwrap();
        waiting == n
    });
}

#[test]
fn condition_notify_wakes_exactly_n_across_processes() {
    let _watchdog = watchdog("condition_notify_wakes_exactly_n_across_processes");
    let segment = segment();
    let lock: &RawLock = segment.get(LOCK_AT).unwrap();
    let cond: &RawCondition = segment.get(COND_AT).unwrap();
    let woken = counter(&segment, 0);

    let mut children: Vec<_> = (0..3)
        .map(|_| fork_child(|| condition_waiter(lock, cond, woken)))
        .collect();
    until_waiting(lock, cond, 3);

    // notify(1) wakes one; the others stay asleep until notified too.
    parent_lock(lock);
    assert_eq!(
        cond.notify(lock, me(), &FutexWaiter, &ProcessLiveness, 1)
            .unwrap(),
        1
    );
    lock.release(&FutexWaiter).unwrap();
    poll_until("one child woke", || woken.load(Ordering::SeqCst) >= 1);

    parent_lock(lock);
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    assert_eq!(cond.waiting(), 2);
    assert_eq!(
        cond.notify(lock, me(), &FutexWaiter, &ProcessLiveness, 5)
            .unwrap(),
        2
    );
    // Nobody is left waiting: a notification now is not stored for later waiters.
    assert_eq!(
        cond.notify(lock, me(), &FutexWaiter, &ProcessLiveness, 1)
            .unwrap(),
        0
    );
    lock.release(&FutexWaiter).unwrap();

    for child in &mut children {
        assert_eq!(wait_for(child), ExitStatus::Exited(OK));
    }
    assert_eq!(woken.load(Ordering::SeqCst), 3);
}

#[test]
fn condition_notify_all_across_processes() {
    let _watchdog = watchdog("condition_notify_all_across_processes");
    let segment = segment();
    let lock: &RawLock = segment.get(LOCK_AT).unwrap();
    let cond: &RawCondition = segment.get(COND_AT).unwrap();
    let woken = counter(&segment, 0);

    let mut children: Vec<_> = (0..3)
        .map(|_| fork_child(|| condition_waiter(lock, cond, woken)))
        .collect();
    until_waiting(lock, cond, 3);
    parent_lock(lock);
    assert_eq!(cond.notify_all(lock, me(), &FutexWaiter).unwrap(), 3);
    lock.release(&FutexWaiter).unwrap();
    for child in &mut children {
        assert_eq!(wait_for(child), ExitStatus::Exited(OK));
    }
}

#[test]
fn condition_notify_skips_a_waiter_killed_while_waiting() {
    let _watchdog = watchdog("condition_notify_skips_a_waiter_killed_while_waiting");
    let segment = segment();
    let lock: &RawLock = segment.get(LOCK_AT).unwrap();
    let cond: &RawCondition = segment.get(COND_AT).unwrap();
    let woken = counter(&segment, 0);

    // The victim waits first, so it is the oldest waiter: the one notify(1) picks first.
    let mut victim = fork_child(|| condition_waiter(lock, cond, woken));
    until_waiting(lock, cond, 1);
    let mut survivor = fork_child(|| condition_waiter(lock, cond, woken));
    until_waiting(lock, cond, 2);

    assert!(victim.signal(libc::SIGKILL).unwrap());
    assert_eq!(wait_for(&mut victim), ExitStatus::Signaled(libc::SIGKILL));

    parent_lock(lock);
    assert_eq!(
        cond.notify(lock, me(), &FutexWaiter, &ProcessLiveness, 1)
            .unwrap(),
        1
    );
    lock.release(&FutexWaiter).unwrap();
    assert_eq!(wait_for(&mut survivor), ExitStatus::Exited(OK));

    parent_lock(lock);
    assert_eq!(cond.waiting(), 0, "the dead waiter's slot was not freed");
    lock.release(&FutexWaiter).unwrap();
}

#[test]
fn condition_wait_times_out_and_reacquires_the_lock() {
    let _watchdog = watchdog("condition_wait_times_out_and_reacquires_the_lock");
    let lock = RawLock::new();
    let cond: RawCondition = RawCondition::new();
    let pid = me();

    // Not holding the lock: an error, and nothing registered.
    assert!(matches!(
        cond.wait(&lock, pid, &FutexWaiter, &AlwaysAlive, None),
        Err(SyncError::NotOwner)
    ));
    assert!(matches!(
        cond.notify(&lock, pid, &FutexWaiter, &AlwaysAlive, 1),
        Err(SyncError::NotOwner)
    ));

    assert!(lock.try_acquire(pid).unwrap());
    let deadline = Instant::now() + Duration::from_millis(10);
    assert!(!cond
        .wait(&lock, pid, &FutexWaiter, &AlwaysAlive, Some(deadline))
        .unwrap());
    assert_eq!(lock.owner_pid(), Some(pid), "lock not held after a timeout");
    assert_eq!(cond.waiting(), 0);
    lock.release(&FutexWaiter).unwrap();
}

#[test]
fn condition_over_rlock_restores_the_recursion_level() {
    let _watchdog = watchdog("condition_over_rlock_restores_the_recursion_level");
    let lock = RawRLock::new();
    let cond: RawCondition = RawCondition::new();
    let owner = Owner { pid: me(), tid: 1 };
    assert!(lock.try_acquire(owner).unwrap());
    assert!(lock.try_acquire(owner).unwrap());

    let registered = cond
        .begin_wait(&lock, owner, &FutexWaiter, &AlwaysAlive)
        .unwrap();
    assert!(
        !lock.is_locked(),
        "all recursion levels are released while waiting"
    );
    let slept = cond.sleep(&registered, &FutexWaiter, Some(Instant::now()));
    assert_eq!(slept, Sleep::TimedOut);
    let (notified, saved) = cond.end_wait(registered);
    assert!(!notified);
    let reacquired = lock
        .acquire_restore(&FutexWaiter, &AlwaysAlive, owner, saved, None)
        .unwrap();
    assert!(reacquired.is_acquired());
    assert_eq!(lock.count(), 2);
}

#[test]
fn condition_threads_notify_one_by_one() {
    let _watchdog = watchdog("condition_threads_notify_one_by_one");
    let lock = RawRLock::new();
    let cond: RawCondition = RawCondition::new();
    let woken = AtomicU32::new(0);
    let pid = me();
    std::thread::scope(|scope| {
        for tid in 1..=4u64 {
            let (lock, cond, woken) = (&lock, &cond, &woken);
            scope.spawn(move || {
                let owner = Owner { pid, tid };
                let acquired = lock.acquire(&FutexWaiter, &AlwaysAlive, owner, None);
                assert!(acquired.unwrap().is_acquired());
                assert!(cond
                    .wait(lock, owner, &FutexWaiter, &AlwaysAlive, None)
                    .unwrap());
                woken.fetch_add(1, Ordering::SeqCst);
                lock.release(&FutexWaiter, owner).unwrap();
            });
        }
        let main = Owner { pid, tid: 99 };
        for round in 1..=4u32 {
            poll_until("a thread waits", || {
                let _ = lock
                    .acquire(&FutexWaiter, &AlwaysAlive, main, None)
                    .unwrap();
                let waiting = cond.waiting();
                let notified_so_far = woken.load(Ordering::SeqCst);
                let ready = waiting == 5 - round as usize && notified_so_far == round - 1;
                if ready {
                    assert_eq!(
                        cond.notify(&lock, main, &FutexWaiter, &AlwaysAlive, 1)
                            .unwrap(),
                        1
                    );
                }
                lock.release(&FutexWaiter, main).unwrap();
                ready
            });
        }
    });
    assert_eq!(woken.load(Ordering::SeqCst), 4);
}

/// A child's part in the barrier tests: `rounds` generations, recording its index for
/// each in `indices[round * 4 + slot]` (index + 1, so 0 means "not recorded").
fn barrier_party(segment: &Segment, slot: usize, rounds: usize) -> i32 {
    let Ok(barrier) = segment.get::<RawBarrier>(BARRIER_AT) else {
        return BAD_INDEX;
    };
    let pid = me();
    for round in 0..rounds {
        match barrier.wait(&FutexWaiter, &ProcessLiveness, pid, None) {
            Ok(index) => {
                counter(segment, round * 4 + slot).store(index + 1, Ordering::SeqCst);
            }
            Err(SyncError::BrokenBarrier) => return NOT_BROKEN,
            Err(_) => return WAIT_FAILED,
        }
    }
    OK
}

#[test]
fn barrier_three_processes_pass_several_generations() {
    let _watchdog = watchdog("barrier_three_processes_pass_several_generations");
    const ROUNDS: usize = 6;
    let segment = segment();
    let barrier: &RawBarrier = segment.get(BARRIER_AT).unwrap();
    barrier.init(3).unwrap();

    let segment_ref = &segment;
    let mut children: Vec<_> = (1..3)
        .map(|slot| fork_child(move || barrier_party(segment_ref, slot, ROUNDS)))
        .collect();
    assert_eq!(barrier_party(&segment, 0, ROUNDS), OK);
    for child in &mut children {
        assert_eq!(wait_for(child), ExitStatus::Exited(OK));
    }
    for round in 0..ROUNDS {
        let mut indices: Vec<u32> = (0..3)
            .map(|slot| counter(&segment, round * 4 + slot).load(Ordering::SeqCst))
            .collect();
        indices.sort_unstable();
        assert_eq!(indices, [1, 2, 3], "round {round}: indices not distinct");
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
}

/// A child that waits once at the barrier and exits `OK` only if it was broken.
fn barrier_expect_broken(barrier: &RawBarrier) -> i32 {
    match barrier.wait(&FutexWaiter, &ProcessLiveness, me(), None) {
        Err(SyncError::BrokenBarrier) => OK,
        Ok(_) => NOT_BROKEN,
        Err(_) => WAIT_FAILED,
    }
}

#[test]
fn barrier_breaks_when_a_waiting_party_is_killed() {
    let _watchdog = watchdog("barrier_breaks_when_a_waiting_party_is_killed");
    let segment = segment();
    let barrier: &RawBarrier = segment.get(BARRIER_AT).unwrap();
    barrier.init(4).unwrap();

    let mut victim = fork_child(|| barrier_expect_broken(barrier));
    poll_until("the victim waits", || barrier.n_waiting() == 1);
    let mut other = fork_child(|| barrier_expect_broken(barrier));
    poll_until("both children wait", || barrier.n_waiting() == 2);

    assert!(victim.signal(libc::SIGKILL).unwrap());
    // Not reaped on purpose: a zombie counts as dead.
    assert!(matches!(
        barrier.wait(&FutexWaiter, &ProcessLiveness, me(), None),
        Err(SyncError::BrokenBarrier)
    ));
    assert_eq!(wait_for(&mut other), ExitStatus::Exited(OK));
    assert_eq!(wait_for(&mut victim), ExitStatus::Signaled(libc::SIGKILL));
    assert!(barrier.broken());

    // Reset mends it for the survivors.
    barrier.reset(&FutexWaiter, &ProcessLiveness, me()).unwrap();
    assert!(!barrier.broken());
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn barrier_timeout_breaks_it_for_everyone() {
    let _watchdog = watchdog("barrier_timeout_breaks_it_for_everyone");
    let segment = segment();
    let barrier: &RawBarrier = segment.get(BARRIER_AT).unwrap();
    barrier.init(3).unwrap();

    let mut other = fork_child(|| barrier_expect_broken(barrier));
    poll_until("the child waits", || barrier.n_waiting() == 1);
    let deadline = Instant::now() + Duration::from_millis(20);
    assert!(matches!(
        barrier.wait(&FutexWaiter, &ProcessLiveness, me(), Some(deadline)),
        Err(SyncError::BrokenBarrier)
    ));
    assert_eq!(wait_for(&mut other), ExitStatus::Exited(OK));
    assert!(barrier.broken());
    assert_eq!(barrier.n_waiting(), 0);
    // Later arrivals fail at once until a reset.
    assert!(matches!(
        barrier.wait(&FutexWaiter, &ProcessLiveness, me(), None),
        Err(SyncError::BrokenBarrier)
    ));
}

#[test]
fn barrier_abort_and_reset_across_processes() {
    let _watchdog = watchdog("barrier_abort_and_reset_across_processes");
    let segment = segment();
    let barrier: &RawBarrier = segment.get(BARRIER_AT).unwrap();
    barrier.init(2).unwrap();

    // Reset while a party waits: it gets BrokenBarrier, the barrier stays usable.
    let mut child = fork_child(|| barrier_expect_broken(barrier));
    poll_until("the child waits", || barrier.n_waiting() == 1);
    barrier.reset(&FutexWaiter, &ProcessLiveness, me()).unwrap();
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(OK));
    assert!(!barrier.broken());

    let segment_ref = &segment;
    let mut child = fork_child(move || barrier_party(segment_ref, 1, 1));
    assert_eq!(barrier_party(&segment, 0, 1), OK);
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(OK));

    // Abort while a party waits: it and every later arrival get BrokenBarrier.
    let mut child = fork_child(|| barrier_expect_broken(barrier));
    poll_until("the child waits", || barrier.n_waiting() == 1);
    barrier.abort(&FutexWaiter, &ProcessLiveness, me()).unwrap();
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(OK));
    assert!(barrier.broken());
    assert!(matches!(
        barrier.wait(&FutexWaiter, &ProcessLiveness, me(), None),
        Err(SyncError::BrokenBarrier)
    ));
}

#[test]
fn barrier_rejects_bad_parties() {
    let barrier: &RawBarrier = &RawBarrier::new(1).unwrap();
    assert_eq!(barrier.parties(), 1);
    // One party passes alone, as the last (and only) arrival.
    assert_eq!(
        barrier
            .wait(&FutexWaiter, &AlwaysAlive, me(), None)
            .unwrap(),
        0
    );
    assert!(matches!(
        RawBarrier::<1024>::new(0),
        Err(SyncError::Invalid(_))
    ));
    assert!(matches!(
        RawBarrier::<1024>::new(1025),
        Err(SyncError::Invalid(_))
    ));
    assert!(matches!(
        RawBarrier::<4>::new(5),
        Err(SyncError::Invalid(_))
    ));
    let zeroed = segment();
    let unset: &RawBarrier = zeroed.get(BARRIER_AT).unwrap();
    assert!(matches!(
        unset.wait(&FutexWaiter, &AlwaysAlive, me(), None),
        Err(SyncError::Invalid(_))
    ));
}
