//! Measurement jobs (the NW Monitoring Manager's jobs): a slice, one or two
//! points, a window, a filter. Creating one resolves its points against the
//! slice's plan to hosts and rules, compiles its filter once (libpcap,
//! [`crate::filter`]), stores it, and puts a tap on each point's host in
//! that host's desired config; agents count (and capture) within the
//! window and report what their taps saw. Once the window has ended and the
//! last reports had time to come, housekeeping writes the results into the
//! job and takes the taps away. Jobs are authorised like slices: a
//! developer creates and reads jobs on their own slices only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imbl::OrdMap;
use netslice_api::types::{
    IntervalResult, LossResult, MeasureInfo, MeasureRequest, MeasureState, PointResult, ReflectorKind,
};
use std::net::Ipv4Addr;

use netslice_model::api::{
    BpfInsn, CaptureConfig, Direction, NodeReport, ProbeConfig, ProbeRole, StampResults, StampSession, TapConfig,
    TapReport,
};
use netslice_model::{FieldError, PortNo, SliceSpec};
use netslice_wire::MacAddr;
use serde::{Deserialize, Serialize};

use super::common::ManagerError;
use crate::store::SliceRow;

/// Longest window.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Furthest a window may start ahead.
pub const MAX_LEAD: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far in the past a start may be (clocks differ a little).
pub const PAST_SLACK: Duration = Duration::from_secs(5);
/// Jobs not yet done, per user.
pub const MAX_OPEN_PER_USER: usize = 16;
/// Time after a window for the agents' last reports (they report every 2 s).
pub const FINAL_GRACE: Duration = Duration::from_secs(5);
/// Largest capture cap.
pub const MAX_CAPTURE_BYTES: u64 = 1 << 30;
/// Default bytes kept per captured frame (all of any frame).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// One point of a job as stored: where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointV1 {
    /// As asked.
    pub point: String,
    /// Host.
    pub host: String,
    /// Virtual link.
    pub link: String,
    /// A STAMP endpoint instead of a counting tap (probe and reflector jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeEndV1>,
}

/// A STAMP endpoint at a sliver interface, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeEndV1 {
    /// The interface's port on its host.
    pub port: u32,
    /// Its MAC address.
    pub mac: MacAddr,
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// A sender's rate and reflector; `None`: a reflector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sends: Option<SendsV1>,
}

/// What a STAMP sender sends, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendsV1 {
    /// Test packets a second.
    pub rate: u32,
    /// The reflecting interface's MAC address.
    pub peer_mac: MacAddr,
    /// Its IPv4 address.
    pub peer_ip: Ipv4Addr,
}

/// A job's STAMP session identifier (RFC 8972): never 0.
pub fn ssid(job: u64) -> u16 {
    (job % 65_535 + 1) as u16
}

/// The UDP source port of a job's test packets (dynamic ports, 49152 up).
pub fn src_port(job: u64) -> u16 {
    49_152 + (job % 16_384) as u16
}

/// What one point counted, as stored once the job is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CountsV1 {
    /// Per interval: frames, bytes.
    pub intervals: Vec<[u64; 2]>,
    /// Frames.
    pub frames: u64,
    /// Bytes.
    pub bytes: u64,
    /// Frames captured.
    pub captured: u64,
    /// Frames the cap left out.
    pub capture_full: u64,
    /// A STAMP sender's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<StampResults>,
    /// Test packets a STAMP reflector answered.
    #[serde(default)]
    pub reflected: u64,
    /// STAMP packets a probe point took but did not use.
    #[serde(default)]
    pub probe_dropped: u64,
}

