//! The `Connection` frame codec: known encodings, round trips, and hostile input.

use ferroproc_core::connection::frame::{encode, FrameDecoder, Header, PREALLOCATION_CAP};
use ferroproc_core::connection::FrameError;
use proptest::prelude::*;

/// Decodes every frame in `bytes`; the leftover bytes form an incomplete frame.
fn decode_all(mut bytes: &[u8], max_length: Option<u64>) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let mut decoder = FrameDecoder::new(max_length);
        let taken = decoder.feed(bytes)?;
        bytes = &bytes[taken..];
        match decoder.into_payload() {
            Some(payload) => frames.push(payload),
            None => break,
        }
    }
    Ok(frames)
}

fn long_header(length: u64) -> Vec<u8> {
    let mut header = (-1i32).to_be_bytes().to_vec();
    header.extend_from_slice(&length.to_be_bytes());
    header
}

#[test]
fn encodes_like_the_stdlib() {
    let mut out = Vec::new();
    encode(b"hello", &mut out);
    assert_eq!(out, b"\x00\x00\x00\x05hello");
    out.clear();
    encode(b"", &mut out);
    assert_eq!(out, b"\x00\x00\x00\x00");
    assert_eq!(
        Header::for_payload(0x8000_0000).as_bytes(),
        long_header(0x8000_0000)
    );
}

#[test]
fn empty_frame_is_complete_after_its_header() {
    let mut decoder = FrameDecoder::new(None);
    assert!(decoder.at_frame_boundary());
    assert_eq!(decoder.feed(&[0, 0, 0, 0, 9, 9]), Ok(4));
    assert!(decoder.is_complete());
    assert_eq!(decoder.announced_length(), Some(0));
    assert_eq!(decoder.into_payload(), Some(Vec::new()));
}

#[test]
fn long_header_with_a_short_payload_is_accepted() {
    let mut bytes = long_header(3);
    bytes.extend_from_slice(b"abc");
    assert_eq!(decode_all(&bytes, None), Ok(vec![b"abc".to_vec()]));
}

#[test]
fn negative_length_is_rejected() {
    let mut decoder = FrameDecoder::new(None);
    assert_eq!(
        decoder.feed(&(-2i32).to_be_bytes()),
        Err(FrameError::NegativeLength(-2))
    );
}

#[test]
fn over_max_length_is_rejected_before_any_payload() {
    let mut decoder = FrameDecoder::new(Some(4));
    assert_eq!(
        decoder.feed(b"\x00\x00\x00\x05hello"),
        Err(FrameError::OverMaximum {
            length: 5,
            max_length: 4
        })
    );
    let mut decoder = FrameDecoder::new(Some(5));
    assert_eq!(decoder.feed(b"\x00\x00\x00\x05hello"), Ok(9));
}

#[test]
fn impossible_length_is_rejected() {
    let mut decoder = FrameDecoder::new(None);
    assert_eq!(
        decoder.feed(&long_header(u64::MAX)),
        Err(FrameError::Impossible(u64::MAX))
    );
}

#[test]
fn never_reads_past_its_frame() {
    let mut decoder = FrameDecoder::new(None);
    assert_eq!(decoder.read_target().len(), 4);
    decoder.read_target().copy_from_slice(&[0, 0, 0, 3]);
    decoder.commit(4).unwrap();
    assert_eq!(decoder.read_target().len(), 3);
    decoder.read_target()[..2].copy_from_slice(b"ab");
    decoder.commit(2).unwrap();
    assert_eq!(decoder.read_target(), b"\0");
    decoder.commit(1).unwrap();
    assert!(decoder.is_complete());
    assert!(decoder.read_target().is_empty());
}

#[test]
fn a_huge_claim_grows_only_with_what_arrives() {
    let mut decoder = FrameDecoder::new(None);
    decoder.feed(&long_header(1 << 62)).unwrap();
    assert_eq!(decoder.announced_length(), Some(1 << 62));
    let chunk = vec![7u8; 100_000];
    for _ in 0..10 {
        decoder.feed(&chunk).unwrap();
        let received = decoder.received();
        assert!(decoder.allocated() <= 2 * received.max(PREALLOCATION_CAP) + PREALLOCATION_CAP);
    }
    assert!(!decoder.is_complete());
}

proptest! {
    #[test]
    fn round_trips_in_any_chunking(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        chunk in 1usize..64,
    ) {
        let mut stream = Vec::new();
        for payload in &payloads {
            encode(payload, &mut stream);
        }
        let mut decoded = Vec::new();
        let mut decoder = FrameDecoder::new(None);
        for piece in stream.chunks(chunk) {
            let mut piece = piece;
            while !piece.is_empty() {
                let taken = decoder.feed(piece).unwrap();
                piece = &piece[taken..];
                if decoder.is_complete() {
                    let done = std::mem::replace(&mut decoder, FrameDecoder::new(None));
                    decoded.push(done.into_payload().unwrap());
                }
            }
        }
        prop_assert!(decoder.at_frame_boundary());
        prop_assert_eq!(decoded, payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_over_allocate(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        max_length in proptest::option::of(any::<u64>()),
    ) {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let mut decoder = FrameDecoder::new(max_length);
            match decoder.feed(rest) {
                Ok(taken) => {
                    prop_assert!(taken <= rest.len());
                    prop_assert!(decoder.allocated() <= PREALLOCATION_CAP.max(2 * decoder.received()));
                    if let Some(length) = decoder.announced_length() {
                        prop_assert!(max_length.is_none_or(|max| length as u64 <= max));
                    }
                    if !decoder.is_complete() {
                        break;
                    }
                    rest = &rest[taken..];
                }
                Err(_) => break,
            }
        }
    }
}
