//! A process-shared, cyclic barrier that breaks when a waiting party dies.
//!
//! # Algorithm
//!
//! A *generation-counting* barrier (the sense-reversing barrier of Mellor-Crummey and
//! Scott, "Algorithms for Scalable Synchronization on Shared-Memory Multiprocessors",
//! 1991, with the sense widened to a generation number), with the state machine of
//! CPython's `threading.Barrier`: filling, tripping (the last party runs the action while
//! the others still wait), broken, and reset.
//!
//! One 32-bit word is both the state and the futex word everyone sleeps on: the
//! generation, the count of parties that arrived in it, and a broken flag. Arriving
//! increments the count; the last arrival of a generation (after its action, if any)
//! advances the generation, which releases everybody waiting in it; breaking sets the flag;
//! `reset` advances the generation with the outcome "broken". Each ended generation's
//! outcome is recorded in a 64-bit history (bit `generation % 64`), so a waiter that wakes
//! after its generation ended knows whether it passed or was reset, even if the next
//! generation is already filling.
//!
//! Every change to the word and to the table of waiting pids is made under a tiny internal
//! lock (a word holding the holder's pid, stolen from a holder that died, as the crate's
//! robust locks do), so that arriving (recording the pid, then counting the arrival) is one
//! step as far as anyone else can see. Waiters read the word without it.
//!
//! # Robustness
//!
//! The pid of every party that arrived in the current generation is recorded at its
//! arrival index. While waiting, each party checks one other party every
//! [`LIVENESS_PERIOD`] through [`Liveness`]: party `i` watches party `i - 1`, party 0
//! watches the latest arrival (a ring). The first live party after a dead one in the ring
//! watches a party of another (dead) process, so any death among the arrived parties is
//! seen by someone within a period, and it breaks the barrier for everyone (after checking,
//! under the internal lock, that the dead party is still in the current generation). The
//! last party running the action is watched too, so the others do not wait for an action
//! whose process died. A party that dies before it arrives is not known to the barrier;
//! the others wait for it as for a slow party (until their timeout).
//!
//! Limits: at most [`MAX_PARTIES`] parties. The generation number has 20 bits and the
//! history 64: a waiter that sleeps through 64 further generations (possible only with
//! more threads than parties) may take a reset generation for a passed one.

use std::time::{Duration, Instant};

use super::{Liveness, SyncError};
use crate::futex::{WaitOutcome, Waiter};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::shm::ShmSafe;

/// The most parties a barrier may have (and the default size of its pid table).
pub const MAX_PARTIES: u32 = 1024;

/// How often a waiting party checks that the party it watches is alive.
pub const LIVENESS_PERIOD: Duration = Duration::from_millis(50);

/// State word: bits 0..=10 count the parties that arrived in this generation.
const COUNT_MASK: u32 = (1 << 11) - 1;
/// State word: bit 11 says the barrier is broken.
const BROKEN: u32 = 1 << 11;
/// State word: bits 12..=31 hold the generation number (wrapping).
const GENERATION_SHIFT: u32 = 12;
/// Internal lock word: set while somebody sleeps on it; the other bits are the holder's
/// pid (0 when free).
const CONTENDED: u32 = 1 << 31;

fn count_of(word: u32) -> u32 {
    word & COUNT_MASK
}

fn generation_of(word: u32) -> u32 {
    word >> GENERATION_SHIFT
}

/// The word of the generation after `word`'s: empty and not broken.
fn next_generation(word: u32) -> u32 {
    (generation_of(word).wrapping_add(1)) << GENERATION_SHIFT
}

/// The history bit of `generation`.
fn history_bit(generation: u32) -> u64 {
    1 << (generation % 64)
}

/// The shared state of a barrier. It lives in shared memory and is valid when zeroed, but
/// a zeroed barrier has no parties: whoever creates it calls [`init`](Self::init) before
/// sharing it (or builds one with [`new`](Self::new)).
///
/// `TABLE` is the size of the pid table, and so the most parties this barrier may have;
/// [`MAX_PARTIES`] unless a model wants a small one.
#[repr(C)]
#[derive(Debug)]
pub struct RawBarrier<const TABLE: usize = { MAX_PARTIES as usize }> {
    /// The futex word. Bits 0..=10: parties arrived in this generation; bit 11: broken;
    /// bits 12..=31: generation (wrapping). Written under `guard` only.
    state: AtomicU32,
    /// The internal lock. Bit 31: somebody sleeps on it; bits 0..=30: the holder's pid
    /// (0: free).
    guard: AtomicU32,
    /// How many parties make up a generation (0: not initialised). Set once.
    parties: AtomicU32,
    /// Outcome of each ended generation: bit `g % 64` set when generation `g` ended broken
    /// (reset), clear when it passed. Written under `guard` before the generation advances.
    history: AtomicU64,
    /// `pids[i]`: the pid of the party that arrived `i`-th in the current generation
    /// (meaningful below the count in `state`). Written under `guard`.
    pids: [AtomicU32; TABLE],
}

