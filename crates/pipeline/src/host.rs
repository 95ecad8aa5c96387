//! One host's pipeline composed for a single owner: frames in, transmits and
//! timeouts out, reconfigured in place by [`Host::apply`]. The in-memory
//! multi-host harness drives it on a virtual clock; it is the same planning,
//! dispatch, egress scheduling and delay lines the agent's threads drive.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use netslice_dataplane::program::{NodeProgram, Outputs};
use netslice_dataplane::{Carrier, HEADROOM, InstantiateError, Registry, RuleError, Tables, gso};
use netslice_model::api::NodeConfig;
use netslice_model::{NodeName, PhysLinkName, PortNo, SliceName};
use netslice_qos::Nanos;

use crate::buffers::{Buffers, VecPool};
use crate::dispatch::{Dispatch, Programs, port_ingress};
use crate::egress::{EgressPort, Pkt, PortKey, PortKind, TxDst};
use crate::impair::{DELAY_QUEUE, DelayLine};
use crate::plan::{NodeId, NodeInfo, Plane, PortId, plan, start_program};

/// What a host sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A frame for the sliver interface of `port`; a TCP super-frame carried
    /// whole has its layout (what an offload interface's header says).
    Port {
        /// Port number.
        port: PortNo,
        /// The frame.
        frame: Vec<u8>,
        /// Set for a super-frame.
        gso: Option<gso::Super>,
    },
    /// A packet for physical link `underlay` (index in the config), as its
    /// carrier takes it (IP carriers: without the outer IP or UDP header).
    Substrate {
        /// Underlay link index.
        underlay: usize,
        /// How it travels.
        dst: TxDst,
        /// The packet.
        packet: Vec<u8>,
        /// Set for a super-frame carried whole.
        gso: Option<gso::Super>,
    },
}

/// A problem applying a config (the rest of it is applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A rule could not be built.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// A fast-path node's program could not start.
    #[error("node {slice}/{node}: {error}")]
    Program {
        /// Slice.
        slice: SliceName,
        /// Node.
        node: NodeName,
        /// Why.
        error: InstantiateError,
    },
}

/// A running node program.
type Program = RefCell<Box<dyn NodeProgram>>;

struct Programs1<'a>(&'a [Program]);

impl Programs for Programs1<'_> {
    fn process(&self, node: NodeId, now: Nanos, iface: usize, frame: &mut [u8], out: &mut Outputs) {
        if let Some(p) = self.0.get(node.index()) {
            p.borrow_mut().process(now, iface, frame, out);
        }
    }
}

/// Options of a [`Host`].
#[derive(Debug, Clone, Copy)]
pub struct HostOptions {
    /// Seed of the emulated loss.
    pub seed: u64,
    /// Sliver interfaces take TCP super-frames whole (TAPs with offload).
    pub offload: bool,
    /// Buffer length (a super-frame and its encapsulation must fit).
    pub buf_len: usize,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions { seed: 1, offload: true, buf_len: HEADROOM + gso::MAX_SUPER + 64 }
    }
}

/// One host's forwarding pipeline, owned by one caller.
pub struct Host {
    registry: Arc<Registry>,
    opts: HostOptions,
    plane: Plane,
    ports: Vec<EgressPort>,
    /// Delay lines by underlay index, with their link's name (a line
    /// follows its link, as the agent's do).
    delays: BTreeMap<usize, (PhysLinkName, DelayLine<Pkt>)>,
    programs: Vec<Program>,
    dispatch: Dispatch,
    pool: VecPool,
    out: VecDeque<Transmit>,
    now: Nanos,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("ports", &self.plane.ports).field("queued", &self.out.len()).finish()
    }
}

impl Host {
    /// An empty host (no rules: everything it gets is unmatched).
    pub fn new(registry: Arc<Registry>, opts: HostOptions) -> Host {
        Host {
            registry,
            opts,
            plane: Plane::default(),
            ports: Vec::new(),
            delays: BTreeMap::new(),
            programs: Vec::new(),
            dispatch: Dispatch::new(opts.seed),
            pool: VecPool::new(opts.buf_len, 256),
            out: VecDeque::new(),
            now: 0,
        }
    }

    /// The tables, routes and ports in force.
    pub fn plane(&self) -> &Plane {
        &self.plane
    }

    /// Packets queued in the egress ports and delay lines.
    pub fn backlog(&self) -> usize {
        self.ports.iter().map(|p| p.backlog()).sum::<usize>()
            + self.delays.values().map(|(_, d)| d.len()).sum::<usize>()
    }

