//! What happens to a frame after the redirector's verdict: emulated loss,
//! cutting TCP super-frames where the path cannot carry them whole, chaining
//! through fast-path node programs, and handing packets to egress ports.
//!
//! A [`Dispatch`] is per forwarding thread (its loss generator and scratch
//! space are its own); it gathers what a batch of frames sends to each port,
//! and the caller hands each port its packets ([`Dispatch::take_batches`]).

use std::net::SocketAddrV4;
use std::ops::Range;

use netslice_dataplane::program::Outputs;
use netslice_dataplane::{Carrier, DropReason, GsoInfo, HEADROOM, Rule, Verdict, gso};
use netslice_model::PortNo;
use netslice_qos::Nanos;
use netslice_qos::sched::LinkId;

use crate::buffers::Buffers;
use crate::egress::{Pkt, PortKind, TxDst};
use crate::plan::{NodeId, Plane, PortId, Route};
use crate::rng::Rng;

/// Most node programs a frame passes through on one host (a guard against
/// loops of fast-path nodes wired to each other).
pub const MAX_NODE_DEPTH: usize = 8;

/// Runs fast-path node programs for the pipeline; the caller owns them (and
/// whatever lock several threads need around one).
pub trait Programs {
    /// Runs node `node`'s program on a frame that arrived on interface
    /// `iface` at `now` (see [`netslice_dataplane::program::NodeProgram`]).
    fn process(&self, node: NodeId, now: Nanos, iface: usize, frame: &mut [u8], out: &mut Outputs);
}

/// A host without fast-path nodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrograms;

impl Programs for NoPrograms {
    fn process(&self, _: NodeId, _: Nanos, _: usize, _: &mut [u8], _: &mut Outputs) {}
}

/// Packets of one batch bound for one egress port, with their classes.
pub type PortBatch = (PortId, Vec<(LinkId, Pkt)>);

/// Whether a TCP super-frame is carried whole to a port of `kind` as `dst`:
/// sliver interfaces with segmentation offload and IP carriers take it whole
/// (the substrate's IP layer fragments and reassembles it); Ethernet
/// carriers, plain interfaces, fast-path nodes and lossy links (which must
/// lose segments, not whole super-frames) get its segments.
pub fn carry_whole(kind: Option<&PortKind>, dst: Option<TxDst>, loss_ppm: u32) -> bool {
    match (kind, dst) {
        (Some(PortKind::Tap { offload, .. }), None) => *offload,
        (Some(PortKind::Underlay { .. }), None) => true,
        (Some(_), Some(TxDst::Ip { .. })) => loss_ppm == 0,
        _ => false,
    }
}

/// Applies a rule's share of its host's forwarding work
/// ([`netslice_dataplane::work`]): a frame within its link's share takes
/// from it and passes; one beyond it passes while the forwarding thread
/// keeps up, and is dropped (counted `cpu` on its rule) when the thread is
/// `behind`, so that the slice over its share is the one that loses when
/// CPU runs short. Frames of rules with no share pass.
pub fn cpu_share(tables: &netslice_dataplane::Tables, v: Verdict, now: u64, behind: bool) -> Verdict {
    let (rule, len, gso) = match &v {
        Verdict::Deliver { rule, frame, gso, .. } => (*rule, frame.len(), gso),
        Verdict::Send { rule, packet, gso, .. } => (*rule, packet.len(), gso),
        Verdict::Drop => return v,
    };
    // A super-frame was counted as the segments it stands for: so is its drop.
    let frames = gso.map(|g| g.layout.segs).unwrap_or(1);
    let Some(r) = tables.rule(rule) else { return v };
    let Some(m) = &r.work else { return v };
    if m.take(now, len) || !behind {
        return v;
    }
    r.counters.dropped_many(DropReason::Cpu, frames);
    Verdict::Drop
}

