//! The engine of ferroproc: everything that crosses a process boundary.
//!
//! `ferroproc-core` is pure Rust with no Python in it; the PyO3 bindings in
//! `ferroproc-py` are a thin layer over it, and Rust programs can use it directly.
//!
//! Modules:
//! - [`process`]: launching children (fork, spawn, fork server), reaping them, signalling
//!   them, the sentinels that say when they exit, and tying a child's life to its parent's.
//! - [`shm`]: shared-memory segments and what may be placed in them.
//! - [`futex`]: waiting on a word in shared memory, behind a trait so algorithms can be
//!   model-checked.
//! - [`connection`]: the stdlib's framed messages over sockets and pipes (`Connection`).
//! - [`channel`]: queues of byte messages in shared memory, robust to a process killed
//!   mid-operation (the engine of `Queue`).
//! - [`pool`]: the task engine of `Pool`: dispatch to worker processes, results, and
//!   supervision that fails only the tasks a dead worker held.
//! - [`sync`]: process-shared locks, semaphores, events, conditions and barriers that
//!   survive the death of a holder.
//!
//! Syscalls live in the private `sys` module, the only place where `unsafe` is allowed.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod primitive;
mod sys;

pub mod channel;
pub mod connection;
pub mod futex;
#[cfg(not(loom))]
pub mod pool;
pub mod process;
pub mod shm;
#[cfg(not(loom))]
pub mod store;
pub mod sync;
pub mod tracker;
