//! The record format inside a channel's ring: a fixed header, then the payload.
//!
//! ```text
//! offset  size  field
//!      0     4  len    payload bytes in this record (little-endian)
//!      4     4  flags  FIRST | LAST | ABORT | SPILLED
//!      8     8  total  the whole message's length (the same as len when FIRST | LAST)
//!     16   len  payload, then zero padding up to a multiple of RECORD_ALIGN
//! ```
//!
//! A message small enough for one record is `FIRST | LAST`. A larger one streams as a
//! `FIRST` record, continuations, and a `LAST` one; a sender that gives up mid-stream (its
//! deadline passed) ends it with an `ABORT` record so readers drop what they gathered.
//! A message kept outside the ring (see [`Spill`](super::Spill)) is a `FIRST | LAST |
//! SPILLED` record whose 8-byte payload is the number it was stored under, and whose
//! `total` is its length.
//!
//! Records start at multiples of [`RECORD_ALIGN`] and the ring's capacity is one too, so a
//! header never wraps around the ring's end (payloads may).

/// Records start at multiples of this many bytes.
pub const RECORD_ALIGN: u64 = 16;
/// Size of a record's header.
pub const HEADER_LEN: u64 = 16;
/// The longest message a channel accepts (1 TiB): anything longer is a corrupt header,
/// not a real message.
pub const MAX_MESSAGE: u64 = 1 << 40;

/// The record begins a message.
pub const FIRST: u32 = 1;
/// The record ends a message.
pub const LAST: u32 = 2;
/// The sender abandoned the message being streamed: readers discard it.
pub const ABORT: u32 = 4;
/// The message itself is outside the ring; the payload is its spill number.
pub const SPILLED: u32 = 8;
/// Payload bytes of a spilled record: the spill number.
pub const SPILL_NUMBER_LEN: u32 = 8;
const KNOWN_FLAGS: u32 = FIRST | LAST | ABORT | SPILLED;

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload bytes in this record.
    pub len: u32,
    /// `FIRST`, `LAST`, `ABORT`.
    pub flags: u32,
    /// The whole message's length.
    pub total: u64,
}

impl RecordHeader {
    /// Serialises the header.
    pub fn encode(self) -> [u8; HEADER_LEN as usize] {
        let mut bytes = [0u8; HEADER_LEN as usize];
        bytes[0..4].copy_from_slice(&self.len.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.flags.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.total.to_le_bytes());
        bytes
    }

    /// Parses and validates a header read from the ring, where `available` bytes
    /// (header included) are committed from its start and no record's payload may exceed
    /// `max_payload`.
    pub fn decode(
        bytes: &[u8; HEADER_LEN as usize],
        available: u64,
        max_payload: u64,
    ) -> Result<Self, &'static str> {
        let word = |range: std::ops::Range<usize>| {
            let mut four = [0u8; 4];
            four.copy_from_slice(&bytes[range]);
            u32::from_le_bytes(four)
        };
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&bytes[8..16]);
        let header = Self {
            len: word(0..4),
            flags: word(4..8),
            total: u64::from_le_bytes(eight),
        };
        if header.flags & !KNOWN_FLAGS != 0 {
            return Err("unknown record flags");
        }
        if header.flags & ABORT != 0 && header.len != 0 {
            return Err("an abort record carries a payload");
        }
        if u64::from(header.len) > max_payload {
            return Err("record longer than the ring allows");
        }
        if record_size(u64::from(header.len)) > available {
            return Err("record runs past the committed data");
        }
        if header.total > MAX_MESSAGE
            || (header.flags & SPILLED == 0 && u64::from(header.len) > header.total)
        {
            return Err("impossible message length");
        }
        if header.flags & SPILLED != 0 {
            if header.flags != FIRST | LAST | SPILLED || header.len != SPILL_NUMBER_LEN {
                return Err("a malformed spilled-message record");
            }
        } else if header.flags & (FIRST | LAST) == FIRST | LAST
            && u64::from(header.len) != header.total
        {
            return Err("a single-record message whose length disagrees with itself");
        }
        Ok(header)
    }

    /// Whether this record starts a message.
    pub fn is_first(self) -> bool {
        self.flags & FIRST != 0
    }

    /// Whether this record ends a message.
    pub fn is_last(self) -> bool {
        self.flags & LAST != 0
    }

    /// Whether the message is outside the ring.
    pub fn is_spilled(self) -> bool {
        self.flags & SPILLED != 0
    }

    /// Whether this record abandons the message being streamed.
    pub fn is_abort(self) -> bool {
        self.flags & ABORT != 0
    }
}

/// Bytes a record with `payload` bytes occupies in the ring, header and padding included.
pub const fn record_size(payload: u64) -> u64 {
    HEADER_LEN + payload.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let header = RecordHeader {
            len: 5,
            flags: FIRST | LAST,
            total: 5,
        };
        assert_eq!(RecordHeader::decode(&header.encode(), 32, 1024), Ok(header));
    }

    #[test]
    fn bad_headers_are_refused() {
        let bad = |len, flags, total, available| {
            RecordHeader::decode(&RecordHeader { len, flags, total }.encode(), available, 64)
                .is_err()
        };
        assert!(bad(5, 8, 5, 32), "unknown flag");
        assert!(bad(65, FIRST, 100, 1024), "payload over the limit");
        assert!(bad(20, FIRST | LAST, 20, 32), "runs past the data");
        assert!(bad(5, FIRST | LAST, 6, 32), "inconsistent single record");
        assert!(bad(5, FIRST, MAX_MESSAGE + 1, 32), "absurd total");
        assert!(bad(1, ABORT, 1, 32), "abort with payload");
        assert!(!bad(0, ABORT, 0, 16));
        assert!(
            !bad(8, FIRST | LAST | SPILLED, 1 << 30, 32),
            "a spilled message"
        );
        assert!(
            bad(4, FIRST | LAST | SPILLED, 1 << 30, 32),
            "spill number too short"
        );
        assert!(bad(8, FIRST | SPILLED, 1 << 30, 32), "a spilled chunk");
    }

    #[test]
    fn record_sizes_are_aligned() {
        assert_eq!(record_size(0), 16);
        assert_eq!(record_size(1), 32);
        assert_eq!(record_size(16), 32);
        assert_eq!(record_size(17), 48);
    }
}
