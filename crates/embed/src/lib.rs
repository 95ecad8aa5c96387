//! Service-network and transport-network control (the seed's SNC and TNC), sans-IO.
//!
//! [`plan`] maps a slice's virtual nodes to substrate hosts and its virtual links to
//! transport paths with a label per hop; [`node_configs`] turns every slice's plan
//! into the desired config of each host. Both are pure functions of their inputs, so
//! the manager can run them inside one store transaction and tests can run them
//! without any I/O.
//!
//! This is the simple first controller: placement honours pins and spreads a slice
//! over hosts with free sliver slots, paths are shortest by hop count. Bandwidth
//! admission and topology-aware embedding replace it behind the same functions.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod forwarding;
pub mod vne;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use netslice_model::api::{
    Action, Direction, InterfaceConfig, InterfacePlan, LabelRule, LinkPlan, LinkQos, NodeConfig, NodePlan, PortRule,
    SlicePlan, SliceShare, SliverConfig, UnderlayLink,
};
use netslice_model::spec::{LinkType, SliceSpec, VLinkSpec};
use netslice_model::substrate::{Link, Network, Role, Substrate};
use netslice_model::types::{Layer, LinkTypeInfo, TypeCatalog};

/// Labels below this are reserved.
pub const FIRST_LABEL: u32 = 16;
/// Bytes of the carried Ethernet header, on top of the virtual link's MTU.
pub const INNER_ETHERNET: u32 = 14;

/// Why a slice cannot be planned. Each names the spec field concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A pin names a host that does not exist.
    #[error("{field}: no substrate host named {host:?}")]
    UnknownHost {
        /// Spec field.
        field: String,
        /// Host asked for.
        host: String,
    },
    /// A pin names a host that cannot run slivers.
    #[error("{field}: host {host:?} is a {role} host and runs no slivers")]
    NotVnode {
        /// Spec field.
        field: String,
        /// Host asked for.
        host: String,
        /// Its role.
        role: &'static str,
    },
    /// No host has enough of a resource for a virtual node.
    #[error("{field}: no host with {asked} {resource} free among {hosts} (most free: {free})")]
    NoHost {
        /// Spec field.
        field: String,
        /// The resource: cpu, memory, sliver slots, ports, distinct hosts.
        resource: &'static str,
        /// Amount asked.
        asked: String,
        /// Most free among the hosts considered.
        free: String,
        /// Hosts considered.
        hosts: String,
    },
    /// The two hosts are not connected.
    #[error("{field}: no transport path from {from} to {to}")]
    NoPath {
        /// Spec field.
        field: String,
        /// Source host.
        from: String,
        /// Destination host.
        to: String,
    },
    /// The virtual link's frames do not fit the physical MTU.
    #[error(
        "{field}: MTU {mtu} + {overhead} bytes of {link_type} encapsulation does not fit physical link {underlay} (MTU {underlay_mtu})"
    )]
    Mtu {
        /// Spec field.
        field: String,
        /// Virtual link MTU.
        mtu: u32,
        /// Encapsulation bytes.
        overhead: u32,
        /// Link type.
        link_type: String,
        /// Physical link.
        underlay: String,
        /// Its MTU.
        underlay_mtu: u32,
    },
    /// A physical link has too little unreserved bandwidth.
    #[error("{field}: link {link} ({from} -> {to}) has {free} free, {asked} asked")]
    Bandwidth {
        /// Spec field.
        field: String,
        /// Physical link.
        link: String,
        /// Sending host.
        from: String,
        /// Receiving host.
        to: String,
        /// Unreserved capacity.
        free: netslice_model::Bandwidth,
        /// Asked.
        asked: netslice_model::Bandwidth,
    },
    /// A link type the catalog does not know.
    #[error("{field}: unknown link type {link_type:?}")]
    UnknownType {
        /// Spec field.
        field: String,
        /// The type.
        link_type: String,
    },
    /// A host ran out of labels or ports.
    #[error("{field}: host {host} has no free {what}")]
    Exhausted {
        /// Spec field.
        field: String,
        /// Host.
        host: String,
        /// "labels" or "ports".
        what: &'static str,
    },
    /// A host on the link's path cannot forward its guaranteed rate: the
    /// CPU budget it draws on (its own, its machine's, or the slice's
    /// dedicated CPUs) has too little left.
    #[error("{field}: host {host} can forward {free} more at {frame_size}-byte frames, {asked} asked{budget}")]
    Forwarding {
        /// Spec field.
        field: String,
        /// Host.
        host: String,
        /// What it can still forward for this link, at this frame size.
        free: netslice_model::Bandwidth,
        /// Asked.
        asked: netslice_model::Bandwidth,
        /// The frame size the link is reserved at.
        frame_size: u32,
        /// Which budget, when it is not simply the host's own (" (machine
        /// m, shared with a, b)", " (its 1 dedicated CPU)").
        budget: String,
    },
    /// A dedicated CPU is already another slice's on a host this one uses.
    #[error("{field}: CPU {cpu} on host {host:?} is dedicated to another slice")]
    CpuTaken {
        /// Spec field.
        field: String,
        /// The CPU.
        cpu: u32,
        /// The host.
        host: String,
    },
}

