//! Property tests: for every format, `parse(emit(r)) == r`, and parsing arbitrary
//! bytes never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netslice_wire::*;
use proptest::prelude::*;

fn ethertype() -> impl Strategy<Value = EtherType> {
    any::<u16>().prop_map(EtherType::from)
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

proptest! {
    #[test]
    fn ethernet_roundtrip(src in mac(), dst in mac(), et in ethertype(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = ethernet::Repr { src_addr: src, dst_addr: dst, ethertype: et };
        let mut buf = vec![0u8; r.buffer_len() + payload.len()];
        buf[r.buffer_len()..].copy_from_slice(&payload);
        let mut f = ethernet::Frame::new_unchecked(&mut buf[..]);
        r.emit(&mut f);
        let f = ethernet::Frame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(ethernet::Repr::parse(&f).unwrap(), r);
        prop_assert_eq!(f.payload(), &payload[..]);
    }

    #[test]
    fn vlan_roundtrip(pcp in 0u8..8, dei: bool, vid in 0u16..=vlan::MAX_VID, et in ethertype()) {
        let r = vlan::Repr { pcp, dei, vid, ethertype: et };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut vlan::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(vlan::Repr::parse(&vlan::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn itag_roundtrip(pcp in 0u8..8, dei: bool, uca: bool, isid in 0u32..=itag::MAX_ISID) {
        let r = itag::Repr { pcp, dei, uca, isid };
        let mut buf = vec![0u8; r.buffer_len() + 12];
        r.emit(&mut itag::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(itag::Repr::parse(&itag::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv4_roundtrip(src: [u8; 4], dst: [u8; 4], protocol: u8, len in 0usize..1500, ttl: u8, tos: u8, ident: u16, df: bool) {
        let r = ipv4::Repr {
            src_addr: Ipv4Addr::from(src), dst_addr: Ipv4Addr::from(dst), protocol,
            payload_len: len, ttl, tos, ident, dont_frag: df,
        };
        let mut buf = vec![0u8; r.buffer_len() + len];
        r.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(ipv4::Repr::parse(&ipv4::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv6_roundtrip(src: [u8; 16], dst: [u8; 16], nh: u8, len in 0usize..1500, hl: u8, tc: u8, flow in 0u32..(1 << 20)) {
        let r = ipv6::Repr {
            src_addr: Ipv6Addr::from(src), dst_addr: Ipv6Addr::from(dst), next_header: nh,
            payload_len: len, hop_limit: hl, traffic_class: tc, flow_label: flow,
        };
        let mut buf = vec![0u8; r.buffer_len() + len];
        r.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn udp_roundtrip(sp: u16, dp in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..128), v6: bool, csum: bool) {
        let (src, dst) = if v6 {
            (IpAddr::V6("2001:db8::1".parse().unwrap()), IpAddr::V6("2001:db8::2".parse().unwrap()))
        } else {
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
        };
        let r = udp::Repr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut buf = vec![0u8; r.buffer_len()];
        buf[udp::HEADER_LEN..].copy_from_slice(&payload);
        r.emit(&mut udp::Packet::new_unchecked(&mut buf[..]), src, dst, csum || v6).unwrap();
        prop_assert_eq!(udp::Repr::parse(&udp::Packet::new_checked(&buf[..]).unwrap(), src, dst).unwrap(), r);
    }

    #[test]
    fn tcp_roundtrip(
        sp: u16, dp in 1u16.., seq: u32, ack: u32, flags: u8, win: u16, urg: u16,
        opt_words in 0usize..=10, payload in proptest::collection::vec(any::<u8>(), 0..128), v6: bool, csum: bool,
    ) {
        let (src, dst) = if v6 {
            (IpAddr::V6("2001:db8::1".parse().unwrap()), IpAddr::V6("2001:db8::2".parse().unwrap()))
        } else {
            (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)))
        };
        let r = tcp::Repr {
            src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack, flags: tcp::Flags(flags),
            window_len: win, urgent: urg, header_len: 20 + 4 * opt_words, payload_len: payload.len(),
        };
        let mut buf = vec![0u8; r.buffer_len()];
        buf[r.header_len..].copy_from_slice(&payload);
        r.emit(&mut tcp::Packet::new_unchecked(&mut buf[..]), src, dst, true).unwrap();
        let p = tcp::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(tcp::Repr::parse(&p, src, dst).unwrap(), r);
        prop_assert_eq!(p.payload(), &payload[..]);
        // Without a checksum it does not verify (unless the sum happens to be 0).
        if !csum {
            r.emit(&mut tcp::Packet::new_unchecked(&mut buf[..]), src, dst, false).unwrap();
            let p = tcp::Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(tcp::Repr::parse(&p, src, dst).is_ok(), p.verify_checksum(src, dst).unwrap());
        }
    }

    #[test]
    fn vnet_roundtrip(flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16, csum_start: u16, csum_offset: u16) {
        let r = vnet::Repr { flags, gso_type, hdr_len, gso_size, csum_start, csum_offset };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut vnet::Header::new_unchecked(&mut buf[..]));
        prop_assert_eq!(vnet::Repr::parse(&vnet::Header::new_checked(&buf[..]).unwrap()), r);
    }

    #[test]
    fn gre_roundtrip(et in ethertype(), csum: bool, key: Option<u32>, seq: Option<u32>, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = gre::Repr { protocol: et, checksum: csum, key, sequence: seq };
        let mut buf = vec![0u8; r.buffer_len() + payload.len()];
        buf[r.buffer_len()..].copy_from_slice(&payload);
        r.emit(&mut gre::Packet::new_unchecked(&mut buf[..]));
        let p = gre::Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(gre::Repr::parse(&p).unwrap(), r);
        prop_assert_eq!(p.payload(), &payload[..]);
    }

    #[test]
    fn vxlan_roundtrip(vni in 0u32..=vxlan::MAX_VNI) {
        let r = vxlan::Repr { vni };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut vxlan::Packet::new_unchecked(&mut buf[..])).unwrap();
        prop_assert_eq!(vxlan::Repr::parse(&vxlan::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn icmpv4_roundtrip(kind in 0u8..4, a: u16, b: u16, code in 0u8..2, data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let data_len = data.len();
        let r = match kind {
            0 => icmpv4::Repr::EchoRequest { ident: a, seq_no: b, data_len },
            1 => icmpv4::Repr::EchoReply { ident: a, seq_no: b, data_len },
            2 => icmpv4::Repr::DstUnreachable { code, data_len },
            _ => icmpv4::Repr::TimeExceeded { code, data_len },
        };
        let mut buf = vec![0u8; r.buffer_len()];
        buf[icmpv4::HEADER_LEN..].copy_from_slice(&data);
        r.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(icmpv4::Repr::parse(&icmpv4::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn trailer_roundtrip(app: u32, term: [u8; 6], payload_len in 0usize..64, pad in 0usize..32) {
        let r = trailer::Repr { app_id: app, terminal_id: term };
        // Build Ethernet + IPv4 + payload, then append the trailer and some padding.
        let ip = ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1), dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 17, payload_len, ttl: 64, tos: 0, ident: 1, dont_frag: false,
        };
        let frame_len = 14 + 20 + payload_len;
        let mut buf = vec![0u8; frame_len + trailer::LEN + pad];
        ethernet::Repr { src_addr: MacAddr([2, 0, 0, 0, 0, 1]), dst_addr: MacAddr::BROADCAST, ethertype: EtherType::Ipv4 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut buf[..]));
        ip.emit(&mut ipv4::Packet::new_unchecked(&mut buf[14..])).unwrap();
        let end = trailer::append(&mut buf, frame_len, &r).unwrap();
        prop_assert_eq!(trailer::locate(&buf[..end + pad]), Ok((r, frame_len)));
    }

    #[test]
    fn extmac_roundtrip(et in ethertype(), dst: [u8; 16], src: [u8; 16]) {
        let r = extmac::Repr { ethertype: et, dst_addr: extmac::ExtAddr(dst), src_addr: extmac::ExtAddr(src) };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut extmac::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(extmac::Repr::parse(&extmac::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }

    /// No parser panics on arbitrary bytes (the fuzz targets explore this further).
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
        let src = IpAddr::V4(Ipv4Addr::LOCALHOST);
        if let Ok(f) = ethernet::Frame::new_checked(&data[..]) { let _ = ethernet::Repr::parse(&f); let _ = f.payload(); }
        if let Ok(p) = vlan::Packet::new_checked(&data[..]) { let _ = vlan::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = itag::Packet::new_checked(&data[..]) { let _ = itag::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = ipv4::Packet::new_checked(&data[..]) { let _ = ipv4::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = ipv6::Packet::new_checked(&data[..]) { let _ = ipv6::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = udp::Packet::new_checked(&data[..]) { let _ = udp::Repr::parse(&p, src, src); let _ = p.payload(); }
        if let Ok(p) = tcp::Packet::new_checked(&data[..]) { let _ = tcp::Repr::parse(&p, src, src); let _ = (p.payload(), p.options()); }
        if let Ok(h) = vnet::Header::new_checked(&data[..]) { let _ = vnet::Repr::parse(&h); }
        if let Ok(p) = gre::Packet::new_checked(&data[..]) { let _ = gre::Repr::parse(&p); let _ = p.payload(); }
        if let Ok(p) = vxlan::Packet::new_checked(&data[..]) { let _ = vxlan::Repr::parse(&p); }
        if let Ok(p) = icmpv4::Packet::new_checked(&data[..]) { let _ = icmpv4::Repr::parse(&p); }
        if let Ok(p) = extmac::Packet::new_checked(&data[..]) { let _ = extmac::Repr::parse(&p); }
        let _ = trailer::locate(&data);
    }
}

proptest! {
    #[test]
    fn arp_roundtrip(req: bool, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) {
        let r = arp::Repr {
            operation: if req { arp::Operation::Request } else { arp::Operation::Reply },
            source_hardware_addr: MacAddr(sha),
            source_protocol_addr: Ipv4Addr::from(spa),
            target_hardware_addr: MacAddr(tha),
            target_protocol_addr: Ipv4Addr::from(tpa),
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
        prop_assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
    }
}