/// A job as stored (version 1; its own shape, not the API's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobV1 {
    /// Id.
    pub id: u64,
    /// Who created it.
    pub owner: String,
    /// Slice.
    pub slice: String,
    /// The request as made (its JSON; shown back as it was asked).
    pub request: serde_json::Value,
    /// Resolved points.
    pub points: Vec<PointV1>,
    /// Directions observed.
    pub directions: Vec<Direction>,
    /// Compiled filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<BpfInsn>>,
    /// Window, Unix ms.
    pub start_ms: u64,
    /// Window end, Unix ms.
    pub end_ms: u64,
    /// Interval, ms.
    pub interval_ms: u64,
    /// Capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureConfig>,
    /// Created, Unix seconds.
    pub created: u64,
    /// Final counts per point (set when done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<CountsV1>>,
}

impl JobV1 {
    /// Its state at `now`.
    pub fn state(&self, now: SystemTime) -> MeasureState {
        if self.results.is_some() {
            MeasureState::Done
        } else if ms(now) < self.start_ms {
            MeasureState::Scheduled
        } else {
            MeasureState::Running
        }
    }

    /// Its taps, by host.
    pub fn taps(&self) -> Vec<(String, TapConfig)> {
        // A probe's reflector answers its sender's session only.
        let session = self
            .points
            .iter()
            .find_map(|p| p.probe.as_ref().filter(|e| e.sends.is_some()))
            .map(|e| StampSession { ip: e.ip, port: src_port(self.id), ssid: ssid(self.id) });
        self.points
            .iter()
            .map(|p| {
                let probe = p.probe.as_ref().map(|e| ProbeConfig {
                    role: match &e.sends {
                        Some(s) => ProbeRole::Sender {
                            ssid: ssid(self.id),
                            rate: s.rate,
                            src_port: src_port(self.id),
                            peer_mac: s.peer_mac,
                            peer_ip: s.peer_ip,
                        },
                        None => ProbeRole::Reflector { session },
                    },
                    port: PortNo(e.port),
                    mac: e.mac,
                    ip: e.ip,
                });
                let tap = TapConfig {
                    job: self.id,
                    slice: self.slice.as_str().into(),
                    link: p.link.as_str().into(),
                    directions: if probe.is_some() { Vec::new() } else { self.directions.clone() },
                    stage: None,
                    filter: self.filter.clone(),
                    start_ms: self.start_ms,
                    end_ms: self.end_ms,
                    interval_ms: self.interval_ms,
                    capture: self.capture,
                    probe,
                };
                (p.host.clone(), tap)
            })
            .collect()
    }

    /// Whether the window ended long enough ago for the last reports.
    pub fn due(&self, now: SystemTime) -> bool {
        self.results.is_none() && ms(now) >= self.end_ms + FINAL_GRACE.as_millis() as u64
    }

    /// What each point counted: the final counts, or the latest reports.
    pub fn counts(
        &self,
        report_of: impl Fn(&str) -> Option<(SystemTime, Arc<NodeReport>)>,
    ) -> Vec<(CountsV1, Option<SystemTime>)> {
        if let Some(r) = &self.results {
            return r.iter().map(|c| (c.clone(), None)).collect();
        }
        self.points
            .iter()
            .map(|p| match report_of(&p.host) {
                Some((at, rep)) => {
                    let t = rep.taps.iter().find(|t| t.job == self.id).cloned().unwrap_or_default();
                    (counts_of(&t), Some(at))
                }
                None => (CountsV1::default(), None),
            })
            .collect()
    }