/// Classifies a frame read from sliver interface `port` into `buf[frame]`,
/// with the virtio-net header `hdr` it came with (default for plain
/// interfaces). A partial checksum (checksum offload) is completed first,
/// except in a super-frame the rule will carry whole: that one stays
/// partial, as the interface at the far end takes it with its segmentation
/// metadata.
pub fn port_ingress(
    plane: &Plane,
    now: Nanos,
    port: PortNo,
    buf: &mut [u8],
    frame: Range<usize>,
    hdr: &gso::VnetHdr,
) -> Verdict {
    if hdr.flags & gso::F_NEEDS_CSUM != 0 {
        let max_frame = plane.tables.port_max_frame(port).unwrap_or(usize::MAX);
        if hdr.gso_type == gso::GSO_NONE || frame.len() <= max_frame {
            gso::complete_csum(&mut buf[frame.clone()], usize::from(hdr.csum_start), usize::from(hdr.csum_offset));
        }
    }
    plane.tables.on_port(now, port, buf, frame)
}

/// The per-thread forwarding step after the redirector.
#[derive(Debug)]
pub struct Dispatch {
    per_port: Vec<PortBatch>,
    rng: Rng,
    outputs: Outputs,
}

impl Dispatch {
    /// A dispatcher whose emulated losses follow `seed`.
    pub fn new(seed: u64) -> Dispatch {
        Dispatch { per_port: Vec::new(), rng: Rng::new(seed), outputs: Outputs::default() }
    }

