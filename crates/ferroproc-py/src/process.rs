//! Bindings of `ferroproc_core::process`: launching, waiting for and signalling children.

use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ferroproc_core::process::{
    self as core, forkserver, Bootstrap, ExitStatus, Forked, ParentLink, ProcessError, SpawnCommand,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::blocking::{deadline_after, wait_until};

/// How long is left until `until`, for core calls that take a timeout.
fn left(until: std::time::Instant) -> Option<Duration> {
    Some(until.saturating_duration_since(std::time::Instant::now()))
}
use crate::errors::OrRaise;
use crate::fd::PyFd;
use crate::interp::InterpreterForkHooks;

/// The two kinds of child the core supervises.
#[derive(Debug)]
enum Supervised {
    /// A direct child (fork or spawn), reaped through its pidfd.
    Direct(core::Child),
    /// A child of the fork server, whose exit status the server reports.
    Served(forkserver::ServerChild),
}

impl Supervised {
    fn status(&self) -> Option<ExitStatus> {
        match self {
            Self::Direct(child) => child.status(),
            Self::Served(child) => child.status(),
        }
    }

    fn wait_timeout(&mut self, timeout: Option<Duration>) -> core::Result<Option<ExitStatus>> {
        match self {
            Self::Direct(child) => child.wait_timeout(timeout),
            Self::Served(child) => child.wait_timeout(timeout),
        }
    }

    fn try_wait(&mut self) -> core::Result<Option<ExitStatus>> {
        match self {
            Self::Direct(child) => child.try_wait(),
            Self::Served(child) => child.try_wait(),
        }
    }

    fn signal(&self, signo: i32) -> core::Result<bool> {
        match self {
            Self::Direct(child) => child.signal(signo),
            Self::Served(child) => child.signal(signo),
        }
    }

    fn sentinel(&self) -> RawFd {
        match self {
            Self::Direct(child) => child.sentinel().as_raw_fd(),
            Self::Served(child) => child.sentinel().as_raw_fd(),
        }
    }
}

/// A started child process.
///
/// `sentinel` is a descriptor that becomes readable when the child has exited (for
/// `select`/`connection.wait`). `wait` reaps the child; `returncode` follows the
/// `multiprocessing` convention (exit code, or the negated signal number).
#[pyclass(frozen, module = "ferroproc._core", name = "Child")]
#[derive(Debug)]
pub struct PyChild {
    pid: i32,
    sentinel: RawFd,
    inner: Arc<Mutex<Option<Supervised>>>,
}

impl PyChild {
    fn new(inner: Supervised) -> Self {
        let pid = match &inner {
            Supervised::Direct(child) => child.pid(),
            Supervised::Served(child) => child.pid(),
        };
        Self {
            pid,
            sentinel: inner.sentinel(),
            inner: Arc::new(Mutex::new(Some(inner))),
        }
    }

    /// Locks the state; only ever called with the GIL released, so a thread waiting for
    /// the lock never blocks the interpreter.
    fn lock(&self) -> MutexGuard<'_, Option<Supervised>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The same child, for the pool engine (which reaps and may kill it); the status it
    /// reaps is the one `poll` and `wait` report.
    pub(crate) fn shared(&self) -> PoolChild {
        PoolChild {
            pid: self.pid,
            sentinel: self.sentinel,
            inner: Arc::clone(&self.inner),
        }
    }
}

/// A [`PyChild`] as a pool worker.
#[derive(Debug)]
pub struct PoolChild {
    pid: i32,
    sentinel: RawFd,
    inner: Arc<Mutex<Option<Supervised>>>,
}

impl ferroproc_core::pool::WorkerProcess for PoolChild {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn sentinel(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        // The child's lock keeps the descriptor open while it is duplicated.
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let closed = || std::io::Error::other("the child handle was closed");
        if guard.is_none() {
            return Err(closed());
        }
        let fd = PyFd::new(self.sentinel).map_err(|_| closed())?;
        fd.borrow().try_clone_to_owned()
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let child = guard.as_mut()?;
        child.status().or_else(|| child.try_wait().ok().flatten())
    }

    fn kill(&self) {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = guard.as_ref() {
            let _ = child.signal(9);
        }
    }
}

fn closed() -> PyErr {
    PyValueError::new_err("process handle is closed")
}

#[pymethods]
impl PyChild {
    /// The process id.
    #[getter]
    fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that polls readable once the child has exited.
    #[getter]
    fn sentinel(&self) -> RawFd {
        self.sentinel
    }

    /// The return code if the child has been reaped, else `None`.
    #[getter]
    fn returncode(&self, py: Python<'_>) -> Option<i32> {
        py.detach(|| self.lock().as_ref().and_then(Supervised::status))
            .map(ExitStatus::returncode)
    }

    /// Reaps the child if it has exited; returns its return code or `None`. Never blocks.
    fn poll(&self, py: Python<'_>) -> PyResult<Option<i32>> {
        let status = py.detach(|| match self.lock().as_mut() {
            Some(child) => Ok(child.try_wait()),
            None => Err(()),
        });
        let status = status.map_err(|()| closed())?.or_raise()?;
        Ok(status.map(ExitStatus::returncode))
    }

    /// Waits up to `timeout` seconds (forever if `None`) for the child to exit and reaps
    /// it. Returns the return code, or `None` on timeout. Signal handlers run while
    /// waiting, so Ctrl-C interrupts it.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<i32>> {
        let deadline = deadline_after(timeout)?;
        let mut was_closed = false;
        let status = wait_until(py, deadline, |until| match self.lock().as_mut() {
            Some(child) => child.wait_timeout(left(until)),
            None => {
                was_closed = true;
                Ok(Some(ExitStatus::Exited(0)))
            }
        })?;
        if was_closed {
            return Err(closed());
        }
        Ok(status.map(ExitStatus::returncode))
    }

    /// Sends signal `signo`. Returns `False` if the child had already exited.
    fn send_signal(&self, py: Python<'_>, signo: i32) -> PyResult<bool> {
        let sent = py.detach(|| self.lock().as_ref().map(|child| child.signal(signo)));
        sent.ok_or_else(closed)?.or_raise()
    }

    /// Releases the pidfd and other descriptors. The process itself is left alone.
    fn close(&self, py: Python<'_>) {
        let inner = py.detach(|| self.lock().take());
        drop(inner);
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.returncode(py) {
            Some(code) => format!("<Child pid={} returncode={code}>", self.pid),
            None => format!("<Child pid={}>", self.pid),
        }
    }
}