impl PlanError {
    /// The GENI AM API v3 error this refusal maps to (for federation).
    pub fn geni_code(&self) -> &'static str {
        match self {
            PlanError::Bandwidth { .. } | PlanError::NoPath { .. } | PlanError::Forwarding { .. } => {
                "INSUFFICIENT_BANDWIDTH"
            }
            PlanError::NoHost { .. } | PlanError::Exhausted { .. } => "INSUFFICIENT_NODES",
            PlanError::UnknownHost { .. } | PlanError::NotVnode { .. } | PlanError::UnknownType { .. } => "BADARGS",
            PlanError::Mtu { .. } => "REFUSED",
            PlanError::CpuTaken { .. } => "UNAVAILABLE",
        }
    }

    /// A short machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::UnknownHost { .. } => "unknown_host",
            PlanError::NotVnode { .. } => "not_vnode",
            PlanError::NoHost { .. } => "insufficient_nodes",
            PlanError::NoPath { .. } => "no_path",
            PlanError::Mtu { .. } => "mtu",
            PlanError::Bandwidth { .. } => "insufficient_bandwidth",
            PlanError::Forwarding { .. } => "insufficient_forwarding",
            PlanError::UnknownType { .. } => "unknown_type",
            PlanError::Exhausted { .. } => "labels_or_ports_exhausted",
            PlanError::CpuTaken { .. } => "cpu_taken",
        }
    }

    /// The spec field concerned.
    pub fn field(&self) -> &str {
        match self {
            PlanError::UnknownHost { field, .. }
            | PlanError::NotVnode { field, .. }
            | PlanError::NoHost { field, .. }
            | PlanError::NoPath { field, .. }
            | PlanError::Mtu { field, .. }
            | PlanError::Bandwidth { field, .. }
            | PlanError::UnknownType { field, .. }
            | PlanError::Exhausted { field, .. }
            | PlanError::Forwarding { field, .. }
            | PlanError::CpuTaken { field, .. } => field,
        }
    }
}

/// What existing slices hold on each host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocations {
    /// Labels in use, per receiving host.
    pub labels: BTreeMap<String, BTreeSet<u32>>,
    /// Port numbers in use, per host.
    pub ports: BTreeMap<String, BTreeSet<u32>>,
    /// Slivers placed, per host.
    pub slivers: BTreeMap<String, u32>,
    /// Bandwidth reserved per physical link and sending host, bits per second.
    pub bandwidth: BTreeMap<(String, String), u64>,
    /// CPU reserved per host, millicores.
    pub cpu_milli: BTreeMap<String, u64>,
    /// Memory reserved per host, bytes.
    pub memory: BTreeMap<String, u64>,
    /// Dedicated CPUs claimed per host (CPU -> claims; more than one only in
    /// books made before the claim was checked).
    pub cpus: BTreeMap<String, BTreeMap<u32, u32>>,
    /// Forwarding work reserved per host, nanoseconds of CPU per second.
    pub forwarding: BTreeMap<String, u64>,
}

impl Allocations {
    /// Everything the given plans hold.
    pub fn from_plans<'a>(plans: impl IntoIterator<Item = &'a SlicePlan>) -> Allocations {
        let mut a = Allocations::default();
        for p in plans {
            a.add(p);
        }
        a
    }

    /// Adds what a plan holds.
    pub fn add(&mut self, p: &SlicePlan) {
        for n in &p.nodes {
            if n.netns.is_some() {
                *self.slivers.entry(n.host.clone()).or_default() += 1;
            }
            *self.cpu_milli.entry(n.host.clone()).or_default() += n.cpu_milli;
            *self.memory.entry(n.host.clone()).or_default() += n.memory;
            for i in &n.interfaces {
                self.ports.entry(n.host.clone()).or_default().insert(i.port);
            }
        }
        for l in &p.links {
            for (i, lab) in l.forward_labels.iter().enumerate() {
                self.labels.entry(l.path[i + 1].clone()).or_default().insert(*lab);
            }
            for (i, lab) in l.reverse_labels.iter().enumerate() {
                self.labels.entry(l.path[i].clone()).or_default().insert(*lab);
            }
            for (i, u) in l.underlay.iter().enumerate() {
                for from in [&l.path[i], &l.path[i + 1]] {
                    *self.bandwidth.entry((u.clone(), from.clone())).or_default() += l.reserved;
                }
            }
            for (h, ns) in l.path.iter().zip(&l.forwarding) {
                *self.forwarding.entry(h.clone()).or_default() += ns;
            }
        }
        for h in p.hosts() {
            for &c in &p.cpus {
                *self.cpus.entry(h.to_string()).or_default().entry(c).or_default() += 1;
            }
        }
        self.bandwidth.retain(|_, v| *v > 0);
        self.forwarding.retain(|_, v| *v > 0);
        self.cpu_milli.retain(|_, v| *v > 0);
        self.memory.retain(|_, v| *v > 0);
    }

    /// Removes what a plan holds (the exact inverse of [`add`](Self::add)).
    pub fn remove(&mut self, p: &SlicePlan) {
        for n in &p.nodes {
            if n.netns.is_some()
                && let Some(c) = self.slivers.get_mut(&n.host)
            {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.slivers.remove(&n.host);
                }
            }
            for (map, v) in [(&mut self.cpu_milli, n.cpu_milli), (&mut self.memory, n.memory)] {
                if let Some(c) = map.get_mut(&n.host) {
                    *c = c.saturating_sub(v);
                    if *c == 0 {
                        map.remove(&n.host);
                    }
                }
            }
            for i in &n.interfaces {
                remove_from(&mut self.ports, &n.host, i.port);
            }
        }
        for l in &p.links {
            for (i, lab) in l.forward_labels.iter().enumerate() {
                remove_from(&mut self.labels, &l.path[i + 1], *lab);
            }
            for (i, lab) in l.reverse_labels.iter().enumerate() {
                remove_from(&mut self.labels, &l.path[i], *lab);
            }
            for (i, u) in l.underlay.iter().enumerate() {
                for from in [&l.path[i], &l.path[i + 1]] {
                    let key = (u.clone(), from.clone());
                    if let Some(v) = self.bandwidth.get_mut(&key) {
                        *v = v.saturating_sub(l.reserved);
                        if *v == 0 {
                            self.bandwidth.remove(&key);
                        }
                    }
                }
            }
            for (h, ns) in l.path.iter().zip(&l.forwarding) {
                if let Some(v) = self.forwarding.get_mut(h) {
                    *v = v.saturating_sub(*ns);
                    if *v == 0 {
                        self.forwarding.remove(h);
                    }
                }
            }
        }
        for h in p.hosts() {
            let Some(m) = self.cpus.get_mut(h) else { continue };
            for c in &p.cpus {
                if let Some(n) = m.get_mut(c) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        m.remove(c);
                    }
                }
            }
            if m.is_empty() {
                self.cpus.remove(h);
            }
        }
    }

    fn take(map: &mut BTreeMap<String, BTreeSet<u32>>, host: &str, first: u32, max: u32) -> Option<u32> {
        let used = map.entry(host.to_string()).or_default();
        let mut cand = first;
        for &u in used.range(first..) {
            if u != cand {
                break;
            }
            cand = cand.checked_add(1)?;
        }
        if cand > max {
            return None;
        }
        used.insert(cand);
        Some(cand)
    }
}

