//! Planning, pure: from a host's desired config and its redirector tables to
//! the egress ports it needs (each with its scheduler classes) and the route
//! of every rule. Routes name ports and classes by id ([`PortId`],
//! `LinkId`) and fast-path nodes by [`NodeId`], never by a device handle; the
//! caller keeps its devices in the same order.
//!
//! Planning is two steps because class ids are handed out by the ports'
//! schedulers: [`plan`] says what every port should look like; the caller
//! makes each port so ([`crate::egress::EgressPort::configure`]), then
//! [`Planned::resolve`] turns class keys into the ids the schedulers gave.

use std::collections::BTreeMap;

use netslice_dataplane::program::{InstanceIface, NodeInstance, NodeProgram};
use netslice_dataplane::{Hop, InstantiateError, Registry, Tables};
use netslice_model::Isolation;
use netslice_model::api::{NodeConfig, SliverConfig};
use netslice_model::{NodeName, PortNo, SliceName};
use netslice_qos::sched::LinkId;

use crate::egress::{ClassKey, ClassPlan, POLICED_LIMITS, PortKey, PortKind, PortPlan, class, limits_for};
use crate::impair::Impairment;

/// An egress port's index in a [`Plane`] (and in the caller's list of devices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

/// A fast-path node's index in a [`Plane`] (and in the caller's programs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl PortId {
    /// As an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl NodeId {
    /// As an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a rule's frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An egress port and a class of its scheduler.
    Egress {
        /// The port.
        port: PortId,
        /// The class.
        class: LinkId,
    },
    /// Into a fast-path node, on one of its interfaces.
    Node {
        /// The node.
        node: NodeId,
        /// Interface index (the program's numbering).
        iface: usize,
    },
}

/// A fast-path node of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// What it was built from (a changed config means a new program).
    pub config: SliverConfig,
    /// Port number of each of its interfaces, in the program's order.
    pub ports: Vec<PortNo>,
}

impl NodeInfo {
    /// For a fast-path sliver of the config.
    pub fn of(s: &SliverConfig) -> NodeInfo {
        NodeInfo { config: s.clone(), ports: s.interfaces.iter().map(|i| i.port).collect() }
    }

    /// (slice, node).
    pub fn key(&self) -> (&SliceName, &NodeName) {
        (&self.config.slice, &self.config.node)
    }
}

/// Everything the per-frame path reads, swapped as one.
#[derive(Debug, Default)]
pub struct Plane {
    /// Redirector tables.
    pub tables: Tables,
    /// Route of each rule, by rule id (`None`: the port is down).
    pub routes: Vec<Option<Route>>,
    /// Egress ports by [`PortId`].
    pub ports: Vec<(PortKey, PortKind)>,
    /// Fast-path nodes by [`NodeId`].
    pub nodes: Vec<NodeInfo>,
    /// Impairment of each physical link, by underlay index.
    pub impairments: Vec<Impairment>,
}

impl Plane {
    /// A port's kind.
    pub fn port_kind(&self, id: PortId) -> Option<&PortKind> {
        self.ports.get(id.index()).map(|(_, k)| k)
    }
}

/// Starts the packet program of fast-path sliver `s` (`None`: its type has
/// none, it is a slow-path type).
pub fn start_program(registry: &Registry, s: &SliverConfig) -> Result<Option<Box<dyn NodeProgram>>, InstantiateError> {
    let inst = NodeInstance {
        slice: s.slice.clone(),
        node: s.node.clone(),
        params: s.params.clone(),
        interfaces: s
            .interfaces
            .iter()
            .map(|i| InstanceIface {
                name: i.name.clone(),
                port: i.port,
                mac: i.mac,
                addresses: i.addresses.clone(),
                mtu: i.mtu,
            })
            .collect(),
        routes: s.routes.clone(),
    };
    match registry.node(&s.node_type) {
        Some(t) => t.instantiate(&inst),
        None => Err(InstantiateError::UnknownType(s.node_type.clone())),
    }
}

