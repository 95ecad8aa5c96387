//! The redirector of the seed's VNode, sans-IO: it decides what happens to a frame
//! and rewrites headers in caller-owned buffers; the agent does the I/O.
//!
//! Two entry points, one per direction of the data plane:
//!
//! - [`Tables::on_port`]: a frame read from a sliver interface (TAP) is looked up
//!   by port: delivered to another local port, or encapsulated and sent to the next
//!   host with the label that host expects.
//! - [`Tables::on_substrate`]: an encapsulated packet from the substrate is
//!   decapsulated by its link type's plugin and looked up by its label (GRE key,
//!   VXLAN VNI, VLAN id, I-SID): delivered to a local port (egress) or
//!   re-encapsulated for the next hop, possibly in another link type (transit
//!   label swap and format conversion).
//!
//! Link types and node types are plugins ([`registry`]): a new one implements a
//! trait and registers; nothing here changes.
//!
//! Encapsulation writes in front of the frame, into headroom the caller leaves in
//! its buffer ([`HEADROOM`]), so no frame is copied. Every rule has its own
//! [`Counters`] (frames, bytes, drops by [`DropReason`]); frames that match no rule
//! are counted in [`Unmatched`].

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod bpf;
mod builtin;
mod counters;
pub mod flow;
pub mod gso;
pub mod links;
pub mod nodes;
pub mod probe;
pub mod program;
pub mod registry;
pub mod stamp;
pub mod tap;
pub mod work;

pub use counters::{Counters, DropReason};
pub use probe::ProbePoint;
pub use registry::{
    Carrier, HopAddrs, InstantiateError, LabelField, LinkTypePlugin, NodeTypePlugin, Registry, RegistryError, TypeIdx,
};
pub use tap::{MeasureTap, WallClock};

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use netslice_model::api::{Action, Direction, LinkQos, NodeConfig, RuleCounters, Stage};
use netslice_model::{Isolation, Label, LinkName, PhysLinkName, PortNo, SliceName};
use netslice_qos::policer::{Color, Meter, TrTcm};
use netslice_wire::ethernet;

/// Bytes a caller must leave in front of a frame for any encapsulation header.
pub const HEADROOM: usize = 64;

/// Frames that matched no rule, by reason.
#[derive(Debug, Default)]
pub struct Unmatched {
    /// From a port with no rule.
    pub no_port_rule: AtomicU64,
    /// With a label no rule knows.
    pub no_label_rule: AtomicU64,
    /// Unparseable encapsulation.
    pub malformed: AtomicU64,
}

impl Unmatched {
    /// As a name -> count map.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        [("no_port_rule", &self.no_port_rule), ("no_label_rule", &self.no_label_rule), ("malformed", &self.malformed)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Why a rule of a config could not be built (the rule is left out; the
/// rest of the config is built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule names a link type this agent does not have.
    #[error("slice {slice} link {link}: unknown link type {link_type}")]
    UnknownLinkType {
        /// Slice.
        slice: SliceName,
        /// Virtual link.
        link: LinkName,
        /// The link type named.
        link_type: String,
    },
    /// The rule sends on a physical link this host's config does not have.
    #[error("slice {slice} link {link}: no physical link {underlay} on this host")]
    UnknownUnderlay {
        /// Slice.
        slice: SliceName,
        /// Virtual link.
        link: LinkName,
        /// The physical link named.
        underlay: PhysLinkName,
    },
    /// A STAMP probe names a port that is not its slice's link's interface here.
    #[error("measurement job {job}: port {port} is not an interface of the job's slice and link on this host")]
    ProbePort {
        /// The job.
        job: u64,
        /// The port named.
        port: PortNo,
    },
    /// A measurement job's filter program is not a valid one.
    #[error("measurement job {job}: filter: {error}")]
    Filter {
        /// The job.
        job: u64,
        /// Why.
        error: bpf::BpfError,
    },
}

