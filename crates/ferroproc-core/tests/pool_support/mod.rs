//! The harness of the pool tests: a parent that runs an [`Engine`] and starts real worker
//! processes for it, and the worker those processes run.
//!
//! A worker is the test binary re-executed in the role [`WORKER_ROLE`] (see
//! `common::self_command`). It is given, as descriptors 3 to 9, its inbox channel (segment
//! and the spill socket's two ends), the result channel (the same three) and the pool's
//! worker slots, and in its environment its slot, the parent's pid (it dies with the
//! parent), its task limit and the path of a log file.
//!
//! A task's payload is `[command: u8][index: u64][argument: u64][extra bytes]`, integers
//! little-endian; see [`Command`]. Before it runs a task, the worker appends a record to the
//! log (one `write` of [`RECORD`] bytes with `O_APPEND`, so records from several workers
//! never interleave), which lets a test count how often each task actually ran.
//!
//! The parent side, [`Pool`], replaces a worker whenever the engine asks for it while the
//! test waits for something ([`Pool::pump_until`]); every wait is bounded by [`WAIT`] and
//! fails the test when it runs out.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ferroproc_core::channel::{Channel, Wait};
use ferroproc_core::pool::wire::TaskKind;
use ferroproc_core::pool::{
    Engine, Event, Job, Outcome, Payload, PoolConfig, PoolError, Report, WorkerLink, WorkerProcess,
    WorkerSlots,
};
use ferroproc_core::process::{Child, ExitStatus, ParentLink};

use crate::common::{env_var, inherited_fd, role, self_command};

/// The role a re-executed test binary plays as a pool worker.
pub const WORKER_ROLE: &str = "pool-worker";

/// The longest any one wait of a test may take before the test fails. Far above a real
/// run; it only turns a hang into a failure.
pub const WAIT: Duration = Duration::from_secs(20);

/// The function every task calls. Its definition travels with a worker's first task.
pub const TOKEN: u64 = 7;
/// The definition the pool is given for [`TOKEN`], which the worker checks.
pub const DEFINITION: &[u8] = b"ferroproc pool test function v1";

const INBOX_CAPACITY: u64 = 64 << 10;
const RESULTS_CAPACITY: u64 = 1 << 20;

/// What a task asks its worker to do.
#[derive(Debug, Clone)]
pub enum Command {
    /// Sleep this many microseconds (0: none), then return `index * index`.
    Square { busy_us: u64 },
    /// Sleep this many milliseconds, then return `index * index`.
    Sleep { ms: u64 },
    /// Exit the worker process with this code.
    Exit { code: u64 },
    /// Wait until at least `queued` more tasks sit in the worker's inbox (for a few
    /// seconds at most), log how many there are, and SIGKILL the worker.
    Kill { queued: u64 },
    /// Report `Raised` with the message [`raised_message`].
    Raise,
    /// SIGKILL the worker unless the marker file exists (creating it first); with the
    /// marker there, return `index * index`.
    DieOnce { marker: PathBuf },
}

impl Command {
    fn code(&self) -> u8 {
        match self {
            Self::Square { .. } => 1,
            Self::Sleep { .. } => 2,
            Self::Exit { .. } => 3,
            Self::Kill { .. } => 4,
            Self::Raise => 5,
            Self::DieOnce { .. } => 6,
        }
    }
}

/// The payload of task `index` running `command`.
pub fn task(index: u64, command: &Command) -> Payload {
    let (argument, extra): (u64, &[u8]) = match command {
        Command::Square { busy_us } => (*busy_us, &[]),
        Command::Sleep { ms } => (*ms, &[]),
        Command::Exit { code } => (*code, &[]),
        Command::Kill { queued } => (*queued, &[]),
        Command::Raise => (0, &[]),
        Command::DieOnce { marker } => (0, marker.as_os_str().as_encoded_bytes()),
    };
    let mut payload = vec![command.code()];
    payload.extend_from_slice(&index.to_le_bytes());
    payload.extend_from_slice(&argument.to_le_bytes());
    payload.extend_from_slice(extra);
    Payload::Inline(payload.into())
}

