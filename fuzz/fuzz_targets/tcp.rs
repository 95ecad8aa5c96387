//! Fuzz target: the `tcp` parser must not panic, and what parses re-emits to
//! an equal representation (options as NOPs, the payload as it was).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_wire::tcp;

fuzz_target!(|data: &[u8]| {
    let (src, dst) = (
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    );
    if let Ok(p) = tcp::Packet::new_checked(data) {
        let _ = (p.options(), p.payload(), p.flags(), p.urgent());
        if let Ok(r) = tcp::Repr::parse(&p, src, dst) {
            let mut buf = data.to_vec();
            r.emit(&mut tcp::Packet::new_unchecked(&mut buf[..]), src, dst, true).unwrap();
            let again = tcp::Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(tcp::Repr::parse(&again, src, dst).unwrap(), r);
            assert_eq!(again.payload(), p.payload());
        }
    }
});
