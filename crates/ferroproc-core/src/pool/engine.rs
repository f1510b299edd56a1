//! [`Engine`]: the parent side of a pool, and its two threads.
//!
//! The collector thread reads the result channel, settles tasks in their [`Job`]s and
//! hands each worker its next task. The supervisor thread polls the workers' exit
//! descriptors (pidfds) and a wake-up eventfd: when a worker exits it reports the exit
//! *through the result channel*, behind every result the worker managed to send, so the
//! collector settles what the worker held knowing all it delivered. With a task timeout,
//! the supervisor also wakes on a tick to kill workers whose task ran too long.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::job::{Job, Outcome, Value};
use super::payload::{read_all, read_sealed_prefix, Payload, Received, ReceivedSink};
use super::state::{Event, State, Worker};
use super::wire::{ResultHeader, ResultKind, RESULT_HEADER_LEN};
use super::{PoolError, WorkerSlots};
use crate::channel::{Channel, PutLimits, Wait};
use crate::process::ExitStatus;
use crate::sys;

/// A pool's settings.
#[derive(Debug, Clone, Default)]
pub struct PoolConfig {
    /// How many worker slots the pool has.
    pub workers: usize,
    /// After this many tasks a worker exits and is replaced (`maxtasksperchild`).
    pub max_tasks_per_worker: Option<u64>,
    /// A task running longer has its worker killed and fails with a timeout.
    pub task_timeout: Option<Duration>,
    /// How often a task whose worker died is run again before it fails.
    pub retries: u32,
    /// The most tasks a worker holds at once, running and queued (`None`: as deep as
    /// suits the tasks' run time). A task in a worker's inbox can no longer be
    /// cancelled, so an executor that promises cancellation keeps this small.
    pub max_held: Option<usize>,
}

/// A worker process as the engine sees it; the embedder starts it.
pub trait WorkerProcess: Send {
    /// Its process id.
    fn pid(&self) -> i32;
    /// A new descriptor that polls readable once the process has exited.
    fn sentinel(&self) -> std::io::Result<OwnedFd>;
    /// Its exit status if it has exited (reaping it), without waiting.
    fn reap(&mut self) -> Option<ExitStatus>;
    /// Kills it (`SIGKILL`).
    fn kill(&self);
}

/// The longest the supervisor sleeps between timeout checks.
const TIMEOUT_TICK_MAX: Duration = Duration::from_millis(100);
/// How many results the collector takes per lock of the channel.
const RESULT_BATCH: usize = 256;

struct Shared {
    config: PoolConfig,
    me: u32,
    results: Arc<Channel>,
    slots: WorkerSlots,
    state: Mutex<State>,
    /// Signalled when events are queued or the pool changes for waiters.
    changed: Condvar,
    wake: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_supervisor(&self) {
        let _ = sys::wake::signal(self.wake.as_fd());
    }

    /// Puts a message of the parent's own on the result channel (behind everything the
    /// workers have put there).
    fn post(&self, header: ResultHeader) {
        let _ = self.results.put(
            self.me,
            &[&header.encode()],
            PutLimits::default(),
            None,
            &mut || true,
        );
    }
}

