//! `_core.Channel`: the shared-memory message queue behind `Queue`, `SimpleQueue` and
//! `JoinableQueue`.
//!
//! Objects cross as messages of the [`codec`](crate::codec): common scalars natively,
//! everything else pickled by the Python callables the queue registers with
//! [`PyChannel::set_codec`]. Every operation first tries once with the GIL held and
//! without waiting (the common case: room to put, a message to get); only when it would
//! have to wait does it release the GIL, and then it waits in slices, running Python's
//! signal handlers between them, so Ctrl-C interrupts a blocked `get`.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ferroproc_core::channel::record::{record_size, SPILL_NUMBER_LEN};
use ferroproc_core::channel::{
    Channel, ChannelError, Fill, MessageSink, PutLimits, Wait, DEFAULT_CAPACITY,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList};

use crate::blocking::deadline_after;
use crate::codec::{decode, Encoded, BYTES};
use crate::errors::OrRaise;
use crate::fd::PyFd;
use crate::identity::me_pid;
use crate::overflow::{Backlog, Overflow};

mod queue_exceptions {
    pyo3::import_exception!(queue, Empty);
    pyo3::import_exception!(queue, Full);
}
use queue_exceptions::{Empty, Full};

/// A message taken out of the ring: a `bytes` object already in its final form, or the
/// raw message, decoded once the queue's lock is released (unpickling runs Python code).
enum Taken<'py> {
    Bytes(Bound<'py, PyBytes>),
    Raw(Vec<u8>),
}

/// Where the bindings take messages to: a `bytes` message goes straight into a new
/// `bytes` object (one copy out of the ring, no intermediate buffer: for 1 MiB messages
/// the second copy and its page faults were a third of the reader's time); anything else
/// into a buffer decoded afterwards.
struct PySink<'py> {
    py: Python<'py>,
    taken: Vec<Taken<'py>>,
    /// Why the sink refused a message (a `MemoryError`), to raise instead of the core's.
    error: Option<PyErr>,
}

impl<'py> PySink<'py> {
    fn new(py: Python<'py>) -> Self {
        Self {
            py,
            taken: Vec::new(),
            error: None,
        }
    }
}

impl MessageSink for PySink<'_> {
    fn take(&mut self, len: usize, first: u8, fill: &mut Fill<'_>) -> Result<(), ChannelError> {
        if first != BYTES || len == 0 {
            let mut message = vec![0u8; len];
            fill(0, &mut message)?;
            self.taken.push(Taken::Raw(message));
            return Ok(());
        }
        let mut failed = None;
        let made = PyBytes::new_with(self.py, len - 1, |room| {
            failed = fill(1, room).err();
            Ok(())
        });
        match (made, failed) {
            (Ok(_), Some(error)) => Err(error),
            (Ok(bytes), None) => {
                self.taken.push(Taken::Bytes(bytes));
                Ok(())
            }
            (Err(error), _) => {
                self.error = Some(error);
                Err(ChannelError::Refused { len })
            }
        }
    }
}

/// The Python callables that pickle what the native codec cannot carry.
struct Codec {
    /// `dumps(obj) -> (pickle, [buffers])`: the pickle and its out-of-band buffers.
    dumps: Py<PyAny>,
    /// `loads(data, buffers) -> obj`.
    loads: Py<PyAny>,
}

/// A shared-memory queue of Python objects (see `ferroproc.queues`).
#[pyclass(module = "ferroproc._core", name = "Channel", frozen)]
pub struct PyChannel {
    channel: Arc<Channel>,
    limits: PutLimits,
    codec: PyOnceLock<Codec>,
    overflow: Mutex<Option<Overflow>>,
    /// Whether an overflow thread was ever started, so `put` skips the mutex until then.
    overflowed_ever: AtomicBool,
}

