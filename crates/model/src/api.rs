//! Types exchanged over the REST API: between manager and agents (desired config,
//! reports) and between manager and clients (slices, hosts, errors).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use netslice_wire::MacAddr;

use crate::ids::{HostName, Label, LinkName, NodeName, PhysLinkName, PortNo, SliceName};

use crate::spec::{Isolation, LinkType, RouteSpec, SliceSpec};
use crate::substrate::Role;
use crate::units::{Bandwidth, Memory, Micros, Percent};

/// Direction along a virtual link: `Forward` is from endpoint 0 to endpoint 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// endpoint 0 -> endpoint 1
    Forward,
    /// endpoint 1 -> endpoint 0
    Reverse,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::Forward, Direction::Reverse];

    /// Lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
        }
    }
}

/// Where a virtual link's placement put one virtual node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InterfacePlan {
    /// Interface name inside the sliver.
    pub name: String,
    /// Virtual link it belongs to.
    pub link: String,
    /// Which end of the link (0 or 1).
    pub endpoint: u8,
    /// Port number of this interface on its host (unique per host).
    pub port: u32,
    /// MAC address (locally administered, stable).
    #[schema(value_type = String, example = "02:6a:3e:00:10:01")]
    pub mac: MacAddr,
}

/// Placement of one virtual node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodePlan {
    /// Virtual node name.
    pub name: String,
    /// Substrate host.
    pub host: String,
    /// Network namespace of the sliver; none for a fast-path node (it runs in
    /// the host agent's forwarding threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Its interfaces.
    pub interfaces: Vec<InterfacePlan>,
    /// CPU reserved, millicores.
    #[serde(default)]
    pub cpu_milli: u64,
    /// Memory reserved, bytes.
    #[serde(default)]
    pub memory: u64,
}

/// Transport path of one virtual link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkPlan {
    /// Virtual link name.
    pub name: String,
    /// Hosts from endpoint 0's host to endpoint 1's host (one host if both are local).
    pub path: Vec<String>,
    /// Physical link of each hop (`path.len() - 1` entries).
    pub underlay: Vec<String>,
    /// Label of each hop in the forward direction, allocated by the receiving host.
    pub forward_labels: Vec<u32>,
    /// Label of each hop in the reverse direction (hop i runs path[i+1] -> path[i]).
    pub reverse_labels: Vec<u32>,
    /// Bandwidth reserved on every hop, both directions, bits per second.
    #[serde(default)]
    pub reserved: u64,
    /// Link type of each hop (the spec's type, or the physical link's L2 type
    /// where an IP type cannot cross an Ethernet-only link).
    #[serde(default)]
    pub hop_types: Vec<LinkType>,
    /// Forwarding work reserved at each host of `path`, in path order:
    /// nanoseconds of CPU per second (10^9 is one core). Empty where no host
    /// of the path had reported what it can forward.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarding: Vec<u64>,
}

/// What the SNC/TNC decided for a slice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct SlicePlan {
    /// Node placements.
    pub nodes: Vec<NodePlan>,
    /// Link paths and labels.
    pub links: Vec<LinkPlan>,
    /// CPUs dedicated to the slice on every host it uses (`qos.cpus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
}

impl SlicePlan {
    /// Every host the slice uses: its nodes' hosts and its links' paths.
    pub fn hosts(&self) -> std::collections::BTreeSet<&str> {
        self.nodes
            .iter()
            .map(|n| n.host.as_str())
            .chain(self.links.iter().flat_map(|l| l.path.iter().map(String::as_str)))
            .collect()
    }

    /// A node's placement.
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A link's path.
    pub fn link(&self, name: &str) -> Option<&LinkPlan> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// A physical link as one host sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UnderlayLink {
    /// Link name.
    #[schema(value_type = String)]
    pub name: PhysLinkName,
    /// Interface at this host.
    pub ifname: String,
    /// Address at this host.
    #[schema(value_type = String)]
    pub local: Ipv4Addr,
    /// Host at the other end.
    #[schema(value_type = String)]
    pub peer_host: HostName,
    /// Address at the other end.
    #[schema(value_type = String)]
    pub peer: Ipv4Addr,
    /// MAC at this host.
    #[schema(value_type = String, example = "06:1f:2e:3d:4c:5b")]
    pub local_mac: MacAddr,
    /// MAC at the other end.
    #[schema(value_type = String, example = "06:5b:4c:3d:2e:1f")]
    pub peer_mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Capacity.
    #[schema(value_type = String)]
    pub bandwidth: Bandwidth,
    /// Delay this host adds when sending on the link.
    #[schema(value_type = Option<String>)]
    pub delay: Option<Micros>,
    /// Loss this host applies when sending on the link.
    #[schema(value_type = Option<String>)]
    pub loss: Option<Percent>,
}

