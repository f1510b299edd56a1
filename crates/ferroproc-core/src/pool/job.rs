//! [`Job`]: the results of one call into the pool (`apply_async`, `map_async`, `imap`),
//! and the waits on them.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::process::ExitStatus;

/// A task's encoded value, as its worker sent it.
#[derive(Debug, Clone)]
pub enum Value {
    /// The bytes.
    Bytes(Vec<u8>),
    /// A sealed file holding them from `offset` on (a large value: the reader maps it).
    File {
        /// The file.
        file: Arc<OwnedFd>,
        /// Where the value starts in it.
        offset: u64,
        /// The file's length.
        len: u64,
    },
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

/// Files are equal when they are the same open file.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Bytes(a), Self::Bytes(b)) => a == b,
            (Self::File { file: a, .. }, Self::File { file: b, .. }) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Value {}

/// How one task of a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The task returned; its encoded value.
    Returned(Value),
    /// The task raised; the encoded exception.
    Raised(Vec<u8>),
    /// The worker running the task died.
    WorkerLost {
        /// The worker's process id.
        pid: i32,
        /// How it ended.
        status: ExitStatus,
    },
    /// The task ran past the pool's task timeout, so its worker was killed.
    TimedOut {
        /// The killed worker's process id.
        pid: i32,
        /// The timeout it overran.
        timeout: Duration,
    },
    /// The pool was terminated before the task finished.
    Cancelled,
}

impl Outcome {
    /// Whether the task returned normally.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Returned(_))
    }
}

#[derive(Debug, Default)]
struct JobState {
    /// How many tasks the job has, once all are submitted.
    total: Option<usize>,
    submitted: usize,
    finished: usize,
    /// Finished outcomes nobody has taken yet, by task index.
    outcomes: HashMap<usize, Outcome>,
    /// Finished indices in the order they finished, for unordered iteration.
    completion_order: VecDeque<usize>,
    /// The next index ordered iteration yields.
    next_ordered: usize,
    /// How many outcomes iteration has yielded.
    consumed: usize,
    /// The first task to fail, in the order they finished.
    first_failure: Option<usize>,
}

/// The tasks of one call and how they ended.
///
/// Tasks are numbered from 0 in submission order. The pool's collector records outcomes
/// as workers report them; callers wait for all of them ([`wait_ready`](Self::wait_ready)
/// and [`take_all`](Self::take_all)), or iterate in order or as they finish.
#[derive(Debug)]
pub struct Job {
    id: u64,
    fail_fast: bool,
    notify: bool,
    state: Mutex<JobState>,
    changed: Condvar,
}

/// What [`Job::take_all`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Gathered {
    /// Every task returned: their values, in task order.
    AllReturned(Vec<Value>),
    /// A task failed: the first failure (an outcome other than `Returned`).
    Failed(Outcome),
}

impl Job {
    /// A job with no tasks yet. With `fail_fast`, the job is ready as soon as one task
    /// fails (the stdlib's `map_async`), without waiting for the rest. With `notify`, the
    /// pool reports the moment it becomes ready as an event (for callbacks).
    pub fn new(id: u64, fail_fast: bool, notify: bool) -> Self {
        Self {
            id,
            fail_fast,
            notify,
            state: Mutex::new(JobState::default()),
            changed: Condvar::new(),
        }
    }

    /// The job's number in its pool.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the pool reports this job's readiness as an event.
    pub fn notifies(&self) -> bool {
        self.notify
    }

    fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that `count` more tasks were submitted; returns the index of the first.
    pub(crate) fn add_tasks(&self, count: usize) -> usize {
        let mut state = self.lock();
        let first = state.submitted;
        state.submitted += count;
        first
    }

    /// Declares that no more tasks will be submitted; returns true if this made the job
    /// ready (a job whose tasks all finished already, or that has none). A job created
    /// with `notify` must be sealed through [`Engine::seal`](super::Engine::seal), which
    /// reports that.
    pub fn seal(&self) -> bool {
        let mut state = self.lock();
        let was_ready = self.ready_locked(&state);
        state.total = Some(state.submitted);
        let now_ready = self.ready_locked(&state);
        drop(state);
        self.changed.notify_all();
        now_ready && !was_ready
    }