impl std::fmt::Debug for PyChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyChannel")
            .field("channel", &self.channel)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PyChannel {
    fn wrap(channel: Channel, maxsize: u64, track_tasks: bool) -> Self {
        Self {
            channel: Arc::new(channel),
            limits: PutLimits {
                max_messages: maxsize,
                track_tasks,
            },
            codec: PyOnceLock::new(),
            overflow: Mutex::new(None),
            overflowed_ever: AtomicBool::new(false),
        }
    }

    /// The channel itself, for the pool engine.
    pub(crate) fn shared(&self) -> Arc<Channel> {
        Arc::clone(&self.channel)
    }

    fn codec(&self, py: Python<'_>) -> PyResult<&Codec> {
        self.codec
            .get(py)
            .ok_or_else(|| PyValueError::new_err("set_codec() was not called on this channel"))
    }

    /// Runs `op` once without waiting; if it would wait and `block` says so, again with
    /// the GIL released until `deadline`, checking for signals between slices.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        block: bool,
        deadline: Option<Instant>,
        op: impl Fn(Option<Instant>, &mut dyn FnMut() -> bool) -> Result<Wait<T>, ChannelError> + Sync,
    ) -> PyResult<Option<T>> {
        self.run_with(py, true, block, deadline, op)
    }

    /// [`run`](Self::run), skipping the attempt with the GIL held when `try_first` is false
    /// (for work too long to do while holding it, such as spilling a large message).
    fn run_with<T: Send>(
        &self,
        py: Python<'_>,
        try_first: bool,
        block: bool,
        deadline: Option<Instant>,
        op: impl Fn(Option<Instant>, &mut dyn FnMut() -> bool) -> Result<Wait<T>, ChannelError> + Sync,
    ) -> PyResult<Option<T>> {
        if try_first || !block {
            let now = Some(Instant::now());
            match op(now, &mut || false).or_raise()? {
                Wait::Done(value) => return Ok(Some(value)),
                Wait::TimedOut | Wait::Stopped if !block => return Ok(None),
                Wait::TimedOut | Wait::Stopped => {}
            }
        }
        let mut interrupted: Option<PyErr> = None;
        let outcome = py.detach(|| {
            let mut keep_waiting = || {
                Python::attach(|py| match py.check_signals() {
                    Ok(()) => true,
                    Err(err) => {
                        interrupted = Some(err);
                        false
                    }
                })
            };
            op(deadline, &mut keep_waiting)
        });
        if let Some(err) = interrupted {
            return Err(err);
        }
        match outcome.or_raise()? {
            Wait::Done(value) => Ok(Some(value)),
            Wait::TimedOut | Wait::Stopped => Ok(None),
        }
    }

    /// This process's overflow backlog, if messages are waiting in it.
    fn pending_overflow(&self) -> Option<Arc<Backlog>> {
        if !self.overflowed_ever.load(Ordering::Relaxed) {
            return None;
        }
        let overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        overflow
            .as_ref()
            .filter(|overflow| overflow.belongs_to(me_pid()) && overflow.backlog().pending() > 0)
            .map(|overflow| Arc::clone(overflow.backlog()))
    }

    /// Whether a put that found no room should wait: only for `maxsize`, never for bytes
    /// on an unbounded queue (see `overflow.rs`).
    fn full_by_count(&self) -> bool {
        let max = self.limits.max_messages;
        max > 0 && self.channel.ring().len() >= max
    }

    /// Hands `message` to this process's overflow thread, starting it if needed.
    fn overflow(&self, message: Vec<u8>) -> PyResult<()> {
        let mut overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        let me = me_pid();
        if !overflow
            .as_ref()
            .is_some_and(|overflow| overflow.belongs_to(me))
        {
            let started = Overflow::start(Arc::clone(&self.channel), self.limits, me)
                .map_err(|err| PyOSError::new_err(format!("cannot start a thread: {err}")))?;
            *overflow = Some(started);
            self.overflowed_ever.store(true, Ordering::Relaxed);
        }
        let handed = overflow
            .as_ref()
            .is_some_and(|overflow| overflow.hand_over(message));
        if handed {
            Ok(())
        } else {
            Err(PyOSError::new_err(
                "the queue's overflow thread has stopped",
            ))
        }
    }

    /// Takes up to `max` messages (at least one, waiting for it when `block`), with the
    /// GIL held while they are copied out, so each lands once, in its final home
    /// ([`PySink`]); `None` if none came by the deadline. Waits happen with the GIL
    /// released, and so does a take that has to wait for another reader's lock.
    fn take<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
        max: usize,
    ) -> PyResult<Option<Vec<Taken<'py>>>> {
        let me = me_pid();
        let deadline = deadline(block, timeout)?;
        loop {
            let mut sink = PySink::new(py);
            let now = Some(Instant::now());
            match self
                .channel
                .get_many_into(me, max, &mut sink, now, &mut || false)
            {
                Ok(Wait::Done(count)) if count > 0 => return Ok(Some(sink.taken)),
                Ok(_) => {}
                Err(error) => {
                    return match sink.error.take() {
                        Some(refusal) => Err(refusal),
                        None => Err(error).or_raise(),
                    };
                }
            }
            if !block || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(None);
            }
            if !self.channel.ring().is_empty() {
                // Messages are there, but another reader holds the lock: wait for it
                // without the GIL (the messages then go through a plain buffer).
                let got = self.run_with(py, false, true, deadline, |deadline, keep_waiting| {
                    let mut out = Vec::new();
                    let got = self
                        .channel
                        .get_many(me, max, &mut out, deadline, keep_waiting)?;
                    Ok(got.map(|_| out))
                })?;
                return Ok(got.map(|messages| messages.into_iter().map(Taken::Raw).collect()));
            }
            let arrived = self.run_with(py, false, true, deadline, |deadline, keep_waiting| {
                Ok(self.channel.wait_for_messages(deadline, keep_waiting))
            })?;
            if arrived.is_none() {
                return Ok(None);
            }
        }
    }

    /// The object a taken message stands for.
    fn finish(&self, py: Python<'_>, message: Taken<'_>) -> PyResult<Py<PyAny>> {
        match message {
            Taken::Bytes(bytes) => Ok(bytes.into_any().unbind()),
            Taken::Raw(message) => self.decode_message(py, message),
        }
    }

    fn decode_message(&self, py: Python<'_>, message: Vec<u8>) -> PyResult<Py<PyAny>> {
        decode(py, &message, |data, buffers| {
            self.codec(py)?.loads.call1(py, (data, buffers))
        })
    }
}

