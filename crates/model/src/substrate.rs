//! The substrate description: the physical hosts and links netslice runs on.
//!
//! ```yaml
//! name: example
//! hosts:
//!   - { name: h1, role: vnode, cpu: 4, memory: 4Gi, slivers: 8 }
//!   - { name: t1, role: transport }
//! links:
//!   - { endpoints: [h1, t1], bandwidth: 10Gbit, delay: 1ms }
//! ```
//!
//! [`SubstrateSpec`] is the document as written; [`Substrate`] is the validated,
//! resolved form with interface names and underlay addresses filled in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netslice_wire::MacAddr;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::document::parse_document;
use crate::error::{Errors, SpecError, check_name};
use crate::units::{Bandwidth, Memory, Micros, Percent};

/// Longest host or substrate name (they become parts of namespace names).
pub const MAX_NAME: usize = crate::names::MAX_HOST_NAME;
/// Default pool for link subnets.
pub const DEFAULT_UNDERLAY: &str = "172.31.0.0/16";
/// Largest MTU of a physical link (jumbo frames).
pub const MAX_LINK_MTU: u32 = 9216;
/// Default MTU of a physical link: jumbo frames, so that a 1500-byte sliver MTU fits
/// inside any encapsulation.
pub const DEFAULT_LINK_MTU: u32 = 9000;

/// What a substrate host does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs slivers and forwards virtual links (the seed's VNode).
    Vnode,
    /// Forwards virtual links only (a transit switch of the transport network).
    Transport,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Vnode => "vnode",
            Role::Transport => "transport",
        }
    }
}

fn default_cpu() -> f64 {
    2.0
}
fn default_memory() -> Memory {
    Memory::mib(2048)
}
fn default_slivers() -> u32 {
    8
}
fn default_ports() -> u32 {
    256
}

/// A host as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// CPU cores offered to slivers (default 2).
    #[serde(default = "default_cpu")]
    pub cpu: f64,
    /// Memory offered to slivers (default 2Gi).
    #[serde(default = "default_memory")]
    #[schema(value_type = String)]
    pub memory: Memory,
    /// Sliver slots (default 8; 0 for transport hosts).
    #[serde(default = "default_slivers")]
    pub slivers: u32,
    /// Sliver interfaces (virtual link ends) the host can serve (default 256).
    #[serde(default = "default_ports")]
    pub ports: u32,
    /// The machine this host runs on, when it shares one with other hosts
    /// (one of `machines`): their slivers' CPU and forwarding work then come
    /// out of that machine's CPUs together. The local testbed puts all its
    /// hosts on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// A machine several hosts share (as written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// Name, referred to by hosts' `machine`.
    pub name: String,
    /// CPU cores its hosts may use together, for slivers and forwarding
    /// (leave some for the system: the local testbed says 90% of its CPUs).
    pub cpu: f64,
}

/// What a physical link can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// An IP link: every link type works on it.
    #[default]
    Ip,
    /// Ethernet-only transport: only Ethernet-layer link types (`vlan`, `pbb`)
    /// cross it; a virtual link of an IP type is converted on this hop.
    Ethernet,
}

/// A physical link as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhysLinkSpec {
    /// Link name (default `a-b` from the endpoints).
    #[serde(default)]
    pub name: Option<String>,
    /// The two hosts it joins.
    pub endpoints: Vec<String>,
    /// Capacity, enforced on the local testbed by a token-bucket qdisc.
    #[schema(value_type = String)]
    pub bandwidth: Bandwidth,
    /// One-way delay added by the sending agent.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub delay: Option<Micros>,
    /// Loss probability applied by the sending agent.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub loss: Option<Percent>,
    /// MTU (default 9000).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Subnet for the two endpoint addresses (default: next /30 of the underlay).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub subnet: Option<Ipv4Net>,
    /// `ip` (default) or `ethernet` (Ethernet-only transport).
    #[serde(default)]
    pub network: Network,
    /// Link type for hops of IP-layer virtual links across an `ethernet` link
    /// (default `vlan`).
    #[serde(default)]
    pub l2: Option<String>,
}

/// A substrate description as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubstrateSpec {
    /// Substrate (and local testbed) name.
    pub name: String,
    /// Pool for automatically numbered link subnets (default 172.31.0.0/16).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub underlay: Option<Ipv4Net>,
    /// Hosts.
    pub hosts: Vec<HostSpec>,
    /// Physical links.
    #[serde(default)]
    pub links: Vec<PhysLinkSpec>,
    /// Machines shared by several hosts (default: none, every host is a
    /// machine of its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachineSpec>,
}

