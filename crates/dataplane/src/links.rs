//! The built-in link types.
//!
//! | type | carrier | label | header |
//! | --- | --- | --- | --- |
//! | `gre` | raw IPv4, protocol 47 | GRE key (RFC 2890) | 8 bytes + IPv4 |
//! | `vxlan` | UDP 4789 | VNI (RFC 7348) | 8 bytes + UDP + IPv4 |
//! | `vlan` | Ethernet, 0x8100 | VLAN id (802.1Q), 16..4094 | 4-byte tag inserted after the frame's addresses |
//! | `pbb` | Ethernet, 0x88E7 | I-SID (802.1ah) | backbone addresses + I-TAG, 18 bytes |

use std::ops::Range;
use std::sync::Arc;

use netslice_model::Label;
use netslice_model::types::{Layer, LinkTypeInfo};
use netslice_wire::{EtherType, ethernet, gre, ipv4, itag, vlan, vxlan};

use crate::registry::{Carrier, HopAddrs, LabelField, LinkTypePlugin};

/// The built-in link types.
pub fn builtin() -> Vec<Arc<dyn LinkTypePlugin>> {
    vec![Arc::new(Gre), Arc::new(Vxlan), Arc::new(Vlan), Arc::new(Pbb)]
}

/// GRE over IPv4 with a key.
#[derive(Debug, Clone, Copy)]
pub struct Gre;

/// GRE header with a key.
pub const GRE_HEADER_LEN: usize = 8;

impl LinkTypePlugin for Gre {
    fn info(&self) -> LinkTypeInfo {
        LinkTypeInfo {
            name: "gre".into(),
            description: "GRE over IPv4 (RFC 2784/2890); GRE key = hop label; raw socket, no kernel module".into(),
            layer: Layer::Ip,
            overhead: 20 + GRE_HEADER_LEN as u32,
            max_label: u32::MAX,
        }
    }

    fn carrier(&self) -> Carrier {
        Carrier::IpProto(ipv4::protocol::GRE)
    }

    fn wire_overhead(&self) -> u32 {
        14 + 20 + GRE_HEADER_LEN as u32
    }

    fn label_field(&self) -> Option<LabelField> {
        Some(LabelField::GreKey)
    }

    fn encap(&self, label: Label, _: &HopAddrs, buf: &mut [u8], frame: Range<usize>) -> Option<Range<usize>> {
        let label = label.0;
        let start = frame.start.checked_sub(GRE_HEADER_LEN)?;
        let repr =
            gre::Repr { protocol: EtherType::TransparentEthernet, checksum: false, key: Some(label), sequence: None };
        repr.emit(&mut gre::Packet::new_unchecked(&mut buf[start..frame.start]));
        Some(start..frame.end)
    }

    fn decap(&self, buf: &mut [u8], packet: Range<usize>) -> Option<(Label, Range<usize>)> {
        let p = &buf[packet.clone()];
        let ip = ipv4::Packet::new_checked(p).ok()?;
        if ip.version() != 4 || ip.protocol() != ipv4::protocol::GRE || ip.more_frags() || ip.frag_offset() != 0 {
            return None;
        }
        let hl = ip.header_len();
        let end = usize::from(ip.total_len());
        let g = gre::Packet::new_checked(&p[hl..end]).ok()?;
        if g.version() != 0
            || g.reserved0() != 0
            || g.protocol() != EtherType::TransparentEthernet
            || !g.verify_checksum()
        {
            return None;
        }
        let key = g.key()?;
        Some((Label(key), packet.start + hl + g.header_len()..packet.start + end))
    }
}

/// VXLAN over UDP.
#[derive(Debug, Clone, Copy)]
pub struct Vxlan;

impl LinkTypePlugin for Vxlan {
    fn info(&self) -> LinkTypeInfo {
        LinkTypeInfo {
            name: "vxlan".into(),
            description: "VXLAN over UDP port 4789 (RFC 7348); VNI = hop label".into(),
            layer: Layer::Ip,
            overhead: 20 + 8 + vxlan::HEADER_LEN as u32,
            max_label: vxlan::MAX_VNI,
        }
    }

    fn carrier(&self) -> Carrier {
        Carrier::Udp(vxlan::UDP_PORT)
    }

    fn wire_overhead(&self) -> u32 {
        14 + 20 + 8 + vxlan::HEADER_LEN as u32
    }