/// One interface of a sliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InterfaceConfig {
    /// Name inside the sliver.
    pub name: String,
    /// Port number on this host.
    #[schema(value_type = u32)]
    pub port: PortNo,
    /// MAC address.
    #[schema(value_type = String, example = "02:6a:3e:00:10:01")]
    pub mac: MacAddr,
    /// MTU.
    pub mtu: u32,
    /// Addresses.
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<IpNet>,
    /// Virtual link.
    #[schema(value_type = String)]
    pub link: LinkName,
}

/// One sliver to run on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliverConfig {
    /// Slice.
    #[schema(value_type = String)]
    pub slice: SliceName,
    /// Virtual node.
    #[schema(value_type = String)]
    pub node: NodeName,
    /// Node type.
    pub node_type: String,
    /// Runs in the agent's data plane (no namespace).
    pub fast_path: bool,
    /// Type parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Network namespace name (slow-path slivers; none for fast-path nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// CPU cores.
    pub cpu: f64,
    /// Memory limit.
    #[schema(value_type = String)]
    pub memory: Memory,
    /// Forward IP between interfaces.
    pub ip_forward: bool,
    /// Interfaces.
    pub interfaces: Vec<InterfaceConfig>,
    /// Static routes.
    pub routes: Vec<RouteSpec>,
}

/// What to do with a frame of a virtual link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Action {
    /// Hand it to a local sliver interface.
    Deliver {
        /// Port number.
        #[schema(value_type = u32)]
        port: PortNo,
    },
    /// Encapsulate and send to the next host.
    Send {
        /// Encapsulation on this hop.
        link_type: LinkType,
        /// Label the next host expects.
        #[schema(value_type = u32)]
        label: Label,
        /// Physical link to send on.
        #[schema(value_type = String)]
        underlay: PhysLinkName,
        /// Address of the next host on that link.
        #[schema(value_type = String)]
        next_hop: Ipv4Addr,
    },
}

/// Where in the path a rule sits, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// From a local sliver onto the substrate.
    Ingress,
    /// From the substrate on to the next host.
    Transit,
    /// From the substrate to a local sliver.
    Egress,
    /// Between two slivers on the same host.
    Local,
}

impl Stage {
    /// Lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingress => "ingress",
            Stage::Transit => "transit",
            Stage::Egress => "egress",
            Stage::Local => "local",
        }
    }
}

/// Isolation parameters of one virtual link, as every rule of it carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkQos {
    /// Guaranteed bits per second.
    pub rate: u64,
    /// Ceiling, bits per second.
    pub ceil: u64,
    /// Burst in bytes.
    pub burst: u64,
    /// Shaped or policed.
    pub isolation: Isolation,
    /// The frame size forwarding work was reserved at, bytes (0: none
    /// reserved). With `rate` it is the link's share of each host's
    /// forwarding work: `rate / 8 / frame_size` frames and `rate / 8` bytes
    /// a second.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frame_size: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Slice-wide sharing parameters on this host's ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SliceShare {
    /// Weight against other slices.
    pub weight: u32,
    /// Ceiling on any port, bits per second, if set.
    pub ceil: Option<u64>,
    /// CPUs dedicated to the slice's packets on this host (none: shared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
}

/// A frame arriving from a sliver interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortRule {
    /// Port number.
    #[schema(value_type = u32)]
    pub port: PortNo,
    /// Slice.
    #[schema(value_type = String)]
    pub slice: SliceName,
    /// Virtual link.
    #[schema(value_type = String)]
    pub link: LinkName,
    /// Direction it travels.
    pub direction: Direction,
    /// What to do.
    pub action: Action,
    /// Isolation of the link.
    pub qos: LinkQos,
}

