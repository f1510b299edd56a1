//! Shared-memory segments across real processes: memfd and named segments, header checks,
//! names and permissions, cleanup after a killed creator, and the arena.

mod common;

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use ferroproc_core::process::ExitStatus;
use ferroproc_core::shm::{
    Arena, Backing, Block, HeaderError, Segment, ShmError, ShmName, Source, Tag, RANDOM_PREFIX,
};

const TAG: Tag = Tag::new(*b"test");
const OTHER_TAG: Tag = Tag::new(*b"othr");

/// What children write, so the parent can tell it apart from zeros.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn mode_of(fd: BorrowedFd<'_>) -> u32 {
    rustix::fs::fstat(fd).unwrap().st_mode & 0o7777
}

fn bad_header(err: ShmError) -> HeaderError {
    match err {
        ShmError::BadHeader(problem) => {
            // The message says what is wrong, not a debug dump.
            assert!(err_text(&problem).len() > 10);
            problem
        }
        other => panic!("expected a bad header, got {other}"),
    }
}

fn err_text(e: &dyn std::error::Error) -> String {
    e.to_string()
}

#[test]
fn forked_child_writes_through_an_inherited_memfd_segment() {
    let _watchdog = watchdog("forked_child_writes_through_an_inherited_memfd_segment");
    let segment = Segment::create(Backing::Anonymous, 4096, TAG).unwrap();
    assert!(segment.name().is_none());
    assert_eq!(segment.len(), 4096);
    // The child only copies bytes and stores: no allocation, async-signal-safe.
    let bytes = pattern(1000);
    let mut child = fork_child(|| {
        let ok = segment.copy_in(100, &bytes).is_ok();
        let flag = segment.get::<AtomicU32>(0).unwrap();
        flag.store(if ok { 1 } else { 2 }, Ordering::Release);
        0
    });
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
    assert_eq!(
        segment.get::<AtomicU32>(0).unwrap().load(Ordering::Acquire),
        1
    );
    let mut read = vec![0; 1000];
    segment.copy_out(100, &mut read).unwrap();
    assert_eq!(read, bytes);
}

const MEMFD_TEST: &str = "spawned_child_attaches_a_memfd_segment_by_descriptor";

#[test]
fn spawned_child_attaches_a_memfd_segment_by_descriptor() {
    if role().as_deref() == Some("memfd-writer") {
        let fd = inherited_fd(3);
        let segment = Segment::attach(Source::Fd(fd.as_fd()), TAG).unwrap();
        drop(fd); // The segment holds its own descriptor.
        segment.copy_in(8, &pattern(segment.len() - 8)).unwrap();
        segment
            .get::<AtomicU32>(0)
            .unwrap()
            .store(1, Ordering::Release);
        return;
    }
    let _watchdog = watchdog(MEMFD_TEST);
    let segment = Segment::create(Backing::Anonymous, 64 * 1024, TAG).unwrap();
    let mut command = self_command(MEMFD_TEST, "memfd-writer", &[]);
    command.pass_fd(segment.fd());
    let mut child = command.spawn().unwrap();
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
    assert_eq!(
        segment.get::<AtomicU32>(0).unwrap().load(Ordering::Acquire),
        1
    );
    let mut read = vec![0; segment.len() - 8];
    segment.copy_out(8, &mut read).unwrap();
    assert_eq!(read, pattern(segment.len() - 8));
}

const NAMED_TEST: &str = "another_process_attaches_a_named_segment_by_name";

#[test]
fn another_process_attaches_a_named_segment_by_name() {
    if role().as_deref() == Some("named-writer") {
        let name = ShmName::new(&env_var::<String>("FERROPROC_TEST_SHM")).unwrap();
        let segment = Segment::attach(Source::Name(&name), TAG).unwrap();
        assert_eq!(segment.name(), Some(&name));
        segment.copy_in(0, b"hello from the child").unwrap();
        // A raw attach of the same name sees the header and the data after it.
        let raw = Segment::attach_raw(Source::Name(&name)).unwrap();
        assert_eq!(raw.len(), segment.len() + 64);
        let mut magic = [0; 8];
        raw.copy_out(0, &mut magic).unwrap();
        assert_eq!(&magic, b"ferroshm");
        return;
    }
    let _watchdog = watchdog(NAMED_TEST);
    let segment = Segment::create(Backing::Named, 100, TAG).unwrap();
    let name = segment.name().unwrap().clone();
    let mut child = self_command(
        NAMED_TEST,
        "named-writer",
        &[format!("FERROPROC_TEST_SHM={name}")],
    )
    .spawn()
    .unwrap();
    let status = wait_for(&mut child);
    segment.unlink().unwrap();
    assert_eq!(status, ExitStatus::Exited(0));
    let mut read = [0; 20];
    segment.copy_out(0, &mut read).unwrap();
    assert_eq!(&read, b"hello from the child");
    // Unlinked: the name is gone, the mapping still works.
    let gone = Segment::attach(Source::Name(&name), TAG).unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ENOENT), "{gone}");
    segment.copy_in(0, b"still mapped").unwrap();
}