    /// Takes the frame out of `slot` (leaving it empty) when it is queued for
    /// an egress port, or runs it through a fast-path node. A TCP super-frame
    /// goes on whole where the path carries it ([`carry_whole`]) and is cut
    /// into segments where it cannot; each segment takes the rest of the path
    /// on its own. What is dropped leaves `slot` as it was (the caller
    /// recycles it).
    pub fn handle<B: Buffers, P: Programs>(
        &mut self,
        plane: &Plane,
        bufs: &mut B,
        progs: &P,
        slot: &mut Vec<u8>,
        verdict: Verdict,
        now: Nanos,
    ) {
        self.handle_at(plane, bufs, progs, slot, verdict, now, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_at<B: Buffers, P: Programs>(
        &mut self,
        plane: &Plane,
        bufs: &mut B,
        progs: &P,
        slot: &mut Vec<u8>,
        verdict: Verdict,
        now: Nanos,
        depth: usize,
    ) {
        let (rule, range, dst, loss_ppm, gso) = match verdict {
            Verdict::Drop => return,
            Verdict::Deliver { frame, rule, gso, .. } => (rule, frame, None, 0, gso),
            Verdict::Send { carrier, next_hop, underlay, packet, rule, gso, .. } => {
                let loss_ppm = plane.impairments.get(usize::from(underlay)).map(|i| i.loss_ppm).unwrap_or(0);
                let dst = match carrier {
                    Carrier::Ethernet(_) => TxDst::Ether,
                    Carrier::IpProto(_) => TxDst::Ip { carrier, dst: SocketAddrV4::new(next_hop, 0) },
                    Carrier::Udp(p) => TxDst::Ip { carrier, dst: SocketAddrV4::new(next_hop, p) },
                };
                (rule, packet, Some(dst), loss_ppm, gso)
            }
        };
        let Some(r) = plane.tables.rule(rule) else { return };
        let route = plane.routes.get(rule as usize).copied().flatten();
        if let Some(g) = gso {
            let kind = match route {
                Some(Route::Egress { port, .. }) => plane.port_kind(port),
                _ => None,
            };
            if !carry_whole(kind, dst, loss_ppm) {
                for (mut b, seg) in segments(bufs, slot, range, &g) {
                    self.place(plane, bufs, progs, r, route, &mut b, seg, dst, loss_ppm, None, now, depth);
                    if !b.is_empty() {
                        bufs.give(b);
                    }
                }
                return;
            }
        }
        self.place(plane, bufs, progs, r, route, slot, range, dst, loss_ppm, gso, now, depth);
    }

    /// Queues one frame (or a super-frame carried whole) for its egress port,
    /// or runs it through a fast-path node; emulated loss applies here.
    #[allow(clippy::too_many_arguments)]
    fn place<B: Buffers, P: Programs>(
        &mut self,
        plane: &Plane,
        bufs: &mut B,
        progs: &P,
        r: &Rule,
        route: Option<Route>,
        slot: &mut Vec<u8>,
        range: Range<usize>,
        dst: Option<TxDst>,
        loss_ppm: u32,
        gso: Option<GsoInfo>,
        now: Nanos,
        depth: usize,
    ) {
        if self.rng.chance(loss_ppm) {
            r.counters.dropped(DropReason::Loss);
            return;
        }
        match route {
            None => r.counters.dropped(DropReason::PortDown),
            Some(Route::Egress { port, class }) => {
                let wire = gso.map(|g| g.wire_len(&range)).unwrap_or(range.len());
                let pkt = Pkt {
                    buf: std::mem::take(slot),
                    range,
                    dst,
                    counters: r.counters.clone(),
                    gso,
                    wire,
                    queued_at: now,
                };
                match self.per_port.iter_mut().find(|(p, _)| *p == port) {
                    Some((_, v)) => v.push((class, pkt)),
                    None => self.per_port.push((port, vec![(class, pkt)])),
                }
            }
            Some(Route::Node { node, iface }) => {
                if depth >= MAX_NODE_DEPTH {
                    r.counters.dropped(DropReason::Malformed);
                    return;
                }
                self.run_node(plane, bufs, progs, node, iface, slot, range, now, depth);
            }
        }
    }

    /// Runs a node program on a frame and sends what it emits out of the
    /// node's interfaces (each is a port with its own rules, like a sliver's).
    #[allow(clippy::too_many_arguments)]
    fn run_node<B: Buffers, P: Programs>(
        &mut self,
        plane: &Plane,
        bufs: &mut B,
        progs: &P,
        node: NodeId,
        iface: usize,
        slot: &mut Vec<u8>,
        range: Range<usize>,
        now: Nanos,
        depth: usize,
    ) {
        let Some(info) = plane.nodes.get(node.index()) else { return };
        let mut out = std::mem::take(&mut self.outputs);
        out.clear();
        progs.process(node, now, iface, &mut slot[range.clone()], &mut out);
        // Every output needs its own buffer with headroom; the last forward
        // may keep the input buffer.
        let len = range.len();
        let mut jobs: Vec<(PortNo, Vec<u8>, usize, usize)> = Vec::new();
        let n_fwd = out.forward.len();
        for (k, &o) in out.forward.iter().enumerate() {
            let Some(&port) = info.ports.get(o) else { continue };
            if k + 1 == n_fwd && range.start >= HEADROOM {
                jobs.push((port, std::mem::take(slot), range.start, len));
            } else {
                let mut b = bufs.take();
                b[HEADROOM..HEADROOM + len].copy_from_slice(&slot[range.clone()]);
                jobs.push((port, b, HEADROOM, len));
            }
        }
        for (o, frame) in out.generated.drain(..) {
            let Some(&port) = info.ports.get(o) else { continue };
            if frame.len() + HEADROOM > bufs.buf_len() {
                continue;
            }
            let mut b = bufs.take();
            b[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
            jobs.push((port, b, HEADROOM, frame.len()));
        }
        self.outputs = out;
        for (port, mut buf, start, flen) in jobs {
            let v = plane.tables.on_port(now, port, &mut buf, start..start + flen);
            self.handle_at(plane, bufs, progs, &mut buf, v, now, depth + 1);
            if !buf.is_empty() {
                bufs.give(buf);
            }
        }
    }

    /// What the frames handled since the last call send to each port.
    pub fn take_batches(&mut self) -> std::vec::Drain<'_, PortBatch> {
        self.per_port.drain(..)
    }
}

/// Cuts the super-frame `g` inside `buf[packet]` (encapsulation included)
/// into segments, each in a buffer of its own at [`HEADROOM`]; none if a
/// segment would not fit a buffer.
fn segments<B: Buffers>(bufs: &mut B, buf: &[u8], packet: Range<usize>, g: &GsoInfo) -> Vec<(Vec<u8>, Range<usize>)> {
    let l3 = g.ip_at.saturating_sub(packet.start);
    let Some(pkt) = buf.get(packet.clone()) else { return Vec::new() };
    let room = bufs.buf_len().saturating_sub(HEADROOM);
    if g.seg_header(packet.start) + g.layout.mss > room {
        return Vec::new();
    }
    (0..g.layout.segs)
        .map(|k| {
            let mut b = bufs.take();
            let n = gso::segment(pkt, l3, &g.layout, k, &mut b[HEADROOM..]);
            (b, HEADROOM..HEADROOM + n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn super_frames_go_whole_only_where_the_path_takes_them() {
        let tap = |offload| PortKind::Tap { port: PortNo(1), offload };
        let wire = PortKind::Underlay { index: 0, mtu: 1500 };
        let ip = Some(TxDst::Ip { carrier: Carrier::IpProto(47), dst: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0) });
        assert!(carry_whole(Some(&tap(true)), None, 0));
        assert!(!carry_whole(Some(&tap(false)), None, 0));
        assert!(carry_whole(Some(&wire), ip, 0));
        assert!(!carry_whole(Some(&wire), ip, 1), "a lossy link loses segments");
        assert!(!carry_whole(Some(&wire), Some(TxDst::Ether), 0), "Ethernet carriers take frames");
        assert!(!carry_whole(None, None, 0), "fast-path nodes take frames");
    }

    /// Host h1's tables with two slices, each a 8 Mbit/s link a (h1) - b
    /// (h2) reserved at 1000-byte frames (1,000 frames/s); the ports of their
    /// slivers at h1.
    fn two_slices() -> (netslice_dataplane::Tables, [PortNo; 2]) {
        use netslice_model::{SliceSpec, Substrate};
        let s = Substrate::from_text(
            "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit}\n",
        )
        .unwrap();
        let cat = netslice_model::types::StaticCatalog::builtin();
        let mut held = netslice_embed::Allocations::default();
        let mut pairs = Vec::new();
        for name in ["calm", "greedy"] {
            let sp = SliceSpec::from_text(&format!(
                "name: {name}\nnodes:\n  - {{name: a, host: h1, cpu: 0.1}}\n  - {{name: b, host: h2, cpu: 0.1}}\nlinks:\n  - {{name: ab, bandwidth: 8Mbit, ceiling: 1Gbit, frame_size: 1000, endpoints: [{{node: a}}, {{node: b}}]}}\n"
            ))
            .unwrap();
            let p = netslice_embed::plan(&s, &sp, &held, &cat).unwrap();
            held.add(&p);
            pairs.push((sp, p));
        }
        let refs: Vec<_> = pairs.iter().map(|(s, p)| (s, p)).collect();
        let cfgs = netslice_embed::node_configs(&s, &refs, &cat);
        let reg = std::sync::Arc::new(netslice_dataplane::Registry::builtin());
        let t = netslice_dataplane::Tables::build(&cfgs["h1"], None, &reg, Default::default());
        let port = |i: usize| PortNo(pairs[i].1.nodes[0].interfaces[0].port);
        (t, [port(0), port(1)])
    }

    /// Frames of 1000 bytes from `port` at `fps` for one second of the
    /// virtual clock, `behind` or not: how many pass.
    fn offer(t: &netslice_dataplane::Tables, port: PortNo, fps: u64, behind: bool) -> u64 {
        let mut passed = 0;
        for i in 0..fps {
            let now = i * 1_000_000_000 / fps;
            let mut buf = vec![0u8; HEADROOM + 1000];
            buf[HEADROOM..HEADROOM + 6].copy_from_slice(&[0xff; 6]);
            buf[HEADROOM + 12..HEADROOM + 14].copy_from_slice(&[0x08, 0x00]);
            let v = t.on_port(now, port, &mut buf, HEADROOM..HEADROOM + 1000);
            assert_ne!(v, Verdict::Drop, "the redirector itself passes it");
            if cpu_share(t, v, now, behind) != Verdict::Drop {
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn a_thread_behind_drops_the_frames_beyond_their_links_share_and_keeps_the_rest() {
        let (t, [calm, greedy]) = two_slices();
        // Keeping up: everything passes, the greedy link's excess included.
        assert_eq!(offer(&t, greedy, 5000, false), 5000);
        // Behind: the calm link, within its 1,000 frames/s, loses nothing;
        // the greedy one, at five times its share, keeps about its share.
        assert_eq!(offer(&t, calm, 900, true), 900);
        let (t, [_, greedy]) = two_slices();
        let kept = offer(&t, greedy, 5000, true);
        assert!((1000..=1100).contains(&kept), "{kept}");
        let r = t.rule(t.port_rule(greedy).unwrap().id).unwrap();
        assert_eq!(r.counters.drops(DropReason::Cpu), 5000 - kept);
    }
}
