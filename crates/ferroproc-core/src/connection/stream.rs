//! Sending and receiving frames over a stream descriptor: a socket (`socketpair`, TCP,
//! Unix) or a pipe.
//!
//! Nothing here blocks past the deadline it is given, so the bindings can slice every wait
//! and run signal handlers in between; and nothing changes the descriptor's flags, which
//! it shares with every process holding the same open file (see `sys::stream`).
//!
//! A receive first reads what is there. If nothing is, it spins for [`SPIN_BUDGET`]
//! re-trying non-blocking reads before it sleeps in `poll`: in a request/response
//! exchange the answer usually comes within microseconds, and sleeping costs the
//! cross-core wake-up of the sleeper (tens of microseconds, most of a round trip).

use std::io::IoSlice;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::error::{ConnectionError, FrameError};
use super::frame::{FrameDecoder, Header};
use crate::sys::stream::{self as sys, Direction, PIPE_ATOMIC_WRITE};

/// How long a receiver keeps re-trying before it sleeps. Long enough to cover a peer's
/// turnaround in a request/response exchange (a Python `recv_bytes` + `send_bytes` takes
/// a few microseconds), short enough that an idle wait wastes almost no CPU: a sleeping
/// reader's wake-up alone costs 10-80 µs between cores.
pub const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// The most bytes of the first packet of a frame on a packet socket (header included).
/// A reader takes it whole into a buffer of this size on its stack, then knows the
/// frame's length; small messages are one packet, so one system call receives them.
pub const FIRST_PACKET_MAX: usize = 4096;
/// The most bytes of each later packet of a frame: well under the socket buffer (a packet
/// must fit it whole), large enough that a big frame costs few system calls.
pub const PACKET_MAX: usize = 64 * 1024;

/// Whether `fd` is a `SOCK_SEQPACKET` socket, whose frames are sent and received as
/// packets (see [`FrameSender::for_packets`]); one system call, to ask once per descriptor.
pub fn is_packet_socket(fd: BorrowedFd<'_>) -> Result<bool, ConnectionError> {
    sys::is_packet_socket(fd).map_err(|e| ConnectionError::os("getsockopt", e))
}

/// Which calls a descriptor takes: learnt on the first read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unknown,
    Socket,
    Pipe,
}

/// Reads available bytes into `buf` without blocking: `Ok(None)` when there are none,
/// `Ok(Some(0))` at end of file.
fn read_available(
    fd: BorrowedFd<'_>,
    kind: &mut Kind,
    buf: &mut [u8],
) -> Result<Option<usize>, ConnectionError> {
    if *kind != Kind::Pipe {
        match sys::recv_nonblocking(fd, buf) {
            Ok(got) => {
                *kind = Kind::Socket;
                return Ok(got);
            }
            Err(Errno::NOTSOCK) => *kind = Kind::Pipe,
            Err(errno) => return Err(ConnectionError::os("recv", errno)),
        }
    }
    if !sys::ready(fd, Direction::Read, Some(Duration::ZERO))
        .map_err(|e| ConnectionError::os("poll", e))?
    {
        return Ok(None);
    }
    sys::read(fd, buf)
        .map(Some)
        .map_err(|e| ConnectionError::os("read", e))
}

/// Waits until `fd` is ready in `direction` or `until` passes; false on timeout.
fn wait_ready(
    fd: BorrowedFd<'_>,
    direction: Direction,
    until: Instant,
) -> Result<bool, ConnectionError> {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(false);
    }
    sys::ready(fd, direction, Some(left)).map_err(|e| ConnectionError::os("poll", e))
}

