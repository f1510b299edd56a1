//! Futex waits and wakes across real processes, on words in a shared segment.

mod common;

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use common::*;
use ferroproc_core::futex::{FutexWaiter, WaitOutcome, Waiter};
use ferroproc_core::process::ExitStatus;
use ferroproc_core::shm::{Backing, Segment, Tag};

const TAG: Tag = Tag::new(*b"ftxt");

fn shared_word() -> Segment {
    Segment::create(Backing::Anonymous, 64, TAG).unwrap()
}

#[test]
fn a_child_wakes_its_parent() {
    let _watchdog = watchdog("a_child_wakes_its_parent");
    let segment = shared_word();
    let word = segment.get::<AtomicU32>(0).unwrap();
    // The child first wakes with the word unchanged until the kernel reports it woke
    // someone: that can only be the parent, asleep on the same word from another process
    // (a private futex would never match). Then it stores and wakes for real. Only
    // system calls in the child: async-signal-safe.
    let mut child = fork_child(|| {
        while FutexWaiter.wake(word, 1) == 0 {
            std::thread::yield_now();
        }
        word.store(1, Ordering::Release);
        FutexWaiter.wake(word, u32::MAX);
        0
    });
    let deadline = Instant::now() + PATIENCE;
    let mut woken = 0;
    while word.load(Ordering::Acquire) == 0 {
        match FutexWaiter.wait(word, 0, Some(deadline)) {
            WaitOutcome::Woken => woken += 1,
            WaitOutcome::Interrupted => {}
            WaitOutcome::TimedOut => panic!("never woken by the child"),
        }
    }
    assert!(woken >= 1);
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
}

#[test]
fn a_parent_wakes_its_child() {
    let _watchdog = watchdog("a_parent_wakes_its_child");
    let segment = shared_word();
    let word = segment.get::<AtomicU32>(0).unwrap();
    let mut child = fork_child(|| {
        while word.load(Ordering::Acquire) == 0 {
            if FutexWaiter.wait(word, 0, None) == WaitOutcome::TimedOut {
                return 2;
            }
        }
        0
    });
    // Wake until the kernel reports a sleeper was woken (the child, proving the wake
    // crossed processes), then release it for good.
    while FutexWaiter.wake(word, 1) == 0 {
        std::thread::yield_now();
    }
    word.store(1, Ordering::Release);
    FutexWaiter.wake(word, u32::MAX);
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
}

#[test]
fn a_wait_on_a_shared_word_times_out() {
    let segment = shared_word();
    let word = segment.get::<AtomicU32>(0).unwrap();
    let deadline = Instant::now() + std::time::Duration::from_millis(5);
    loop {
        match FutexWaiter.wait(word, 0, Some(deadline)) {
            WaitOutcome::TimedOut => break,
            WaitOutcome::Woken | WaitOutcome::Interrupted => {}
        }
    }
    // Not early: the deadline really passed (how long after is not our business).
    assert!(Instant::now() >= deadline);
    // A changed word is reported at once, deadline or not.
    word.store(5, Ordering::Release);
    assert_eq!(
        FutexWaiter.wait(word, 0, Some(deadline)),
        WaitOutcome::Woken
    );
}

extern "C" fn note_signal(_: libc::c_int) {}

/// Installs a do-nothing SIGUSR1 handler without `SA_RESTART`. Async-signal-safe.
fn catch_sigusr1() -> bool {
    // SAFETY: `struct sigaction` is plain C data for which all zeros is a valid value (no
    // handler, empty mask, no flags: in particular no SA_RESTART).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = note_signal as *const () as libc::sighandler_t;
    // SAFETY: `sigaction` is async-signal-safe; `action` is valid for the call and the
    // handler does nothing, so running it at any point is harmless.
    unsafe { libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()) == 0 }
}

/// Whether process `pid` is asleep (state `S` in `/proc/<pid>/stat`).
fn sleeping(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    stat.rsplit(')')
        .next()
        .map(str::trim_start)
        .is_some_and(|rest| rest.starts_with('S'))
}

#[test]
fn a_signal_interrupts_a_wait() {
    let _watchdog = watchdog("a_signal_interrupts_a_wait");
    let segment = shared_word();
    let word = segment.get::<AtomicU32>(0).unwrap();
    let (read_end, write_end) = pipe();
    let mut child = fork_child(|| {
        if !catch_sigusr1() {
            return 3;
        }
        let _ = wait_for_byte(read_end.as_fd());
        match FutexWaiter.wait(word, 0, None) {
            WaitOutcome::Interrupted => 0,
            WaitOutcome::Woken => 1,
            WaitOutcome::TimedOut => 2,
        }
    });
    send_byte(&write_end);
    // Signal the child whenever it is asleep, until it exits. A signal that lands in its
    // pipe read (retried on EINTR) or before it sleeps in the futex is harmless: the next
    // one, sent once it sleeps again, interrupts the futex wait.
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if sleeping(child.pid()) {
            let _ = child.signal(libc::SIGUSR1);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the child never left its wait");
        std::thread::yield_now();
    };
    assert_eq!(status, ExitStatus::Exited(0));
}
