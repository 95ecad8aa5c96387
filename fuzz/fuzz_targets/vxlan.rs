//! Fuzz target: `vxlan` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = vxlan::Packet::new_checked(data) {
        if let Ok(r) = vxlan::Repr::parse(&p) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut vxlan::Packet::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(vxlan::Repr::parse(&vxlan::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
});
