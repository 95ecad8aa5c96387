//! The one transmit path: what egress ports and delay lines let go leaves
//! here, on a sliver's TAP, through the physical link's AF_XDP socket, or
//! through the carriers' sockets.

use std::net::SocketAddrV4;

use netslice_dataplane::{Carrier, DropReason, gso};
use netslice_io::sock::Socket;
use netslice_pipeline::{Pkt, TxDst};

use crate::cpus::Pin;
use crate::egress::{PortDevice, PortDriver, Timer, Transmit};
use crate::pool::{Clock, Pool};
use crate::shared::Shared;
use crate::xsk::Outer;

impl Shared {
    /// Sends packets of physical link `underlay` (of MTU `mtu`; 0: unknown)
    /// now: what fits an AF_XDP frame through the link's AF_XDP socket if it
    /// has one; IP carriers with `sendmmsg` per socket (UDP runs to one next
    /// hop as `UDP_SEGMENT` sends); Ethernet frames on the link's packet
    /// socket. Buffers go back to the pool.
    fn send_now(&self, underlay: usize, mtu: usize, batch: &mut Vec<Pkt>) {
        let xsks = self.xsk.load();
        let mut rest: Vec<&Pkt> = Vec::new();
        match xsks.get(underlay).and_then(|x| x.as_ref()) {
            Some(x) => {
                let mut v: Vec<(&Pkt, Outer)> = Vec::with_capacity(batch.len());
                for p in batch.iter() {
                    let (outer, hop) = match p.dst {
                        Some(TxDst::Ip { carrier: Carrier::IpProto(proto), dst }) => (Outer::Ip(proto), *dst.ip()),
                        Some(TxDst::Ip { carrier: Carrier::Udp(port), dst }) => (Outer::Udp(port), *dst.ip()),
                        Some(TxDst::Ether) => (Outer::Ether, std::net::Ipv4Addr::UNSPECIFIED),
                        Some(TxDst::Ip { .. }) => {
                            rest.push(p);
                            continue;
                        }
                        None => continue,
                    };
                    if x.fits(outer, p.range.len(), hop) {
                        v.push((p, outer));
                    } else {
                        rest.push(p);
                    }
                }
                let mut done = 0;
                while done < v.len() {
                    let n = x.xsk.send(v.len() - done, |i, frame| {
                        let (p, outer) = v[done + i];
                        x.frame(outer, p.bytes(), frame)
                    });
                    if n == 0 {
                        // No free frame or ring entry: the sockets take the rest.
                        rest.extend(v[done..].iter().map(|(p, _)| *p));
                        break;
                    }
                    done += n;
                }
            }
            None => rest.extend(batch.iter()),
        }
        if !rest.is_empty() {
            self.send_sockets(underlay, mtu, &rest);
        }
        self.pool.give(batch.drain(..).map(|p| p.buf));
    }

    fn send_sockets(&self, underlay: usize, mtu: usize, rest: &[&Pkt]) {
        for (k, c) in self.carriers.iter().enumerate() {
            let mine: Vec<&Pkt> = rest
                .iter()
                .copied()
                .filter(|p| matches!(p.dst, Some(TxDst::Ip { carrier, .. }) if carrier == c.carrier))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let msgs: Vec<(&[u8], SocketAddrV4)> = mine
                .iter()
                .filter_map(|p| match p.dst {
                    Some(TxDst::Ip { dst, .. }) => Some((p.bytes(), dst)),
                    _ => None,
                })
                .collect();
            let (sent, err) = match (&c.unchecked, mtu) {
                (Some(unchecked), 1..) => send_udp(&c.sock, unchecked, &msgs, mtu),
                _ => c.sock.send_batch(&msgs),
            };
            if let Some(e) = err {
                tracing::debug!("carrier {k}: send failed after {sent} of {}: {e}", msgs.len());
                for p in &mine[sent..] {
                    p.counters.dropped(DropReason::TxError);
                }
            }
        }
        // IP carriers this host has no socket for.
        for p in rest {
            if let Some(TxDst::Ip { carrier, .. }) = p.dst
                && self.carrier_index(carrier).is_none()
            {
                p.counters.dropped(DropReason::TxError);
            }
        }
        let frames: Vec<&Pkt> = rest.iter().copied().filter(|p| p.dst == Some(TxDst::Ether)).collect();
        if frames.is_empty() {
            return;
        }
        let socks = self.ether.load();
        match socks.get(underlay).and_then(|s| s.clone()) {
            Some(sock) => {
                let bufs: Vec<&[u8]> = frames.iter().map(|p| p.bytes()).collect();
                let (sent, err) = sock.send_batch(&bufs);
                if let Some(e) = err {
                    tracing::debug!("frame send failed after {sent} of {}: {e}", bufs.len());
                    for p in &frames[sent..] {
                        p.counters.dropped(DropReason::TxError);
                    }
                }
            }
            None => {
                for p in frames {
                    p.counters.dropped(DropReason::TxError);
                }
            }
        }
    }
}

