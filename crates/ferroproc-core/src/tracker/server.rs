//! The reading side: lines from the pipe into the registry, cleanup at end of file.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;

use super::{Message, Registry, TrackerError, MAX_MESSAGE_LEN};
use crate::sys;

/// How much is read from the pipe at a time.
const CHUNK: usize = 4096;

/// What [`Tracker::pump`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The pipe is still open: call again.
    Open,
    /// Every writer has closed the pipe: time to [`Tracker::finish`].
    Closed,
}

/// The tracker's state: the read end of the pipe, a partial line, the registry.
///
/// Drive it with [`pump`](Self::pump) in slices (the Python binding does, to run signal
/// handlers between them) or with [`run`](Self::run) to the end.
#[derive(Debug)]
pub struct Tracker {
    fd: OwnedFd,
    /// Bytes of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// Set while skipping the rest of an overlong line.
    discarding: bool,
    registry: Registry,
}

impl Tracker {
    /// A tracker reading `fd`, the read end of the pipe (which it closes when dropped).
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            partial: Vec::new(),
            discarding: false,
            registry: Registry::new(),
        }
    }

    /// What is registered now.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Waits up to `timeout` (`None`: forever) for bytes, then applies every complete line
    /// read. A malformed line is reported on `log` and skipped. `Open` also when the wait
    /// timed out or a signal interrupted it.
    pub fn pump(
        &mut self,
        timeout: Option<Duration>,
        log: &mut dyn Write,
    ) -> Result<Pumped, TrackerError> {
        match sys::poll::readable(self.fd.as_fd(), timeout) {
            Ok(true) => {}
            Ok(false) | Err(Errno::INTR) => return Ok(Pumped::Open),
            Err(errno) => return Err(TrackerError::os("poll")(errno)),
        }
        let mut chunk = [0u8; CHUNK];
        let read = match sys::stream::read(self.fd.as_fd(), &mut chunk) {
            Ok(read) => read,
            Err(Errno::INTR | Errno::AGAIN) => return Ok(Pumped::Open),
            Err(errno) => return Err(TrackerError::os("read")(errno)),
        };
        if read == 0 {
            if !self.partial.is_empty() && !self.discarding {
                let line = std::mem::take(&mut self.partial);
                report(
                    log,
                    &TrackerError::BadMessage {
                        line: String::from_utf8_lossy(&line).into_owned(),
                        reason: "cut off by the end of the stream".to_owned(),
                    },
                );
            }
            return Ok(Pumped::Closed);
        }
        self.take_bytes(&chunk[..read], log);
        Ok(Pumped::Open)
    }

    /// Splits `bytes` into lines and applies each complete one.
    fn take_bytes(&mut self, mut bytes: &[u8], log: &mut dyn Write) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&bytes[..end], &bytes[end + 1..]);
            bytes = rest;
            if std::mem::take(&mut self.discarding) {
                self.partial.clear();
                continue;
            }
            if self.partial.is_empty() {
                self.take_line(head, log);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.take_line(&line, log);
            }
        }
        if self.discarding {
            return;
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > MAX_MESSAGE_LEN {
            // No writer sends this; skip to the next newline rather than buffer forever.
            let mut shown = std::mem::take(&mut self.partial);
            shown.truncate(64);
            report(
                log,
                &TrackerError::BadMessage {
                    line: format!("{}...", String::from_utf8_lossy(&shown)),
                    reason: format!("longer than {MAX_MESSAGE_LEN} bytes"),
                },
            );
            self.discarding = true;
        }
    }

    fn take_line(&mut self, line: &[u8], log: &mut dyn Write) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match Message::parse(line) {
            Ok(message) => self.registry.apply(&message),
            Err(err) => report(log, &err),
        }
    }

    /// Cleans up whatever is still registered (see [`Registry::cleanup_all`]) and closes
    /// the pipe. Returns how many resources could not be cleaned up.
    pub fn finish(mut self, log: &mut dyn Write) -> usize {
        self.registry.cleanup_all(log)
    }

    /// Reads messages until every writer has closed the pipe, then cleans up. A read error
    /// also ends the reading, after the cleanup, and is returned.
    pub fn run(fd: OwnedFd, log: &mut dyn Write) -> Result<usize, TrackerError> {
        let mut tracker = Self::new(fd);
        loop {
            match tracker.pump(None, log) {
                Ok(Pumped::Open) => {}
                Ok(Pumped::Closed) => return Ok(tracker.finish(log)),
                Err(err) => {
                    tracker.finish(log);
                    return Err(err);
                }
            }
        }
    }
}

/// Reports a message that was ignored.
fn report(log: &mut dyn Write, err: &TrackerError) {
    let _ = writeln!(log, "resource_tracker: ignoring {err}");
    let _ = log.flush();
}