/// Overwrites bytes of `segment`'s header through a raw view of the same file.
fn poke_header(segment: &Segment, offset: usize, bytes: &[u8]) {
    let raw = Segment::attach_raw(Source::Fd(segment.fd())).unwrap();
    raw.copy_in(offset, bytes).unwrap();
}

#[test]
fn attach_checks_magic_version_tag_and_size() {
    let fresh = || Segment::create(Backing::Anonymous, 256, TAG).unwrap();

    let ok = fresh();
    let again = Segment::attach(Source::Fd(ok.fd()), TAG).unwrap();
    assert_eq!((again.len(), again.tag()), (256, Some(TAG)));

    let wrong_tag = Segment::attach(Source::Fd(ok.fd()), OTHER_TAG).unwrap_err();
    assert_eq!(
        bad_header(wrong_tag),
        HeaderError::WrongTag {
            found: TAG,
            expected: OTHER_TAG
        }
    );

    let corrupt = fresh();
    poke_header(&corrupt, 0, b"garbage!");
    let err = bad_header(Segment::attach(Source::Fd(corrupt.fd()), TAG).unwrap_err());
    assert!(matches!(err, HeaderError::BadMagic { .. }), "{err}");

    let future = fresh();
    poke_header(&future, 8, &99u32.to_le_bytes());
    let err = bad_header(Segment::attach(Source::Fd(future.fd()), TAG).unwrap_err());
    assert_eq!(
        err,
        HeaderError::Version {
            found: 99,
            expected: 1
        }
    );

    // A header claiming more than the file holds is refused, whatever it claims.
    let liar = fresh();
    for claimed in [64 + 256 + 1, u64::MAX, 1 << 40] {
        poke_header(&liar, 16, &claimed.to_le_bytes());
        let err = bad_header(Segment::attach(Source::Fd(liar.fd()), TAG).unwrap_err());
        assert_eq!(
            err,
            HeaderError::BadSize {
                claimed,
                file_size: 64 + 256
            }
        );
    }
    // Smaller than a header: refused too.
    poke_header(&liar, 16, &10u64.to_le_bytes());
    let err = bad_header(Segment::attach(Source::Fd(liar.fd()), TAG).unwrap_err());
    assert!(
        matches!(err, HeaderError::BadSize { claimed: 10, .. }),
        "{err}"
    );
    // Claiming less than the file is fine: only the claimed bytes are reachable.
    poke_header(&liar, 16, &(64u64 + 100).to_le_bytes());
    let short = Segment::attach(Source::Fd(liar.fd()), TAG).unwrap();
    assert_eq!(short.len(), 100);
    let err = short.copy_out(50, &mut [0; 51]).unwrap_err();
    assert!(matches!(err, ShmError::OutOfBounds { .. }), "{err}");
}

#[test]
fn raw_segments_have_no_header_and_foreign_files_are_refused() {
    let raw = Segment::create_raw(Backing::Anonymous, 10).unwrap();
    assert_eq!((raw.len(), raw.tag()), (10, None));
    // Every byte is the user's.
    raw.copy_in(0, &[0xEE; 10]).unwrap();
    let err = bad_header(Segment::attach(Source::Fd(raw.fd()), TAG).unwrap_err());
    assert_eq!(
        err,
        HeaderError::TooSmall {
            file_size: 10,
            header_size: 64
        }
    );
    let bigger = Segment::create_raw(Backing::Anonymous, 4096).unwrap();
    let err = bad_header(Segment::attach(Source::Fd(bigger.fd()), TAG).unwrap_err());
    assert_eq!(err, HeaderError::BadMagic { found: 0 });

    let zero = Segment::create_raw(Backing::Anonymous, 0).unwrap_err();
    assert!(
        matches!(zero, ShmError::InvalidSize { size: 0, .. }),
        "{zero}"
    );
    let empty = rustix::fs::memfd_create("empty", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let err = Segment::attach_raw(Source::Fd(empty.as_fd())).unwrap_err();
    assert!(
        matches!(err, ShmError::InvalidSize { size: 0, .. }),
        "{err}"
    );
    // Not a file at all.
    let (read_end, _write_end) = pipe();
    let err = Segment::attach_raw(Source::Fd(read_end.as_fd())).unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err}");
}