// The crate denies unsafe code; this promise about the layout is the one exception here.
#[allow(unsafe_code)]
// SAFETY: `RawBarrier` is `#[repr(C)]` and holds only atomics from `crate::primitive`, so it
// has no pointers, descriptors or heap data and every process agrees on its layout; all
// zeroes is a valid (uninitialised: no parties) state that every operation rejects with
// `Invalid` until `init` sets the parties.
unsafe impl<const TABLE: usize> ShmSafe for RawBarrier<TABLE> {}

/// A party's place in a generation, from [`RawBarrier::arrive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierTicket {
    generation: u32,
    index: u32,
}

impl BarrierTicket {
    /// The arrival index: `0..parties`, distinct for each party of a generation; the last
    /// to arrive gets `parties - 1` (what `threading.Barrier.wait` returns).
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// What [`RawBarrier::arrive`] made of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not the last: wait with [`RawBarrier::await_release`].
    Waiting(BarrierTicket),
    /// The last party: the others wait until the caller runs the barrier's action (if
    /// any) and calls [`RawBarrier::complete`], or [`RawBarrier::break_barrier`] if the
    /// action failed.
    Last(BarrierTicket),
}

/// Why [`RawBarrier::await_release`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The generation completed: the caller passed the barrier.
    Passed,
    /// The deadline passed; the caller still counts as waiting. Give up with
    /// [`RawBarrier::abandon`] (which breaks the barrier) or wait again.
    TimedOut,
    /// A signal arrived; the caller still counts as waiting.
    Interrupted,
}

impl<const TABLE: usize> RawBarrier<TABLE> {
    /// A barrier for `parties` parties, for heap use and models.
    ///
    /// # Errors
    ///
    /// [`SyncError::Invalid`] if `parties` is 0 or above the table (at most
    /// [`MAX_PARTIES`]).
    pub fn new(parties: u32) -> Result<Self, SyncError> {
        let barrier = Self {
            state: AtomicU32::new(0),
            guard: AtomicU32::new(0),
            parties: AtomicU32::new(0),
            history: AtomicU64::new(0),
            pids: std::array::from_fn(|_| AtomicU32::new(0)),
        };
        barrier.init(parties)?;
        Ok(barrier)
    }

    /// Sets the number of parties of a zeroed barrier (one just placed in fresh shared
    /// memory), before any other process sees it.
    ///
    /// # Errors
    ///
    /// [`SyncError::Invalid`] if `parties` is 0 or above the table (at most
    /// [`MAX_PARTIES`]).
    pub fn init(&self, parties: u32) -> Result<(), SyncError> {
        if parties == 0 || parties > Self::capacity() {
            return Err(SyncError::Invalid(
                "a barrier needs at least 1 party and at most its table size (1024)",
            ));
        }
        self.parties.store(parties, Ordering::Release);
        Ok(())
    }

    /// How many parties make up a generation (0 if never initialised).
    pub fn parties(&self) -> u32 {
        self.parties.load(Ordering::Acquire)
    }

    /// How many parties are waiting in the current generation (0 while broken).
    pub fn n_waiting(&self) -> u32 {
        let word = self.state.load(Ordering::Acquire);
        if word & BROKEN != 0 {
            0
        } else {
            count_of(word)
        }
    }

    /// Whether the barrier is broken (until [`reset`](Self::reset)).
    pub fn broken(&self) -> bool {
        self.state.load(Ordering::Acquire) & BROKEN != 0
    }

