//! The plugin registries: node types and link types, registered by name.
//!
//! A link type implements [`LinkTypePlugin`] (how a frame is encapsulated with a
//! per-hop label and found again); a node type implements [`NodeTypePlugin`] (how
//! its parameters are checked and, for fast-path types, the packet program that
//! runs inside the agent). Everything is sans-IO: frames in, actions out. The
//! agent's I/O layer only needs a link type's [`Carrier`] to know which socket
//! carries it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::Arc;

use netslice_model::Label;
use netslice_model::types::{LinkTypeInfo, NodeDecl, NodeTypeInfo, ParamError, TypeCatalog, TypesInfo};
use netslice_wire::MacAddr;

use crate::program::{NodeInstance, NodeProgram};

/// Index of a registered link type, used on the per-packet path.
pub type TypeIdx = u16;

/// How the agent's I/O carries a link type's packets between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// A raw IPv4 socket for this IP protocol (the kernel adds the IPv4 header;
    /// received packets include it).
    IpProto(u8),
    /// A UDP socket on this port (both ends).
    Udp(u16),
    /// Whole Ethernet frames of this EtherType on the physical interface
    /// (AF_PACKET); the plugin writes the outer Ethernet header itself.
    Ethernet(u16),
}

/// Where the kernel can find a packet's label, so that the agent can have
/// it sort packets by label before they are queued (a slice with dedicated
/// CPUs then gets a receive socket of its own, see the agent's `forward`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelField {
    /// The label is the GRE key (RFC 2890) of an [`Carrier::IpProto`] packet.
    GreKey,
    /// The label is the 24-bit big-endian field at this byte offset in the
    /// payload of a [`Carrier::Udp`] datagram (VXLAN's VNI: offset 4).
    UdpBe24 {
        /// Offset in the UDP payload.
        offset: u16,
    },
}

/// Addresses of one hop, for encapsulations that need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopAddrs {
    /// Next host's underlay IPv4 address.
    pub next_hop: Ipv4Addr,
    /// This host's MAC on the physical link.
    pub local_mac: MacAddr,
    /// Next host's MAC on the physical link.
    pub peer_mac: MacAddr,
}

/// Why a plugin could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A link type of this name is registered already.
    #[error("link type {0:?} is already registered")]
    DuplicateLinkType(String),
    /// A node type of this name is registered already.
    #[error("node type {0:?} is already registered")]
    DuplicateNodeType(String),
    /// The per-packet link type index is full.
    #[error("no more than {max} link types can be registered")]
    TooManyLinkTypes {
        /// The most there can be.
        max: usize,
    },
}

/// Why a fast-path node's program could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstantiateError {
    /// A parameter (or interface) the type's checks let through cannot be
    /// used after all.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The config names a node type this agent does not have.
    #[error("unknown node type {0:?}")]
    UnknownType(String),
    /// The program needs something it cannot get here.
    #[error("{0}")]
    Unavailable(String),
}

/// A virtual link type.
pub trait LinkTypePlugin: Send + Sync + Debug {
    /// Name, description, layer, MTU overhead and largest label.
    fn info(&self) -> LinkTypeInfo;
    /// How packets travel.
    fn carrier(&self) -> Carrier;
    /// Bytes on the wire beyond the carried frame, headers of every layer
    /// included (what an egress port is charged on top of the frame).
    fn wire_overhead(&self) -> u32;
    /// Encapsulates the frame in `buf[frame]` with `label`, writing into the
    /// headroom before it; returns the packet to hand to the carrier, or `None`
    /// without enough headroom.
    fn encap(&self, label: Label, hop: &HopAddrs, buf: &mut [u8], frame: Range<usize>) -> Option<Range<usize>>;
    /// Finds the label and the carried frame in a packet as the carrier delivers
    /// it (and may rewrite it in place to expose the frame); `None` if it is not
    /// a well-formed packet of this type.
    fn decap(&self, buf: &mut [u8], packet: Range<usize>) -> Option<(Label, Range<usize>)>;
    /// Where the kernel finds the label; `None` (the default): only this
    /// plugin can, and every slice's packets of this type share the
    /// substrate receivers.
    fn label_field(&self) -> Option<LabelField> {
        None
    }
}

