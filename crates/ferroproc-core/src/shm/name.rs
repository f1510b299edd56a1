//! Names of POSIX shared-memory segments.
//!
//! A name is one path component under `/dev/shm`, given without the leading `/` that
//! `shm_open(3)` takes (Python's `SharedMemory.name` shows names the same way; the Python
//! layer strips a leading `/` from names users pass). Names ferroproc chooses are
//! unguessable: [`ShmName::random`] is a fixed prefix and 128 bits from the kernel's random
//! generator, so another local user can neither predict a segment's name to squat on it
//! nor find one to open by guessing (and the segment is owner-only anyway).

use std::fmt;

use super::ShmError;
use crate::sys;

/// The prefix of every name ferroproc makes up, so its segments are easy to spot in
/// `/dev/shm`.
pub const RANDOM_PREFIX: &str = "fp_";

/// The longest name accepted: `NAME_MAX`, the longest file name Linux allows.
pub const MAX_LEN: usize = 255;

/// A valid shared-memory segment name: non-empty, at most [`MAX_LEN`] bytes, no `/` and
/// no NUL, and neither `.` nor `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShmName(String);

impl ShmName {
    /// Checks a name chosen by the caller.
    pub fn new(name: &str) -> Result<Self, ShmError> {
        let reason = if name.is_empty() {
            Some("the name is empty")
        } else if name.len() > MAX_LEN {
            Some("the name is longer than 255 bytes")
        } else if name.contains('/') {
            Some("the name contains '/'")
        } else if name.contains('\0') {
            Some("the name contains a NUL character")
        } else if name == "." || name == ".." {
            Some("'.' and '..' are not names")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ShmError::InvalidName {
                name: name.to_owned(),
                reason,
            }),
            None => Ok(Self(name.to_owned())),
        }
    }

    /// A fresh unguessable name: [`RANDOM_PREFIX`] followed by 128 random bits in hex
    /// (35 bytes in all).
    pub fn random() -> Result<Self, ShmError> {
        let mut bits = [0u8; 16];
        sys::shm::random_bytes(&mut bits).map_err(ShmError::os("getrandom"))?;
        let mut name = String::with_capacity(RANDOM_PREFIX.len() + 2 * bits.len());
        name.push_str(RANDOM_PREFIX);
        for byte in bits {
            name.push(hex_digit(byte >> 4));
            name.push(hex_digit(byte & 0xf));
        }
        Ok(Self(name))
    }

    /// The name, without a leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ShmName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["psm_1234", "a", "with space", "ünï", &"x".repeat(MAX_LEN)] {
            assert_eq!(ShmName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_bad_names() {
        for name in [
            "",
            "/psm",
            "a/b",
            "a\0b",
            ".",
            "..",
            &"x".repeat(MAX_LEN + 1),
        ] {
            let err = ShmName::new(name).unwrap_err();
            assert!(
                matches!(err, ShmError::InvalidName { .. }),
                "{name:?}: {err}"
            );
        }
    }

    #[test]
    fn random_names_are_valid_and_distinct() {
        let a = ShmName::random().unwrap();
        let b = ShmName::random().unwrap();
        assert_ne!(a, b);
        for name in [&a, &b] {
            let hex = name.as_str().strip_prefix(RANDOM_PREFIX).unwrap();
            assert_eq!(hex.len(), 32);
            assert!(hex
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert_eq!(&ShmName::new(name.as_str()).unwrap(), name);
        }
    }
}
