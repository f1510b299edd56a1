//! Starting a fresh program with `posix_spawn(3)`.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::io::Errno;

use super::{Child, ProcessError, Result};
use crate::sys;

/// The number the first passed descriptor gets in the child.
const FIRST_PASSED_FD: RawFd = 3;

/// A program to start with `posix_spawn(3)`, inheriting only standard input, output and
/// error plus the descriptors given to [`SpawnCommand::pass_fd`].
///
/// Passed descriptors are renumbered: the first appears in the child as fd 3, the next as
/// 4, and so on; `pass_fd` returns the number, to be written on the child's command line.
/// Every other descriptor of the parent is closed in the child, whatever its close-on-exec
/// flag. The environment is inherited.
///
/// The child starts with no signal blocked, and with `SIGPIPE` and `SIGXFSZ` at their
/// default action even if the parent ignored them (Python does); other ignored signals
/// stay ignored across `exec`, as they would for any program (`nohup` relies on it).
///
/// A program or argument containing a NUL byte cannot be passed to the system; `spawn`
/// then fails with `EINVAL`.
#[derive(Debug)]
pub struct SpawnCommand<'fd> {
    program: CString,
    /// `argv`, starting with `argv[0]`.
    args: Vec<CString>,
    fds: Vec<BorrowedFd<'fd>>,
    /// A program or argument had a NUL byte; reported by `spawn`, since the builder
    /// methods cannot fail.
    has_nul: bool,
    /// Signals the child starts with blocked (none by default).
    blocked: Vec<i32>,
}

impl<'fd> SpawnCommand<'fd> {
    /// A command that runs `program` (a path; no `PATH` search) with `argv[0] = program`.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let mut command = Self {
            program: CString::default(),
            args: Vec::new(),
            fds: Vec::new(),
            has_nul: false,
            blocked: Vec::new(),
        };
        command.program = command.c_string(program.as_ref());
        command.args.push(command.program.clone());
        command
    }

    fn c_string(&mut self, s: &OsStr) -> CString {
        CString::new(s.as_bytes()).unwrap_or_else(|_| {
            self.has_nul = true;
            CString::default()
        })
    }

    /// Starts the child with `signals` blocked (they stay pending until it unblocks
    /// them): a program that sets up its own handling of a signal first, and unblocks it
    /// after, cannot be killed by it while it starts. Every other signal starts unblocked.
    pub fn block_signals(&mut self, signals: &[i32]) -> &mut Self {
        self.blocked.extend_from_slice(signals);
        self
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        let arg = self.c_string(arg.as_ref());
        self.args.push(arg);
        self
    }

    /// Passes `fd` to the child and returns the descriptor number it will have there.
    pub fn pass_fd(&mut self, fd: BorrowedFd<'fd>) -> RawFd {
        self.fds.push(fd);
        FIRST_PASSED_FD + RawFd::try_from(self.fds.len() - 1).unwrap_or(RawFd::MAX - 3)
    }

    /// Starts the program.
    pub fn spawn(&self) -> Result<Child> {
        if self.has_nul {
            return Err(ProcessError::os("posix_spawn", Errno::INVAL));
        }
        let passed = RawFd::try_from(self.fds.len())
            .map_err(|_| ProcessError::os("posix_spawn", Errno::MFILE))?;
        let close_from = FIRST_PASSED_FD + passed;
        // Copies numbered above every target, so that putting one passed descriptor in
        // place never overwrites another still to be moved (fd 4 passed first, fd 3
        // second). They are close-on-exec here and closed by `closefrom` in the child.
        let copies = self
            .fds
            .iter()
            .map(|fd| sys::fd::dup_above(*fd, close_from))
            .collect::<rustix::io::Result<Vec<OwnedFd>>>()
            .map_err(|e| ProcessError::os("fcntl", e))?;
        let dups: Vec<(BorrowedFd<'_>, RawFd)> = copies
            .iter()
            .zip(FIRST_PASSED_FD..)
            .map(|(fd, target)| (fd.as_fd(), target))
            .collect();
        // A snapshot taken under std's environment lock rather than a read of the live
        // `environ`, which another thread may be changing.
        let envp: Vec<CString> = std::env::vars_os()
            .filter_map(|(key, value)| {
                let mut entry = key.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                CString::new(entry).ok()
            })
            .collect();
        let pid = sys::spawn::posix_spawn(
            &self.program,
            &self.args,
            &envp,
            &dups,
            close_from,
            &self.blocked,
        )
        .map_err(|e| ProcessError::os("posix_spawn", e))?;
        Child::adopt(pid)
    }
}
