//! The set of registered resources, and how each type is cleaned up.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use super::{Command, Message, ResourceType, TrackerError};
use crate::shm::{Segment, ShmName};

/// The resources registered and not yet unregistered, by type.
///
/// Shared-memory names are kept without the leading `/` of `shm_open(3)`, so `"/x"` and
/// `"x"` are the same segment (the stdlib's names carry the slash, ferroproc's do not).
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<ResourceType, BTreeSet<String>>,
}

fn key(rtype: ResourceType, name: &str) -> &str {
    match rtype {
        ResourceType::SharedMemory => name.trim_start_matches('/'),
        _ => name,
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one message. Registering a name twice keeps it once; unregistering a name
    /// that is not registered does nothing (a process that only attached a segment may
    /// unlink it, and the segment may have been registered with another tracker).
    pub fn apply(&mut self, message: &Message) {
        let rtype = message.rtype;
        if !rtype.is_tracked() {
            return;
        }
        let name = key(rtype, &message.name);
        match message.command {
            Command::Register => {
                self.entries
                    .entry(rtype)
                    .or_default()
                    .insert(name.to_owned());
            }
            Command::Unregister => {
                if let Some(names) = self.entries.get_mut(&rtype) {
                    names.remove(name);
                }
            }
            Command::Probe => {}
        }
    }

    /// Whether `name` of type `rtype` is registered.
    pub fn contains(&self, rtype: ResourceType, name: &str) -> bool {
        self.entries
            .get(&rtype)
            .is_some_and(|names| names.contains(key(rtype, name)))
    }

    /// How many resources are registered.
    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeSet::len).sum()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cleans up every registered resource and forgets it. For each type with resources
    /// left it writes the stdlib's warning to `log` (`resource_tracker: There appear to be
    /// N leaked shared_memory objects to clean up at shutdown`), and one line for each
    /// resource that could not be cleaned up (`resource_tracker: 'name': [Errno 2] ...`).
    /// Returns how many resources could not be cleaned up. Errors writing the log are
    /// ignored: the cleanup matters more than the report.
    pub fn cleanup_all(&mut self, log: &mut dyn Write) -> usize {
        let mut failed = 0;
        for (rtype, names) in std::mem::take(&mut self.entries) {
            if names.is_empty() {
                continue;
            }
            let _ = writeln!(
                log,
                "resource_tracker: There appear to be {} leaked {rtype} objects to clean up at shutdown",
                names.len()
            );
            for name in names {
                if let Err(err) = cleanup(rtype, &name) {
                    failed += 1;
                    let _ = writeln!(log, "resource_tracker: '{name}': {}", err.describe());
                }
            }
        }
        let _ = log.flush();
        failed
    }
}

/// Cleans up one resource: unlinks a `shared_memory` name (a leading `/` is optional),
/// removes a `folder` and everything in it; nothing for `semaphore` and `noop`.
pub fn cleanup(rtype: ResourceType, name: &str) -> Result<(), TrackerError> {
    match rtype {
        ResourceType::SharedMemory => {
            let name = ShmName::new(key(rtype, name))?;
            Segment::unlink_name(&name)?;
            Ok(())
        }
        ResourceType::Folder => std::fs::remove_dir_all(name).map_err(|source| TrackerError::Io {
            op: "remove_dir_all",
            source,
        }),
        ResourceType::Semaphore | ResourceType::Noop => Ok(()),
    }
}
