//! An in-memory multi-host harness, in the manner of quinn's `Pair` and
//! smoltcp's netsim: every substrate host is a [`netslice_pipeline::Host`]
//! (the same planning, redirector, dispatch, egress scheduling and delay
//! lines the agent drives), joined by in-memory [`Wire`]s (rate, delay,
//! seeded loss) on a virtual clock that jumps to the next event. Slices are
//! planned and their host configs derived exactly as the manager does
//! (`netslice_embed::plan` and `node_configs`). No root, no threads, no OS
//! clock: a run is deterministic and takes milliseconds.
//!
//! ```
//! use netslice_sim::{Flow, Net};
//! let mut net = Net::new("name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\n\
//!     links:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit}\n");
//! net.apply("name: s\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h2}\nlinks:\n  - name: ab\n    \
//!     bandwidth: 10Mbit\n    endpoints:\n      - {node: a, address: 10.0.0.1/24}\n      - {node: b, address: 10.0.0.2/24}\n");
//! let f = net.flow(Flow::udp("s", "a", "ab", 1_000_000, 500).between(0, 1_000_000_000));
//! net.run_until(1_100_000_000);
//! assert_eq!(net.received(f).len(), net.sent(f) as usize);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use netslice_dataplane::{Carrier, Registry, gso};
use netslice_embed::{Allocations, node_configs, replan};
use netslice_model::api::{NodeConfig, RuleCounters, SlicePlan};
use netslice_model::{PortNo, SliceSpec, Substrate};
use netslice_pipeline::host::HostOptions;
use netslice_pipeline::rng::Rng;
use netslice_pipeline::{Host, Transmit, TxDst};
use netslice_wire::{EtherType, MacAddr, ethernet, ipv4, udp};

/// Nanoseconds of virtual time.
pub type Nanos = u64;

/// One millisecond.
pub const MS: Nanos = 1_000_000;
/// One second.
pub const SEC: Nanos = 1_000_000_000;

/// The in-memory medium of one physical link (both directions): by default
/// ideal, like the veth pairs of the local testbed (the hosts' pipelines
/// shape and impair what they send); a test may give it a rate, a delay and
/// a seeded loss of its own.
#[derive(Debug, Clone)]
pub struct Wire {
    /// Serialization rate, bits/s (`None`: instantaneous).
    pub rate_bps: Option<u64>,
    /// Propagation delay.
    pub delay: Nanos,
    /// Loss probability, parts per million.
    pub loss_ppm: u32,
    rng: Rng,
    /// When each direction (towards the lower-named host, the other) is free.
    free_at: [Nanos; 2],
    /// Packets lost on it.
    pub lost: u64,
}

impl Wire {
    fn new(seed: u64) -> Wire {
        Wire { rate_bps: None, delay: 0, loss_ppm: 0, rng: Rng::new(seed), free_at: [0; 2], lost: 0 }
    }

    /// When a `len`-byte packet sent at `now` in direction `dir` arrives
    /// (`None`: lost).
    fn carry(&mut self, now: Nanos, dir: usize, len: usize) -> Option<Nanos> {
        if self.rng.chance(self.loss_ppm) {
            self.lost += 1;
            return None;
        }
        let start = now.max(self.free_at[dir]);
        let tx = self.rate_bps.map_or(0, |r| (len as u128 * 8 * u128::from(SEC) / u128::from(r.max(1))) as Nanos);
        self.free_at[dir] = start + tx;
        Some(start + tx + self.delay)
    }
}

/// A frame a sliver interface received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When.
    pub at: Nanos,
    /// The frame.
    pub frame: Vec<u8>,
    /// Set for a TCP super-frame handed over whole.
    pub gso: Option<gso::Super>,
}

/// Traffic a sliver sends: UDP datagrams of a fixed frame size at a fixed
/// rate, each carrying its flow tag, sequence number and send time.
#[derive(Debug, Clone)]
pub struct Flow {
    slice: String,
    node: String,
    link: String,
    to: Option<(String, String)>,
    rate_bps: u64,
    size: usize,
    start: Nanos,
    stop: Nanos,
}