    fn label_field(&self) -> Option<LabelField> {
        Some(LabelField::UdpBe24 { offset: 4 })
    }

    fn encap(&self, label: Label, _: &HopAddrs, buf: &mut [u8], frame: Range<usize>) -> Option<Range<usize>> {
        let label = label.0;
        let start = frame.start.checked_sub(vxlan::HEADER_LEN)?;
        vxlan::Repr { vni: label }.emit(&mut vxlan::Packet::new_unchecked(&mut buf[start..frame.start])).ok()?;
        Some(start..frame.end)
    }

    fn decap(&self, buf: &mut [u8], packet: Range<usize>) -> Option<(Label, Range<usize>)> {
        let v = vxlan::Packet::new_checked(&buf[packet.clone()]).ok()?;
        let r = vxlan::Repr::parse(&v).ok()?;
        Some((Label(r.vni), packet.start + vxlan::HEADER_LEN..packet.end))
    }
}

/// IEEE 802.1Q: a C-tag with VID = hop label inserted after the carried frame's
/// own addresses (the frame keeps its MACs, as on a real VLAN trunk).
#[derive(Debug, Clone, Copy)]
pub struct Vlan;

impl LinkTypePlugin for Vlan {
    fn info(&self) -> LinkTypeInfo {
        LinkTypeInfo {
            name: "vlan".into(),
            description: "IEEE 802.1Q over Ethernet-only transport; VLAN id = hop label (16..4094)".into(),
            layer: Layer::Ethernet,
            overhead: vlan::HEADER_LEN as u32,
            max_label: u32::from(vlan::MAX_VID),
        }
    }

    fn carrier(&self) -> Carrier {
        Carrier::Ethernet(0x8100)
    }

    fn wire_overhead(&self) -> u32 {
        vlan::HEADER_LEN as u32
    }

    fn encap(&self, label: Label, _: &HopAddrs, buf: &mut [u8], frame: Range<usize>) -> Option<Range<usize>> {
        let label = label.0;
        if label > u32::from(vlan::MAX_VID) || frame.len() < ethernet::HEADER_LEN {
            return None;
        }
        let start = frame.start.checked_sub(vlan::HEADER_LEN)?;
        // Move the frame's addresses 4 bytes earlier and put the tag after them.
        buf.copy_within(frame.start..frame.start + 12, start);
        buf[start + 12..start + 14].copy_from_slice(&0x8100u16.to_be_bytes());
        vlan::Packet::new_unchecked(&mut buf[start + 14..start + 16]).set_tci(0, false, label as u16);
        Some(start..frame.end)
    }

    fn decap(&self, buf: &mut [u8], packet: Range<usize>) -> Option<(Label, Range<usize>)> {
        let p = &buf[packet.clone()];
        let eth = ethernet::Frame::new_checked(p).ok()?;
        if eth.ethertype() != EtherType::Vlan || p.len() < ethernet::HEADER_LEN + vlan::HEADER_LEN {
            return None;
        }
        let tag = vlan::Packet::new_checked(&p[14..]).ok()?;
        let vid = u32::from(vlan::Repr::parse(&tag).ok()?.vid);
        // Remove the tag: the addresses move 4 bytes later.
        let s = packet.start;
        buf.copy_within(s..s + 12, s + vlan::HEADER_LEN);
        Some((Label(vid), s + vlan::HEADER_LEN..packet.end))
    }
}

/// IEEE 802.1ah (PBB, MAC-in-MAC): backbone addresses of the hop, EtherType
/// 0x88E7, I-TAG with I-SID = hop label, then the whole carried frame.
#[derive(Debug, Clone, Copy)]
pub struct Pbb;

/// Backbone Ethernet header + I-TAG TCI.
pub const PBB_HEADER_LEN: usize = ethernet::HEADER_LEN + itag::HEADER_LEN;

impl LinkTypePlugin for Pbb {
    fn info(&self) -> LinkTypeInfo {
        LinkTypeInfo {
            name: "pbb".into(),
            description: "IEEE 802.1ah MAC-in-MAC over Ethernet-only transport; I-SID = hop label".into(),
            layer: Layer::Ethernet,
            overhead: itag::HEADER_LEN as u32,
            max_label: itag::MAX_ISID,
        }
    }

    fn carrier(&self) -> Carrier {
        Carrier::Ethernet(0x88E7)
    }

    fn wire_overhead(&self) -> u32 {
        PBB_HEADER_LEN as u32
    }

