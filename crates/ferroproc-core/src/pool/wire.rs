//! The headers of the messages between a pool and its workers.
//!
//! A task travels from the parent to one worker's inbox as a [`TaskHeader`], the
//! definition of the function it calls when that worker has not seen it yet, and the
//! task's payload. A result travels back on the shared result channel as a
//! [`ResultHeader`] and its payload. Payloads are opaque here: the binding encodes them.
//! All integers are little-endian; the layout is private to one pool, so it can change
//! between versions.

use super::PoolError;

/// The length of a [`TaskHeader`] on the wire.
pub const TASK_HEADER_LEN: usize = 24;
/// The length of a [`ResultHeader`] on the wire.
pub const RESULT_HEADER_LEN: usize = 24;

/// What a message in a worker's inbox asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Run a task.
    Run,
    /// Exit once the tasks before this message are done.
    Stop,
    /// Learn the function `function`, whose definition follows (sent ahead of a task
    /// whose payload travels as a file, which carries no definition of its own).
    Define,
}

/// The header of a message in a worker's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskHeader {
    /// What the worker should do.
    pub kind: TaskKind,
    /// A byte the embedder chose for the task (what kind of call it is).
    pub tag: u8,
    /// The task's ticket, echoed in its result.
    pub ticket: u64,
    /// The function the task calls, as a token the pool chose.
    pub function: u64,
    /// The length of the function's definition that follows the header (0 when the
    /// worker already knows the token).
    pub definition_len: u32,
}

impl TaskHeader {
    /// The header on the wire.
    pub fn encode(self) -> [u8; TASK_HEADER_LEN] {
        let mut out = [0u8; TASK_HEADER_LEN];
        out[0] = match self.kind {
            TaskKind::Run => 1,
            TaskKind::Stop => 2,
            TaskKind::Define => 3,
        };
        out[1] = self.tag;
        out[4..8].copy_from_slice(&self.definition_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.ticket.to_le_bytes());
        out[16..24].copy_from_slice(&self.function.to_le_bytes());
        out
    }

    /// Reads the header at the start of `message`; the rest is returned as
    /// (definition, payload).
    pub fn decode(message: &[u8]) -> Result<(Self, &[u8], &[u8]), PoolError> {
        let header = message
            .get(..TASK_HEADER_LEN)
            .ok_or(PoolError::Corrupt("a task shorter than its header"))?;
        let kind = match header[0] {
            1 => TaskKind::Run,
            2 => TaskKind::Stop,
            3 => TaskKind::Define,
            _ => return Err(PoolError::Corrupt("a task of an unknown kind")),
        };
        let definition_len = u32::from_le_bytes(take(header, 4));
        let rest = &message[TASK_HEADER_LEN..];
        if definition_len as usize > rest.len() {
            return Err(PoolError::Corrupt(
                "a function definition longer than its task",
            ));
        }
        let (definition, payload) = rest.split_at(definition_len as usize);
        Ok((
            Self {
                kind,
                tag: header[1],
                ticket: u64::from_le_bytes(take(header, 8)),
                function: u64::from_le_bytes(take(header, 16)),
                definition_len,
            },
            definition,
            payload,
        ))
    }
}

/// What a message on the result channel reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// A task returned; the payload is its value.
    Returned,
    /// A task raised; the payload is the encoded exception.
    Raised,
    /// The supervisor saw a worker exit; `ticket` holds the worker's generation and
    /// `run_ns` its return code (exit code, or the negated signal number).
    WorkerExited,
    /// The pool is shutting down: the collector stops reading.
    Shutdown,
}

/// The header of a message on the result channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultHeader {
    /// What happened.
    pub kind: ResultKind,
    /// The worker's slot in the pool.
    pub slot: u32,
    /// The task's ticket (for [`ResultKind::WorkerExited`], the worker's generation).
    pub ticket: u64,
    /// How long the task ran, in nanoseconds (see [`ResultKind::WorkerExited`]).
    pub run_ns: u64,
}

impl ResultHeader {
    /// The header on the wire.
    pub fn encode(self) -> [u8; RESULT_HEADER_LEN] {
        let mut out = [0u8; RESULT_HEADER_LEN];
        out[0] = match self.kind {
            ResultKind::Returned => 1,
            ResultKind::Raised => 2,
            ResultKind::WorkerExited => 3,
            ResultKind::Shutdown => 4,
        };
        out[4..8].copy_from_slice(&self.slot.to_le_bytes());
        out[8..16].copy_from_slice(&self.ticket.to_le_bytes());
        out[16..24].copy_from_slice(&self.run_ns.to_le_bytes());
        out
    }

    /// Reads the header at the start of `message`; the rest is the payload.
    pub fn decode(message: &[u8]) -> Result<(Self, &[u8]), PoolError> {
        let header = message
            .get(..RESULT_HEADER_LEN)
            .ok_or(PoolError::Corrupt("a result shorter than its header"))?;
        let kind = match header[0] {
            1 => ResultKind::Returned,
            2 => ResultKind::Raised,
            3 => ResultKind::WorkerExited,
            4 => ResultKind::Shutdown,
            _ => return Err(PoolError::Corrupt("a result of an unknown kind")),
        };
        Ok((
            Self {
                kind,
                slot: u32::from_le_bytes(take(header, 4)),
                ticket: u64::from_le_bytes(take(header, 8)),
                run_ns: u64::from_le_bytes(take(header, 16)),
            },
            &message[RESULT_HEADER_LEN..],
        ))
    }
}

fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_headers_round_trip_with_their_definition() {
        let header = TaskHeader {
            kind: TaskKind::Run,
            tag: 2,
            ticket: 7,
            function: 3,
            definition_len: 2,
        };
        let message = [&header.encode()[..], b"fn", b"args"].concat();
        let (decoded, definition, payload) = TaskHeader::decode(&message).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(definition, b"fn");
        assert_eq!(payload, b"args");
    }

    #[test]
    fn result_headers_round_trip() {
        let header = ResultHeader {
            kind: ResultKind::Raised,
            slot: 1,
            ticket: u64::MAX,
            run_ns: 12,
        };
        let message = [&header.encode()[..], b"exc"].concat();
        assert_eq!(
            ResultHeader::decode(&message).unwrap(),
            (header, &b"exc"[..])
        );
    }

    #[test]
    fn damaged_messages_are_refused() {
        assert!(TaskHeader::decode(&[1; 10]).is_err());
        let mut bad_kind = TaskHeader {
            kind: TaskKind::Stop,
            tag: 0,
            ticket: 0,
            function: 0,
            definition_len: 0,
        }
        .encode();
        bad_kind[0] = 9;
        assert!(TaskHeader::decode(&bad_kind).is_err());
        let mut too_long = bad_kind;
        too_long[0] = 1;
        too_long[4] = 200;
        assert!(TaskHeader::decode(&too_long).is_err());
        assert!(ResultHeader::decode(&[0; RESULT_HEADER_LEN]).is_err());
    }
}
