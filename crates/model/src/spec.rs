//! The slice spec: what a researcher asks for.
//!
//! ```yaml
//! name: red
//! nodes:
//!   - { name: a, type: slowpath, host: h1, cpu: 0.5, memory: 128Mi }
//!   - { name: b }
//! links:
//!   - name: a-b
//!     type: gre              # or vxlan
//!     bandwidth: 100Mbit
//!     endpoints:
//!       - { node: a, address: 10.0.0.1/24 }
//!       - { node: b, address: 10.0.0.2/24 }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::document::parse_document;
use crate::error::{Errors, SpecError, check_name};
use crate::units::{Bandwidth, Bytes, Memory};

/// Longest slice, node and link name.
pub const MAX_NAME: usize = crate::names::MAX_SLICE_NAME;
/// Default MTU of a virtual link (as seen by the slivers).
pub const DEFAULT_VLINK_MTU: u32 = 1500;
/// Most nodes in one slice.
pub const MAX_NODES: usize = 256;
/// Most links in one slice.
pub const MAX_LINKS: usize = 1024;

/// A virtual link type, by the name it is registered under (`gre`, `vxlan`,
/// `vlan`, `pbb`, or a plugin's). What a name means, and whether this deployment
/// offers it, is the link-type registry's business (`netslice types`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct LinkType(pub String);

impl LinkType {
    /// A type by name.
    pub fn new(name: &str) -> LinkType {
        LinkType(name.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LinkType {
    fn default() -> Self {
        LinkType::new("gre")
    }
}

impl std::fmt::Display for LinkType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn default_node_type() -> String {
    "slowpath".to_string()
}
/// CPU of a sliver that asks for none.
pub const DEFAULT_CPU: f64 = 0.5;
/// Memory of a sliver that asks for none.
pub const DEFAULT_MEMORY: Memory = Memory::mib(256);

pub use crate::types::RouteSpec;

/// A virtual node as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Name, unique in the slice.
    pub name: String,
    /// Node type (default `slowpath`).
    #[serde(rename = "type", default = "default_node_type")]
    pub node_type: String,
    /// Pin to this substrate host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// CPU cores of a sliver (default 0.5), enforced with a CFS quota. Not
    /// for fast-path nodes: they run in the agents' forwarding threads and
    /// are charged for their forwarding work (see [`NodeSpec::cpu`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory of a sliver (default 256Mi), enforced with a memory cgroup.
    /// Not for fast-path nodes (their type says what their tables take).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub memory: Option<Memory>,
    /// Static routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// Let the sliver forward IP packets between its interfaces.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ip_forward: bool,
    /// Parameters of the node type (see `netslice types`), checked by the type itself.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

/// One end of a virtual link as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Node name.
    pub node: String,
    /// Interface name inside the sliver (default `eth0`, `eth1`, ... in link order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// One address with prefix length, e.g. `10.0.0.1/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub address: Option<IpNet>,
    /// Several addresses (instead of `address`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpNet>,
}

impl NodeSpec {
    /// The sliver's CPU limit with its default (0.5). What a node reserves
    /// is the planner's business: a fast-path node's reservation is derived
    /// from its links (`netslice-embed`).
    pub fn cpu(&self) -> f64 {
        self.cpu.unwrap_or(DEFAULT_CPU)
    }

    /// The sliver's memory limit with its default (256Mi).
    pub fn memory(&self) -> Memory {
        self.memory.unwrap_or(DEFAULT_MEMORY)
    }
}

impl EndpointSpec {
    /// Every address of this endpoint.
    pub fn all_addresses(&self) -> Vec<IpNet> {
        self.address.iter().copied().chain(self.addresses.iter().copied()).collect()
    }
}

/// How a virtual link is kept from disturbing others (and from being disturbed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Its own queue at every egress port, scheduled against its guarantee and
    /// ceiling (hierarchical DRR).
    #[default]
    Shaped,
    /// A two-rate policer where the link enters the substrate (RFC 2698: CIR =
    /// bandwidth, PIR = ceiling); no per-link queues. The cheap mode for many slices.
    Policed,
}

impl Isolation {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Shaped => "shaped",
            Isolation::Policed => "policed",
        }
    }
}

