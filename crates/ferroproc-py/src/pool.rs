//! Bindings of the pool engine: `PoolEngine` (the parent), `PoolJob` (one call's
//! results) and `PoolWorker` (a worker's side).
//!
//! Payloads are encoded with the same codec as queues (native scalars, otherwise a
//! pickle with out-of-band buffers) through the `dumps`/`loads` the Python layer passes.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ferroproc_core::channel::Wait;
use ferroproc_core::pool::wire::{TaskKind, TASK_HEADER_LEN};
use ferroproc_core::pool::{
    Engine, Event, Gathered, Job, Outcome, Payload, PoolConfig, PoolError, Report, TaskBody,
    TaskFile, Value, WorkerLink, WorkerSlots, FUNCTIONS_PER_WORKER,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::blocking::{deadline_after, slice_end};
use crate::channel::PyChannel;
use crate::codec::{decode, decode_view, Encoded};
use crate::errors::OrRaise;
use crate::fd::PyFd;
use crate::identity::me_pid;
use crate::process::PyChild;

/// How a task ended, as the first item of the tuples `PoolJob` returns.
pub const RETURNED: u8 = 0;
/// The task raised: the second item is the encoded exception report (bytes).
pub const RAISED: u8 = 1;
/// The worker died: `(pid, returncode)`.
pub const WORKER_LOST: u8 = 2;
/// The task overran the timeout: `(pid, seconds)`.
pub const TIMED_OUT: u8 = 3;
/// The pool was terminated first.
pub const CANCELLED: u8 = 4;
/// The value came back but could not be decoded: the exception decoding raised.
pub const UNDECODABLE: u8 = 5;

/// `MADV_POPULATE_READ` (Linux 5.14): populate a mapping's page tables for reading.
const MADV_POPULATE_READ: i32 = 22;

/// From this size on, a task's payload is written to a file of its own and mapped by the
/// worker, instead of being copied through its inbox and then twice more in the worker.
/// Measured here with 1 MB arrays: 9.4 ms for 8 tasks this way, 18 ms through the ring.
const FILE_PAYLOAD_MIN: usize = 256 << 10;

/// A view of a sealed file's bytes from `offset` on, through a private writable mapping
/// (copy-on-write): arrays decoded over it are not copied, stay writable, and what is
/// written to them stays in this process. The mapping lives as long as the view.
fn map_private<'py>(
    py: Python<'py>,
    file: std::os::fd::BorrowedFd<'_>,
    len: u64,
    offset: u64,
) -> PyResult<Bound<'py, PyAny>> {
    use std::os::fd::AsRawFd;
    let mmap = py.import("mmap")?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("flags", mmap.getattr("MAP_PRIVATE")?)?;
    let prot = mmap.getattr("PROT_READ")?.extract::<i64>()?
        | mmap.getattr("PROT_WRITE")?.extract::<i64>()?;
    kwargs.set_item("prot", prot)?;
    // mmap duplicates the descriptor; the mapping outlives this call.
    let mapping = mmap
        .getattr("mmap")?
        .call((file.as_raw_fd(), len), Some(&kwargs))?;
    // Map every page now, read-only until written (Linux 5.14+; older kernels refuse it,
    // and then pages are mapped as they are first read): one call, not a fault per page.
    let _ = mapping.call_method1("madvise", (MADV_POPULATE_READ,));
    let view = py
        .import("builtins")?
        .getattr("memoryview")?
        .call1((mapping,))?;
    view.get_item(pyo3::types::PySlice::new(
        py,
        offset as isize,
        isize::MAX,
        1,
    ))
}

/// The pool's `dumps`/`loads`.
#[derive(Debug)]
struct PoolCodec {
    dumps: Py<PyAny>,
    loads: Py<PyAny>,
}

impl PoolCodec {
    fn encode(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        Ok(Encoded::new(obj, || Ok(self.dumps.bind(py).clone()))?.to_vec())
    }