/// A frame arriving from the substrate with a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabelRule {
    /// Label (GRE key or VNI).
    #[schema(value_type = u32)]
    pub label: Label,
    /// Encapsulation it arrives in.
    pub link_type: LinkType,
    /// Slice.
    #[schema(value_type = String)]
    pub slice: SliceName,
    /// Virtual link.
    #[schema(value_type = String)]
    pub link: LinkName,
    /// Direction it travels.
    pub direction: Direction,
    /// What to do.
    pub action: Action,
    /// Isolation of the link.
    pub qos: LinkQos,
    /// The virtual link's MTU (a transit host has no sliver to learn it from):
    /// frames are counted, and TCP super-frames cut, against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// The desired state of one substrate host, derived by the manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeConfig {
    /// Host name.
    #[schema(value_type = String)]
    pub host: HostName,
    /// Substrate name.
    pub substrate: String,
    /// Increases whenever anything in here changes.
    pub revision: u64,
    /// Identity of the manager's store; a new epoch means revisions restarted.
    pub epoch: String,
    /// Physical links at this host.
    pub underlay: Vec<UnderlayLink>,
    /// Slivers to run.
    pub slivers: Vec<SliverConfig>,
    /// Rules for frames from local slivers.
    pub ports: Vec<PortRule>,
    /// Rules for labelled frames from the substrate.
    pub labels: Vec<LabelRule>,
    /// Sharing parameters of the slices with rules here.
    #[schema(value_type = BTreeMap<String, SliceShare>)]
    pub slices: BTreeMap<SliceName, SliceShare>,
    /// Measurement points of the jobs that run (or will soon) on this host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taps: Vec<TapConfig>,
}

/// A measurement job's point on one host: frames of one virtual link's rules
/// there (the slice's own frames, before encapsulation or after it is
/// removed), counted per interval over a window, and optionally captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TapConfig {
    /// The job.
    pub job: u64,
    /// Slice.
    #[schema(value_type = String)]
    pub slice: SliceName,
    /// Virtual link.
    #[schema(value_type = String)]
    pub link: LinkName,
    /// Directions observed.
    pub directions: Vec<Direction>,
    /// Only the rule of this stage (`None`: every rule of the link here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// The filter, compiled by libpcap (`None`: every frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<BpfInsn>>,
    /// Window start, Unix milliseconds.
    pub start_ms: u64,
    /// Window end, Unix milliseconds.
    pub end_ms: u64,
    /// Length of a counting interval, milliseconds.
    pub interval_ms: u64,
    /// Capture the frames, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureConfig>,
    /// A STAMP endpoint at a sliver interface of this host instead of a
    /// counting tap (`directions` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeConfig>,
}

/// A STAMP endpoint (RFC 8762, unauthenticated) at a sliver interface: the
/// agent sends or reflects test packets as if the sliver did, inside the
/// slice's virtual link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProbeConfig {
    /// Sender or reflector.
    pub role: ProbeRole,
    /// The sliver interface's port on this host.
    #[schema(value_type = u32)]
    pub port: PortNo,
    /// The interface's MAC address.
    #[schema(value_type = String)]
    pub mac: MacAddr,
    /// The interface's IPv4 address (test packets' source, or the address
    /// the reflector answers for).
    #[schema(value_type = String)]
    pub ip: Ipv4Addr,
}

/// What a STAMP endpoint does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeRole {
    /// Sends test packets to a reflector and measures its replies.
    Sender {
        /// Session identifier (RFC 8972).
        ssid: u16,
        /// Test packets a second.
        rate: u32,
        /// UDP source port of the test packets.
        src_port: u16,
        /// The reflecting interface's MAC address.
        #[schema(value_type = String)]
        peer_mac: MacAddr,
        /// The reflecting interface's IPv4 address.
        #[schema(value_type = String)]
        peer_ip: Ipv4Addr,
    },
    /// A stateful session-reflector on UDP port 862 for the interface's address.
    Reflector {
        /// Only this session's test packets (a probe job's own reflector);
        /// `None`: any sender's (a reflector job).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<StampSession>,
    },
}

