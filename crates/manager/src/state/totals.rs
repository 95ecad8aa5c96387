//! Counters that survive agent restarts. An agent's counters start from zero
//! whenever it starts; the manager keeps, per host and rule, what earlier
//! runs counted and adds it to what the current run reports, so the totals
//! it shows (`slice show`, `slice stats`, its `/metrics`) only ever grow. A
//! new run is recognised by the report's `instance`, or, from agents that do
//! not send one, by a counter that went down. The totals of the report
//! before are kept too, for rates.

use std::collections::BTreeMap;
use std::time::SystemTime;

use netslice_model::api::{DelayHistogram, Direction, NodeReport, RuleCounters, Stage};

/// A rule of a host: slice, link, direction, stage.
pub type RuleKey = (String, String, Option<Direction>, Option<Stage>);

fn key(c: &RuleCounters) -> RuleKey {
    (c.slice.clone(), c.link.clone(), c.direction, c.stage)
}

/// What one rule counted in all: frames, bytes, drops in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Frames forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Frames dropped, every reason.
    pub drops: u64,
}

/// One host's counters across the runs of its agent.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    instance: String,
    /// When the last report came.
    pub at: Option<SystemTime>,
    /// The last report's counters, as the agent sent them.
    raw: BTreeMap<RuleKey, RuleCounters>,
    /// What earlier runs counted.
    carried: BTreeMap<RuleKey, RuleCounters>,
    /// The totals of the report before, and when it came.
    prev: Option<(SystemTime, BTreeMap<RuleKey, Sums>)>,
    /// Agent restarts seen.
    pub restarts: u64,
    /// Every rule's counters at each whole second the agent sampled, the
    /// last [`HISTORY_SECONDS`] (as the agent counted them: a restart starts
    /// them again, and a window across it is not judged).
    pub seconds: BTreeMap<u64, std::sync::Arc<BTreeMap<RuleKey, Second>>>,
}

/// Seconds of per-second counters kept per host (what `slice check` can look back on).
pub const HISTORY_SECONDS: usize = 300;

/// A rule's counters at one second.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Second {
    /// Frames.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
}

/// `a + b` for the counting parts (the queue gauges are `b`'s).
fn add(a: &RuleCounters, b: &RuleCounters) -> RuleCounters {
    let mut out = b.clone();
    out.packets += a.packets;
    out.bytes += a.bytes;
    for (why, n) in &a.drops {
        *out.drops.entry(why.clone()).or_default() += n;
    }
    if let Some(h) = &a.queue_delay {
        out.queue_delay.get_or_insert_with(DelayHistogram::default).add(h);
    }
    out
}

fn went_down(old: &RuleCounters, new: &RuleCounters) -> bool {
    let waits = |c: &RuleCounters| c.queue_delay.as_ref().map_or(0, |h| h.count);
    new.packets < old.packets
        || new.bytes < old.bytes
        || waits(new) < waits(old)
        || old.drops.iter().any(|(why, n)| new.drops.get(why).copied().unwrap_or(0) < *n)
}

impl Totals {
    /// Takes in a report that came at `now`.
    pub fn update(&mut self, now: SystemTime, report: &NodeReport) {
        let before = self.sums();
        if let Some(at) = self.at {
            self.prev = Some((at, before));
        }
        let restarted = !report.instance.is_empty() && !self.instance.is_empty() && report.instance != self.instance;
        if restarted {
            self.restarts += 1;
        }
        let mut raw = BTreeMap::new();
        let mut carried = BTreeMap::new();
        for c in &report.counters {
            let k = key(c);
            let mut carry = self.carried.remove(&k).unwrap_or_default();
            if let Some(old) = self.raw.get(&k)
                && (restarted || went_down(old, c))
            {
                carry = add(&carry, old);
            }
            carried.insert(k.clone(), carry);
            raw.insert(k, c.clone());
        }
        // Rules the report no longer has are gone from this host, and so are
        // their totals.
        self.raw = raw;
        self.carried = carried;
        self.instance = report.instance.clone();
        self.at = Some(now);
        if restarted {
            // Counters started again: no window spans the restart.
            self.seconds.clear();
        }
        for s in &report.seconds {
            if self.seconds.contains_key(&s.t) {
                continue;
            }
            let m: BTreeMap<RuleKey, Second> = s
                .rules
                .iter()
                .filter_map(|r| {
                    let c = report.counters.get(r.i as usize)?;
                    Some((key(c), Second { packets: r.p, bytes: r.b, drops: r.d.clone() }))
                })
                .collect();
            self.seconds.insert(s.t, std::sync::Arc::new(m));
        }
        while self.seconds.len() > HISTORY_SECONDS {
            self.seconds.pop_first();
        }
    }

