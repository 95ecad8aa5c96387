//! STAMP endpoints in the redirector (RFC 8762). A [`ProbePoint`] is a
//! measurement job's sender or reflector at a sliver interface: it hangs on
//! the rules that deliver to that interface and takes the STAMP packets
//! addressed to it before the sliver sees them (test packets for a
//! reflector, replies for a sender). The agent's probe driver answers them
//! and sends the sender's test packets into the pipeline as if the sliver
//! had sent them, so probes cross the slice's own virtual link, queues and
//! impairments. The frames' layout (Ethernet, IPv4, UDP) is built and read
//! here; sessions are [`crate::stamp`]'s.
//!
//! Times are the caller's clock (`now`, nanoseconds), never the OS's.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(test)]
use netslice_model::api::StampSession;
use netslice_model::api::{ProbeConfig, ProbeRole};
use netslice_wire::ethernet::{self, EtherType};
use netslice_wire::stamp::UDP_PORT;
use netslice_wire::{MacAddr, ipv4, udp};

/// Packets a point keeps for its driver, at most (more are counted and dropped).
pub const INBOX: usize = 1024;
/// Largest frame a point takes (larger ones are not STAMP packets of ours and
/// go to the sliver).
pub const MAX_TAKEN: usize = 2048;
/// How long after its window a reflector still answers (test packets sent
/// at the window's end are still on their way).
pub const REFLECT_GRACE: u64 = 2_000_000_000;

/// A packet a point took: when, and its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// When, on the caller's clock.
    pub at: u64,
    /// The slice's frame.
    pub frame: Vec<u8>,
}

/// A job's STAMP endpoint on this host.
#[derive(Debug)]
pub struct ProbePoint {
    /// The job.
    pub job: u64,
    /// What it is and where.
    pub config: ProbeConfig,
    /// Window start, the caller's clock.
    pub start: u64,
    /// Window end, the caller's clock.
    pub end: u64,
    /// The window as configured, Unix milliseconds (its identity).
    pub window_ms: (u64, u64),
    inbox: Mutex<VecDeque<Taken>>,
    overflow: AtomicU64,
}

impl ProbePoint {
    /// A point of job `job` from `start` to `end` (the caller's clock), the
    /// window the config gave being `window_ms` (Unix ms).
    pub fn new(job: u64, config: ProbeConfig, start: u64, end: u64, window_ms: (u64, u64)) -> ProbePoint {
        ProbePoint {
            job,
            config,
            start,
            end,
            window_ms,
            inbox: Mutex::new(VecDeque::new()),
            overflow: AtomicU64::new(0),
        }
    }

    /// Whether `frame` (delivered to the point's interface at `now`) is the
    /// point's to answer; if so the point keeps it and the sliver does not
    /// get it. A reflector takes test packets to its address and UDP port
    /// 862 within its window (and [`REFLECT_GRACE`] after); a sender takes the replies of its peer to its
    /// port at any time (late replies count as late, not as lost).
    pub fn take(&self, now: u64, frame: &[u8]) -> bool {
        if frame.len() > MAX_TAKEN {
            return false;
        }
        let Some(u) = UdpView::parse(frame) else { return false };
        if u.dst_ip != self.config.ip {
            return false;
        }
        let ours = match self.config.role {
            ProbeRole::Reflector { session } => {
                u.dst_port == UDP_PORT
                    && now >= self.start
                    && now < self.end.saturating_add(REFLECT_GRACE)
                    && session.is_none_or(|s| {
                        // The SSID is bytes 14-15 of a test packet.
                        let ssid = frame.get(u.payload.start + 14..u.payload.start + 16);
                        s.ip == u.src_ip && s.port == u.src_port && ssid == Some(&s.ssid.to_be_bytes()[..])
                    })
            }
            ProbeRole::Sender { src_port, peer_ip, .. } => {
                u.dst_port == src_port && u.src_port == UDP_PORT && u.src_ip == peer_ip
            }
        };
        if !ours {
            return false;
        }
        let mut q = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= INBOX {
            self.overflow.fetch_add(1, Ordering::Relaxed);
        } else {
            q.push_back(Taken { at: now, frame: frame.to_vec() });
        }
        true
    }

    /// Whether it answers any sender (a reflector job), rather than one session.
    pub fn answers_anyone(&self) -> bool {
        matches!(self.config.role, ProbeRole::Reflector { session: None })
    }