/// A validated host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Host {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// CPU cores for slivers.
    pub cpu: f64,
    /// Memory for slivers.
    #[schema(value_type = String)]
    pub memory: Memory,
    /// Sliver slots.
    pub slivers: u32,
    /// Sliver interfaces.
    pub ports: u32,
    /// The machine it shares with other hosts, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// A machine several hosts share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Machine {
    /// Name.
    pub name: String,
    /// CPU cores its hosts may use together.
    pub cpu: f64,
}

/// One end of a validated link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkEnd {
    /// Host.
    pub host: String,
    /// Interface name in the host.
    pub ifname: String,
    /// Underlay address of this end.
    #[schema(value_type = String)]
    pub addr: Ipv4Addr,
    /// MAC address of this end (locally administered, derived from the names).
    #[schema(value_type = String, example = "06:1f:2e:3d:4c:5b")]
    pub mac: MacAddr,
}

/// A validated link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Link {
    /// Name.
    pub name: String,
    /// Its two ends.
    pub ends: [LinkEnd; 2],
    /// Prefix length of the link subnet.
    pub prefix_len: u8,
    /// Capacity.
    #[schema(value_type = String)]
    pub bandwidth: Bandwidth,
    /// Added one-way delay.
    #[schema(value_type = Option<String>)]
    pub delay: Option<Micros>,
    /// Added loss.
    #[schema(value_type = Option<String>)]
    pub loss: Option<Percent>,
    /// MTU.
    pub mtu: u32,
    /// What it can carry.
    pub network: Network,
    /// Link type for converted hops on an Ethernet-only link.
    pub l2: String,
}

impl Link {
    /// The end at `host`, and the other end.
    pub fn ends_from(&self, host: &str) -> Option<(&LinkEnd, &LinkEnd)> {
        if self.ends[0].host == host {
            Some((&self.ends[0], &self.ends[1]))
        } else if self.ends[1].host == host {
            Some((&self.ends[1], &self.ends[0]))
        } else {
            None
        }
    }
}

/// A validated substrate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Substrate {
    /// Name.
    pub name: String,
    /// Hosts, in document order.
    pub hosts: Vec<Host>,
    /// Links, in document order.
    pub links: Vec<Link>,
    /// Machines shared by several hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<Machine>,
}

impl Substrate {
    /// Parses and validates a YAML or JSON document.
    pub fn from_text(text: &str) -> Result<Substrate, SpecError> {
        let spec: SubstrateSpec = parse_document(text)?;
        spec.validate()
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// A link by name.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Links touching `host`.
    pub fn links_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Link> + 'a {
        self.links.iter().filter(move |l| l.ends_from(host).is_some())
    }
}