#[test]
fn access_is_bounds_and_alignment_checked() {
    let segment = Segment::create(Backing::Anonymous, 128, TAG).unwrap();
    assert!(segment.get::<AtomicU32>(124).is_ok());
    assert!(matches!(
        segment.get::<AtomicU32>(125),
        Err(ShmError::OutOfBounds { .. })
    ));
    assert!(matches!(
        segment.get::<AtomicU32>(2),
        Err(ShmError::Misaligned {
            offset: 2,
            align: 4
        })
    ));
    assert!(matches!(
        segment.get::<AtomicU32>(usize::MAX - 1),
        Err(ShmError::OutOfBounds { .. })
    ));
    assert!(segment.copy_in(0, &[1; 128]).is_ok());
    assert!(segment.copy_in(1, &[1; 128]).is_err());
    assert!(segment.copy_out(usize::MAX, &mut [0; 2]).is_err());
    assert!(segment.copy_out(128, &mut []).is_ok());
    // The data is cache-line aligned.
    assert_eq!(segment.as_ptr() as usize % 64, 0);
}

#[test]
fn names_are_unique_and_segments_owner_only() {
    let segments: Vec<Segment> = (0..8)
        .map(|_| Segment::create_raw(Backing::Named, 4096).unwrap())
        .collect();
    let mut names: Vec<&str> = segments
        .iter()
        .map(|s| s.name().unwrap().as_str())
        .collect();
    for name in &names {
        assert!(name.starts_with(RANDOM_PREFIX), "{name}");
        let path = format!("/dev/shm/{name}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600,
            "{path}"
        );
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), segments.len());
    for segment in &segments {
        assert_eq!(mode_of(segment.fd()), 0o600);
        segment.unlink().unwrap();
    }
    let anonymous = Segment::create(Backing::Anonymous, 1, TAG).unwrap();
    assert_eq!(mode_of(anonymous.fd()), 0o600);
    assert!(matches!(anonymous.unlink(), Err(ShmError::NotNamed)));
    // A memfd: nothing under /dev/shm.
    let fd = rustix::fd::AsRawFd::as_raw_fd(&anonymous.fd());
    let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    assert!(
        target.to_string_lossy().starts_with("/memfd:"),
        "{target:?}"
    );
}

#[test]
fn a_chosen_name_is_exclusive() {
    let name = ShmName::random().unwrap();
    let first = Segment::create_raw(Backing::NamedAs(&name), 10).unwrap();
    assert_eq!(first.name(), Some(&name));
    let taken = Segment::create_raw(Backing::NamedAs(&name), 10).unwrap_err();
    assert_eq!(taken.raw_os_error(), Some(libc::EEXIST), "{taken}");
    let taken = Segment::create(Backing::NamedAs(&name), 10, TAG).unwrap_err();
    assert_eq!(taken.raw_os_error(), Some(libc::EEXIST), "{taken}");
    // The failed creations did not unlink the first one's name.
    let attached = Segment::attach_raw(Source::Name(&name)).unwrap();
    assert_eq!(attached.len(), 10);
    Segment::unlink_name(&name).unwrap();
    let err = Segment::unlink_name(&name).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
}

const KILLED_TEST: &str = "a_killed_creators_named_segment_can_be_unlinked_by_name";