    /// Waits until all parties have called `wait`, like `threading.Barrier.wait` with no
    /// action; returns this party's arrival index. Signals do not end the wait (use
    /// [`arrive`](Self::arrive) and [`await_release`](Self::await_release) to check for
    /// them); a passed `deadline` breaks the barrier.
    ///
    /// # Errors
    ///
    /// [`SyncError::BrokenBarrier`] if the barrier is or becomes broken (aborted, reset,
    /// timed out, or a waiting party died); [`SyncError::Invalid`] if not initialised or
    /// `me` is not a valid pid.
    pub fn wait<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &L,
        me: u32,
        deadline: Option<Instant>,
    ) -> Result<u32, SyncError> {
        let ticket = loop {
            match self.arrive(waiter, liveness, me, deadline) {
                Err(SyncError::Interrupted) => {}
                Ok(Arrival::Last(ticket)) => return self.complete(ticket, waiter, liveness, me),
                Ok(Arrival::Waiting(ticket)) => break ticket,
                Err(e) => return Err(e),
            }
        };
        loop {
            match self.await_release(ticket, waiter, liveness, me, deadline)? {
                Release::Passed => return Ok(ticket.index),
                Release::TimedOut => return self.abandon(ticket, waiter, liveness, me),
                Release::Interrupted => {}
            }
        }
    }

    /// Arrives at the barrier: counts the caller into the current generation. If the
    /// previous generation is still tripping (its last party running the action, with
    /// more threads than parties around), waits for it first, until `deadline`, after
    /// which the barrier breaks.
    ///
    /// # Errors
    ///
    /// [`SyncError::BrokenBarrier`] if broken; [`SyncError::Interrupted`] if a signal
    /// arrived while waiting to enter (nothing was recorded: call again);
    /// [`SyncError::Invalid`] if not initialised or `me` is not a valid pid.
    pub fn arrive<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &L,
        me: u32,
        deadline: Option<Instant>,
    ) -> Result<Arrival, SyncError> {
        let parties = self.checked_parties(me)?;
        loop {
            self.lock(waiter, liveness, me);
            let word = self.state.load(Ordering::Acquire);
            if word & BROKEN != 0 {
                self.unlock(waiter);
                return Err(SyncError::BrokenBarrier);
            }
            let index = count_of(word);
            if index < parties {
                // The pid first, then the count that makes it visible to watchers.
                self.pids[index as usize].store(me, Ordering::Relaxed);
                self.state.store(word + 1, Ordering::Release);
                self.unlock(waiter);
                let ticket = BarrierTicket {
                    generation: generation_of(word),
                    index,
                };
                if index + 1 < parties {
                    return Ok(Arrival::Waiting(ticket));
                }
                // The ring of watchers cannot see a party that waited alone and died (it
                // had nobody to watch it): the last party checks every earlier one before
                // the round may pass. The round is full, so nobody else can arrive now.
                let dead_party = self.pids[..index as usize]
                    .iter()
                    .map(|recorded| recorded.load(Ordering::Relaxed))
                    .any(|pid| pid != me && !liveness.is_alive(pid));
                if dead_party {
                    self.break_barrier(waiter, liveness, me)?;
                    return Err(SyncError::BrokenBarrier);
                }
                return Ok(Arrival::Last(ticket));
            }
            self.unlock(waiter);
            // Full: the last party is running the action. Its watchers check it.
            match waiter.wait(&self.state, word, deadline) {
                WaitOutcome::Woken => {}
                WaitOutcome::Interrupted => return Err(SyncError::Interrupted),
                WaitOutcome::TimedOut => {
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        self.break_barrier(waiter, liveness, me)?;
                        return Err(SyncError::BrokenBarrier);
                    }
                }
            }
        }
    }

    /// Waits until the caller's generation completes, `deadline` passes or a signal
    /// arrives, checking every [`LIVENESS_PERIOD`], and once more when the deadline
    /// passes, that the party this one watches is alive (and breaking the barrier if not).
    ///
    /// # Errors
    ///
    /// [`SyncError::BrokenBarrier`] if the generation was broken or reset.
    pub fn await_release<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        ticket: BarrierTicket,
        waiter: &W,
        liveness: &L,
        me: u32,
        deadline: Option<Instant>,
    ) -> Result<Release, SyncError> {
        let mut next_check = Instant::now() + LIVENESS_PERIOD;
        loop {
            let word = self.state.load(Ordering::Acquire);
            if let Some(outcome) = self.outcome(ticket, word) {
                return outcome.map(|()| Release::Passed);
            }
            let until = match deadline {
                Some(deadline) if deadline < next_check => deadline,
                _ => next_check,
            };
            match waiter.wait(&self.state, word, Some(until)) {
                WaitOutcome::Woken => {}
                WaitOutcome::Interrupted => return Ok(Release::Interrupted),
                WaitOutcome::TimedOut => {
                    let now = Instant::now();
                    if deadline.is_some_and(|deadline| now >= deadline) {
                        // Callers that wait in short slices (to run signal handlers
                        // between them) never reach `next_check`: look once per slice.
                        self.watch(ticket, waiter, liveness, me);
                        let word = self.state.load(Ordering::Acquire);
                        if let Some(outcome) = self.outcome(ticket, word) {
                            return outcome.map(|()| Release::Passed);
                        }
                        return Ok(Release::TimedOut);
                    }
                    if now >= next_check {
                        self.watch(ticket, waiter, liveness, me);
                        next_check = now + LIVENESS_PERIOD;
                    }
                }
            }
        }
    }

    /// Completes the caller's generation after its action ran (the caller got
    /// [`Arrival::Last`]): releases every party waiting in it. Returns the caller's index.
    ///
    /// # Errors
    ///
    /// [`SyncError::BrokenBarrier`] if the generation was broken or reset meanwhile.
    pub fn complete<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        ticket: BarrierTicket,
        waiter: &W,
        liveness: &L,
        me: u32,
    ) -> Result<u32, SyncError> {
        self.lock(waiter, liveness, me);
        let word = self.state.load(Ordering::Acquire);
        let current = generation_of(word) == ticket.generation && word & BROKEN == 0;
        if current {
            self.history
                .fetch_and(!history_bit(ticket.generation), Ordering::Release);
            self.state.store(next_generation(word), Ordering::Release);
        }
        self.unlock(waiter);
        if current {
            waiter.wake(&self.state, u32::MAX);
            Ok(ticket.index)
        } else {
            Err(SyncError::BrokenBarrier)
        }
    }

    /// Gives up waiting after a timeout (`threading.Barrier` breaks the barrier then):
    /// breaks the caller's generation if it is still current. If the generation passed
    /// in the meantime, returns the caller's index after all.
    ///
    /// # Errors
    ///
    /// [`SyncError::BrokenBarrier`] in every other case.
    pub fn abandon<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        ticket: BarrierTicket,
        waiter: &W,
        liveness: &L,
        me: u32,
    ) -> Result<u32, SyncError> {
        self.lock(waiter, liveness, me);
        let word = self.state.load(Ordering::Acquire);
        let outcome = self.outcome(ticket, word);
        if outcome.is_none() {
            self.state.store(word | BROKEN, Ordering::Release);
        }
        self.unlock(waiter);
        match outcome {
            Some(Ok(())) => Ok(ticket.index),
            Some(Err(e)) => Err(e),
            None => {
                waiter.wake(&self.state, u32::MAX);
                Err(SyncError::BrokenBarrier)
            }
        }
    }

    /// Breaks the barrier (`threading.Barrier.abort`, and what the Python layer does when
    /// the action raises): every party waiting now, and every later one, gets
    /// [`SyncError::BrokenBarrier`] until [`reset`](Self::reset).
    ///
    /// # Errors
    ///
    /// [`SyncError::Invalid`] if not initialised or `me` is not a valid pid.
    pub fn break_barrier<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &L,
        me: u32,
    ) -> Result<(), SyncError> {
        self.checked_parties(me)?;
        self.lock(waiter, liveness, me);
        let word = self.state.load(Ordering::Acquire);
        self.state.store(word | BROKEN, Ordering::Release);
        self.unlock(waiter);
        waiter.wake(&self.state, u32::MAX);
        Ok(())
    }

    /// `threading.Barrier.abort`: the same as [`break_barrier`](Self::break_barrier).
    ///
    /// # Errors
    ///
    /// [`SyncError::Invalid`] if not initialised or `me` is not a valid pid.
    pub fn abort<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &L,
        me: u32,
    ) -> Result<(), SyncError> {
        self.break_barrier(waiter, liveness, me)
    }

    /// Returns the barrier to its empty state (`threading.Barrier.reset`): parties waiting
    /// now get [`SyncError::BrokenBarrier`], a broken barrier is mended, and later
    /// arrivals start a fresh generation.
    ///
    /// # Errors
    ///
    /// [`SyncError::Invalid`] if not initialised or `me` is not a valid pid.
    pub fn reset<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        waiter: &W,
        liveness: &L,
        me: u32,
    ) -> Result<(), SyncError> {
        self.checked_parties(me)?;
        self.lock(waiter, liveness, me);
        let word = self.state.load(Ordering::Acquire);
        let occupied = count_of(word) > 0 || word & BROKEN != 0;
        if occupied {
            self.history
                .fetch_or(history_bit(generation_of(word)), Ordering::Release);
            self.state.store(next_generation(word), Ordering::Release);
        }
        self.unlock(waiter);
        if occupied {
            waiter.wake(&self.state, u32::MAX);
        }
        Ok(())
    }

    /// How the caller's generation ended, seen in `word`: `None` while it goes on.
    fn outcome(&self, ticket: BarrierTicket, word: u32) -> Option<Result<(), SyncError>> {
        if generation_of(word) != ticket.generation {
            // Written before the generation advanced (and `word` was read with Acquire).
            let reset = self.history.load(Ordering::Acquire) & history_bit(ticket.generation);
            Some(if reset == 0 {
                Ok(())
            } else {
                Err(SyncError::BrokenBarrier)
            })
        } else if word & BROKEN != 0 {
            Some(Err(SyncError::BrokenBarrier))
        } else {
            None
        }
    }

    /// Checks the party the caller watches (see the module docs) and breaks the barrier
    /// if its process died while it is still in the caller's generation.
    fn watch<W: Waiter + ?Sized, L: Liveness + ?Sized>(
        &self,
        ticket: BarrierTicket,
        waiter: &W,
        liveness: &L,
        me: u32,
    ) {
        let word = self.state.load(Ordering::Acquire);
        if generation_of(word) != ticket.generation || word & BROKEN != 0 {
            return;
        }
        let watched = match ticket.index {
            0 => count_of(word).saturating_sub(1),
            index => index - 1,
        };
        if watched == ticket.index {
            return;
        }
        // Bounds-checked: the shared word may hold anything a buggy process left there.
        let Some(recorded) = self.pids.get(watched as usize) else {
            return;
        };
        let pid = recorded.load(Ordering::Relaxed);
        if pid == me || liveness.is_alive(pid) {
            return;
        }
        self.lock(waiter, liveness, me);
        let word = self.state.load(Ordering::Acquire);
        let still_there = generation_of(word) == ticket.generation
            && word & BROKEN == 0
            && count_of(word) > watched
            && recorded.load(Ordering::Relaxed) == pid;
        if still_there {
            self.state.store(word | BROKEN, Ordering::Release);
        }
        self.unlock(waiter);
        if still_there {
            waiter.wake(&self.state, u32::MAX);
        }
    }

    /// The number of parties, or `Invalid` if the barrier was never initialised or `me`
    /// cannot be recorded in the internal lock.
    fn checked_parties(&self, me: u32) -> Result<u32, SyncError> {
        if me == 0 || me & CONTENDED != 0 {
            return Err(SyncError::Invalid("process id out of range for a barrier"));
        }
        match self.parties() {
            0 => Err(SyncError::Invalid("barrier used before it was initialised")),
            parties if parties > Self::capacity() => Err(SyncError::Invalid(
                "barrier state is corrupt (too many parties)",
            )),
            parties => Ok(parties),
        }
    }

    /// The most parties this barrier's table holds.
    fn capacity() -> u32 {
        u32::try_from(TABLE).unwrap_or(u32::MAX).min(MAX_PARTIES)
    }

    /// Takes the internal lock for `me`, taking it over from a holder whose process died.
    /// Critical sections are a few stores long, so signals are not reported here.
    fn lock<W: Waiter + ?Sized, L: Liveness + ?Sized>(&self, waiter: &W, liveness: &L, me: u32) {
        let Err(mut seen) =
            self.guard
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        else {
            return;
        };
        loop {
            if seen == 0 {
                // Somebody else may be asleep: keep the flag so that unlock wakes them.
                match self.guard.compare_exchange(
                    0,
                    me | CONTENDED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => seen = now,
                }
                continue;
            }
            if seen & CONTENDED == 0 {
                if let Err(now) = self.guard.compare_exchange(
                    seen,
                    seen | CONTENDED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    seen = now;
                    continue;
                }
                seen |= CONTENDED;
            }
            let outcome = waiter.wait(&self.guard, seen, Some(Instant::now() + LIVENESS_PERIOD));
            if outcome == WaitOutcome::TimedOut {
                let holder = seen & !CONTENDED;
                if holder != me
                    && !liveness.is_alive(holder)
                    && self
                        .guard
                        .compare_exchange(
                            seen,
                            me | CONTENDED,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    // The holder died inside a critical section; each of them leaves the
                    // state consistent at every step, so there is nothing to repair.
                    return;
                }
            }
            seen = self.guard.load(Ordering::Relaxed);
        }
    }

    /// Releases the internal lock.
    fn unlock<W: Waiter + ?Sized>(&self, waiter: &W) {
        if self.guard.swap(0, Ordering::Release) & CONTENDED != 0 {
            waiter.wake(&self.guard, 1);
        }
    }
}
