//! What may be placed in shared memory, and the header every segment starts with.
#![allow(unsafe_code)]

/// A type that can live in memory shared between processes.
///
/// # Safety
///
/// An implementor must be `#[repr(C)]` (so every process agrees on its layout), contain no
/// pointers, references, file descriptors, heap allocations or anything else that means
/// something in one process only (offsets into a segment instead of addresses), be valid
/// when all its bytes are zero (a fresh segment is zero-filled), and make every field that
/// another process may change concurrently an atomic from `crate::primitive`.
pub unsafe trait ShmSafe: Sized {}