/// Identity of a rule across table rebuilds, so counters survive reconfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey {
    /// Slice.
    pub slice: SliceName,
    /// Virtual link.
    pub link: LinkName,
    /// Direction.
    pub direction: Direction,
    /// Stage.
    pub stage: Stage,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Write to a local port.
    Deliver {
        /// Port number.
        port: PortNo,
    },
    /// Encapsulate and send.
    Send {
        /// Link type of this hop.
        link_type: TypeIdx,
        /// Label for the next host.
        label: Label,
        /// Addresses of the hop.
        hop: HopAddrs,
        /// Index of the underlay link in [`NodeConfig::underlay`].
        underlay: u16,
    },
}

/// Index of a rule's counters in its [`Tables`].
pub type RuleId = u32;

/// A rule: where to send, what MTU to enforce, how to isolate, what to count.
#[derive(Debug)]
pub struct Rule {
    /// Its id.
    pub id: RuleId,
    /// Slice, link, direction and stage.
    pub key: RuleKey,
    /// Action.
    pub hop: Hop,
    /// Largest carried frame (virtual link MTU + Ethernet header).
    pub max_frame: usize,
    /// Isolation parameters of the link.
    pub qos: LinkQos,
    /// The link's two-rate policer, on the rule where a policed link enters the
    /// substrate (RFC 2698: CIR = bandwidth, PIR = ceiling, CBS = PBS = burst).
    pub policer: Option<Arc<Mutex<TrTcm>>>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// Measurement jobs' taps on this rule (usually none).
    pub taps: Vec<Arc<MeasureTap>>,
    /// STAMP endpoints at the port this rule delivers to (usually none).
    pub probes: Vec<Arc<ProbePoint>>,
    /// The link's reserved share of this host's forwarding work (none when
    /// the manager reserved none: the link declared no frame size).
    pub work: Option<Arc<work::WorkMeter>>,
}

/// The redirector's verdict on one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write `frame` to a local port.
    Deliver {
        /// Port number.
        port: PortNo,
        /// The frame inside the caller's buffer.
        frame: Range<usize>,
        /// Rule that matched, for [`Tables::counters_of`].
        rule: RuleId,
        /// Set when the frame is a TCP super-frame.
        gso: Option<GsoInfo>,
        /// [`flow::flow_hash`] of the frame (0 unless [`Tables::hash_flows`]).
        flow: u32,
    },
    /// Send `packet` to `next_hop` with the carrier of `link_type`.
    Send {
        /// Link type of this hop.
        link_type: TypeIdx,
        /// How it travels.
        carrier: Carrier,
        /// Next host.
        next_hop: Ipv4Addr,
        /// Underlay link index.
        underlay: u16,
        /// Encapsulated packet inside the caller's buffer, as the carrier takes it
        /// (IP carriers add the outer IP/UDP header themselves).
        packet: Range<usize>,
        /// Rule that matched, for [`Tables::counters_of`].
        rule: RuleId,
        /// Set when the carried frame is a TCP super-frame.
        gso: Option<GsoInfo>,
        /// [`flow::flow_hash`] of the carried frame (0 unless [`Tables::hash_flows`]).
        flow: u32,
    },
    /// Nothing more to do: dropped (and counted), or taken by a STAMP
    /// probe at its destination ([`probe`]).
    Drop,
}

impl Verdict {
    /// The rule that matched, unless dropped.
    pub fn rule(&self) -> Option<RuleId> {
        match self {
            Verdict::Deliver { rule, .. } | Verdict::Send { rule, .. } => Some(*rule),
            Verdict::Drop => None,
        }
    }

    /// The frame's flow hash (0 when dropped).
    pub fn flow(&self) -> u32 {
        match self {
            Verdict::Deliver { flow, .. } | Verdict::Send { flow, .. } => *flow,
            Verdict::Drop => 0,
        }
    }
}

/// Where a super-frame's carried IP header is, and how it is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsoInfo {
    /// Layout relative to the carried frame.
    pub layout: gso::Super,
    /// Index of the carried frame's IP header in the caller's buffer (it does
    /// not move when a link type encapsulates).
    pub ip_at: usize,
}

impl GsoInfo {
    /// Bytes its segments take when `packet` (encapsulation included) is cut.
    pub fn wire_len(&self, packet: &Range<usize>) -> usize {
        let per_seg = self.ip_at.saturating_sub(packet.start) + self.layout.ip_hl + self.layout.tcp_hl;
        packet.len() + (self.layout.segs - 1) * per_seg
    }

