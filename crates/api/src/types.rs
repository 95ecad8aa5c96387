//! The API's own request and response types (the documents they carry,
//! slice specs, infos and node configs, are `netslice-model`'s).

use netslice_model::api::SlicePlan;
use netslice_model::{FieldError, Micros};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Who the caller is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// User name (or host, for agents).
    pub name: String,
    /// `operator`, `developer` or `agent`.
    pub role: String,
}

/// Options of an apply.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    /// Check and plan only: nothing is reserved or changed.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a dry run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DryRun {
    /// Always true: the spec would be admitted.
    pub admitted: bool,
    /// `create` or `update`.
    pub action: String,
    /// The plan it would get.
    pub plan: SlicePlan,
}

/// Answer to a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// Revision at which the slice is gone from every desired config; it shows as
    /// `deleting` until the agents confirm.
    pub revision: u64,
}

/// A lease extension: `{"for": "48h"}` or `{"seconds": 172800}` (not both);
/// an empty body or `{}` asks for the operator's default lease.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// Seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// How long from now, as a duration (`48h`, `7d`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub duration: Option<Micros>,
}

/// The new lease end.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Renewed {
    /// Lease end, seconds since the Unix epoch.
    pub expires: u64,
}

/// A new user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// User name.
    pub name: String,
    /// `developer` (default) or `operator`.
    #[serde(default)]
    pub role: Option<String>,
}

/// A user's token, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserToken {
    /// User name.
    pub name: String,
    /// Role.
    pub role: String,
    /// The token (only its hash is kept).
    pub token: String,
}

/// Answer to a revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// User name.
    pub name: String,
    /// Tokens revoked.
    pub tokens: usize,
}

/// Long-poll parameters.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Revision the agent has; answer when the desired one is newer.
    #[serde(default)]
    pub after: u64,
    /// Epoch of that revision; a different epoch is answered at once.
    #[serde(default)]
    pub epoch: String,
    /// Seconds to wait (at most 60; 0 answers at once).
    #[serde(default)]
    pub wait: u64,
}

/// Which part of the audit trail to read.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this sequence number (default 0: from the first).
    #[serde(default)]
    pub after: u64,
    /// At most this many records (default and most: 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A user (operators list them with `netslice user list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// `operator` or `developer`.
    pub role: String,
    /// Tokens the user holds.
    pub tokens: usize,
}

/// Parameters of reading one slice: at once, or as a watch (long-poll).
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SliceQuery {
    /// Wait until the slice differs from what the caller has: a revision
    /// newer than `after`, a state other than `state`, or its deletion.
    #[serde(default)]
    pub watch: bool,
    /// The revision the caller has (its `ETag`).
    #[serde(default)]
    pub after: u64,
    /// The state the caller has (`ready`, `provisioning`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>)]
    pub state: Option<netslice_model::api::SliceState>,
    /// Seconds to wait (default 30, at most 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// Every refusal of the API: an RFC 9457 problem document
/// (`application/problem+json`), with the field errors, and for slices
/// that cannot be placed the typed reason and its GENI code, as extension
/// members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// The problem type: `/problems/<code>` on the manager, which
    /// describes it.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type (the same for every occurrence).
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path it happened at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Stable machine-readable code, the last segment of `type`
    /// (`invalid`, `not_found`, `precondition_failed`, ...).
    pub code: String,
    /// Field-level problems, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For refusals: the typed reason (`insufficient_bandwidth`, `insufficient_nodes`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For refusals: the GENI AM API v3 error it maps to (`INSUFFICIENT_BANDWIDTH`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geni_code: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// The media type of [`Problem`] documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A slice's figures as of the agents' last reports: per virtual link and
/// direction, every hop along its path, with rates over the interval
/// between each host's last two reports. Totals carry across agent restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliceStats {
    /// Slice.
    pub slice: String,
    /// Every virtual link, each direction.
    pub links: Vec<LinkStats>,
}

/// One virtual link in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkStats {
    /// Virtual link.
    pub link: String,
    /// Direction.
    #[schema(value_type = String)]
    pub direction: netslice_model::api::Direction,
    /// Bandwidth reserved for it on every hop, bits per second.
    pub reserved_bps: u64,
    /// Each host on its path, in the order frames cross them.
    pub hops: Vec<HopStats>,
}