/// Writes frames to a sliver's TAP: in offload mode each goes after a
/// virtio-net header (in the headroom before the frame) that carries a
/// super-frame's segmentation metadata.
fn write_tap(tap: &netslice_io::tap::Tap, batch: &mut [Pkt]) {
    for p in batch {
        let ok = if tap.offload() {
            let h = p.gso.map(|g| g.layout.vnet_hdr()).unwrap_or_default();
            match p.range.start.checked_sub(gso::VNET_HDR_LEN) {
                Some(at) => {
                    gso::write_vnet_hdr(&h, &mut p.buf[at..p.range.start]);
                    tap.write(&p.buf[at..p.range.end]).is_ok()
                }
                None => {
                    let mut v = vec![0u8; gso::VNET_HDR_LEN];
                    gso::write_vnet_hdr(&h, &mut v);
                    v.extend_from_slice(p.bytes());
                    tap.write(&v).is_ok()
                }
            }
        } else {
            tap.write(p.bytes()).is_ok()
        };
        if !ok {
            p.counters.dropped(DropReason::TxError);
        }
    }
}

impl Transmit for Shared {
    fn transmit(&self, port: &PortDriver, batch: &mut Vec<Pkt>) {
        match &port.device {
            PortDevice::Tap(tap) => {
                write_tap(tap, batch);
                self.pool.give(batch.drain(..).map(|p| p.buf));
            }
            PortDevice::Underlay { index, mtu } => {
                let delays = self.delays.load();
                match delays.get(*index).and_then(|d| d.as_ref()) {
                    // The wire delays what the scheduler let go.
                    Some(line) => line.push(self, batch),
                    None => self.send_now(*index, mtu.load(std::sync::atomic::Ordering::Relaxed), batch),
                }
            }
        }
    }