    /// Bytes from the packet start to the payload (the header every segment
    /// repeats), for a packet starting at `start`.
    pub fn seg_header(&self, start: usize) -> usize {
        self.ip_at.saturating_sub(start) + self.layout.ip_hl + self.layout.tcp_hl
    }
}

/// Forwarding tables of one host, built from its desired config.
#[derive(Debug, Default)]
pub struct Tables {
    registry: Arc<Registry>,
    ports: HashMap<PortNo, RuleId>,
    labels: HashMap<(TypeIdx, Label), RuleId>,
    counters: HashMap<RuleKey, Arc<Counters>>,
    policers: HashMap<RuleKey, (LinkQos, Arc<Mutex<TrTcm>>)>,
    works: HashMap<RuleKey, (LinkQos, Arc<work::WorkMeter>)>,
    taps: HashMap<u64, Arc<MeasureTap>>,
    probes: HashMap<u64, Arc<ProbePoint>>,
    rules: Vec<Rule>,
    /// Frames matching no rule.
    pub unmatched: Arc<Unmatched>,
    /// Rules that could not be built.
    pub errors: Vec<RuleError>,
    /// Whether verdicts carry a flow hash (only worker threads need one;
    /// otherwise the hash stays 0 and costs nothing per frame).
    pub hash_flows: bool,
}

fn stage_of(on_port: bool, action: &Action) -> Stage {
    match (on_port, action) {
        (true, Action::Deliver { .. }) => Stage::Local,
        (true, Action::Send { .. }) => Stage::Ingress,
        (false, Action::Deliver { .. }) => Stage::Egress,
        (false, Action::Send { .. }) => Stage::Transit,
    }
}

