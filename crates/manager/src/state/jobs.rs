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
use netslice_api::types::{IntervalResult, LossResult, MeasureInfo, MeasureRequest, MeasureState, PointResult};
use netslice_model::api::{BpfInsn, CaptureConfig, Direction, NodeReport, TapConfig, TapReport};
use netslice_model::{FieldError, SliceSpec};
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
}

/// What one point counted, as stored once the job is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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
        self.points
            .iter()
            .map(|p| {
                let tap = TapConfig {
                    job: self.id,
                    slice: self.slice.as_str().into(),
                    link: p.link.as_str().into(),
                    directions: self.directions.clone(),
                    stage: None,
                    filter: self.filter.clone(),
                    start_ms: self.start_ms,
                    end_ms: self.end_ms,
                    interval_ms: self.interval_ms,
                    capture: self.capture,
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
        let loss = (points.len() == 2).then(|| {
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
            }),
            state: self.state(now),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            interval_ms: self.interval_ms,
            points,
            loss,
            capture_bytes: None,
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
    if let Some((link, node)) = point.split_once('@') {
        return end_at(link, node);
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
        return end_at(link, node);
    }
    Err("a point is LINK/HOST, LINK@NODE or NODE:IFACE".into())
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
                points.push(PointV1 { point: p.clone(), host: r.host.clone(), link: r.link.clone() });
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
    let now_ms = ms(now);
    let start_ms = req.start.map(|s| s.saturating_mul(1000)).unwrap_or(now_ms);
    if start_ms + (PAST_SLACK.as_millis() as u64) < now_ms {
        bad("start", format!("{} s is in the past (now is {})", start_ms / 1000, now_ms / 1000));
    }
    if start_ms > now_ms + MAX_LEAD.as_millis() as u64 {
        bad("start", format!("at most {} days ahead", MAX_LEAD.as_secs() / 86400));
    }
    let start_ms = start_ms.max(now_ms);
    let dur_ms = req.duration.0 / 1000;
    if dur_ms < 1000 || dur_ms > MAX_DURATION.as_millis() as u64 {
        bad("duration", format!("give 1s to {}h", MAX_DURATION.as_secs() / 3600));
    }
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
        created: now_ms / 1000,
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

    /// Jobs not done of `owner`.
    pub(crate) fn open_of(&self, owner: &str) -> usize {
        self.jobs.values().filter(|j| j.owner == owner && j.results.is_none()).count()
    }

    /// The next id.
    pub(crate) fn next_id(&self) -> u64 {
        self.jobs.keys().next_back().map_or(1, |k| k + 1)
    }
}
