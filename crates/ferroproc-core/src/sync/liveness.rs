//! Asking whether a process is still alive.

/// Tells whether a process is still alive. The real implementation asks the kernel
/// (through a pidfd, so a zombie counts as dead); loom models and tests inject their own.
pub trait Liveness {
    /// Whether the process `pid` is alive (a zombie is not).
    fn is_alive(&self, pid: u32) -> bool;
}
