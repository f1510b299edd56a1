//! Real processes: fork, spawn, reaping, signals, bootstrap payloads and the lifeline.

mod common;

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::time::Duration;

use common::*;
use ferroproc_core::process::{
    fork, Bootstrap, ExitStatus, ForkHooks, Forked, ParentLink, ProcessError, SpawnCommand,
};

#[test]
fn forked_child_reports_its_exit_code() {
    let _watchdog = watchdog("forked_child_reports_its_exit_code");
    let mut child = fork_child(|| 7);
    assert!(child.pid() > 0);
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(7));
    assert_eq!(child.status(), Some(ExitStatus::Exited(7)));
    // Reaped once; later calls answer from the cache.
    assert_eq!(child.try_wait().unwrap(), Some(ExitStatus::Exited(7)));
    assert_eq!(
        child.wait_timeout(None).unwrap(),
        Some(ExitStatus::Exited(7))
    );
    assert_eq!(child.status().unwrap().returncode(), 7);
}

#[derive(Default)]
struct CountingHooks {
    before: u32,
    parent: u32,
    child: u32,
}

impl ForkHooks for CountingHooks {
    fn before_fork(&mut self) {
        self.before += 1;
    }
    fn after_fork_in_parent(&mut self) {
        assert_eq!(self.before, 1, "after_fork_in_parent before before_fork");
        self.parent += 1;
    }
    fn after_fork_in_child(&mut self) {
        self.child += 1;
    }
}

#[test]
fn fork_runs_each_hook_on_its_side() {
    let _watchdog = watchdog("fork_runs_each_hook_on_its_side");
    let mut hooks = CountingHooks::default();
    match fork(&mut hooks).unwrap() {
        Forked::Child => {
            // The child's copy saw before_fork and its own hook, not the parent's.
            let ok = hooks.before == 1 && hooks.child == 1 && hooks.parent == 0;
            hard_exit(if ok { 0 } else { 1 })
        }
        Forked::Parent(mut child) => {
            assert_eq!((hooks.before, hooks.parent, hooks.child), (1, 1, 0));
            assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
        }
    }
}

#[test]
fn killed_child_reports_the_signal() {
    let _watchdog = watchdog("killed_child_reports_the_signal");
    let (read_end, _write_end) = pipe();
    let mut child = fork_child(|| wait_for_byte(read_end.as_fd()));
    assert!(child.signal(libc::SIGKILL).unwrap());
    let status = wait_for(&mut child);
    assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
    assert_eq!(status.returncode(), -9);
}

#[test]
fn wait_timeout_returns_none_until_the_child_exits() {
    let _watchdog = watchdog("wait_timeout_returns_none_until_the_child_exits");
    let (read_end, write_end) = pipe();
    let mut child = fork_child(|| wait_for_byte(read_end.as_fd()));
    assert_eq!(child.try_wait().unwrap(), None);
    assert_eq!(child.wait_timeout(Some(Duration::ZERO)).unwrap(), None);
    assert_eq!(
        child.wait_timeout(Some(Duration::from_millis(20))).unwrap(),
        None
    );
    assert_eq!(child.status(), None);
    send_byte(&write_end);
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
}

#[test]
fn signal_after_exit_returns_false() {
    let _watchdog = watchdog("signal_after_exit_returns_false");
    let mut child = fork_child(|| 0);
    // Exited but not reaped yet: the sentinel says so, and no signal is sent to the zombie.
    let exited = rustix::event::poll(
        &mut [rustix::event::PollFd::new(
            &child.sentinel(),
            rustix::event::PollFlags::IN,
        )],
        None,
    );
    assert_eq!(exited.unwrap(), 1);
    assert!(!child.signal(libc::SIGTERM).unwrap());
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
    assert!(!child.signal(libc::SIGTERM).unwrap());
}

#[test]
fn spawned_shell_reports_its_exit_code() {
    let _watchdog = watchdog("spawned_shell_reports_its_exit_code");
    let mut child = SpawnCommand::new("/bin/sh")
        .arg("-c")
        .arg("exit 3")
        .spawn()
        .unwrap();
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(3));
}

#[test]
fn spawn_errors_are_errors_not_panics() {
    let missing = SpawnCommand::new("/nonexistent/ferroproc-test")
        .spawn()
        .unwrap_err();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT), "{missing}");
    let nul = SpawnCommand::new("/bin/sh")
        .arg("a\0b")
        .spawn()
        .unwrap_err();
    assert_eq!(nul.raw_os_error(), Some(libc::EINVAL), "{nul}");
}