    /// The job as the API shows it at `now`.
    pub fn info(
        &self,
        now: SystemTime,
        report_of: impl Fn(&str) -> Option<(SystemTime, Arc<NodeReport>)>,
    ) -> MeasureInfo {
        let counts = self.counts(report_of);
        let elapsed_ms = ms(now).clamp(self.start_ms, self.end_ms) - self.start_ms;
        let points: Vec<PointResult> = self
            .points
            .iter()
            .zip(&counts)
            .map(|(p, (c, at))| {
                let secs = if self.results.is_some() { self.end_ms - self.start_ms } else { elapsed_ms } as f64 / 1e3;
                let iv = self.interval_ms as f64 / 1e3;
                PointResult {
                    point: p.point.clone(),
                    host: p.host.clone(),
                    link: p.link.clone(),
                    frames: c.frames,
                    bytes: c.bytes,
                    bits_per_second: if secs > 0.0 { c.bytes as f64 * 8.0 / secs } else { 0.0 },
                    intervals: c
                        .intervals
                        .iter()
                        .enumerate()
                        .map(|(i, [f, b])| IntervalResult {
                            start_ms: self.start_ms + i as u64 * self.interval_ms,
                            frames: *f,
                            bytes: *b,
                            bits_per_second: *b as f64 * 8.0 / iv,
                        })
                        .collect(),
                    captured: c.captured,
                    capture_full: c.capture_full,
                    age_seconds: at.map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64()),
                }
            })
            .collect();
        let probing = self.points.iter().any(|p| p.probe.is_some());
        let stamp = counts.iter().find_map(|(c, _)| c.stamp.clone());
        let reflected = self
            .points
            .iter()
            .zip(&counts)
            .filter(|(p, _)| p.probe.as_ref().is_some_and(|e| e.sends.is_none()))
            .map(|(_, (c, _))| c.reflected)
            .reduce(|a, b| a + b);
        let probe_dropped = probing.then(|| counts.iter().map(|(c, _)| c.probe_dropped).sum());
        let loss = (points.len() == 2 && !probing).then(|| {
            let (a, b) = (&points[0], &points[1]);
            let (sent, received) = (a.frames, b.frames);
            let lost = sent.saturating_sub(received);
            LossResult {
                from: a.point.clone(),
                to: b.point.clone(),
                sent,
                received,
                lost,
                ratio: if sent > 0 { lost as f64 / sent as f64 } else { 0.0 },
            }
        });
        MeasureInfo {
            id: self.id,
            owner: self.owner.clone(),
            request: serde_json::from_value(self.request.clone()).unwrap_or_else(|_| MeasureRequest {
                slice: self.slice.clone(),
                points: self.points.iter().map(|p| p.point.clone()).collect(),
                direction: None,
                start: None,
                duration: netslice_model::Micros::from_secs(0),
                interval: None,
                filter: None,
                capture: self.capture.is_some(),
                snaplen: None,
                capture_bytes: None,
                probe: None,
                reflect: false,
            }),
            state: self.state(now),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            interval_ms: self.interval_ms,
            points,
            loss,
            capture_bytes: None,
            stamp,
            reflected,
            probe_dropped,
        }
    }
}

fn counts_of(t: &TapReport) -> CountsV1 {
    CountsV1 {
        intervals: t.intervals.clone(),
        frames: t.frames,
        bytes: t.bytes,
        captured: t.captured,
        capture_full: t.capture_full,
        stamp: t.stamp.clone(),
        reflected: t.reflected,
        probe_dropped: t.probe_dropped,
    }
}

/// A point resolved on a slice: the host, the virtual link, and for a
/// link end the path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Host.
    pub host: String,
    /// Virtual link.
    pub link: String,
    /// Index of the host on the link's path (endpoint 0 first).
    pub hop: usize,
}

/// The link and node of a point that names a link's end (`LINK@NODE` or
/// `NODE:IFACE`); `None` for a hop (`LINK/HOST`).
fn end_of(point: &str, spec: &SliceSpec) -> Result<Option<(String, String)>, String> {
    if point.contains('/') {
        return Ok(None);
    }
    if let Some((link, node)) = point.split_once('@') {
        return Ok(Some((link.to_string(), node.to_string())));
    }
    if let Some((node, iface)) = point.split_once(':') {
        spec.node(node).ok_or_else(|| format!("the slice has no node {node:?}"))?;
        let links: Vec<&str> =
            spec.links.iter().filter(|l| l.endpoints.iter().any(|e| e.node == node)).map(|l| l.name.as_str()).collect();
        let index = iface
            .strip_prefix("eth")
            .unwrap_or(iface)
            .parse::<usize>()
            .map_err(|_| format!("interface {iface:?}: give eth0, eth1, ... or 0, 1, ..."))?;
        let link = links.get(index).ok_or_else(|| {
            format!("node {node:?} has {} interface(s) (eth0..eth{})", links.len(), links.len().saturating_sub(1))
        })?;
        return Ok(Some((link.to_string(), node.to_string())));
    }
    Err("a point is LINK/HOST, LINK@NODE or NODE:IFACE".into())
}

