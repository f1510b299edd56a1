//! The parent's book-keeping: which tasks wait, which worker holds which, and what
//! happens to them when a result comes back or a worker dies.
//!
//! Everything here runs under the engine's one mutex; the channel puts it makes never
//! wait (a full inbox just keeps the task pending), so no thread holds the mutex while
//! blocked on another process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::job::{Job, Outcome};
use super::payload::Payload;
use super::wire::{TaskHeader, TaskKind};
use super::{PoolConfig, WorkerProcess, WorkerSlots};
use crate::channel::{Channel, PutLimits, Wait};
use crate::process::ExitStatus;

/// How many function definitions a worker keeps. The worker evicts the oldest beyond
/// this, and the parent mirrors its cache, so both agree on what it knows.
pub const FUNCTIONS_PER_WORKER: usize = 128;

/// Tasks with a mean run time above this get no task queued behind them in a worker:
/// waiting for the parent to hand over the next one costs less than unbalanced queues.
const LONG_TASK: Duration = Duration::from_millis(1);
/// Tasks above this get one queued behind them; shorter ones up to [`SHORT_TASK_DEPTH`].
const MEDIUM_TASK: Duration = Duration::from_micros(100);
const SHORT_TASK_DEPTH: usize = 16;

/// Something the Python side (or any embedder) must act on, from
/// [`Engine::next_event`](super::Engine::next_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job created with `notify` became ready.
    JobReady(u64),
    /// A worker exited; `replace` says whether the pool wants a new one in its slot.
    WorkerExited {
        /// The worker's slot.
        slot: usize,
        /// Its process id.
        pid: i32,
        /// How it ended.
        status: ExitStatus,
        /// Whether to start a replacement.
        replace: bool,
        /// Whether it had started any task (a worker that exits before its first task
        /// failed to start: its initializer raised, say).
        started: bool,
    },
    /// The pool is closed or terminated, every task is settled and every worker gone.
    Finished,
}

#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) job: Arc<Job>,
    pub(crate) index: usize,
    pub(crate) tag: u8,
    pub(crate) function: u64,
    pub(crate) payload: Payload,
    pub(crate) retries_left: u32,
}

pub(crate) struct Worker {
    pub(crate) generation: u64,
    pub(crate) pid: i32,
    pub(crate) inbox: Arc<Channel>,
    pub(crate) process: Box<dyn WorkerProcess>,
    pub(crate) sentinel: Arc<OwnedFd>,
    /// Tickets sent to this worker without a result yet, in the order sent.
    pub(crate) outstanding: VecDeque<u64>,
    pub(crate) dispatched: u64,
    known: VecDeque<u64>,
    known_set: HashSet<u64>,
    /// No more tasks go to it (it reached its task limit, or was told to stop).
    pub(crate) retiring: bool,
    /// The supervisor saw it exit and reported it.
    pub(crate) exit_reported: bool,
    /// The ticket it was killed for overrunning.
    pub(crate) killed_for: Option<u64>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("generation", &self.generation)
            .field("pid", &self.pid)
            .field("outstanding", &self.outstanding.len())
            .field("retiring", &self.retiring)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn new(
        generation: u64,
        inbox: Arc<Channel>,
        process: Box<dyn WorkerProcess>,
        sentinel: OwnedFd,
    ) -> Self {
        Self {
            generation,
            pid: process.pid(),
            inbox,
            process,
            sentinel: Arc::new(sentinel),
            outstanding: VecDeque::new(),
            dispatched: 0,
            known: VecDeque::new(),
            known_set: HashSet::new(),
            retiring: false,
            exit_reported: false,
            killed_for: None,
        }
    }