fn remove_from(map: &mut BTreeMap<String, BTreeSet<u32>>, host: &str, v: u32) {
    if let Some(s) = map.get_mut(host) {
        s.remove(&v);
        if s.is_empty() {
            map.remove(host);
        }
    }
}

/// A stable, locally administered unicast MAC for a sliver interface (FNV-1a of the
/// names, so the same interface gets the same MAC on every agent restart).
pub fn interface_mac(substrate: &str, slice: &str, node: &str, iface: &str) -> netslice_wire::MacAddr {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [substrate, slice, node, iface] {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let b = h.to_be_bytes();
    netslice_wire::MacAddr([0x02, b[1], b[2], b[3], b[4], b[5]])
}

/// The network namespace name of a sliver.
pub fn sliver_netns(substrate: &str, slice: &str, node: &str) -> String {
    format!("{substrate}.{slice}.{node}")
}

/// Guaranteed bandwidth one agent core is charged for carrying through a
/// fast-path node: 4 Gbit/s (a conservative reading of docs/benchmarks.md,
/// where a node program costs 24-39 ns per 1372-byte frame and an agent
/// core moves 0.5-1.1 Mpps of I/O; 4 Gbit/s of 1372-byte frames is 364
/// kpps). The measured, per-host forwarding budget replaces this constant
/// when forwarding capacity becomes an admitted resource.
pub const FAST_PATH_BPS_PER_CORE: u64 = 4_000_000_000;

/// What a virtual node reserves on its host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeDemand {
    /// CPU cores.
    pub cpu: f64,
    /// Memory, bytes.
    pub memory: u64,
    /// Whether it is a sliver (a namespace, taking a sliver slot); fast-path
    /// nodes are not.
    pub sliver: bool,
}

/// What node `n` of `spec` reserves. A sliver: its CPU and memory limits. A
/// fast-path node runs in the agent's forwarding threads, so it is charged
/// for that work and its state: CPU for the guaranteed bandwidth of its links
/// at [`FAST_PATH_BPS_PER_CORE`] (at least 0.01), memory as its type says
/// (its tables at their limits), and no sliver slot.
pub fn node_demand(spec: &SliceSpec, n: &netslice_model::spec::NodeSpec, types: &dyn TypeCatalog) -> NodeDemand {
    if !types.node_type(&n.node_type).is_some_and(|t| t.fast_path) {
        return NodeDemand { cpu: n.cpu(), memory: n.memory().bytes(), sliver: true };
    }
    let bps: u64 = spec
        .links
        .iter()
        .filter(|l| l.endpoints.iter().any(|e| e.node == n.name))
        .map(|l| l.bandwidth.bps())
        .fold(0u64, u64::saturating_add);
    let milli = (u128::from(bps) * 1000).div_ceil(u128::from(FAST_PATH_BPS_PER_CORE)).max(10);
    let interfaces = spec.interface_decls(&n.name);
    let decl = netslice_model::types::NodeDecl { params: &n.params, interfaces: &interfaces, routes: &n.routes };
    NodeDemand {
        cpu: milli.min(1 << 40) as f64 / 1000.0,
        memory: types.node_memory(&n.node_type, &decl),
        sliver: false,
    }
}

