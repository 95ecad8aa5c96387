//! Fuzz target: `arp` parser must not panic, and what parses re-emits identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_wire::arp;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = arp::Packet::new_checked(data) {
        if let Ok(r) = arp::Repr::parse(&p) {
            let mut buf = data[..arp::PACKET_LEN].to_vec();
            r.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
            assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
});
