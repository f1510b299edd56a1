//! How ring operations wait: locks taken in slices, and spin-then-sleep on a sequence word.

use std::time::Instant;

use super::{Env, Wait, SLICE, SPINS};
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
    for _ in 0..SPINS {
        if ready() {
            return Wait::Done(());
        }
        hint::spin_loop();
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

/// The end of the next wait slice.
pub(super) fn slice_end(deadline: Option<Instant>) -> Instant {
    let slice = Instant::now() + SLICE;
    deadline.map_or(slice, |deadline| deadline.min(slice))
}
