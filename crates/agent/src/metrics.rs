//! The agent's Prometheus endpoint (`netslice node --metrics-listen ADDR`,
//! off unless given): what this host's data plane counted, read at each
//! scrape from the counters the forwarding threads keep (nothing is copied
//! on the packet path).
//!
//! - per virtual link, direction and stage (this host is the hop): frames,
//!   bytes, drops by reason, frames and bytes waiting in the egress queue,
//!   and a histogram of how long they waited
//!   ([`netslice_api::metrics::rule_counters`], the same families the manager
//!   aggregates);
//! - per egress port: frames waiting;
//! - per substrate device (carrier sockets, packet and AF_XDP sockets):
//!   frames the kernel dropped before the agent read them, where the kernel
//!   tells (`SO_MEMINFO`, `XDP_STATISTICS`; a sliver's TAP does not);
//! - per host: forwarding threads, the I/O backend, the config revision
//!   applied, apply problems, frames that matched no rule, fast-path node
//!   programs' own counters, and the agent's start time.
//!
//! Counters start from zero when the agent starts; `process_start_time_seconds`
//! moves with them, and Prometheus's `rate()` and `increase()` take the drop
//! as the reset it is. The manager's aggregates of the same counters carry
//! across agent restarts.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use netslice_api::metrics::{Labels, counters, gauges, rule_counters};
use netslice_dataplane::Carrier;
use netslice_pipeline::PortKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::{Registry, Unit};

use crate::control::Status;
use crate::shared::Shared;

/// What the collector reads.
#[derive(Debug)]
pub(crate) struct AgentMetrics {
    pub(crate) host: String,
    pub(crate) shared: Arc<Shared>,
    pub(crate) status: Arc<ArcSwap<Status>>,
    /// The revision applied last.
    pub(crate) revision: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) started: SystemTime,
}

/// A registry holding the agent's collector.
pub(crate) fn registry(m: AgentMetrics) -> Registry {
    let mut r = Registry::with_prefix("netslice");
    r.register_collector(Box::new(m));
    r
}

impl Collector for AgentMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let host = self.host.as_str();
        let h = || -> Labels<'_> { vec![("host", host)] };
        let plane = self.shared.plane.load();
        let status = self.status.load();
        let tables = &plane.pipe.tables;

        rule_counters(&mut enc, &tables.snapshot(host))?;

        let unmatched = tables.unmatched.snapshot();
        counters(
            &mut enc,
            "unmatched_frames",
            "Frames that matched no forwarding rule, by reason",
            None,
            unmatched.iter().map(|(why, n)| (vec![("host", host), ("reason", why.as_str())], *n)),
        )?;

        let ports: Vec<(String, usize)> = plane
            .pipe
            .ports
            .iter()
            .zip(&plane.ports)
            .map(|((key, _), driver)| (port_name(key), driver.backlog()))
            .collect();
        gauges(
            &mut enc,
            "port_queued_frames",
            "Frames waiting in an egress port's scheduler",
            None,
            ports.iter().map(|(p, n)| (vec![("host", host), ("port", p.as_str())], *n as f64)),
        )?;

        let drops = self.kernel_drops(&plane.pipe.ports);
        counters(
            &mut enc,
            "kernel_dropped_frames",
            "Frames the kernel dropped at a substrate socket before the agent read them (full receive queue or ring)",
            None,
            drops.iter().map(|(d, n)| (vec![("host", host), ("device", d.as_str())], *n)),
        )?;

        let programs: Vec<(String, String, String, u64)> = plane
            .pipe
            .nodes
            .iter()
            .zip(&plane.programs)
            .flat_map(|(n, p)| {
                let stats = p.lock().map(|p| p.stats()).unwrap_or_default();
                let (slice, node) = (n.config.slice.to_string(), n.config.node.to_string());
                stats.into_iter().map(move |(k, v)| (slice.clone(), node.clone(), k, v))
            })
            .collect();
        gauges(
            &mut enc,
            "node_program_stat",
            "A fast-path node program's own figures (table entries, frames flooded, ...), by name",
            None,
            programs.iter().map(|(s, n, k, v)| {
                (vec![("host", host), ("slice", s.as_str()), ("node", n.as_str()), ("name", k.as_str())], *v as f64)
            }),
        )?;

        gauges(
            &mut enc,
            "forwarding_threads",
            "Threads forwarding frames (receivers, port pollers, workers)",
            None,
            [(h(), status.threads.len() as f64)],
        )?;
        let version = env!("CARGO_PKG_VERSION");
        gauges(
            &mut enc,
            "agent_info",
            "The agent's version and substrate I/O backend (always 1)",
            None,
            [(vec![("host", host), ("version", version), ("io_backend", status.backend.as_str())], 1.0)],
        )?;
        gauges(
            &mut enc,
            "config_revision",
            "Revision of the desired config applied last",
            None,
            [(h(), self.revision.load(std::sync::atomic::Ordering::Relaxed) as f64)],
        )?;
        gauges(
            &mut enc,
            "apply_problems",
            "Problems of the last apply (0 when everything applied)",
            None,
            [(h(), status.reported().len() as f64)],
        )?;
        let start = self.started.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        gauges(
            &mut enc,
            "agent_start_time",
            "When the agent started, Unix time (its counters started from zero then)",
            Some(&Unit::Seconds),
            [(h(), start)],
        )
    }
}

impl AgentMetrics {
    /// Kernel drop counts of the substrate sockets, by device name.
    fn kernel_drops(&self, ports: &[(PortKey, netslice_pipeline::PortKind)]) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for c in &self.shared.carriers {
            let name = match c.carrier {
                Carrier::IpProto(p) => format!("raw-ip-proto-{p}"),
                Carrier::Udp(p) => format!("udp-{p}"),
                Carrier::Ethernet(t) => format!("ethertype-{t:04x}"),
            };
            if let Ok(n) = netslice_io::sockopt::socket_drops(c.sock.fd()) {
                out.push((name, n));
            }
        }
        let underlay = |index: usize| {
            ports.iter().find_map(|(k, kind)| match (k, kind) {
                (PortKey::Underlay(name), netslice_pipeline::PortKind::Underlay { index: i, .. }) if *i == index => {
                    Some(name.to_string())
                }
                _ => None,
            })
        };
        for (i, s) in self.shared.ether.load().iter().enumerate() {
            if let (Some(s), Some(link)) = (s, underlay(i))
                && let Ok(n) = netslice_io::sockopt::socket_drops(s.fd())
            {
                out.push((format!("packet-{link}"), n));
            }
        }
        for (i, x) in self.shared.xsk.load().iter().enumerate() {
            if let (Some(x), Some(link)) = (x, underlay(i))
                && let Ok(n) = x.xsk.kernel_drops()
            {
                out.push((format!("xdp-{link}"), n));
            }
        }
        out
    }
}

fn port_name(key: &PortKey) -> String {
    match key {
        PortKey::Underlay(name) => format!("link-{name}"),
        PortKey::Tap(port) => format!("sliver-port-{port}"),
    }
}

/// Serves `GET /metrics` on `listener` until aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, registry: Registry) {
    use axum::http::{HeaderMap, StatusCode, header};
    let registry = Arc::new(registry);
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move |headers: HeaderMap| {
                let registry = registry.clone();
                async move {
                    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
                    let (ct, body) = netslice_api::metrics::exposition(&registry, accept);
                    ([(header::CONTENT_TYPE, ct)], body)
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!("metrics endpoint stopped: {e}");
    }
}
