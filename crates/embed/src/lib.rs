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
    /// No host has a free sliver slot.
    #[error("{field}: no free sliver slot on {hosts}")]
    NoSliverSlot {
        /// Spec field.
        field: String,
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
}

impl PlanError {
    /// The spec field concerned.
    pub fn field(&self) -> &str {
        match self {
            PlanError::UnknownHost { field, .. }
            | PlanError::NotVnode { field, .. }
            | PlanError::NoSliverSlot { field, .. }
            | PlanError::NoPath { field, .. }
            | PlanError::Mtu { field, .. }
            | PlanError::Bandwidth { field, .. }
            | PlanError::UnknownType { field, .. }
            | PlanError::Exhausted { field, .. } => field,
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
            *self.slivers.entry(n.host.clone()).or_default() += 1;
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
        }
        self.bandwidth.retain(|_, v| *v > 0);
    }

    /// Removes what a plan holds (the exact inverse of [`add`](Self::add)).
    pub fn remove(&mut self, p: &SlicePlan) {
        for n in &p.nodes {
            if let Some(c) = self.slivers.get_mut(&n.host) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.slivers.remove(&n.host);
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
pub fn interface_mac(substrate: &str, slice: &str, node: &str, iface: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [substrate, slice, node, iface] {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let b = h.to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3], b[4], b[5])
}

/// The network namespace name of a sliver.
pub fn sliver_netns(substrate: &str, slice: &str, node: &str) -> String {
    format!("{substrate}.{slice}.{node}")
}

/// Plans a slice against the substrate, given what other slices hold. On success
/// the caller records the plan (e.g. with [`Allocations::add`]).
pub fn plan(
    substrate: &Substrate,
    spec: &SliceSpec,
    held: &Allocations,
    types: &dyn TypeCatalog,
) -> Result<SlicePlan, PlanError> {
    let mut alloc = held.clone();
    // --- nodes -> hosts
    let mut placed: BTreeMap<&str, String> = BTreeMap::new();
    let mut used_here: BTreeSet<String> = BTreeSet::new();
    let free = |alloc: &Allocations, host: &str| -> u32 {
        let cap = substrate.host(host).map(|h| h.slivers).unwrap_or(0);
        cap.saturating_sub(alloc.slivers.get(host).copied().unwrap_or(0))
    };
    for (i, n) in spec.nodes.iter().enumerate() {
        let host = match &n.host {
            Some(h) => {
                let field = format!("nodes[{i}].host");
                let host = substrate
                    .host(h)
                    .ok_or_else(|| PlanError::UnknownHost { field: field.clone(), host: h.clone() })?;
                if host.role != Role::Vnode {
                    return Err(PlanError::NotVnode { field, host: h.clone(), role: host.role.as_str() });
                }
                if free(&alloc, h) == 0 {
                    return Err(PlanError::NoSliverSlot { field, hosts: format!("[{h}] (pinned)") });
                }
                h.clone()
            }
            None => {
                let best = substrate
                    .hosts
                    .iter()
                    .filter(|h| h.role == Role::Vnode && free(&alloc, &h.name) > 0)
                    // Spread: hosts this slice does not use yet first, then most free slots.
                    .min_by_key(|h| (used_here.contains(&h.name), std::cmp::Reverse(free(&alloc, &h.name))))
                    .ok_or_else(|| {
                        let all: Vec<&str> =
                            substrate.hosts.iter().filter(|h| h.role == Role::Vnode).map(|h| h.name.as_str()).collect();
                        PlanError::NoSliverSlot { field: format!("nodes[{i}]"), hosts: format!("[{}]", all.join(", ")) }
                    })?;
                best.name.clone()
            }
        };
        *alloc.slivers.entry(host.clone()).or_default() += 1;
        used_here.insert(host.clone());
        placed.insert(&n.name, host);
    }
    // --- interfaces -> ports
    let ifnames = spec.interface_names();
    let mut nodes: Vec<NodePlan> = spec
        .nodes
        .iter()
        .map(|n| NodePlan {
            name: n.name.clone(),
            host: placed[n.name.as_str()].clone(),
            netns: sliver_netns(&substrate.name, &spec.name, &n.name),
            interfaces: Vec::new(),
        })
        .collect();
    for (li, l) in spec.links.iter().enumerate() {
        for (ei, e) in l.endpoints.iter().enumerate() {
            let np = nodes.iter_mut().find(|n| n.name == e.node).expect("validated endpoint");
            let port = Allocations::take(&mut alloc.ports, &np.host, 1, u32::MAX).ok_or_else(|| {
                PlanError::Exhausted { field: format!("links[{li}]"), host: np.host.clone(), what: "ports" }
            })?;
            let name = ifnames[&(li, ei)].clone();
            np.interfaces.push(InterfacePlan {
                mac: interface_mac(&substrate.name, &spec.name, &e.node, &name),
                name,
                link: l.name.clone(),
                endpoint: ei as u8,
                port,
            });
        }
    }
    // --- links -> paths + labels
    let mut links = Vec::new();
    for (li, l) in spec.links.iter().enumerate() {
        let field = format!("links[{li}]");
        let from = &placed[l.endpoints[0].node.as_str()];
        let to = &placed[l.endpoints[1].node.as_str()];
        let (path, underlay) = shortest_path(substrate, from, to).ok_or_else(|| PlanError::NoPath {
            field: field.clone(),
            from: from.clone(),
            to: to.clone(),
        })?;
        // Link type per hop: the spec's, converted where it cannot cross.
        let mut hop_types = Vec::new();
        for u in &underlay {
            let phys = substrate.link(u).expect("path uses known links");
            let (t, info) = hop_type(types, &l.link_type, phys).ok_or_else(|| PlanError::UnknownType {
                field: format!("{field}.type"),
                link_type: l.link_type.to_string(),
            })?;
            if l.mtu() + INNER_ETHERNET + info.overhead > phys.mtu {
                return Err(PlanError::Mtu {
                    field: format!("{field}.mtu"),
                    mtu: l.mtu(),
                    overhead: INNER_ETHERNET + info.overhead,
                    link_type: t.to_string(),
                    underlay: u.clone(),
                    underlay_mtu: phys.mtu,
                });
            }
            hop_types.push((t, info));
        }
        // Admission: the guarantee must fit every hop, in both directions.
        let asked = l.bandwidth.bps();
        for (i, u) in underlay.iter().enumerate() {
            let phys = substrate.link(u).expect("path uses known links");
            for (from, to) in [(&path[i], &path[i + 1]), (&path[i + 1], &path[i])] {
                let key = (u.clone(), from.clone());
                let used = alloc.bandwidth.get(&key).copied().unwrap_or(0);
                let free = phys.bandwidth.bps().saturating_sub(used);
                if asked > free {
                    return Err(PlanError::Bandwidth {
                        field: format!("{field}.bandwidth"),
                        link: u.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        free: netslice_model::Bandwidth(free),
                        asked: l.bandwidth,
                    });
                }
                *alloc.bandwidth.entry(key).or_default() += asked;
            }
        }
        let mut take = |host: &str, max: u32| {
            Allocations::take(&mut alloc.labels, host, FIRST_LABEL, max).ok_or_else(|| PlanError::Exhausted {
                field: field.clone(),
                host: host.to_string(),
                what: "labels",
            })
        };
        let mut forward_labels = Vec::new();
        let mut reverse_labels = Vec::new();
        for (i, (_, info)) in hop_types.iter().enumerate() {
            forward_labels.push(take(&path[i + 1], info.max_label)?);
            reverse_labels.push(take(&path[i], info.max_label)?);
        }
        links.push(LinkPlan {
            name: l.name.clone(),
            path,
            underlay,
            forward_labels,
            reverse_labels,
            reserved: asked,
            hop_types: hop_types.into_iter().map(|(t, _)| t).collect(),
        });
    }
    Ok(SlicePlan { nodes, links })
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

/// Whether `new` differs from `old` only in isolation parameters (link bandwidth,
/// ceiling, burst, isolation mode; slice sharing; description): a change that
/// keeps placement, paths and labels and can be applied to running slivers.
pub fn qos_only_change(old: &SliceSpec, new: &SliceSpec) -> bool {
    let strip = |s: &SliceSpec| {
        let mut s = s.clone();
        s.description = None;
        s.qos = None;
        for l in &mut s.links {
            l.bandwidth = netslice_model::Bandwidth(0);
            l.ceiling = None;
            l.burst = None;
            l.isolation = netslice_model::Isolation::Shaped;
        }
        s
    };
    strip(old) == strip(new)
}

/// Re-admits a slice whose isolation parameters changed: the same plan with the
/// new reservations, if every hop has room once the old ones are released.
/// `held` must not include `old`.
pub fn replan_bandwidth(
    substrate: &Substrate,
    spec: &SliceSpec,
    old: &SlicePlan,
    held: &Allocations,
) -> Result<SlicePlan, PlanError> {
    let mut alloc = held.clone();
    let mut plan = old.clone();
    for (li, l) in spec.links.iter().enumerate() {
        let Some(lp) = plan.links.iter_mut().find(|p| p.name == l.name) else { continue };
        let asked = l.bandwidth.bps();
        for (i, u) in lp.underlay.iter().enumerate() {
            let phys = substrate.link(u).expect("plan uses known links");
            for (from, to) in [(&lp.path[i], &lp.path[i + 1]), (&lp.path[i + 1], &lp.path[i])] {
                let key = (u.clone(), from.clone());
                let used = alloc.bandwidth.get(&key).copied().unwrap_or(0);
                let free = phys.bandwidth.bps().saturating_sub(used);
                if asked > free {
                    return Err(PlanError::Bandwidth {
                        field: format!("links[{li}].bandwidth"),
                        link: u.clone(),
                        from: from.clone(),
                        to: to.clone(),
                        free: netslice_model::Bandwidth(free),
                        asked: l.bandwidth,
                    });
                }
                *alloc.bandwidth.entry(key).or_default() += asked;
            }
        }
        lp.reserved = asked;
    }
    Ok(plan)
}

/// The isolation parameters every rule of a virtual link carries.
pub fn link_qos(l: &VLinkSpec) -> LinkQos {
    LinkQos { rate: l.bandwidth.bps(), ceil: l.ceiling().bps(), burst: l.burst_bytes(), isolation: l.isolation }
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
    let mut out: BTreeMap<String, NodeConfig> = substrate
        .hosts
        .iter()
        .map(|h| {
            let underlay = substrate
                .links_of(&h.name)
                .map(|l| {
                    let (me, peer) = l.ends_from(&h.name).expect("link of host");
                    UnderlayLink {
                        name: l.name.clone(),
                        ifname: me.ifname.clone(),
                        local: me.addr,
                        peer_host: peer.host.clone(),
                        peer: peer.addr,
                        local_mac: me.mac.clone(),
                        peer_mac: peer.mac.clone(),
                        mtu: l.mtu,
                        bandwidth: l.bandwidth,
                        delay: l.delay,
                        loss: l.loss,
                    }
                })
                .collect();
            let cfg = NodeConfig {
                host: h.name.clone(),
                substrate: substrate.name.clone(),
                revision: 0,
                epoch: String::new(),
                underlay,
                slivers: Vec::new(),
                ports: Vec::new(),
                labels: Vec::new(),
                slices: BTreeMap::new(),
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
                        port: i.port,
                        mac: i.mac.clone(),
                        mtu: l.mtu(),
                        addresses: l.endpoints[usize::from(i.endpoint)].all_addresses(),
                        link: i.link.clone(),
                    }
                })
                .collect();
            if let Some(cfg) = out.get_mut(&np.host) {
                cfg.slivers.push(SliverConfig {
                    slice: spec.name.clone(),
                    node: np.name.clone(),
                    node_type: ns.node_type.clone(),
                    fast_path: types.node_type(&ns.node_type).is_some_and(|t| t.fast_path),
                    params: ns.params.clone(),
                    netns: np.netns.clone(),
                    cpu: ns.cpu,
                    memory: ns.memory,
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
                weight: spec.qos.map(|q| q.weight).unwrap_or(1),
                ceil: spec.qos.and_then(|q| q.ceiling).map(|c| c.bps()),
            };
            for h in &lp.path {
                if let Some(c) = out.get_mut(h) {
                    c.slices.insert(spec.name.clone(), share);
                }
            }
            let mut push_port = |host: &str, port: u32, direction: Direction, action: Action| {
                if let Some(c) = out.get_mut(host) {
                    c.ports.push(PortRule {
                        port,
                        slice: spec.name.clone(),
                        link: l.name.clone(),
                        direction,
                        action,
                        qos,
                    });
                }
            };
            if n == 1 {
                push_port(&lp.path[0], p0, Direction::Forward, Action::Deliver { port: p1 });
                push_port(&lp.path[0], p1, Direction::Reverse, Action::Deliver { port: p0 });
                continue;
            }
            // Plans stored before per-hop types existed carry none: the spec's type.
            let hop_t = |hop: usize| lp.hop_types.get(hop).cloned().unwrap_or_else(|| l.link_type.clone());
            let send = |hop: usize, label: u32, to: &str| Action::Send {
                link_type: hop_t(hop),
                label,
                underlay: lp.underlay[hop].clone(),
                next_hop: next_hop(&lp.underlay[hop], to),
            };
            push_port(&lp.path[0], p0, Direction::Forward, send(0, lp.forward_labels[0], &lp.path[1]));
            push_port(&lp.path[n - 1], p1, Direction::Reverse, send(n - 2, lp.reverse_labels[n - 2], &lp.path[n - 2]));
            let mut push_label = |host: &str, hop: usize, label: u32, direction: Direction, action: Action| {
                if let Some(c) = out.get_mut(host) {
                    c.labels.push(LabelRule {
                        label,
                        link_type: hop_t(hop),
                        slice: spec.name.clone(),
                        link: l.name.clone(),
                        direction,
                        action,
                        qos,
                    });
                }
            };
            // Forward: hop i-1 arrives at path[i] with forward_labels[i-1].
            for i in 1..n {
                let action = if i == n - 1 {
                    Action::Deliver { port: p1 }
                } else {
                    send(i, lp.forward_labels[i], &lp.path[i + 1])
                };
                push_label(&lp.path[i], i - 1, lp.forward_labels[i - 1], Direction::Forward, action);
            }
            // Reverse: hop i (path[i+1] -> path[i]) arrives at path[i] with reverse_labels[i].
            for i in (0..n - 1).rev() {
                let action = if i == 0 {
                    Action::Deliver { port: p0 }
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
