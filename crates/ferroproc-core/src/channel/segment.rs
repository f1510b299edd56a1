//! [`Channel`]: a [`Ring`] in an anonymous shared-memory segment, on futexes, with a
//! [`SpillSocket`] for messages larger than half the ring.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Instant;

use super::{ChannelError, Env, MessageSink, PutLimits, Ring, RingBytes, SpillSocket, Wait};
use crate::futex::FutexWaiter;
use crate::shm::{Backing, Segment, ShmError, Source, Tag};
use crate::sync::ProcessLiveness;

/// A ring's size when the caller does not choose: 8 MiB of address space, of which the
/// kernel backs only the pages messages have touched.
pub const DEFAULT_CAPACITY: u64 = 8 << 20;

/// Where the ring's bytes start in the segment's data: after the control block, on a
/// cache line of their own.
const DATA_OFFSET: usize = 256;
const _: () = assert!(std::mem::size_of::<Ring>() <= DATA_OFFSET);

/// A multi-producer multi-consumer message queue in shared memory.
///
/// Create it in one process, pass its three descriptors ([`fd`](Self::fd) and the spill
/// socket's two ends) to others (inherited over `fork`, or sent with a child's start-up)
/// and [`attach`](Self::attach) there. Every operation takes the caller's process id
/// (`me`), which the robust locks record.
///
/// A message larger than half the ring does not go through it: it is written to a memfd
/// of its own and passed over the spill socket (see [`SpillSocket`]), so `put` never needs
/// a reader to make progress and what it put survives the producer.
#[derive(Debug)]
pub struct Channel {
    segment: Segment,
    spill: SpillSocket,
}

/// The ring's bytes inside the segment.
struct SegmentBytes<'a>(&'a Segment);

impl RingBytes for SegmentBytes<'_> {
    fn write(&self, offset: u64, src: &[u8]) -> Result<(), ChannelError> {
        Ok(self.0.copy_in(DATA_OFFSET + offset as usize, src)?)
    }

    fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), ChannelError> {
        Ok(self.0.copy_out(DATA_OFFSET + offset as usize, dst)?)
    }
}

impl Channel {
    /// What channel segments are tagged with.
    pub const TAG: Tag = Tag::new(*b"chan");

    /// Creates an empty channel whose ring holds `capacity` bytes (a multiple of 16,
    /// between [`MIN_CAPACITY`](super::MIN_CAPACITY) and [`MAX_CAPACITY`](super::MAX_CAPACITY)).
    pub fn create(capacity: u64) -> Result<Self, ChannelError> {
        Ring::check_capacity(capacity)?;
        let size = DATA_OFFSET + capacity as usize;
        let segment = Segment::create(Backing::Anonymous, size, Self::TAG)?;
        segment.get::<Ring>(0)?.init(capacity)?;
        Ok(Self {
            segment,
            spill: SpillSocket::new()?,
        })
    }

    /// Attaches the channel whose segment `fd` refers to, after checking the segment's
    /// header and that the ring it describes fits in it; `spill` is its spill socket's
    /// (sender, receiver) ends.
    pub fn attach(fd: BorrowedFd<'_>, spill: (OwnedFd, OwnedFd)) -> Result<Self, ChannelError> {
        let segment = Segment::attach(Source::Fd(fd), Self::TAG)?;
        let capacity = segment.get::<Ring>(0)?.capacity();
        Ring::check_capacity(capacity)?;
        if DATA_OFFSET as u64 + capacity > segment.len() as u64 {
            return Err(ShmError::InvalidSize {
                size: capacity,
                reason: "the ring claims more bytes than its segment has",
            }
            .into());
        }
        Ok(Self {
            segment,
            spill: SpillSocket::from_fds(spill.0, spill.1),
        })
    }

    /// Allocates every page of the ring now. A fresh ring's pages are allocated by the
    /// kernel as messages first touch them, which on a small VM costs about 0.7 ms per MB
    /// inside the first puts; a process that expects traffic can pay it up front instead
    /// (a pool worker does, for its inbox, while it starts).
    pub fn prefault(&self) -> Result<(), ChannelError> {
        crate::sys::memfd::allocate(self.segment.fd(), self.segment.len() as u64)
            .map_err(|e| ShmError::os("fallocate")(e).into())
    }

    /// The spill socket (its descriptors go wherever the channel goes).
    pub fn spill(&self) -> &SpillSocket {
        &self.spill
    }

    /// The segment's descriptor, to pass to other processes.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// The ring's control block (counters and queries).
    pub fn ring(&self) -> &Ring {
        // Checked at creation and attach: the control block is in bounds and aligned.
        self.segment
            .get::<Ring>(0)
            .expect("the control block was checked when the channel was opened")
    }

