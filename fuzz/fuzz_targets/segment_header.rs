//! Arbitrary bytes as the contents of a shared-memory segment someone asks to attach.
//!
//! A fresh anonymous segment is filled with the input and attached through its descriptor,
//! the way a child attaches what its parent sent. `Segment::attach` must refuse every
//! header that does not match (magic, version, tag, size) with an error, never panic, and
//! never expose more bytes than the file really has. The first four bytes after the
//! header's magic double as the tag asked for, so matching tags are reached too.
#![no_main]

use std::os::fd::AsFd;

use ferroproc_core::shm::{Backing, Segment, Source, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() || data.len() > 1 << 16 {
        return;
    }
    let tag = data
        .get(12..16)
        .map_or(Tag::new(*b"fuzz"), |b| Tag::new([b[0], b[1], b[2], b[3]]));
    let file = Segment::create_raw(Backing::Anonymous, data.len()).expect("memfd");
    file.copy_in(0, data)
        .expect("the input fits the segment it sized");
    if let Ok(attached) = Segment::attach(Source::Fd(file.fd().as_fd()), tag) {
        assert!(attached.len() <= data.len());
        assert_eq!(attached.tag(), Some(tag));
        let mut copy = vec![0; attached.len()];
        attached.copy_out(0, &mut copy).expect("in bounds");
    }
});