/// Plans a new slice against the substrate, given what other slices hold. On
/// success the caller records the plan (e.g. with [`Allocations::add`]).
pub fn plan(
    substrate: &Substrate,
    spec: &SliceSpec,
    held: &Allocations,
    types: &dyn TypeCatalog,
) -> Result<SlicePlan, PlanError> {
    replan(substrate, spec, None, held, types)
}

/// Plans a slice, possibly a change of a running one (`previous`: its old spec and
/// plan; `held` must not include the old plan). Nodes that stay keep their host,
/// interfaces keep their ports, and links whose endpoints and type stay keep their
/// path and labels while the path still has room, so the agents leave them alone.
/// Everything else is embedded topology-aware (see [`vne`]). The whole delta is
/// admitted or refused at once.
pub fn replan(
    substrate: &Substrate,
    spec: &SliceSpec,
    previous: Option<(&SliceSpec, &SlicePlan)>,
    held: &Allocations,
    types: &dyn TypeCatalog,
) -> Result<SlicePlan, PlanError> {
    replan_with(substrate, spec, previous, held, types, &Capacities::new())
}

pub use forwarding::Capacities;

impl From<forwarding::Shortfall> for PlanError {
    fn from(s: forwarding::Shortfall) -> PlanError {
        match s {
            forwarding::Shortfall::Forwarding { field, host, free, asked, frame_size, budget } => {
                PlanError::Forwarding { field, host, free, asked, frame_size, budget }
            }
            forwarding::Shortfall::Cpu { field, asked, free, hosts } => {
                PlanError::NoHost { field, resource: "cpu", asked, free, hosts }
            }
        }
    }
}

impl Allocations {
    /// What these allocations take out of CPU budgets.
    pub fn held(&self) -> forwarding::Held<'_> {
        forwarding::Held { cpu_milli: &self.cpu_milli, forwarding: &self.forwarding, cpus: &self.cpus }
    }
}