#[test]
fn spawned_child_starts_with_default_signals() {
    let _watchdog = watchdog("spawned_child_starts_with_default_signals");
    // The Rust runtime of this test process ignores SIGPIPE; the child must not, and
    // nothing may be blocked.
    let (read_end, write_end) = pipe();
    let mut command = SpawnCommand::new("/bin/sh");
    let fd = command.pass_fd(write_end.as_fd());
    command
        .arg("-c")
        .arg(format!("exec cat /proc/self/status >&{fd}"));
    let mut child = command.spawn().unwrap();
    drop(write_end);
    let mut status = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(&read_end, &mut buf) {
            Ok(0) => break,
            Ok(n) => status.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
    let status = String::from_utf8(status).unwrap();
    // Bit n-1 stands for signal n. Only the standard signals (1 to 31) are checked: glibc's
    // posix_spawn itself leaves its two internal real-time signals ignored in every child.
    let standard = (1u64 << 31) - 1;
    for field in ["SigBlk", "SigIgn"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask & standard, 0, "{line}");
    }
}

const FDS_TEST: &str = "spawn_passes_exactly_the_given_fds";

#[test]
fn spawn_passes_exactly_the_given_fds() {
    if role().as_deref() == Some("fds") {
        return fds_child();
    }
    let _watchdog = watchdog(FDS_TEST);
    let payload = b"bootstrap payload through posix_spawn".repeat(100);
    let bootstrap = Bootstrap::create(&payload).unwrap();
    let (read_end, write_end) = pipe();
    // Neither close-on-exec nor passed: must not reach the child.
    let stray = rustix::io::dup(&read_end).unwrap();
    let mut command = self_command(FDS_TEST, "fds", &[]);
    assert_eq!(command.pass_fd(bootstrap.as_fd()), 3);
    assert_eq!(command.pass_fd(write_end.as_fd()), 4);
    let mut child = command.spawn().unwrap();
    drop((write_end, stray));
    let mut echoed = vec![0u8; payload.len()];
    read_exact(&read_end, &mut echoed);
    assert_eq!(echoed, payload);
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
}

/// Checks it holds exactly descriptors 0 to 4, then echoes the bootstrap payload from fd 3
/// to fd 4.
fn fds_child() {
    let mut open = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        // The directory being read shows up in its own listing.
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if !target.starts_with("/proc") {
            open.insert(
                entry
                    .file_name()
                    .into_string()
                    .unwrap()
                    .parse::<i32>()
                    .unwrap(),
            );
        }
    }
    assert_eq!(open, BTreeSet::from([0, 1, 2, 3, 4]));
    let bootstrap = inherited_fd(3);
    let out = inherited_fd(4);
    let payload = Bootstrap::read(bootstrap.as_fd()).unwrap();
    let mut written = 0;
    while written < payload.len() {
        written += rustix::io::write(&out, &payload[written..]).unwrap();
    }
}

#[test]
fn parent_link_checks_the_parent() {
    let own_pid = std::process::id() as i32;
    // Not our parent: no link, even though the process exists.
    assert!(ParentLink::to_parent(own_pid).unwrap().is_none());
    assert!(ParentLink::to_parent(0).unwrap().is_none());
    let ppid = rustix::process::getppid().unwrap().as_raw_nonzero().get();
    let link = ParentLink::to_parent(ppid)
        .unwrap()
        .expect("our parent is alive");
    assert_eq!(link.pid(), ppid);
    assert!(!link.wait_timeout(Some(Duration::ZERO)).unwrap());

    let own = ParentLink::from_pidfd(own_pid, ParentLink::own_pidfd().unwrap());
    assert!(!own.wait_timeout(Some(Duration::from_millis(1))).unwrap());
}

#[test]
fn parent_link_sees_the_parent_exit() {
    let _watchdog = watchdog("parent_link_sees_the_parent_exit");
    let (read_end, write_end) = pipe();
    let mut child = fork_child(|| wait_for_byte(read_end.as_fd()));
    let pidfd = rustix::io::fcntl_dupfd_cloexec(child.sentinel(), 0).unwrap();
    let link = ParentLink::from_pidfd(child.pid(), pidfd);
    assert!(!link.wait_timeout(Some(Duration::ZERO)).unwrap());
    send_byte(&write_end);
    assert!(link.wait_timeout(Some(PATIENCE)).unwrap());
    assert_eq!(wait_for(&mut child), ExitStatus::Exited(0));
}