/// The parent of this process, as seen from a child.
#[pyclass(frozen, module = "ferroproc._core", name = "ParentLink")]
#[derive(Debug)]
pub struct PyParentLink {
    pid: i32,
    sentinel: RawFd,
    link: Mutex<Option<ParentLink>>,
}

impl PyParentLink {
    fn new(link: ParentLink) -> Self {
        Self {
            pid: link.pid(),
            sentinel: link.sentinel().as_raw_fd(),
            link: Mutex::new(Some(link)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<ParentLink>> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl PyParentLink {
    /// Links to the parent `parent_pid`; `None` if it is no longer this process's parent
    /// (it has died). With `die_with_parent`, this process is `SIGKILL`ed when the parent
    /// exits (when it is already gone, `None` tells the caller to act).
    #[staticmethod]
    #[pyo3(signature = (parent_pid, die_with_parent=false))]
    fn to_parent(parent_pid: i32, die_with_parent: bool) -> PyResult<Option<Self>> {
        // Two quick system calls, made in a fresh child, so the GIL stays held: releasing
        // it would only write to memory the child still shares with its parent.
        let link = ParentLink::to_parent(parent_pid).or_raise()?;
        match link {
            Some(link) => {
                if die_with_parent {
                    link.die_with_parent().or_raise()?;
                }
                Ok(Some(Self::new(link)))
            }
            None => Ok(None),
        }
    }

    /// The parent's pid.
    #[getter]
    fn pid(&self) -> i32 {
        self.pid
    }

    /// A descriptor that polls readable once the parent has exited.
    #[getter]
    fn sentinel(&self) -> RawFd {
        self.sentinel
    }

    /// Waits up to `timeout` seconds (forever if `None`); `True` once the parent exited.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline_after(timeout)?;
        let exited = wait_until(py, deadline, |until| match self.lock().as_ref() {
            Some(link) => Ok::<_, ProcessError>(link.wait_timeout(left(until))?.then_some(())),
            None => Ok(Some(())),
        })?;
        Ok(exited.is_some())
    }

    /// Kills this process with `SIGKILL` as soon as the parent exits.
    fn die_with_parent(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| match self.lock().as_ref() {
            Some(link) => link.die_with_parent(),
            None => Ok(()),
        })
        .or_raise()
    }

    /// Releases the parent's pidfd.
    fn close(&self, py: Python<'_>) {
        let link = py.detach(|| self.lock().take());
        drop(link);
    }

    fn __repr__(&self) -> String {
        format!("<ParentLink pid={}>", self.pid)
    }
}

/// Forks this process, running the interpreter's fork hooks as `os.fork` does. Returns the
/// child in the parent and `None` in the child.
#[pyfunction]
pub fn fork(py: Python<'_>) -> PyResult<Option<PyChild>> {
    let mut hooks = InterpreterForkHooks::new(py);
    match core::fork(&mut hooks).or_raise()? {
        Forked::Parent(child) => Ok(Some(PyChild::new(Supervised::Direct(child)))),
        Forked::Child => Ok(None),
    }
}

/// Starts `executable` with `args` (not including `argv[0]`) by `posix_spawn`. The child
/// inherits standard input, output and error, and `pass_fds` renumbered from 3 in order;
/// nothing else. It starts with `blocked_signals` blocked, and no other.
#[pyfunction]
#[pyo3(signature = (executable, args, pass_fds, blocked_signals = Vec::new()))]
pub fn spawn(
    py: Python<'_>,
    executable: std::path::PathBuf,
    args: Vec<std::ffi::OsString>,
    pass_fds: Vec<RawFd>,
    blocked_signals: Vec<i32>,
) -> PyResult<PyChild> {
    let fds = pass_fds
        .into_iter()
        .map(PyFd::new)
        .collect::<PyResult<Vec<_>>>()?;
    let child = py
        .detach(|| {
            let mut command = SpawnCommand::new(&executable);
            for arg in &args {
                command.arg(arg);
            }
            for fd in &fds {
                command.pass_fd(fd.borrow());
            }
            command.block_signals(&blocked_signals);
            command.spawn()
        })
        .or_raise()?;
    Ok(PyChild::new(Supervised::Direct(child)))
}

/// Stores `payload` in a sealed memfd and returns its descriptor (the caller owns it).
#[pyfunction]
pub fn bootstrap_create(py: Python<'_>, payload: &[u8]) -> PyResult<RawFd> {
    let fd = py.detach(|| Bootstrap::create(payload)).or_raise()?;
    Ok(fd.into_raw_fd())
}

/// Reads the payload of a memfd made by `bootstrap_create`.
#[pyfunction]
pub fn bootstrap_read<'py>(py: Python<'py>, fd: RawFd) -> PyResult<Bound<'py, PyBytes>> {
    let fd = PyFd::new(fd)?;
    let payload = py.detach(|| Bootstrap::read(fd.borrow())).or_raise()?;
    Ok(PyBytes::new(py, &payload))
}

