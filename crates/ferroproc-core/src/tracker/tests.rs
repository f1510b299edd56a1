//! Unit tests: a real pipe, real `/dev/shm` names and folders.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::shm::{Backing, Segment, ShmName};

fn pipe() -> (OwnedFd, std::io::PipeWriter) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    (OwnedFd::from(reader), writer)
}

fn shm_path(name: &ShmName) -> PathBuf {
    Path::new("/dev/shm").join(name.as_str())
}

/// A fresh named segment, left in `/dev/shm` when the handle is dropped.
fn make_segment() -> ShmName {
    let name = ShmName::random().expect("random name");
    drop(Segment::create_raw(Backing::NamedAs(&name), 64).expect("create segment"));
    assert!(shm_path(&name).exists());
    name
}

fn make_folder(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fp_tracker_{tag}_{}_{}",
        std::process::id(),
        ShmName::random().expect("random").as_str()
    ));
    std::fs::create_dir_all(dir.join("inner")).expect("mkdir");
    std::fs::write(dir.join("inner/file"), b"x").expect("write");
    dir
}

fn run(reader: OwnedFd) -> (usize, String) {
    let mut log = Vec::new();
    let failed = Tracker::run(reader, &mut log).expect("tracker run");
    (failed, String::from_utf8(log).expect("utf8 log"))
}

#[test]
fn parse_and_encode_round_trip() {
    let message = Message::new(Command::Register, "fp_abc", ResourceType::SharedMemory);
    let line = message.encode().expect("encode");
    assert_eq!(line, b"REGISTER:fp_abc:shared_memory\n");
    assert_eq!(Message::parse(&line).expect("parse"), message);
    assert_eq!(
        Message::parse(b"PROBE:0:noop").expect("probe"),
        Message::probe()
    );
    assert_eq!(
        Message::parse(b"  UNREGISTER:/x:folder \n").expect("spaces"),
        Message::new(Command::Unregister, "/x", ResourceType::Folder)
    );
}

#[test]
fn bad_lines_are_refused() {
    for line in [
        &b"REGISTER:x"[..],
        b"REGISTER:x:shared_memory:extra",
        b"DELETE:x:shared_memory",
        b"REGISTER:x:bogus",
        b"REGISTER:\xff:shared_memory",
    ] {
        assert!(
            matches!(Message::parse(line), Err(TrackerError::BadMessage { .. })),
            "{line:?} was accepted"
        );
    }
}

#[test]
fn unsendable_messages_are_refused() {
    let long = "a".repeat(MAX_MESSAGE_LEN);
    for name in [long.as_str(), "a:b", "a\nb", "é"] {
        let message = Message::new(Command::Register, name, ResourceType::SharedMemory);
        assert!(matches!(message.encode(), Err(TrackerError::Unsendable(_))));
    }
}

#[test]
fn eof_unlinks_what_is_still_registered() {
    let leaked = make_segment();
    let released = make_segment();
    let (reader, writer) = pipe();
    for message in [
        Message::new(
            Command::Register,
            leaked.as_str(),
            ResourceType::SharedMemory,
        ),
        Message::probe(),
        Message::new(
            Command::Register,
            released.as_str(),
            ResourceType::SharedMemory,
        ),
        Message::new(
            Command::Unregister,
            format!("/{}", released.as_str()),
            ResourceType::SharedMemory,
        ),
    ] {
        send(writer.as_fd(), &message).expect("send");
    }
    drop(writer);
    let (failed, log) = run(reader);
    assert_eq!(failed, 0, "{log}");
    assert!(
        !shm_path(&leaked).exists(),
        "leaked segment was not unlinked"
    );
    assert!(
        shm_path(&released).exists(),
        "unregistered segment was unlinked"
    );
    assert!(
        log.contains(
            "resource_tracker: There appear to be 1 leaked shared_memory objects to clean up at shutdown"
        ),
        "{log}"
    );
    Segment::unlink_name(&released).expect("unlink");
}

