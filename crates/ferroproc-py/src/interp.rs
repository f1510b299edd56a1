//! The interpreter's fork hooks, run around every fork the core makes.
#![allow(unsafe_code)]

use ferroproc_core::process::ForkHooks;
use pyo3::Python;

/// Runs `PyOS_BeforeFork`, `PyOS_AfterFork_Parent` and `PyOS_AfterFork_Child`, exactly as
/// `os.fork` does, so `os.register_at_fork` callbacks and the interpreter's own state
/// (import lock, thread states) are handled as for any Python fork.
///
/// Holding a `Python` token proves the GIL is held, which the hooks require.
pub struct InterpreterForkHooks<'py> {
    _gil: Python<'py>,
}

impl<'py> InterpreterForkHooks<'py> {
    /// Hooks for a fork made while `py`'s GIL is held.
    pub fn new(py: Python<'py>) -> Self {
        Self { _gil: py }
    }
}

impl std::fmt::Debug for InterpreterForkHooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InterpreterForkHooks")
    }
}

impl ForkHooks for InterpreterForkHooks<'_> {
    fn before_fork(&mut self) {
        // SAFETY: the GIL is held (proven by the `Python` token in `self`) and this runs
        // on the thread about to call fork(2), as the C API requires.
        unsafe { pyo3::ffi::PyOS_BeforeFork() }
    }

    fn after_fork_in_parent(&mut self) {
        // SAFETY: called in the parent right after fork(2), on the thread that called
        // `PyOS_BeforeFork`, which still holds the GIL.
        unsafe { pyo3::ffi::PyOS_AfterFork_Parent() }
    }

    fn after_fork_in_child(&mut self) {
        // SAFETY: called first thing in the child after fork(2), on its only thread, the
        // one that held the GIL in the parent; this re-initialises the runtime's state.
        unsafe { pyo3::ffi::PyOS_AfterFork_Child() }
    }
}
