//! Large frames. A sliver's TAP offers TSO, so the sliver's TCP hands over
//! *super-frames* of up to ~60 KB (one Ethernet + IP + TCP header, many MSS of
//! payload) with a partial checksum. netslice carries them whole where the path
//! can (IP carriers let the substrate's IP layer fragment and reassemble them;
//! the receiving TAP takes them back with their segmentation metadata) and cuts
//! them into wire-size segments where it cannot (Ethernet-layer links, links that
//! emulate loss, fast-path nodes). Policing, shaping and counters charge what the
//! segments would put on the wire, never one packet for many.
//!
//! Everything here works on caller-owned byte slices and never panics on
//! malformed input: a frame that does not parse is simply not a super-frame.
//!
//! The virtio-net header layout (`struct virtio_net_hdr`, little-endian on the
//! hosts we run on) is what the TAP prepends to every frame in `IFF_VNET_HDR` mode.

use std::net::IpAddr;

use netslice_wire::tcp::Flags;
use netslice_wire::{EtherType, checksum, ethernet, ipv4, ipv6, tcp, vnet};

pub use netslice_wire::vnet::{
    F_DATA_VALID, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, HEADER_LEN as VNET_HDR_LEN, Repr as VnetHdr,
};

/// Reads the virtio-net header at the start of `b` (`None`: too short).
pub fn read_vnet_hdr(b: &[u8]) -> Option<VnetHdr> {
    vnet::Header::new_checked(b).ok().map(|h| VnetHdr::parse(&h))
}

/// Writes `h` into the first [`VNET_HDR_LEN`] bytes of `b` (which must hold them).
pub fn write_vnet_hdr(h: &VnetHdr, b: &mut [u8]) {
    h.emit(&mut vnet::Header::new_unchecked(b));
}

/// Layout of a TCP super-frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Super {
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// IP header bytes.
    pub ip_hl: usize,
    /// TCP header bytes.
    pub tcp_hl: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Payload bytes per segment.
    pub mss: usize,
    /// Number of segments.
    pub segs: usize,
}

impl Super {
    /// Bytes from the frame start to the TCP payload.
    pub fn hdr_len(&self) -> usize {
        self.l3 + self.ip_hl + self.tcp_hl
    }

    /// Bytes the segments of a `len`-byte super-frame take, headers included.
    pub fn wire_len(&self, len: usize) -> usize {
        len + (self.segs - 1) * self.hdr_len()
    }

    /// The virtio-net header that hands this super-frame to a TAP (partial
    /// checksum, as the sender's kernel left it).
    pub fn vnet_hdr(&self) -> VnetHdr {
        let csum_start = self.l3 + self.ip_hl;
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if self.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: self.hdr_len() as u16,
            gso_size: self.mss as u16,
            csum_start: csum_start as u16,
            csum_offset: 16,
        }
    }
}

const ETH_HLEN: usize = ethernet::HEADER_LEN;
/// Largest frame treated as a super-frame (an IP packet of 65535 bytes).
pub const MAX_SUPER: usize = ETH_HLEN + 65_535;

/// Recognises `frame` (Ethernet, untagged) as a TCP super-frame to be cut into
/// frames of at most `max_frame` bytes. `None` if it is no TCP-over-IP frame
/// whose lengths agree with its size, or if it already fits.
pub fn super_frame(frame: &[u8], max_frame: usize) -> Option<Super> {
    if frame.len() <= max_frame || frame.len() > MAX_SUPER {
        return None;
    }
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let ip = eth.payload();
    let (ip_hl, v6) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let p = ipv4::Packet::new_checked(ip).ok()?;
            let whole = usize::from(p.total_len()) == ip.len() && !p.more_frags() && p.frag_offset() == 0;
            if p.version() != 4 || !whole || p.protocol() != ipv4::protocol::TCP {
                return None;
            }
            (p.header_len(), false)
        }
        EtherType::Ipv6 => {
            let p = ipv6::Packet::new_checked(ip).ok()?;
            let whole = usize::from(p.payload_len()) + ipv6::HEADER_LEN == ip.len();
            if p.version() != 6 || !whole || p.next_header() != ipv4::protocol::TCP {
                return None;
            }
            (ipv6::HEADER_LEN, true)
        }
        _ => return None,
    };
    let tcp_hl = tcp::Packet::new_checked(ip.get(ip_hl..)?).ok()?.header_len();
    let hdr = ETH_HLEN + ip_hl + tcp_hl;
    let mss = max_frame.checked_sub(hdr).filter(|m| *m >= 8)?;
    let payload = frame.len() - hdr;
    let segs = payload.div_ceil(mss);
    (segs >= 2).then_some(Super { l3: ETH_HLEN, ip_hl, tcp_hl, v6, mss, segs })
}

