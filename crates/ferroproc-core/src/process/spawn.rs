//! Starting a fresh program with `posix_spawn(3)`.

use std::ffi::OsStr;
use std::os::fd::{BorrowedFd, RawFd};

use super::{Child, Result};

/// A program to start with `posix_spawn(3)`, inheriting only standard input, output and
/// error plus the descriptors given to [`SpawnCommand::pass_fd`].
///
/// Passed descriptors are renumbered: the first appears in the child as fd 3, the next as
/// 4, and so on; `pass_fd` returns the number, to be written on the child's command line.
/// Every other descriptor of the parent is closed in the child, whatever its close-on-exec
/// flag. The environment is inherited.
#[derive(Debug)]
pub struct SpawnCommand<'fd> {
    program: std::ffi::CString,
    args: Vec<std::ffi::CString>,
    fds: Vec<BorrowedFd<'fd>>,
}

impl<'fd> SpawnCommand<'fd> {
    /// A command that runs `program` (a path; no `PATH` search) with `argv[0] = program`.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let _ = program;
        todo!()
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        let _ = arg;
        todo!()
    }

    /// Passes `fd` to the child and returns the descriptor number it will have there.
    pub fn pass_fd(&mut self, fd: BorrowedFd<'fd>) -> RawFd {
        let _ = fd;
        todo!()
    }

    /// Starts the program.
    pub fn spawn(&self) -> Result<Child> {
        todo!("{:?} {:?} {:?}", self.program, self.args, self.fds)
    }
}