/// A STAMP session as a reflector tells them apart: the sender's address
/// and UDP port, and the SSID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StampSession {
    /// The sender's IPv4 address.
    #[schema(value_type = String)]
    pub ip: Ipv4Addr,
    /// The sender's UDP port.
    pub port: u16,
    /// The session identifier.
    pub ssid: u16,
}

/// What a capture keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaptureConfig {
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// Bytes kept in all (frames and their records); the capture stops there.
    pub max_bytes: u64,
}

/// What a host's point of a job saw so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
pub struct TapReport {
    /// The job.
    pub job: u64,
    /// Frames and bytes per interval, from the window's start; intervals
    /// not reached yet are absent.
    pub intervals: Vec<[u64; 2]>,
    /// Frames the filter matched in all.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames captured.
    #[serde(default)]
    pub captured: u64,
    /// Frames the capture left out because it reached its byte cap.
    #[serde(default)]
    pub capture_full: u64,
    /// A STAMP sender's session so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StampResults>,
    /// Test packets a STAMP reflector answered.
    #[serde(default)]
    pub reflected: u64,
    /// STAMP packets a probe point took but did not use: its driver was
    /// behind, or (a reflector) they were malformed or over its rate.
    #[serde(default)]
    pub probe_dropped: u64,
}

/// Packet counters of one forwarding rule on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct RuleCounters {
    /// Host that counted.
    pub host: String,
    /// Slice.
    pub slice: String,
    /// Virtual link.
    pub link: String,
    /// Direction.
    #[schema(value_type = Option<Direction>)]
    pub direction: Option<Direction>,
    /// Stage.
    #[schema(value_type = Option<Stage>)]
    pub stage: Option<Stage>,
    /// Frames forwarded.
    pub packets: u64,
    /// Bytes forwarded (the carried Ethernet frames).
    pub bytes: u64,
    /// Frames dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Frames waiting in the rule's egress queue at this host now.
    #[serde(default)]
    pub queued: u64,
    /// Bytes of those frames (as the port is charged for them).
    #[serde(default)]
    pub queued_bytes: u64,
    /// How long the rule's frames waited in that queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_delay: Option<DelayHistogram>,
}

/// STAMP delays of one kind, summarized.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct StampDelay {
    /// Milliseconds.
    pub min_ms: f64,
    /// Median, ms.
    pub median_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Mean absolute difference of consecutive packets' delays (RFC 3393 IPDV), ms.
    pub jitter_ms: f64,
    /// Packets per 1-ms bucket, from 0 ms (`[i]`: delays in [i, i+1) ms).
    pub histogram_1ms: Vec<u64>,
}

/// What a STAMP session measured, as perfSONAR names it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct StampResults {
    /// Test packets sent.
    pub sent: u64,
    /// Replies received (duplicates not counted).
    pub received: u64,
    /// Test packets the reflector received (its own sequence numbers tell).
    pub reflected: u64,
    /// Whether the loss each way is known: the reflector numbered its
    /// replies on its own (stateful). A stateless reflector echoes the
    /// sender's numbers; then only `lost` is known and the split is 0.
    #[serde(default)]
    pub directions_known: bool,
    /// Lost on the way out: sent, not reflected.
    pub lost_forward: u64,
    /// Lost on the way back: reflected, not received.
    pub lost_reverse: u64,
    /// Lost either way.
    pub lost: u64,
    /// Replies received more than once.
    pub duplicated: u64,
    /// Replies that came after one of a later test packet.
    pub reordered: u64,
    /// Sender to reflector.
    pub forward: Option<StampDelay>,
    /// Reflector to sender.
    pub reverse: Option<StampDelay>,
    /// Round trip, less the reflector's own turnaround.
    pub round_trip: Option<StampDelay>,
    /// The sender clock's stated error, seconds (and whether it is synchronized).
    pub sender_error_s: f64,
    /// The reflector clock's stated error, seconds.
    pub reflector_error_s: f64,
    /// Both clocks stated they were synchronized to UTC (one-way delays are
    /// only as good as that; the local testbed's hosts share one clock).
    pub synchronized: bool,
}

