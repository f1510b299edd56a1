//! `fork(2)` with hooks for the embedding runtime.

use super::{Child, Result};

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
pub fn fork(hooks: &mut dyn ForkHooks) -> Result<Forked> {
    let _ = hooks;
    todo!()
}