/// Spins on `attempt` (a non-blocking check) for at most [`SPIN_BUDGET`], never past
/// `until`.
fn spin<T>(
    until: Instant,
    mut attempt: impl FnMut() -> Result<Option<T>, ConnectionError>,
) -> Result<Option<T>, ConnectionError> {
    let spin_end = until.min(Instant::now() + SPIN_BUDGET);
    let mut round = 0u32;
    loop {
        if let Some(value) = attempt()? {
            return Ok(Some(value));
        }
        if Instant::now() >= spin_end {
            return Ok(None);
        }
        round = round.wrapping_add(1);
        if round % YIELD_EVERY == 0 {
            // Where the peer is waiting for this core (more runnable processes than
            // cores), let it run and answer; on an idle core this returns at once.
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// How many spin rounds between two yields of the core. Each round is one system call;
/// yielding every round would double the time it takes to notice a message.
const YIELD_EVERY: u32 = 8;

/// One frame being received; keep it across calls until it yields the payload.
#[derive(Debug)]
pub struct FrameReceiver {
    decoder: FrameDecoder,
    kind: Kind,
    spun: bool,
    /// The descriptor is a packet socket: packets never span two frames, so each can be
    /// read whole (see [`FIRST_PACKET_MAX`]).
    packets: bool,
    /// Where later packets of a long frame land (allocated on the first one).
    scratch: Vec<u8>,
}

impl FrameReceiver {
    /// A receiver of one frame of at most `max_length` payload bytes (`None`: any).
    pub fn new(max_length: Option<u64>) -> Self {
        Self {
            decoder: FrameDecoder::new(max_length),
            kind: Kind::Unknown,
            spun: false,
            packets: false,
            scratch: Vec::new(),
        }
    }

    /// A receiver for a packet socket (`SOCK_SEQPACKET`) whose peer sends frames as
    /// [`FrameSender::for_packets`] does: the first packet of a frame, header and all, is
    /// taken in one system call.
    pub fn for_packets(max_length: Option<u64>) -> Self {
        Self {
            packets: true,
            ..Self::new(max_length)
        }
    }

    /// True while no byte of the frame has arrived: giving up here leaves the stream in
    /// step, giving up later does not.
    pub fn at_frame_boundary(&self) -> bool {
        self.decoder.at_frame_boundary()
    }

    /// Reads what is available without blocking; the payload once the frame is whole.
    ///
    /// Errors: [`ConnectionError::Eof`] when the peer closed before the frame began,
    /// [`ConnectionError::TruncatedFrame`] when it closed inside it,
    /// [`ConnectionError::Frame`] for a header the reader does not accept.
    pub fn try_receive(&mut self, fd: BorrowedFd<'_>) -> Result<Option<Vec<u8>>, ConnectionError> {
        loop {
            if self.decoder.is_complete() {
                let done = std::mem::replace(&mut self.decoder, FrameDecoder::new(None));
                return Ok(done.into_payload());
            }
            let at_boundary = self.decoder.at_frame_boundary();
            if self.packets {
                // A packet must be read whole (the kernel drops what does not fit), and the
                // decoder grows its buffer only as data arrives: read into a buffer sized
                // for the largest packet, then hand the bytes over.
                let mut first = [0u8; FIRST_PACKET_MAX];
                let buffer: &mut [u8] = if at_boundary {
                    &mut first
                } else {
                    self.scratch.resize(PACKET_MAX, 0);
                    &mut self.scratch
                };
                match read_available(fd, &mut self.kind, buffer)? {
                    None => return Ok(None),
                    Some(0) if at_boundary => return Err(ConnectionError::Eof),
                    Some(0) => return Err(ConnectionError::TruncatedFrame),
                    Some(n) => {
                        if self.decoder.feed(&buffer[..n])? != n {
                            return Err(FrameError::PacketOverrun.into());
                        }
                    }
                }
                continue;
            }
            let target = self.decoder.read_target();
            match read_available(fd, &mut self.kind, target)? {
                None => return Ok(None),
                Some(0) if at_boundary => return Err(ConnectionError::Eof),
                Some(0) => return Err(ConnectionError::TruncatedFrame),
                Some(n) => self.decoder.commit(n)?,
            }
        }
    }

    /// Receives the frame, waiting until `until` at most (`Ok(None)` then; call again to
    /// go on with the same frame). The first call spins briefly before it sleeps.
    pub fn receive_until(
        &mut self,
        fd: BorrowedFd<'_>,
        until: Instant,
    ) -> Result<Option<Vec<u8>>, ConnectionError> {
        if !self.spun {
            self.spun = true;
            if let Some(payload) = spin(until, || self.try_receive(fd))? {
                return Ok(Some(payload));
            }
        } else if let Some(payload) = self.try_receive(fd)? {
            return Ok(Some(payload));
        }
        while wait_ready(fd, Direction::Read, until)? {
            if let Some(payload) = self.try_receive(fd)? {
                return Ok(Some(payload));
            }
        }
        Ok(None)
    }
}

/// Whether `fd` has something to read (bytes, end of file or an error) by `until`; with
/// `spin`, re-check for up to [`SPIN_BUDGET`] before sleeping.
pub fn readable_until(
    fd: BorrowedFd<'_>,
    until: Instant,
    spin_first: bool,
) -> Result<bool, ConnectionError> {
    let look = || {
        sys::ready(fd, Direction::Read, Some(Duration::ZERO))
            .map(|ready| ready.then_some(()))
            .map_err(|e| ConnectionError::os("poll", e))
    };
    let seen = if spin_first {
        spin(until, look)?
    } else {
        look()?
    };
    Ok(seen.is_some() || wait_ready(fd, Direction::Read, until)?)
}

/// One frame being sent; keep it across calls until it says it is done.
#[derive(Debug)]
pub struct FrameSender<'a> {
    header: Header,
    payload: &'a [u8],
    /// Bytes of header and payload written so far.
    sent: usize,
    kind: Kind,
    /// Send on a packet socket: packets of at most [`FIRST_PACKET_MAX`] (the first) and
    /// [`PACKET_MAX`] bytes, none spanning two frames.
    packets: bool,
}

impl<'a> FrameSender<'a> {
    /// A sender of the frame carrying `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        Self {
            header: Header::for_payload(payload.len()),
            payload,
            sent: 0,
            kind: Kind::Unknown,
            packets: false,
        }
    }

    /// A sender on a packet socket (`SOCK_SEQPACKET`), for a [`FrameReceiver::for_packets`].
    pub fn for_packets(payload: &'a [u8]) -> Self {
        Self {
            packets: true,
            ..Self::new(payload)
        }
    }

    /// The largest piece the next send may carry.
    fn next_piece_max(&self) -> usize {
        match (self.packets, self.sent) {
            (false, _) => usize::MAX,
            (true, 0) => FIRST_PACKET_MAX,
            (true, _) => PACKET_MAX,
        }
    }

    /// True once every byte of the frame is written.
    pub fn is_done(&self) -> bool {
        self.sent == self.header.as_bytes().len() + self.payload.len()
    }

    /// Writes as much of the frame as the descriptor takes without blocking (header and
    /// payload in one system call); true once it is all written. A gone peer is
    /// `EPIPE` (Python's `BrokenPipeError`).
    pub fn try_send(&mut self, fd: BorrowedFd<'_>) -> Result<bool, ConnectionError> {
        while !self.is_done() {
            let header = self.header.as_bytes();
            let header_rest = &header[self.sent.min(header.len())..];
            let payload_rest = &self.payload[self.sent.saturating_sub(header.len())..];
            let written = if self.kind == Kind::Pipe {
                self.write_pipe(fd, header_rest, payload_rest)?
            } else {
                let room = self.next_piece_max().saturating_sub(header_rest.len());
                let payload_piece = &payload_rest[..payload_rest.len().min(room)];
                let iov = [IoSlice::new(header_rest), IoSlice::new(payload_piece)];
                match sys::send_nonblocking(fd, &iov) {
                    Ok(written) => {
                        self.kind = Kind::Socket;
                        written
                    }
                    Err(Errno::NOTSOCK) => {
                        self.kind = Kind::Pipe;
                        continue;
                    }
                    Err(errno) => return Err(ConnectionError::os("sendmsg", errno)),
                }
            };
            match written {
                Some(n) => self.sent += n,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// A pipe write that cannot block: only after `poll` says there is room, and no more
    /// than the pipe then surely takes.
    fn write_pipe(
        &self,
        fd: BorrowedFd<'_>,
        header_rest: &[u8],
        payload_rest: &[u8],
    ) -> Result<Option<usize>, ConnectionError> {
        if !sys::ready(fd, Direction::Write, Some(Duration::ZERO))
            .map_err(|e| ConnectionError::os("poll", e))?
        {
            return Ok(None);
        }
        let payload_part = PIPE_ATOMIC_WRITE.saturating_sub(header_rest.len());
        let iov = [
            IoSlice::new(header_rest),
            IoSlice::new(&payload_rest[..payload_rest.len().min(payload_part)]),
        ];
        sys::writev(fd, &iov)
            .map(Some)
            .map_err(|e| ConnectionError::os("write", e))
    }

    /// Sends the frame, waiting for room until `until` at most (`Ok(false)` then; call
    /// again to go on with the same frame).
    pub fn send_until(
        &mut self,
        fd: BorrowedFd<'_>,
        until: Instant,
    ) -> Result<bool, ConnectionError> {
        if self.try_send(fd)? {
            return Ok(true);
        }
        while wait_ready(fd, Direction::Write, until)? {
            if self.try_send(fd)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
