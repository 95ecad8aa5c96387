//! Fuzz target: `vlan` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = vlan::Packet::new_checked(data) {
        if let Ok(r) = vlan::Repr::parse(&p) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut vlan::Packet::new_unchecked(&mut buf[..]));
            assert_eq!(vlan::Repr::parse(&vlan::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
});
