//! The fork server, with the server in a real process of its own.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use common::*;
use ferroproc_core::process::forkserver::{self, Event, Request, Server, ServerChild};
use ferroproc_core::process::{fork, Bootstrap, ExitStatus, Forked, ParentLink, ProcessError};

const SERVER_TEST: &str = "fork_server_starts_and_reports_children";

/// Asks the server for a child that runs `command` (see [`server_child`]).
fn request(address: &Path, command: &str, extra: &[BorrowedFd<'_>]) -> ServerChild {
    let bootstrap = Bootstrap::create(command.as_bytes()).unwrap();
    let mut fds = vec![bootstrap.as_fd()];
    fds.extend_from_slice(extra);
    forkserver::request_fork(address, &fds).unwrap()
}

fn wait_server_child(child: &mut ServerChild) -> ExitStatus {
    match child.wait_timeout(Some(PATIENCE)) {
        Ok(Some(status)) => status,
        other => {
            let _ = child.signal(libc::SIGKILL);
            panic!("child {}: {other:?}", child.pid());
        }
    }
}

#[test]
fn fork_server_starts_and_reports_children() {
    if role().as_deref() == Some("server") {
        return run_server();
    }
    let _watchdog = watchdog(SERVER_TEST);
    let (listener, address) = forkserver::listen(None).unwrap();
    let mut command = self_command(
        SERVER_TEST,
        "server",
        &[format!("FERROPROC_TEST_PPID={}", std::process::id())],
    );
    command.pass_fd(listener.as_fd());
    let mut server = command.spawn().unwrap();
    drop(listener);

    // Several at once, each reported on its own connection.
    let extra = Bootstrap::create(b"second descriptor").unwrap();
    let mut children = [
        request(&address, "exit 5", &[]),
        request(&address, "kill 9", &[]),
        request(
            &address,
            &format!("check {}", std::process::id()),
            &[extra.as_fd()],
        ),
    ];
    let pids: Vec<i32> = children.iter().map(ServerChild::pid).collect();
    assert!(
        pids.iter().all(|&pid| pid > 0 && pid != server.pid()),
        "{pids:?}"
    );
    let statuses: Vec<ExitStatus> = children.iter_mut().map(wait_server_child).collect();
    assert_eq!(
        statuses,
        [
            ExitStatus::Exited(5),
            ExitStatus::Signaled(libc::SIGKILL),
            ExitStatus::Exited(0)
        ]
    );
    assert_eq!(children[1].status().unwrap().returncode(), -9);
    assert!(!children[0].signal(libc::SIGTERM).unwrap());

    // A child signalled by the client, through the pidfd the server sent.
    let mut sleeper = request(&address, "sleep", &[]);
    assert_eq!(sleeper.try_wait().unwrap(), None);
    assert_eq!(
        sleeper
            .wait_timeout(Some(Duration::from_millis(20)))
            .unwrap(),
        None
    );
    assert!(sleeper.signal(libc::SIGTERM).unwrap());
    assert_eq!(
        wait_server_child(&mut sleeper),
        ExitStatus::Signaled(libc::SIGTERM)
    );

    // Garbage gets the connection closed, and the server carries on.
    let mut stream = UnixStream::connect(&address).unwrap();
    stream.write_all(b"GARBAGE!!!!!").unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let mut after = request(&address, "exit 0", &[]);
    assert_eq!(wait_server_child(&mut after), ExitStatus::Exited(0));

    // The server dies while a child runs: waiting on that child must not hang.
    let mut orphan = request(&address, "sleep", &[]);
    assert!(server.signal(libc::SIGKILL).unwrap());
    assert_eq!(wait_for(&mut server), ExitStatus::Signaled(libc::SIGKILL));
    // The child itself is still running, so there is nothing to report yet.
    assert_eq!(orphan.wait_timeout(Some(Duration::ZERO)).unwrap(), None);
    assert!(orphan.signal(libc::SIGKILL).unwrap());
    // Only the dead server could have reaped it: its status is unknown (255, as the
    // stdlib reports), but the wait ends.
    assert_eq!(
        orphan.wait_timeout(Some(PATIENCE)).unwrap(),
        Some(ExitStatus::Exited(forkserver::UNKNOWN_EXIT_CODE))
    );
    assert!(forkserver::request_fork(&address, &[]).is_err());

    std::fs::remove_file(&address).unwrap();
    std::fs::remove_dir(address.parent().unwrap()).unwrap();
}

/// The server: forks a child per request until the test process exits or kills it.
fn run_server() {
    let _watchdog = watchdog("fork server");
    let parent = ParentLink::to_parent(env_var("FERROPROC_TEST_PPID"))
        .unwrap()
        .expect("parent");
    let mut server = Server::new(inherited_fd(3), parent);
    loop {
        match server.next_request(None) {
            Ok(Event::Request(request)) => match fork(&mut NoHooks).unwrap() {
                Forked::Parent(child) => server.child_started(request, child).unwrap(),
                Forked::Child => hard_exit(server_child(server.into_child(request))),
            },
            Ok(Event::ParentExited) => return,
            Ok(Event::Timeout) | Err(ProcessError::Interrupted) => {}
            Err(e) => panic!("fork server: {e}"),
        }
    }
}

/// A child of the server. It was forked from a multithreaded process, so it keeps to
/// simple calls (glibc's fork leaves `malloc` usable) and leaves with `_exit`.
fn server_child(request: Request) -> i32 {
    let client_pid = request.client().pid();
    let (_client, fds) = request.into_parts();
    let Ok(command) = Bootstrap::read(fds[0].as_fd()) else {
        return 100;
    };
    let command = String::from_utf8_lossy(&command);
    let (verb, arg) = command.split_once(' ').unwrap_or((&command, ""));
    let arg: i32 = arg.parse().unwrap_or(0);
    match verb {
        "exit" => arg,
        "kill" => {
            let signal = rustix::process::Signal::from_named_raw(arg).unwrap();
            let _ = rustix::process::kill_process(rustix::process::getpid(), signal);
            101
        }
        // The client is our parent in the program's sense, and both descriptors arrived.
        "check" => i32::from(!(client_pid == arg && fds.len() == 2 && is_bootstrap(&fds[1]))),
        "sleep" => {
            std::thread::sleep(PATIENCE * 5);
            102
        }
        _ => 103,
    }
}

fn is_bootstrap(fd: &OwnedFd) -> bool {
    Bootstrap::read(fd.as_fd()).is_ok_and(|payload| payload == b"second descriptor")
}

#[test]
fn listen_makes_a_private_directory() {
    let (_listener, address) = forkserver::listen(None).unwrap();
    let dir = address.parent().unwrap();
    let mode = std::fs::metadata(dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(dir.starts_with(std::env::temp_dir()));
    let (_other, other) = forkserver::listen(Some(dir)).unwrap();
    assert!(other.starts_with(dir));
    assert_ne!(other.parent(), address.parent());
    std::fs::remove_file(&other).unwrap();
    std::fs::remove_dir(other.parent().unwrap()).unwrap();
    std::fs::remove_file(&address).unwrap();
    std::fs::remove_dir(dir).unwrap();
}

#[test]
fn server_reports_timeout_and_parent_exit() {
    let _watchdog = watchdog("server_reports_timeout_and_parent_exit");
    let (listener, address) = forkserver::listen(None).unwrap();
    let (read_end, write_end) = pipe();
    let mut parent = fork_child(|| wait_for_byte(read_end.as_fd()));
    let pidfd = rustix::io::fcntl_dupfd_cloexec(parent.sentinel(), 0).unwrap();
    let mut server = Server::new(listener, ParentLink::from_pidfd(parent.pid(), pidfd));
    assert!(matches!(
        server.next_request(Some(Duration::ZERO)).unwrap(),
        Event::Timeout
    ));
    let waited = server
        .next_request(Some(Duration::from_millis(20)))
        .unwrap();
    assert!(matches!(waited, Event::Timeout));
    send_byte(&write_end);
    assert!(matches!(
        server.next_request(Some(PATIENCE)).unwrap(),
        Event::ParentExited
    ));
    assert_eq!(wait_for(&mut parent), ExitStatus::Exited(0));
    std::fs::remove_file(&address).unwrap();
    std::fs::remove_dir(address.parent().unwrap()).unwrap();
}