/// Resolves a point for a STAMP endpoint: a sliver interface (not a hop,
/// not a fast-path node's port) with an IPv4 address.
pub fn probe_end(point: &str, spec: &SliceSpec, row: &SliceRow) -> Result<(Resolved, ProbeEndV1), String> {
    let Some((link, node)) = end_of(point, spec)? else {
        return Err("a STAMP point is a sliver interface (LINK@NODE or NODE:IFACE), not a hop".into());
    };
    let r = resolve(point, spec, row)?;
    let np = row.plan.node(&node).ok_or_else(|| format!("node {node:?} is not placed"))?;
    if np.netns.is_none() {
        return Err(format!("node {node:?} is a fast-path node: STAMP runs between sliver interfaces"));
    }
    let iface = np
        .interfaces
        .iter()
        .find(|i| i.link == link)
        .ok_or_else(|| format!("node {node:?} has no interface on link {link:?}"))?;
    let l =
        spec.links.iter().find(|l| l.name == link).ok_or_else(|| format!("the slice has no virtual link {link:?}"))?;
    let ip = l
        .endpoints
        .get(usize::from(iface.endpoint))
        .into_iter()
        .flat_map(|e| e.all_addresses())
        .find_map(|a| match a.addr() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("{point}: the interface has no IPv4 address for STAMP to use"))?;
    Ok((r, ProbeEndV1 { port: iface.port, mac: iface.mac, ip, sends: None }))
}

/// Resolves `point` on a slice.
pub fn resolve(point: &str, spec: &SliceSpec, row: &SliceRow) -> Result<Resolved, String> {
    let on_path = |link: &str, host: &str| -> Result<Resolved, String> {
        let plan = row.plan.link(link).ok_or_else(|| format!("the slice has no virtual link {link:?}"))?;
        let hop = plan
            .path
            .iter()
            .position(|h| h == host)
            .ok_or_else(|| format!("host {host:?} is not on link {link:?}'s path ({})", plan.path.join(" -> ")))?;
        Ok(Resolved { host: host.to_string(), link: link.to_string(), hop })
    };
    let end_at = |link: &str, node: &str| -> Result<Resolved, String> {
        let l = spec
            .links
            .iter()
            .find(|l| l.name == link)
            .ok_or_else(|| format!("the slice has no virtual link {link:?}"))?;
        if !l.endpoints.iter().any(|e| e.node == node) {
            return Err(format!("node {node:?} is not an endpoint of link {link:?}"));
        }
        let host = row.plan.node(node).map(|n| n.host.clone()).ok_or_else(|| format!("node {node:?} is not placed"))?;
        on_path(link, &host)
    };
    if let Some((link, host)) = point.split_once('/') {
        return on_path(link, host);
    }
    match end_of(point, spec)? {
        Some((link, node)) => end_at(&link, &node),
        None => Err("a point is LINK/HOST, LINK@NODE or NODE:IFACE".into()),
    }
}