    /// Every rule's totals.
    pub fn rules(&self) -> impl Iterator<Item = RuleCounters> + '_ {
        self.raw.iter().map(|(k, raw)| match self.carried.get(k) {
            Some(c) => add(c, raw),
            None => raw.clone(),
        })
    }

    fn sums(&self) -> BTreeMap<RuleKey, Sums> {
        self.rules()
            .map(|r| (key(&r), Sums { packets: r.packets, bytes: r.bytes, drops: r.drops.values().sum() }))
            .collect()
    }

    /// A rule's totals at the report before, and when it came.
    pub fn previous(&self, k: &RuleKey) -> Option<(SystemTime, Sums)> {
        self.prev.as_ref().map(|(t, m)| (*t, m.get(k).copied().unwrap_or_default()))
    }
}

/// A rule's key.
pub fn rule_key(c: &RuleCounters) -> RuleKey {
    key(c)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report(instance: &str, packets: u64, drops: u64) -> NodeReport {
        NodeReport {
            host: "h".into(),
            applied_revision: 1,
            epoch: "e".into(),
            errors: vec![],
            counters: vec![RuleCounters {
                host: "h".into(),
                slice: "s".into(),
                link: "l".into(),
                direction: Some(Direction::Forward),
                stage: Some(Stage::Ingress),
                packets,
                bytes: packets * 100,
                drops: [("queue_full".to_string(), drops)].into_iter().collect(),
                queued: packets % 7,
                queued_bytes: 0,
                queue_delay: Some(DelayHistogram { count: packets, sum_ns: packets * 1000, buckets: vec![packets] }),
            }],
            unmatched: BTreeMap::new(),
            programs: vec![],
            io_backend: String::new(),
            forwarding: String::new(),
            version: String::new(),
            instance: instance.into(),
            taps: vec![],
            seconds: vec![],
            capacity: None,
        }
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn totals_keep_growing_when_the_agent_restarts() {
        let mut t = Totals::default();
        t.update(at(0), &report("a", 100, 5));
        t.update(at(2), &report("a", 300, 6));
        // A restart: the counters start again, but higher than some (a
        // restart is told by the instance, not only by a counter going down).
        t.update(at(4), &report("b", 400, 1));
        let r: Vec<_> = t.rules().collect();
        assert_eq!(r[0].packets, 700);
        assert_eq!(r[0].bytes, 70_000);
        assert_eq!(r[0].drops["queue_full"], 7);
        assert_eq!(r[0].queue_delay.as_ref().unwrap().count, 700);
        assert_eq!(r[0].queued, 400 % 7, "gauges are the last report's");
        assert_eq!(t.restarts, 1);
        let (when, prev) = t.previous(&rule_key(&r[0])).unwrap();
        assert_eq!((when, prev.packets, prev.drops), (at(2), 300, 6));
        t.update(at(6), &report("b", 450, 1));
        assert_eq!(t.rules().next().unwrap().packets, 750);
    }

    #[test]
    fn an_agent_without_instance_is_caught_by_a_counter_going_down() {
        let mut t = Totals::default();
        t.update(at(0), &report("", 100, 0));
        t.update(at(2), &report("", 10, 0));
        assert_eq!(t.rules().next().unwrap().packets, 110);
        assert_eq!(t.restarts, 0);
    }

    #[test]
    fn a_rule_that_goes_takes_its_totals_with_it() {
        let mut t = Totals::default();
        t.update(at(0), &report("a", 100, 0));
        let mut empty = report("a", 0, 0);
        empty.counters.clear();
        t.update(at(2), &empty);
        assert_eq!(t.rules().count(), 0);
        t.update(at(4), &report("a", 5, 0));
        assert_eq!(t.rules().next().unwrap().packets, 5);
    }
}