/// A virtual node type.
pub trait NodeTypePlugin: Send + Sync + Debug {
    /// Name, description, fast path or not, parameters.
    fn info(&self) -> NodeTypeInfo;
    /// Problems with a node's parameters (fields relative to the node:
    /// `params.max_entries`).
    fn check(&self, node: &NodeDecl<'_>) -> Vec<ParamError>;
    /// The packet program of a fast-path node (`None` for slow-path types, whose
    /// nodes are namespace slivers run by the agent).
    fn instantiate(&self, node: &NodeInstance) -> Result<Option<Box<dyn NodeProgram>>, InstantiateError>;
    /// Memory a fast-path node holds in the agent with these parameters (its
    /// tables and queues at their limits), bytes; the manager reserves it on
    /// the node's host. Default: 1 MiB.
    fn memory(&self, node: &NodeDecl<'_>) -> u64 {
        let _ = node;
        netslice_model::types::FAST_PATH_MEMORY
    }
}

/// The registries of one deployment.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    links: Vec<Arc<dyn LinkTypePlugin>>,
    nodes: BTreeMap<String, Arc<dyn NodeTypePlugin>>,
}

impl Registry {
    /// Registers a link type; its name must be new.
    pub fn register_link(&mut self, plugin: Arc<dyn LinkTypePlugin>) -> Result<TypeIdx, RegistryError> {
        let name = plugin.info().name;
        if self.link_idx(&name).is_some() {
            return Err(RegistryError::DuplicateLinkType(name));
        }
        let idx = TypeIdx::try_from(self.links.len())
            .map_err(|_| RegistryError::TooManyLinkTypes { max: usize::from(TypeIdx::MAX) + 1 })?;
        self.links.push(plugin);
        Ok(idx)
    }

    /// Registers a node type; its name must be new.
    pub fn register_node(&mut self, plugin: Arc<dyn NodeTypePlugin>) -> Result<(), RegistryError> {
        let name = plugin.info().name;
        if self.nodes.contains_key(&name) {
            return Err(RegistryError::DuplicateNodeType(name));
        }
        self.nodes.insert(name, plugin);
        Ok(())
    }

    /// The link type whose packets arrive by `carrier`: the first registered
    /// with it (a receiver of that socket or EtherType hands its packets to
    /// that type's `decap`).
    pub fn carried_by(&self, carrier: Carrier) -> Option<TypeIdx> {
        self.links.iter().position(|l| l.carrier() == carrier).map(|i| i as TypeIdx)
    }

    /// A link type's index by name.
    pub fn link_idx(&self, name: &str) -> Option<TypeIdx> {
        self.links.iter().position(|l| l.info().name == name).map(|i| i as TypeIdx)
    }

    /// A link type by index.
    pub fn link(&self, idx: TypeIdx) -> Option<&dyn LinkTypePlugin> {
        self.links.get(usize::from(idx)).map(|l| &**l)
    }

    /// Every link type with its index.
    pub fn links(&self) -> impl Iterator<Item = (TypeIdx, &dyn LinkTypePlugin)> {
        self.links.iter().enumerate().map(|(i, l)| (i as TypeIdx, &**l))
    }

    /// A node type by name.
    pub fn node(&self, name: &str) -> Option<&dyn NodeTypePlugin> {
        self.nodes.get(name).map(|n| &**n)
    }

    /// Everything offered, for `netslice types`.
    pub fn info(&self) -> TypesInfo {
        TypesInfo {
            nodes: self.nodes.values().map(|n| n.info()).collect(),
            links: self.links.iter().map(|l| l.info()).collect(),
        }
    }
}

impl TypeCatalog for Registry {
    fn node_type(&self, name: &str) -> Option<NodeTypeInfo> {
        self.node(name).map(|n| n.info())
    }

    fn link_type(&self, name: &str) -> Option<LinkTypeInfo> {
        self.link_idx(name).and_then(|i| self.link(i)).map(|l| l.info())
    }

    fn node_type_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn link_type_names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.info().name).collect()
    }

    fn check_node(&self, node_type: &str, node: &NodeDecl<'_>) -> Vec<ParamError> {
        self.node(node_type).map(|n| n.check(node)).unwrap_or_default()
    }

    fn node_memory(&self, node_type: &str, node: &NodeDecl<'_>) -> u64 {
        self.node(node_type).map(|n| n.memory(node)).unwrap_or(netslice_model::types::FAST_PATH_MEMORY)
    }
}