/// What one host counted for a virtual link in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HopStats {
    /// Host.
    pub host: String,
    /// Where in the path the host is for this link.
    #[schema(value_type = Option<String>)]
    pub stage: Option<netslice_model::api::Stage>,
    /// Frames forwarded in all.
    pub frames: u64,
    /// Bytes forwarded in all (the carried Ethernet frames).
    pub bytes: u64,
    /// Frames dropped in all, by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Frames per second over the last interval (`None` until a host has
    /// reported twice).
    pub frames_per_second: Option<f64>,
    /// Bits per second over the last interval.
    pub bits_per_second: Option<f64>,
    /// Drops per second over the last interval.
    pub drops_per_second: Option<f64>,
    /// The interval those rates are over, seconds.
    pub interval_seconds: Option<f64>,
    /// Frames waiting in the host's egress queue for this link now.
    pub queued_frames: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Mean time frames waited in that queue, milliseconds, over all time.
    pub mean_queue_delay_ms: Option<f64>,
    /// Seconds since the host's last report.
    pub age_seconds: Option<f64>,
}

/// A measurement job to create: where, when, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasureRequest {
    /// Slice measured.
    pub slice: String,
    /// One point, or two of the same virtual link (then the results say
    /// what was lost between them). A point is `LINK/HOST` (a hop of a
    /// virtual link: an end host or a transit host), `LINK@NODE` (the link's
    /// end at a node) or `NODE:IFACE` (a sliver interface or a fast-path
    /// node's port: `eth0`, `eth1`, ... or `0`, `1`, ... in the order of the
    /// node's links in the spec).
    pub points: Vec<String>,
    /// Only frames travelling this way (`forward`: from the link's first
    /// endpoint to its second); both when absent. Two points need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub direction: Option<netslice_model::api::Direction>,
    /// When to start, Unix seconds (absent: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    /// How long (`30s`, `5m`, `1h`; at most 24h).
    #[schema(value_type = String)]
    pub duration: Micros,
    /// Counting interval (default 1s; lengthened so a window has at most
    /// 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub interval: Option<Micros>,
    /// A tcpdump (pcap-filter) expression run on the slice's frames, e.g.
    /// `tcp port 80 and host 10.0.0.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Capture the matching frames (one point only); needs `capture_bytes`.
    #[serde(default)]
    pub capture: bool,
    /// Bytes kept of each captured frame (default 262144: all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
    /// The capture's size cap, bytes: it stops there, and says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_bytes: Option<u64>,
    /// A STAMP probe (RFC 8762) instead of counting: the first point (a
    /// sliver interface: `LINK@NODE` or `NODE:IFACE`) sends test packets
    /// inside the slice to the second, the other end of the same link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeRequest>,
    /// A STAMP session-reflector at the one point (a sliver interface) for
    /// the window: it answers test packets sent to that interface's address
    /// and UDP port 862 by anyone in the slice (e.g. a sender in a sliver).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reflect: bool,
}

/// A STAMP probe's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeRequest {
    /// Test packets a second (1 to 10000; at most 200000 in a window).
    pub rate: u32,
    /// Who reflects: `netslice` (the far end's agent, default) or `sliver`
    /// (a STAMP reflector the developer runs in the far sliver, on UDP 862).
    #[serde(default)]
    pub reflector: ReflectorKind,
}

/// Who answers a probe's test packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReflectorKind {
    /// The agent of the far end's host, before the sliver sees the packet.
    #[default]
    Netslice,
    /// Whatever listens on UDP 862 in the far sliver.
    Sliver,
}

impl std::str::FromStr for ReflectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "netslice" => Ok(ReflectorKind::Netslice),
            "sliver" => Ok(ReflectorKind::Sliver),
            _ => Err(format!("{s:?}: give netslice or sliver")),
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MeasureState {
    /// Its window has not begun.
    Scheduled,
    /// Counting.
    Running,
    /// Its window ended; the results are final.
    Done,
}

impl MeasureState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            MeasureState::Scheduled => "scheduled",
            MeasureState::Running => "running",
            MeasureState::Done => "done",
        }
    }
}

