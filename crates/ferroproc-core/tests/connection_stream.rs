//! Frames over real descriptors: socket pairs and pipes, whole, in pieces, and cut off.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ferroproc_core::connection::{
    readable_until, wait_readable, ConnectionError, FrameError, FrameReceiver, FrameSender,
};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn send(fd: std::os::fd::BorrowedFd<'_>, payload: &[u8]) {
    let mut sender = FrameSender::new(payload);
    while !sender.send_until(fd, soon()).unwrap() {}
}

fn receive(fd: std::os::fd::BorrowedFd<'_>, max: Option<u64>) -> Result<Vec<u8>, ConnectionError> {
    let mut receiver = FrameReceiver::new(max);
    loop {
        if let Some(payload) = receiver.receive_until(fd, soon())? {
            return Ok(payload);
        }
    }
}

#[test]
fn frames_cross_a_socket_pair() {
    let (a, b) = UnixStream::pair().unwrap();
    send(a.as_fd(), b"first");
    send(a.as_fd(), b"");
    send(a.as_fd(), b"third");
    assert_eq!(receive(b.as_fd(), None).unwrap(), b"first");
    assert_eq!(receive(b.as_fd(), None).unwrap(), b"");
    assert_eq!(receive(b.as_fd(), None).unwrap(), b"third");
}

#[test]
fn nothing_to_read_times_out_at_a_frame_boundary() {
    let (_a, b) = UnixStream::pair().unwrap();
    let mut receiver = FrameReceiver::new(None);
    let until = Instant::now() + Duration::from_millis(20);
    assert!(receiver.receive_until(b.as_fd(), until).unwrap().is_none());
    assert!(receiver.at_frame_boundary());
    assert!(!readable_until(b.as_fd(), Instant::now(), true).unwrap());
}

#[test]
fn large_frames_cross_pipes_and_sockets() {
    let payload: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let (a, b) = UnixStream::pair().unwrap();
    let (r, w) = rustix::pipe::pipe().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| send(a.as_fd(), &payload));
        scope.spawn(|| send(w.as_fd(), &payload));
        assert_eq!(receive(b.as_fd(), None).unwrap(), payload);
        assert_eq!(receive(r.as_fd(), None).unwrap(), payload);
    });
}

#[test]
fn end_of_file_between_and_inside_frames() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(a);
    assert!(matches!(
        receive(b.as_fd(), None),
        Err(ConnectionError::Eof)
    ));

    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(b"\0\0\0\x09half").unwrap();
    drop(a);
    assert!(matches!(
        receive(b.as_fd(), None),
        Err(ConnectionError::TruncatedFrame)
    ));
}

#[test]
fn over_max_length_is_reported_without_reading_the_payload() {
    let (a, b) = UnixStream::pair().unwrap();
    send(a.as_fd(), b"123456");
    assert!(matches!(
        receive(b.as_fd(), Some(5)),
        Err(ConnectionError::Frame(FrameError::OverMaximum {
            length: 6,
            ..
        }))
    ));
}

#[test]
fn a_gone_peer_is_a_broken_pipe() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let mut sender = FrameSender::new(b"hello");
    let err = sender.try_send(a.as_fd()).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::PIPE.raw_os_error())
    );
}

#[test]
fn wait_reports_which_descriptors_are_readable() {
    let (a, b) = UnixStream::pair().unwrap();
    let (c, d) = UnixStream::pair().unwrap();
    let fds = [b.as_fd(), d.as_fd()];
    let until = Instant::now() + Duration::from_millis(10);
    assert_eq!(
        wait_readable(&fds, Some(until)).unwrap(),
        vec![false, false]
    );
    send(c.as_fd(), b"x");
    assert_eq!(wait_readable(&fds, None).unwrap(), vec![false, true]);
    drop(a);
    assert_eq!(wait_readable(&fds, None).unwrap(), vec![true, true]);
}

fn packet_pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

fn receive_packets(fd: std::os::fd::BorrowedFd<'_>) -> Result<Vec<u8>, ConnectionError> {
    let mut receiver = FrameReceiver::for_packets(None);
    loop {
        if let Some(payload) = receiver.receive_until(fd, soon())? {
            return Ok(payload);
        }
    }
}

#[test]
fn frames_of_every_size_cross_a_packet_socket() {
    use ferroproc_core::connection::{is_packet_socket, FIRST_PACKET_MAX, PACKET_MAX};
    let (a, b) = packet_pair();
    assert!(is_packet_socket(a.as_fd()).unwrap());
    let (stream, _) = UnixStream::pair().unwrap();
    assert!(!is_packet_socket(stream.as_fd()).unwrap());
    let sizes = [
        0,
        1,
        FIRST_PACKET_MAX - 4,
        FIRST_PACKET_MAX - 3,
        PACKET_MAX,
        3 * PACKET_MAX + 17,
        5_000_000,
    ];
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for &size in &sizes {
                let payload: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
                let mut sender = FrameSender::for_packets(&payload);
                while !sender.send_until(a.as_fd(), soon()).unwrap() {}
            }
        });
        for &size in &sizes {
            let expected: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            assert_eq!(receive_packets(b.as_fd()).unwrap(), expected, "size {size}");
        }
    });
    drop(a);
    assert!(matches!(
        receive_packets(b.as_fd()),
        Err(ConnectionError::Eof)
    ));
}

#[test]
fn a_packet_holding_two_frames_is_refused() {
    let (a, b) = packet_pair();
    // Two whole frames in one packet: not something our senders do.
    let mut both = Vec::new();
    ferroproc_core::connection::frame::encode(b"one", &mut both);
    ferroproc_core::connection::frame::encode(b"two", &mut both);
    rustix::net::send(&a, &both, rustix::net::SendFlags::empty()).unwrap();
    assert!(matches!(
        receive_packets(b.as_fd()),
        Err(ConnectionError::Frame(FrameError::PacketOverrun))
    ));
}