/// The parent side of a process pool: tasks, results and supervision of workers that the
/// embedder starts (see the module documentation of [`pool`](super)).
pub struct Engine {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the engine's threads. `results` is the channel every worker reports to;
    /// `me` is this process's id (the channels' locks record it).
    pub fn start(config: PoolConfig, results: Arc<Channel>, me: u32) -> Result<Self, PoolError> {
        let slots = WorkerSlots::create(config.workers)?;
        let wake = sys::wake::eventfd().map_err(|e| PoolError::Os {
            operation: "eventfd",
            source: e.into(),
        })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config.workers)),
            config,
            me,
            results,
            slots,
            changed: Condvar::new(),
            wake,
        });
        let spawn = |name: &str, body: fn(Arc<Shared>)| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || body(shared))
                .map_err(|source| PoolError::Os {
                    operation: "pthread_create",
                    source,
                })
        };
        let collector = spawn("ferroproc-pool-results", collect)?;
        let supervisor = spawn("ferroproc-pool-workers", supervise)?;
        Ok(Self {
            shared,
            threads: Mutex::new(vec![collector, supervisor]),
        })
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The descriptor of the workers' slots, to pass to each worker.
    pub fn slots_fd(&self) -> BorrowedFd<'_> {
        self.shared.slots.fd()
    }

    /// Registers the worker started for `slot`, reading tasks from `inbox`; returns its
    /// generation. The slot must be free (never used, or its last worker reported).
    pub fn add_worker(
        &self,
        slot: usize,
        inbox: Arc<Channel>,
        process: Box<dyn WorkerProcess>,
    ) -> Result<u64, PoolError> {
        if slot >= self.shared.config.workers {
            return Err(PoolError::NoSuchSlot(slot));
        }
        let sentinel = process.sentinel().map_err(|source| PoolError::Os {
            operation: "dup",
            source,
        })?;
        let mut state = self.shared.lock();
        if state.finished || state.shutting_down {
            // Too late: the pool already said it has no workers left.
            return Err(PoolError::NotRunning);
        }
        if state.workers[slot].is_some() {
            return Err(PoolError::NoSuchSlot(slot));
        }
        self.shared.slots.clear(slot)?;
        let generation = state.next_generation;
        state.next_generation += 1;
        state.workers[slot] = Some(Worker::new(generation, inbox, process, sentinel));
        if state.terminated {
            if let Some(worker) = state.workers[slot].as_mut() {
                worker.retiring = true;
                worker.process.kill();
            }
        }
        state.dispatch(&self.shared.config, self.shared.me);
        drop(state);
        self.shared.wake_supervisor();
        Ok(generation)
    }

    /// Makes `definition` the function that tasks naming `token` call.
    pub fn define(&self, token: u64, definition: Arc<[u8]>) {
        self.shared.lock().functions.insert(token, definition);
    }

    /// Drops the definition of `token` (tasks already queued keep theirs).
    pub fn forget(&self, token: u64) {
        self.shared.lock().functions.remove(&token);
    }

    /// Seals `job` (see [`Job::seal`]), reporting [`Event::JobReady`] if that made a
    /// notifying job ready. Under the engine's lock, so the collector cannot settle its
    /// last task in between and neither side report it.
    pub fn seal(&self, job: &Job) {
        let mut state = self.shared.lock();
        if job.seal() && job.notifies() {
            state.events.push_back(Event::JobReady(job.id()));
            drop(state);
            self.shared.changed.notify_all();
        }
    }

    /// A new job. See [`Job::new`] for `fail_fast` and `notify`.
    pub fn new_job(&self, fail_fast: bool, notify: bool) -> Arc<Job> {
        let mut state = self.shared.lock();
        let id = state.next_job;
        state.next_job += 1;
        Arc::new(Job::new(id, fail_fast, notify))
    }

    /// Submits tasks of `job` calling the function `token`, one per payload, each marked
    /// with `tag` (see [`TaskHeader::tag`](super::wire::TaskHeader::tag)), and hands them
    /// to workers with room.
    pub fn submit(
        &self,
        job: &Arc<Job>,
        token: u64,
        tag: u8,
        payloads: Vec<Payload>,
    ) -> Result<(), PoolError> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(PoolError::NotRunning);
        }
        if !state.functions.contains_key(&token) {
            return Err(PoolError::UnknownFunction(token));
        }
        state.submit(job, token, tag, payloads, self.shared.config.retries);
        state.dispatch(&self.shared.config, self.shared.me);
        Ok(())
    }

    /// Cancels the tasks of `job` that no worker has been given yet (a task already in a
    /// worker's inbox or running is not stopped); returns how many were cancelled.
    pub fn cancel_pending(&self, job: &Job) -> usize {
        let mut state = self.shared.lock();
        let cancelled = state.cancel_pending(job.id());
        state.dispatch(&self.shared.config, self.shared.me);
        let notify = !state.events.is_empty();
        drop(state);
        if notify {
            self.shared.changed.notify_all();
        }
        cancelled
    }

    /// The next event, waiting for one until `deadline`.
    pub fn next_event(&self, deadline: Option<Instant>) -> Option<Event> {
        let mut state = self.shared.lock();
        loop {
            if let Some(event) = state.events.pop_front() {
                return Some(event);
            }
            let timeout = match deadline {
                None => Duration::from_secs(3600),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    deadline - now
                }
            };
            state = self
                .shared
                .changed
                .wait_timeout(state, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Stops accepting tasks; workers exit once every task is settled.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.dispatch(&self.shared.config, self.shared.me);
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Stops at once: every unsettled task is cancelled and every worker killed.
    pub fn terminate(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.terminated = true;
        state.cancel_all();
        for worker in state.workers.iter().flatten() {
            worker.process.kill();
        }
        state.check_finished();
        drop(state);
        self.shared.changed.notify_all();
        self.shared.wake_supervisor();
    }

    /// Gives up on the pool for `reason` (its workers cannot start, say): terminates it,
    /// and [`broken`](Self::broken) says why, for the errors of the cancelled tasks.
    pub fn break_with(&self, reason: String) {
        self.shared.lock().broken.get_or_insert(reason);
        self.terminate();
    }

    /// Why the pool was given up on, if it was.
    pub fn broken(&self) -> Option<String> {
        self.shared.lock().broken.clone()
    }

    /// Whether [`close`](Self::close) or [`terminate`](Self::terminate) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Counts for a `repr`: (live workers, tasks waiting, tasks held by workers).
    pub fn counts(&self) -> (usize, usize, usize) {
        let state = self.shared.lock();
        let workers = state.workers.iter().flatten().count();
        let held = state
            .workers
            .iter()
            .flatten()
            .map(|w| w.outstanding.len())
            .sum();
        (workers, state.pending.len(), held)
    }

    /// Stops the engine's threads and waits for them. Tasks still unsettled are
    /// cancelled; workers still registered are killed.
    pub fn shutdown(&self) {
        {
            let state = self.shared.lock();
            if !state.terminated && !state.finished {
                drop(state);
                self.terminate();
            }
        }
        self.shared.post(ResultHeader {
            kind: ResultKind::Shutdown,
            slot: 0,
            ticket: 0,
            run_ns: 0,
        });
        self.shared.lock().shutting_down = true;
        self.shared.wake_supervisor();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The collector thread: reads results until told to stop.
fn collect(shared: Arc<Shared>) {
    let mut sink = ReceivedSink::default();
    loop {
        sink.0.clear();
        match shared
            .results
            .get_many_into(shared.me, RESULT_BATCH, &mut sink, None, &mut || true)
        {
            Ok(Wait::Done(_)) => {}
            Ok(_) => continue,
            // A corrupt record is discarded by the channel; anything else is retried
            // after a pause rather than spinning.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        // Headers of files are read before taking the lock: they cost a system call.
        let reports: Vec<(ResultHeader, Value)> =
            sink.0.drain(..).filter_map(open_report).collect();
        let mut state = shared.lock();
        let mut stop = false;
        for (header, value) in reports {
            let slot = header.slot as usize;
            match header.kind {
                ResultKind::Returned => {
                    let outcome = Outcome::Returned(value);
                    state.task_settled(slot, header.ticket, header.run_ns, outcome);
                }
                ResultKind::Raised => {
                    let report = match value {
                        Value::Bytes(bytes) => bytes,
                        Value::File { file, offset, len } => {
                            read_all(file.as_fd(), offset, len).unwrap_or_default()
                        }
                    };
                    let outcome = Outcome::Raised(report);
                    state.task_settled(slot, header.ticket, header.run_ns, outcome);
                }
                ResultKind::WorkerExited => {
                    let status = ExitStatus::from_returncode(header.run_ns as i64 as i32);
                    state.worker_exited(slot, header.ticket, status, &shared.slots, &shared.config);
                }
                ResultKind::Shutdown => stop = true,
            }
        }
        state.dispatch(&shared.config, shared.me);
        let notify = !state.events.is_empty();
        drop(state);
        if notify {
            shared.changed.notify_all();
        }
        if stop {
            return;
        }
    }
}

/// A received report's header and value; `None` for a damaged one (dropped: its task
/// then settles when its worker's exit is, or never had a result to lose).
fn open_report(received: Received) -> Option<(ResultHeader, Value)> {
    match received {
        Received::Bytes(mut message) => {
            let (header, _) = ResultHeader::decode(&message).ok()?;
            message.drain(..RESULT_HEADER_LEN);
            Some((header, Value::Bytes(message)))
        }
        Received::File(file) => {
            let (prefix, len) = read_sealed_prefix::<RESULT_HEADER_LEN>(file.as_fd()).ok()?;
            let (header, _) = ResultHeader::decode(&prefix).ok()?;
            let value = Value::File {
                file: Arc::new(file),
                offset: RESULT_HEADER_LEN as u64,
                len,
            };
            Some((header, value))
        }
    }
}

/// The supervisor thread: waits for workers to exit (and, with a task timeout, for tasks
/// to overrun) until the engine shuts down.
fn supervise(shared: Arc<Shared>) {
    let tick = shared
        .config
        .task_timeout
        .map(|timeout| (timeout / 4).clamp(Duration::from_millis(5), TIMEOUT_TICK_MAX));
    loop {
        let watched: Vec<(usize, u64, Arc<OwnedFd>)> = {
            let state = shared.lock();
            let gone = |w: &Option<Worker>| w.as_ref().is_none_or(|w| w.exit_reported);
            // Once the collector has stopped, exits are reported but never settled, so
            // workers stay registered: reaped is enough.
            if (state.finished || state.shutting_down) && state.workers.iter().all(gone) {
                return;
            }
            state
                .workers
                .iter()
                .enumerate()
                .filter_map(|(slot, w)| Some((slot, w.as_ref()?)))
                .filter(|(_, w)| !w.exit_reported)
                .map(|(slot, w)| (slot, w.generation, Arc::clone(&w.sentinel)))
                .collect()
        };
        let mut fds: Vec<BorrowedFd<'_>> = vec![shared.wake.as_fd()];
        fds.extend(watched.iter().map(|(_, _, fd)| fd.as_fd()));
        let ready = match sys::poll::poll_readable(&fds, tick) {
            Ok(ready) => ready,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        if ready[0] {
            let _ = sys::wake::drain(shared.wake.as_fd());
        }
        for ((slot, generation, _), exited) in watched.iter().zip(&ready[1..]) {
            if *exited {
                report_exit(&shared, *slot, *generation);
            }
        }
        if let Some(timeout) = shared.config.task_timeout {
            kill_overdue(&shared, timeout);
        }
    }
}

/// Reaps the worker in `slot` and reports its exit on the result channel.
fn report_exit(shared: &Shared, slot: usize, generation: u64) {
    let status = {
        let mut state = shared.lock();
        let Some(worker) = state.workers[slot].as_mut() else {
            return;
        };
        if worker.generation != generation || worker.exit_reported {
            return;
        }
        let Some(status) = worker.process.reap() else {
            return;
        };
        worker.exit_reported = true;
        status
    };
    shared.post(ResultHeader {
        kind: ResultKind::WorkerExited,
        slot: slot as u32,
        ticket: generation,
        run_ns: status.returncode() as i64 as u64,
    });
}

/// Kills each worker whose current task has run longer than `timeout`.
fn kill_overdue(shared: &Shared, timeout: Duration) {
    let mut state = shared.lock();
    for (slot, worker) in state.workers.iter_mut().enumerate() {
        let Some(worker) = worker.as_mut() else {
            continue;
        };
        if worker.killed_for.is_some() || worker.exit_reported {
            continue;
        }
        let Ok(Some((ticket, running))) = shared.slots.running_for(slot) else {
            continue;
        };
        if running > timeout && worker.outstanding.contains(&ticket) {
            worker.killed_for = Some(ticket);
            worker.process.kill();
        }
    }
}