/// Payloads for tasks `indices`, each an immediate [`Command::Square`].
pub fn squares(indices: std::ops::Range<u64>) -> Vec<Payload> {
    indices
        .map(|i| task(i, &Command::Square { busy_us: 0 }))
        .collect()
}

/// What a squaring task returns.
pub fn squared(index: u64) -> Vec<u8> {
    (index * index).to_le_bytes().to_vec()
}

/// What a [`Command::Raise`] task reports.
pub fn raised_message(index: u64) -> Vec<u8> {
    format!("task {index} raised").into_bytes()
}

// ----- the log ---------------------------------------------------------------------------

/// The size of one log record: kind (u32), worker pid (u32), value (u64).
pub const RECORD: usize = 16;

/// What a log record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// The worker `pid` started task `index`.
    Started { pid: i32, index: u64 },
    /// The worker `pid` is about to kill itself with `queued` tasks in its inbox.
    Dying { pid: i32, queued: u64 },
}

fn log_record(log: &mut std::fs::File, kind: u32, value: u64) {
    let mut record = [0u8; RECORD];
    record[0..4].copy_from_slice(&kind.to_le_bytes());
    record[4..8].copy_from_slice(&std::process::id().to_le_bytes());
    record[8..16].copy_from_slice(&value.to_le_bytes());
    log.write_all(&record).expect("write to the task log");
}

/// Reads the records of the log at `path`.
pub fn read_log(path: &Path) -> Vec<Logged> {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert_eq!(bytes.len() % RECORD, 0, "a torn log record");
    bytes
        .chunks(RECORD)
        .map(|record| {
            let kind = u32::from_le_bytes(record[0..4].try_into().unwrap());
            let pid = u32::from_le_bytes(record[4..8].try_into().unwrap()) as i32;
            let value = u64::from_le_bytes(record[8..16].try_into().unwrap());
            match kind {
                1 => Logged::Started { pid, index: value },
                2 => Logged::Dying { pid, queued: value },
                other => panic!("unknown log record kind {other}"),
            }
        })
        .collect()
}

/// How many times each task index started, by the log.
pub fn starts(log: &[Logged]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for record in log {
        if let Logged::Started { index, .. } = record {
            *counts.entry(*index).or_insert(0) += 1;
        }
    }
    counts
}

// ----- the worker ------------------------------------------------------------------------

/// If this process is a re-executed pool worker, runs the worker and never returns.
pub fn run_worker_if_child() {
    match role().as_deref() {
        None => {}
        Some(WORKER_ROLE) => worker_main(),
        Some(other) => panic!("unknown role {other}"),
    }
}

fn worker_main() -> ! {
    let parent: i32 = env_var("PARENT");
    match ParentLink::to_parent(parent) {
        Ok(Some(link)) => link.die_with_parent().expect("watch the parent"),
        // The parent is gone already: nobody wants our results.
        _ => std::process::exit(70),
    }
    let inbox = Arc::new(
        Channel::attach(inherited_fd(3).as_fd(), (inherited_fd(4), inherited_fd(5)))
            .expect("attach the inbox"),
    );
    let results = Arc::new(
        Channel::attach(inherited_fd(6).as_fd(), (inherited_fd(7), inherited_fd(8)))
            .expect("attach the result channel"),
    );
    let slots = WorkerSlots::attach(inherited_fd(9).as_fd()).expect("attach the slots");
    let slot: usize = env_var("SLOT");
    let max_tasks: u64 = env_var("MAX_TASKS");
    let log_path: PathBuf = env_var::<String>("LOG").into();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log_path)
        .expect("open the task log");
    let link = WorkerLink::new(Arc::clone(&inbox), results, slots, slot, std::process::id())
        .expect("link to the pool");
    let mut known = HashSet::new();
    let mut done = 0;
    loop {
        let task = match link.next_task(None, &mut || true) {
            Ok(Wait::Done(task)) => task,
            Ok(_) => continue,
            Err(e) => panic!("worker in slot {slot}: {e}"),
        };
        let header = task.header();
        match header.kind {
            TaskKind::Stop => std::process::exit(0),
            TaskKind::Define => {
                if task.definition() == DEFINITION {
                    known.insert(header.function);
                }
                continue;
            }
            TaskKind::Run => {}
        }
        let started = Instant::now();
        let (report, value) = if !task.definition().is_empty() && task.definition() != DEFINITION {
            (Report::Raised, b"a wrong function definition".to_vec())
        } else {
            if !task.definition().is_empty() {
                known.insert(header.function);
            }
            if known.contains(&header.function) {
                run(task.payload(), &inbox, &mut log)
            } else {
                (Report::Raised, b"a function never defined".to_vec())
            }
        };
        let run_ns = started.elapsed().as_nanos() as u64;
        match link.report(header.ticket, report, run_ns, &[&value], &mut || true) {
            Ok(Wait::Done(())) => {}
            other => panic!("worker in slot {slot}: report failed: {other:?}"),
        }
        done += 1;
        if max_tasks > 0 && done >= max_tasks {
            std::process::exit(0);
        }
    }
}

