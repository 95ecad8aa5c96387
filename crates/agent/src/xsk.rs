//! AF_XDP substrate I/O: one AF_XDP socket per physical interface, in front of
//! the socket carriers. Frames of every carrier (IP protocols, UDP ports,
//! Ethernet types of the registered link types) arrive through it without the
//! kernel's IP stack; packets that fit one UMEM frame leave through it with
//! Ethernet, IPv4 (and UDP) headers built here from the underlay link's
//! addresses. What does not fit (TCP super-frames: the IP layer fragments
//! them) and whatever the kernel keeps (fragments to reassemble) still use the
//! raw, UDP and packet sockets, which stay open as the fallback.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};

use netslice_dataplane::{Carrier, LabelField, Registry};
use netslice_io::xdp::{FRAME_SIZE, Filter, PassMap, Xsk};
use netslice_model::api::UnderlayLink;
use netslice_wire::{EtherType, MacAddr, ethernet, ipv4, udp};

pub use netslice_io::IoMode;

/// The carriers' frames the XDP program steals.
pub fn filter(registry: &Registry) -> Filter {
    let mut f = Filter::default();
    for (_, l) in registry.links() {
        match l.carrier() {
            Carrier::IpProto(p) if !f.ip_protos.contains(&p) => f.ip_protos.push(p),
            Carrier::Udp(p) if !f.udp_ports.contains(&p) => f.udp_ports.push(p),
            Carrier::Ethernet(et) if !f.ethertypes.contains(&et) => f.ethertypes.push(et),
            _ => {}
        }
        if let (Carrier::Udp(p), Some(LabelField::UdpBe24 { offset })) = (l.carrier(), l.label_field())
            && !f.udp_labels.iter().any(|(q, _)| *q == p)
        {
            f.udp_labels.push((p, offset));
        }
    }
    f
}

/// An AF_XDP socket on one physical link's interface, with what it takes to
/// build that link's outer headers.
#[derive(Debug)]
pub struct XskPort {
    /// The socket.
    pub xsk: Xsk,
    /// Interface name.
    pub ifname: String,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    /// (destination, source) MACs.
    macs: (MacAddr, MacAddr),
    mtu: usize,
    ip_id: AtomicU16,
}

/// How one outgoing packet is framed.
#[derive(Debug, Clone, Copy)]
pub enum Outer {
    /// Inside IPv4 with this protocol (GRE).
    Ip(u8),
    /// Inside UDP to this port (VXLAN).
    Udp(u16),
    /// Already a whole Ethernet frame.
    Ether,
}

impl XskPort {
    /// Opens AF_XDP on the link's interface (calling thread's namespace).
    /// Labels in `pass` are left to the kernel (see `slicerx`).
    pub fn open(u: &UnderlayLink, filter: &Filter, pass: Option<&PassMap>) -> netslice_io::Result<XskPort> {
        let xsk = Xsk::open_passing(&u.ifname, filter, pass)?;
        let macs = (u.peer_mac, u.local_mac);
        Ok(XskPort {
            xsk,
            ifname: u.ifname.clone(),
            local: u.local,
            peer: u.peer,
            macs,
            mtu: u.mtu as usize,
            ip_id: AtomicU16::new(1),
        })
    }

    /// Whether a `len`-byte packet framed as `outer` leaves through the socket.
    pub fn fits(&self, outer: Outer, len: usize, next_hop: Ipv4Addr) -> bool {
        let wire = len + self.overhead(outer);
        let mtu_ok = match outer {
            Outer::Ether => wire <= self.mtu + 14 + 4,
            _ => wire - 14 <= self.mtu,
        };
        let addressed = matches!(outer, Outer::Ether) || next_hop == self.peer;
        addressed && wire <= FRAME_SIZE && mtu_ok
    }

    fn overhead(&self, outer: Outer) -> usize {
        match outer {
            Outer::Ip(_) => 14 + 20,
            Outer::Udp(_) => 14 + 20 + 8,
            Outer::Ether => 0,
        }
    }