/// Where a rule's frames go, before class ids are known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Port(PortId, ClassKey),
    Node(NodeId, usize),
}

/// A plan whose class keys are not yet resolved to scheduler ids.
#[derive(Debug)]
pub struct Planned {
    /// The egress ports the host needs, by [`PortId`].
    pub ports: Vec<PortPlan>,
    tables: Tables,
    nodes: Vec<NodeInfo>,
    targets: Vec<Option<Target>>,
    impairments: Vec<Impairment>,
}

impl Planned {
    /// The plane, with each rule's class key replaced by the id `class_of`
    /// gives (the id of the class in the configured port); a class the port
    /// could not make leaves its rules without a route.
    pub fn resolve(self, class_of: impl Fn(PortId, &ClassKey) -> Option<LinkId>) -> Plane {
        let routes = self
            .targets
            .iter()
            .map(|t| match t {
                Some(Target::Port(p, key)) => class_of(*p, key).map(|class| Route::Egress { port: *p, class }),
                Some(Target::Node(n, iface)) => Some(Route::Node { node: *n, iface: *iface }),
                None => None,
            })
            .collect();
        Plane {
            tables: self.tables,
            routes,
            ports: self.ports.iter().map(|p| (p.key.clone(), p.kind.clone())).collect(),
            nodes: self.nodes,
            impairments: self.impairments,
        }
    }
}

/// Plans the egress ports of a host: every physical link and every sliver
/// interface that some rule sends to gets a scheduler whose classes are the
/// slices and links that send there. `tap(port)` says whether a sliver
/// interface is open and takes super-frames whole (`Some(offload)`), or is
/// not open (`None`: its rules get no route and count `port_down`). `nodes`
/// are the fast-path nodes running (their index is their [`NodeId`]).
pub fn plan(cfg: &NodeConfig, tables: Tables, tap: &dyn Fn(PortNo) -> Option<bool>, nodes: Vec<NodeInfo>) -> Planned {
    let node_ports: BTreeMap<PortNo, (NodeId, usize)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(n, info)| info.ports.iter().enumerate().map(move |(i, p)| (*p, (NodeId(n as u32), i))))
        .collect();
    let mut targets: Vec<Option<Target>> = vec![None; tables.rules().len()];
    // Which rules send to which port.
    let mut users: BTreeMap<PortKey, Vec<usize>> = BTreeMap::new();
    for (id, r) in tables.rules().iter().enumerate() {
        let key = match r.hop {
            Hop::Send { underlay, .. } => match cfg.underlay.get(usize::from(underlay)) {
                Some(u) => PortKey::Underlay(u.name.clone()),
                None => continue,
            },
            Hop::Deliver { port } => {
                if let Some(&(node, iface)) = node_ports.get(&port) {
                    // Into a fast-path node: no queue, the program runs at once.
                    targets[id] = Some(Target::Node(node, iface));
                    continue;
                }
                PortKey::Tap(port)
            }
        };
        users.entry(key).or_default().push(id);
    }
    let mut ports = Vec::new();
    for (key, rules) in users {
        // Port rate: the physical link's capacity, or a TAP's fastest link ceiling.
        let (kind, rate_bps, burst) = match &key {
            PortKey::Underlay(name) => {
                let Some((index, u)) = cfg.underlay.iter().enumerate().find(|(_, u)| &u.name == name) else { continue };
                let rate = u.bandwidth.bps();
                (PortKind::Underlay { index, mtu: u.mtu as usize }, rate, (rate / 8 / 1000).max(64 * 1024))
            }
            PortKey::Tap(port) => {
                let Some(offload) = tap(*port) else { continue };
                let rs = rules.iter().map(|&i| &tables.rules()[i]);
                let rate = rs.clone().map(|r| r.qos.ceil).max().unwrap_or(1);
                let burst = rs.map(|r| r.qos.burst).max().unwrap_or(64 * 1024);
                (PortKind::Tap { port: *port, offload }, rate, burst)
            }
        };
        let id = PortId(ports.len() as u32);
        let (slices, classes) = classes(cfg, &tables, &rules, rate_bps);
        for &i in &rules {
            targets[i] = Some(Target::Port(id, class_key(&tables.rules()[i])));
        }
        ports.push(PortPlan { key, kind, rate: (rate_bps / 8).max(1), burst: burst.max(1), slices, classes });
    }
    let impairments = cfg.underlay.iter().map(Impairment::of).collect();
    Planned { ports, tables, nodes, targets, impairments }
}

