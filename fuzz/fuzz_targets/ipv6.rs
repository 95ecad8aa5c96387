//! Fuzz target: `ipv6` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        let _ = p.payload();
        if let Ok(r) = ipv6::Repr::parse(&p) {
            let mut buf = vec![0u8; r.buffer_len() + r.payload_len];
            r.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
});