const LIFELINE_TEST: &str = "die_with_parent_kills_the_orphan";

/// Test process → middle (spawned) → grandchild (spawned), which calls `die_with_parent`
/// and reports its pid. The middle is SIGKILLed; the grandchild must die with it.
#[test]
fn die_with_parent_kills_the_orphan() {
    match role().as_deref() {
        Some("lifeline-middle") => return lifeline_middle(),
        Some("lifeline-grandchild") => return lifeline_grandchild(),
        _ => {}
    }
    let _watchdog = watchdog(LIFELINE_TEST);
    let (read_end, write_end) = pipe();
    let mut command = self_command(LIFELINE_TEST, "lifeline-middle", &[]);
    command.pass_fd(write_end.as_fd());
    let mut middle = command.spawn().unwrap();
    drop(write_end);

    let mut pid = [0u8; 4];
    read_exact(&read_end, &mut pid);
    let grandchild = i32::from_le_bytes(pid);
    // Opened while the grandchild is certainly alive (it waits for the middle to die).
    let pid = rustix::process::Pid::from_raw(grandchild).unwrap();
    let grandchild =
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).unwrap();

    assert!(middle.signal(libc::SIGKILL).unwrap());
    assert_eq!(wait_for(&mut middle), ExitStatus::Signaled(libc::SIGKILL));
    let died = ParentLink::from_pidfd(0, grandchild);
    if !died.wait_timeout(Some(PATIENCE)).unwrap() {
        let _ = rustix::process::pidfd_send_signal(died.sentinel(), rustix::process::Signal::KILL);
        panic!("the grandchild outlived its parent");
    }
}

fn lifeline_middle() {
    let _watchdog = watchdog("lifeline middle");
    let report = inherited_fd(3);
    let mut command = self_command(
        LIFELINE_TEST,
        "lifeline-grandchild",
        &[format!("FERROPROC_TEST_PPID={}", std::process::id())],
    );
    command.pass_fd(report.as_fd());
    let _grandchild = command.spawn().unwrap();
    // Killed by the test long before this ends.
    std::thread::sleep(PATIENCE);
}

fn lifeline_grandchild() {
    let report = inherited_fd(3);
    let link = ParentLink::to_parent(env_var("FERROPROC_TEST_PPID"))
        .unwrap()
        .expect("parent");
    link.die_with_parent().unwrap();
    drop(link); // The lifeline holds its own descriptor.
    rustix::io::write(&report, &(std::process::id() as i32).to_le_bytes()).unwrap();
    drop(report);
    // Outlasts the test's patience, so only the lifeline can end it in time.
    std::thread::sleep(PATIENCE * 5);
    std::process::exit(1);
}

const DEAD_PARENT_TEST: &str = "die_with_parent_when_the_parent_is_already_gone";

#[test]
fn die_with_parent_when_the_parent_is_already_gone() {
    if role().as_deref() == Some("dead-parent") {
        // A "parent" that has exited: a child of ours, reaped, its pidfd still readable.
        let mut gone = SpawnCommand::new("/bin/sh")
            .arg("-c")
            .arg("exit 0")
            .spawn()
            .unwrap();
        assert_eq!(wait_for(&mut gone), ExitStatus::Exited(0));
        let pidfd = rustix::io::fcntl_dupfd_cloexec(gone.sentinel(), 0).unwrap();
        let link = ParentLink::from_pidfd(gone.pid(), pidfd);
        let _ = link.die_with_parent();
        std::thread::sleep(PATIENCE * 5);
        std::process::exit(1);
    }
    let _watchdog = watchdog(DEAD_PARENT_TEST);
    let mut child = self_command(DEAD_PARENT_TEST, "dead-parent", &[])
        .spawn()
        .unwrap();
    assert_eq!(wait_for(&mut child), ExitStatus::Signaled(libc::SIGKILL));
}

#[test]
fn interrupted_is_its_own_error() {
    // The contract callers rely on to run signal handlers and retry.
    let e = ProcessError::Interrupted;
    assert_eq!(e.raw_os_error(), Some(libc::EINTR));
}