/// The class a rule's frames join at its port.
fn class_key(r: &netslice_dataplane::Rule) -> ClassKey {
    match r.qos.isolation {
        Isolation::Shaped => ClassKey::Link(r.key.slice.clone(), r.key.link.clone(), r.key.direction),
        Isolation::Policed => ClassKey::Policed,
    }
}

type Classes = (BTreeMap<SliceName, netslice_qos::sched::ClassConfig>, BTreeMap<ClassKey, ClassPlan>);

/// The slice and link classes of one port of `port_bps`, from the rules
/// that send there: a shaped link gets its own class (its guarantee, ceiling
/// and burst); every policed link shares one class whose guarantee is the sum
/// of theirs (they were metered where they entered). A slice's class
/// guarantees the sum of its links' and is capped by the port and the slice's
/// own ceiling.
fn classes(cfg: &NodeConfig, tables: &Tables, rules: &[usize], port_bps: u64) -> Classes {
    // Per class: rate, ceil, burst (bits/s, bytes), overhead, slice, weight.
    let mut want: BTreeMap<ClassKey, (u64, u64, u64, u32, SliceName, u32)> = BTreeMap::new();
    // Per slice: rate, ceil, burst.
    let mut slices: BTreeMap<SliceName, (u64, u64, u64)> = BTreeMap::new();
    for &i in rules {
        let r = &tables.rules()[i];
        let overhead = match r.hop {
            Hop::Send { link_type, .. } => tables.registry().link(link_type).map(|l| l.wire_overhead()).unwrap_or(0),
            Hop::Deliver { .. } => 0,
        };
        let key = class_key(r);
        let slice = if key == ClassKey::Policed { SliceName::default() } else { r.key.slice.clone() };
        let weight =
            if key == ClassKey::Policed { 1 } else { cfg.slices.get(&r.key.slice).map(|s| s.weight).unwrap_or(1) };
        let w = want.entry(key.clone()).or_insert((0, 0, 0, overhead, slice.clone(), weight));
        if key == ClassKey::Policed {
            // One shared queue: its guarantee is the sum of the policed links'.
            w.0 += r.qos.rate;
            w.1 = port_bps;
            w.2 = w.2.max(r.qos.burst);
            w.3 = w.3.max(overhead);
        } else {
            (w.0, w.1, w.2) = (r.qos.rate, r.qos.ceil, r.qos.burst);
        }
        let s = slices.entry(slice).or_default();
        s.0 += r.qos.rate;
        s.1 += if key == ClassKey::Policed { port_bps } else { r.qos.ceil };
        s.2 = s.2.max(r.qos.burst);
    }
    let slices = slices
        .into_iter()
        .map(|(slice, (rate, ceil, burst))| {
            let share = cfg.slices.get(&slice);
            let ceil = ceil.min(port_bps).min(share.and_then(|s| s.ceil).unwrap_or(u64::MAX)).max(rate);
            let weight = share.map(|s| s.weight).unwrap_or(1);
            (slice, class(rate, ceil, burst, weight))
        })
        .collect();
    let classes = want
        .into_iter()
        .map(|(key, (rate, ceil, burst, overhead, slice, weight))| {
            let limits = if key == ClassKey::Policed { POLICED_LIMITS } else { limits_for(burst) };
            let config = class(rate, ceil.max(rate), burst, weight);
            (key, ClassPlan { slice, config, limits, overhead })
        })
        .collect();
    (slices, classes)
}
