//! How a process ended.

/// How a child ended, as `waitid(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The process called `exit` (or returned from `main`) with this code.
    Exited(i32),
    /// The process was killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// The status in Python's `multiprocessing` convention: the exit code, or the
    /// negated signal number (`-9` for `SIGKILL`).
    pub fn returncode(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signo) => -signo,
        }
    }

    /// The inverse of [`ExitStatus::returncode`].
    pub fn from_returncode(returncode: i32) -> Self {
        if returncode < 0 {
            Self::Signaled(-returncode)
        } else {
            Self::Exited(returncode)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn returncode_round_trips() {
        for status in [
            ExitStatus::Exited(0),
            ExitStatus::Exited(3),
            ExitStatus::Signaled(9),
        ] {
            assert_eq!(ExitStatus::from_returncode(status.returncode()), status);
        }
        assert_eq!(ExitStatus::Signaled(15).returncode(), -15);
    }
}