    /// How many tasks were submitted so far.
    pub fn submitted(&self) -> usize {
        self.lock().submitted
    }

    /// How many tasks have finished, however they ended.
    pub fn finished(&self) -> usize {
        self.lock().finished
    }

    /// Records how task `index` ended. Returns true if this made the job ready.
    pub(crate) fn finish(&self, index: usize, outcome: Outcome) -> bool {
        let mut state = self.lock();
        let was_ready = self.ready_locked(&state);
        if !outcome.is_success() && state.first_failure.is_none() {
            state.first_failure = Some(index);
        }
        if state.outcomes.insert(index, outcome).is_none() {
            state.finished += 1;
            state.completion_order.push_back(index);
        }
        let now_ready = self.ready_locked(&state);
        drop(state);
        self.changed.notify_all();
        now_ready && !was_ready
    }

    fn ready_locked(&self, state: &JobState) -> bool {
        let all_done = state.total.is_some_and(|total| state.finished >= total);
        all_done || (self.fail_fast && state.first_failure.is_some())
    }

    /// Whether every task has finished (or, for a fail-fast job, one failed).
    pub fn is_ready(&self) -> bool {
        self.ready_locked(&self.lock())
    }

    /// Waits until [`is_ready`](Self::is_ready) or `deadline`; returns readiness.
    pub fn wait_ready(&self, deadline: Option<Instant>) -> bool {
        let state = self.wait_while(deadline, |job, state| !job.ready_locked(state));
        self.ready_locked(&state)
    }

    /// The outcomes of a ready job: all values in order, or the first failure. The values
    /// are moved out; call it once.
    pub fn take_all(&self) -> Option<Gathered> {
        let mut state = self.lock();
        if !self.ready_locked(&state) {
            return None;
        }
        if let Some(index) = state.first_failure {
            let failure = state
                .outcomes
                .get(&index)
                .cloned()
                .unwrap_or(Outcome::Cancelled);
            return Some(Gathered::Failed(failure));
        }
        let total = state.total.unwrap_or(state.finished);
        let mut values = Vec::with_capacity(total);
        for index in 0..total {
            match state.outcomes.remove(&index) {
                Some(Outcome::Returned(value)) => values.push(value),
                Some(other) => return Some(Gathered::Failed(other)),
                None => return Some(Gathered::Failed(Outcome::Cancelled)),
            }
        }
        Some(Gathered::AllReturned(values))
    }

    /// The next outcome in task order, waiting for it until `deadline`. `Ok(None)` once
    /// every task has been yielded; `Err(())` at the deadline.
    #[allow(clippy::result_unit_err)]
    pub fn next_ordered(&self, deadline: Option<Instant>) -> Result<Option<Outcome>, ()> {
        let mut state = self.wait_while(deadline, |_, state| {
            !state.outcomes.contains_key(&state.next_ordered)
                && !exhausted(state, state.next_ordered)
        });
        let index = state.next_ordered;
        if let Some(outcome) = state.outcomes.remove(&index) {
            state.next_ordered += 1;
            state.consumed += 1;
            drop(state);
            self.changed.notify_all();
            return Ok(Some(outcome));
        }
        if exhausted(&state, index) {
            Ok(None)
        } else {
            Err(())
        }
    }

    /// The next outcome in the order tasks finished, with its index, waiting until
    /// `deadline`. `Ok(None)` once every task has been yielded; `Err(())` at the deadline.
    #[allow(clippy::result_unit_err)]
    pub fn next_finished(&self, deadline: Option<Instant>) -> Result<Option<(usize, Outcome)>, ()> {
        let mut state = self.wait_while(deadline, |_, state| {
            state.completion_order.is_empty() && !exhausted(state, state.consumed)
        });
        while let Some(index) = state.completion_order.pop_front() {
            if let Some(outcome) = state.outcomes.remove(&index) {
                state.consumed += 1;
                drop(state);
                self.changed.notify_all();
                return Ok(Some((index, outcome)));
            }
        }
        if exhausted(&state, state.consumed) {
            Ok(None)
        } else {
            Err(())
        }
    }

