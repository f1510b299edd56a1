//! PyO3 bindings of `ferroproc-core`: the private extension module `ferroproc._core`.
//!
//! This crate converts types, releases the GIL around every wait and maps core errors to
//! Python exceptions in one place (`errors.rs`). It holds no logic of its own.
#![deny(unsafe_code)]

use pyo3::prelude::*;

/// The extension module `ferroproc._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