impl Flow {
    /// UDP frames of `size` bytes (Ethernet header included, at least 64)
    /// from node `node` of `slice` over its virtual link `link` to the
    /// link's other end, at `rate_bps` (frame bits).
    pub fn udp(slice: &str, node: &str, link: &str, rate_bps: u64, size: usize) -> Flow {
        Flow {
            slice: slice.into(),
            node: node.into(),
            link: link.into(),
            to: None,
            rate_bps: rate_bps.max(1),
            size: size.clamp(64, 9000),
            start: 0,
            stop: Nanos::MAX,
        }
    }

    /// Addresses the frames to `node`'s end of `link` instead of the other
    /// end of the flow's own link (a node behind a switch or router).
    pub fn to(mut self, node: &str, link: &str) -> Flow {
        self.to = Some((node.into(), link.into()));
        self
    }

    /// Sends from `start` until before `stop`.
    pub fn between(mut self, start: Nanos, stop: Nanos) -> Flow {
        (self.start, self.stop) = (start, stop);
        self
    }

    fn interval(&self) -> Nanos {
        ((self.size as u128 * 8 * u128::from(SEC)) / u128::from(self.rate_bps)).max(1) as Nanos
    }
}

/// A flow's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowId(pub u32);

#[derive(Debug)]
struct Running {
    flow: Flow,
    host: String,
    port: PortNo,
    src: (MacAddr, Ipv4Addr),
    dst: (MacAddr, Ipv4Addr),
    /// Where the other end receives.
    to: (String, PortNo),
    sent: u64,
    next: Nanos,
}

/// A packet on a wire.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Nanos,
    seq: u64,
    host: String,
    carrier: CarrierKey,
    packet: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CarrierKey {
    Ip(u8),
    Udp(u16),
    Ether(u16),
}

impl From<CarrierKey> for Carrier {
    fn from(c: CarrierKey) -> Carrier {
        match c {
            CarrierKey::Ip(p) => Carrier::IpProto(p),
            CarrierKey::Udp(p) => Carrier::Udp(p),
            CarrierKey::Ether(e) => Carrier::Ethernet(e),
        }
    }
}

/// A substrate of in-memory hosts and wires, and the slices on it.
#[derive(Debug)]
pub struct Net {
    now: Nanos,
    substrate: Substrate,
    registry: Arc<Registry>,
    hosts: BTreeMap<String, Host>,
    configs: BTreeMap<String, NodeConfig>,
    slices: BTreeMap<String, (SliceSpec, SlicePlan)>,
    wires: BTreeMap<String, Wire>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    flows: Vec<Running>,
    delivered: BTreeMap<(String, PortNo), Vec<Delivery>>,
    revision: u64,
}

/// The sliver interface of `node`'s end of virtual link `link` in `slice`:
/// (host, port, MAC, IPv4 address).
type End = (String, PortNo, MacAddr, Ipv4Addr);

impl Net {
    /// The substrate described by `substrate` (YAML or JSON), every host with
    /// default pipeline options.
    pub fn new(substrate: &str) -> Net {
        Net::with_options(substrate, HostOptions::default())
    }