#[test]
fn every_writer_must_close_before_cleanup() {
    let name = make_segment();
    let (reader, writer) = pipe();
    let second = writer.try_clone().expect("dup writer");
    let mut tracker = Tracker::new(reader);
    let mut log = Vec::new();
    send(
        writer.as_fd(),
        &Message::new(Command::Register, name.as_str(), ResourceType::SharedMemory),
    )
    .expect("send");
    drop(writer);
    // One writer left: the tracker reads the message and keeps waiting.
    let mut pumped = Pumped::Open;
    for _ in 0..10 {
        pumped = tracker
            .pump(Some(Duration::from_millis(10)), &mut log)
            .expect("pump");
    }
    assert_eq!(pumped, Pumped::Open);
    assert!(tracker
        .registry()
        .contains(ResourceType::SharedMemory, name.as_str()));
    drop(second);
    while tracker.pump(None, &mut log).expect("pump") == Pumped::Open {}
    assert_eq!(tracker.finish(&mut log), 0);
    assert!(!shm_path(&name).exists());
}

#[test]
fn a_name_already_gone_is_reported() {
    let name = ShmName::random().expect("random name");
    let (reader, mut writer) = pipe();
    writeln!(writer, "REGISTER:{}:shared_memory", name.as_str()).expect("write");
    drop(writer);
    let (failed, log) = run(reader);
    assert_eq!(failed, 1);
    assert!(
        log.contains(&format!(
            "resource_tracker: '{}': [Errno 2] ",
            name.as_str()
        )),
        "{log}"
    );
}

#[test]
fn folders_are_removed_and_other_types_ignored() {
    let folder = make_folder("rm");
    let kept = make_folder("kept");
    let (reader, mut writer) = pipe();
    writeln!(writer, "REGISTER:{}:folder", folder.display()).expect("write");
    writeln!(writer, "REGISTER:{}:folder", kept.display()).expect("write");
    writeln!(writer, "UNREGISTER:{}:folder", kept.display()).expect("write");
    writeln!(writer, "REGISTER:/mp-sem:semaphore").expect("write");
    writeln!(writer, "UNREGISTER:/mp-unknown:semaphore").expect("write");
    writeln!(writer, "REGISTER:whatever:noop").expect("write");
    drop(writer);
    let (failed, log) = run(reader);
    assert_eq!(failed, 0, "{log}");
    assert!(!folder.exists());
    assert!(kept.exists());
    assert!(
        log.contains("There appear to be 1 leaked folder objects"),
        "{log}"
    );
    assert!(!log.contains("semaphore"), "{log}");
    std::fs::remove_dir_all(kept).expect("rm");
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let name = make_segment();
    let (reader, mut writer) = pipe();
    writer
        .write_all(b"garbage\nREGISTER:x:unknown_type\n\n")
        .expect("write");
    writer
        .write_all(&vec![b'z'; 3 * MAX_MESSAGE_LEN])
        .expect("write");
    writer.write_all(b"tail of the long line\n").expect("write");
    writeln!(writer, "REGISTER:{}:shared_memory", name.as_str()).expect("write");
    writer.write_all(b"REGISTER:cut").expect("write");
    drop(writer);
    let (failed, log) = run(reader);
    assert_eq!(failed, 0, "{log}");
    assert!(!shm_path(&name).exists(), "{log}");
    assert_eq!(
        log.matches("resource_tracker: ignoring bad message")
            .count(),
        4,
        "{log}"
    );
    assert!(log.contains("unknown resource type unknown_type"), "{log}");
    assert!(log.contains("cut off by the end of the stream"), "{log}");
}

#[test]
fn probe_fails_once_the_tracker_is_gone() {
    let (reader, writer) = pipe();
    send(writer.as_fd(), &Message::probe()).expect("probe while alive");
    drop(reader);
    let err = send(writer.as_fd(), &Message::probe()).expect_err("probe after close");
    assert_eq!(err.raw_os_error(), Some(32), "{err}");
}

#[test]
fn cleanup_of_one_resource() {
    let name = make_segment();
    cleanup(ResourceType::SharedMemory, &format!("/{}", name.as_str())).expect("unlink");
    assert!(!shm_path(&name).exists());
    let err = cleanup(ResourceType::SharedMemory, name.as_str()).expect_err("gone");
    assert_eq!(err.raw_os_error(), Some(2));
    cleanup(ResourceType::Semaphore, "/anything").expect("semaphores are ignored");
}
