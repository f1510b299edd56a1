//! [`WorkerLink`]: a worker process's side of the pool.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use super::payload::{read_file_header, Received, ReceivedSink};
use super::wire::{ResultHeader, ResultKind, TaskHeader, TaskKind, RESULT_HEADER_LEN};
use super::{PoolError, WorkerSlots};
use crate::channel::{Channel, PutLimits, Wait};

/// A task as a worker receives it.
#[derive(Debug)]
pub struct Task {
    header: TaskHeader,
    body: TaskBody,
}

/// Where a task's bytes are.
#[derive(Debug)]
pub enum TaskBody {
    /// The whole message (header, definition, payload), copied out of the ring.
    Bytes(Vec<u8>),
    /// A sealed file holding the header and the payload (from byte
    /// [`TASK_HEADER_LEN`](super::wire::TASK_HEADER_LEN) on), to map rather than copy.
    File {
        /// The file.
        file: OwnedFd,
        /// Its length.
        len: u64,
    },
}

impl Task {
    /// Its header.
    pub fn header(&self) -> TaskHeader {
        self.header
    }

    /// Where its bytes are.
    pub fn body(&self) -> &TaskBody {
        &self.body
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let TaskBody::Bytes(message) = &self.body else {
            return (&[], &[]);
        };
        let start = super::wire::TASK_HEADER_LEN;
        let definition_end = start + self.header.definition_len as usize;
        (&message[start..definition_end], &message[definition_end..])
    }

    /// The function's definition, when the pool sent it with this task (empty otherwise).
    pub fn definition(&self) -> &[u8] {
        self.split().0
    }

    /// The task's payload when it came as bytes (empty for a file).
    pub fn payload(&self) -> &[u8] {
        self.split().1
    }
}

/// From this size on, a value goes back to the parent as a file of its own, which the
/// parent maps instead of copying out of the ring and again into Python.
pub const FILE_VALUE_MIN: usize = 256 << 10;

/// What a worker reports about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The payload is the task's value.
    Returned,
    /// The payload is the exception it raised.
    Raised,
}

/// A worker's ends of its pool: its own inbox, the shared result channel, and its slot.
#[derive(Debug)]
pub struct WorkerLink {
    inbox: Arc<Channel>,
    results: Arc<Channel>,
    slots: WorkerSlots,
    slot: usize,
    me: u32,
}

impl WorkerLink {
    /// The link of the worker in `slot`, whose process id is `me`.
    pub fn new(
        inbox: Arc<Channel>,
        results: Arc<Channel>,
        slots: WorkerSlots,
        slot: usize,
        me: u32,
    ) -> Result<Self, PoolError> {
        if slot >= slots.len() {
            return Err(PoolError::NoSuchSlot(slot));
        }
        Ok(Self {
            inbox,
            results,
            slots,
            slot,
            me,
        })
    }

    /// The worker's slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// Waits for the next message in the inbox. A task to run is recorded in the slot as
    /// started before it is returned, so the parent knows the worker holds it from here.
    pub fn next_task(
        &self,
        deadline: Option<Instant>,
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<Task>, PoolError> {
        let mut sink = ReceivedSink::default();
        match self
            .inbox
            .get_many_into(self.me, 1, &mut sink, deadline, keep_waiting)?
        {
            Wait::Done(_) => {}
            Wait::TimedOut => return Ok(Wait::TimedOut),
            Wait::Stopped => return Ok(Wait::Stopped),
        }
        let (header, body) = match sink.0.pop() {
            Some(Received::Bytes(message)) => {
                let (header, _, _) = TaskHeader::decode(&message)?;
                (header, TaskBody::Bytes(message))
            }
            Some(Received::File(file)) => {
                let (header, len) = read_file_header(file.as_fd())?;
                (header, TaskBody::File { file, len })
            }
            None => return Ok(Wait::TimedOut),
        };
        if header.kind == TaskKind::Run {
            self.slots.start(self.slot, header.ticket)?;
        }
        Ok(Wait::Done(Task { header, body }))
    }

    /// Sends how the task `ticket` ended; `parts` make up the payload. Waits only while
    /// the result channel is full.
    pub fn report(
        &self,
        ticket: u64,
        report: Report,
        run_ns: u64,
        parts: &[&[u8]],
        keep_waiting: &mut dyn FnMut() -> bool,
    ) -> Result<Wait<()>, PoolError> {
        let header = ResultHeader {
            kind: match report {
                Report::Returned => ResultKind::Returned,
                Report::Raised => ResultKind::Raised,
            },
            slot: self.slot as u32,
            ticket,
            run_ns,
        }
        .encode();
        let mut message: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        message.push(&header);
        message.extend_from_slice(parts);
        let total: usize = parts.iter().map(|part| part.len()).sum();
        if total >= FILE_VALUE_MIN {
            // A large value goes as a sealed file the parent maps instead of copying.
            let file = self.results.spill().prepare(&message)?;
            let len = (RESULT_HEADER_LEN + total) as u64;
            return Ok(self.results.put_file(
                self.me,
                &file,
                len,
                PutLimits::default(),
                None,
                keep_waiting,
            )?);
        }
        Ok(self
            .results
            .put(self.me, &message, PutLimits::default(), None, keep_waiting)?)
    }
}