/// The window asked for (start and length, ms), checked against the clock.
fn window(req: &MeasureRequest, now: SystemTime, bad: &mut impl FnMut(&str, String)) -> (u64, u64) {
    let now_ms = ms(now);
    let start_ms = req.start.map(|s| s.saturating_mul(1000)).unwrap_or(now_ms);
    if start_ms + (PAST_SLACK.as_millis() as u64) < now_ms {
        bad("start", format!("{} s is in the past (now is {})", start_ms / 1000, now_ms / 1000));
    }
    if start_ms > now_ms + MAX_LEAD.as_millis() as u64 {
        bad("start", format!("at most {} days ahead", MAX_LEAD.as_secs() / 86400));
    }
    let dur_ms = req.duration.0 / 1000;
    if dur_ms < 1000 || dur_ms > MAX_DURATION.as_millis() as u64 {
        bad("duration", format!("give 1s to {}h", MAX_DURATION.as_secs() / 3600));
    }
    (start_ms.max(now_ms), dur_ms)
}

/// Most test packets a probe sends a second.
pub const MAX_PROBE_RATE: u32 = 10_000;
/// Most test packets a second one host's STAMP senders send together.
pub const MAX_HOST_PROBE_RATE: u64 = 20_000;
/// Most test packets in one probe's window (what its sender keeps is bounded).
pub const MAX_PROBES: u64 = 200_000;

