//! The stdlib's wire framing of `Connection` messages, as a pure codec.
//!
//! A frame is a header followed by the payload. Payloads of up to `0x7fff_ffff` bytes
//! have a 4-byte big-endian signed length; longer ones have the 4-byte marker `-1`
//! followed by an 8-byte big-endian unsigned length (CPython's
//! `multiprocessing/connection.py`, `Connection._send_bytes` and `_recv_bytes`, 3.8 and
//! later). A reader accepts a long header for a short payload too.
//!
//! The decoder is fed bytes as they arrive and never trusts the announced length with
//! memory: its buffer grows only with the bytes actually received (at most doubling, or by
//! [`PREALLOCATION_CAP`]), so a peer claiming 2^62 bytes and sending ten costs ten bytes
//! and a few KiB, not an allocation failure. It never asks for bytes past the end of its
//! frame, so a reader built on it leaves the next frame in the stream untouched.

use super::error::FrameError;

/// The longest payload a 4-byte header can announce.
pub const MAX_SHORT_LENGTH: u64 = 0x7fff_ffff;
/// The 4-byte header value saying an 8-byte length follows.
const LONG_MARKER: i32 = -1;
const SHORT_HEADER_LEN: usize = 4;
const LONG_HEADER_LEN: usize = SHORT_HEADER_LEN + 8;
/// The most a decoder allocates ahead of the bytes it has received. Large enough that a
/// typical message arrives in one read, small enough that a lying header costs nothing.
pub const PREALLOCATION_CAP: usize = 64 * 1024;

/// The header of one frame, ready to be written before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; LONG_HEADER_LEN],
    len: usize,
}

impl Header {
    /// The header announcing a payload of `payload_len` bytes.
    pub fn for_payload(payload_len: usize) -> Self {
        let mut bytes = [0; LONG_HEADER_LEN];
        let payload_len = payload_len as u64;
        if payload_len > MAX_SHORT_LENGTH {
            bytes[..SHORT_HEADER_LEN].copy_from_slice(&LONG_MARKER.to_be_bytes());
            bytes[SHORT_HEADER_LEN..].copy_from_slice(&payload_len.to_be_bytes());
            Self {
                bytes,
                len: LONG_HEADER_LEN,
            }
        } else {
            // Lossless: checked against MAX_SHORT_LENGTH just above.
            let short = payload_len as u32;
            bytes[..SHORT_HEADER_LEN].copy_from_slice(&short.to_be_bytes());
            Self {
                bytes,
                len: SHORT_HEADER_LEN,
            }
        }
    }

    /// The header's bytes: 4, or 12 for a long payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends the frame of `payload` (header, then payload) to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(Header::for_payload(payload.len()).as_bytes());
    out.extend_from_slice(payload);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the 4-byte header; `filled` bytes of it are in.
    ShortHeader,
    /// The marker said an 8-byte length follows.
    LongHeader,
    /// The length is known; the payload is arriving.
    Payload,
    /// The whole frame is in.
    Complete,
}

/// An incremental decoder of one frame.
///
/// Either [`feed`](Self::feed) it byte slices, or read straight into
/// [`read_target`](Self::read_target) and [`commit`](Self::commit) what was read. After
/// an error the decoder is spent: the stream is out of step and must be dropped.
#[derive(Debug)]
pub struct FrameDecoder {
    max_length: Option<u64>,
    stage: Stage,
    header: [u8; LONG_HEADER_LEN],
    /// Header bytes received so far (`ShortHeader`, `LongHeader`).
    header_filled: usize,
    /// The announced payload length, once known.
    length: usize,
    /// `payload[..payload_filled]` is received; the rest is zeroed room for the next read.
    payload: Vec<u8>,
    payload_filled: usize,
}

impl FrameDecoder {
    /// A decoder for one frame whose payload may be at most `max_length` bytes (`None`:
    /// any length).
    pub fn new(max_length: Option<u64>) -> Self {
        Self {
            max_length,
            stage: Stage::ShortHeader,
            header: [0; LONG_HEADER_LEN],
            header_filled: 0,
            length: 0,
            payload: Vec::new(),
            payload_filled: 0,
        }
    }

    /// True before the first byte of the frame: end of file here is a clean end.
    pub fn at_frame_boundary(&self) -> bool {
        self.stage == Stage::ShortHeader && self.header_filled == 0
    }

    /// True once the whole frame is in; [`into_payload`](Self::into_payload) gives it.
    pub fn is_complete(&self) -> bool {
        self.stage == Stage::Complete
    }

    /// The payload length the header announced, once the header is in.
    pub fn announced_length(&self) -> Option<usize> {
        matches!(self.stage, Stage::Payload | Stage::Complete).then_some(self.length)
    }