    /// Writes `packet` framed as `outer` into `frame`; returns the frame
    /// length (0: it does not fit).
    pub fn frame(&self, outer: Outer, packet: &[u8], frame: &mut [u8]) -> usize {
        let hl = self.overhead(outer);
        let len = hl + packet.len();
        if len > frame.len() {
            return 0;
        }
        let frame = &mut frame[..len];
        let (proto, ip_payload) = match outer {
            Outer::Ether => {
                frame.copy_from_slice(packet);
                return len;
            }
            Outer::Ip(p) => (p, packet.len()),
            Outer::Udp(_) => (ipv4::protocol::UDP, udp::HEADER_LEN + packet.len()),
        };
        let (dst_mac, src_mac) = self.macs;
        frame[hl..].copy_from_slice(packet);
        ethernet::Repr { src_addr: src_mac, dst_addr: dst_mac, ethertype: EtherType::Ipv4 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut frame[..]));
        let ip = ipv4::Repr {
            src_addr: self.local,
            dst_addr: self.peer,
            protocol: proto,
            payload_len: ip_payload,
            ttl: 64,
            tos: 0,
            ident: self.ip_id.fetch_add(1, Ordering::Relaxed),
            dont_frag: false,
        };
        let at = ethernet::HEADER_LEN;
        if ip.emit(&mut ipv4::Packet::new_unchecked(&mut frame[at..])).is_err() {
            return 0;
        }
        if let Outer::Udp(port) = outer {
            let at = at + ipv4::HEADER_LEN;
            let u = udp::Repr { src_port: port, dst_port: port, payload_len: packet.len() };
            // No checksum: RFC 7348 over IPv4.
            let done =
                u.emit(&mut udp::Packet::new_unchecked(&mut frame[at..]), self.local.into(), self.peer.into(), false);
            if done.is_err() {
                return 0;
            }
        }
        len
    }
}

/// Where the carrier's packet is in a received frame, and which carrier
/// brought it: GRE and the like start at the IP header (as raw sockets deliver
/// them), UDP carriers after the UDP header, Ethernet carriers at the frame.
/// Ethernet padding after an IP packet is left out.
pub fn classify(frame: &[u8]) -> Option<(Carrier, std::ops::Range<usize>)> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Some((Carrier::Ethernet(u16::from(eth.ethertype())), 0..frame.len()));
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    // What the XDP program steals has no IP options.
    if ip.version() != 4 || ip.header_len() != ipv4::HEADER_LEN {
        return None;
    }
    let (l3, end) = (ethernet::HEADER_LEN, ethernet::HEADER_LEN + usize::from(ip.total_len()));
    let l4 = l3 + ipv4::HEADER_LEN;
    match ip.protocol() {
        ipv4::protocol::UDP => {
            let hdr = ip.payload().get(..udp::HEADER_LEN)?;
            let port = udp::Packet::new_unchecked(hdr).dst_port();
            Some((Carrier::Udp(port), l4 + udp::HEADER_LEN..end))
        }
        p => Some((Carrier::IpProto(p), l3..end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_frames_are_classified_by_carrier() {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&44u16.to_be_bytes()); // 2 bytes of padding follow
        f[23] = 47;
        assert_eq!(classify(&f), Some((Carrier::IpProto(47), 14..58)));
        f[23] = 17;
        f[36..38].copy_from_slice(&4789u16.to_be_bytes());
        assert_eq!(classify(&f), Some((Carrier::Udp(4789), 42..58)));
        f[16..18].copy_from_slice(&999u16.to_be_bytes());
        assert_eq!(classify(&f), None, "IP length beyond the frame");
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(classify(&f), Some((Carrier::Ethernet(0x8100), 0..60)));
        assert_eq!(classify(&f[..10]), None);
        assert!("xdp".parse::<IoMode>().is_ok() && "nope".parse::<IoMode>().is_err());
    }
}