/// Slice-wide sharing parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliceQos {
    /// Share of spare capacity against other slices on a port (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Most the slice may use on any port (default: the sum of its links' ceilings there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub ceiling: Option<Bandwidth>,
    /// CPUs dedicated to the slice's packets on every host it uses (FLARE-style
    /// core isolation): the agents forward its frames on worker threads pinned
    /// to these CPUs and keep every other forwarding thread off them. Two
    /// slices on one host cannot claim the same CPU. Default: none (the
    /// slice's packets share the agents' threads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
}

/// Highest CPU number a slice may claim.
pub const MAX_CPU: u32 = 1023;

impl Default for SliceQos {
    fn default() -> Self {
        SliceQos { weight: 1, ceiling: None, cpus: Vec::new() }
    }
}

fn default_weight() -> u32 {
    1
}

/// A virtual link as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VLinkSpec {
    /// Name, unique in the slice.
    pub name: String,
    /// Link type (default `gre`).
    #[serde(rename = "type", default)]
    pub link_type: LinkType,
    /// Guaranteed bandwidth (of the slice's Ethernet frames), reserved on every
    /// physical link of the path.
    #[schema(value_type = String)]
    pub bandwidth: Bandwidth,
    /// Most the link may use when capacity is spare (default: its bandwidth, i.e.
    /// no borrowing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub ceiling: Option<Bandwidth>,
    /// Burst allowance in bytes, e.g. `64Ki` or `20000` (default: 5 ms at
    /// the ceiling, at least 2 frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub burst: Option<Bytes>,
    /// `shaped` (default) or `policed`.
    #[serde(default, skip_serializing_if = "is_default_isolation")]
    pub isolation: Isolation,
    /// MTU seen by the slivers (default 1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Size of the frames the guaranteed rate is reserved at, bytes (an
    /// Ethernet frame without FCS, 60 up to MTU + 14): forwarding costs CPU
    /// per frame, so 100 Mbit/s of 200-byte frames takes seven times the
    /// forwarding work of 1500-byte ones. Default 512, or the largest frame
    /// when the MTU is smaller. A link that sends smaller frames than it
    /// declared gets its guarantee in frames, not in bits, when CPU runs
    /// short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_size: Option<u32>,
    /// The two ends.
    pub endpoints: Vec<EndpointSpec>,
}

fn is_default_isolation(i: &Isolation) -> bool {
    *i == Isolation::Shaped
}

impl VLinkSpec {
    /// The MTU with its default.
    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(DEFAULT_VLINK_MTU)
    }

    /// The frame size with its default.
    pub fn frame_size(&self) -> u32 {
        self.frame_size.unwrap_or(crate::capacity::DEFAULT_FRAME_SIZE.min(self.mtu() + 14))
    }

    /// The ceiling with its default (the bandwidth).
    pub fn ceiling(&self) -> Bandwidth {
        self.ceiling.unwrap_or(self.bandwidth)
    }

    /// The burst in bytes with its default: for a shaped link 5 ms at the
    /// ceiling, at least two full frames; for a policed link 50 ms at the ceiling,
    /// at least 16 full frames (a policer has no queue to absorb a sender's
    /// bursts, so its bucket must).
    pub fn burst_bytes(&self) -> u64 {
        let frame = u64::from(self.mtu()) + 14;
        let ceil = self.ceiling().bps() / 8;
        self.burst.map(|b| b.bytes()).unwrap_or_else(|| match self.isolation {
            Isolation::Shaped => (ceil / 200).max(2 * frame),
            Isolation::Policed => (ceil / 20).max(16 * frame),
        })
    }
}

/// A slice spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SliceSpec {
    /// Slice name, unique in the substrate.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Virtual nodes.
    pub nodes: Vec<NodeSpec>,
    /// Virtual links.
    #[serde(default)]
    pub links: Vec<VLinkSpec>,
    /// Slice-wide sharing parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<SliceQos>,
    /// Allow several virtual nodes of this slice on one host (default: each on its own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_hosts: bool,
    /// How long the slice is wanted (default and maximum set by the operator);
    /// `netslice slice renew` extends it. Changing it restarts the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub lease: Option<crate::units::Micros>,
}