    fn encap(&self, label: Label, hop: &HopAddrs, buf: &mut [u8], frame: Range<usize>) -> Option<Range<usize>> {
        let label = label.0;
        if label > itag::MAX_ISID {
            return None;
        }
        let start = frame.start.checked_sub(PBB_HEADER_LEN)?;
        ethernet::Repr { src_addr: hop.local_mac, dst_addr: hop.peer_mac, ethertype: EtherType::ITag }
            .emit(&mut ethernet::Frame::new_unchecked(&mut buf[start..start + ethernet::HEADER_LEN]));
        itag::Repr { pcp: 0, dei: false, uca: false, isid: label }
            .emit(&mut itag::Packet::new_unchecked(&mut buf[start + ethernet::HEADER_LEN..frame.end]));
        Some(start..frame.end)
    }

    fn decap(&self, buf: &mut [u8], packet: Range<usize>) -> Option<(Label, Range<usize>)> {
        let p = &buf[packet.clone()];
        let eth = ethernet::Frame::new_checked(p).ok()?;
        if eth.ethertype() != EtherType::ITag {
            return None;
        }
        let t = itag::Packet::new_checked(eth.payload()).ok()?;
        let r = itag::Repr::parse(&t).ok()?;
        Some((Label(r.isid), packet.start + PBB_HEADER_LEN..packet.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netslice_wire::MacAddr;
    use std::net::Ipv4Addr;

    fn hop() -> HopAddrs {
        HopAddrs {
            next_hop: Ipv4Addr::new(172, 31, 0, 2),
            local_mac: MacAddr([6, 0, 0, 0, 0, 1]),
            peer_mac: MacAddr([6, 0, 0, 0, 0, 2]),
        }
    }

    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 64 + 60];
        f[64..70].copy_from_slice(&[2, 0, 0, 0, 0, 0xb]);
        f[70..76].copy_from_slice(&[2, 0, 0, 0, 0, 0xa]);
        f[76..78].copy_from_slice(&[0x08, 0x00]);
        for (i, b) in f[78..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn ethernet_types_round_trip() {
        for (p, label) in [(&Vlan as &dyn LinkTypePlugin, Label(100)), (&Pbb, Label(0x123456))] {
            let mut buf = frame();
            let original = buf[64..].to_vec();
            let pkt = {
                let n = buf.len();
                p.encap(label, &hop(), &mut buf, 64..n)
            }
            .unwrap();
            let (got, inner) = p.decap(&mut buf, pkt).unwrap();
            assert_eq!(got, label, "{:?}", p.info().name);
            assert_eq!(&buf[inner], &original[..], "{:?}", p.info().name);
        }
    }

    #[test]
    fn vlan_wire_format() {
        let mut buf = frame();
        let pkt = {
            let n = buf.len();
            Vlan.encap(Label(100), &hop(), &mut buf, 64..n)
        }
        .unwrap();
        let w = &buf[pkt];
        assert_eq!(&w[..6], &[2, 0, 0, 0, 0, 0xb], "keeps the frame's destination");
        assert_eq!(&w[12..16], &[0x81, 0x00, 0x00, 0x64]);
        assert_eq!(&w[16..18], &[0x08, 0x00]);
        assert!(Vlan.encap(Label(4095), &hop(), &mut frame(), 64..124).is_none());
    }

    #[test]
    fn pbb_wire_format() {
        let mut buf = frame();
        let pkt = {
            let n = buf.len();
            Pbb.encap(Label(7), &hop(), &mut buf, 64..n)
        }
        .unwrap();
        let w = &buf[pkt];
        assert_eq!(&w[..6], &[6, 0, 0, 0, 0, 2], "backbone destination = next hop");
        assert_eq!(&w[6..12], &[6, 0, 0, 0, 0, 1]);
        assert_eq!(&w[12..18], &[0x88, 0xe7, 0, 0, 0, 7]);
        assert_eq!(&w[18..24], &[2, 0, 0, 0, 0, 0xb], "customer frame follows");
    }

    #[test]
    fn wrong_type_is_not_decapsulated() {
        let mut buf = frame();
        let n = buf.len();
        assert!(Vlan.decap(&mut buf, 64..n).is_none());
        assert!(Pbb.decap(&mut buf, 64..n).is_none());
        assert!(Gre.decap(&mut buf, 64..n).is_none());
    }
}