fn deadline(block: bool, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    if block {
        deadline_after(timeout)
    } else {
        Ok(Some(Instant::now()))
    }
}

#[pymethods]
impl PyChannel {
    /// Creates a channel whose ring holds `capacity` bytes.
    #[new]
    #[pyo3(signature = (capacity = DEFAULT_CAPACITY, maxsize = 0, track_tasks = false))]
    fn new(capacity: u64, maxsize: u64, track_tasks: bool) -> PyResult<Self> {
        Ok(Self::wrap(
            Channel::create(capacity).or_raise()?,
            maxsize,
            track_tasks,
        ))
    }

    /// Attaches the channel whose segment descriptor is `fd`, with its spill socket's
    /// ends (the caller keeps all three descriptors).
    #[staticmethod]
    fn attach(
        fd: i32,
        spill_sender: i32,
        spill_receiver: i32,
        maxsize: u64,
        track_tasks: bool,
    ) -> PyResult<Self> {
        let segment = PyFd::new(fd)?;
        let own = |fd: i32| -> PyResult<std::os::fd::OwnedFd> {
            Ok(PyFd::new(fd)?.borrow().try_clone_to_owned()?)
        };
        let spill = (own(spill_sender)?, own(spill_receiver)?);
        Ok(Self::wrap(
            Channel::attach(segment.borrow(), spill).or_raise()?,
            maxsize,
            track_tasks,
        ))
    }

    /// Registers the pickling functions; once, before the first put or get.
    fn set_codec(&self, py: Python<'_>, dumps: Py<PyAny>, loads: Py<PyAny>) -> PyResult<()> {
        let _ = self.codec.get_or_init(py, || Codec { dumps, loads });
        Ok(())
    }

    /// The segment's descriptor (to pass to a child being started).
    #[getter]
    fn fd(&self) -> i32 {
        self.channel.fd().as_raw_fd()
    }

    /// The spill socket's (sender, receiver) descriptors (to pass along with `fd`).
    #[getter]
    fn spill_fds(&self) -> (i32, i32) {
        let spill = self.channel.spill();
        (
            spill.sender_fd().as_raw_fd(),
            spill.receiver_fd().as_raw_fd(),
        )
    }

