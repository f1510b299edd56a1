//! The producers' side of [`Ring`]: put, put_many, streaming, and repair after a dead producer.

use std::time::Instant;

use super::waiting::{lock_sliced, sleep_until};
use super::*;
use crate::channel::record::{RecordHeader, ABORT, FIRST, LAST, SPILLED, SPILL_NUMBER_LEN};
use crate::futex::Waiter;
use crate::sync::Liveness;

impl Ring {
    // ----- producers ---------------------------------------------------------------------

    /// Puts one message, the concatenation of `parts`, waiting until `deadline` (`None`:
    /// forever; in the past: not at all) for room.
    pub fn put<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        parts: &[&[u8]],
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let total: u64 = parts.iter().map(|part| part.len() as u64).sum();
        if total > self.max_record_payload() {
            return self.put_streamed(env, parts, total, limits, deadline, keep_waiting);
        }
        let size = record::record_size(total);
        loop {
            match self.lock_producers(env, deadline, keep_waiting)? {
                Wait::Done(()) => {}
                Wait::TimedOut => return Ok(Wait::TimedOut),
                Wait::Stopped => return Ok(Wait::Stopped),
            }
            if self.has_room(size, 1, limits.max_messages) {
                let written = self.write_one(env, parts, total, limits);
                self.unlock_producers(env)?;
                written?;
                self.announce_put(env, 1);
                return Ok(Wait::Done(()));
            }
            self.unlock_producers(env)?;
            match self.wait_for_room(env, size, 1, limits.max_messages, deadline, keep_waiting) {
                Wait::Done(()) => {}
                other => return Ok(other),
            }
        }
    }

    /// Puts several messages, in order, taking the put lock once for as many as fit.
    /// Returns how many were put: all of them, unless the deadline passed or
    /// `keep_waiting` stopped it first (then the rest were not put).
    pub fn put_many<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        messages: &[&[u8]],
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<(usize, Wait<()>), ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let mut sent = 0;
        while sent < messages.len() {
            let first = messages[sent];
            if first.len() as u64 > self.max_record_payload() {
                match self.put(env, &[first], limits, deadline, keep_waiting)? {
                    Wait::Done(()) => sent += 1,
                    other => return Ok((sent, other)),
                }
                continue;
            }
            match self.lock_producers(env, deadline, keep_waiting)? {
                Wait::Done(()) => {}
                other => return Ok((sent, other)),
            }
            let mut batch = 0;
            let mut result = Ok(());
            while let Some(message) = messages.get(sent + batch) {
                let len = message.len() as u64;
                if len > self.max_record_payload()
                    || !self.has_room(record::record_size(len), 1, limits.max_messages)
                {
                    break;
                }
                result = self.write_one(env, &[message], len, limits);
                if result.is_err() {
                    break;
                }
                batch += 1;
            }
            self.unlock_producers(env)?;
            result?;
            if batch > 0 {
                self.announce_put(env, batch);
                sent += batch;
                continue;
            }
            let size = record::record_size(first.len() as u64);
            match self.wait_for_room(env, size, 1, limits.max_messages, deadline, keep_waiting) {
                Wait::Done(()) => {}
                other => return Ok((sent, other)),
            }
        }
        Ok((sent, Wait::Done(())))
    }

    /// Publishes a message of `total` bytes kept outside the ring: takes the put lock,
    /// waits for room for one small record (and for `max_messages`), draws the message's
    /// spill number, lets `store(number)` hand the message to the store, and publishes the
    /// record. The number is drawn before `store` runs, so a producer that dies in between
    /// leaves a number no record will ever name.
    pub fn put_spilled<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        total: u64,
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
        store: &mut dyn FnMut(u64) -> Result<(), ChannelError>,
    ) -> Result<Wait<()>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        let size = record::record_size(u64::from(SPILL_NUMBER_LEN));
        loop {
            match self.lock_producers(env, deadline, keep_waiting)? {
                Wait::Done(()) => {}
                other => return Ok(other),
            }
            if self.has_room(size, 1, limits.max_messages) {
                let written = self.write_spilled(env, total, limits, store);
                self.unlock_producers(env)?;
                written?;
                self.announce_put(env, 1);
                return Ok(Wait::Done(()));
            }
            self.unlock_producers(env)?;
            match self.wait_for_room(env, size, 1, limits.max_messages, deadline, keep_waiting) {
                Wait::Done(()) => {}
                other => return Ok(other),
            }
        }
    }

    fn write_spilled<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        total: u64,
        limits: PutLimits,
        store: &mut dyn FnMut(u64) -> Result<(), ChannelError>,
    ) -> Result<(), ChannelError>
    where
        B: RingBytes + ?Sized,
        W: ?Sized,
        L: ?Sized,
    {
        let number = self.producers.next_spill.fetch_add(1, Ordering::Relaxed);
        let tail = self.producers.tail.load(Ordering::Relaxed);
        let size = record::record_size(u64::from(SPILL_NUMBER_LEN));
        self.begin_write(tail + size);
        if let Err(error) = store(number) {
            self.producers.writing.store(IDLE, Ordering::Relaxed);
            return Err(error);
        }
        let header = RecordHeader {
            len: SPILL_NUMBER_LEN,
            flags: FIRST | LAST | SPILLED,
            total,
        };
        let end = self.write_record(env.bytes, tail, header, &[&number.to_le_bytes()])?;
        self.commit(end, true, limits);
        Ok(())
    }

    /// Writes and publishes one record-sized message. The caller holds the put lock and
    /// has checked for room.
    fn write_one<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        parts: &[&[u8]],
        total: u64,
        limits: PutLimits,
    ) -> Result<(), ChannelError>
    where
        B: RingBytes + ?Sized,
        W: ?Sized,
        L: ?Sized,
    {
        let tail = self.producers.tail.load(Ordering::Relaxed);
        let header = RecordHeader {
            len: total as u32,
            flags: FIRST | LAST,
            total,
        };
        self.begin_write(tail + record::record_size(total));
        let end = self.write_record(env.bytes, tail, header, parts)?;
        self.commit(end, true, limits);
        Ok(())
    }

    /// Records what the put-lock holder is about to publish, so a process that takes the
    /// lock over after its death can tell whether it did.
    fn begin_write(&self, new_tail: u64) {
        self.producers
            .pending_tail
            .store(new_tail, Ordering::Relaxed);
        self.producers.writing.store(COPYING, Ordering::Relaxed);
    }

    /// Publishes the bytes up to `end`; `completes` when they end a message (then it is
    /// counted, and counted as a task when `limits` say so).
    fn commit(&self, end: u64, completes: bool, limits: PutLimits) {
        if completes {
            self.producers
                .pending_tasks
                .store(u32::from(limits.track_tasks), Ordering::Relaxed);
            self.producers.writing.store(COUNTED, Ordering::Relaxed);
            self.shared.messages.fetch_add(1, Ordering::Relaxed);
            if limits.track_tasks {
                self.shared.unfinished.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.producers.tail.store(end, Ordering::Release);
        let next = if completes { IDLE } else { STREAMING };
        self.producers.writing.store(next, Ordering::Relaxed);
    }

    /// Writes a record at `at` (a ring position) and returns the position after it.
    fn write_record<B: RingBytes + ?Sized>(
        &self,
        bytes: &B,
        at: u64,
        header: RecordHeader,
        parts: &[&[u8]],
    ) -> Result<u64, ChannelError> {
        self.write_wrapping(bytes, at, &header.encode())?;
        let mut position = at + HEADER_LEN;
        for part in parts {
            self.write_wrapping(bytes, position, part)?;
            position += part.len() as u64;
        }
        Ok(at + record::record_size(u64::from(header.len)))
    }

    fn write_wrapping<B: RingBytes + ?Sized>(
        &self,
        bytes: &B,
        at: u64,
        src: &[u8],
    ) -> Result<(), ChannelError> {
        let capacity = self.capacity();
        let offset = at % capacity;
        let first = (capacity - offset).min(src.len() as u64) as usize;
        bytes.write(offset, &src[..first])?;
        if first < src.len() {
            bytes.write(0, &src[first..])?;
        }
        Ok(())
    }

    /// Streams a message larger than half the ring in chunks, holding the put lock.
    fn put_streamed<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        parts: &[&[u8]],
        total: u64,
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        if total > record::MAX_MESSAGE {
            return Err(ChannelError::Corrupt("message longer than 1 TiB"));
        }
        match self.lock_producers(env, deadline, keep_waiting)? {
            Wait::Done(()) => {}
            other => return Ok(other),
        }
        let result = self.stream_locked(env, parts, total, limits, deadline, keep_waiting);
        // Release: a reader that sees the owner gone also sees the stream's last tail.
        self.producers.stream_owner.store(0, Ordering::Release);
        self.unlock_producers(env)?;
        result
    }

    fn stream_locked<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        parts: &[&[u8]],
        total: u64,
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, ChannelError>
    where
        B: RingBytes + ?Sized,
        W: Waiter + ?Sized,
        L: Liveness + ?Sized,
    {
        // Chunks of a quarter ring let the producer fill one part while a consumer drains
        // another; an abort record's room is always kept free.
        let chunk_payload = self.capacity() / 4 - HEADER_LEN;
        let abort_room = record::record_size(0);
        let mut cursor = Cursor::new(parts);
        let mut sent = 0u64;
        self.producers.stream_owner.store(env.me, Ordering::Relaxed);
        while sent < total {
            let len = chunk_payload.min(total - sent);
            let size = record::record_size(len);
            // Once the first chunk is out the message must end properly, so the wait for
            // room goes on through deadlines, and a stop request becomes an abort.
            let max_messages = if sent == 0 { limits.max_messages } else { 0 };
            while !self.has_room(size + abort_room, u64::from(sent == 0), max_messages) {
                let outcome = self.wait_for_room(
                    env,
                    size + abort_room,
                    u64::from(sent == 0),
                    max_messages,
                    deadline,
                    keep_waiting,
                );
                match outcome {
                    Wait::Done(()) => {}
                    other if sent == 0 => return Ok(other),
                    other => {
                        self.write_abort(env)?;
                        self.announce_put(env, usize::MAX);
                        return Ok(other);
                    }
                }
            }
            let mut flags = 0;
            if sent == 0 {
                flags |= FIRST;
            }
            if sent + len == total {
                flags |= LAST;
            }
            let tail = self.producers.tail.load(Ordering::Relaxed);
            let chunk = cursor.take(len);
            let header = RecordHeader {
                len: len as u32,
                flags,
                total,
            };
            if sent == 0 {
                self.begin_write(tail + size);
            } else {
                self.producers
                    .pending_tail
                    .store(tail + size, Ordering::Relaxed);
            }
            let end = self.write_record(env.bytes, tail, header, &chunk)?;
            self.commit(end, flags & LAST != 0, limits);
            sent += len;
            self.announce_put(env, usize::MAX);
        }
        Ok(Wait::Done(()))
    }

    fn write_abort<B, W, L>(&self, env: Env<'_, B, W, L>) -> Result<(), ChannelError>
    where
        B: RingBytes + ?Sized,
        W: ?Sized,
        L: ?Sized,
    {
        let tail = self.producers.tail.load(Ordering::Relaxed);
        let header = RecordHeader {
            len: 0,
            flags: ABORT,
            total: 0,
        };
        let end = self.write_record(env.bytes, tail, header, &[])?;
        self.producers.tail.store(end, Ordering::Release);
        self.producers.writing.store(IDLE, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `bytes` more bytes and `messages` more messages fit now.
    fn has_room(&self, bytes: u64, messages: u64, max_messages: u64) -> bool {
        let head = self.consumers.head.load(Ordering::Acquire);
        let tail = self.producers.tail.load(Ordering::Acquire);
        let free = self.capacity() - tail.wrapping_sub(head).min(self.capacity());
        let under_limit = max_messages == 0
            || self.shared.messages.load(Ordering::Acquire) + messages <= max_messages;
        free >= bytes && under_limit
    }

    /// Bumps the put sequence and wakes up to `messages` sleeping consumers (stream
    /// chunks wake them all: only the one gathering the stream can use a chunk, and a
    /// wake-up given to another would leave it asleep until its slice ends).
    fn announce_put<B: ?Sized, W: Waiter + ?Sized, L: ?Sized>(
        &self,
        env: Env<'_, B, W, L>,
        messages: usize,
    ) {
        self.producers.put_seq.fetch_add(1, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.producers.consumers_sleeping.load(Ordering::Relaxed) > 0 {
            let count = u32::try_from(messages).unwrap_or(u32::MAX);
            env.waiter.wake(&self.producers.put_seq, count);
        }
    }

    fn wait_for_room<B, W, L>(
        &self,
        env: Env<'_, B, W, L>,
        bytes: u64,
        messages: u64,
        max_messages: u64,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Wait<()>
    where
        W: Waiter + ?Sized,
        B: ?Sized,
        L: ?Sized,
    {
        sleep_until(
            env.waiter,
            &self.consumers.get_seq,
            &self.consumers.producers_sleeping,
            || self.has_room(bytes, messages, max_messages),
            deadline,
            keep_waiting,
        )
    }

    fn lock_producers<B, W, L>(
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
        let acquired = lock_sliced(&self.producers.lock, env, deadline, keep_waiting)?;
        if acquired == Wait::Done(true) {
            self.repair_after_dead_producer();
        }
        Ok(acquired.map(drop))
    }

    /// The put lock was taken over from a dead holder: count what it lost and undo its
    /// share of the counters if it never published.
    fn repair_after_dead_producer(&self) {
        let published = self.producers.tail.load(Ordering::Acquire)
            == self.producers.pending_tail.load(Ordering::Relaxed);
        // Readers count a stream that tore after its first chunk was published.
        let streaming = self.producers.stream_owner.load(Ordering::Relaxed) != 0;
        match self.producers.writing.load(Ordering::Relaxed) {
            COPYING => {
                self.shared.lost.fetch_add(1, Ordering::Relaxed);
            }
            COUNTED if !published => {
                if !streaming {
                    self.shared.lost.fetch_add(1, Ordering::Relaxed);
                }
                super::consume::saturating_sub(&self.shared.messages, 1);
                if self.producers.pending_tasks.load(Ordering::Relaxed) != 0 {
                    self.task_done_quietly();
                }
            }
            // A published write, or a torn stream: readers count the latter.
            _ => {}
        }
        self.producers.writing.store(IDLE, Ordering::Relaxed);
        self.producers.stream_owner.store(0, Ordering::Relaxed);
    }

    fn unlock_producers<B, W, L>(&self, env: Env<'_, B, W, L>) -> Result<(), ChannelError>
    where
        W: Waiter + ?Sized,
        B: ?Sized,
        L: ?Sized,
    {
        Ok(self.producers.lock.release(env.waiter)?)
    }
}

/// Walks the concatenation of several byte slices in order, a chunk at a time.
struct Cursor<'a> {
    parts: &'a [&'a [u8]],
    index: usize,
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn new(parts: &'a [&'a [u8]]) -> Self {
        Self {
            parts,
            index: 0,
            offset: 0,
        }
    }

    /// The next `len` bytes, as slices of the parts.
    fn take(&mut self, len: u64) -> Vec<&'a [u8]> {
        let mut left = len as usize;
        let mut pieces = Vec::new();
        while left > 0 {
            let Some(part) = self.parts.get(self.index) else {
                break;
            };
            let available = part.len() - self.offset;
            let n = available.min(left);
            pieces.push(&part[self.offset..self.offset + n]);
            left -= n;
            self.offset += n;
            if self.offset == part.len() {
                self.index += 1;
                self.offset = 0;
            }
        }
        pieces
    }
}
