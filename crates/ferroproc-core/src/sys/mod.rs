//! The only place where ferroproc makes raw system calls.
//!
//! Each wrapper takes and returns safe types (`BorrowedFd`, `OwnedFd`, integers) and
//! documents the C call it makes. Everything else in the crate is `#![deny(unsafe_code)]`.