    /// Makes the pipeline match `cfg` at `now`: tables rebuilt (counters of
    /// rules that stay are kept), ports and their classes reconfigured in
    /// place (queued packets of classes that stay are kept), node programs
    /// whose config is unchanged kept with their state, delay lines of links
    /// that stay kept with what they hold.
    pub fn apply(&mut self, cfg: &NodeConfig, now: Nanos) -> Vec<Problem> {
        self.now = self.now.max(now);
        let mut problems = Vec::new();
        // The harness's virtual clock stands for Unix time too.
        let clock = netslice_dataplane::WallClock { now, unix_ms: now / 1_000_000 };
        let tables = Tables::build(cfg, Some(&self.plane.tables), &self.registry, clock);
        problems.extend(tables.errors.iter().cloned().map(Problem::Rule));
        // Fast-path nodes: keep those whose config is unchanged.
        let mut old: BTreeMap<(SliceName, NodeName), (NodeInfo, Program)> = std::mem::take(&mut self.plane.nodes)
            .into_iter()
            .zip(std::mem::take(&mut self.programs))
            .map(|(info, p)| ((info.config.slice.clone(), info.config.node.clone()), (info, p)))
            .collect();
        let mut nodes = Vec::new();
        for s in cfg.slivers.iter().filter(|s| s.fast_path) {
            let key = (s.slice.clone(), s.node.clone());
            if let Some((info, p)) = old.remove(&key).filter(|(i, _)| i.config == *s) {
                nodes.push(info);
                self.programs.push(p);
                continue;
            }
            match start_program(&self.registry, s) {
                Ok(Some(p)) => {
                    nodes.push(NodeInfo::of(s));
                    self.programs.push(RefCell::new(p));
                }
                Ok(None) => {}
                Err(error) => problems.push(Problem::Program { slice: key.0, node: key.1, error }),
            }
        }
        let offload = self.opts.offload;
        let open: std::collections::BTreeSet<PortNo> =
            cfg.slivers.iter().filter(|s| !s.fast_path).flat_map(|s| s.interfaces.iter().map(|i| i.port)).collect();
        let tap = move |p: PortNo| open.contains(&p).then_some(offload);
        let planned = plan(cfg, tables, &tap, nodes);
        // Ports: reconfigure those that stay, make new ones, drain gone ones.
        let mut old_ports: BTreeMap<PortKey, EgressPort> =
            self.plane.ports.iter().map(|(k, _)| k.clone()).zip(std::mem::take(&mut self.ports)).collect();
        let mut ports = Vec::new();
        for p in &planned.ports {
            let mut e = old_ports.remove(&p.key).unwrap_or_else(|| EgressPort::new(p, now));
            for pkt in e.configure(p, now) {
                self.pool.give(pkt.buf);
            }
            ports.push(e);
        }
        for (_, mut e) in old_ports {
            for pkt in e.drain() {
                self.pool.give(pkt.buf);
            }
        }
        self.plane = planned.resolve(|id, key| ports.get(id.index()).and_then(|e| e.class_of(key)));
        self.ports = ports;
        // Delay lines of the links that delay: a line stays (with what it
        // holds) while its link delays and stays where it is in the config.
        let mut lines: BTreeMap<PhysLinkName, (usize, DelayLine<Pkt>)> =
            std::mem::take(&mut self.delays).into_iter().map(|(i, (name, line))| (name, (i, line))).collect();
        for (i, imp) in self.plane.impairments.iter().enumerate() {
            if imp.delay == 0 {
                continue;
            }
            let name = cfg.underlay[i].name.clone();
            let mut line = match lines.remove(&name) {
                Some((at, line)) if at == i => line,
                Some((_, mut moved)) => {
                    // The link moved in the config: what its line held is lost.
                    moved.drain().for_each(|p| self.pool.give(p.buf));
                    DelayLine::new(imp.delay, DELAY_QUEUE)
                }
                None => DelayLine::new(imp.delay, DELAY_QUEUE),
            };
            line.set_delay(imp.delay);
            self.delays.insert(i, (name, line));
        }
        for (name, (i, mut line)) in lines {
            let pkts: Vec<Pkt> = line.drain().collect();
            if cfg.underlay.get(i).is_some_and(|u| u.name == name) {
                // The link stopped delaying: what its line holds goes now.
                pkts.into_iter().for_each(|p| self.emit_underlay(i, p));
            } else {
                // The link is gone.
                pkts.into_iter().for_each(|p| self.pool.give(p.buf));
            }
        }
        problems
    }

