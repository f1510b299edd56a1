//! Shared-memory segments: anonymous (memfd) and named (POSIX shm), their mapping, the
//! header every segment starts with, and an allocator inside a segment.

pub mod layout;

pub use layout::ShmSafe;