impl Tables {
    /// Builds tables for `cfg`, keeping the counters of rules that `previous`
    /// had, and the taps of measurement jobs that stay as they were (`clock`
    /// places their windows on the caller's clock).
    pub fn build(cfg: &NodeConfig, previous: Option<&Tables>, registry: &Arc<Registry>, clock: WallClock) -> Tables {
        let mut t = Tables {
            registry: registry.clone(),
            unmatched: previous.map(|p| p.unmatched.clone()).unwrap_or_default(),
            ..Tables::default()
        };
        let mtu_of = |slice: &str, link: &str| -> usize {
            cfg.slivers
                .iter()
                .filter(|s| s.slice == slice)
                .flat_map(|s| s.interfaces.iter())
                .find(|i| i.link == link)
                .map(|i| i.mtu)
                // Transit hosts have no sliver of the slice: the label rules
                // carry the link's MTU (configs from before they did: allow the
                // largest frame; the ingress host enforced the MTU already).
                .or_else(|| cfg.labels.iter().find(|l| l.slice == slice && l.link == link).and_then(|l| l.mtu))
                .map(|m| m as usize)
                .unwrap_or(u16::MAX as usize)
                + ethernet::HEADER_LEN
        };
        let rule =
            |t: &mut Tables, slice: &SliceName, link: &LinkName, direction, on_port, action: &Action, qos: LinkQos| {
                let hop = match action {
                    Action::Deliver { port } => Hop::Deliver { port: *port },
                    Action::Send { link_type, label, underlay, next_hop } => {
                        let Some(idx) = registry.link_idx(link_type.as_str()) else {
                            let link_type = link_type.to_string();
                            let (slice, link) = (slice.clone(), link.clone());
                            t.errors.push(RuleError::UnknownLinkType { slice, link, link_type });
                            return None;
                        };
                        let Some((u, ul)) = cfg.underlay.iter().enumerate().find(|(_, u)| &u.name == underlay) else {
                            let (slice, link, underlay) = (slice.clone(), link.clone(), underlay.clone());
                            t.errors.push(RuleError::UnknownUnderlay { slice, link, underlay });
                            return None;
                        };
                        Hop::Send {
                            link_type: idx,
                            label: *label,
                            hop: HopAddrs { next_hop: *next_hop, local_mac: ul.local_mac, peer_mac: ul.peer_mac },
                            underlay: u as u16,
                        }
                    }
                };
                let key =
                    RuleKey { slice: slice.clone(), link: link.clone(), direction, stage: stage_of(on_port, action) };
                let counters = previous
                    .and_then(|p| p.counters.get(&key).cloned())
                    .or_else(|| t.counters.get(&key).cloned())
                    .unwrap_or_default();
                t.counters.insert(key.clone(), counters.clone());
                let id = t.rules.len() as RuleId;
                // A policed link is metered where it enters: on the sliver-facing
                // rule. A rule that stays with the same rates keeps its meter
                // (and the tokens it has): rebuilding the tables gives no one a
                // fresh burst.
                let kept =
                    previous.and_then(|p| p.policers.get(&key)).filter(|(q, _)| *q == qos).map(|(_, m)| m.clone());
                let policer = (on_port && qos.isolation == Isolation::Policed)
                    .then(|| {
                        kept.or_else(|| {
                            let burst = qos.burst.max(1);
                            let (cir, pir) = ((qos.rate / 8).max(1), (qos.ceil / 8).max((qos.rate / 8).max(1)));
                            TrTcm::new(cir, burst, pir, burst, 0).ok().map(|m| Arc::new(Mutex::new(m)))
                        })
                    })
                    .flatten();
                if let Some(m) = &policer {
                    t.policers.insert(key.clone(), (qos, m.clone()));
                }
                // Likewise the share of forwarding work, on every rule.
                let work = previous
                    .and_then(|p| p.works.get(&key))
                    .filter(|(q, _)| *q == qos)
                    .map(|(_, m)| m.clone())
                    .or_else(|| work::WorkMeter::new(qos.rate, qos.frame_size).map(Arc::new));
                if let Some(m) = &work {
                    t.works.insert(key.clone(), (qos, m.clone()));
                }
                t.rules.push(Rule {
                    id,
                    key,
                    hop,
                    max_frame: mtu_of(slice, link),
                    qos,
                    policer,
                    counters,
                    taps: Vec::new(),
                    probes: Vec::new(),
                    work,
                });
                Some(id)
            };
        for p in &cfg.ports {
            if let Some(r) = rule(&mut t, &p.slice, &p.link, p.direction, true, &p.action, p.qos) {
                t.ports.insert(p.port, r);
            }
        }
        for l in &cfg.labels {
            let Some(idx) = registry.link_idx(l.link_type.as_str()) else {
                t.errors.push(RuleError::UnknownLinkType {
                    slice: l.slice.clone(),
                    link: l.link.clone(),
                    link_type: l.link_type.to_string(),
                });
                continue;
            };
            if let Some(r) = rule(&mut t, &l.slice, &l.link, l.direction, false, &l.action, l.qos) {
                t.labels.insert((idx, l.label), r);
            }
        }
        t.add_taps(cfg, previous, clock);
        t
    }