/// [`replan`], admitting forwarding work against what the hosts can forward
/// (see [`forwarding`]).
pub fn replan_with(
    substrate: &Substrate,
    spec: &SliceSpec,
    previous: Option<(&SliceSpec, &SlicePlan)>,
    held: &Allocations,
    types: &dyn TypeCatalog,
    caps: &Capacities,
) -> Result<SlicePlan, PlanError> {
    let host_idx: BTreeMap<&str, usize> =
        substrate.hosts.iter().enumerate().map(|(i, h)| (h.name.as_str(), i)).collect();
    let link_idx: BTreeMap<&str, usize> =
        substrate.links.iter().enumerate().map(|(i, l)| (l.name.as_str(), i)).collect();
    // Pins must name vnode hosts.
    for (i, n) in spec.nodes.iter().enumerate() {
        if let Some(h) = &n.host {
            let field = format!("nodes[{i}].host");
            let host =
                substrate.host(h).ok_or_else(|| PlanError::UnknownHost { field: field.clone(), host: h.clone() })?;
            if host.role != Role::Vnode {
                return Err(PlanError::NotVnode { field, host: h.clone(), role: host.role.as_str() });
            }
        }
    }
    // --- the substrate's free resources
    let mut p = vne::PNet::new(substrate.hosts.len());
    for (i, h) in substrate.hosts.iter().enumerate() {
        p.cpu[i] = h.cpu - held.cpu_milli.get(&h.name).copied().unwrap_or(0) as f64 / 1000.0;
        p.mem[i] = h.memory.bytes().saturating_sub(held.memory.get(&h.name).copied().unwrap_or(0));
        p.slots[i] = h.slivers.saturating_sub(held.slivers.get(&h.name).copied().unwrap_or(0));
        p.ports[i] = h.ports.saturating_sub(held.ports.get(&h.name).map(|s| s.len() as u32).unwrap_or(0));
        p.eligible[i] = h.role == Role::Vnode;
    }
    for l in &substrate.links {
        let [a, b] = &l.ends;
        let i = p.add_link(host_idx[a.host.as_str()], host_idx[b.host.as_str()], 0);
        let free = |from: &str| {
            l.bandwidth
                .bps()
                .saturating_sub(held.bandwidth.get(&(l.name.clone(), from.to_string())).copied().unwrap_or(0))
        };
        p.bw[i] = [free(&a.host), free(&b.host)];
    }
    let budgets = forwarding::Budgets::new(substrate, caps, held.held());
    p.budget_of = budgets.of_host.clone();
    p.budget = budgets.free.clone();
    let dedicated = spec.qos.as_ref().map(|q| q.cpus.len()).unwrap_or(0);
    // --- the request
    let node_idx: BTreeMap<&str, usize> = spec.nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let prev_node = |name: &str| previous.and_then(|(s, pl)| Some((s.node(name)?, pl.node(name)?)));
    let mut v = vne::VNet { share_hosts: spec.share_hosts, ..vne::VNet::default() };
    let mut mtu_problems: Vec<Option<PlanError>> = Vec::new();
    let demands: Vec<NodeDemand> = spec.nodes.iter().map(|n| node_demand(spec, n, types)).collect();
    for (n, d) in spec.nodes.iter().zip(&demands) {
        v.cpu.push(d.cpu);
        v.mem.push(d.memory);
        v.sliver.push(d.sliver);
        // A running node stays where it is (its programs keep running).
        let stay =
            prev_node(&n.name).filter(|(old, _)| old.node_type == n.node_type).map(|(_, plan)| plan.host.clone());
        let pin = n.host.clone().or(stay);
        v.pins.push(pin.map(|h| host_idx[h.as_str()]));
    }
    for (li, l) in spec.links.iter().enumerate() {
        let (a, b) = (node_idx[l.endpoints[0].node.as_str()], node_idx[l.endpoints[1].node.as_str()]);
        v.links.push((a, b, l.bandwidth.bps()));
        // A slice with dedicated CPUs forwards on them: checked below, not
        // charged to the shared budgets.
        v.work.push(if dedicated > 0 {
            Vec::new()
        } else {
            substrate.hosts.iter().map(|h| forwarding::work(caps.get(&h.name), l)).collect()
        });
        // Physical links it may cross: the hop type must exist and fit the MTU.
        let mut mtu_problem = None;
        let allowed: Vec<bool> = substrate
            .links
            .iter()
            .map(|phys| match hop_type(types, &l.link_type, phys) {
                Some((_, info)) if l.mtu() + INNER_ETHERNET + info.overhead <= phys.mtu => true,
                Some((t, info)) => {
                    mtu_problem.get_or_insert(PlanError::Mtu {
                        field: format!("links[{li}].mtu"),
                        mtu: l.mtu(),
                        overhead: INNER_ETHERNET + info.overhead,
                        link_type: t.to_string(),
                        underlay: phys.name.clone(),
                        underlay_mtu: phys.mtu,
                    });
                    false
                }
                None => false,
            })
            .collect();
        if types.link_type(l.link_type.as_str()).is_none() {
            return Err(PlanError::UnknownType {
                field: format!("links[{li}].type"),
                link_type: l.link_type.to_string(),
            });
        }
        mtu_problems.push(mtu_problem);
        v.allowed.push(allowed);
        // Keep the old path of an unchanged link.
        let keep = previous.and_then(|(ps, pp)| {
            let old = ps.links.iter().find(|o| o.name == l.name)?;
            let plan = pp.link(&l.name)?;
            (old.endpoints.iter().map(|e| &e.node).eq(l.endpoints.iter().map(|e| &e.node))
                && old.link_type == l.link_type
                && old.mtu() == l.mtu())
            .then(|| {
                plan.underlay
                    .iter()
                    .zip(&plan.path)
                    .map(|(u, from)| (link_idx[u.as_str()], host_idx[from.as_str()]))
                    .collect::<Vec<_>>()
            })
        });
        v.keep.push(keep);
    }
    // --- embed
    let e = vne::embed(&p, &v, &vne::Options::default()).map_err(|r| match r {
        vne::Refusal::NoHost { node, resource, asked, best_free, candidates } => {
            let pinned = v.pins[node].is_some();
            let names: Vec<&str> = candidates.iter().map(|&h| substrate.hosts[h].name.as_str()).collect();
            let (asked, free) = match resource {
                "memory" => (
                    netslice_model::Memory(asked as u64).to_string(),
                    netslice_model::Memory(best_free as u64).to_string(),
                ),
                "cpu" => (format!("{asked}"), format!("{best_free}")),
                _ => (format!("{asked}"), format!("{best_free}")),
            };
            PlanError::NoHost {
                field: if pinned && spec.nodes[node].host.is_some() {
                    format!("nodes[{node}].host")
                } else {
                    format!("nodes[{node}]")
                },
                resource,
                asked,
                free,
                hosts: format!("[{}]{}", names.join(", "), if pinned { " (pinned)" } else { "" }),
            }
        }
        vne::Refusal::Forwarding { link, host, asked, free } => {
            budgets.refusal(substrate, &spec.links[link], link, host, asked, free).into()
        }
        vne::Refusal::Bandwidth { link, from, to, asked, bottleneck } => {
            if let Some(problem) = mtu_problems[link].clone() {
                return problem;
            }
            match bottleneck {
                Some((phys, at, free)) => {
                    let l = &substrate.links[phys];
                    let at_name = substrate.hosts[at].name.clone();
                    let other = if l.ends[0].host == at_name { l.ends[1].host.clone() } else { l.ends[0].host.clone() };
                    PlanError::Bandwidth {
                        field: format!("links[{link}].bandwidth"),
                        link: l.name.clone(),
                        from: at_name,
                        to: other,
                        free: netslice_model::Bandwidth(free),
                        asked: netslice_model::Bandwidth(asked),
                    }
                }
                None => PlanError::NoPath {
                    field: format!("links[{link}]"),
                    from: substrate.hosts[from].name.clone(),
                    to: substrate.hosts[to].name.clone(),
                },
            }
        }
    })?;
    // --- nodes and ports (kept for interfaces that stay on the same host)
    let mut alloc = held.clone();
    let ifnames = spec.interface_names();
    let mut nodes: Vec<NodePlan> = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodePlan {
            name: n.name.clone(),
            host: substrate.hosts[e.hosts[i]].name.clone(),
            netns: demands[i].sliver.then(|| sliver_netns(&substrate.name, &spec.name, &n.name)),
            interfaces: Vec::new(),
            cpu_milli: (demands[i].cpu * 1000.0).round() as u64,
            memory: demands[i].memory,
        })
        .collect();
    let mut wanted_ports: Vec<(usize, usize, usize, Option<u32>)> = Vec::new(); // link, endpoint, node, kept port
    for (li, l) in spec.links.iter().enumerate() {
        for (ei, ep) in l.endpoints.iter().enumerate() {
            let ni = node_idx[ep.node.as_str()];
            let kept = prev_node(&ep.node)
                .filter(|(_, old)| old.host == nodes[ni].host)
                .and_then(|(_, old)| old.interfaces.iter().find(|i| i.link == l.name && usize::from(i.endpoint) == ei))
                .map(|i| i.port)
                .filter(|port| !alloc.ports.get(&nodes[ni].host).is_some_and(|s| s.contains(port)));
            if let Some(port) = kept {
                alloc.ports.entry(nodes[ni].host.clone()).or_default().insert(port);
            }
            wanted_ports.push((li, ei, ni, kept));
        }
    }
    for (li, ei, ni, kept) in wanted_ports {
        let host = nodes[ni].host.clone();
        let port =
            match kept {
                Some(p) => p,
                None => Allocations::take(&mut alloc.ports, &host, 1, u32::MAX).ok_or_else(|| {
                    PlanError::Exhausted { field: format!("links[{li}]"), host: host.clone(), what: "ports" }
                })?,
            };
        let name = ifnames[&(li, ei)].clone();
        nodes[ni].interfaces.push(InterfacePlan {
            mac: interface_mac(&substrate.name, &spec.name, &spec.nodes[ni].name, &name),
            name,
            link: spec.links[li].name.clone(),
            endpoint: ei as u8,
            port,
        });
    }
    for n in &mut nodes {
        n.interfaces.sort_by(|a, b| (&a.link, a.endpoint).cmp(&(&b.link, b.endpoint)));
    }
    // --- paths, hop types and labels (kept where the path is the same)
    let mut links = Vec::new();
    let mut dedicated_work: Vec<(usize, Vec<String>, Vec<u64>)> = Vec::new();
    let mut fresh: Vec<usize> = Vec::new();
    for (li, l) in spec.links.iter().enumerate() {
        let (a, _) = (node_idx[l.endpoints[0].node.as_str()], node_idx[l.endpoints[1].node.as_str()]);
        let mut path = vec![substrate.hosts[e.hosts[a]].name.clone()];
        let mut underlay = Vec::new();
        let mut hop_types = Vec::new();
        for &(phys, from) in &e.paths[li] {
            let pl = &substrate.links[phys];
            let from_name = &substrate.hosts[from].name;
            let to = if &pl.ends[0].host == from_name { &pl.ends[1].host } else { &pl.ends[0].host };
            underlay.push(pl.name.clone());
            path.push(to.clone());
            hop_types.push(hop_type(types, &l.link_type, pl).map(|(t, _)| t).unwrap_or_else(|| l.link_type.clone()));
        }
        let old = previous
            .and_then(|(_, pp)| pp.link(&l.name))
            .filter(|o| o.path == path && o.underlay == underlay && o.hop_types == hop_types);
        let (fwd, rev) = match old {
            Some(o) => {
                // Re-take the same labels (they are free: `held` excludes the old plan).
                let mut ok = true;
                for (i, lab) in o.forward_labels.iter().enumerate() {
                    ok &= alloc.labels.entry(path[i + 1].clone()).or_default().insert(*lab);
                }
                for (i, lab) in o.reverse_labels.iter().enumerate() {
                    ok &= alloc.labels.entry(path[i].clone()).or_default().insert(*lab);
                }
                if ok { (o.forward_labels.clone(), o.reverse_labels.clone()) } else { (Vec::new(), Vec::new()) }
            }
            None => (Vec::new(), Vec::new()),
        };
        if fwd.len() != underlay.len() {
            fresh.push(li);
        }
        for (i, u) in underlay.iter().enumerate() {
            for from in [&path[i], &path[i + 1]] {
                *alloc.bandwidth.entry((u.clone(), from.clone())).or_default() += l.bandwidth.bps();
            }
        }
        let work: Vec<u64> = path
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let [end, transit, local] = forwarding::work(caps.get(h), l);
                let cores = if path.len() == 1 {
                    local
                } else if i == 0 || i + 1 == path.len() {
                    end
                } else {
                    transit
                };
                (cores * 1e9).ceil().min(1e18) as u64
            })
            .collect();
        let forwarding = if dedicated == 0 && work.iter().any(|&w| w > 0) {
            work
        } else {
            if dedicated > 0 {
                dedicated_work.push((li, path.clone(), work));
            }
            Vec::new()
        };
        links.push(LinkPlan {
            name: l.name.clone(),
            path,
            underlay,
            forward_labels: fwd,
            reverse_labels: rev,
            reserved: l.bandwidth.bps(),
            hop_types,
            forwarding,
        });
    }
    for li in fresh {
        let lp = &mut links[li];
        let field = format!("links[{li}]");
        let mut fwd = Vec::new();
        let mut rev = Vec::new();
        for (i, t) in lp.hop_types.iter().enumerate() {
            let max = types.link_type(t.as_str()).map(|t| t.max_label).unwrap_or(u32::MAX);
            let mut take = |host: &str| {
                Allocations::take(&mut alloc.labels, host, FIRST_LABEL, max).ok_or_else(|| PlanError::Exhausted {
                    field: field.clone(),
                    host: host.to_string(),
                    what: "labels",
                })
            };
            fwd.push(take(&lp.path[i + 1])?);
            rev.push(take(&lp.path[i])?);
        }
        lp.forward_labels = fwd;
        lp.reverse_labels = rev;
    }
    let plan = SlicePlan { nodes, links, cpus: spec.qos.as_ref().map(|q| q.cpus.clone()).unwrap_or_default() };
    // Dedicated CPUs are exclusive on every host the slice uses.
    for h in plan.hosts() {
        for (i, c) in plan.cpus.iter().enumerate() {
            if held.cpus.get(h).and_then(|m| m.get(c)).is_some_and(|&n| n > 0) {
                return Err(PlanError::CpuTaken { field: format!("qos.cpus[{i}]"), cpu: *c, host: h.to_string() });
            }
        }
    }
    if dedicated > 0 {
        budgets.check_dedicated(substrate, spec, &plan, &dedicated_work)?;
    }
    Ok(plan)
}