/// Runs one task.
fn run(payload: &[u8], inbox: &Channel, log: &mut std::fs::File) -> (Report, Vec<u8>) {
    let word = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().unwrap());
    let (command, index, argument) = (payload[0], word(1), word(9));
    log_record(log, 1, index);
    match command {
        1 => {
            if argument > 0 {
                std::thread::sleep(Duration::from_micros(argument));
            }
            (Report::Returned, squared(index))
        }
        2 => {
            std::thread::sleep(Duration::from_millis(argument));
            (Report::Returned, squared(index))
        }
        3 => std::process::exit(argument as i32),
        4 => {
            let give_up = Instant::now() + Duration::from_secs(5);
            while inbox.ring().len() < argument && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            }
            log_record(log, 2, inbox.ring().len());
            kill_self()
        }
        5 => (Report::Raised, raised_message(index)),
        6 => {
            let marker = Path::new(std::ffi::OsStr::from_bytes(&payload[17..]));
            if std::fs::File::create_new(marker).is_ok() {
                kill_self()
            }
            (Report::Returned, squared(index))
        }
        other => (
            Report::Raised,
            format!("unknown command {other}").into_bytes(),
        ),
    }
}

fn kill_self() -> ! {
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::KILL).expect("kill myself");
    unreachable!("SIGKILL cannot be caught")
}

// ----- the parent ------------------------------------------------------------------------

/// A worker child shared by the engine (which reaps and kills it) and the test (which
/// kills it at will and checks at the end that it was reaped).
pub type SharedChild = Arc<Mutex<Child>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`Child`] as the engine's [`WorkerProcess`].
#[derive(Debug)]
struct TestWorker {
    pid: i32,
    child: SharedChild,
}

impl WorkerProcess for TestWorker {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn sentinel(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        lock(&self.child).sentinel().try_clone_to_owned()
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        lock(&self.child).try_wait().ok().flatten()
    }

    fn kill(&self) {
        let _ = lock(&self.child).signal(libc::SIGKILL);
    }
}