impl SliceSpec {
    /// Parses and validates a YAML or JSON document.
    pub fn from_text(text: &str) -> Result<SliceSpec, SpecError> {
        let spec: SliceSpec = parse_document(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The interface name of every endpoint: `(link index, endpoint index) -> name`,
    /// defaults filled in (`eth0`, `eth1`, ... per node in link order, skipping names
    /// given explicitly).
    pub fn interface_names(&self) -> BTreeMap<(usize, usize), String> {
        let mut taken: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for l in &self.links {
            for e in &l.endpoints {
                if let Some(i) = &e.interface {
                    taken.entry(&e.node).or_default().insert(i.clone());
                }
            }
        }
        let mut next: BTreeMap<&str, usize> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for (li, l) in self.links.iter().enumerate() {
            for (ei, e) in l.endpoints.iter().enumerate() {
                let name = match &e.interface {
                    Some(i) => i.clone(),
                    None => {
                        let t = taken.entry(&e.node).or_default();
                        let n = next.entry(&e.node).or_default();
                        loop {
                            let cand = format!("eth{n}");
                            *n += 1;
                            if t.insert(cand.clone()) {
                                break cand;
                            }
                        }
                    }
                };
                out.insert((li, ei), name);
            }
        }
        out
    }

    /// The interfaces of node `node` as its type sees them.
    pub fn interface_decls(&self, node: &str) -> Vec<crate::types::InterfaceDecl> {
        self.interface_decls_with(&self.interface_names(), node)
    }

    fn interface_decls_with(
        &self,
        names: &BTreeMap<(usize, usize), String>,
        node: &str,
    ) -> Vec<crate::types::InterfaceDecl> {
        self.links
            .iter()
            .enumerate()
            .flat_map(|(li, l)| l.endpoints.iter().enumerate().map(move |(ei, e)| (li, ei, l, e)))
            .filter(|(_, _, _, e)| e.node == node)
            .map(|(li, ei, l, e)| crate::types::InterfaceDecl {
                name: names.get(&(li, ei)).cloned().unwrap_or_default(),
                link: l.name.clone(),
                addresses: e.all_addresses(),
                mtu: l.mtu(),
            })
            .collect()
    }

    /// Checks what a deployment's types say: every node and link type is offered,
    /// and every node's parameters are valid for its type (field paths like
    /// `nodes[2].params.max_entries`; the type names fields relative to the node).
    pub fn validate_types(&self, types: &dyn crate::types::TypeCatalog) -> Result<(), SpecError> {
        let mut errs = Errors::default();
        let names = self.interface_names();
        for (i, n) in self.nodes.iter().enumerate() {
            match types.node_type(&n.node_type) {
                None => errs.push(
                    format!("nodes[{i}].type"),
                    format!(
                        "unknown node type {:?} (this deployment offers: {})",
                        n.node_type,
                        types.node_type_names().join(", ")
                    ),
                ),
                Some(info) => {
                    if info.fast_path {
                        for (field, given) in [("cpu", n.cpu.is_some()), ("memory", n.memory.is_some())] {
                            if given {
                                errs.push(
                                    format!("nodes[{i}].{field}"),
                                    format!(
                                        "{} is a fast-path node type: it runs in the agents' forwarding threads, not as a sliver, and is charged for its forwarding work and tables; remove {field}",
                                        n.node_type
                                    ),
                                );
                            }
                        }
                    }
                    let interfaces = self.interface_decls_with(&names, &n.name);
                    let decl = crate::types::NodeDecl { params: &n.params, interfaces: &interfaces, routes: &n.routes };
                    // The type names fields relative to the node (`params.max_entries`).
                    for e in types.check_node(&n.node_type, &decl) {
                        let f =
                            if e.field.is_empty() { format!("nodes[{i}]") } else { format!("nodes[{i}].{}", e.field) };
                        errs.push(f, e.message);
                    }
                }
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            if types.link_type(l.link_type.as_str()).is_none() {
                errs.push(
                    format!("links[{i}].type"),
                    format!(
                        "unknown link type {:?} (this deployment offers: {})",
                        l.link_type.as_str(),
                        types.link_type_names().join(", ")
                    ),
                );
            }
        }
        errs.finish()
    }

    /// Checks everything that does not need the substrate; every problem is reported
    /// with its field.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errs = Errors::default();
        check_name(&mut errs, "name", &self.name, MAX_NAME);
        if self.nodes.is_empty() {
            errs.push("nodes", "a slice needs at least one node");
        }
        if self.nodes.len() > MAX_NODES {
            errs.push("nodes", format!("{} nodes is more than {MAX_NODES}", self.nodes.len()));
        }
        if self.links.len() > MAX_LINKS {
            errs.push("links", format!("{} links is more than {MAX_LINKS}", self.links.len()));
        }
        if let Some(d) = &self.description
            && d.len() > 1024
        {
            errs.push("description", "longer than 1024 characters");
        }
        if let Some(q) = &self.qos {
            if !(1..=1000).contains(&q.weight) {
                errs.push("qos.weight", format!("{} is outside 1..1000", q.weight));
            }
            if q.ceiling.is_some_and(|c| c.bps() == 0) {
                errs.push("qos.ceiling", "ceiling must be greater than zero");
            }
            let mut seen = BTreeSet::new();
            for (i, &c) in q.cpus.iter().enumerate() {
                if c > MAX_CPU {
                    errs.push(format!("qos.cpus[{i}]"), format!("CPU {c} is above {MAX_CPU}"));
                } else if !seen.insert(c) {
                    errs.push(format!("qos.cpus[{i}]"), format!("CPU {c} is listed twice"));
                }
            }
        }
        let mut nodes = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let f = format!("nodes[{i}]");
            check_name(&mut errs, &format!("{f}.name"), &n.name, MAX_NAME);
            if !nodes.insert(n.name.as_str()) {
                errs.push(format!("{f}.name"), format!("duplicate node name {:?}", n.name));
            }
            check_name(&mut errs, &format!("{f}.type"), &n.node_type, 32);
            if !(n.params.is_null() || n.params.is_object()) {
                errs.push(format!("{f}.params"), "params must be a mapping of parameter names to values");
            }
            if let Some(cpu) = n.cpu
                && !(cpu.is_finite() && (0.01..=256.0).contains(&cpu))
            {
                errs.push(format!("{f}.cpu"), format!("{cpu} is not a CPU share between 0.01 and 256"));
            }
            if let Some(m) = n.memory
                && (m.bytes() < (4 << 20) || m.bytes() > (1 << 40))
            {
                errs.push(format!("{f}.memory"), format!("{m} is outside 4Mi..1Ti"));
            }
            if n.routes.len() > 256 {
                errs.push(format!("{f}.routes"), "more than 256 routes");
            }
        }
        let mut links = BTreeSet::new();
        for (i, l) in self.links.iter().enumerate() {
            let f = format!("links[{i}]");
            check_name(&mut errs, &format!("{f}.name"), &l.name, MAX_NAME);
            if !links.insert(l.name.as_str()) {
                errs.push(format!("{f}.name"), format!("duplicate link name {:?}", l.name));
            }
            check_name(&mut errs, &format!("{f}.type"), l.link_type.as_str(), 32);
            if l.bandwidth.bps() == 0 {
                errs.push(format!("{f}.bandwidth"), "bandwidth must be greater than zero");
            }
            if let Some(c) = l.ceiling
                && c < l.bandwidth
            {
                errs.push(format!("{f}.ceiling"), format!("ceiling {c} is below the bandwidth {}", l.bandwidth));
            }
            if let Some(b) = l.burst {
                let frame = u64::from(l.mtu()) + 14;
                if b.bytes() < frame || b.bytes() > (1 << 30) {
                    errs.push(format!("{f}.burst"), format!("{b} is outside one frame ({frame}B) .. 1Gi"));
                }
            }
            if let Some(m) = l.mtu
                && !(576..=9000).contains(&m)
            {
                errs.push(format!("{f}.mtu"), format!("{m} is outside 576..9000"));
            }
            if let Some(s) = l.frame_size {
                let max = l.mtu() + 14;
                if !(crate::capacity::MIN_FRAME_SIZE..=max).contains(&s) {
                    errs.push(
                        format!("{f}.frame_size"),
                        format!(
                            "{s} is outside {}..{max} (an Ethernet frame of this link)",
                            crate::capacity::MIN_FRAME_SIZE
                        ),
                    );
                }
            }
            if l.endpoints.len() != 2 {
                errs.push(
                    format!("{f}.endpoints"),
                    format!("a virtual link joins exactly 2 endpoints, got {}", l.endpoints.len()),
                );
                continue;
            }
            for (j, e) in l.endpoints.iter().enumerate() {
                let ef = format!("{f}.endpoints[{j}]");
                if !nodes.contains(e.node.as_str()) {
                    let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                    errs.push(
                        format!("{ef}.node"),
                        format!("no node named {:?} (nodes: {})", e.node, known.join(", ")),
                    );
                }
                if let Some(i) = &e.interface {
                    let ok = !i.is_empty()
                        && i.len() <= 15
                        && i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                        && i != "lo";
                    if !ok {
                        errs.push(
                            format!("{ef}.interface"),
                            format!("{i:?} is not a usable interface name (1-15 of [A-Za-z0-9._-], not lo)"),
                        );
                    }
                }
                if e.address.is_some() && !e.addresses.is_empty() {
                    errs.push(format!("{ef}.addresses"), "give either address or addresses, not both");
                }
                for a in e.all_addresses() {
                    if a.addr().is_unspecified() || a.addr().is_multicast() || a.addr().is_loopback() {
                        errs.push(format!("{ef}.address"), format!("{a} cannot be an interface address"));
                    }
                }
            }
            if l.endpoints[0].node == l.endpoints[1].node {
                errs.push(format!("{f}.endpoints"), format!("both ends are node {:?}", l.endpoints[0].node));
            }
        }
        // Interface names must be unique per node; routes must go via a connected subnet.
        let names = self.interface_names();
        let mut per_node: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
        let mut subnets: BTreeMap<&str, Vec<IpNet>> = BTreeMap::new();
        for ((li, ei), name) in &names {
            let l = &self.links[*li];
            let e = &l.endpoints[*ei];
            let here = format!("links[{li}].endpoints[{ei}].interface");
            if let Some(prev) = per_node.entry(&e.node).or_default().insert(name, here.clone()) {
                errs.push(here, format!("node {:?} already has interface {name:?} ({prev})", e.node));
            }
            subnets.entry(&e.node).or_default().extend(e.all_addresses());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for (r, route) in n.routes.iter().enumerate() {
                let nets = subnets.get(n.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                if !nets.iter().any(|net| net.contains(&route.via)) {
                    errs.push(
                        format!("nodes[{i}].routes[{r}].via"),
                        format!("{} is not on any subnet of node {:?}", route.via, n.name),
                    );
                }
            }
        }
        errs.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: &str = r#"
name: red
nodes:
  - { name: a, host: h1 }
  - { name: b, cpu: 1, memory: 128Mi }
  - { name: c, ip_forward: true, routes: [ { to: 10.9.0.0/16, via: 10.0.1.1 } ] }
links:
  - name: ab
    bandwidth: 100Mbit
    endpoints:
      - { node: a, address: 10.0.0.1/24 }
      - { node: b, address: 10.0.0.2/24 }
  - name: bc
    type: vxlan
    bandwidth: 50Mbit
    endpoints:
      - { node: b, interface: eth0x }
      - { node: c, addresses: [10.0.1.2/24, "fd00::2/64"] }
"#;

    #[test]
    fn parses_with_defaults() {
        let s = SliceSpec::from_text(RED).unwrap();
        assert_eq!(s.nodes[0].node_type, "slowpath");
        assert_eq!(s.nodes[0].cpu(), 0.5);
        assert_eq!(s.nodes[1].memory(), Memory::mib(128));
        assert_eq!(s.links[0].link_type, LinkType::new("gre"));
        assert_eq!(s.links[1].link_type, LinkType::new("vxlan"));
        assert_eq!(s.links[0].mtu(), 1500);
        let names = s.interface_names();
        assert_eq!(names[&(0, 0)], "eth0");
        assert_eq!(names[&(0, 1)], "eth0");
        assert_eq!(names[&(1, 0)], "eth0x");
        assert_eq!(names[&(1, 1)], "eth0");
        // JSON is accepted too and round-trips.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(SliceSpec::from_text(&json).unwrap(), s);
    }

    fn fields(text: &str) -> Vec<String> {
        SliceSpec::from_text(text).unwrap_err().errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            fields(&RED.replace("{ node: b, address: 10.0.0.2/24 }", "{ node: x }")),
            ["links[0].endpoints[1].node"]
        );
        assert_eq!(fields(&RED.replace("name: bc", "name: ab")), ["links[1].name"]);
        assert_eq!(fields(&RED.replace("{ name: b, cpu: 1", "{ name: a, cpu: 1")).first().unwrap(), "nodes[1].name");
        assert_eq!(fields(&RED.replace("bandwidth: 50Mbit", "bandwidth: 0")), ["links[1].bandwidth"]);
        assert_eq!(fields(&RED.replace("cpu: 1,", "cpu: -2,")), ["nodes[1].cpu"]);
        assert_eq!(fields(&RED.replace("via: 10.0.1.1", "via: 10.7.1.1")), ["nodes[2].routes[0].via"]);
        assert_eq!(
            fields(
                &RED.replace(
                    "{ node: b, address: 10.0.0.2/24 }",
                    "{ node: b, interface: eth0x, address: 10.0.0.2/24 }"
                )
            ),
            ["links[1].endpoints[0].interface"]
        );
        assert_eq!(fields(&RED.replace("type: vxlan", "type: Bad_Type")), ["links[1].type"]);
        assert_eq!(fields(&RED.replace("{ name: a, host: h1 }", "{ name: a, hots: h1 }")), ["nodes[0]"]);
        assert_eq!(
            fields(&RED.replace("address: 10.0.0.1/24", "address: 10.0.0.300/24")),
            ["links[0].endpoints[0].address"]
        );
        assert_eq!(fields("name: red\nnodes: []\n"), ["nodes"]);
    }

    #[test]
    fn durations_and_byte_counts_read_as_documented() {
        let s = SliceSpec::from_text(&RED.replace("name: red\n", "name: red\nlease: 7d\n")).unwrap();
        assert_eq!(s.lease.unwrap().secs(), 7 * 86_400);
        let s = SliceSpec::from_text(&RED.replace("bandwidth: 50Mbit", "bandwidth: 50Mbit\n    burst: 20000")).unwrap();
        assert_eq!(s.links[1].burst_bytes(), 20_000, "a bare burst is bytes");
        let e = SliceSpec::from_text(
            &RED.replace("bandwidth: 50Mbit", "bandwidth: 50Mbit\n    burst: 18446744073709551615"),
        )
        .unwrap_err();
        assert_eq!(e.errors[0].field, "links[1].burst");
        assert!(e.errors[0].message.contains("outside one frame"), "{e}");
        let e = SliceSpec::from_text(&RED.replace("name: red\n", "name: red\nlease: 7\n")).unwrap_err();
        assert_eq!(e.errors[0].field, "lease");
        assert!(e.errors[0].message.contains("needs a unit"), "{e}");
    }

    #[test]
    fn a_json_spec_is_read_as_json() {
        let s = SliceSpec::from_text(&serde_json::to_string(&SliceSpec::from_text(RED).unwrap()).unwrap().replacen(
            "\"name\":\"red\"",
            "\"name\":\"red\",\"description\":\"\\ud83d\\ude00\"",
            1,
        ))
        .unwrap();
        assert_eq!(s.description.as_deref(), Some("\u{1F600}"));
    }

    #[test]
    fn parse_errors_carry_line() {
        let e = SliceSpec::from_text(&RED.replace("{ name: a, host: h1 }", "{ name: a, hots: h1 }")).unwrap_err();
        assert_eq!(e.errors[0].line, Some(4));
        let e = SliceSpec::from_text("name: [").unwrap_err();
        assert!(e.errors[0].line.is_some());
    }
}