/// The link type a virtual link of type `want` uses on physical link `phys`: its
/// own, unless it is an IP-layer type and the link is Ethernet-only, where the
/// link's L2 type carries it (the redirector converts at the hosts in between).
pub fn hop_type(types: &dyn TypeCatalog, want: &LinkType, phys: &Link) -> Option<(LinkType, LinkTypeInfo)> {
    let info = types.link_type(want.as_str())?;
    if phys.network == Network::Ethernet && info.layer == Layer::Ip {
        let l2 = types.link_type(&phys.l2)?;
        return Some((LinkType::new(&phys.l2), l2));
    }
    Some((want.clone(), info))
}

/// The isolation parameters every rule of a virtual link carries.
pub fn link_qos(l: &VLinkSpec) -> LinkQos {
    LinkQos {
        rate: l.bandwidth.bps(),
        ceil: l.ceiling().bps(),
        burst: l.burst_bytes(),
        isolation: l.isolation,
        frame_size: l.frame_size(),
    }
}

/// Shortest path by hop count (ties: first link in document order), as host names
/// and the physical links between them.
pub fn shortest_path(substrate: &Substrate, from: &str, to: &str) -> Option<(Vec<String>, Vec<String>)> {
    if from == to {
        return Some((vec![from.to_string()], Vec::new()));
    }
    let mut prev: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(h) = queue.pop_front() {
        for l in &substrate.links {
            let Some((_, other)) = l.ends_from(h) else {
                continue;
            };
            let o = other.host.as_str();
            if seen.insert(o) {
                prev.insert(o, (h, l.name.as_str()));
                if o == to {
                    let mut path = vec![to.to_string()];
                    let mut links = Vec::new();
                    let mut cur = to;
                    while let Some(&(p, link)) = prev.get(cur) {
                        path.push(p.to_string());
                        links.push(link.to_string());
                        cur = p;
                    }
                    path.reverse();
                    links.reverse();
                    return Some((path, links));
                }
                queue.push_back(o);
            }
        }
    }
    None
}