    /// Notes that the worker is being sent `function`'s definition, evicting as it will.
    fn learn(&mut self, function: u64) {
        self.known.push_back(function);
        self.known_set.insert(function);
        if self.known.len() > FUNCTIONS_PER_WORKER {
            if let Some(old) = self.known.pop_front() {
                self.known_set.remove(&old);
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_ticket: u64,
    pub(crate) next_job: u64,
    pub(crate) next_generation: u64,
    pub(crate) tickets: HashMap<u64, Ticket>,
    pub(crate) pending: VecDeque<u64>,
    pub(crate) workers: Vec<Option<Worker>>,
    pub(crate) functions: HashMap<u64, Arc<[u8]>>,
    pub(crate) closed: bool,
    pub(crate) terminated: bool,
    pub(crate) finished: bool,
    /// The engine's threads are stopping.
    pub(crate) shutting_down: bool,
    /// Why the embedder gave up on the pool (see [`Engine::break_with`]).
    pub(crate) broken: Option<String>,
    /// Mean task run time, an exponentially weighted average in nanoseconds.
    mean_run_ns: Option<f64>,
    pub(crate) events: VecDeque<Event>,
}

impl State {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            next_ticket: 1,
            next_job: 1,
            next_generation: 1,
            workers: (0..slots).map(|_| None).collect(),
            ..Self::default()
        }
    }

    /// How many tasks a worker may hold at once (one running, the rest queued).
    fn depth(&self) -> usize {
        match self.mean_run_ns {
            None => 2,
            Some(ns) if ns > LONG_TASK.as_nanos() as f64 => 1,
            Some(ns) if ns > MEDIUM_TASK.as_nanos() as f64 => 2,
            Some(_) => SHORT_TASK_DEPTH,
        }
    }

    fn note_run_time(&mut self, run_ns: u64) {
        let sample = run_ns as f64;
        self.mean_run_ns = Some(match self.mean_run_ns {
            None => sample,
            Some(mean) => mean * 0.8 + sample * 0.2,
        });
    }

    /// Queues tasks of `job` with these payloads.
    pub(crate) fn submit(
        &mut self,
        job: &Arc<Job>,
        function: u64,
        tag: u8,
        payloads: Vec<Payload>,
        retries: u32,
    ) {
        let first = job.add_tasks(payloads.len());
        for (offset, payload) in payloads.into_iter().enumerate() {
            let ticket = self.next_ticket;
            self.next_ticket += 1;
            if let Payload::File(file) = &payload {
                let header = TaskHeader {
                    kind: TaskKind::Run,
                    tag,
                    ticket,
                    function,
                    definition_len: 0,
                };
                if file.seal(header).is_err() {
                    // Cannot happen for a file we created ourselves; fail just this task.
                    job.finish(first + offset, Outcome::Cancelled);
                    continue;
                }
            }
            self.tickets.insert(
                ticket,
                Ticket {
                    job: Arc::clone(job),
                    index: first + offset,
                    tag,
                    function,
                    payload,
                    retries_left: retries,
                },
            );
            self.pending.push_back(ticket);
        }
    }

    /// Hands pending tasks to workers with room, least loaded first.
    pub(crate) fn dispatch(&mut self, config: &PoolConfig, me: u32) {
        let depth = config
            .max_held
            .map_or(self.depth(), |max| self.depth().min(max.max(1)));
        let mut full: Vec<bool> = vec![false; self.workers.len()];
        while let Some(&ticket) = self.pending.front() {
            let Some(slot) = self.least_loaded(depth, &full) else {
                break;
            };
            self.pending.pop_front();
            if self.send(slot, ticket, config, me) {
                continue;
            }
            self.pending.push_front(ticket);
            full[slot] = true;
        }
        self.stop_idle_workers(me);
    }

    fn least_loaded(&self, depth: usize, full: &[bool]) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(slot, worker)| Some((slot, worker.as_ref()?)))
            .filter(|(slot, worker)| {
                !full[*slot]
                    && !worker.retiring
                    && !worker.exit_reported
                    && worker.outstanding.len() < depth
            })
            .min_by_key(|(_, worker)| worker.outstanding.len())
            .map(|(slot, _)| slot)
    }

    /// Puts `ticket` in `slot`'s inbox without waiting; false if the inbox has no room or
    /// cannot take it.
    fn send(&mut self, slot: usize, ticket: u64, config: &PoolConfig, me: u32) -> bool {
        let Some(task) = self.tickets.get(&ticket) else {
            // Settled meanwhile (terminate): drop it.
            return true;
        };
        let Some(worker) = self.workers[slot].as_mut() else {
            return false;
        };
        let definition = if worker.known_set.contains(&task.function) {
            None
        } else {
            match self.functions.get(&task.function) {
                Some(definition) => Some(Arc::clone(definition)),
                None => {
                    // The embedder forgot a function a task still needs: fail the task.
                    let task = self.tickets.remove(&ticket).expect("looked up above");
                    task.job.finish(task.index, Outcome::Cancelled);
                    return true;
                }
            }
        };
        let function = task.function;
        let now = Some(Instant::now());
        let limits = PutLimits::default();
        let sent = match &task.payload {
            Payload::Inline(payload) => {
                let header = TaskHeader {
                    kind: TaskKind::Run,
                    tag: task.tag,
                    ticket,
                    function,
                    definition_len: definition.as_ref().map_or(0, |d| d.len() as u32),
                }
                .encode();
                let mut parts: Vec<&[u8]> = vec![&header];
                if let Some(definition) = &definition {
                    parts.push(definition);
                }
                parts.push(payload);
                worker.inbox.put(me, &parts, limits, now, &mut || false)
            }
            Payload::File(file) => {
                // A file carries no definition: the worker learns it from a message ahead.
                if let Some(definition) = &definition {
                    let header = TaskHeader {
                        kind: TaskKind::Define,
                        tag: 0,
                        ticket: 0,
                        function,
                        definition_len: definition.len() as u32,
                    }
                    .encode();
                    let parts: [&[u8]; 2] = [&header, definition];
                    match worker.inbox.put(me, &parts, limits, now, &mut || false) {
                        Ok(Wait::Done(())) => worker.learn(function),
                        Ok(_) | Err(_) => return false,
                    }
                }
                worker
                    .inbox
                    .put_file(me, file.file(), file.len(), limits, now, &mut || false)
            }
        };
        match sent {
            Ok(Wait::Done(())) => {}
            Ok(_) | Err(_) => return false,
        }
        if definition.is_some() && matches!(task.payload, Payload::Inline(_)) {
            worker.learn(function);
        }
        worker.outstanding.push_back(ticket);
        worker.dispatched += 1;
        if config
            .max_tasks_per_worker
            .is_some_and(|max| worker.dispatched >= max)
        {
            worker.retiring = true;
        }
        true
    }

    /// Once the pool is closed and every task is settled, tells each worker to exit.
    fn stop_idle_workers(&mut self, me: u32) {
        if !self.closed || !self.tickets.is_empty() {
            return;
        }
        let stop = TaskHeader {
            kind: TaskKind::Stop,
            tag: 0,
            ticket: 0,
            function: 0,
            definition_len: 0,
        }
        .encode();
        for worker in self.workers.iter_mut().flatten() {
            if worker.retiring && !worker.outstanding.is_empty() {
                continue;
            }
            if !worker.exit_reported && !worker.retiring {
                let now = Some(Instant::now());
                let _ = worker
                    .inbox
                    .put(me, &[&stop], PutLimits::default(), now, &mut || false);
            }
            worker.retiring = true;
        }
        self.check_finished();
    }

    /// Records a task's result.
    pub(crate) fn task_settled(&mut self, slot: usize, ticket: u64, run_ns: u64, outcome: Outcome) {
        if let Some(worker) = self.workers.get_mut(slot).and_then(Option::as_mut) {
            if let Some(position) = worker.outstanding.iter().position(|&t| t == ticket) {
                worker.outstanding.remove(position);
            }
        }
        self.note_run_time(run_ns);
        if let Some(task) = self.tickets.remove(&ticket) {
            self.finish(task, outcome);
        }
    }

    fn finish(&mut self, task: Ticket, outcome: Outcome) {
        if task.job.finish(task.index, outcome) && task.job.notifies() {
            self.events.push_back(Event::JobReady(task.job.id()));
        }
    }

    /// Settles what a dead worker held: the tasks it started fail (or are retried), the
    /// ones queued behind them go back to the front of the queue.
    pub(crate) fn worker_exited(
        &mut self,
        slot: usize,
        generation: u64,
        status: ExitStatus,
        slots: &WorkerSlots,
        config: &PoolConfig,
    ) {
        // A late report about a worker that was already replaced must not remove its
        // successor.
        let Some(entry) = self.workers.get_mut(slot) else {
            return;
        };
        if entry.as_ref().is_none_or(|w| w.generation != generation) {
            return;
        }
        let Some(worker) = entry.take() else {
            return;
        };
        let started = slots.read(slot).map(|s| s.ticket).unwrap_or(0);
        let started_any = started != 0;
        let ran = worker
            .outstanding
            .iter()
            .position(|&t| t == started)
            .map_or(0, |position| position + 1);
        let mut outstanding = worker.outstanding;
        let never_started: Vec<u64> = outstanding.split_off(ran).into();
        for ticket in never_started.into_iter().rev() {
            if self.tickets.contains_key(&ticket) {
                self.pending.push_front(ticket);
            }
        }
        let mut retried = Vec::new();
        for ticket in outstanding {
            let Some(mut task) = self.tickets.remove(&ticket) else {
                continue;
            };
            if worker.killed_for == Some(ticket) {
                let timeout = config.task_timeout.unwrap_or_default();
                self.finish(
                    task,
                    Outcome::TimedOut {
                        pid: worker.pid,
                        timeout,
                    },
                );
            } else if task.retries_left > 0 && !self.terminated {
                task.retries_left -= 1;
                self.tickets.insert(ticket, task);
                retried.push(ticket);
            } else {
                self.finish(
                    task,
                    Outcome::WorkerLost {
                        pid: worker.pid,
                        status,
                    },
                );
            }
        }
        for ticket in retried.into_iter().rev() {
            self.pending.push_front(ticket);
        }
        let replace = !(self.terminated || self.closed && self.tickets.is_empty());
        self.events.push_back(Event::WorkerExited {
            slot,
            pid: worker.pid,
            status,
            replace,
            started: started_any,
        });
        self.check_finished();
    }

    /// Cancels the tasks of job `id` that no worker has been given yet; returns how many.
    pub(crate) fn cancel_pending(&mut self, id: u64) -> usize {
        let tickets = &self.tickets;
        let (cancelled, kept): (Vec<u64>, Vec<u64>) = self
            .pending
            .iter()
            .partition(|ticket| tickets.get(ticket).is_some_and(|t| t.job.id() == id));
        self.pending = kept.into();
        for ticket in &cancelled {
            if let Some(task) = self.tickets.remove(ticket) {
                self.finish(task, Outcome::Cancelled);
            }
        }
        cancelled.len()
    }

    /// Cancels every task not yet settled (terminate).
    pub(crate) fn cancel_all(&mut self) {
        self.pending.clear();
        let tickets: Vec<u64> = self.tickets.keys().copied().collect();
        for ticket in tickets {
            if let Some(task) = self.tickets.remove(&ticket) {
                self.finish(task, Outcome::Cancelled);
            }
        }
        for worker in self.workers.iter_mut().flatten() {
            worker.outstanding.clear();
            worker.retiring = true;
        }
    }

    /// Emits [`Event::Finished`] once closed, settled and without workers.
    pub(crate) fn check_finished(&mut self) {
        let settled = self.terminated || self.tickets.is_empty();
        if self.closed && settled && !self.finished && self.workers.iter().all(Option::is_none) {
            self.finished = true;
            self.events.push_back(Event::Finished);
        }
    }
}
