//! Helpers for tests that run real processes.
//!
//! Children come in two kinds. Forked children of the (multithreaded) test process run a
//! closure that only makes async-signal-safe calls and leaves with `_exit`. Anything more
//! involved re-executes the test binary (ipc-channel's pattern): the child runs one named
//! test with `FERROPROC_TEST_CHILD` set, and that test acts out the child's role.
//!
//! Nothing here asserts how long anything takes. Waits have a generous limit only so that
//! a bug shows up as a failure instead of a hung test run.
#![allow(dead_code, unsafe_code)]

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::Duration;

use ferroproc_core::process::{
    fork, Child, ExitStatus, ForkHooks, Forked, ProcessError, SpawnCommand,
};

/// How long a wait may take before the test gives up on it. Far above any real run.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The environment variable naming the role a re-executed test binary plays.
pub const ROLE: &str = "FERROPROC_TEST_CHILD";

/// Aborts the whole test process if it is still alive when the guard has not been dropped
/// after a few minutes: a hung cross-process test must not hang the test run.
pub struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

pub fn watchdog(what: &'static str) -> Watchdog {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(PATIENCE * 3) {
            eprintln!("watchdog: {what} is hung; aborting");
            std::process::abort();
        }
    });
    Watchdog(done)
}

/// `_exit(code)`: leaves a forked child without running the test harness's exit path.
pub fn hard_exit(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and ends the process; it touches no memory of
    // ours, so it is sound in a child forked from a multithreaded process.
    unsafe { libc::_exit(code) }
}

/// Takes ownership of a descriptor this process inherited at `fd`.
pub fn inherited_fd(fd: RawFd) -> OwnedFd {
    let open = std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists();
    assert!(open, "descriptor {fd} was not inherited");
    // SAFETY: the parent passed this descriptor to us at `fd` (checked open just above),
    // and nothing else in this process owns it: each role takes each passed descriptor
    // exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Hooks that do nothing, for tests that do not embed a runtime.
pub struct NoHooks;

impl ForkHooks for NoHooks {
    fn before_fork(&mut self) {}
    fn after_fork_in_parent(&mut self) {}
    fn after_fork_in_child(&mut self) {}
}

/// Forks a child that runs `body` and exits with its return value. `body` runs in a child
/// of a multithreaded process: async-signal-safe calls only, no allocation, no panics.
pub fn fork_child(body: impl FnOnce() -> i32) -> Child {
    match fork(&mut NoHooks).expect("fork") {
        Forked::Parent(child) => child,
        Forked::Child => hard_exit(body()),
    }
}

/// Waits for `child` to exit; kills it and fails if it takes unreasonably long.
pub fn wait_for(child: &mut Child) -> ExitStatus {
    loop {
        match child.wait_timeout(Some(PATIENCE)) {
            Ok(Some(status)) => return status,
            Ok(None) => {
                let _ = child.signal(libc::SIGKILL);
                panic!("child {} did not exit", child.pid());
            }
            Err(ProcessError::Interrupted) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.pid()),
        }
    }
}

/// Blocks until one byte arrives on `fd`, or it is closed; for forked children to wait on
/// their test without sleeping. Async-signal-safe.
pub fn wait_for_byte(fd: BorrowedFd<'_>) -> i32 {
    let mut byte = [0u8];
    loop {
        match rustix::io::read(fd, &mut byte) {
            Ok(_) => return 0,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return 1,
        }
    }
}

/// Releases a child blocked in [`wait_for_byte`].
pub fn send_byte(fd: impl AsFd) {
    rustix::io::write(fd, b"x").expect("write to child");
}

/// A pipe, close-on-exec at both ends: `(read, write)`.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe")
}

/// Reads exactly `buf.len()` bytes (bounded by the test's watchdog).
pub fn read_exact(fd: impl AsFd, buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::io::read(fd.as_fd(), &mut buf[filled..]) {
            Ok(0) => panic!("end of file after {filled} of {} bytes", buf.len()),
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The test binary re-executed as a child playing `role` in the test named `test`, with
/// extra environment `env` (`NAME=value`). Pass descriptors with `pass_fd` before spawning.
///
/// `env(1)` sets the variables, since [`SpawnCommand`] passes our environment unchanged;
/// it keeps descriptors 3 and up open across its exec.
pub fn self_command<'fd>(test: &str, role: &str, env: &[String]) -> SpawnCommand<'fd> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = SpawnCommand::new("/usr/bin/env");
    command.arg(format!("{ROLE}={role}"));
    for var in env {
        command.arg(var);
    }
    command
        .arg(exe)
        .arg("--exact")
        .arg(test)
        .arg("--nocapture")
        .arg("--test-threads=1")
        .arg("-q");
    command
}

/// The role this process plays, if it is a re-executed child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// An environment variable a role needs, parsed.
pub fn env_var<T: std::str::FromStr>(name: &str) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not set"))
}
