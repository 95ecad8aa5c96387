//! What a deployment's node and link types look like from the outside: the
//! catalog the manager validates specs against and `netslice types` lists. The
//! registries themselves (the code behind each type) live in
//! `netslice-dataplane`; this module is the seam between them and the planners.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A static route inside a sliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Destination prefix.
    #[schema(value_type = String)]
    pub to: IpNet,
    /// Next hop, on one of the node's link subnets.
    #[schema(value_type = String)]
    pub via: IpAddr,
}

/// Where a link type's frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Inside IPv4 (a raw IP protocol or UDP): any physical link with addresses.
    Ip,
    /// Directly in Ethernet frames: also Ethernet-only transport.
    Ethernet,
}

/// Properties of a link type the planners need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkTypeInfo {
    /// Name.
    pub name: String,
    /// One line of what it is.
    pub description: String,
    /// Where its frames travel.
    pub layer: Layer,
    /// Bytes it adds around a carried Ethernet frame, up to and including the
    /// outer network header (what must fit the physical MTU on top of the frame).
    pub overhead: u32,
    /// Largest label its header carries.
    pub max_label: u32,
}

/// One parameter of a node type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamInfo {
    /// Name under `params:`.
    pub name: String,
    /// Type, e.g. `integer`, `duration`, `list of routes`.
    pub kind: String,
    /// Default, if optional.
    pub default: Option<String>,
    /// What it does.
    pub description: String,
}

/// Properties of a node type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeTypeInfo {
    /// Name.
    pub name: String,
    /// One line of what it is.
    pub description: String,
    /// Runs inside the agent's data plane (no namespace), not as a sliver.
    pub fast_path: bool,
    /// Parameters.
    pub params: Vec<ParamInfo>,
}

/// Everything a deployment offers (the answer of `GET /api/v1/types`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TypesInfo {
    /// Node types.
    pub nodes: Vec<NodeTypeInfo>,
    /// Link types.
    pub links: Vec<LinkTypeInfo>,
}

/// One interface of a node as its type sees it when validating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceDecl {
    /// Interface name.
    pub name: String,
    /// Virtual link.
    pub link: String,
    /// Addresses.
    pub addresses: Vec<IpNet>,
    /// MTU.
    pub mtu: u32,
}

/// A node as its type sees it when validating.
#[derive(Debug, Clone, Copy)]
pub struct NodeDecl<'a> {
    /// The `params:` value (null if absent).
    pub params: &'a serde_json::Value,
    /// Its interfaces.
    pub interfaces: &'a [InterfaceDecl],
    /// Its static routes.
    pub routes: &'a [RouteSpec],
}

/// A problem with a node's parameters (or interfaces), found by its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct ParamError {
    /// The field, relative to the node (`params.max_entries`; empty: the
    /// node as a whole).
    pub field: String,
    /// What is wrong, and what would do.
    pub message: String,
}

impl ParamError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ParamError {
        ParamError { field: field.into(), message: message.into() }
    }

    /// A problem with the node as a whole.
    pub fn node(message: impl Into<String>) -> ParamError {
        ParamError { field: String::new(), message: message.into() }
    }
}

/// The catalog of types a deployment offers.
pub trait TypeCatalog {
    /// A node type.
    fn node_type(&self, name: &str) -> Option<NodeTypeInfo>;
    /// A link type.
    fn link_type(&self, name: &str) -> Option<LinkTypeInfo>;
    /// Names of all node types.
    fn node_type_names(&self) -> Vec<String>;
    /// Names of all link types.
    fn link_type_names(&self) -> Vec<String>;
    /// Problems with a node's parameters.
    fn check_node(&self, node_type: &str, node: &NodeDecl<'_>) -> Vec<ParamError>;
    /// Memory a fast-path node of this type holds in its agent (its tables
    /// and queues at their limits), bytes. Default: [`FAST_PATH_MEMORY`].
    fn node_memory(&self, node_type: &str, node: &NodeDecl<'_>) -> u64 {
        let _ = (node_type, node);
        FAST_PATH_MEMORY
    }
}

/// What a fast-path node type that says nothing else is charged for its
/// state in the agent: 1 MiB.
pub const FAST_PATH_MEMORY: u64 = 1 << 20;

/// A catalog of fixed type descriptions without parameter checks: for planners'
/// tests and tools that need the shapes only.
#[derive(Debug, Clone, Default)]
pub struct StaticCatalog {
    /// Node types.
    pub nodes: Vec<NodeTypeInfo>,
    /// Link types.
    pub links: Vec<LinkTypeInfo>,
}

impl StaticCatalog {
    /// The built-in types' shapes (as `netslice-dataplane` registers them).
    pub fn builtin() -> StaticCatalog {
        let link = |name: &str, layer, overhead, max_label| LinkTypeInfo {
            name: name.into(),
            description: String::new(),
            layer,
            overhead,
            max_label,
        };
        let node = |name: &str, fast_path| NodeTypeInfo {
            name: name.into(),
            description: String::new(),
            fast_path,
            params: vec![],
        };
        StaticCatalog {
            nodes: vec![
                node("slowpath", false),
                node("l2switch", true),
                node("extmac-switch", true),
                node("router", true),
            ],
            links: vec![
                link("gre", Layer::Ip, 28, u32::MAX),
                link("vxlan", Layer::Ip, 36, 0x00ff_ffff),
                link("vlan", Layer::Ethernet, 4, 4094),
                link("pbb", Layer::Ethernet, 18, 0x00ff_ffff),
            ],
        }
    }
}

impl TypeCatalog for StaticCatalog {
    fn node_type(&self, name: &str) -> Option<NodeTypeInfo> {
        self.nodes.iter().find(|n| n.name == name).cloned()
    }
    fn link_type(&self, name: &str) -> Option<LinkTypeInfo> {
        self.links.iter().find(|l| l.name == name).cloned()
    }
    fn node_type_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
    fn link_type_names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }
    fn check_node(&self, _: &str, _: &NodeDecl<'_>) -> Vec<ParamError> {
        Vec::new()
    }
}
