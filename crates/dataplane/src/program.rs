//! Fast-path packet programs: what a node type runs inside the agent.

use std::collections::BTreeMap;
use std::fmt::Debug;

use ipnet::IpNet;
use netslice_model::spec::RouteSpec;
use netslice_model::{NodeName, PortNo, SliceName};
use netslice_wire::MacAddr;

/// One interface of a running node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIface {
    /// Name (as in the spec).
    pub name: String,
    /// Port number on the host.
    pub port: PortNo,
    /// MAC address.
    pub mac: MacAddr,
    /// Addresses.
    pub addresses: Vec<IpNet>,
    /// MTU.
    pub mtu: u32,
}

/// A node to instantiate.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInstance {
    /// Slice.
    pub slice: SliceName,
    /// Node name.
    pub node: NodeName,
    /// Type parameters (already checked).
    pub params: serde_json::Value,
    /// Interfaces, in a fixed order: programs refer to them by index.
    pub interfaces: Vec<InstanceIface>,
    /// Static routes.
    pub routes: Vec<RouteSpec>,
}

/// Where a program sends frames.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Interfaces the (possibly rewritten) input frame goes out of.
    pub forward: Vec<usize>,
    /// New frames (ARP replies, ICMP errors, queued packets now resolved).
    pub generated: Vec<(usize, Vec<u8>)>,
}

impl Outputs {
    /// Empties both lists.
    pub fn clear(&mut self) {
        self.forward.clear();
        self.generated.clear();
    }
}

/// A fast-path node's packet program. One instance per node; the agent calls it
/// with one frame at a time (never concurrently).
pub trait NodeProgram: Send + Debug {
    /// A frame arrived on interface `iface` at `now` (nanoseconds). The program
    /// may rewrite it in place (same length) and says where it goes in `out`.
    fn process(&mut self, now: u64, iface: usize, frame: &mut [u8], out: &mut Outputs);

    /// Counters, for reports.
    fn stats(&self) -> BTreeMap<String, u64>;
}
