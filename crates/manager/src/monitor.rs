//! The manager's Prometheus endpoint (`GET /metrics`, operators' tokens):
//!
//! - every virtual link's counters per host and stage, from the agents'
//!   reports, carried across agent restarts (the same families as the
//!   agents' own endpoints, [`netslice_api::metrics::rule_counters`]);
//! - slices by state, hosts by state, agent restarts seen;
//! - admissions: applies and dry runs by outcome (and, when a slice cannot
//!   be placed, why);
//! - API latency per route, method and status class.
//!
//! The state-derived families are read from the snapshot at each scrape;
//! the event counters live here.

use std::time::SystemTime;

use netslice_api::metrics::{Labels, counters, gauges, rule_counters};
use netslice_model::api::{HostState, SliceState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::owner::Manager;

type Owned = Vec<(&'static str, String)>;

fn latency() -> Histogram {
    // 0.25 ms to ~4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The manager's metrics: a registry with the snapshot collector and the
/// event counters.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Owned, Histogram, fn() -> Histogram>,
    admissions: Family<Owned, Counter>,
}

impl Metrics {
    /// Metrics of the manager run by `manager`.
    pub fn new(manager: Manager) -> Metrics {
        let mut registry = Registry::with_prefix("netslice");
        let requests =
            Family::<Owned, Histogram, fn() -> Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let admissions = Family::<Owned, Counter>::default();
        registry.register_with_unit(
            "api_request_duration",
            "Time the API took to answer, by route, method and status class",
            Unit::Seconds,
            requests.clone(),
        );
        registry.register(
            "admissions",
            "Slice applies and dry runs, by outcome (`created`, `updated`, `unchanged`, `admitted` for a dry run, or the problem code) and, for slices that cannot be placed, the reason",
            admissions.clone(),
        );
        registry.register_collector(Box::new(StateCollector { manager }));
        Metrics { registry, requests, admissions }
    }

    /// The registry, to encode.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records an API request.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = format!("{}xx", status / 100);
        self.requests
            .get_or_create(&vec![("route", route.to_string()), ("method", method.to_string()), ("status", class)])
            .observe(seconds);
    }

    /// Records the outcome of an apply (or a dry run): `created`,
    /// `updated`, `unchanged`, `admitted` (a dry run) or the problem code,
    /// and for a slice that cannot be placed, why.
    pub fn admission(&self, dry_run: bool, outcome: &str, reason: Option<&str>) {
        let operation = if dry_run { "dry_run" } else { "apply" };
        let mut labels = vec![("operation", operation.to_string()), ("outcome", outcome.to_string())];
        if let Some(r) = reason {
            labels.push(("reason", r.to_string()));
        }
        self.admissions.get_or_create(&labels).inc();
    }
}

/// Reads the state's families from the snapshot at each scrape.
#[derive(Debug)]
struct StateCollector {
    manager: Manager,
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let snap = self.manager.snapshot();
        let now = SystemTime::now();
        let rules: Vec<_> = snap.fleet.values().flat_map(|h| h.totals.rules()).collect();
        rule_counters(&mut enc, &rules)?;

        let mut by_state = [0u64; 5];
        let states = [
            SliceState::Allocated,
            SliceState::Provisioning,
            SliceState::Ready,
            SliceState::Failed,
            SliceState::Deleting,
        ];
        for (name, row) in snap.slices.iter() {
            let s = snap.slice_state(now, name, row).0;
            if let Some(i) = states.iter().position(|x| *x == s) {
                by_state[i] += 1;
            }
        }
        gauges(
            &mut enc,
            "slices",
            "Slices, by state",
            None,
            states.iter().zip(by_state).map(|(s, n)| (vec![("state", s.as_str())], n as f64)),
        )?;

        let hosts = snap.hosts(now);
        let state_name = |s: HostState| match s {
            HostState::Unknown => "unknown",
            HostState::Ready => "ready",
            HostState::Down => "down",
        };
        gauges(
            &mut enc,
            "host_up",
            "Whether a host's agent reported within the last 10 s (1) or not (0)",
            None,
            hosts.iter().map(|h| {
                let l: Labels<'_> = vec![("host", h.name.as_str()), ("state", state_name(h.state))];
                (l, if h.state == HostState::Ready { 1.0 } else { 0.0 })
            }),
        )?;
        counters(
            &mut enc,
            "agent_restarts",
            "Agent restarts the manager saw in reports (their counters carried on)",
            None,
            snap.fleet.iter().map(|(h, rt)| (vec![("host", h.as_str())], rt.totals.restarts)),
        )?;
        let verdicts: Vec<(Labels<'_>, u64)> = snap
            .verdicts
            .iter()
            .flat_map(|((slice, link, dir), v)| {
                [("met", v.met), ("violated", v.violated)].map(|(verdict, n)| {
                    let l: Labels<'_> = vec![
                        ("slice", slice.as_str()),
                        ("link", link.as_str()),
                        ("direction", dir.as_str()),
                        ("verdict", verdict),
                    ];
                    (l, n)
                })
            })
            .collect();
        counters(
            &mut enc,
            "guarantee_windows",
            "One-second windows of the guarantee check (slice check), by verdict: met when delivered >= min(offered, guaranteed) within the tolerance",
            None,
            verdicts,
        )?;
        gauges(
            &mut enc,
            "config_revision",
            "The global revision of desired configs",
            None,
            [(Vec::new(), snap.revision() as f64)],
        )
    }
}
