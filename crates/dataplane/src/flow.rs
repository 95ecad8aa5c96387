//! Flow hashing: which worker thread a frame goes to.
//!
//! Frames of one flow (same addresses, protocol and ports) must reach the same
//! worker so that they leave in the order they came; frames of different flows
//! should spread evenly. The hash covers what a flow keeps constant: the
//! Ethernet addresses and type of a frame, plus for IPv4 and IPv6 the
//! addresses and protocol and, for unfragmented TCP, UDP and SCTP, the ports.
//! Fields that change per packet (lengths, IDs, checksums, TTLs) stay out.

use netslice_wire::{EtherType, ethernet, ipv4, ipv6, udp, vlan};

/// A multiply-rotate mix (FxHash-like), finished with a murmur3 avalanche so
/// that `hash % n` spreads for any `n`.
#[derive(Clone, Copy)]
struct Mix(u64);

impl Mix {
    fn add(self, v: u64) -> Mix {
        Mix((self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95))
    }

    fn bytes(mut self, b: &[u8]) -> Mix {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self = self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        let r = chunks.remainder();
        last[..r.len()].copy_from_slice(r);
        self.add(u64::from_le_bytes(last) ^ ((r.len() as u64) << 56))
    }

    fn finish(self) -> u32 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h as u32
    }
}

/// The flow hash of the Ethernet frame `frame`. Never fails: whatever cannot
/// be parsed is hashed by the parts that could.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else { return Mix(0).bytes(frame).finish() };
    let mut h = Mix(0).bytes(&eth.dst_addr().0).bytes(&eth.src_addr().0);
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();
    // Up to two VLAN tags; the VLAN IDs are part of the flow.
    for _ in 0..2 {
        if ethertype != EtherType::Vlan && ethertype != EtherType::QinQ {
            break;
        }
        let Ok(tag) = vlan::Packet::new_checked(rest) else { return h.finish() };
        h = h.add(u64::from(tag.vid()));
        ethertype = tag.ethertype();
        rest = &rest[vlan::HEADER_LEN..];
    }
    h = h.add(u64::from(u16::from(ethertype)));
    // Only the fixed headers are read (lengths and checksums are per-packet
    // and may be anything here).
    let (l4, proto) = match ethertype {
        EtherType::Ipv4 if rest.len() >= ipv4::HEADER_LEN => {
            let ip = ipv4::Packet::new_unchecked(rest);
            h = h.bytes(&ip.src_addr().octets()).bytes(&ip.dst_addr().octets()).add(u64::from(ip.protocol()));
            // Only the first fragment has ports; leave them out for all.
            if ip.more_frags() || ip.frag_offset() != 0 || ip.header_len() < ipv4::HEADER_LEN {
                return h.finish();
            }
            (ip.header_len(), ip.protocol())
        }
        EtherType::Ipv6 if rest.len() >= ipv6::HEADER_LEN => {
            let ip = ipv6::Packet::new_unchecked(rest);
            h = h.bytes(&ip.src_addr().octets()).bytes(&ip.dst_addr().octets()).add(u64::from(ip.next_header()));
            (ipv6::HEADER_LEN, ip.next_header())
        }
        _ => return h.finish(),
    };
    match proto {
        // TCP, UDP, SCTP, UDP-Lite: source and destination port come first,
        // where UDP has them.
        6 | 17 | 132 | 136 => match rest.get(l4..l4 + 4) {
            Some(p) => {
                let p = udp::Packet::new_unchecked(p);
                h.add(u64::from(p.src_port()) << 16 | u64::from(p.dst_port())).finish()
            }
            None => h.finish(),
        },
        _ => h.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet + IPv4 + UDP frame.
    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, id: u16, ttl: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + payload];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 8 + payload) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[8] = ttl;
        ip[9] = 17;
        ip[10..12].copy_from_slice(&id.wrapping_mul(7).to_be_bytes()); // "checksum"
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn ports_and_addresses_are_the_flow() {
        let a = flow_hash(&udp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 9999, 1, 64, 10));
        assert_ne!(a, flow_hash(&udp4([10, 0, 0, 1], [10, 0, 0, 2], 1001, 9999, 1, 64, 10)));
        assert_ne!(a, flow_hash(&udp4([10, 0, 0, 1], [10, 0, 0, 3], 1000, 9999, 1, 64, 10)));
        assert_ne!(a, flow_hash(&udp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 9998, 1, 64, 10)));
    }

    #[test]
    fn fragments_of_a_flow_hash_alike_without_ports() {
        let mut first = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 9999, 1, 64, 100);
        first[14 + 6] = 0x20; // more fragments, offset 0
        let mut later = first.clone();
        later[14 + 6] = 0x00;
        later[14 + 7] = 0x10; // offset 128, no ports in it
        later[34..38].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(flow_hash(&first), flow_hash(&later));
    }

    #[test]
    fn short_and_odd_frames_hash_without_panicking() {
        for n in 0..80 {
            let f: Vec<u8> = (0..n as u8).collect();
            flow_hash(&f);
        }
        let mut v = udp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, 3, 4, 0);
        v[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        flow_hash(&v);
    }

    #[test]
    fn flows_spread_over_workers() {
        // 4096 flows that differ only in the source port, over 3 and 4 workers:
        // every worker gets within 15% of its share.
        for n in [3usize, 4] {
            let mut count = vec![0usize; n];
            for port in 0..4096u16 {
                let h = flow_hash(&udp4([10, 0, 0, 1], [10, 0, 0, 2], 20000 + port, 5201, 0, 64, 0));
                count[h as usize % n] += 1;
            }
            let share = 4096 / n;
            for c in count {
                assert!(c.abs_diff(share) * 100 <= share * 15, "{n} workers: {c} vs {share}");
            }
        }
    }

    proptest! {
        /// What changes per packet (IP ID, TTL, checksum, payload and its length)
        /// never moves a flow to another worker.
        #[test]
        fn per_packet_fields_do_not_change_the_hash(
            src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16,
            id1: u16, id2: u16, ttl1: u8, ttl2: u8, len1 in 0usize..64, len2 in 0usize..64, fill: u8,
        ) {
            let a = udp4(src, dst, sport, dport, id1, ttl1, len1);
            let mut b = udp4(src, dst, sport, dport, id2, ttl2, len2);
            for x in &mut b[42..] {
                *x = fill;
            }
            prop_assert_eq!(flow_hash(&a), flow_hash(&b));
        }
    }
}
