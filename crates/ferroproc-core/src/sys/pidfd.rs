//! Process descriptors (pidfds), reaping, signals and process ids.
//!
//! Everything here is safe rustix, except sending a signal that rustix cannot name
//! (real-time signals, and signal 0), which goes through the raw system call.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::io::{Errno, Result};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, WaitOptions};

/// How a reaped process ended: `Ok(code)` for an exit, `Err(signo)` for a signal.
pub(crate) type Reaped = std::result::Result<i32, i32>;

fn pid(raw: i32) -> Result<Pid> {
    Pid::from_raw(raw).ok_or(Errno::INVAL)
}

/// `pidfd_open(pid, 0)`: a close-on-exec descriptor for process `pid`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
pub(crate) fn pidfd_open(raw_pid: i32) -> Result<OwnedFd> {
    rustix::process::pidfd_open(pid(raw_pid)?, PidfdFlags::empty())
}

/// `pidfd_send_signal(pidfd, signo, NULL, 0)`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html)
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signo: i32) -> Result<()> {
    if let Some(signal) = Signal::from_named_raw(signo) {
        return rustix::process::pidfd_send_signal(pidfd, signal);
    }
    // SAFETY: the arguments are a descriptor we borrow for the call, an integer signal
    // number the kernel validates, a null `siginfo_t` pointer (allowed: the kernel then
    // fills in the info as `kill` does) and zero flags. No memory of ours is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signo,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let raw = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        Err(Errno::from_raw_os_error(raw))
    }
}

/// `waitid(P_PIDFD, pidfd, &info, WEXITED | WNOHANG)`: reaps the child if it has exited.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/waitid.2.html)
pub(crate) fn reap_nohang(pidfd: BorrowedFd<'_>) -> Result<Option<Reaped>> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    let Some(info) = rustix::process::waitid(WaitId::PidFd(pidfd), options)? else {
        return Ok(None);
    };
    if let Some(code) = info.exit_status() {
        Ok(Some(Ok(code)))
    } else if let Some(signo) = info.terminating_signal() {
        Ok(Some(Err(signo)))
    } else {
        // WEXITED reports only exits and deaths by signal; anything else is not an exit.
        Ok(None)
    }
}

/// `kill(pid, SIGKILL)` then a blocking `waitpid(pid, NULL, 0)`, retried on `EINTR`: for a
/// child we could not take hold of, so that it is neither left running nor a zombie.
///
/// # References
///  - [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html)
///  - [waitpid(2)](https://man7.org/linux/man-pages/man2/waitpid.2.html)
pub(crate) fn kill_and_reap(raw_pid: i32) {
    let Ok(pid) = pid(raw_pid) else { return };
    let _ = rustix::process::kill_process(pid, Signal::KILL);
    while let Err(Errno::INTR) = rustix::process::waitpid(Some(pid), WaitOptions::empty()) {}
}

/// `kill(getpid(), SIGKILL)`: does not return in practice.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/kill.2.html)
pub(crate) fn kill_self() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::KILL);
}

/// `getpid()`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/getpid.2.html)
pub(crate) fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// `getppid()`; 0 when the parent is outside our pid namespace.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/getppid.2.html)
pub(crate) fn getppid() -> i32 {
    rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get())
}

/// Whether process `raw_pid` is alive, a zombie counting as dead.
///
/// `pidfd_open(pid, 0)`, then `poll(pidfd, POLLIN, 0)`: a pidfd polls readable once its
/// process has exited, whether or not it has been reaped. `ESRCH` from `pidfd_open` means
/// there is no such process. Where pidfds are unavailable (`ENOSYS` before Linux 5.3, or
/// `EMFILE`), falls back to `kill(pid, 0)`, which cannot tell a zombie from a live process;
/// `EPERM` from it still means the process exists. Allocates nothing, so forked children
/// of multithreaded processes may call it.
///
/// # References
///  - [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
///  - [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html)
///  - [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html)
pub(crate) fn process_alive(raw_pid: i32) -> Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};

    let pid = pid(raw_pid)?;
    match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(pidfd) => {
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            loop {
                match rustix::event::poll(&mut fds, Some(&now)) {
                    Ok(ready) => return Ok(ready == 0),
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Errno::SRCH) => Ok(false),
        Err(_) => match rustix::process::test_kill_process(pid) {
            Ok(()) | Err(Errno::PERM) => Ok(true),
            Err(Errno::SRCH) => Ok(false),
            Err(e) => Err(e),
        },
    }
}

/// `gettid()`: the calling thread's kernel id (unique among the live threads of the pid
/// namespace; the main thread's is the process id).
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/gettid.2.html)
pub(crate) fn gettid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}