    /// A frame `frame` written by a sliver into the interface of `port` at
    /// `now`, with the virtio-net header `hdr` an offload interface gives it.
    pub fn port_input(&mut self, now: Nanos, port: PortNo, frame: &[u8], hdr: &gso::VnetHdr) {
        self.now = self.now.max(now);
        let Some(mut buf) = self.fill(frame) else { return };
        let range = HEADROOM..HEADROOM + frame.len();
        let v = port_ingress(&self.plane, now, port, &mut buf, range, hdr);
        self.forward(now, buf, v);
    }

    /// A packet that arrived on the substrate by `carrier` at `now`, as the
    /// carrier delivers it (IP protocols: from the IPv4 header; UDP: the
    /// payload; Ethernet: the frame).
    pub fn substrate_input(&mut self, now: Nanos, carrier: Carrier, packet: &[u8]) {
        self.now = self.now.max(now);
        let Some(ty) = self.registry.carried_by(carrier) else { return };
        let Some(mut buf) = self.fill(packet) else { return };
        let v = self.plane.tables.on_substrate(self.now, ty, &mut buf, HEADROOM..HEADROOM + packet.len());
        self.forward(now, buf, v);
    }

    fn fill(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        if HEADROOM + bytes.len() > self.pool.buf_len() {
            return None;
        }
        let mut buf = self.pool.take();
        buf[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        Some(buf)
    }

    fn forward(&mut self, now: Nanos, mut buf: Vec<u8>, v: netslice_dataplane::Verdict) {
        let progs = Programs1(&self.programs);
        self.dispatch.handle(&self.plane, &mut self.pool, &progs, &mut buf, v, now);
        if !buf.is_empty() {
            self.pool.give(buf);
        }
        let batches: Vec<_> = self.dispatch.take_batches().collect();
        for (port, pkts) in batches {
            let Some(e) = self.ports.get_mut(port.index()) else { continue };
            for (class, p) in pkts {
                if let Err(p) = e.enqueue(now, class, p) {
                    self.pool.give(p.buf);
                }
            }
        }
        self.run(now);
    }

    /// Moves what the ports let go at `now` on: into delay lines, or out.
    fn run(&mut self, now: Nanos) {
        let mut batch = Vec::new();
        for id in 0..self.ports.len() {
            batch.clear();
            while self.ports[id].poll_transmit(now, 64, &mut batch) > 0 {}
            let delay_at = match self.ports[id].kind() {
                PortKind::Underlay { index, .. } if self.delays.contains_key(index) => Some(*index),
                _ => None,
            };
            for p in batch.drain(..) {
                match delay_at.and_then(|i| self.delays.get_mut(&i)).map(|(_, l)| l) {
                    Some(line) => {
                        if let Err(p) = line.push(now, p) {
                            p.counters.dropped(netslice_dataplane::DropReason::QueueFull);
                            self.pool.give(p.buf);
                        }
                    }
                    None => self.emit_from(PortId(id as u32), p),
                }
            }
        }
        let due: Vec<(usize, Pkt)> = self
            .delays
            .iter_mut()
            .flat_map(|(&i, (_, line))| std::iter::from_fn(move || line.poll(now).map(|p| (i, p))))
            .collect();
        for (i, p) in due {
            self.emit_underlay(i, p);
        }
    }

    fn emit_from(&mut self, port: PortId, p: Pkt) {
        match self.plane.port_kind(port).cloned() {
            Some(PortKind::Tap { port, .. }) => {
                let frame = p.bytes().to_vec();
                self.out.push_back(Transmit::Port { port, frame, gso: p.gso.map(|g| g.layout) });
                self.pool.give(p.buf);
            }
            Some(PortKind::Underlay { index, .. }) => self.emit_underlay(index, p),
            None => self.pool.give(p.buf),
        }
    }

    fn emit_underlay(&mut self, index: usize, p: Pkt) {
        if let Some(dst) = p.dst {
            let packet = p.bytes().to_vec();
            self.out.push_back(Transmit::Substrate { underlay: index, dst, packet, gso: p.gso.map(|g| g.layout) });
        }
        self.pool.give(p.buf);
    }

    /// The next thing to send at `now`, if any.
    pub fn poll_transmit(&mut self, now: Nanos) -> Option<Transmit> {
        self.now = self.now.max(now);
        if self.out.is_empty() {
            self.run(now);
        }
        self.out.pop_front()
    }

    /// When [`Host::poll_transmit`] may have something new (`None`: only
    /// after new input).
    pub fn poll_timeout(&mut self) -> Option<Nanos> {
        let now = self.now;
        let ports = self.ports.iter_mut().filter_map(|p| p.poll_timeout(now));
        let lines = self.delays.values().filter_map(|(_, d)| d.poll_timeout());
        ports.chain(lines).min()
    }
}