    /// Hangs every measurement job's tap on the rules it observes; a job
    /// whose tap is unchanged keeps it (and what it counted and captured).
    fn add_taps(&mut self, cfg: &NodeConfig, previous: Option<&Tables>, clock: WallClock) {
        for tc in &cfg.taps {
            let window_ms = (tc.start_ms, tc.end_ms);
            if let Some(pc) = &tc.probe {
                // Only at an interface of the job's slice and link: a port
                // number freed by a deleted slice may be another slice's now.
                let owner = self.port_rule(pc.port).map(|r| (&r.key.slice, &r.key.link));
                if owner != Some((&tc.slice, &tc.link)) {
                    self.errors.push(RuleError::ProbePort { job: tc.job, port: pc.port });
                    continue;
                }
                let (start, end) = (clock.local(tc.start_ms), clock.local(tc.end_ms));
                let point = previous
                    .and_then(|p| p.probes.get(&tc.job))
                    .filter(|p| p.same_as(tc.job, pc, window_ms))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(ProbePoint::new(tc.job, *pc, start, end, window_ms)));
                for r in &mut self.rules {
                    if r.key.slice == tc.slice && r.hop == (Hop::Deliver { port: pc.port }) {
                        r.probes.push(point.clone());
                        // A probe's own reflector before one that answers anyone.
                        r.probes.sort_by_key(|p| p.answers_anyone());
                    }
                }
                self.probes.insert(tc.job, point);
                continue;
            }
            let filter = match tc.filter.clone().map(bpf::Program::new).transpose() {
                Ok(f) => f,
                Err(error) => {
                    self.errors.push(RuleError::Filter { job: tc.job, error });
                    continue;
                }
            };
            let (start, end) = (clock.local(tc.start_ms), clock.local(tc.end_ms));
            let tap = previous
                .and_then(|p| p.taps.get(&tc.job))
                .filter(|t| t.same_as(tc.job, filter.as_ref(), window_ms, tc.capture))
                .cloned()
                .unwrap_or_else(|| {
                    let interval = tc.interval_ms.saturating_mul(1_000_000);
                    Arc::new(
                        MeasureTap::new(tc.job, filter, start, end, interval, tc.capture).with_window_ms(window_ms),
                    )
                });
            for r in &mut self.rules {
                if r.key.slice == tc.slice
                    && r.key.link == tc.link
                    && tc.directions.contains(&r.key.direction)
                    && tc.stage.is_none_or(|s| s == r.key.stage)
                {
                    r.taps.push(tap.clone());
                }
            }
            self.taps.insert(tc.job, tap);
        }
    }

    /// The taps of measurement jobs, by job.
    pub fn taps(&self) -> &HashMap<u64, Arc<MeasureTap>> {
        &self.taps
    }

    /// The STAMP endpoints of measurement jobs, by job.
    pub fn probes(&self) -> &HashMap<u64, Arc<ProbePoint>> {
        &self.probes
    }

    /// The rule for frames from `port`.
    pub fn port_rule(&self, port: PortNo) -> Option<&Rule> {
        self.ports.get(&port).map(|&id| &self.rules[id as usize])
    }

    /// The rule for a label.
    pub fn label_rule(&self, link_type: TypeIdx, label: Label) -> Option<&Rule> {
        self.labels.get(&(link_type, label)).map(|&id| &self.rules[id as usize])
    }

    /// A rule by id.
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.rules.get(id as usize)
    }

    /// Every rule, in id order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A frame read from local `port` into `buf[frame]` (with [`HEADROOM`] bytes
    /// free before `frame.start`).
    /// `now` (nanoseconds, any monotonic clock) drives the link's policer, if any.
    pub fn on_port(&self, now: u64, port: PortNo, buf: &mut [u8], frame: Range<usize>) -> Verdict {
        let Some(rule) = self.port_rule(port) else {
            self.unmatched.no_port_rule.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        };
        if let Some(p) = &rule.policer {
            // A super-frame is metered as the segments it stands for.
            let wire = Self::size(rule, buf, &frame).map(|(_, w, _)| w).unwrap_or(frame.len());
            let color = p.lock().map(|mut m| m.meter(now, wire as u64)).unwrap_or(Color::Green);
            if color == Color::Red {
                rule.counters.dropped(DropReason::Policed);
                return Verdict::Drop;
            }
        }
        self.forward(now, rule, buf, frame)
    }

    /// A packet of link type `link_type` as its carrier delivers it, in
    /// `buf[packet]`: decapsulated by the type's plugin, then looked up by label.
    /// `now` (nanoseconds, the caller's clock) places the frame in the
    /// windows of measurement jobs.
    pub fn on_substrate(&self, now: u64, link_type: TypeIdx, buf: &mut [u8], packet: Range<usize>) -> Verdict {
        let Some((label, inner)) = self.registry.link(link_type).and_then(|p| p.decap(buf, packet)) else {
            self.unmatched.malformed.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        };
        self.on_label(now, link_type, label, buf, inner)
    }

    /// The registry the tables were built with.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn on_label(&self, now: u64, link_type: TypeIdx, label: Label, buf: &mut [u8], frame: Range<usize>) -> Verdict {
        let Some(rule) = self.label_rule(link_type, label) else {
            self.unmatched.no_label_rule.fetch_add(1, Ordering::Relaxed);
            return Verdict::Drop;
        };
        self.forward(now, rule, buf, frame)
    }

    /// Counters of a rule named in a verdict (to count a drop the I/O side saw).
    pub fn counters_of(&self, rule: RuleId) -> Option<&Counters> {
        self.rules.get(rule as usize).map(|r| &*r.counters)
    }

    /// Counters of every rule, for reports.
    pub fn snapshot(&self, host: &str) -> Vec<RuleCounters> {
        let mut v: Vec<RuleCounters> = self
            .counters
            .iter()
            .map(|(k, c)| RuleCounters {
                host: host.to_string(),
                slice: k.slice.to_string(),
                link: k.link.to_string(),
                direction: Some(k.direction),
                stage: Some(k.stage),
                packets: c.packets(),
                bytes: c.bytes(),
                drops: DropReason::ALL
                    .iter()
                    .filter(|r| c.drops(**r) > 0)
                    .map(|r| (r.as_str().to_string(), c.drops(*r)))
                    .collect(),
                queued: c.queued().0,
                queued_bytes: c.queued().1,
                queue_delay: Some(c.queue_delay()).filter(|h| h.count > 0),
            })
            .collect();
        v.sort_by(|a, b| (&a.slice, &a.link, a.direction, a.stage).cmp(&(&b.slice, &b.link, b.direction, b.stage)));
        v
    }
}