/// An engine with real worker processes, a log, and a private temporary directory.
pub struct Pool {
    /// The engine under test.
    pub engine: Engine,
    results: Arc<Channel>,
    test: &'static str,
    max_tasks: u64,
    dir: PathBuf,
    /// Every worker ever started, in order.
    children: Mutex<Vec<(usize, SharedChild)>>,
    /// The worker now in each slot.
    live: Mutex<Vec<Option<SharedChild>>>,
    /// Every event the engine emitted, in order.
    events: Mutex<Vec<Event>>,
    /// [`Pool::shutdown`] returned.
    shut_down: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("test", &self.test)
            .field("events", &*lock(&self.events))
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts an engine with `config` for the test named `test` (whose body the workers
    /// re-execute), defines [`TOKEN`], and fills every slot with a worker.
    pub fn start(test: &'static str, config: PoolConfig) -> Self {
        let workers = config.workers;
        let max_tasks = config.max_tasks_per_worker.unwrap_or(0);
        let results = Arc::new(Channel::create(RESULTS_CAPACITY).expect("result channel"));
        let engine = Engine::start(config, Arc::clone(&results), std::process::id())
            .expect("start the engine");
        engine.define(TOKEN, DEFINITION.into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ferroproc-pool-{}-{test}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("create the test's directory");
        let pool = Self {
            engine,
            results,
            test,
            max_tasks,
            dir,
            children: Mutex::new(Vec::new()),
            live: Mutex::new((0..workers).map(|_| None).collect()),
            events: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        };
        for slot in 0..workers {
            pool.spawn(slot);
        }
        pool
    }

    /// The test's private directory (removed when the pool is dropped).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The task log's path.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("tasks.log")
    }

    /// The task log's records so far.
    pub fn log(&self) -> Vec<Logged> {
        read_log(&self.log_path())
    }

    /// Starts a worker for `slot` and registers it with the engine; returns its pid.
    pub fn spawn(&self, slot: usize) -> i32 {
        self.try_spawn(slot).expect("register the worker")
    }

    /// [`spawn`](Self::spawn), returning the engine's refusal to register the worker
    /// (the worker is then killed and reaped here).
    pub fn try_spawn(&self, slot: usize) -> Result<i32, PoolError> {
        let inbox = Arc::new(Channel::create(INBOX_CAPACITY).expect("inbox channel"));
        let env = [
            format!("PARENT={}", std::process::id()),
            format!("SLOT={slot}"),
            format!("MAX_TASKS={}", self.max_tasks),
            format!("LOG={}", self.log_path().display()),
        ];
        let child = {
            let mut command = self_command(self.test, WORKER_ROLE, &env);
            // The worker must play its role even when its test is #[ignore]d.
            command.arg("--include-ignored");
            assert_eq!(command.pass_fd(inbox.fd()), 3);
            assert_eq!(command.pass_fd(inbox.spill().sender_fd()), 4);
            assert_eq!(command.pass_fd(inbox.spill().receiver_fd()), 5);
            assert_eq!(command.pass_fd(self.results.fd()), 6);
            assert_eq!(command.pass_fd(self.results.spill().sender_fd()), 7);
            assert_eq!(command.pass_fd(self.results.spill().receiver_fd()), 8);
            assert_eq!(command.pass_fd(self.engine.slots_fd()), 9);
            command.spawn().expect("spawn a worker")
        };
        let pid = child.pid();
        let child = Arc::new(Mutex::new(child));
        // Known to the test before the engine, so that a kill from another thread can
        // find it as soon as it exists.
        lock(&self.children).push((slot, Arc::clone(&child)));
        lock(&self.live)[slot] = Some(Arc::clone(&child));
        let process = Box::new(TestWorker {
            pid,
            child: Arc::clone(&child),
        });
        if let Err(refused) = self.engine.add_worker(slot, inbox, process) {
            lock(&self.children).retain(|(_, c)| !Arc::ptr_eq(c, &child));
            lock(&self.live)[slot] = None;
            let mut child = lock(&child);
            let _ = child.signal(libc::SIGKILL);
            let _ = child.wait_timeout(Some(WAIT));
            return Err(refused);
        }
        Ok(pid)
    }

    /// The next event, recorded but not acted on (no replacement is started); fails the
    /// test after [`WAIT`].
    pub fn next_event(&self) -> Event {
        let event = self
            .engine
            .next_event(Some(Instant::now() + WAIT))
            .unwrap_or_else(|| panic!("no event came; events so far: {:?}", self.events()));
        lock(&self.events).push(event.clone());
        event
    }

    /// A new job of the engine that reports its readiness as an event.
    pub fn job(&self, fail_fast: bool) -> Arc<Job> {
        self.engine.new_job(fail_fast, true)
    }

    /// Submits `payloads` to `job` and seals it.
    pub fn submit_all(&self, job: &Arc<Job>, payloads: Vec<Payload>) {
        self.engine
            .submit(job, TOKEN, 0, payloads)
            .expect("submit tasks");
        job.seal();
    }

    /// Takes the engine's events, starting a replacement wherever the engine asks for
    /// one, until `done` holds (checked before each wait, and at least every 50 ms).
    /// Fails the test after [`WAIT`].
    pub fn pump_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; events so far: {:?}",
                self.events()
            );
            let slice = (now + Duration::from_millis(50)).min(deadline);
            if let Some(event) = self.engine.next_event(Some(slice)) {
                self.handle(event);
            }
        }
    }

    fn handle(&self, event: Event) {
        if let Event::WorkerExited { slot, replace, .. } = event {
            lock(&self.live)[slot] = None;
            if replace {
                // A replacement asked for just before the pool was closed and finished is
                // refused (`NotRunning`), as an embedder must expect.
                match self.try_spawn(slot) {
                    Ok(_) | Err(PoolError::NotRunning) => {}
                    Err(other) => panic!("register the worker: {other:?}"),
                }
            }
        }
        lock(&self.events).push(event);
    }

    /// Waits for `job` to be ready (replacing workers meanwhile).
    pub fn wait(&self, job: &Job) {
        self.pump_until(&format!("job {}", job.id()), || job.is_ready());
    }

    /// Waits for [`Event::Finished`].
    ///
    /// Also waits for the exit of every worker ever started. A `WorkerExited` event that
    /// asked for a replacement can still be queued when the pool closes; the replacement
    /// the pump starts for it then comes after `Finished`, is told to stop, and exits.
    pub fn wait_finished(&self) {
        self.pump_until("the pool to finish", || {
            let exited: HashSet<i32> = self.exits().iter().map(|e| e.1).collect();
            self.events().contains(&Event::Finished)
                && self.pids().iter().all(|pid| exited.contains(pid))
        });
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The `WorkerExited` events so far, as (slot, pid, status, replace).
    pub fn exits(&self) -> Vec<(usize, i32, ExitStatus, bool)> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::WorkerExited {
                    slot,
                    pid,
                    status,
                    replace,
                    ..
                } => Some((slot, pid, status, replace)),
                _ => None,
            })
            .collect()
    }

    /// The pids of every worker started so far, in order.
    pub fn pids(&self) -> Vec<i32> {
        lock(&self.children)
            .iter()
            .map(|(_, child)| lock(child).pid())
            .collect()
    }

    /// SIGKILLs the worker now in `slot`; its pid if it was alive to be killed.
    pub fn kill_slot(&self, slot: usize) -> Option<i32> {
        let child = lock(&self.live)[slot].clone()?;
        let child = lock(&child);
        match child.signal(libc::SIGKILL) {
            Ok(true) => Some(child.pid()),
            _ => None,
        }
    }

    /// The workers started that have not been reaped.
    pub fn unreaped(&self) -> Vec<i32> {
        lock(&self.children)
            .iter()
            .filter_map(|(_, child)| {
                let child = lock(child);
                child.status().is_none().then(|| child.pid())
            })
            .collect()
    }

    /// Shuts the engine down ([`Engine::shutdown`]) as it is.
    pub fn shutdown(&self) {
        self.engine.shutdown();
        self.shut_down.store(true, Ordering::Release);
    }

    /// Terminates the engine if it did not finish, waits (briefly) for it to, and stops
    /// its threads. Never panics: it also runs while a failed test unwinds.
    fn stop(&self) {
        let finished = || lock(&self.events).contains(&Event::Finished);
        if !finished() && !self.shut_down.load(Ordering::Acquire) {
            self.engine.terminate();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !finished() && Instant::now() < deadline {
                if let Some(event) = self.engine.next_event(Some(deadline)) {
                    lock(&self.events).push(event);
                }
            }
        }
        self.engine.shutdown();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
        for (_, child) in lock(&self.children).iter() {
            let mut child = lock(child);
            let _ = child.signal(libc::SIGKILL);
            let _ = child.wait_timeout(Some(Duration::from_secs(5)));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Takes every outcome of a ready `job` as tasks finished; fails the test if an index
/// comes twice or the job does not say it is exhausted.
pub fn outcomes_as_finished(job: &Job) -> BTreeMap<usize, Outcome> {
    let mut outcomes = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match job.next_finished(Some(deadline)) {
            Ok(Some((index, outcome))) => {
                if let Some(earlier) = outcomes.insert(index, outcome) {
                    panic!("task {index} finished twice (first {earlier:?})");
                }
            }
            Ok(None) => return outcomes,
            Err(()) => panic!("job {} stalled after {} outcomes", job.id(), outcomes.len()),
        }
    }
}

/// A seed for a test's random choices, printed so that a failure can be replayed with
/// `POOL_SEED`.
pub fn seed() -> u64 {
    let seed = std::env::var("POOL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("POOL_SEED={seed}");
    seed
}

/// A cheap, well-mixed hash (splitmix64's finaliser), for random choices from a seed.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