/// One classic BPF instruction, as libpcap's `struct bpf_insn` (a
/// measurement job's compiled filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BpfInsn {
    /// Operation.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// Upper bounds of the buckets of a queueing-delay histogram, nanoseconds
/// (100 us to 1 s; one more bucket holds the longer waits).
pub const QUEUE_DELAY_BOUNDS_NS: [u64; 12] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// How long frames waited: a histogram over [`QUEUE_DELAY_BOUNDS_NS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct DelayHistogram {
    /// Frames that waited.
    pub count: u64,
    /// What they waited in all, nanoseconds.
    pub sum_ns: u64,
    /// Frames per bucket (not cumulative): bucket `i` holds waits at most
    /// `QUEUE_DELAY_BOUNDS_NS[i]` and above the bound before; the last, the rest.
    pub buckets: Vec<u64>,
}

impl DelayHistogram {
    /// Adds `other` to this one (bucket by bucket).
    pub fn add(&mut self, other: &DelayHistogram) {
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }
}

/// Counters of one fast-path node program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgramStats {
    /// Host it runs on.
    pub host: String,
    /// Slice.
    pub slice: String,
    /// Node.
    pub node: String,
    /// Counters by name (entries, flooded, ttl_exceeded, ...).
    pub stats: BTreeMap<String, u64>,
}

/// A problem the agent met applying the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApplyError {
    /// Slice concerned, if any.
    pub slice: Option<String>,
    /// Virtual node concerned, if any.
    pub node: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// An agent's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeReport {
    /// Host name.
    pub host: String,
    /// Revision of the last desired state fully applied.
    pub applied_revision: u64,
    /// Epoch of that desired state.
    pub epoch: String,
    /// Problems, empty when everything applied.
    pub errors: Vec<ApplyError>,
    /// Counters of every rule.
    pub counters: Vec<RuleCounters>,
    /// Counters of frames that matched no rule, by reason.
    pub unmatched: BTreeMap<String, u64>,
    /// Counters of the fast-path node programs running here.
    #[serde(default)]
    pub programs: Vec<ProgramStats>,
    /// Substrate I/O in use (e.g. `raw-gre+udp-vxlan`).
    pub io_backend: String,
    /// How frames are spread over threads and CPUs (e.g. `inline`,
    /// `2 workers (flow hash); red on CPUs [1]`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub forwarding: String,
    /// Agent version.
    pub version: String,
    /// Identifies this run of the agent (changes when it restarts, and its
    /// counters with it start again from zero).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    /// What the measurement points here saw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taps: Vec<TapReport>,
    /// The rules' counters at the last few whole Unix seconds (for the
    /// guarantee check's one-second windows), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<SecondSample>,
    /// What this agent can forward (its calibration, or the operator's
    /// figures); none if it has neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::capacity::ForwardingCapacity>,
}

/// Every rule's counters at one whole Unix second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecondSample {
    /// Unix second.
    pub t: u64,
    /// One entry per rule, in the order of the report's `counters`.
    pub rules: Vec<RuleSample>,
}

/// One rule's counters at a second: frames, bytes, drops by reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct RuleSample {
    /// Index of the rule in the report's `counters`.
    pub i: u32,
    /// Frames forwarded.
    pub p: u64,
    /// Bytes forwarded.
    pub b: u64,
    /// Drops by reason (only reasons with any).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub d: BTreeMap<String, u64>,
}

/// Registration of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Agent version.
    pub version: String,
}

/// The manager's answer to a registration: the agent's own credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// Bearer credential for this host's config and status calls.
    pub credential: String,
}

/// Lifecycle state of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SliceState {
    /// Resources reserved, agents not yet told.
    Allocated,
    /// Agents are applying it.
    Provisioning,
    /// Every agent reports it applied.
    Ready,
    /// An agent reported an error.
    Failed,
    /// Being torn down.
    Deleting,
}

impl SliceState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SliceState::Allocated => "allocated",
            SliceState::Provisioning => "provisioning",
            SliceState::Ready => "ready",
            SliceState::Failed => "failed",
            SliceState::Deleting => "deleting",
        }
    }
}