/// Creates the listening socket of a fork server in a fresh private directory under `dir`.
/// Returns the listener's descriptor (the caller owns it) and the socket's path.
#[pyfunction]
#[pyo3(signature = (dir=None))]
pub fn forkserver_listen(
    py: Python<'_>,
    dir: Option<std::path::PathBuf>,
) -> PyResult<(RawFd, std::ffi::OsString)> {
    let (listener, address) = py
        .detach(|| forkserver::listen(dir.as_deref()))
        .or_raise()?;
    Ok((listener.into_raw_fd(), address.into_os_string()))
}

/// Asks the fork server at `address` for a child that receives `fds`.
#[pyfunction]
pub fn forkserver_request(
    py: Python<'_>,
    address: std::path::PathBuf,
    fds: Vec<RawFd>,
) -> PyResult<PyChild> {
    let fds = fds
        .into_iter()
        .map(PyFd::new)
        .collect::<PyResult<Vec<_>>>()?;
    let child = py
        .detach(|| {
            let borrowed: Vec<_> = fds.iter().map(PyFd::borrow).collect();
            forkserver::request_fork(&address, &borrowed)
        })
        .or_raise()?;
    Ok(PyChild::new(Supervised::Served(child)))
}

/// Runs the fork server's loop on `listener_fd` (taken over: the caller must not close
/// it) until the process `parent_pid` exits.
///
/// Returns `None` in the server once the parent has gone; in each forked child it returns
/// `(client, fds)`: the link to the client that asked for the child and the descriptors it
/// sent (owned by the caller).
#[pyfunction]
pub fn forkserver_serve(
    py: Python<'_>,
    listener_fd: RawFd,
    parent_pid: i32,
) -> PyResult<Option<(PyParentLink, Vec<RawFd>)>> {
    let listener = PyFd::new(listener_fd)?.into_owned();
    let Some(parent) = py.detach(|| ParentLink::to_parent(parent_pid)).or_raise()? else {
        return Ok(None);
    };
    let mut server = forkserver::Server::new(listener, parent);
    loop {
        let event = wait_until(py, None, |until| {
            match server.next_request(left(until))? {
                forkserver::Event::Timeout => Ok::<_, ProcessError>(None),
                event => Ok(Some(event)),
            }
        })?;
        let request = match event {
            Some(forkserver::Event::Request(request)) => request,
            Some(forkserver::Event::ParentExited) => return Ok(None),
            Some(forkserver::Event::Timeout) | None => continue,
        };
        let mut hooks = InterpreterForkHooks::new(py);
        match core::fork(&mut hooks) {
            Ok(Forked::Parent(child)) => {
                // A client that vanished before the reply only loses its own child.
                let _ = server.child_started(request, child);
            }
            Ok(Forked::Child) => {
                let (client, fds) = server.into_child(request).into_parts();
                let fds = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
                return Ok(Some((PyParentLink::new(client), fds)));
            }
            // Out of processes or memory: this request fails (its connection closes when
            // `request` drops), the server goes on.
            Err(_) => {}
        }
    }
}

/// The number of CPUs this process can use: its affinity mask, limited by any cgroup CPU
/// quota (rounded up), and at least 1. See `ferroproc_core::process::usable_cpus`.
#[pyfunction]
pub fn usable_cpu_count() -> usize {
    core::usable_cpus()
}