impl Tables {
    /// Frames and wire bytes a frame stands for under `rule`: one frame of its
    /// length, or the segments of a TCP super-frame ([`gso`]); `None` if it is
    /// larger than the link's MTU allows and no super-frame.
    fn size(rule: &Rule, buf: &[u8], frame: &Range<usize>) -> Option<(usize, usize, Option<GsoInfo>)> {
        let len = frame.len();
        if len <= rule.max_frame {
            return Some((1, len, None));
        }
        gso::super_frame(buf.get(frame.clone())?, rule.max_frame)
            .map(|s| (s.segs, s.wire_len(len), Some(GsoInfo { layout: s, ip_at: frame.start + s.l3 })))
    }

    fn forward(&self, now: u64, rule: &Rule, buf: &mut [u8], frame: Range<usize>) -> Verdict {
        let len = frame.len();
        if len < ethernet::HEADER_LEN {
            rule.counters.dropped(DropReason::Malformed);
            return Verdict::Drop;
        }
        let Some((frames, wire, gso)) = Self::size(rule, buf, &frame) else {
            rule.counters.dropped(DropReason::TooBig);
            return Verdict::Drop;
        };
        let flow = if self.hash_flows { flow::flow_hash(&buf[frame.clone()]) } else { 0 };
        for tap in &rule.taps {
            tap.observe(now, &buf[frame.clone()], frames, wire);
        }
        match rule.hop {
            Hop::Deliver { port } => {
                rule.counters.forwarded_many(frames, wire);
                // A STAMP packet for a probe at this port is the probe's,
                // not the sliver's (it arrived: counted as forwarded).
                if gso.is_none() && rule.probes.iter().any(|p| p.take(now, &buf[frame.clone()])) {
                    return Verdict::Drop;
                }
                Verdict::Deliver { port, frame, rule: rule.id, gso, flow }
            }
            Hop::Send { link_type, label, hop, underlay } => {
                let Some(plugin) = self.registry.link(link_type) else {
                    rule.counters.dropped(DropReason::Malformed);
                    return Verdict::Drop;
                };
                let Some(packet) = plugin.encap(label, &hop, buf, frame) else {
                    rule.counters.dropped(DropReason::Malformed);
                    return Verdict::Drop;
                };
                rule.counters.forwarded_many(frames, wire);
                Verdict::Send {
                    link_type,
                    carrier: plugin.carrier(),
                    next_hop: hop.next_hop,
                    underlay,
                    packet,
                    rule: rule.id,
                    gso,
                    flow,
                }
            }
        }
    }

    /// Largest frame the rule of local `port` lets through unsegmented.
    pub fn port_max_frame(&self, port: PortNo) -> Option<usize> {
        self.port_rule(port).map(|r| r.max_frame)
    }
}

#[cfg(test)]
mod tests;

/// The guide "Write a node type" (`docs/write-a-node-type.md`); its example is
/// compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/write-a-node-type.md")]
pub struct WriteANodeTypeGuide;

/// The guide "Write a link type" (`docs/write-a-link-type.md`); its example is
/// compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/write-a-link-type.md")]
pub struct WriteALinkTypeGuide;
