//! Fuzz target: `icmpv4` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = icmpv4::Packet::new_checked(data) {
        if let Ok(r) = icmpv4::Repr::parse(&p) {
            let mut buf = data.to_vec();
            r.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
            assert_eq!(icmpv4::Repr::parse(&icmpv4::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
});