    /// Task payloads: bytes, or files for large ones (written outside the GIL, several
    /// at once).
    fn payloads(&self, py: Python<'_>, tasks: &Bound<'_, PyAny>) -> PyResult<Vec<Payload>> {
        let mut encoded = Vec::new();
        for task in tasks.try_iter()? {
            encoded.push(Encoded::new(&task?, || Ok(self.dumps.bind(py).clone()))?);
        }
        let mut payloads: Vec<Option<Payload>> = Vec::with_capacity(encoded.len());
        let mut large: Vec<Vec<&[u8]>> = Vec::new();
        for item in &encoded {
            let parts = item.parts();
            let total: usize = parts.iter().map(|part| part.len()).sum();
            if total < FILE_PAYLOAD_MIN {
                payloads.push(Some(Payload::Inline(parts.concat().into())));
            } else {
                payloads.push(None);
                large.push(parts);
            }
        }
        if large.is_empty() {
            return Ok(payloads.into_iter().flatten().collect());
        }
        // The buffers stay exported (and so alive and unmoved) while `encoded` lives.
        let mut files = py.detach(|| TaskFile::create_many(&large)).into_iter();
        payloads
            .into_iter()
            .map(|payload| match payload {
                Some(payload) => Ok(payload),
                None => {
                    let file = files.next().expect("one file per large payload");
                    Ok(Payload::File(Arc::new(file.or_raise()?)))
                }
            })
            .collect()
    }

    /// A task's value: decoded from its bytes, or over a mapping of its file.
    fn decode_value(&self, py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
        match value {
            Value::Bytes(bytes) => self.decode(py, bytes),
            Value::File { file, offset, len } => {
                let view = map_private(py, file.as_fd(), *len, *offset)?;
                decode_view(py, &view, |data, buffers| {
                    self.loads.call1(py, (data, buffers))
                })
            }
        }
    }

    fn decode(&self, py: Python<'_>, message: &[u8]) -> PyResult<Py<PyAny>> {
        decode(py, message, |data, buffers| {
            self.loads.call1(py, (data, buffers))
        })
    }

    /// An outcome as `(kind, detail)`.
    fn outcome(&self, py: Python<'_>, outcome: Outcome) -> PyResult<Py<PyAny>> {
        let pair = |kind: u8, detail: Py<PyAny>| -> PyResult<Py<PyAny>> {
            Ok(
                PyTuple::new(py, [kind.into_pyobject(py)?.into_any().unbind(), detail])?
                    .into_any()
                    .unbind(),
            )
        };
        match outcome {
            Outcome::Returned(value) => match self.decode_value(py, &value) {
                Ok(value) => pair(RETURNED, value),
                Err(err) => pair(UNDECODABLE, err.into_value(py).into_any()),
            },
            Outcome::Raised(report) => pair(
                RAISED,
                pyo3::types::PyBytes::new(py, &report).into_any().unbind(),
            ),
            Outcome::WorkerLost { pid, status } => pair(
                WORKER_LOST,
                (pid, status.returncode())
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
            ),
            Outcome::TimedOut { pid, timeout } => pair(
                TIMED_OUT,
                (pid, timeout.as_secs_f64())
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
            ),
            Outcome::Cancelled => pair(CANCELLED, py.None()),
        }
    }
}

/// Waits in slices with the GIL released, running signal handlers between slices, until
/// `attempt` returns a value or `deadline` passes. The first attempt keeps the GIL, so a
/// result that is already there costs no thread switch.
fn wait_sliced<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Option<Instant>) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    if let Some(value) = attempt(Some(Instant::now())) {
        return Ok(Some(value));
    }
    loop {
        let until = slice_end(deadline);
        if let Some(value) = py.detach(|| attempt(Some(until))) {
            return Ok(Some(value));
        }
        py.check_signals()?;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(None);
        }
    }
}

/// The parent side of a process pool (see `ferroproc.pool`).
#[pyclass(module = "ferroproc._core", name = "PoolEngine", frozen)]
#[derive(Debug)]
pub struct PyPoolEngine {
    engine: Engine,
    codec: Arc<PoolCodec>,
}

