//! Arbitrary bytes from a peer into the `Connection` frame decoder.
//!
//! The first byte picks how the bytes arrive (chunk size) and whether a `maxlength`
//! applies; the rest is the stream. The decoder must never panic, never hand out a read
//! target past the end of its frame, never accept a length over the maximum, and never
//! allocate much more than what has arrived, whatever the header claims.
#![no_main]

use ferroproc_core::connection::frame::{FrameDecoder, PREALLOCATION_CAP};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x3f) + 1;
    let max_length = (control & 0x40 != 0).then_some(u64::from(control) * 3);
    let mut rest = stream;
    let mut decoder = FrameDecoder::new(max_length);
    while !rest.is_empty() {
        let target = decoder.read_target();
        if target.is_empty() {
            // Complete: the rest belongs to the next frame.
            let done = std::mem::replace(&mut decoder, FrameDecoder::new(max_length));
            let payload = done.into_payload().expect("an empty target means complete");
            assert!(max_length.is_none_or(|max| payload.len() as u64 <= max));
            continue;
        }
        let n = target.len().min(chunk).min(rest.len());
        target[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        if decoder.commit(n).is_err() {
            return;
        }
        assert!(decoder.allocated() <= PREALLOCATION_CAP.max(2 * decoder.received()));
    }
});