    /// Puts `obj`. On a queue at `maxsize` it waits for room until the deadline (then
    /// `queue.Full`); when the ring is merely out of bytes, the message goes to this
    /// process's overflow thread instead, and the result is True (the caller arranges to
    /// wait for that thread at exit, as the stdlib waits for its feeder).
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let encoded = Encoded::new(obj, || Ok(self.codec(py)?.dumps.bind(py).clone()))?;
        let parts = encoded.parts();
        let len: u64 = parts.iter().map(|part| part.len() as u64).sum();
        let small = len <= self.channel.ring().max_record_payload();
        let me = me_pid();
        let limits = self.limits;
        let deadline = deadline(block, timeout)?;
        if self.pending_overflow().is_some() {
            self.overflow(encoded.to_vec())?;
            return Ok(true);
        }
        if small {
            // The common case: room in the ring, written with the GIL held, no wait.
            let now = Some(Instant::now());
            if let Wait::Done(()) = self
                .channel
                .put(me, &parts, limits, now, &mut || false)
                .or_raise()?
            {
                return Ok(false);
            }
        }
        // Overflow only when the ring has no bytes for this message (not when the lock was
        // merely busy, or the queue is at maxsize, where the stdlib blocks too).
        let ring = self.channel.ring();
        let needed = record_size(if small {
            len
        } else {
            u64::from(SPILL_NUMBER_LEN)
        });
        let out_of_bytes = ring.used_bytes() + needed > ring.capacity();
        if out_of_bytes && !self.full_by_count() {
            self.overflow(encoded.to_vec())?;
            return Ok(true);
        }
        if small && !block {
            return Err(Full::new_err(()));
        }
        // At maxsize (wait for room), or a large message to spill (without the GIL).
        let sent = self.run_with(py, false, block, deadline, |deadline, keep_waiting| {
            self.channel.put(me, &parts, limits, deadline, keep_waiting)
        })?;
        match sent {
            Some(()) => Ok(false),
            None => Err(Full::new_err(())),
        }
    }

    /// Waits until this process's overflow thread has written everything handed to it;
    /// False if `timeout` passed first.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let Some(backlog) = self.pending_overflow() else {
            return Ok(true);
        };
        let deadline = deadline_after(timeout)?;
        loop {
            let slice =
                crate::blocking::slice_end(deadline).saturating_duration_since(Instant::now());
            if py.detach(|| backlog.wait_drained(slice)) {
                return Ok(true);
            }
            py.check_signals()?;
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(false);
            }
        }
    }

    /// Whether this process has messages waiting in its overflow thread.
    #[getter]
    fn overflowing(&self) -> bool {
        self.pending_overflow().is_some()
    }

    /// Puts every object of `objs` in order; raises `queue.Full` (with the count put so
    /// far as its argument) if the deadline passes first (only at `maxsize`). True when
    /// some went to the overflow thread (see `put`).
    #[pyo3(signature = (objs, block = true, timeout = None))]
    fn put_many(
        &self,
        py: Python<'_>,
        objs: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let mut encoded = Vec::new();
        for obj in objs.try_iter()? {
            encoded.push(Encoded::new(&obj?, || {
                Ok(self.codec(py)?.dumps.bind(py).clone())
            })?);
        }
        let joined: Vec<Vec<u8>> = encoded.iter().map(Encoded::to_vec).collect();
        drop(encoded);
        let views: Vec<&[u8]> = joined.iter().map(Vec::as_slice).collect();
        let me = me_pid();
        let limits = self.limits;
        let deadline = deadline(block, timeout)?;
        let mut sent_total = 0usize;
        while sent_total < views.len() {
            if self.pending_overflow().is_some() {
                break;
            }
            let rest = &views[sent_total..];
            // Without waiting first, as in `put`.
            let now = Some(Instant::now());
            let (sent, _) = self
                .channel
                .put_many(me, rest, limits, now, &mut || false)
                .or_raise()?;
            sent_total += sent;
            let Some(next) = views.get(sent_total) else {
                break;
            };
            let ring = self.channel.ring();
            let out_of_bytes = ring.used_bytes() + record_size(next.len() as u64) > ring.capacity();
            if out_of_bytes && !self.full_by_count() {
                break;
            }
            if sent > 0 {
                continue;
            }
            if !block {
                return Err(Full::new_err((sent_total,)));
            }
            let rest = &views[sent_total..];
            let sent = self.run_with(py, false, block, deadline, |deadline, keep_waiting| {
                let (sent, outcome) =
                    self.channel
                        .put_many(me, rest, limits, deadline, keep_waiting)?;
                Ok(match outcome {
                    _ if sent > 0 => Wait::Done(sent),
                    Wait::Done(()) => Wait::Done(0),
                    Wait::TimedOut => Wait::TimedOut,
                    Wait::Stopped => Wait::Stopped,
                })
            })?;
            match sent {
                Some(count) => sent_total += count,
                None => return Err(Full::new_err((sent_total,))),
            }
        }
        // The ring is out of bytes (or this process already overflows): the rest follow
        // through the overflow thread.
        let overflowed = sent_total < joined.len();
        for message in joined.into_iter().skip(sent_total) {
            self.overflow(message)?;
        }
        Ok(overflowed)
    }

    /// Gets one object; raises `queue.Empty` if none came by the deadline.
    #[pyo3(signature = (block = true, timeout = None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let Some(taken) = self.take(py, block, timeout, 1)? else {
            return Err(Empty::new_err(()));
        };
        match taken.into_iter().next() {
            Some(message) => self.finish(py, message),
            None => Err(Empty::new_err(())),
        }
    }

    /// Gets at least one object (waiting like `get`), then all that are already there, up
    /// to `max_messages`.
    #[pyo3(signature = (block = true, timeout = None, max_messages = None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
        max_messages: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let max = max_messages.unwrap_or(usize::MAX);
        if max == 0 {
            return Err(PyValueError::new_err("max_messages must be at least 1"));
        }
        let Some(taken) = self.take(py, block, timeout, max)? else {
            return Err(Empty::new_err(()));
        };
        let list = PyList::empty(py);
        for message in taken {
            list.append(self.finish(py, message)?)?;
        }
        Ok(list)
    }

    /// Allocates every page of the ring now rather than at first use.
    fn prefault(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.channel.prefault()).or_raise()
    }

    /// Messages in the queue (approximate).
    fn qsize(&self) -> u64 {
        self.channel.ring().len()
    }

    /// Whether the queue holds nothing (a snapshot).
    fn empty(&self) -> bool {
        self.channel.ring().is_empty()
    }

    /// Messages lost to processes killed mid-operation, or to corrupt data.
    #[getter]
    fn lost(&self) -> u64 {
        self.channel.ring().lost()
    }

    /// The ring's size in bytes.
    #[getter]
    fn capacity(&self) -> u64 {
        self.channel.ring().capacity()
    }

    /// The `maxsize` this handle enforces (0: none).
    #[getter]
    fn maxsize(&self) -> u64 {
        self.limits.max_messages
    }

    /// Whether puts count as tasks (`JoinableQueue`).
    #[getter]
    fn track_tasks(&self) -> bool {
        self.limits.track_tasks
    }

    /// Tasks put and not yet done.
    #[getter]
    fn unfinished_tasks(&self) -> u64 {
        self.channel.ring().unfinished_tasks()
    }

    /// Marks one task done (`ValueError` if there is none).
    fn task_done(&self) -> PyResult<()> {
        self.channel.task_done().or_raise()
    }

    /// Waits until every task is done; False if `timeout` passed first.
    #[pyo3(signature = (timeout = None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline_after(timeout)?;
        let done = self.run(py, true, deadline, |deadline, keep_waiting| {
            Ok(self.channel.join_tasks(deadline, keep_waiting))
        })?;
        Ok(done.is_some())
    }

    fn __repr__(&self) -> String {
        format!(
            "<Channel capacity={} messages={} lost={}>",
            self.channel.ring().capacity(),
            self.channel.ring().len(),
            self.channel.ring().lost()
        )
    }
}