    /// The same with the hosts' pipeline options (each host's loss seed is
    /// `opts.seed` plus its index).
    pub fn with_options(substrate: &str, opts: HostOptions) -> Net {
        let substrate = Substrate::from_text(substrate).expect("a valid substrate");
        let registry = Arc::new(Registry::builtin());
        let hosts = substrate
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let o = HostOptions { seed: opts.seed.wrapping_add(i as u64), ..opts };
                (h.name.clone(), Host::new(registry.clone(), o))
            })
            .collect();
        let wires =
            substrate.links.iter().enumerate().map(|(i, l)| (l.name.clone(), Wire::new(1000 + i as u64))).collect();
        let mut net = Net {
            now: 0,
            substrate,
            registry,
            hosts,
            configs: BTreeMap::new(),
            slices: BTreeMap::new(),
            wires,
            in_flight: BinaryHeap::new(),
            seq: 0,
            flows: Vec::new(),
            delivered: BTreeMap::new(),
            revision: 0,
        };
        net.reconfigure();
        net
    }

    /// The virtual time.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// The wire of physical link `name`, to change its medium.
    pub fn wire(&mut self, name: &str) -> &mut Wire {
        self.wires.get_mut(name).expect("a physical link of the substrate")
    }

    /// Applies slice spec `spec` (YAML or JSON): a new slice is planned, a
    /// known one re-planned in place, exactly as the manager does; every
    /// host gets its new config at the current time. Returns the plan.
    pub fn apply(&mut self, spec: &str) -> SlicePlan {
        let spec = SliceSpec::from_text(spec).expect("a valid slice spec");
        let others: Vec<&SlicePlan> =
            self.slices.iter().filter(|(n, _)| **n != spec.name).map(|(_, (_, p))| p).collect();
        let held = Allocations::from_plans(others);
        let previous = self.slices.get(&spec.name).map(|(s, p)| (s, p));
        let plan = replan(&self.substrate, &spec, previous, &held, &*self.registry).expect("the slice fits");
        self.slices.insert(spec.name.clone(), (spec, plan.clone()));
        self.reconfigure();
        plan
    }

    /// Removes a slice.
    pub fn delete(&mut self, slice: &str) {
        self.slices.remove(slice);
        self.reconfigure();
    }

    /// Derives every host's config and applies it (an unchanged config too:
    /// re-applying must change nothing).
    pub fn reconfigure(&mut self) {
        let pairs: Vec<(&SliceSpec, &SlicePlan)> = self.slices.values().map(|(s, p)| (s, p)).collect();
        let mut configs = node_configs(&self.substrate, &pairs, &*self.registry);
        self.revision += 1;
        for (name, cfg) in configs.iter_mut() {
            cfg.revision = self.revision;
            let problems = self.hosts.get_mut(name).expect("host").apply(cfg, self.now);
            assert!(problems.is_empty(), "{name}: {problems:?}");
        }
        self.configs = configs;
    }

    /// Applies every host's current config again, unchanged.
    pub fn reapply(&mut self) {
        for (name, cfg) in &self.configs {
            let problems = self.hosts.get_mut(name).expect("host").apply(cfg, self.now);
            assert!(problems.is_empty(), "{name}: {problems:?}");
        }
    }

    /// The config host `host` runs.
    pub fn config(&self, host: &str) -> &NodeConfig {
        &self.configs[host]
    }

    /// A host's pipeline.
    pub fn host(&self, host: &str) -> &Host {
        &self.hosts[host]
    }

    /// The per-rule counters of a host.
    pub fn counters(&self, host: &str) -> Vec<RuleCounters> {
        self.hosts[host].plane().tables.snapshot(host)
    }

    /// Packets a host's rules forwarded for `slice`'s link `link` (all
    /// stages, both directions), and their drops by reason.
    pub fn forwarded(&self, host: &str, slice: &str, link: &str) -> (u64, BTreeMap<String, u64>) {
        let mut drops = BTreeMap::new();
        let mut n = 0;
        for c in self.counters(host).into_iter().filter(|c| c.slice == slice && c.link == link) {
            n += c.packets;
            for (k, v) in c.drops {
                *drops.entry(k).or_insert(0) += v;
            }
        }
        (n, drops)
    }

    /// Where `node`'s end of `link` in `slice` is.
    pub fn end(&self, slice: &str, node: &str, link: &str) -> End {
        let (spec, plan) = &self.slices[slice];
        let np = plan.node(node).expect("node of the slice");
        let i = np.interfaces.iter().find(|i| i.link == link).expect("interface on the link");
        let l = spec.links.iter().find(|l| l.name == link).expect("link of the slice");
        let addr = l.endpoints[usize::from(i.endpoint)]
            .all_addresses()
            .iter()
            .find_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        (np.host.clone(), PortNo(i.port), i.mac, addr)
    }

    /// The other end of `link` from `node`.
    fn peer(&self, slice: &str, node: &str, link: &str) -> End {
        let (spec, _) = &self.slices[slice];
        let l = spec.links.iter().find(|l| l.name == link).expect("link of the slice");
        let other = l.endpoints.iter().find(|e| e.node != node).unwrap_or(&l.endpoints[0]);
        self.end(slice, &other.node, link)
    }

    /// Starts a flow; its frames are sent from the sliver interface of its
    /// end, as the sliver's kernel would hand them to the TAP.
    pub fn flow(&mut self, flow: Flow) -> FlowId {
        let (host, port, smac, sip) = self.end(&flow.slice, &flow.node, &flow.link);
        let (dhost, dport, dmac, dip) = match &flow.to {
            Some((node, link)) => self.end(&flow.slice, node, link),
            None => self.peer(&flow.slice, &flow.node, &flow.link),
        };
        let next = flow.start.max(self.now);
        self.flows.push(Running {
            flow,
            host,
            port,
            src: (smac, sip),
            dst: (dmac, dip),
            to: (dhost, dport),
            sent: 0,
            next,
        });
        FlowId(self.flows.len() as u32 - 1)
    }

    /// Frames a flow sent so far.
    pub fn sent(&self, f: FlowId) -> u64 {
        self.flows[f.0 as usize].sent
    }

    /// The flow's frames its other end received: (sequence number, send
    /// time, receive time), in arrival order.
    pub fn received(&self, f: FlowId) -> Vec<(u64, Nanos, Nanos)> {
        let r = &self.flows[f.0 as usize];
        let Some(got) = self.delivered.get(&r.to) else { return Vec::new() };
        got.iter()
            .filter_map(|d| {
                let (tag, seq, at) = read_udp_frame(&d.frame)?;
                (tag == f.0).then_some((seq, at, d.at))
            })
            .collect()
    }

    /// Everything a sliver interface received.
    pub fn delivered(&self, host: &str, port: PortNo) -> &[Delivery] {
        self.delivered.get(&(host.to_string(), port)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Sends `frame` from the sliver interface `port` of `host` now, with the
    /// virtio-net header an offload interface gives it.
    pub fn send(&mut self, host: &str, port: PortNo, frame: &[u8], hdr: &gso::VnetHdr) {
        let now = self.now;
        self.hosts.get_mut(host).expect("host").port_input(now, port, frame, hdr);
        self.pump(host);
    }

    /// Runs the network until virtual time `until`.
    pub fn run_until(&mut self, until: Nanos) {
        loop {
            let next = self.next_event();
            match next {
                Some(t) if t <= until => self.step(t.max(self.now)),
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs the network for `d` more.
    pub fn run_for(&mut self, d: Nanos) {
        self.run_until(self.now + d);
    }

    fn next_event(&mut self) -> Option<Nanos> {
        let wire = self.in_flight.peek().map(|Reverse(p)| p.at);
        let flow = self.flows.iter().filter(|f| f.next < f.flow.stop).map(|f| f.next).min();
        let hosts = self.hosts.values_mut().filter_map(|h| h.poll_timeout()).min();
        // A host due now that produced nothing at `now` must not stall the
        // clock: it is looked at again a nanosecond later.
        let hosts = hosts.map(|t| if t <= self.now { self.now + 1 } else { t });
        [wire, flow, hosts].into_iter().flatten().min()
    }

    fn step(&mut self, now: Nanos) {
        self.now = now;
        while self.in_flight.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Reverse(p) = self.in_flight.pop().expect("peeked");
            self.hosts.get_mut(&p.host).expect("host").substrate_input(now, p.carrier.into(), &p.packet);
        }
        for i in 0..self.flows.len() {
            while self.flows[i].next <= now && self.flows[i].next < self.flows[i].flow.stop {
                let f = &mut self.flows[i];
                let frame = udp_frame(f.src, f.dst, f.flow.size, i as u32, f.sent, f.next);
                let (host, port) = (f.host.clone(), f.port);
                f.sent += 1;
                f.next += f.flow.interval();
                self.hosts.get_mut(&host).expect("host").port_input(now, port, &frame, &gso::VnetHdr::default());
            }
        }
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        for h in names {
            self.pump(&h);
        }
    }

    /// Takes everything `host` sends now: onto wires, or to its slivers.
    fn pump(&mut self, host: &str) {
        let now = self.now;
        while let Some(t) = self.hosts.get_mut(host).expect("host").poll_transmit(now) {
            match t {
                Transmit::Port { port, frame, gso } => {
                    self.delivered.entry((host.to_string(), port)).or_default().push(Delivery { at: now, frame, gso })
                }
                Transmit::Substrate { underlay, dst, packet, .. } => self.carry(host, underlay, dst, packet),
            }
        }
    }

    /// Puts a packet on the wire of `host`'s physical link `underlay`, as
    /// the kernel would: IP carriers get their IPv4 (and UDP) header and
    /// arrive as raw and UDP sockets deliver them.
    fn carry(&mut self, host: &str, underlay: usize, dst: TxDst, packet: Vec<u8>) {
        let Some(u) = self.configs.get(host).and_then(|c| c.underlay.get(underlay)) else { return };
        let (carrier, bytes) = match dst {
            TxDst::Ip { carrier: Carrier::IpProto(proto), dst } => {
                let mut b = vec![0u8; ipv4::HEADER_LEN + packet.len()];
                let repr = ipv4::Repr {
                    src_addr: u.local,
                    dst_addr: *dst.ip(),
                    protocol: proto,
                    payload_len: packet.len(),
                    ttl: 64,
                    tos: 0,
                    ident: 0,
                    dont_frag: false,
                };
                if repr.emit(&mut ipv4::Packet::new_unchecked(&mut b[..])).is_err() {
                    return;
                }
                b[ipv4::HEADER_LEN..].copy_from_slice(&packet);
                (CarrierKey::Ip(proto), b)
            }
            TxDst::Ip { carrier: Carrier::Udp(port), .. } => (CarrierKey::Udp(port), packet),
            TxDst::Ip { .. } => return,
            TxDst::Ether => {
                let Ok(f) = ethernet::Frame::new_checked(&packet[..]) else { return };
                (CarrierKey::Ether(u16::from(f.ethertype())), packet)
            }
        };
        let dir = usize::from(host > u.peer_host.as_str());
        let peer = u.peer_host.to_string();
        let Some(wire) = self.wires.get_mut(u.name.as_str()) else { return };
        let Some(at) = wire.carry(self.now, dir, bytes.len()) else { return };
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight { at, seq: self.seq, host: peer, carrier, packet: bytes }));
    }
}

/// Bytes of a flow frame's payload header: tag, sequence number, send time.
const FLOW_HDR: usize = 4 + 8 + 8;
/// UDP port flow frames go to.
pub const FLOW_PORT: u16 = 9999;

/// An Ethernet + IPv4 + UDP frame of `size` bytes whose payload starts with
/// `tag`, `seq` and `sent_at`.
pub fn udp_frame(
    src: (MacAddr, Ipv4Addr),
    dst: (MacAddr, Ipv4Addr),
    size: usize,
    tag: u32,
    seq: u64,
    sent_at: Nanos,
) -> Vec<u8> {
    let hl = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
    let size = size.max(hl + FLOW_HDR);
    let mut f = vec![0u8; size];
    ethernet::Repr { src_addr: src.0, dst_addr: dst.0, ethertype: EtherType::Ipv4 }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    let payload = size - hl;
    let ip = ipv4::Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        protocol: ipv4::protocol::UDP,
        payload_len: udp::HEADER_LEN + payload,
        ttl: 64,
        tos: 0,
        ident: seq as u16,
        dont_frag: true,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..])).expect("fits");
    let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    f[hl..hl + 4].copy_from_slice(&tag.to_be_bytes());
    f[hl + 4..hl + 12].copy_from_slice(&seq.to_be_bytes());
    f[hl + 12..hl + 20].copy_from_slice(&sent_at.to_be_bytes());
    udp::Repr { src_port: FLOW_PORT, dst_port: FLOW_PORT, payload_len: payload }
        .emit(&mut udp::Packet::new_unchecked(&mut f[at..]), src.1.into(), dst.1.into(), true)
        .expect("fits");
    f
}

/// The tag, sequence number and send time of a flow frame that arrived
/// intact (every checksum right); `None` for anything else.
pub fn read_udp_frame(frame: &[u8]) -> Option<(u32, u64, Nanos)> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let repr = ipv4::Repr::parse(&ip).ok()?;
    if repr.protocol != ipv4::protocol::UDP {
        return None;
    }
    let u = udp::Packet::new_checked(ip.payload()).ok()?;
    udp::Repr::parse(&u, repr.src_addr.into(), repr.dst_addr.into()).ok()?;
    let p = u.payload();
    if p.len() < FLOW_HDR {
        return None;
    }
    let tag = u32::from_be_bytes(p[0..4].try_into().ok()?);
    let seq = u64::from_be_bytes(p[4..12].try_into().ok()?);
    let at = u64::from_be_bytes(p[12..20].try_into().ok()?);
    Some((tag, seq, at))
}
