//! How ring operations wait: locks taken in slices, and spin-then-sleep on a sequence word.

use std::time::Instant;

use super::{Env, Wait, SLICE, SPINS, SPIN_TIME};
use crate::channel::ChannelError;
use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{fence, hint, AtomicU32, Ordering};
pub(super) use crate::sync::deadline_passed;
use crate::sync::{Acquire, Liveness, RawLock, SyncError};

/// Takes a ring lock in slices, so `keep_waiting` runs between them. `Done(true)` when it
/// was taken over from a dead holder.
pub(super) fn lock_sliced<B, W, L>(
    lock: &RawLock,
    env: Env<'_, B, W, L>,
    deadline: Option<Instant>,
    keep_waiting: &mut dyn FnMut() -> bool,
) -> Result<Wait<bool>, ChannelError>
where
    W: Waiter + ?Sized,
    L: Liveness + ?Sized,
    B: ?Sized,
{
    if lock.try_acquire(env.me)? {
        return Ok(Wait::Done(false));
    }
    loop {
        match lock.acquire(env.waiter, env.liveness, env.me, Some(slice_end(deadline))) {
            Ok(Acquire::Acquired) => return Ok(Wait::Done(false)),
            Ok(Acquire::AcquiredOwnerDied) => return Ok(Wait::Done(true)),
            Ok(Acquire::TimedOut) | Err(SyncError::Interrupted) => {}
            Err(other) => return Err(other.into()),
        }
        if deadline_passed(deadline) {
            return Ok(Wait::TimedOut);
        }
        if !keep_waiting() {
            return Ok(Wait::Stopped);
        }
    }
}

/// Spins, then sleeps on `seq` (registered in `sleepers`) until `ready()`, the deadline,
/// or `keep_waiting` saying stop.
pub(super) fn sleep_until<W: Waiter + ?Sized>(
    waiter: &W,
    seq: &AtomicU32,
    sleepers: &AtomicU32,
    ready: impl Fn() -> bool,
    deadline: Option<Instant>,
    keep_waiting: &mut dyn FnMut() -> bool,
) -> Wait<()> {
    if deadline_passed(deadline) {
        // A non-blocking attempt: one look, no spinning.
        return if ready() {
            Wait::Done(())
        } else {
            Wait::TimedOut
        };
    }
    if spin_then_yield(&ready) {
        return Wait::Done(());
    }
    loop {
        // Registered, then a full fence, then the check: the committer stores, bumps the
        // sequence, fences and reads the sleeper count, so one of the two sees the other
        // (Dekker's pattern, with fences that loom models exactly).
        sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let seen = seq.load(Ordering::Acquire);
        let outcome = if ready() {
            WaitOutcome::Woken
        } else {
            waiter.wait(seq, seen, Some(slice_end(deadline)))
        };
        sleepers.fetch_sub(1, Ordering::Relaxed);
        if ready() {
            return Wait::Done(());
        }
        if deadline_passed(deadline) {
            return Wait::TimedOut;
        }
        if outcome != WaitOutcome::Woken && !keep_waiting() {
            return Wait::Stopped;
        }
    }
}

/// Polls `ready` for up to [`SPIN_TIME`]: a few busy rounds, then rounds that yield the
/// processor. When every core is busy (a pool: the parent's threads and its workers on
/// two cores), yielding hands the core to the thread that will make `ready` true instead
/// of burning it; on an idle core `sched_yield` returns at once and this is a spin.
fn spin_then_yield(ready: &impl Fn() -> bool) -> bool {
    for _ in 0..SPINS {
        if ready() {
            return true;
        }
        hint::spin_loop();
    }
    if cfg!(loom) {
        return false;
    }
    let until = Instant::now() + SPIN_TIME;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        hint::yield_now();
    }
}

/// The end of the next wait slice.
pub(super) fn slice_end(deadline: Option<Instant>) -> Instant {
    let slice = Instant::now() + SLICE;
    deadline.map_or(slice, |deadline| deadline.min(slice))
}