    fn transmit_delayed(&self, underlay: usize, batch: &mut Vec<Pkt>) {
        self.send_now(underlay, 0, batch);
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn timer(&self) -> &Timer {
        &self.timer
    }

    fn timer_woke(&self) {
        thread_local! {
            static PIN: std::cell::RefCell<Pin> = std::cell::RefCell::new(Pin::shared());
        }
        PIN.with(|p| p.borrow_mut().check(&self.cpus));
    }
}

/// Sends UDP payloads in order over a link of `mtu` bytes: those that fit it
/// whole through `sock`, in `UDP_SEGMENT` runs while the kernel takes them;
/// those the IP layer must fragment (super-frames) through `unchecked`, without
/// a UDP checksum. Returns how many were sent before the first failure.
fn send_udp(
    sock: &Socket,
    unchecked: &Socket,
    msgs: &[(&[u8], SocketAddrV4)],
    mtu: usize,
) -> (usize, Option<std::io::Error>) {
    let big = |m: &(&[u8], SocketAddrV4)| m.0.len() + 28 > mtu;
    let mut done = 0;
    // Consecutive stretches of one kind, so the order between them holds.
    while done < msgs.len() {
        let kind = big(&msgs[done]);
        let n = msgs[done..].iter().take_while(|m| big(m) == kind).count();
        let part = &msgs[done..done + n];
        let (sent, err) = if kind {
            unchecked.send_batch(part)
        } else {
            // Single datagrams once the kernel has refused the offload.
            let segs: Vec<&[u8]> = part.iter().map(|(p, _)| *p).collect();
            sock.send_segments(&segs, &udp_runs(part, mtu))
        };
        done += sent;
        if err.is_some() || sent < n {
            return (done, err);
        }
    }
    (done, None)
}

/// Groups UDP payloads (in order) into runs for [`Socket::send_segments`]:
/// consecutive payloads to the same destination, all but the last of a run the
/// length of its first, each fitting a link of `mtu` bytes whole (IPv4 and UDP
/// headers included), within the kernel's limits per send. A payload that needs
/// IP fragmentation (a super-frame) is a run of its own.
fn udp_runs(msgs: &[(&[u8], SocketAddrV4)], mtu: usize) -> Vec<(std::ops::Range<usize>, SocketAddrV4)> {
    const IP_UDP: usize = 28;
    let mut runs: Vec<(std::ops::Range<usize>, SocketAddrV4)> = Vec::new();
    // Of the last run: segment size, bytes so far, still open to more.
    let (mut size, mut bytes, mut open) = (0usize, 0usize, false);
    for (i, (p, dst)) in msgs.iter().enumerate() {
        let len = p.len();
        if let Some((r, d)) = runs.last_mut()
            && open
            && d == dst
            && len <= size
            && len > 0
            && r.len() < netslice_io::sock::MAX_SEGMENTS
            && bytes + len <= netslice_io::sock::MAX_SEGMENTED
        {
            r.end = i + 1;
            bytes += len;
            open = len == size;
            continue;
        }
        runs.push((i..i + 1, *dst));
        (size, bytes) = (len, len);
        open = len > 0 && len + IP_UDP <= mtu;
    }
    runs
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dst(k: u8) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, k), 4789)
    }

    fn runs_of(lens: &[(usize, u8)], mtu: usize) -> Vec<(std::ops::Range<usize>, u8)> {
        let bufs: Vec<Vec<u8>> = lens.iter().map(|&(l, _)| vec![0; l]).collect();
        let msgs: Vec<(&[u8], SocketAddrV4)> =
            bufs.iter().zip(lens).map(|(b, &(_, d))| (b.as_slice(), dst(d))).collect();
        udp_runs(&msgs, mtu).into_iter().map(|(r, d)| (r, d.ip().octets()[3])).collect()
    }

    #[test]
    fn runs_group_equal_sizes_to_one_hop_and_end_at_a_shorter_one() {
        let l = [(1000, 1), (1000, 1), (500, 1), (1000, 1), (1000, 2), (1000, 2), (1200, 2), (60_000, 2), (90, 2)];
        assert_eq!(runs_of(&l, 9000), vec![(0..3, 1), (3..4, 1), (4..6, 2), (6..7, 2), (7..8, 2), (8..9, 2)]);
        // Payloads that do not fit the MTU whole (with 28 bytes of IP and UDP) stand alone.
        assert_eq!(runs_of(&[(1473, 1), (1473, 1), (1472, 1), (1472, 1)], 1500), vec![(0..1, 1), (1..2, 1), (2..4, 1)]);
    }

    #[test]
    fn runs_keep_to_the_kernel_limits() {
        let l = vec![(64, 1); 200];
        let r = runs_of(&l, 9000);
        assert!(r.iter().all(|(g, _)| g.len() <= netslice_io::sock::MAX_SEGMENTS));
        let big = vec![(8000, 1); 20];
        assert!(runs_of(&big, 9000).iter().all(|(g, _)| g.len() * 8000 <= netslice_io::sock::MAX_SEGMENTED));
    }

    proptest! {
        /// Runs cover every payload once, in order; within a run all share the
        /// destination, all but the last have the first's length and none is
        /// longer, and the kernel's limits hold.
        #[test]
        fn runs_partition_the_batch_within_the_rules(
            lens in proptest::collection::vec((prop_oneof![Just(0usize), 1usize..200, Just(1400), Just(1472), 1473usize..9000, Just(60_000)], 0u8..3), 0..300),
            mtu in prop_oneof![Just(1500usize), Just(9000)],
        ) {
            let runs = runs_of(&lens, mtu);
            let mut next = 0;
            for (r, d) in &runs {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty());
                next = r.end;
                let first = lens[r.start].0;
                if r.len() > 1 {
                    prop_assert!(first > 0 && first + 28 <= mtu);
                    prop_assert!(r.len() <= netslice_io::sock::MAX_SEGMENTS);
                    prop_assert!(lens[r.clone()].iter().map(|l| l.0).sum::<usize>() <= netslice_io::sock::MAX_SEGMENTED);
                    for k in r.clone() {
                        prop_assert_eq!(lens[k].1, *d);
                        prop_assert!(lens[k].0 <= first && lens[k].0 > 0);
                        if k + 1 < r.end {
                            prop_assert_eq!(lens[k].0, first);
                        }
                    }
                }
            }
            prop_assert_eq!(next, lens.len());
        }
    }
}