    /// Takes up to `max` of the packets kept, oldest first.
    pub fn drain(&self, max: usize) -> Vec<Taken> {
        let mut q = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    /// Packets taken but dropped because the driver was behind.
    pub fn overflowed(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Whether it is the point these parameters make (a config re-applied
    /// keeps the point, and the driver its session). `window_ms` is the
    /// window as configured (Unix ms), as for [`crate::MeasureTap::same_as`].
    pub fn same_as(&self, job: u64, config: &ProbeConfig, window_ms: (u64, u64)) -> bool {
        self.job == job && self.config == *config && self.window_ms == window_ms
    }
}

/// The addresses and ports of an Ethernet + IPv4 + UDP frame (no options
/// checked beyond the header length, no fragments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpView {
    /// Ethernet source.
    pub src_mac: MacAddr,
    /// Ethernet destination.
    pub dst_mac: MacAddr,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// IPv4 time to live.
    pub ttl: u8,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Where the UDP payload is in the frame.
    pub payload: Range<usize>,
}

impl UdpView {
    /// Reads `frame`; `None` unless it is an unfragmented IPv4 UDP datagram
    /// whose lengths agree with the frame.
    pub fn parse(frame: &[u8]) -> Option<UdpView> {
        let eth = ethernet::Frame::new_checked(frame).ok()?;
        if eth.ethertype() != EtherType::Ipv4 {
            return None;
        }
        let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
        if ip.protocol() != ipv4::protocol::UDP || ip.more_frags() || ip.frag_offset() != 0 {
            return None;
        }
        let u = udp::Packet::new_checked(ip.payload()).ok()?;
        let at = ethernet::HEADER_LEN + ip.header_len() + udp::HEADER_LEN;
        let end = ethernet::HEADER_LEN + ip.header_len() + usize::from(u.len());
        Some(UdpView {
            src_mac: eth.src_addr(),
            dst_mac: eth.dst_addr(),
            src_ip: ip.src_addr(),
            dst_ip: ip.dst_addr(),
            ttl: ip.ttl(),
            src_port: u.src_port(),
            dst_port: u.dst_port(),
            payload: at..end.max(at),
        })
    }

    /// Whether the frame's IPv4 and UDP checksums are right.
    pub fn checksums_ok(frame: &[u8]) -> bool {
        let Ok(eth) = ethernet::Frame::new_checked(frame) else { return false };
        let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else { return false };
        if !ip.verify_checksum() {
            return false;
        }
        let Ok(u) = udp::Packet::new_checked(ip.payload()) else { return false };
        // A zero UDP checksum over IPv4 means "none" (RFC 768).
        u.checksum() == 0 || u.verify_checksum(ip.src_addr().into(), ip.dst_addr().into()).unwrap_or(false)
    }
}

/// One end of a UDP exchange: MAC, IPv4 address, port.
pub type UdpEnd = (MacAddr, Ipv4Addr, u16);

/// Writes an Ethernet + IPv4 + UDP frame from `src` to `dst` with `ttl` at
/// `buf[at..]` (growing `buf` as needed) whose payload `fill` writes into
/// `payload_len` zeroed bytes; returns where the frame is. Checksums are
/// filled.
pub fn udp_frame(
    buf: &mut Vec<u8>,
    at: usize,
    src: UdpEnd,
    dst: UdpEnd,
    ttl: u8,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Range<usize> {
    let hl = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
    let len = hl + payload_len;
    if buf.len() < at + len {
        buf.resize(at + len, 0);
    }
    let f = &mut buf[at..at + len];
    f.fill(0);
    ethernet::Repr { src_addr: src.0, dst_addr: dst.0, ethertype: EtherType::Ipv4 }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    fill(&mut f[hl..]);
    let ip = ipv4::Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        protocol: ipv4::protocol::UDP,
        payload_len: udp::HEADER_LEN + payload_len,
        ttl,
        tos: 0,
        ident: 0,
        dont_frag: true,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..])).expect("an IPv4 header fits");
    udp::Repr { src_port: src.2, dst_port: dst.2, payload_len }
        .emit(
            &mut udp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN + ipv4::HEADER_LEN..]),
            src.1.into(),
            dst.1.into(),
            true,
        )
        .expect("a STAMP datagram fits in UDP");
    at..at + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use netslice_model::PortNo;

    const A: UdpEnd = (MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 0, 0, 1), 50_001);
    const B: UdpEnd = (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(10, 0, 0, 2), UDP_PORT);

    fn point(role: ProbeRole, ip: Ipv4Addr) -> ProbePoint {
        ProbePoint::new(1, ProbeConfig { role, port: PortNo(3), mac: A.0, ip }, 100, 200, (0, 1))
    }

    #[test]
    fn frames_round_trip_with_right_checksums() {
        let mut buf = Vec::new();
        let r = udp_frame(&mut buf, 64, A, B, 255, 44, |p| p[0] = 0xab);
        let f = &buf[r.clone()];
        assert!(UdpView::checksums_ok(f));
        let v = UdpView::parse(f).unwrap();
        assert_eq!((v.src_mac, v.dst_mac, v.src_ip, v.dst_ip), (A.0, B.0, A.1, B.1));
        assert_eq!((v.ttl, v.src_port, v.dst_port), (255, A.2, UDP_PORT));
        assert_eq!(f[v.payload.clone()].len(), 44);
        assert_eq!(f[v.payload.start], 0xab);
        let mut bad = f.to_vec();
        bad[v.payload.start + 3] ^= 1;
        assert!(!UdpView::checksums_ok(&bad));
    }

    #[test]
    fn a_reflector_takes_test_packets_to_its_address_within_its_window_only() {
        let p = point(ProbeRole::Reflector { session: None }, B.1);
        let mut buf = Vec::new();
        let r = udp_frame(&mut buf, 0, A, B, 64, 44, |p| p[14..16].copy_from_slice(&7u16.to_be_bytes()));
        let session = |ip, port, ssid| ProbeRole::Reflector { session: Some(StampSession { ip, port, ssid }) };
        assert!(point(session(A.1, A.2, 7), B.1).take(150, &buf[r.clone()]), "its own session");
        for other in [session(A.1, A.2, 8), session(A.1, 1, 7), session(Ipv4Addr::new(10, 9, 9, 9), A.2, 7)] {
            assert!(!point(other, B.1).take(150, &buf[r.clone()]), "another session: {other:?}");
        }
        assert!(!p.take(99, &buf[r.clone()]), "before the window");
        assert!(p.take(100, &buf[r.clone()]));
        assert!(p.take(200, &buf[r.clone()]), "just after the window: still on their way");
        assert!(!p.take(200 + REFLECT_GRACE, &buf[r.clone()]), "after the grace");
        let mut b2 = Vec::new();
        let o = udp_frame(&mut b2, 0, A, (B.0, B.1, 9999), 64, 44, |_| {});
        assert!(!p.take(150, &b2[o]), "another port is the sliver's");
        let t = p.drain(10);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].at, 100);
        assert!(p.drain(10).is_empty());
    }

    #[test]
    fn a_sender_takes_only_its_peers_replies_and_the_inbox_is_bounded() {
        let role = ProbeRole::Sender { ssid: 1, rate: 10, src_port: A.2, peer_mac: B.0, peer_ip: B.1 };
        let p = point(role, A.1);
        let mut buf = Vec::new();
        let reply = udp_frame(&mut buf, 0, B, A, 255, 44, |_| {});
        let mut b2 = Vec::new();
        let stranger = udp_frame(&mut b2, 0, (B.0, Ipv4Addr::new(10, 0, 0, 9), UDP_PORT), A, 255, 44, |_| {});
        assert!(!p.take(150, &b2[stranger]));
        for _ in 0..INBOX + 5 {
            assert!(p.take(500, &buf[reply.clone()]), "late replies are still the sender's");
        }
        assert_eq!(p.overflowed(), 5);
        assert_eq!(p.drain(usize::MAX).len(), INBOX);
    }

    proptest::proptest! {
        #[test]
        fn any_datagram_built_reads_back(
            src in proptest::prelude::any::<([u8; 6], [u8; 4], u16)>(),
            dst in proptest::prelude::any::<([u8; 6], [u8; 4], u16)>(),
            ttl in proptest::prelude::any::<u8>(),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            at in 0usize..80,
        ) {
            let end = |(m, i, p): ([u8; 6], [u8; 4], u16)| (MacAddr(m), Ipv4Addr::from(i), p);
            let (a, b) = (end(src), end(dst));
            let mut buf = Vec::new();
            let r = udp_frame(&mut buf, at, a, b, ttl, payload.len(), |p| p.copy_from_slice(&payload));
            let f = &buf[r];
            proptest::prop_assert!(UdpView::checksums_ok(f));
            let v = UdpView::parse(f).unwrap();
            proptest::prop_assert_eq!((v.src_mac, v.src_ip, v.src_port), a);
            proptest::prop_assert_eq!((v.dst_mac, v.dst_ip, v.dst_port), b);
            proptest::prop_assert_eq!(v.ttl, ttl);
            proptest::prop_assert_eq!(&f[v.payload], &payload[..]);
        }
    }

    #[test]
    fn non_udp_and_truncated_frames_are_left_alone() {
        let p = point(ProbeRole::Reflector { session: None }, B.1);
        let mut buf = Vec::new();
        let r = udp_frame(&mut buf, 0, A, B, 64, 44, |_| {});
        let f = buf[r].to_vec();
        for cut in 0..f.len() - 44 {
            assert!(!p.take(150, &f[..cut]), "cut at {cut}");
        }
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!p.take(150, &arp));
    }
}