    fn env<'a>(
        &self,
        bytes: &'a SegmentBytes<'a>,
        me: u32,
    ) -> Env<'a, SegmentBytes<'a>, FutexWaiter, ProcessLiveness> {
        Env {
            bytes,
            waiter: &FutexWaiter,
            liveness: &ProcessLiveness,
            me,
        }
    }

    /// Puts one message made of `parts`; see [`Ring::put`].
    pub fn put(
        &self,
        me: u32,
        parts: &[&[u8]],
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, ChannelError> {
        let bytes = SegmentBytes(&self.segment);
        let ring = self.ring();
        let total: u64 = parts.iter().map(|part| part.len() as u64).sum();
        if total <= ring.max_record_payload() {
            return ring.put(self.env(&bytes, me), parts, limits, deadline, keep_waiting);
        }
        let memfd = self.spill.prepare(parts)?;
        ring.put_spilled(
            self.env(&bytes, me),
            total,
            limits,
            deadline,
            keep_waiting,
            &mut |number| self.spill.send(number, &memfd),
        )
    }

    /// Puts a message that is already in a sealed memfd (see
    /// [`SpillSocket::prepare`]): it is passed over the spill socket as it is, so a large
    /// message costs no copy here, and can be put again (into another channel) after.
    /// Readers that [want files](super::MessageSink::wants_files) receive the file itself.
    pub fn put_file(
        &self,
        me: u32,
        file: &OwnedFd,
        len: u64,
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, ChannelError> {
        let bytes = SegmentBytes(&self.segment);
        self.ring().put_spilled(
            self.env(&bytes, me),
            len,
            limits,
            deadline,
            keep_waiting,
            &mut |number| self.spill.send(number, file),
        )
    }

    /// Puts several messages in order: runs of ring-sized ones under one lock each (see
    /// [`Ring::put_many`]), larger ones spilled one by one. Returns how many were put
    /// before the deadline or a stop.
    pub fn put_many(
        &self,
        me: u32,
        messages: &[&[u8]],
        limits: PutLimits,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<(usize, Wait<()>), ChannelError> {
        let bytes = SegmentBytes(&self.segment);
        let ring = self.ring();
        let fits = |message: &&&[u8]| message.len() as u64 <= ring.max_record_payload();
        let mut sent = 0;
        while sent < messages.len() {
            let rest = &messages[sent..];
            let run = rest.iter().take_while(&fits).count();
            if run == 0 {
                match self.put(me, &[rest[0]], limits, deadline, keep_waiting)? {
                    Wait::Done(()) => sent += 1,
                    other => return Ok((sent, other)),
                }
                continue;
            }
            let env = self.env(&bytes, me);
            let (count, outcome) =
                ring.put_many(env, &rest[..run], limits, deadline, keep_waiting)?;
            sent += count;
            if outcome != Wait::Done(()) {
                return Ok((sent, outcome));
            }
        }
        Ok((sent, Wait::Done(())))
    }

    /// Gets one message; see [`Ring::get`].
    pub fn get(
        &self,
        me: u32,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<Vec<u8>>, ChannelError> {
        let mut out = Vec::with_capacity(1);
        let got = self.get_many(me, 1, &mut out, deadline, keep_waiting)?;
        Ok(got.map(|_| out.pop().unwrap_or_default()))
    }

    /// Gets up to `max` messages; see [`Ring::get_many`].
    pub fn get_many(
        &self,
        me: u32,
        max: usize,
        out: &mut Vec<Vec<u8>>,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<usize>, ChannelError> {
        self.get_many_into(me, max, out, deadline, keep_waiting)
    }

    /// [`get_many`](Self::get_many) into any [`MessageSink`].
    pub fn get_many_into(
        &self,
        me: u32,
        max: usize,
        sink: &mut dyn MessageSink,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<usize>, ChannelError> {
        let bytes = SegmentBytes(&self.segment);
        self.ring().get_many_with(
            self.env(&bytes, me),
            Some(&self.spill),
            max,
            sink,
            deadline,
            keep_waiting,
        )
    }

    /// Waits until there is something to get, without getting it; see
    /// [`Ring::wait_for_messages`].
    pub fn wait_for_messages(
        &self,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Wait<()> {
        self.ring()
            .wait_for_messages(&FutexWaiter, deadline, keep_waiting)
    }

    /// Marks one task done; see [`Ring::task_done`].
    pub fn task_done(&self) -> Result<(), ChannelError> {
        self.ring().task_done(&FutexWaiter)
    }

    /// Waits until every task is done; see [`Ring::join_tasks`].
    pub fn join_tasks(
        &self,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Wait<()> {
        self.ring().join_tasks(&FutexWaiter, deadline, keep_waiting)
    }
}
