//! PyO3 bindings of `ferroproc-core`: the private extension module `ferroproc._core`.
//!
//! This crate converts types, releases the GIL around every wait and maps core errors to
//! Python exceptions in one place (`errors.rs`). It holds no logic of its own. Unsafe code
//! is confined to `fd.rs` (descriptor numbers from Python), `interp.rs` (the
//! interpreter's fork hooks) and `buffer.rs` (the buffer protocol).
#![deny(unsafe_code)]

mod blocking;
mod buffer;
mod channel;
mod codec;
mod connection;
mod errors;
mod fd;
mod handles;
mod identity;
mod interp;
mod overflow;
mod pool;
mod process;
mod shared_memory;
mod shm;
mod store;
mod store_key;
mod sync;
mod tracker;

use pyo3::prelude::*;

/// The extension module `ferroproc._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("WAIT_TICK", blocking::TICK.as_secs_f64())?;
    m.add_class::<process::PyChild>()?;
    m.add_class::<process::PyParentLink>()?;
    m.add_function(wrap_pyfunction!(process::fork, m)?)?;
    m.add_function(wrap_pyfunction!(process::spawn, m)?)?;
    m.add_function(wrap_pyfunction!(process::bootstrap_create, m)?)?;
    m.add_function(wrap_pyfunction!(process::bootstrap_read, m)?)?;
    m.add_function(wrap_pyfunction!(process::forkserver_listen, m)?)?;
    m.add_function(wrap_pyfunction!(process::forkserver_request, m)?)?;
    m.add_function(wrap_pyfunction!(process::forkserver_serve, m)?)?;
    m.add_function(wrap_pyfunction!(process::usable_cpu_count, m)?)?;
    m.add_class::<shm::PyArena>()?;
    m.add_class::<shm::PyRawBlock>()?;
    m.add_class::<shm::PySharedBuffer>()?;
    m.add_class::<shared_memory::PyNamedSegment>()?;
    m.add_function(wrap_pyfunction!(identity::note_fork, m)?)?;
    m.add("RECURSIVE_MUTEX", sync::RECURSIVE_MUTEX)?;
    m.add("SEMAPHORE", sync::SEMAPHORE)?;
    m.add("SEM_VALUE_MAX", ferroproc_core::sync::SEM_VALUE_MAX)?;
    m.add_class::<channel::PyChannel>()?;
    m.add_class::<sync::PySemLock>()?;
    m.add_class::<sync::PyCondition>()?;
    m.add_class::<sync::PyEvent>()?;
    m.add_class::<sync::PyBarrier>()?;
    m.add_class::<sync::PyBarrierTicket>()?;
    m.add_function(wrap_pyfunction!(connection::send_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(connection::is_packet_socket, m)?)?;
    m.add_function(wrap_pyfunction!(handles::send_fds, m)?)?;
    m.add_function(wrap_pyfunction!(handles::recv_fds, m)?)?;
    m.add_function(wrap_pyfunction!(connection::recv_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(connection::recv_bytes_into, m)?)?;
    m.add_function(wrap_pyfunction!(connection::poll, m)?)?;
    m.add_function(wrap_pyfunction!(connection::wait, m)?)?;
    m.add_class::<pool::PyPoolEngine>()?;
    m.add_class::<pool::PyJob>()?;
    m.add_class::<pool::PyWorker>()?;
    m.add("POOL_RETURNED", pool::RETURNED)?;
    m.add("POOL_RAISED", pool::RAISED)?;
    m.add("POOL_WORKER_LOST", pool::WORKER_LOST)?;
    m.add("POOL_TIMED_OUT", pool::TIMED_OUT)?;
    m.add("POOL_CANCELLED", pool::CANCELLED)?;
    m.add("POOL_UNDECODABLE", pool::UNDECODABLE)?;
    m.add_function(wrap_pyfunction!(tracker::run_resource_tracker, m)?)?;
    m.add_function(wrap_pyfunction!(tracker::resource_tracker_send, m)?)?;
    m.add_function(wrap_pyfunction!(tracker::cleanup_resource, m)?)?;
    m.add_class::<store::PyStore>()?;
    Ok(())
}
