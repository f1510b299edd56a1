//! Process-shared synchronisation primitives, robust to the death of a holder.
//!
//! Each primitive is a `#[repr(C)]` struct of atomics ([`ShmSafe`](crate::shm::ShmSafe))
//! meant to be placed in a shared-memory segment, and each algorithm takes its
//! [`Waiter`](crate::futex::Waiter) as a parameter so the same code runs on futexes in
//! production and under loom in `tests/loom_*.rs`. Whether a process is still alive is
//! asked through [`Liveness`], so models can kill holders too.

mod barrier;
mod condition;
mod error;
mod event;
mod liveness;
mod lock;
mod rlock;
mod semaphore;

pub use barrier::{Arrival, BarrierTicket, RawBarrier, Release, LIVENESS_PERIOD, MAX_PARTIES};
pub use condition::{CondWait, ConditionLock, RawCondition, Sleep, DEFAULT_SLOTS};
pub use error::SyncError;
pub use event::RawEvent;
pub use liveness::{AlwaysAlive, Liveness, ProcessLiveness};
pub(crate) use lock::deadline_passed;
pub use lock::{Acquire, RawLock, OWNER_CHECK_INTERVAL};
pub use rlock::{Owner, RawRLock};
pub use semaphore::{RawSemaphore, SEM_VALUE_MAX};
