//! `fork(2)` with hooks for the embedding runtime.

use super::{Child, ProcessError, Result};
use crate::sys;
use crate::sys::fork::ForkResult;

/// Code the embedding runtime must run around a fork.
///
/// The Python bindings call `PyOS_BeforeFork`, `PyOS_AfterFork_Parent` and
/// `PyOS_AfterFork_Child` here, which is exactly what `os.fork` does, so `os.register_at_fork`
/// handlers and the interpreter's own locks behave as with `os.fork`.
pub trait ForkHooks {
    /// Runs in the parent just before `fork(2)`.
    fn before_fork(&mut self);
    /// Runs in the parent just after `fork(2)`, whether it succeeded or not.
    fn after_fork_in_parent(&mut self);
    /// Runs in the child first thing after `fork(2)`.
    fn after_fork_in_child(&mut self);
}

/// Which side of a [`fork`] this is.
#[derive(Debug)]
pub enum Forked {
    /// This is the parent; here is the new child.
    Parent(Child),
    /// This is the new child.
    Child,
}

/// Forks the calling process, running `hooks` around the fork.
///
/// In the parent, the child is returned already held by its pidfd; if the pidfd cannot be
/// opened the child is killed and reaped before the error is returned, so no process is
/// left behind unsupervised.
///
/// As with `os.fork`: when the calling process has other threads, the child has only the
/// calling one, and locks the others held stay held. Until it execs or exits, the child
/// should only make async-signal-safe calls (or calls the runtime has made fork-safe with
/// its hooks). Nothing on the child's path out of this function allocates or takes a lock.
pub fn fork(hooks: &mut dyn ForkHooks) -> Result<Forked> {
    hooks.before_fork();
    match sys::fork::fork() {
        Ok(ForkResult::Child) => {
            hooks.after_fork_in_child();
            Ok(Forked::Child)
        }
        Ok(ForkResult::Parent(pid)) => {
            hooks.after_fork_in_parent();
            Child::adopt(pid).map(Forked::Parent)
        }
        Err(e) => {
            hooks.after_fork_in_parent();
            Err(ProcessError::os("fork", e))
        }
    }
}
