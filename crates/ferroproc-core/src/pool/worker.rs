//! [`WorkerLink`]: a worker process's side of the pool.

use std::sync::Arc;
use std::time::Instant;

use super::wire::{ResultHeader, ResultKind, TaskHeader, TaskKind};
use super::{PoolError, WorkerSlots};
use crate::channel::{Channel, PutLimits, Wait};

/// A task as a worker receives it.
#[derive(Debug)]
pub struct Task {
    header: TaskHeader,
    message: Vec<u8>,
}

impl Task {
    /// Its header.
    pub fn header(&self) -> TaskHeader {
        self.header
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let start = super::wire::TASK_HEADER_LEN;
        let definition_end = start + self.header.definition_len as usize;
        (
            &self.message[start..definition_end],
            &self.message[definition_end..],
        )
    }

    /// The function's definition, when the pool sent it with this task (empty otherwise).
    pub fn definition(&self) -> &[u8] {
        self.split().0
    }

    /// The task's payload.
    pub fn payload(&self) -> &[u8] {
        self.split().1
    }
}

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
        let message = match self.inbox.get(self.me, deadline, keep_waiting)? {
            Wait::Done(message) => message,
            Wait::TimedOut => return Ok(Wait::TimedOut),
            Wait::Stopped => return Ok(Wait::Stopped),
        };
        let (header, _, _) = TaskHeader::decode(&message)?;
        if header.kind == TaskKind::Run {
            self.slots.start(self.slot, header.ticket)?;
        }
        Ok(Wait::Done(Task { header, message }))
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
        Ok(self
            .results
            .put(self.me, &message, PutLimits::default(), None, keep_waiting)?)
    }
}
