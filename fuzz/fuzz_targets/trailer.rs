//! Fuzz target: `trailer` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    // Never an error that drops: locate either finds a trailer or names why not.
    if let Ok((r, at)) = trailer::locate(data) {
        let mut buf = data.to_vec();
        let end = trailer::append(&mut buf, at, &r).unwrap();
        assert_eq!(trailer::locate(&buf[..end]), Ok((r, at)));
    }
});