/// A slice in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliceSummary {
    /// Name.
    pub name: String,
    /// State.
    pub state: SliceState,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of links.
    pub links: usize,
    /// Revision at which it was last changed.
    pub revision: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Owner.
    #[serde(default)]
    pub owner: String,
    /// Lease end, seconds since the Unix epoch.
    #[serde(default)]
    pub expires: u64,
}

/// Everything about one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliceInfo {
    /// Name.
    pub name: String,
    /// State.
    pub state: SliceState,
    /// Why it is not ready, where known.
    pub message: Option<String>,
    /// Revision at which it was last changed.
    pub revision: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Owner.
    #[serde(default)]
    pub owner: String,
    /// Lease end, seconds since the Unix epoch.
    #[serde(default)]
    pub expires: u64,
    /// The spec as submitted.
    pub spec: SliceSpec,
    /// Placement, paths and labels.
    pub plan: SlicePlan,
    /// Counters reported by the agents on the links' paths.
    pub counters: Vec<RuleCounters>,
    /// Counters of the slice's fast-path node programs.
    #[serde(default)]
    pub programs: Vec<ProgramStats>,
}

/// Health of a substrate host as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    /// The agent has never registered.
    Unknown,
    /// The agent reported recently.
    Ready,
    /// The agent has not reported for a while.
    Down,
}

/// A substrate host in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostInfo {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Health.
    pub state: HostState,
    /// Seconds since the last report, if any.
    pub last_seen_secs: Option<u64>,
    /// Revision the manager wants.
    pub desired_revision: u64,
    /// Revision the agent applied.
    pub applied_revision: Option<u64>,
    /// Slivers placed here.
    pub slivers: usize,
    /// Agent's substrate I/O.
    pub io_backend: Option<String>,
    /// How the agent spreads frames over threads and CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<String>,
    /// Problems reported by the agent.
    pub errors: Vec<ApplyError>,
}

/// Resources of one host: capacity and what slices hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostUsage {
    /// Host.
    pub name: String,
    /// Role.
    pub role: Role,
    /// CPU cores.
    pub cpu: f64,
    /// CPU reserved.
    pub cpu_used: f64,
    /// Memory, bytes.
    pub memory: u64,
    /// Memory reserved.
    pub memory_used: u64,
    /// Sliver slots.
    pub slivers: u32,
    /// Slots used.
    pub slivers_used: u32,
    /// Sliver interfaces.
    pub ports: u32,
    /// Interfaces used.
    pub ports_used: u32,
    /// Forwarding work reserved here for slices' guaranteed rates, cores.
    #[serde(default)]
    pub forwarding_used: f64,
    /// The machine it shares with other hosts, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The CPU budget it draws on (its machine's, or its agent's cores),
    /// cores; none until its agent reported what it can forward (and it
    /// shares no machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// Left in that budget, cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_free: Option<f64>,
    /// What its agent reported it can forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::capacity::ForwardingCapacity>,
}

/// Bandwidth of one physical link in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkUsage {
    /// Link.
    pub name: String,
    /// Sending host.
    pub from: String,
    /// Receiving host.
    pub to: String,
    /// Capacity, bits per second.
    pub bandwidth: u64,
    /// Reserved by slices.
    pub reserved: u64,
    /// Left.
    pub free: u64,
}

/// The substrate view: every resource, reserved and free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubstrateUsage {
    /// Substrate name.
    pub name: String,
    /// Hosts.
    pub hosts: Vec<HostUsage>,
    /// Links, both directions.
    pub links: Vec<LinkUsage>,
}

/// One change in the manager's audit trail (`GET /api/v1/audit`, operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Sequence number (ascending; ask for `after` the last one seen).
    pub id: u64,
    /// When, Unix seconds.
    pub time: u64,
    /// Who: a user name, `agent:<host>`, or `system` (lease expiry, the
    /// first operator token).
    pub caller: String,
    /// `operator`, `developer`, `agent` or `system`.
    pub role: String,
    /// What: `slice.create`, `slice.update`, `slice.delete`, `slice.renew`,
    /// `slice.expire`, `user.add`, `user.revoke`, `node.enroll`.
    pub action: String,
    /// The slice, user or host it was done to.
    pub object: String,
    /// More: the revision, the lease end, the role.
    pub detail: String,
}