impl SubstrateSpec {
    /// Validates and resolves the description; every problem is reported with its field.
    pub fn validate(&self) -> Result<Substrate, SpecError> {
        let mut errs = Errors::default();
        check_name(&mut errs, "name", &self.name, MAX_NAME);
        if self.hosts.is_empty() {
            errs.push("hosts", "a substrate needs at least one host");
        }
        let mut machines = BTreeSet::new();
        for (i, m) in self.machines.iter().enumerate() {
            let f = format!("machines[{i}]");
            check_name(&mut errs, &format!("{f}.name"), &m.name, MAX_NAME);
            if !machines.insert(m.name.as_str()) {
                errs.push(format!("{f}.name"), format!("duplicate machine name {:?}", m.name));
            }
            if !(m.cpu.is_finite() && m.cpu > 0.0 && m.cpu <= 4096.0) {
                errs.push(format!("{f}.cpu"), format!("{} is not a CPU count above 0 and at most 4096", m.cpu));
            }
        }
        let mut names = BTreeSet::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if let Some(m) = &h.machine
                && !machines.contains(m.as_str())
            {
                errs.push(format!("hosts[{i}].machine"), format!("no machine named {m:?} in machines"));
            }
            let f = format!("hosts[{i}]");
            check_name(&mut errs, &format!("{f}.name"), &h.name, MAX_NAME);
            if !names.insert(h.name.as_str()) {
                errs.push(format!("{f}.name"), format!("duplicate host name {:?}", h.name));
            }
            if !(h.cpu.is_finite() && (0.0..=4096.0).contains(&h.cpu)) {
                errs.push(format!("{f}.cpu"), format!("{} is not a CPU count between 0 and 4096", h.cpu));
            }
            if h.memory.bytes() > (1u64 << 50) {
                errs.push(format!("{f}.memory"), format!("{} is more than 1Pi", h.memory));
            }
            if h.slivers > 4096 {
                errs.push(format!("{f}.slivers"), format!("{} sliver slots is more than 4096", h.slivers));
            }
        }
        let underlay = self.underlay.unwrap_or_else(|| DEFAULT_UNDERLAY.parse().expect("valid default"));
        if underlay.prefix_len() > 30 {
            errs.push("underlay", format!("{underlay} is too small to number links (need /30 or larger)"));
        }
        let mut auto = underlay.subnets(30).ok().into_iter().flatten();
        let mut used_subnets: Vec<(usize, Ipv4Net)> = Vec::new();
        let mut link_names = BTreeSet::new();
        let mut links = Vec::new();
        // Interface names per host, to keep them unique.
        let mut ifnames: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let explicit: Vec<Ipv4Net> = self.links.iter().filter_map(|l| l.subnet).collect();
        for (i, l) in self.links.iter().enumerate() {
            let f = format!("links[{i}]");
            if l.endpoints.len() != 2 {
                errs.push(format!("{f}.endpoints"), format!("a link joins exactly 2 hosts, got {}", l.endpoints.len()));
                continue;
            }
            let mut ok = true;
            for (j, e) in l.endpoints.iter().enumerate() {
                if !names.contains(e.as_str()) {
                    errs.push(format!("{f}.endpoints[{j}]"), format!("no host named {e:?}"));
                    ok = false;
                }
            }
            if l.endpoints[0] == l.endpoints[1] {
                errs.push(
                    format!("{f}.endpoints"),
                    format!("both ends are {:?}; a link joins two different hosts", l.endpoints[0]),
                );
                ok = false;
            }
            let name = l.name.clone().unwrap_or_else(|| format!("{}-{}", l.endpoints[0], l.endpoints[1]));
            check_name(&mut errs, &format!("{f}.name"), &name, 2 * MAX_NAME + 1);
            if !link_names.insert(name.clone()) {
                errs.push(format!("{f}.name"), format!("duplicate link name {name:?} (give parallel links a name)"));
            }
            if l.bandwidth.bps() == 0 {
                errs.push(format!("{f}.bandwidth"), "bandwidth must be greater than zero");
            }
            if l.bandwidth.bps() > 1_000_000_000_000 {
                errs.push(format!("{f}.bandwidth"), format!("{} is more than 1Tbit", l.bandwidth));
            }
            if let Some(d) = l.delay
                && d.0 > 10_000_000
            {
                errs.push(format!("{f}.delay"), format!("{d} is more than 10s"));
            }
            let mtu = l.mtu.unwrap_or(DEFAULT_LINK_MTU);
            if !(1280..=MAX_LINK_MTU).contains(&mtu) {
                errs.push(format!("{f}.mtu"), format!("{mtu} is outside 1280..{MAX_LINK_MTU}"));
            }
            let subnet = match l.subnet {
                Some(s) => {
                    if s.prefix_len() > 30 {
                        errs.push(format!("{f}.subnet"), format!("{s} has no room for two hosts (need /30 or larger)"));
                        ok = false;
                    }
                    s
                }
                None => match auto.by_ref().find(|c| !explicit.iter().any(|e| e.contains(c) || c.contains(e))) {
                    Some(s) => s,
                    None => {
                        errs.push(format!("{f}.subnet"), format!("the underlay {underlay} has no free /30 left"));
                        ok = false;
                        Ipv4Net::default()
                    }
                },
            };
            if let Some((j, other)) = used_subnets.iter().find(|(_, o)| o.contains(&subnet) || subnet.contains(o)) {
                errs.push(format!("{f}.subnet"), format!("{subnet} overlaps {other} of links[{j}]"));
                ok = false;
            }
            used_subnets.push((i, subnet));
            if !ok {
                continue;
            }
            let mut hosts = subnet.hosts();
            let (a_addr, b_addr) = (hosts.next().expect("/30 has hosts"), hosts.next().expect("/30 has hosts"));
            let ends = [(&l.endpoints[0], &l.endpoints[1], a_addr), (&l.endpoints[1], &l.endpoints[0], b_addr)].map(
                |(host, peer, addr)| {
                    let taken = ifnames.entry(host.clone()).or_default();
                    let preferred = format!("to-{peer}");
                    let ifname = if preferred.len() <= 15 && !taken.contains(&preferred) {
                        preferred
                    } else {
                        format!("link{i}")
                    };
                    taken.insert(ifname.clone());
                    let mac = end_mac(&self.name, &name, host);
                    LinkEnd { host: host.clone(), ifname, addr, mac }
                },
            );
            links.push(Link {
                name,
                ends,
                prefix_len: subnet.prefix_len(),
                bandwidth: l.bandwidth,
                delay: l.delay,
                loss: l.loss,
                mtu,
                network: l.network,
                l2: l.l2.clone().unwrap_or_else(|| "vlan".to_string()),
            });
            if let Some(t) = &l.l2 {
                check_name(&mut errs, &format!("{f}.l2"), t, 32);
            }
        }
        errs.finish()?;
        Ok(Substrate {
            name: self.name.clone(),
            hosts: self
                .hosts
                .iter()
                .map(|h| Host {
                    name: h.name.clone(),
                    role: h.role,
                    cpu: h.cpu,
                    memory: h.memory,
                    slivers: h.slivers,
                    ports: h.ports,
                    machine: h.machine.clone(),
                })
                .collect(),
            links,
            machines: self.machines.iter().map(|m| Machine { name: m.name.clone(), cpu: m.cpu }).collect(),
        })
    }
}

