//! The consumers' side of [`Ring`]: get, get_many, gathering streamed messages, and the
//! `JoinableQueue` task count.

use std::time::Instant;

use super::waiting::{lock_sliced, sleep_until, slice_end};
use super::*;
use crate::channel::record::RecordHeader;
use crate::futex::Waiter;
use crate::sync::Liveness;

impl Ring {
    // ----- consumers ---------------------------------------------------------------------

    /// Gets one message, waiting until `deadline` for one.
    ///
    /// Once a reader has begun gathering a streamed message it finishes it whatever the
    /// deadline (the chunks it freed cannot be given back); only the producer's death or
    /// `keep_waiting` stops it, and the message is then counted lost.
    pub fn get<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<Vec<u8>>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let mut messages = Vec::with_capacity(1);
        let got = self.get_many(env, 1, &mut messages, deadline, keep_waiting)?;
        Ok(got.map(|_| messages.pop().unwrap_or_default()))
    }

    /// Gets at least one message (waiting until `deadline` for the first) and then every
    /// message already there, up to `max` in all, appending them to `out`. Returns how
    /// many it got.
    pub fn get_many<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        max: usize,
        out: &mut Vec<Vec<u8>>,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<usize>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        self.get_many_with(env, None, max, out, deadline, keep_waiting)
    }

    /// [`get_many`](Self::get_many) for rings whose producers may spill: spilled messages
    /// are taken back from `spill` (without one, they count as corrupt).
    pub fn get_many_with<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        spill: Option<&dyn Spill>,
        max: usize,
        out: &mut dyn MessageSink,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<usize>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let max = max.max(1);
        loop {
            match self.lock_consumers(env, deadline, keep_waiting)? {
                Wait::Done(()) => {}
                Wait::TimedOut => return Ok(Wait::TimedOut),
                Wait::Stopped => return Ok(Wait::Stopped),
            }
            let got = self.take_available(env, spill, max, out, keep_waiting);
            self.unlock_consumers(env)?;
            match got? {
                Wait::Done(0) => {}
                Wait::Done(count) => return Ok(Wait::Done(count)),
                other => return Ok(other),
            }
            let waited = self.wait_for_messages(env.waiter, deadline, keep_waiting);
            match waited {
                Wait::Done(()) => {}
                other => return Ok(other.map_never()),
            }
        }
    }

    /// Waits, without taking anything, until the ring holds data (or `deadline`, or
    /// `keep_waiting` says stop): for callers that take messages where they cannot wait.
    pub fn wait_for_messages<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Wait<()> {
        sleep_until(
            waiter,
            &self.producers.put_seq,
            &self.producers.consumers_sleeping,
            || !self.is_empty(),
            deadline,
            keep_waiting,
        )
    }

    /// With the get lock held: takes complete messages at `head`, up to `max`. Returns 0
    /// when there was nothing to take.
    fn take_available<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        spill: Option<&dyn Spill>,
        max: usize,
        out: &mut dyn MessageSink,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<usize>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let mut taken = 0;
        let mut head = self.consumers.head.load(Ordering::Relaxed);
        let mut freed_any = false;
        let result = loop {
            if taken == max {
                break Ok(Wait::Done(taken));
            }
            let tail = self.producers.tail.load(Ordering::Acquire);
            if head == tail {
                break Ok(Wait::Done(taken));
            }
            let header = match self.read_header(env.bytes, head, tail) {
                Ok(header) => header,
                Err(error) => {
                    self.discard_corrupt(tail);
                    freed_any = true;
                    break Err(error);
                }
            };
            let size = record::record_size(u64::from(header.len));
            if header.is_spilled() {
                let mut number = [0u8; 8];
                self.read_wrapping(env.bytes, head + HEADER_LEN, &mut number)?;
                let fetched = match spill {
                    Some(spill) => spill.take(u64::from_le_bytes(number), out.wants_files()),
                    None => Err(ChannelError::Corrupt(
                        "a spilled message in a ring without a spill store",
                    )),
                };
                head += size;
                self.free_to(head, 1);
                freed_any = true;
                match fetched {
                    Ok(Some(message)) => {
                        // Already out of the ring and its store: a sink that fails here
                        // loses it, which counts.
                        let handed = match message {
                            Spilled::Bytes(message) => hand_over(out, &message),
                            Spilled::File(file) => out.take_file(file),
                        };
                        if let Err(error) = handed {
                            self.shared.lost.fetch_add(1, Ordering::Relaxed);
                            break Err(error);
                        }
                        taken += 1;
                    }
                    // Its reader died after taking it from the store.
                    Ok(None) => {
                        self.shared.lost.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        self.shared.lost.fetch_add(1, Ordering::Relaxed);
                        break Err(error);
                    }
                }
            } else if header.is_first() && header.is_last() {
                let len = header.len as usize;
                let body = head + HEADER_LEN;
                let mut first = [0u8; 1];
                if len > 0 {
                    self.read_wrapping(env.bytes, body, &mut first)?;
                }
                let bytes = env.bytes;
                let mut fill = |skip: usize, room: &mut [u8]| {
                    self.read_wrapping(bytes, body + skip as u64, room)
                };
                if let Err(error) = out.take(len, first[0], &mut fill) {
                    // The sink could not take it: it stays for the next reader.
                    break Err(error);
                }
                head += size;
                self.free_to(head, 1);
                freed_any = true;
                taken += 1;
            } else if header.is_first() {
                // A streamed message: gather it only if nothing was taken yet, so a batch
                // never waits behind a stream.
                if taken > 0 {
                    break Ok(Wait::Done(taken));
                }
                match self.gather_stream(env, head, header, keep_waiting)? {
                    Gathered::Message(message) => {
                        if let Err(error) = hand_over(out, &message) {
                            self.shared.lost.fetch_add(1, Ordering::Relaxed);
                            break Err(error);
                        }
                        taken += 1;
                    }
                    Gathered::Dropped => {}
                    Gathered::Stopped(outcome) => break Ok(outcome),
                }
                freed_any = true;
                head = self.consumers.head.load(Ordering::Relaxed);
            } else {
                // An orphan chunk (its reader died, which was counted on takeover) or an
                // abort record with nothing gathered: skip it. An orphan `LAST` chunk ends a
                // message that was counted when it was committed: uncount it.
                head += size;
                self.free_to(head, u64::from(header.is_last()));
                freed_any = true;
            }
        };
        if freed_any {
            self.announce_get(env);
        }
        result
    }

    /// Reads the record header at `head`, validating it against what is committed.
    fn read_header<B: RingBytes + ?Sized>(
        &self,
        bytes: &B,
        head: u64,
        tail: u64,
    ) -> Result<RecordHeader, ChannelError> {
        let mut raw = [0u8; HEADER_LEN as usize];
        self.read_wrapping(bytes, head, &mut raw)?;
        RecordHeader::decode(&raw, tail - head, self.max_record_payload())
            .map_err(ChannelError::Corrupt)
    }

    /// Drops every committed byte after a corrupt header (a reader cannot resynchronise
    /// inside damaged data) and counts one loss.
    fn discard_corrupt(&self, tail: u64) {
        self.shared.lost.fetch_add(1, Ordering::Relaxed);
        // Whatever was counted is gone with the data. A producer between counting and
        // publishing may leave the count one high, or make a decrement find it at zero,
        // which saturates: `len` is approximate.
        self.shared.messages.store(0, Ordering::Relaxed);
        self.consumers.gathering.store(0, Ordering::Relaxed);
        self.consumers.head.store(tail, Ordering::Release);
    }

    fn gather_stream<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        mut head: u64,
        first: RecordHeader,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Gathered, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let owner = self.producers.stream_owner.load(Ordering::Relaxed);
        // Grow with the data that really arrives: a header's claim alone allocates little.
        let mut message = Vec::with_capacity(first.total.min(self.capacity()) as usize);
        self.consumers.gathering.store(1, Ordering::Relaxed);
        let mut header = first;
        loop {
            let start = message.len();
            message.resize(start + header.len as usize, 0);
            self.read_wrapping(env.bytes, head + HEADER_LEN, &mut message[start..])?;
            head += record::record_size(u64::from(header.len));
            let done = header.is_last();
            self.free_to(head, u64::from(done));
            self.announce_get(env);
            if done {
                self.consumers.gathering.store(0, Ordering::Relaxed);
                return Ok(Gathered::Message(message));
            }
            // Wait for the next chunk, watching the producer.
            let next = loop {
                let tail = self.producers.tail.load(Ordering::Acquire);
                if tail != head {
                    break self.read_header(env.bytes, head, tail);
                }
                let waited =
                    self.wait_for_messages(env.waiter, Some(slice_end(None)), &mut || true);
                if waited == Wait::Done(()) {
                    continue;
                }
                // Torn: its producer died, or the put lock changed hands (a producer that
                // took it over reset the owner) while nothing more arrived.
                let current = self.producers.stream_owner.load(Ordering::Acquire);
                let torn = owner == 0 || current != owner || !env.liveness.is_alive(owner);
                if torn && self.is_empty() {
                    self.drop_gathered(true);
                    return Ok(Gathered::Dropped);
                }
                if !keep_waiting() {
                    // The message is half read and other readers cannot resume it: it is
                    // lost to this stop, and its remaining chunks become orphans.
                    self.drop_gathered(true);
                    return Ok(Gathered::Stopped(Wait::Stopped));
                }
            };
            header = match next {
                Ok(header) => header,
                Err(error) => {
                    let tail = self.producers.tail.load(Ordering::Acquire);
                    self.discard_corrupt(tail);
                    return Err(error);
                }
            };
            if header.is_abort() {
                self.free_to(head + record::record_size(0), 0);
                self.drop_gathered(false);
                return Ok(Gathered::Dropped);
            }
            if header.is_first() {
                // The producer died mid-stream and a new message began.
                self.drop_gathered(true);
                return Ok(Gathered::Dropped);
            }
        }
    }

    fn drop_gathered(&self, lost: bool) {
        if lost {
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
        }
        self.consumers.gathering.store(0, Ordering::Relaxed);
    }

    fn read_wrapping<B: RingBytes + ?Sized>(
        &self,
        bytes: &B,
        at: u64,
        dst: &mut [u8],
    ) -> Result<(), ChannelError> {
        let capacity = self.capacity();
        let offset = at % capacity;
        let first = (capacity - offset).min(dst.len() as u64) as usize;
        let (front, back) = dst.split_at_mut(first);
        bytes.read(offset, front)?;
        if !back.is_empty() {
            bytes.read(0, back)?;
        }
        Ok(())
    }

    /// Frees the ring up to `head`, which completes `messages` messages.
    fn free_to(&self, head: u64, messages: u64) {
        if messages > 0 {
            saturating_sub(&self.shared.messages, messages);
        }
        self.consumers.head.store(head, Ordering::Release);
    }

    fn announce_get<B: ?Sized, W: Waiter + ?Sized, L: ?Sized>(&self, env: Env<'_, B, W, L>) {
        self.consumers.get_seq.fetch_add(1, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.consumers.producers_sleeping.load(Ordering::Relaxed) > 0 {
            env.waiter.wake(&self.consumers.get_seq, u32::MAX);
        }
    }

    fn lock_consumers<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, ChannelError>
    where
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
        B: ?Sized,
    {
        let acquired = lock_sliced(&self.consumers.lock, env, deadline, keep_waiting)?;
        if acquired == Wait::Done(true) && self.consumers.gathering.swap(0, Ordering::Relaxed) != 0
        {
            // The dead reader had half a streamed message; its other chunks are orphans.
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
        }
        Ok(acquired.map(drop))
    }

    fn unlock_consumers<B, W, L>(&self, env: Env<'_, B, W, L>) -> Result<(), ChannelError>
    where
        W: Waiter + ?Sized,
        B: ?Sized,
        L: ?Sized,
    {
        Ok(self.consumers.lock.release(env.waiter)?)
    }

    // ----- JoinableQueue -----------------------------------------------------------------

    /// Marks one task done.
    ///
    /// # Errors
    /// [`ChannelError::TaskDoneTooOften`] when no task is unfinished.
    pub fn task_done<W: Waiter + ?Sized>(&self, waiter: &W) -> Result<(), ChannelError> {
        let mut current = self.shared.unfinished.load(Ordering::Relaxed);
        loop {
            if current == 0 {
                return Err(ChannelError::TaskDoneTooOften);
            }
            match self.shared.unfinished.compare_exchange_weak(
                current,
                current - 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        if current == 1 {
            self.shared.unfinished_seq.fetch_add(1, Ordering::Release);
            fence(Ordering::SeqCst);
            if self.shared.joiners.load(Ordering::Relaxed) > 0 {
                waiter.wake(&self.shared.unfinished_seq, u32::MAX);
            }
        }
        Ok(())
    }

    /// Takes back a dead producer's task count; the joiners are woken by the next
    /// `task_done` or, when this one reached zero, never needed to wait.
    pub(super) fn task_done_quietly(&self) {
        let _ = self
            .shared
            .unfinished
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| n.checked_sub(1));
        self.shared.unfinished_seq.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits until every task put has been marked done.
    pub fn join_tasks<W: Waiter + ?Sized>(
        &self,
        waiter: &W,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Wait<()> {
        sleep_until(
            waiter,
            &self.shared.unfinished_seq,
            &self.shared.joiners,
            || self.shared.unfinished.load(Ordering::SeqCst) == 0,
            deadline,
            keep_waiting,
        )
    }
}

enum Gathered {
    Message(Vec<u8>),
    Dropped,
    Stopped(Wait<usize>),
}

impl Wait<()> {
    fn map_never<T>(self) -> Wait<T> {
        match self {
            Wait::Done(()) | Wait::TimedOut => Wait::TimedOut,
            Wait::Stopped => Wait::Stopped,
        }
    }
}

/// Subtracts `n` from `counter`, stopping at zero (counts repaired after a death or a
/// corruption may already be lower than the messages still draining).
pub(super) fn saturating_sub(counter: &crate::primitive::AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
        Some(value.saturating_sub(n))
    });
}