#[test]
fn a_killed_creators_named_segment_can_be_unlinked_by_name() {
    if role().as_deref() == Some("creator") {
        let report = inherited_fd(3);
        let segment = Segment::create(Backing::Named, 4096, TAG).unwrap();
        segment.copy_in(0, b"left behind").unwrap();
        let name = segment.name().unwrap().as_str().as_bytes().to_vec();
        rustix::io::write(&report, &name).unwrap();
        drop(report);
        // Killed by the test long before this ends.
        std::thread::sleep(PATIENCE * 5);
        std::process::exit(1);
    }
    let _watchdog = watchdog(KILLED_TEST);
    let (read_end, write_end) = pipe();
    let mut command = self_command(KILLED_TEST, "creator", &[]);
    command.pass_fd(write_end.as_fd());
    let mut child = command.spawn().unwrap();
    drop(write_end);
    let mut name = vec![0; RANDOM_PREFIX.len() + 32];
    read_exact(&read_end, &mut name);
    let name = ShmName::new(std::str::from_utf8(&name).unwrap()).unwrap();
    assert!(child.signal(libc::SIGKILL).unwrap());
    assert_eq!(wait_for(&mut child), ExitStatus::Signaled(libc::SIGKILL));

    let orphan = Segment::attach(Source::Name(&name), TAG).unwrap();
    let mut read = [0; 11];
    orphan.copy_out(0, &mut read).unwrap();
    assert_eq!(&read, b"left behind");
    Segment::unlink_name(&name).unwrap();
    let gone = Segment::attach_raw(Source::Name(&name)).unwrap_err();
    assert_eq!(gone.raw_os_error(), Some(libc::ENOENT), "{gone}");
}

const ARENA_TEST: &str = "processes_share_one_arena";

#[test]
fn processes_share_one_arena() {
    if role().as_deref() == Some("arena-user") {
        let fd = inherited_fd(3);
        let report = inherited_fd(4);
        let arena = Arena::attach(Source::Fd(fd.as_fd())).unwrap();
        for _ in 0..50 {
            let block = arena.alloc(48, 16).unwrap();
            arena.segment().copy_in(block.offset, &[0xC5; 64]).unwrap();
            rustix::io::write(&report, &(block.offset as u64).to_le_bytes()).unwrap();
        }
        return;
    }
    let _watchdog = watchdog(ARENA_TEST);
    let arena = Arena::create(Backing::Anonymous, 64 * 1024).unwrap();
    let (read_end, write_end) = pipe();
    let mut command = self_command(ARENA_TEST, "arena-user", &[]);
    command.pass_fd(arena.segment().fd());
    command.pass_fd(write_end.as_fd());
    let mut child = command.spawn().unwrap();
    drop(write_end);
    // Allocate while the child does.
    let mine: Vec<Block> = (0..50).map(|_| arena.alloc(64, 64).unwrap()).collect();
    for block in &mine {
        arena.segment().copy_in(block.offset, &[0x11; 64]).unwrap();
    }
    let mut theirs = Vec::new();
    for _ in 0..50 {
        let mut offset = [0; 8];
        read_exact(&read_end, &mut offset);
        theirs.push(u64::from_le_bytes(offset) as usize);
    }
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
    for block in &mine {
        let mut bytes = [0; 64];
        arena.segment().copy_out(block.offset, &mut bytes).unwrap();
        assert_eq!(bytes, [0x11; 64], "{block:?} was overwritten");
    }
    for &offset in &theirs {
        let mut bytes = [0; 64];
        arena.segment().copy_out(offset, &mut bytes).unwrap();
        assert_eq!(
            bytes, [0xC5; 64],
            "the child's block at {offset} was overwritten"
        );
        // Blocks the child allocated can be freed here.
        arena.free(Block { offset, size: 64 }).unwrap();
    }
}

#[test]
fn an_arena_locked_by_a_killed_process_is_taken_over() {
    let _watchdog = watchdog("an_arena_locked_by_a_killed_process_is_taken_over");
    let arena = Arena::create(Backing::Anonymous, 4096).unwrap();
    let (read_end, write_end) = pipe();
    let mut child = fork_child(|| wait_for_byte(read_end.as_fd()));
    // As if the child had died inside `alloc`: its pid in the lock word (the first word of
    // the arena's data), then SIGKILL. Not reaped yet: a zombie holder counts as dead.
    let lock = arena.segment().get::<AtomicU32>(0).unwrap();
    lock.store(child.pid() as u32, Ordering::Release);
    assert!(child.signal(libc::SIGKILL).unwrap());
    let block = arena.alloc(16, 16).unwrap();
    assert_eq!(lock.load(Ordering::Acquire), 0);
    arena.free(block).unwrap();
    drop(write_end);
    assert_eq!(wait_for(&mut child), ExitStatus::Signaled(libc::SIGKILL));
}

#[test]
fn an_arena_is_never_attached_from_another_kind_of_segment() {
    let segment = Segment::create(Backing::Anonymous, 4096, TAG).unwrap();
    let err = Arena::attach(Source::Fd(segment.fd())).unwrap_err();
    assert!(matches!(
        bad_header(err),
        HeaderError::WrongTag {
            found: TAG,
            expected: Tag::ARENA
        }
    ));
    assert!(Arena::new(segment).is_err());
}