#[pymethods]
impl PyPoolEngine {
    /// Starts an engine with `workers` slots reporting on `results`.
    #[new]
    #[pyo3(signature = (workers, results, dumps, loads, *, max_tasks_per_worker = None, task_timeout = None, retries = 0, max_held = None))]
    fn new(
        workers: usize,
        results: &PyChannel,
        dumps: Py<PyAny>,
        loads: Py<PyAny>,
        max_tasks_per_worker: Option<u64>,
        task_timeout: Option<f64>,
        retries: u32,
        max_held: Option<usize>,
    ) -> PyResult<Self> {
        if workers == 0 {
            return Err(PyValueError::new_err("a pool needs at least one worker"));
        }
        let task_timeout = match task_timeout {
            None => None,
            Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
                Some(Duration::from_secs_f64(seconds))
            }
            Some(_) => {
                return Err(PyValueError::new_err(
                    "task_timeout must be a positive number of seconds",
                ))
            }
        };
        let config = PoolConfig {
            workers,
            max_tasks_per_worker,
            task_timeout,
            retries,
            max_held,
        };
        let engine = Engine::start(config, results.shared(), me_pid()).or_raise()?;
        Ok(Self {
            engine,
            codec: Arc::new(PoolCodec { dumps, loads }),
        })
    }

    /// How many function definitions a worker keeps (evicting the oldest).
    #[classattr]
    const FUNCTIONS_PER_WORKER: usize = FUNCTIONS_PER_WORKER;

    /// The descriptor of the workers' slots segment.
    #[getter]
    fn slots_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.engine.slots_fd().as_raw_fd()
    }

    /// Registers the worker `child` started for `slot`, reading from `inbox`.
    fn add_worker(
        &self,
        py: Python<'_>,
        slot: usize,
        inbox: &PyChannel,
        child: &PyChild,
    ) -> PyResult<u64> {
        let inbox = inbox.shared();
        let process = Box::new(child.shared());
        py.detach(|| self.engine.add_worker(slot, inbox, process))
            .or_raise()
    }

    /// Makes `function` the callable that tasks naming `token` call.
    fn define(&self, py: Python<'_>, token: u64, function: &Bound<'_, PyAny>) -> PyResult<()> {
        let definition = self.codec.encode(py, function)?;
        self.engine.define(token, definition.into());
        Ok(())
    }

    /// Forgets the definition of `token`.
    fn forget(&self, token: u64) {
        self.engine.forget(token);
    }

    /// A new job (see `PoolJob`).
    #[pyo3(signature = (fail_fast = true, notify = false))]
    fn new_job(&self, fail_fast: bool, notify: bool) -> PyJob {
        PyJob {
            job: self.engine.new_job(fail_fast, notify),
            codec: Arc::clone(&self.codec),
        }
    }

    /// Submits one task per item of `tasks` (each encoded here) to `job`, calling the
    /// function `token`, each marked with `tag`; with `seal`, the job takes no more. An
    /// item that cannot be encoded raises before any is submitted.
    #[pyo3(signature = (job, token, tag, tasks, seal = false))]
    fn submit(
        &self,
        py: Python<'_>,
        job: &PyJob,
        token: u64,
        tag: u8,
        tasks: &Bound<'_, PyAny>,
        seal: bool,
    ) -> PyResult<usize> {
        let payloads = self.codec.payloads(py, tasks)?;
        let count = payloads.len();
        let job = Arc::clone(&job.job);
        py.detach(|| self.engine.submit(&job, token, tag, payloads))
            .or_raise()?;
        if seal {
            self.engine.seal(&job);
        }
        Ok(count)
    }

    /// The next event, waiting until `timeout`: `("ready", job_id)`,
    /// `("exited", slot, pid, returncode, replace, started)` or `("finished",)`; `None` on
    /// timeout.
    #[pyo3(signature = (timeout = None))]
    fn next_event(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let deadline = deadline_after(timeout)?;
        let event = wait_sliced(py, deadline, |until| self.engine.next_event(until))?;
        event
            .map(|event| -> PyResult<Py<PyAny>> {
                Ok(match event {
                    Event::JobReady(id) => ("ready", id).into_pyobject(py)?.into_any().unbind(),
                    Event::WorkerExited {
                        slot,
                        pid,
                        status,
                        replace,
                        started,
                    } => ("exited", slot, pid, status.returncode(), replace, started)
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                    Event::Finished => ("finished",).into_pyobject(py)?.into_any().unbind(),
                })
            })
            .transpose()
    }

    /// Cancels the tasks of `job` no worker was given yet; returns how many.
    fn cancel_pending(&self, py: Python<'_>, job: &PyJob) -> usize {
        let job = Arc::clone(&job.job);
        py.detach(|| self.engine.cancel_pending(&job))
    }

    /// Stops accepting tasks; workers exit once every task is settled.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.engine.close());
    }

    /// Cancels every unsettled task and kills every worker.
    fn terminate(&self, py: Python<'_>) {
        py.detach(|| self.engine.terminate());
    }

    /// Stops the engine's threads (terminating first if needed).
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.engine.shutdown());
    }

    /// Gives up on the pool for `reason`: terminates it; `broken` then says why.
    fn break_with(&self, py: Python<'_>, reason: String) {
        py.detach(|| self.engine.break_with(reason));
    }

    /// Why the pool was given up on, or `None`.
    #[getter]
    fn broken(&self) -> Option<String> {
        self.engine.broken()
    }

    /// Whether `close` or `terminate` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.engine.is_closed()
    }

    /// `(live workers, tasks waiting, tasks held by workers)`.
    fn counts(&self, py: Python<'_>) -> (usize, usize, usize) {
        py.detach(|| self.engine.counts())
    }

    /// Decodes an encoded payload (an exception report).
    fn decode(&self, py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
        self.codec.decode(py, data)
    }
}