    /// Where the next bytes of the stream go: never longer than what is left of this
    /// frame, and empty once it is complete. Grows the payload buffer only as far as
    /// the bytes received so far justify.
    pub fn read_target(&mut self) -> &mut [u8] {
        match self.stage {
            Stage::ShortHeader => &mut self.header[self.header_filled..SHORT_HEADER_LEN],
            Stage::LongHeader => &mut self.header[self.header_filled..LONG_HEADER_LEN],
            Stage::Payload => {
                if self.payload_filled == self.payload.len() {
                    let room = self.payload_filled.max(PREALLOCATION_CAP);
                    let grown = self.length.min(self.payload_filled.saturating_add(room));
                    self.payload.reserve_exact(grown - self.payload.len());
                    self.payload.resize(grown, 0);
                }
                &mut self.payload[self.payload_filled..]
            }
            Stage::Complete => &mut [],
        }
    }

    /// Accounts for `n` bytes written into the last [`read_target`](Self::read_target).
    ///
    /// # Panics
    /// If `n` is longer than that target (a bug in the caller).
    pub fn commit(&mut self, n: usize) -> Result<(), FrameError> {
        match self.stage {
            Stage::ShortHeader => {
                self.header_filled += n;
                assert!(
                    self.header_filled <= SHORT_HEADER_LEN,
                    "commit past the read target"
                );
                if self.header_filled == SHORT_HEADER_LEN {
                    let short = i32::from_be_bytes(self.short_header());
                    if short == LONG_MARKER {
                        self.stage = Stage::LongHeader;
                    } else if short < 0 {
                        return Err(FrameError::NegativeLength(short));
                    } else {
                        // Lossless: non-negative i32.
                        self.start_payload(short as u64)?;
                    }
                }
            }
            Stage::LongHeader => {
                self.header_filled += n;
                assert!(
                    self.header_filled <= LONG_HEADER_LEN,
                    "commit past the read target"
                );
                if self.header_filled == LONG_HEADER_LEN {
                    let mut long = [0; 8];
                    long.copy_from_slice(&self.header[SHORT_HEADER_LEN..]);
                    self.start_payload(u64::from_be_bytes(long))?;
                }
            }
            Stage::Payload => {
                self.payload_filled += n;
                assert!(
                    self.payload_filled <= self.payload.len(),
                    "commit past the read target"
                );
                if self.payload_filled == self.length {
                    self.stage = Stage::Complete;
                }
            }
            Stage::Complete => assert_eq!(n, 0, "commit past the end of the frame"),
        }
        Ok(())
    }

    /// Takes bytes from the front of `input` until the frame is complete or `input` is
    /// used up; returns how many it took (the rest belongs to the next frame).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<usize, FrameError> {
        let mut taken = 0;
        while !input.is_empty() && !self.is_complete() {
            let target = self.read_target();
            let n = target.len().min(input.len());
            target[..n].copy_from_slice(&input[..n]);
            self.commit(n)?;
            input = &input[n..];
            taken += n;
        }
        Ok(taken)
    }

    /// The payload of a complete frame (`None` before it is complete).
    pub fn into_payload(mut self) -> Option<Vec<u8>> {
        if !self.is_complete() {
            return None;
        }
        self.payload.truncate(self.length);
        Some(self.payload)
    }

    /// How many bytes the payload buffer holds room for (for tests of the allocation
    /// bound).
    pub fn allocated(&self) -> usize {
        self.payload.capacity()
    }

    /// How many bytes of the frame (header included) have been received.
    pub fn received(&self) -> usize {
        self.header_filled + self.payload_filled
    }

    fn short_header(&self) -> [u8; SHORT_HEADER_LEN] {
        let mut short = [0; SHORT_HEADER_LEN];
        short.copy_from_slice(&self.header[..SHORT_HEADER_LEN]);
        short
    }

    fn start_payload(&mut self, length: u64) -> Result<(), FrameError> {
        if let Some(max_length) = self.max_length {
            if length > max_length {
                return Err(FrameError::OverMaximum { length, max_length });
            }
        }
        // A Python `bytes` (and a Rust `Vec`) holds at most isize::MAX bytes.
        let length = usize::try_from(length)
            .ok()
            .filter(|&len| isize::try_from(len).is_ok())
            .ok_or(FrameError::Impossible(length))?;
        self.length = length;
        self.stage = if length == 0 {
            Stage::Complete
        } else {
            Stage::Payload
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_headers() {
        assert_eq!(Header::for_payload(8).as_bytes(), &[0, 0, 0, 8]);
        assert_eq!(
            Header::for_payload(0x7fff_ffff).as_bytes(),
            &[0x7f, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            Header::for_payload(0x8000_0000).as_bytes(),
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
    }

    #[test]
    fn a_lying_header_costs_only_what_arrives() {
        let mut decoder = FrameDecoder::new(None);
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff];
        bytes.extend_from_slice(&(1u64 << 62).to_be_bytes());
        bytes.extend_from_slice(b"ten bytes!");
        assert_eq!(decoder.feed(&bytes), Ok(bytes.len()));
        assert!(!decoder.is_complete());
        assert!(decoder.allocated() <= 2 * PREALLOCATION_CAP);
    }
}
