//! Fuzz target: `ethernet` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = ethernet::Frame::new_checked(data) {
        let r = ethernet::Repr::parse(&f).unwrap();
        let mut buf = data.to_vec();
        r.emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
        assert_eq!(buf, data);
    }
});