    /// Waits until fewer than `limit` tasks are submitted but unfinished (or, with
    /// `count_unconsumed`, submitted but not yet yielded by iteration). Returns whether
    /// there is room.
    pub fn wait_for_room(
        &self,
        limit: usize,
        count_unconsumed: bool,
        deadline: Option<Instant>,
    ) -> bool {
        let busy = |state: &JobState| {
            let done = if count_unconsumed {
                state.consumed
            } else {
                state.finished
            };
            state.submitted.saturating_sub(done) >= limit.max(1)
        };
        let state = self.wait_while(deadline, |_, state| busy(state));
        !busy(&state)
    }

    fn wait_while(
        &self,
        deadline: Option<Instant>,
        mut blocked: impl FnMut(&Self, &JobState) -> bool,
    ) -> MutexGuard<'_, JobState> {
        let mut state = self.lock();
        while blocked(self, &state) {
            match deadline {
                None => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    state = self
                        .changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        state
    }
}

/// Whether iteration that has reached `position` has yielded every task.
fn exhausted(state: &JobState, position: usize) -> bool {
    state.total.is_some_and(|total| position >= total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn returned(byte: u8) -> Outcome {
        Outcome::Returned(vec![byte].into())
    }

    #[test]
    fn a_job_is_ready_when_every_task_finished_and_it_is_sealed() {
        let job = Job::new(1, true, false);
        job.add_tasks(2);
        assert!(!job.finish(1, returned(1)));
        assert!(!job.finish(0, returned(0)));
        assert!(!job.is_ready());
        job.seal();
        assert!(job.wait_ready(Some(Instant::now())));
        assert_eq!(
            job.take_all(),
            Some(Gathered::AllReturned(vec![vec![0].into(), vec![1].into()]))
        );
    }

    #[test]
    fn fail_fast_jobs_are_ready_at_the_first_failure() {
        let job = Job::new(1, true, false);
        job.add_tasks(3);
        job.seal();
        assert!(job.finish(2, Outcome::Cancelled));
        assert_eq!(job.take_all(), Some(Gathered::Failed(Outcome::Cancelled)));
        let patient = Job::new(2, false, false);
        patient.add_tasks(2);
        patient.seal();
        assert!(!patient.finish(0, Outcome::Cancelled));
        assert!(patient.finish(1, returned(1)));
    }

    #[test]
    fn iteration_yields_in_order_or_as_finished() {
        let job = Job::new(1, false, false);
        job.add_tasks(3);
        job.finish(2, returned(2));
        job.finish(0, returned(0));
        assert_eq!(
            job.next_ordered(Some(Instant::now())),
            Ok(Some(returned(0)))
        );
        assert_eq!(job.next_ordered(Some(Instant::now())), Err(()));
        job.finish(1, returned(1));
        job.seal();
        assert_eq!(job.next_ordered(None), Ok(Some(returned(1))));
        assert_eq!(job.next_ordered(None), Ok(Some(returned(2))));
        assert_eq!(job.next_ordered(None), Ok(None));

        let unordered = Job::new(2, false, false);
        unordered.add_tasks(2);
        unordered.finish(1, returned(1));
        assert_eq!(unordered.next_finished(None), Ok(Some((1, returned(1)))));
        unordered.finish(0, returned(0));
        unordered.seal();
        assert_eq!(unordered.next_finished(None), Ok(Some((0, returned(0)))));
        assert_eq!(unordered.next_finished(None), Ok(None));
    }

    #[test]
    fn room_counts_unfinished_or_unconsumed_tasks() {
        let job = Job::new(1, false, false);
        job.add_tasks(2);
        assert!(!job.wait_for_room(2, false, Some(Instant::now())));
        job.finish(0, returned(0));
        assert!(job.wait_for_room(2, false, Some(Instant::now())));
        assert!(!job.wait_for_room(2, true, Some(Instant::now())));
        assert_eq!(job.next_ordered(None), Ok(Some(returned(0))));
        assert!(job.wait_for_room(2, true, Some(Instant::now())));
    }
}
