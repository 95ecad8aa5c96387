//! Fuzz target: frames reaching a STAMP probe's interface (anything a slice
//! sends there) never panic the redirector's probe points, and a point
//! takes only a UDP datagram to its address and port.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use netslice_dataplane::probe::{MAX_TAKEN, ProbePoint, UdpView};
use netslice_model::PortNo;
use netslice_model::api::{ProbeConfig, ProbeRole};
use netslice_wire::MacAddr;
use netslice_wire::stamp::UDP_PORT;

fuzz_target!(|data: &[u8]| {
    let ip = Ipv4Addr::new(10, 0, 0, 2);
    let config = ProbeConfig { role: ProbeRole::Reflector { session: None }, port: PortNo(1), mac: MacAddr([2, 0, 0, 0, 0, 2]), ip };
    let point = ProbePoint::new(1, config, 0, u64::MAX, (0, 1));
    let view = UdpView::parse(data);
    let _ = UdpView::checksums_ok(data);
    let taken = point.take(1, data);
    let ours = data.len() <= MAX_TAKEN && view.as_ref().is_some_and(|v| v.dst_ip == ip && v.dst_port == UDP_PORT);
    assert_eq!(taken, ours);
    if let Some(v) = view {
        assert!(v.payload.end <= data.len() && v.payload.start <= v.payload.end);
    }
    assert_eq!(point.drain(usize::MAX).len(), usize::from(taken));
});
