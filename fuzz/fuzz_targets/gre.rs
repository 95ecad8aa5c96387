//! Fuzz target: `gre` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = gre::Packet::new_checked(data) {
        let _ = p.payload();
        if let Ok(r) = gre::Repr::parse(&p) {
            let mut buf = data.to_vec();
            r.emit(&mut gre::Packet::new_unchecked(&mut buf[..]));
            assert_eq!(gre::Repr::parse(&gre::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
});
