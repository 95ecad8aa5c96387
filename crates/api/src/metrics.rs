//! The Prometheus endpoints' exposition: a `prometheus-client` registry
//! encoded as the scraper asks. Prometheus servers ask for OpenMetrics
//! (`Accept: application/openmetrics-text`) and get what the library writes;
//! everything else (curl, `promtool check metrics`, older scrapers) gets the
//! classic text format 0.0.4, where a counter's family is named with its
//! `_total` suffix and there are no `# UNIT` or `# EOF` lines. The two carry
//! the same samples.

use std::collections::BTreeSet;
use std::fmt;

use netslice_model::api::{DelayHistogram, Direction, QUEUE_DELAY_BOUNDS_NS, RuleCounters, Stage};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// Content type of OpenMetrics text 1.0.0.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `registry` encoded for a scraper whose `Accept` header is `accept`:
/// the content type and the body.
pub fn exposition(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut om = String::new();
    // Encoding into a String fails only by a collector's own error; what
    // was written up to there is served, with a comment saying so.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut om, registry) {
        om.push_str(&format!("# encoding stopped: {e}\n"));
    }
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        (OPENMETRICS, om)
    } else {
        (PROMETHEUS_TEXT, to_prometheus_text(&om))
    }
}

/// OpenMetrics text as the classic Prometheus text format 0.0.4.
pub fn to_prometheus_text(om: &str) -> String {
    let counters: BTreeSet<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len() + 16 * counters.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = if tail == "unknown" { "untyped" } else { tail };
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                if !tail.is_empty() || rest.contains(' ') {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Labels of one sample: `(name, value)` pairs.
pub type Labels<'a> = Vec<(&'static str, &'a str)>;

/// Writes a family of counters (one sample per row); nothing when there are
/// no rows (a family without samples says nothing).
pub fn counters<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> fmt::Result {
    family(enc, name, help, unit, MetricType::Counter, rows, |m, v| ConstCounter::new(*v).encode(m))
}

/// Writes a family of gauges, like [`counters`].
pub fn gauges<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> fmt::Result {
    family(enc, name, help, unit, MetricType::Gauge, rows, |m, v| ConstGauge::new(*v).encode(m))
}

/// Writes a family of queueing-delay histograms (seconds, buckets at
/// [`QUEUE_DELAY_BOUNDS_NS`]), like [`counters`].
pub fn delay_histograms<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels<'a>, &'a DelayHistogram)>,
) -> fmt::Result {
    family(enc, name, help, Some(&Unit::Seconds), MetricType::Histogram, rows, |mut m, h| {
        let mut buckets: Vec<(f64, u64)> = QUEUE_DELAY_BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain([f64::MAX])
            .zip(h.buckets.iter().copied().chain(std::iter::repeat(0)))
            .collect();
        // Waits in buckets this side does not know (a newer agent) go to +Inf.
        let known: u64 = buckets.iter().map(|b| b.1).sum();
        if let Some(last) = buckets.last_mut() {
            last.1 += h.buckets.iter().sum::<u64>().saturating_sub(known);
        }
        m.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count, &buckets, None)
    })
}

fn family<'a, V: 'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
    mut write: impl FnMut(MetricEncoder, &V) -> fmt::Result,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, v) in rows {
        write(m.encode_family(&labels)?, &v)?;
    }
    Ok(())
}

/// Writes what every rule of a virtual link counted, one sample per slice,
/// link, direction, host and stage: frames, bytes, drops by reason, what
/// waits in its egress queue, and how long its frames waited there.
pub fn rule_counters(enc: &mut DescriptorEncoder, rules: &[RuleCounters]) -> fmt::Result {
    fn labels(r: &RuleCounters) -> Labels<'_> {
        vec![
            ("slice", r.slice.as_str()),
            ("link", r.link.as_str()),
            ("direction", r.direction.map(Direction::as_str).unwrap_or("")),
            ("host", r.host.as_str()),
            ("stage", r.stage.map(Stage::as_str).unwrap_or("")),
        ]
    }
    counters(
        enc,
        "link_frames",
        "Frames of a virtual link forwarded, per host and stage",
        None,
        rules.iter().map(|r| (labels(r), r.packets)),
    )?;
    counters(
        enc,
        "link",
        "Bytes of a virtual link forwarded (its Ethernet frames), per host and stage",
        Some(&Unit::Bytes),
        rules.iter().map(|r| (labels(r), r.bytes)),
    )?;
    counters(
        enc,
        "link_dropped_frames",
        "Frames of a virtual link dropped, per host, stage and reason",
        None,
        rules.iter().flat_map(|r| {
            r.drops.iter().map(move |(why, n)| {
                let mut l = labels(r);
                l.push(("reason", why.as_str()));
                (l, *n)
            })
        }),
    )?;
    gauges(
        enc,
        "link_queued_frames",
        "Frames of a virtual link waiting in its egress queue at a host",
        None,
        rules.iter().map(|r| (labels(r), r.queued as f64)),
    )?;
    gauges(
        enc,
        "link_queued",
        "Bytes of a virtual link waiting in its egress queue at a host",
        Some(&Unit::Bytes),
        rules.iter().map(|r| (labels(r), r.queued_bytes as f64)),
    )?;
    delay_histograms(
        enc,
        "link_queue_delay",
        "How long frames of a virtual link waited in their egress queue at a host",
        rules.iter().filter_map(|r| r.queue_delay.as_ref().map(|h| (labels(r), h))),
    )
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Unit;

    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::with_prefix("netslice");
        let frames = Family::<Vec<(String, String)>, Counter>::default();
        frames.get_or_create(&vec![("slice".into(), "a".into())]).inc_by(3);
        r.register("link_frames", "Frames forwarded", frames);
        let bytes = Counter::<u64>::default();
        bytes.inc_by(1500);
        r.register_with_unit("link", "Bytes forwarded", Unit::Bytes, bytes);
        let g = Gauge::<i64>::default();
        g.set(2);
        r.register("threads", "Forwarding threads", g);
        r
    }

    #[test]
    fn scrapers_that_ask_for_openmetrics_get_it() {
        let (ct, body) = exposition(&registry(), Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"));
        assert_eq!(ct, OPENMETRICS);
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(body.contains("# TYPE netslice_link_frames counter\nnetslice_link_frames_total{slice=\"a\"} 3\n"));
        assert!(body.contains("# UNIT netslice_link_bytes bytes\n"), "{body}");
    }

    #[test]
    fn everyone_else_gets_the_classic_text_format_with_the_same_samples() {
        let (ct, body) = exposition(&registry(), None);
        assert_eq!(ct, PROMETHEUS_TEXT);
        let expected = "# HELP netslice_link_frames_total Frames forwarded.\n\
                        # TYPE netslice_link_frames_total counter\n\
                        netslice_link_frames_total{slice=\"a\"} 3\n\
                        # HELP netslice_link_bytes_total Bytes forwarded.\n\
                        # TYPE netslice_link_bytes_total counter\n\
                        netslice_link_bytes_total 1500\n\
                        # HELP netslice_threads Forwarding threads.\n\
                        # TYPE netslice_threads gauge\n\
                        netslice_threads 2\n";
        assert_eq!(body, expected);
        let om = exposition(&registry(), Some("application/openmetrics-text")).1;
        let samples = |s: &str| s.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(samples(&body), samples(&om));
    }
}