/// A stable, locally administered MAC for one end of a physical link.
pub fn end_mac(substrate: &str, link: &str, host: &str) -> MacAddr {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in ["phys", substrate, link, host] {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let b = h.to_be_bytes();
    MacAddr([0x06, b[1], b[2], b[3], b[4], b[5]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name: lab
hosts:
  - { name: h1, role: vnode, cpu: 4, memory: 4Gi, slivers: 8 }
  - { name: h2, role: transport }
  - { name: h3, role: vnode }
links:
  - { endpoints: [h1, h2], bandwidth: 10Gbit, delay: 1ms, loss: 0.1% }
  - { endpoints: [h2, h3], bandwidth: 1Gbit, mtu: 1500 }
"#;

    #[test]
    fn parses_and_resolves() {
        let s = Substrate::from_text(EXAMPLE).unwrap();
        assert_eq!(s.hosts.len(), 3);
        assert_eq!(s.hosts[1].role, Role::Transport);
        let l = &s.links[0];
        assert_eq!(l.name, "h1-h2");
        assert_eq!(l.ends[0].ifname, "to-h2");
        assert_eq!(l.ends[0].addr, Ipv4Addr::new(172, 31, 0, 1));
        assert_eq!(l.ends[1].addr, Ipv4Addr::new(172, 31, 0, 2));
        assert_eq!(s.links[1].ends[0].addr, Ipv4Addr::new(172, 31, 0, 5));
        assert_eq!(l.mtu, DEFAULT_LINK_MTU);
        assert_eq!(s.links[1].mtu, 1500);
        assert_eq!(l.delay, Some(Micros(1000)));
        assert_eq!(l.loss, Some(Percent(1000)));
    }

    fn err(text: &str) -> SpecError {
        Substrate::from_text(text).unwrap_err()
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let e = err("name: lab\nhosts:\n  - name: h1\n    role: vnode\n    cpus: 4\n");
        let fe = &e.errors[0];
        assert_eq!(fe.field, "hosts[0]");
        assert!(fe.message.contains("unknown field `cpus`"), "{fe}");
        assert_eq!(fe.line, Some(5));
    }

    #[test]
    fn bad_values_are_named() {
        let e = err(
            "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h1, role: vnode}\nlinks:\n  - {endpoints: [h1, hx], bandwidth: 1Gbit}\n",
        );
        let fields: Vec<&str> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"hosts[1].name"), "{e}");
        assert!(fields.contains(&"links[0].endpoints[1]"), "{e}");
        let e = err(
            "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 0}\n",
        );
        assert_eq!(e.errors[0].field, "links[0].bandwidth");
        let e = err("name: lab\nhosts:\n  - {name: h1, role: router}\n");
        assert_eq!(e.errors[0].field, "hosts[0].role");
        let e = err("name: lab\nhosts:\n  - {name: h1, role: vnode, cpu: -1}\n");
        assert_eq!(e.errors[0].field, "hosts[0].cpu");
        let e = err("name: Lab_1\nhosts:\n  - {name: h1, role: vnode}\n");
        assert_eq!(e.errors[0].field, "name");
        let e = err(
            "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit, subnet: 10.0.0.0/30}\n  - {name: b, endpoints: [h1, h2], bandwidth: 1Gbit, subnet: 10.0.0.0/29}\n",
        );
        assert_eq!(e.errors[0].field, "links[1].subnet", "{e}");
        let e = err("");
        assert!(e.to_string().contains("empty"));
    }

    #[test]
    fn parallel_links_get_distinct_interfaces() {
        let s = Substrate::from_text(
            "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {name: a, endpoints: [h1, h2], bandwidth: 1Gbit}\n  - {name: b, endpoints: [h1, h2], bandwidth: 1Gbit}\n",
        )
        .unwrap();
        assert_eq!(s.links[0].ends[0].ifname, "to-h2");
        assert_eq!(s.links[1].ends[0].ifname, "link1");
    }
}