/// Writes segment `k` of the super-frame into `out` and returns its length.
///
/// `pkt` holds the super-frame possibly behind encapsulation headers: its IP
/// header is at `pkt[l3]`, and everything before it is copied into every
/// segment unchanged (encapsulations carry no lengths of their own here: the
/// carrier's IP or UDP header is added by the kernel). Lengths, IPv4 id and
/// checksum, TCP sequence number, flags (FIN and PSH on the last segment only,
/// CWR on the first only) and a full TCP checksum are set per segment.
/// `out` must hold `l3 + ip_hl + tcp_hl + mss` bytes, and `pkt` must be a
/// super-frame [`super_frame`] recognised (with `l3` moved by the
/// encapsulation).
pub fn segment(pkt: &[u8], l3: usize, s: &Super, k: usize, out: &mut [u8]) -> usize {
    let hdr = l3 + s.ip_hl + s.tcp_hl;
    let start = hdr + k * s.mss;
    let end = (start + s.mss).min(pkt.len());
    let chunk = &pkt[start..end];
    let seg_len = hdr + chunk.len();
    out[..hdr].copy_from_slice(&pkt[..hdr]);
    out[hdr..seg_len].copy_from_slice(chunk);
    let tcp_len = s.tcp_hl + chunk.len();
    let (src, dst): (IpAddr, IpAddr) = if s.v6 {
        let mut ip = ipv6::Packet::new_unchecked(&mut out[l3..seg_len]);
        ip.set_payload_len(tcp_len as u16);
        (ip.src_addr().into(), ip.dst_addr().into())
    } else {
        let ident = ipv4::Packet::new_unchecked(&pkt[l3..]).ident().wrapping_add(k as u16);
        let mut ip = ipv4::Packet::new_unchecked(&mut out[l3..seg_len]);
        ip.set_total_len((s.ip_hl + tcp_len) as u16);
        ip.set_ident(ident);
        ip.fill_checksum();
        (ip.src_addr().into(), ip.dst_addr().into())
    };
    let th = l3 + s.ip_hl;
    let first = tcp::Packet::new_unchecked(&pkt[th..]);
    let mut flags = first.flags();
    if k + 1 != s.segs {
        flags = flags.without(Flags::FIN | Flags::PSH);
    }
    if k != 0 {
        flags = flags.without(Flags::CWR);
    }
    let seq = first.seq_number().wrapping_add((k * s.mss) as u32);
    let mut t = tcp::Packet::new_unchecked(&mut out[th..seg_len]);
    t.set_seq_number(seq);
    t.set_flags(flags);
    // Addresses of one family (taken from the IP header above): cannot fail.
    let _ = t.fill_checksum(src, dst);
    seg_len
}

