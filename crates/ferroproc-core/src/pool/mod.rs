//! The pool engine: tasks dispatched to worker processes over shared-memory channels,
//! results collected without the embedder's involvement, and workers supervised so that
//! a dead worker fails (or retries) exactly the tasks it held.
//!
//! The embedder (ferroproc's Python layer, or a Rust program) starts worker processes and
//! encodes payloads; the engine does the rest:
//! - [`Engine`] lives in the parent. Tasks are submitted in [`Job`]s; each worker has an
//!   inbox [`Channel`](crate::channel::Channel) of its own, filled a few tasks deep
//!   (deeper for short tasks), so the parent always knows which worker holds which task.
//! - [`WorkerLink`] lives in a worker: it takes tasks from the inbox, records each one as
//!   started in the shared [`WorkerSlots`] before running it, and reports results on the
//!   one result channel all workers share.
//! - When a worker exits, the engine's supervisor thread sees its pidfd become readable
//!   and posts the exit on the result channel, behind every result the worker sent. The
//!   collector then fails the task the worker had started (or queues it again if retries
//!   are left), puts the tasks queued behind it back at the front of the queue, and
//!   reports the exit so the embedder starts a replacement.
//! - With a task timeout, a worker whose task overruns is killed and the task fails with
//!   [`Outcome::TimedOut`]; with a task limit, a worker is given no more than that many
//!   tasks and exits after them.

mod engine;
mod error;
mod job;
mod payload;
mod slots;
mod state;
pub mod wire;
mod worker;

pub use engine::{Engine, PoolConfig, WorkerProcess};
pub use error::PoolError;
pub use job::{Gathered, Job, Outcome, Value};
pub use payload::{read_file_header, Payload, TaskFile};
pub use slots::{Started, WorkerSlots};
pub use state::{Event, FUNCTIONS_PER_WORKER};
pub use worker::{Report, Task, TaskBody, WorkerLink};
