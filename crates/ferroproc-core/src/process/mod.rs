//! Launching, watching and stopping processes.
//!
//! Every child is known by a *pidfd* (Linux 5.3+): a file descriptor that becomes readable
//! when the process exits. It is the sentinel handed to `select`/`poll`, the handle that
//! `wait` blocks on (no polling loop, no `SIGCHLD` handler), and the target of signals
//! (`pidfd_send_signal`, which cannot hit a recycled pid).
//!
//! Three ways to start a child, as in Python's `multiprocessing`:
//! - [`fork`]: `fork(2)` with caller-supplied hooks around it (the Python bindings run the
//!   interpreter's `PyOS_BeforeFork`/`AfterFork_*` there, exactly as `os.fork` does).
//! - [`SpawnCommand`]: `posix_spawn(3)` of a fresh program that inherits only the
//!   descriptors it is given, plus an optional [`Bootstrap`] payload in a sealed memfd.
//! - [`forkserver`]: a long-lived server process that forks children on request; requests
//!   carry descriptors over a Unix socket (`SCM_RIGHTS`).
//!
//! A child that must not outlive its parent calls [`ParentLink::die_with_parent`]: a
//! thread waits on the parent's pidfd and kills the process when the parent is gone, even
//! if the parent was `SIGKILL`ed, whichever thread started the child.

mod bootstrap;
mod child;
pub mod cpus;
mod deadline;
mod error;
mod fork;
pub mod forkserver;
mod lifeline;
mod spawn;
mod status;

pub use bootstrap::Bootstrap;
pub use child::Child;
pub use cpus::usable_cpus;
pub use error::ProcessError;
pub use fork::{fork, ForkHooks, Forked};
pub use lifeline::ParentLink;
pub use spawn::SpawnCommand;
pub use status::ExitStatus;

/// Result type of this module.
pub type Result<T, E = ProcessError> = std::result::Result<T, E>;