/// Completes a partial checksum as virtio-net defines it: the one's-complement
/// sum of `frame[csum_start..]` (whose checksum field holds the pseudo-header
/// sum) is stored, inverted, at `csum_start + csum_offset`. `false` (and
/// nothing changed) if the offsets do not fit the frame.
pub fn complete_csum(frame: &mut [u8], csum_start: usize, csum_offset: usize) -> bool {
    let at = csum_start.saturating_add(csum_offset);
    if csum_start >= frame.len() || at.saturating_add(2) > frame.len() {
        return false;
    }
    let mut c = !checksum::sum(&frame[csum_start..]);
    // UDP sends a computed zero as all ones (zero means "no checksum"); TCP
    // receivers accept either form of zero.
    if c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 (or IPv6) + TCP frame with `payload` bytes of
    /// payload and a correct checksum (when `partial`, the pseudo-header sum
    /// only, as a TSO sender leaves it).
    pub(crate) fn tcp_frame(v6: bool, payload: usize, partial: bool) -> Vec<u8> {
        let tcp_hl = 32; // with a timestamp option
        let ip_hl = if v6 { 40 } else { 20 };
        let mut f = vec![0u8; 14 + ip_hl + tcp_hl + payload];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        let ip = 14;
        if v6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f[ip] = 0x60;
            f[ip + 4..ip + 6].copy_from_slice(&((tcp_hl + payload) as u16).to_be_bytes());
            f[ip + 6] = 6;
            f[ip + 7] = 64;
            f[ip + 8] = 0xfd;
            f[ip + 23] = 1;
            f[ip + 24] = 0xfd;
            f[ip + 39] = 2;
        } else {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[ip] = 0x45;
            f[ip + 2..ip + 4].copy_from_slice(&((ip_hl + tcp_hl + payload) as u16).to_be_bytes());
            f[ip + 4..ip + 6].copy_from_slice(&0xfff0u16.to_be_bytes());
            f[ip + 6] = 0x40; // DF
            f[ip + 8] = 64;
            f[ip + 9] = 6;
            f[ip + 12..ip + 16].copy_from_slice(&[10, 0, 0, 1]);
            f[ip + 16..ip + 20].copy_from_slice(&[10, 0, 0, 2]);
            let c = checksum::checksum(&f[ip..ip + 20]);
            f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        }
        let th = ip + ip_hl;
        f[th..th + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[th + 2..th + 4].copy_from_slice(&5201u16.to_be_bytes());
        f[th + 4..th + 8].copy_from_slice(&0xffff_fff0u32.to_be_bytes()); // wraps
        f[th + 12] = 8 << 4;
        f[th + 13] = 0x80 | 0x10 | 0x08 | 0x01; // CWR ACK PSH FIN
        f[th + 14..th + 16].copy_from_slice(&512u16.to_be_bytes());
        f[th + 20..th + 22].copy_from_slice(&[1, 1]);
        f[th + 22] = 8;
        f[th + 23] = 10;
        for (i, b) in f[th + tcp_hl..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let len = (tcp_hl + payload) as u32;
        let pseudo = if v6 {
            let s: [u8; 16] = f[ip + 8..ip + 24].try_into().unwrap();
            let d: [u8; 16] = f[ip + 24..ip + 40].try_into().unwrap();
            checksum::pseudo_header_v6(s.into(), d.into(), 6, len)
        } else {
            checksum::pseudo_header_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 6, len)
        };
        f[th + 16..th + 18].copy_from_slice(&pseudo.to_be_bytes());
        if !partial {
            assert!(complete_csum(&mut f, th, 16));
        }
        f
    }

    fn tcp_ok(seg: &[u8], v6: bool) -> bool {
        let ip_hl = if v6 { 40 } else { 20 };
        let th = 14 + ip_hl;
        let len = (seg.len() - th) as u32;
        let pseudo = if v6 {
            let s: [u8; 16] = seg[14 + 8..14 + 24].try_into().unwrap();
            let d: [u8; 16] = seg[14 + 24..14 + 40].try_into().unwrap();
            checksum::pseudo_header_v6(s.into(), d.into(), 6, len)
        } else {
            let s: [u8; 4] = seg[14 + 12..14 + 16].try_into().unwrap();
            let d: [u8; 4] = seg[14 + 16..14 + 20].try_into().unwrap();
            checksum::pseudo_header_v4(s.into(), d.into(), 6, len)
        };
        checksum::combine(&[pseudo, checksum::sum(&seg[th..])]) == 0xffff
    }

    #[test]
    fn vnet_header_round_trip() {
        let h = VnetHdr { flags: 1, gso_type: 4, hdr_len: 86, gso_size: 1428, csum_start: 54, csum_offset: 16 };
        let mut b = [0u8; VNET_HDR_LEN];
        write_vnet_hdr(&h, &mut b);
        assert_eq!(b, [1, 4, 86, 0, 0x94, 5, 54, 0, 16, 0]);
        assert_eq!(read_vnet_hdr(&b), Some(h));
        assert_eq!(read_vnet_hdr(&b[..9]), None);
    }

    #[test]
    fn super_frames_are_recognised_and_cut_into_valid_segments() {
        for v6 in [false, true] {
            let f = tcp_frame(v6, 10_000, true);
            let max = 1514;
            let s = super_frame(&f, max).expect("a TCP super-frame");
            let hdr = 14 + if v6 { 40 } else { 20 } + 32;
            assert_eq!((s.hdr_len(), s.mss, s.segs), (hdr, max - hdr, 10_000usize.div_ceil(max - hdr)));
            assert_eq!(s.wire_len(f.len()), 10_000 + s.segs * hdr);
            let mut payload = Vec::new();
            let mut out = vec![0u8; max];
            for k in 0..s.segs {
                let n = segment(&f, 14, &s, k, &mut out);
                let seg = &out[..n];
                assert!(n <= max);
                assert!(tcp_ok(seg, v6), "segment {k} checksum (v6 {v6})");
                let th = 14 + s.ip_hl;
                let seq = u32::from_be_bytes(seg[th + 4..th + 8].try_into().unwrap());
                assert_eq!(seq, 0xffff_fff0u32.wrapping_add((k * s.mss) as u32));
                let flags = seg[th + 13];
                assert_eq!(flags & 0x80 != 0, k == 0, "CWR on the first only");
                assert_eq!(flags & 0x09 != 0, k + 1 == s.segs, "FIN/PSH on the last only");
                if !v6 {
                    assert_eq!(checksum::checksum(&seg[14..34]), 0, "IPv4 header checksum");
                    assert_eq!(u16::from_be_bytes([seg[16], seg[17]]) as usize, n - 14);
                    assert_eq!(u16::from_be_bytes([seg[18], seg[19]]), 0xfff0u16.wrapping_add(k as u16));
                }
                payload.extend_from_slice(&seg[s.hdr_len()..]);
            }
            assert_eq!(payload, f[s.hdr_len()..], "payload reassembles");
        }
    }

    #[test]
    fn encapsulated_super_frames_keep_their_prefix() {
        let f = tcp_frame(false, 5000, true);
        let mut pkt = vec![0xab; 8]; // a GRE header, say
        pkt.extend_from_slice(&f);
        let s = super_frame(&f, 1514).unwrap();
        let mut out = vec![0u8; 1600];
        let n = segment(&pkt, 8 + 14, &s, 1, &mut out);
        assert_eq!(&out[..8], &[0xab; 8]);
        assert!(tcp_ok(&out[8..n], false));
    }

    #[test]
    fn what_is_not_a_super_frame() {
        assert_eq!(super_frame(&tcp_frame(false, 1000, true), 1514), None, "fits");
        let mut udp = tcp_frame(false, 5000, true);
        udp[14 + 9] = 17;
        assert_eq!(super_frame(&udp, 1514), None, "UDP");
        let mut lying = tcp_frame(false, 5000, true);
        lying[16] = 0x01;
        assert_eq!(super_frame(&lying, 1514), None, "IP length disagrees");
        let mut frag = tcp_frame(false, 5000, true);
        frag[14 + 6] = 0x20;
        assert_eq!(super_frame(&frag, 1514), None, "a fragment");
        assert_eq!(super_frame(&tcp_frame(false, 5000, true), 60), None, "no room for payload");
        assert_eq!(super_frame(&[0u8; 3000], 1514), None);
    }

    #[test]
    fn partial_checksums_are_completed() {
        for v6 in [false, true] {
            let mut f = tcp_frame(v6, 1000, true);
            let th = 14 + if v6 { 40 } else { 20 };
            assert!(!tcp_ok(&f, v6));
            assert!(complete_csum(&mut f, th, 16));
            assert!(tcp_ok(&f, v6));
        }
        let mut f = vec![0u8; 10];
        assert!(!complete_csum(&mut f, 9, 16));
        assert!(!complete_csum(&mut f, usize::MAX, 16));
        assert!(!complete_csum(&mut f, 4, usize::MAX));
    }

    proptest::proptest! {
        #[test]
        fn segments_of_any_super_frame_reassemble(payload in 100usize..20_000, mtu in 576usize..9000, v6: bool) {
            let f = tcp_frame(v6, payload, true);
            let max = mtu + 14;
            match super_frame(&f, max) {
                None => proptest::prop_assert!(f.len() <= max),
                Some(s) => {
                    let mut out = vec![0u8; max];
                    let mut got = Vec::new();
                    for k in 0..s.segs {
                        let n = segment(&f, 14, &s, k, &mut out);
                        proptest::prop_assert!(n <= max);
                        proptest::prop_assert!(tcp_ok(&out[..n], v6));
                        got.extend_from_slice(&out[s.hdr_len()..n]);
                    }
                    proptest::prop_assert_eq!(&got[..], &f[s.hdr_len()..]);
                }
            }
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4000), max in 0usize..3000) {
            if let Some(s) = super_frame(&bytes, max) {
                let mut out = vec![0u8; s.hdr_len() + s.mss];
                for k in 0..s.segs {
                    segment(&bytes, s.l3, &s, k, &mut out);
                }
            }
            let mut b = bytes.clone();
            complete_csum(&mut b, max, 6);
            let _ = read_vnet_hdr(&bytes);
        }
    }
}