/// Derives the desired config of every host from every slice's spec and plan.
/// Revisions are left at 0 for the caller to set. Hosts without slivers or rules
/// still get their underlay.
pub fn node_configs(
    substrate: &Substrate,
    slices: &[(&SliceSpec, &SlicePlan)],
    types: &dyn TypeCatalog,
) -> BTreeMap<String, NodeConfig> {
    configs_of(substrate, slices, types, |_| true)
}

/// The desired configs of the hosts in `hosts` only, from the slices given
/// (which must include every slice that uses one of them, in name order): a
/// change recomputes the hosts it touches and no others. Equal to those
/// hosts' entries of [`node_configs`] over every slice.
pub fn node_configs_of(
    substrate: &Substrate,
    slices: &[(&SliceSpec, &SlicePlan)],
    types: &dyn TypeCatalog,
    hosts: &BTreeSet<&str>,
) -> BTreeMap<String, NodeConfig> {
    configs_of(substrate, slices, types, |h| hosts.contains(h))
}

fn configs_of(
    substrate: &Substrate,
    slices: &[(&SliceSpec, &SlicePlan)],
    types: &dyn TypeCatalog,
    wanted: impl Fn(&str) -> bool,
) -> BTreeMap<String, NodeConfig> {
    let mut out: BTreeMap<String, NodeConfig> = substrate
        .hosts
        .iter()
        .filter(|h| wanted(&h.name))
        .map(|h| {
            let underlay = substrate
                .links_of(&h.name)
                .map(|l| {
                    let (me, peer) = l.ends_from(&h.name).expect("link of host");
                    UnderlayLink {
                        name: l.name.clone().into(),
                        ifname: me.ifname.clone(),
                        local: me.addr,
                        peer_host: peer.host.clone().into(),
                        peer: peer.addr,
                        local_mac: me.mac,
                        peer_mac: peer.mac,
                        mtu: l.mtu,
                        bandwidth: l.bandwidth,
                        delay: l.delay,
                        loss: l.loss,
                    }
                })
                .collect();
            let cfg = NodeConfig {
                host: h.name.clone().into(),
                substrate: substrate.name.clone(),
                revision: 0,
                epoch: String::new(),
                underlay,
                slivers: Vec::new(),
                ports: Vec::new(),
                labels: Vec::new(),
                slices: BTreeMap::new(),
                taps: Vec::new(),
            };
            (h.name.clone(), cfg)
        })
        .collect();
    let next_hop = |link: &str, to_host: &str| {
        let l = substrate.link(link).expect("known link");
        l.ends.iter().find(|e| e.host == to_host).expect("link end").addr
    };
    for (spec, plan) in slices {
        for np in &plan.nodes {
            let ns = spec.node(&np.name).expect("plan matches spec");
            let interfaces = np
                .interfaces
                .iter()
                .map(|i| {
                    let l = spec.links.iter().find(|l| l.name == i.link).expect("plan matches spec");
                    InterfaceConfig {
                        name: i.name.clone(),
                        port: i.port.into(),
                        mac: i.mac,
                        mtu: l.mtu(),
                        addresses: l.endpoints[usize::from(i.endpoint)].all_addresses(),
                        link: i.link.clone().into(),
                    }
                })
                .collect();
            if let Some(cfg) = out.get_mut(&np.host) {
                cfg.slivers.push(SliverConfig {
                    slice: spec.name.clone().into(),
                    node: np.name.clone().into(),
                    node_type: ns.node_type.clone(),
                    fast_path: types.node_type(&ns.node_type).is_some_and(|t| t.fast_path),
                    params: ns.params.clone(),
                    netns: np.netns.clone(),
                    cpu: np.cpu_milli as f64 / 1000.0,
                    memory: netslice_model::Memory(np.memory),
                    ip_forward: ns.ip_forward,
                    interfaces,
                    routes: ns.routes.clone(),
                });
            }
        }
        for lp in &plan.links {
            let l = spec.links.iter().find(|l| l.name == lp.name).expect("plan matches spec");
            let port_of = |ep: usize| {
                let node = &l.endpoints[ep].node;
                plan.node(node)
                    .and_then(|n| n.interfaces.iter().find(|i| i.link == l.name && usize::from(i.endpoint) == ep))
                    .map(|i| i.port)
                    .expect("plan has the interface")
            };
            let (p0, p1) = (port_of(0), port_of(1));
            let n = lp.path.len();
            let qos = link_qos(l);
            let share = SliceShare {
                weight: spec.qos.as_ref().map(|q| q.weight).unwrap_or(1),
                ceil: spec.qos.as_ref().and_then(|q| q.ceiling).map(|c| c.bps()),
                cpus: spec.qos.as_ref().map(|q| q.cpus.clone()).unwrap_or_default(),
            };
            for h in &lp.path {
                if let Some(c) = out.get_mut(h) {
                    c.slices.insert(spec.name.clone().into(), share.clone());
                }
            }
            let mut push_port = |host: &str, port: u32, direction: Direction, action: Action| {
                let port = port.into();
                if let Some(c) = out.get_mut(host) {
                    c.ports.push(PortRule {
                        port,
                        slice: spec.name.clone().into(),
                        link: l.name.clone().into(),
                        direction,
                        action,
                        qos,
                    });
                }
            };
            if n == 1 {
                push_port(&lp.path[0], p0, Direction::Forward, Action::Deliver { port: p1.into() });
                push_port(&lp.path[0], p1, Direction::Reverse, Action::Deliver { port: p0.into() });
                continue;
            }
            // Plans stored before per-hop types existed carry none: the spec's type.
            let hop_t = |hop: usize| lp.hop_types.get(hop).cloned().unwrap_or_else(|| l.link_type.clone());
            let send = |hop: usize, label: u32, to: &str| Action::Send {
                link_type: hop_t(hop),
                label: label.into(),
                underlay: lp.underlay[hop].clone().into(),
                next_hop: next_hop(&lp.underlay[hop], to),
            };
            push_port(&lp.path[0], p0, Direction::Forward, send(0, lp.forward_labels[0], &lp.path[1]));
            push_port(&lp.path[n - 1], p1, Direction::Reverse, send(n - 2, lp.reverse_labels[n - 2], &lp.path[n - 2]));
            let mut push_label = |host: &str, hop: usize, label: u32, direction: Direction, action: Action| {
                if let Some(c) = out.get_mut(host) {
                    c.labels.push(LabelRule {
                        label: label.into(),
                        link_type: hop_t(hop),
                        slice: spec.name.clone().into(),
                        link: l.name.clone().into(),
                        direction,
                        action,
                        qos,
                        mtu: Some(l.mtu()),
                    });
                }
            };
            // Forward: hop i-1 arrives at path[i] with forward_labels[i-1].
            for i in 1..n {
                let action = if i == n - 1 {
                    Action::Deliver { port: p1.into() }
                } else {
                    send(i, lp.forward_labels[i], &lp.path[i + 1])
                };
                push_label(&lp.path[i], i - 1, lp.forward_labels[i - 1], Direction::Forward, action);
            }
            // Reverse: hop i (path[i+1] -> path[i]) arrives at path[i] with reverse_labels[i].
            for i in (0..n - 1).rev() {
                let action = if i == 0 {
                    Action::Deliver { port: p0.into() }
                } else {
                    send(i - 1, lp.reverse_labels[i - 1], &lp.path[i - 1])
                };
                push_label(&lp.path[i], i, lp.reverse_labels[i], Direction::Reverse, action);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