/// A measurement job and its results so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeasureInfo {
    /// Job id.
    pub id: u64,
    /// Who created it.
    pub owner: String,
    /// What was asked.
    pub request: MeasureRequest,
    /// State.
    pub state: MeasureState,
    /// Window, Unix milliseconds.
    pub start_ms: u64,
    /// Window end, Unix milliseconds.
    pub end_ms: u64,
    /// Counting interval, milliseconds.
    pub interval_ms: u64,
    /// Every point, resolved, with what it counted.
    pub points: Vec<PointResult>,
    /// Frames lost between the two points (two-point jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossResult>,
    /// Bytes of capture the manager holds (capture jobs): download it
    /// from `/api/v1/measurements/{id}/capture`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_bytes: Option<u64>,
    /// What the probe's sender measured (probe jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<netslice_model::api::StampResults>,
    /// Test packets the reflector answered (reflector jobs, and probes the
    /// agents reflect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflected: Option<u64>,
    /// STAMP packets the job's points took but did not use (probe and
    /// reflector jobs): their agent was behind, or (a reflector) they were
    /// malformed or over its rate of 10,000 a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_dropped: Option<u64>,
}

/// One point of a job: where it is and what it counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PointResult {
    /// As asked.
    pub point: String,
    /// The host it is on.
    pub host: String,
    /// The virtual link.
    pub link: String,
    /// Frames the filter matched.
    pub frames: u64,
    /// Their bytes (Ethernet frames as the slice sees them).
    pub bytes: u64,
    /// Bits per second over the window so far (or all of it when done).
    pub bits_per_second: f64,
    /// Per interval: frames, bytes, bits per second.
    pub intervals: Vec<IntervalResult>,
    /// Frames captured.
    pub captured: u64,
    /// Frames not captured because the capture reached its cap.
    pub capture_full: u64,
    /// Seconds since its host last reported (`None`: not yet).
    pub age_seconds: Option<f64>,
}

/// One counting interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntervalResult {
    /// Its start, Unix milliseconds.
    pub start_ms: u64,
    /// Frames.
    pub frames: u64,
    /// Bytes.
    pub bytes: u64,
    /// Bits per second.
    pub bits_per_second: f64,
}

/// Frames lost between two points of a link in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LossResult {
    /// The point frames pass first.
    pub from: String,
    /// The point they pass after.
    pub to: String,
    /// Frames at the first.
    pub sent: u64,
    /// Frames at the second.
    pub received: u64,
    /// Sent but not received (frames in flight at the window's edges count
    /// either way).
    pub lost: u64,
    /// `lost / sent`.
    pub ratio: f64,
}

/// Options of a job list.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MeasureQuery {
    /// Only the jobs of this slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
}

/// What the manager kept of a capture upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaptureStored {
    /// Bytes kept.
    pub kept: u64,
    /// Bytes left out (the job's cap was reached).
    pub left_out: u64,
}

/// Options of a guarantee check.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// First second judged, Unix seconds (default: a minute ago; the manager
    /// keeps five minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// Whether a slice's guarantees were kept, per virtual link, direction and
/// one-second window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SliceCheck {
    /// Slice.
    pub slice: String,
    /// A window meets its guarantee when delivered >= min(offered,
    /// guaranteed) x (1 - tolerance).
    pub tolerance: f64,
    /// Every link and direction.
    pub links: Vec<LinkCheck>,
}

/// One virtual link in one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkCheck {
    /// Virtual link.
    pub link: String,
    /// Direction.
    #[schema(value_type = String)]
    pub direction: netslice_model::api::Direction,
    /// Guaranteed rate, bits per second.
    pub guaranteed_bps: u64,
    /// Windows judged.
    pub windows: Vec<Window>,
    /// How many of them were violated.
    pub violated: usize,
}

/// One second of one link and direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Window {
    /// Its start, Unix seconds.
    pub t: u64,
    /// Bits per second the sender offered (what entered at the first hop,
    /// policed frames included).
    pub offered_bps: f64,
    /// Bits per second delivered at the last hop.
    pub delivered_bps: f64,
    /// `met` or `violated`.
    pub verdict: String,
    /// Frames dropped in the window, by hop and reason.
    pub drops: Vec<HopDrop>,
    /// For a violated window: what the hops say about where the guaranteed
    /// traffic went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Frames one hop dropped for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HopDrop {
    /// Host.
    pub host: String,
    /// Reason (`queue_full`, `policed`, `loss`, ...).
    pub reason: String,
    /// Frames.
    pub frames: u64,
}