/// The results of one call into the pool.
#[pyclass(module = "ferroproc._core", name = "PoolJob", frozen)]
#[derive(Debug)]
pub struct PyJob {
    job: Arc<Job>,
    codec: Arc<PoolCodec>,
}

#[pymethods]
impl PyJob {
    /// The job's number in its pool.
    #[getter]
    fn id(&self) -> u64 {
        self.job.id()
    }

    /// How many tasks were submitted to it.
    #[getter]
    fn submitted(&self) -> usize {
        self.job.submitted()
    }

    /// How many tasks have finished.
    #[getter]
    fn finished(&self) -> usize {
        self.job.finished()
    }

    /// Declares that no more tasks will be submitted (for a job created with `notify`,
    /// pass `seal=True` to `PoolEngine.submit` instead, which reports its readiness).
    fn seal(&self) {
        self.job.seal();
    }

    /// Whether every task finished (or, failing fast, one failed).
    fn ready(&self) -> bool {
        self.job.is_ready()
    }

    /// Waits until ready or `timeout`; returns readiness.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline_after(timeout)?;
        let job = &self.job;
        Ok(wait_sliced(py, deadline, |until| job.wait_ready(until).then_some(()))?.is_some())
    }

    /// The outcome of a ready job: `(True, [value, ...])` in task order, or
    /// `(False, (kind, detail))` for the first failure. Call it once.
    fn take_all(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let gathered = py.detach(|| self.job.take_all());
        match gathered {
            None => Err(PyValueError::new_err("the job is not ready")),
            Some(Gathered::AllReturned(values)) => {
                let list = PyList::empty(py);
                for value in values {
                    match self.codec.decode_value(py, &value) {
                        Ok(value) => list.append(value)?,
                        Err(err) => {
                            let failure = (UNDECODABLE, err.into_value(py));
                            return Ok((false, failure).into_pyobject(py)?.into_any().unbind());
                        }
                    }
                }
                Ok((true, list).into_pyobject(py)?.into_any().unbind())
            }
            Some(Gathered::Failed(outcome)) => {
                let failure = self.codec.outcome(py, outcome)?;
                Ok((false, failure).into_pyobject(py)?.into_any().unbind())
            }
        }
    }

    /// The next outcome in task order, `(kind, detail)`; `None` at the timeout; raises
    /// `StopIteration` once all were yielded.
    #[pyo3(signature = (timeout = None))]
    fn next_ordered(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let deadline = deadline_after(timeout)?;
        let job = &self.job;
        match wait_sliced(py, deadline, |until| job.next_ordered(until).ok())? {
            None => Ok(None),
            Some(None) => Err(pyo3::exceptions::PyStopIteration::new_err(())),
            Some(Some(outcome)) => Ok(Some(self.codec.outcome(py, outcome)?)),
        }
    }

    /// The next outcome in the order tasks finished, `(index, (kind, detail))`; `None` at
    /// the timeout; raises `StopIteration` once all were yielded.
    #[pyo3(signature = (timeout = None))]
    fn next_finished(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let deadline = deadline_after(timeout)?;
        let job = &self.job;
        match wait_sliced(py, deadline, |until| job.next_finished(until).ok())? {
            None => Ok(None),
            Some(None) => Err(pyo3::exceptions::PyStopIteration::new_err(())),
            Some(Some((index, outcome))) => {
                let outcome = self.codec.outcome(py, outcome)?;
                Ok(Some(
                    (index, outcome).into_pyobject(py)?.into_any().unbind(),
                ))
            }
        }
    }

    /// Waits until fewer than `limit` tasks are unfinished (or, with `unconsumed`, not yet
    /// yielded), or `timeout`; returns whether there is room.
    #[pyo3(signature = (limit, unconsumed = false, timeout = None))]
    fn wait_for_room(
        &self,
        py: Python<'_>,
        limit: usize,
        unconsumed: bool,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let deadline = deadline_after(timeout)?;
        let job = &self.job;
        let room = wait_sliced(py, deadline, |until| {
            job.wait_for_room(limit, unconsumed, until).then_some(())
        })?;
        Ok(room.is_some())
    }
}

