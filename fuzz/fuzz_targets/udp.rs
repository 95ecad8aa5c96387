//! Fuzz target: `udp` parser must not panic, and what parses re-emits to an
//! equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(unused_imports)]
use netslice_wire::*;

fuzz_target!(|data: &[u8]| {
    let (src, dst) = (
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    );
    if let Ok(p) = udp::Packet::new_checked(data) {
        let _ = p.payload();
        if let Ok(r) = udp::Repr::parse(&p, src, dst) {
            let mut buf = data[..r.buffer_len()].to_vec();
            r.emit(&mut udp::Packet::new_unchecked(&mut buf[..]), src, dst, true).unwrap();
            assert_eq!(udp::Repr::parse(&udp::Packet::new_checked(&buf[..]).unwrap(), src, dst).unwrap(), r);
        }
    }
});
