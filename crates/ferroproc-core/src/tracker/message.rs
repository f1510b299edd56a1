//! One line of the tracker's protocol: `COMMAND:name:rtype\n`, ASCII.

use std::fmt;
use std::io::IoSlice;
use std::os::fd::BorrowedFd;

use super::TrackerError;
use crate::sys;

/// The longest message, newline included: POSIX makes a pipe write of at most `PIPE_BUF`
/// bytes atomic and guarantees `PIPE_BUF >= 512`, so messages of several writers never
/// interleave.
pub const MAX_MESSAGE_LEN: usize = 512;

/// What a message asks of the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `REGISTER`: clean the resource up unless it is unregistered first.
    Register,
    /// `UNREGISTER`: the resource was cleaned up by its user; forget it.
    Unregister,
    /// `PROBE`: nothing; a writer checks the tracker still reads the pipe.
    Probe,
}

impl Command {
    /// The command as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "REGISTER",
            Self::Unregister => "UNREGISTER",
            Self::Probe => "PROBE",
        }
    }

    /// The command written as `word`, if any.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "REGISTER" => Some(Self::Register),
            "UNREGISTER" => Some(Self::Unregister),
            "PROBE" => Some(Self::Probe),
            _ => None,
        }
    }
}

/// The kinds of resource the tracker knows how to clean up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// `shared_memory`: a POSIX shared-memory name, unlinked from `/dev/shm`.
    SharedMemory,
    /// `semaphore`: accepted for compatibility and ignored: ferroproc's semaphores live
    /// in anonymous memory that the kernel frees with its last user.
    Semaphore,
    /// `folder`: a directory, removed with everything in it.
    Folder,
    /// `noop`: nothing to clean up (the type of `PROBE`).
    Noop,
}

impl ResourceType {
    /// Every type, in the order cleanup visits them.
    pub const ALL: [Self; 4] = [
        Self::SharedMemory,
        Self::Semaphore,
        Self::Folder,
        Self::Noop,
    ];

    /// The type as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SharedMemory => "shared_memory",
            Self::Semaphore => "semaphore",
            Self::Folder => "folder",
            Self::Noop => "noop",
        }
    }

    /// The type written as `word`, if any.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rtype| rtype.as_str() == word)
    }

    /// Whether resources of this type are kept until cleanup (the others have nothing to
    /// clean up, so registering them is accepted and forgotten).
    pub fn is_tracked(self) -> bool {
        matches!(self, Self::SharedMemory | Self::Folder)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What to do.
    pub command: Command,
    /// The resource's name (`0` for a probe).
    pub name: String,
    /// The resource's type.
    pub rtype: ResourceType,
}

impl Message {
    /// A message for `name` of type `rtype`.
    pub fn new(command: Command, name: impl Into<String>, rtype: ResourceType) -> Self {
        Self {
            command,
            name: name.into(),
            rtype,
        }
    }

    /// The probe a writer sends to check the tracker is alive.
    pub fn probe() -> Self {
        Self::new(Command::Probe, "0", ResourceType::Noop)
    }

    /// Parses one line (its trailing newline optional). Surrounding whitespace is
    /// ignored, as the stdlib's tracker does.
    pub fn parse(line: &[u8]) -> Result<Self, TrackerError> {
        let bad = |reason: &str| TrackerError::BadMessage {
            line: String::from_utf8_lossy(line).trim_end().to_owned(),
            reason: reason.to_owned(),
        };
        if !line.is_ascii() {
            return Err(bad("not ASCII"));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| bad("not ASCII"))?
            .trim();
        let mut fields = text.split(':');
        let (Some(command), Some(name), Some(rtype), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected COMMAND:name:rtype"));
        };
        let command = Command::parse(command).ok_or_else(|| bad("unknown command"))?;
        let rtype = ResourceType::parse(rtype).ok_or_else(|| {
            bad(&format!(
                "cannot register {name} for automatic cleanup: unknown resource type {rtype}"
            ))
        })?;
        Ok(Self::new(command, name, rtype))
    }

    /// The message as one line, newline included. Fails if a field holds a character the
    /// format cannot carry (`:`, a line break, non-ASCII) or the line would be longer than
    /// [`MAX_MESSAGE_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, TrackerError> {
        let name = &self.name;
        if !name.is_ascii() {
            return Err(TrackerError::Unsendable(format!(
                "resource name {name:?} is not ASCII"
            )));
        }
        if name.contains([':', '\n', '\r']) {
            return Err(TrackerError::Unsendable(format!(
                "resource name {name:?} contains ':' or a line break"
            )));
        }
        let line = format!("{}:{name}:{}\n", self.command.as_str(), self.rtype);
        if line.len() > MAX_MESSAGE_LEN {
            return Err(TrackerError::Unsendable("msg too long".to_owned()));
        }
        Ok(line.into_bytes())
    }
}

/// Writes `message` to the tracker's pipe in one `write`, which the pipe makes atomic.
/// Fails with `EPIPE` once the tracker has stopped reading.
pub fn send(fd: BorrowedFd<'_>, message: &Message) -> Result<(), TrackerError> {
    let line = message.encode()?;
    loop {
        match sys::stream::writev(fd, &[IoSlice::new(&line)]) {
            Ok(written) if written == line.len() => return Ok(()),
            Ok(written) => {
                return Err(TrackerError::ShortWrite {
                    written,
                    len: line.len(),
                })
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(TrackerError::os("write")(errno)),
        }
    }
}