impl PyWorker {
    /// A task's payload: decoded from its bytes, or from a private, writable mapping of
    /// its file (copy-on-write), so large buffers are never copied.
    fn decode_payload(
        &self,
        py: Python<'_>,
        task: &ferroproc_core::pool::Task,
    ) -> PyResult<Py<PyAny>> {
        match task.body() {
            TaskBody::Bytes(_) => self.codec.decode(py, task.payload()),
            TaskBody::File { file, len } => {
                let payload = map_private(py, file.as_fd(), *len, TASK_HEADER_LEN as u64)?;
                decode_view(py, &payload, |data, buffers| {
                    self.codec.loads.call1(py, (data, buffers))
                })
            }
        }
    }
}

/// A worker process's side of a pool.
#[pyclass(module = "ferroproc._core", name = "PoolWorker", frozen)]
#[derive(Debug)]
pub struct PyWorker {
    link: WorkerLink,
    codec: PoolCodec,
    started: Mutex<Option<Instant>>,
}

#[pymethods]
impl PyWorker {
    /// The worker in `slot`, reading `inbox`, reporting on `results`.
    #[new]
    fn new(
        inbox: &PyChannel,
        results: &PyChannel,
        slots_fd: i32,
        slot: usize,
        dumps: Py<PyAny>,
        loads: Py<PyAny>,
    ) -> PyResult<Self> {
        let slots = WorkerSlots::attach(PyFd::new(slots_fd)?.borrow()).or_raise()?;
        let link =
            WorkerLink::new(inbox.shared(), results.shared(), slots, slot, me_pid()).or_raise()?;
        Ok(Self {
            link,
            codec: PoolCodec { dumps, loads },
            started: Mutex::new(None),
        })
    }

    /// Waits for the next task: `(ticket, tag, token, function, payload, error)`, where
    /// `function` is the decoded definition sent with it (or `None`), and `error` the
    /// exception decoding raised (then `payload` is `None`); `None` when told to exit.
    fn next_task(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let link = &self.link;
        let mut failure: Option<PoolError> = None;
        let task = wait_sliced(py, None, |until| {
            match link.next_task(until, &mut || true) {
                Ok(Wait::Done(task)) => Some(Some(task)),
                Ok(_) => None,
                Err(err) => {
                    failure = Some(err);
                    Some(None)
                }
            }
        })?;
        if let Some(err) = failure {
            return Err(err).or_raise();
        }
        let Some(Some(task)) = task else {
            return Ok(None);
        };
        let header = task.header();
        if header.kind == TaskKind::Stop {
            return Ok(None);
        }
        let mut error = py.None();
        let function = if task.definition().is_empty() {
            py.None()
        } else {
            match self.codec.decode(py, task.definition()) {
                Ok(function) => function,
                Err(err) => {
                    error = err.into_value(py).into_any();
                    py.None()
                }
            }
        };
        if header.kind == TaskKind::Define {
            // Ticket 0: a definition only, for the worker to learn.
            return Ok(Some(
                (0u64, 0u8, header.function, function, py.None(), error)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
            ));
        }
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let payload = if error.is_none(py) {
            match self.decode_payload(py, &task) {
                Ok(payload) => payload,
                Err(err) => {
                    error = err.into_value(py).into_any();
                    py.None()
                }
            }
        } else {
            py.None()
        };
        Ok(Some(
            (
                header.ticket,
                header.tag,
                header.function,
                function,
                payload,
                error,
            )
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        ))
    }

    /// Reports how task `ticket` ended: its value, or (with `raised`) an exception
    /// report. Raises (reporting nothing) if `value` cannot be encoded.
    fn report(
        &self,
        py: Python<'_>,
        ticket: u64,
        raised: bool,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let run_ns = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map_or(0, |started| started.elapsed().as_nanos() as u64);
        let encoded = Encoded::new(value, || Ok(self.codec.dumps.bind(py).clone()))?;
        let report = if raised {
            Report::Raised
        } else {
            Report::Returned
        };
        let parts = encoded.parts();
        let now = self
            .link
            .report(ticket, report, run_ns, &parts, &mut || false);
        match now.or_raise()? {
            Wait::Done(()) => Ok(()),
            _ => {
                // The result channel is full: wait for room without the GIL.
                let message = encoded.to_vec();
                let link = &self.link;
                let mut failure = None;
                wait_sliced(py, None, |_| {
                    match link.report(ticket, report, run_ns, &[&message], &mut || true) {
                        Ok(Wait::Done(())) => Some(()),
                        Ok(_) => None,
                        Err(err) => {
                            failure = Some(err);
                            Some(())
                        }
                    }
                })?;
                match failure {
                    Some(err) => Err(err).or_raise(),
                    None => Ok(()),
                }
            }
        }
    }
}