/// Checks a probe or reflector request (see [`plan_job`]).
fn plan_probe(req: &MeasureRequest, row: &SliceRow, owner: &str, now: SystemTime) -> Result<JobV1, ManagerError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, msg: String| errors.push(FieldError::new(field, msg));
    let (start_ms, dur_ms) = window(req, now, &mut bad);
    let what = if req.reflect { "a reflector" } else { "a probe" };
    for (set, field) in [
        (req.direction.is_some(), "direction"),
        (req.filter.is_some(), "filter"),
        (req.capture, "capture"),
        (req.snaplen.is_some(), "snaplen"),
        (req.capture_bytes.is_some(), "capture_bytes"),
        (req.interval.is_some(), "interval"),
    ] {
        if set {
            bad(field, format!("{what} takes no {field}"));
        }
    }
    let mut points = Vec::new();
    if let Some(p) = &req.probe {
        if req.reflect {
            bad("reflect", "a job is a probe or a reflector, not both".into());
        }
        if p.rate == 0 || p.rate > MAX_PROBE_RATE {
            bad("probe.rate", format!("1 to {MAX_PROBE_RATE} test packets a second"));
        } else if u64::from(p.rate) * dur_ms / 1000 > MAX_PROBES {
            bad("probe.rate", format!("at most {MAX_PROBES} test packets in a window: lower the rate or the duration"));
        }
        if req.points.len() != 2 {
            bad("points", format!("a probe has two points (sender, reflector), not {}", req.points.len()));
        }
        let ends: Vec<Option<(Resolved, ProbeEndV1)>> = req
            .points
            .iter()
            .take(2)
            .enumerate()
            .map(|(i, pt)| match probe_end(pt, &row.spec, row) {
                Ok(e) => Some(e),
                Err(e) => {
                    bad(&format!("points[{i}]"), e);
                    None
                }
            })
            .collect();
        if let [Some((ra, a)), Some((rb, b))] = ends.as_slice() {
            if ra.link != rb.link {
                bad("points", format!("a probe runs along one link ({} and {} differ)", ra.link, rb.link));
            } else if a.ip == b.ip {
                bad("points", "the two points are the same interface".into());
            } else {
                let sends = SendsV1 { rate: p.rate, peer_mac: b.mac, peer_ip: b.ip };
                let sender = ProbeEndV1 { sends: Some(sends), ..a.clone() };
                let point = |pt: &str, r: &Resolved, e| PointV1 {
                    point: pt.to_string(),
                    host: r.host.clone(),
                    link: r.link.clone(),
                    probe: Some(e),
                };
                points.push(point(&req.points[0], ra, sender));
                if p.reflector == ReflectorKind::Netslice {
                    points.push(point(&req.points[1], rb, b.clone()));
                }
            }
        }
    } else {
        if req.points.len() != 1 {
            bad("points", format!("a reflector has one point, not {}", req.points.len()));
        }
        if let Some(pt) = req.points.first() {
            match probe_end(pt, &row.spec, row) {
                Ok((r, e)) => points.push(PointV1 { point: pt.clone(), host: r.host, link: r.link, probe: Some(e) }),
                Err(e) => bad("points[0]", e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(ManagerError::Invalid { what: "measurement job", errors });
    }
    Ok(JobV1 {
        id: 0,
        owner: owner.to_string(),
        slice: req.slice.clone(),
        request: serde_json::to_value(req).expect("requests serialize"),
        points,
        directions: Vec::new(),
        filter: None,
        start_ms,
        end_ms: start_ms + dur_ms,
        interval_ms: dur_ms.max(1),
        capture: None,
        created: ms(now) / 1000,
        results: None,
    })
}

/// Checks a request against a slice and the clock; returns the job (id 0:
/// the caller numbers it) or every field error.
pub fn plan_job(
    req: &MeasureRequest,
    row: &SliceRow,
    owner: &str,
    now: SystemTime,
    compile: impl Fn(&str) -> Result<Vec<BpfInsn>, String>,
) -> Result<JobV1, ManagerError> {
    if req.probe.is_some() || req.reflect {
        return plan_probe(req, row, owner, now);
    }
    let mut errors = Vec::new();
    let mut bad = |field: &str, msg: String| errors.push(FieldError::new(field, msg));
    let mut points = Vec::new();
    let mut resolved = Vec::new();
    if req.points.is_empty() || req.points.len() > 2 {
        bad("points", format!("give one point or two of the same link, not {}", req.points.len()));
    }
    for (i, p) in req.points.iter().enumerate().take(2) {
        match resolve(p, &row.spec, row) {
            Ok(r) => {
                points.push(PointV1 { point: p.clone(), host: r.host.clone(), link: r.link.clone(), probe: None });
                resolved.push(r);
            }
            Err(e) => bad(&format!("points[{i}]"), e),
        }
    }
    if resolved.len() == 2 {
        if resolved[0].link != resolved[1].link {
            bad(
                "points",
                format!("the two points are on different links ({} and {})", resolved[0].link, resolved[1].link),
            );
        } else if resolved[0].host == resolved[1].host {
            bad("points", "the two points are on the same host".into());
        }
        if req.direction.is_none() {
            bad("direction", "two points measure loss in one direction: give forward or reverse".into());
        }
    }
    // Two points: the first is the one frames pass first.
    if let (2, Some(d)) = (resolved.len(), req.direction)
        && (resolved[0].hop > resolved[1].hop) == (d == Direction::Forward)
    {
        points.swap(0, 1);
    }
    let (start_ms, dur_ms) = window(req, now, &mut bad);
    let interval_ms = req.interval.map(|i| i.0 / 1000).unwrap_or(1000);
    if interval_ms < 100 {
        bad("interval", "at least 100ms".into());
    }
    let filter = match &req.filter {
        Some(f) if f.len() > 4096 => {
            bad("filter", "longer than 4096 characters".into());
            None
        }
        Some(f) => match compile(f) {
            Ok(p) => Some(p),
            Err(e) => {
                bad("filter", e);
                None
            }
        },
        None => None,
    };
    let capture = if req.capture {
        if req.points.len() != 1 {
            bad("capture", "a capture has one point".into());
        }
        let snaplen = req.snaplen.unwrap_or(DEFAULT_SNAPLEN);
        if snaplen == 0 || snaplen > DEFAULT_SNAPLEN {
            bad("snaplen", format!("1 to {DEFAULT_SNAPLEN} bytes"));
        }
        match req.capture_bytes {
            None => {
                bad("capture_bytes", "a capture needs a size cap (e.g. 10Mi): nothing grows without bound".into());
                None
            }
            Some(b) if b == 0 || b > MAX_CAPTURE_BYTES => {
                bad("capture_bytes", format!("1 byte to {} MiB", MAX_CAPTURE_BYTES >> 20));
                None
            }
            Some(b) => Some(CaptureConfig { snaplen, max_bytes: b }),
        }
    } else {
        if req.snaplen.is_some() || req.capture_bytes.is_some() {
            bad("capture", "snaplen and capture_bytes go with capture".into());
        }
        None
    };
    if !errors.is_empty() {
        return Err(ManagerError::Invalid { what: "measurement job", errors });
    }
    Ok(JobV1 {
        id: 0,
        owner: owner.to_string(),
        slice: req.slice.clone(),
        request: serde_json::to_value(req).expect("requests serialize"),
        points,
        directions: req.direction.map(|d| vec![d]).unwrap_or_else(|| Direction::BOTH.to_vec()),
        filter,
        start_ms,
        end_ms: start_ms + dur_ms,
        interval_ms,
        capture,
        created: ms(now) / 1000,
        results: None,
    })
}

/// Every job, by id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jobs {
    pub(crate) jobs: OrdMap<u64, Arc<JobV1>>,
}

impl Jobs {
    /// The taps every host should have: those of jobs not done yet.
    pub(crate) fn taps(&self) -> BTreeMap<String, Vec<TapConfig>> {
        let mut out: BTreeMap<String, Vec<TapConfig>> = BTreeMap::new();
        for j in self.jobs.values().filter(|j| j.results.is_none()) {
            for (h, t) in j.taps() {
                out.entry(h).or_default().push(t);
            }
        }
        out
    }

    /// Why `job`'s STAMP endpoints cannot run beside the open jobs' (`None`:
    /// they can): two reflector jobs (answering anyone) at one interface at
    /// once would split its test packets between them (a probe's own
    /// reflector takes its session's only), and one host's senders together send at
    /// most [`MAX_HOST_PROBE_RATE`] test packets a second (one probe thread
    /// per host serves every slice's).
    pub(crate) fn probe_conflict(&self, job: &JobV1) -> Option<String> {
        let overlapping =
            self.jobs.values().filter(|j| j.results.is_none() && j.start_ms < job.end_ms && job.start_ms < j.end_ms);
        // (host, end, whether it answers anyone: a reflector job's end).
        let ends = |j: &JobV1| -> Vec<(String, ProbeEndV1, bool)> {
            let probing = j.points.iter().any(|p| p.probe.as_ref().is_some_and(|e| e.sends.is_some()));
            j.points.iter().filter_map(|p| p.probe.clone().map(|e| (p.host.clone(), e, !probing))).collect()
        };
        let mine = ends(job);
        let mut rates: BTreeMap<String, u64> = BTreeMap::new();
        for (h, e, _) in &mine {
            if let Some(s) = &e.sends {
                *rates.entry(h.clone()).or_default() += u64::from(s.rate);
            }
        }
        for other in overlapping {
            for (h, e, anyone) in ends(other) {
                if let Some(s) = &e.sends {
                    if let Some(r) = rates.get_mut(&h) {
                        *r += u64::from(s.rate);
                    }
                } else if anyone && mine.iter().any(|(mh, me, a)| *a && *mh == h && me.port == e.port) {
                    return Some(format!(
                        "that interface already has a STAMP reflector in that window (job {}): use it, or wait",
                        other.id
                    ));
                }
            }
        }
        rates.into_iter().find(|(_, r)| *r > MAX_HOST_PROBE_RATE).map(|(h, r)| {
            format!(
                "host {h}'s STAMP senders would send {r} test packets a second in that window, at most {MAX_HOST_PROBE_RATE}: lower the rate or move the window"
            )
        })
    }

    /// Jobs not done of `owner`.
    pub(crate) fn open_of(&self, owner: &str) -> usize {
        self.jobs.values().filter(|j| j.owner == owner && j.results.is_none()).count()
    }

    /// The next id.
    pub(crate) fn next_id(&self) -> u64 {
        self.jobs.keys().next_back().map_or(1, |k| k + 1)
    }
}
