//! A slice's figures per virtual link, direction and hop, with rates: what
//! `GET /api/v1/slices/{name}/stats` and `netslice slice stats` show.

use std::time::SystemTime;

use netslice_api::types::{HopStats, LinkStats, SliceStats};
use netslice_model::api::{Direction, Stage};

use super::common::ManagerError;
use super::fleet::age;
use super::totals::rule_key;
use super::view::Snapshot;
use crate::auth::Principal;

impl Snapshot {
    /// A slice's figures as of `now`, for someone who may see the slice.
    pub fn slice_stats(&self, now: SystemTime, name: &str, who: &Principal) -> Result<SliceStats, ManagerError> {
        let row = self.visible(name, who)?;
        let mut links = Vec::new();
        for plan in &row.plan.links {
            for direction in Direction::BOTH {
                let mut path: Vec<&String> = plan.path.iter().collect();
                if direction == Direction::Reverse {
                    path.reverse();
                }
                let mut hops = Vec::new();
                for (i, host) in path.iter().enumerate() {
                    if path[..i].contains(host) {
                        continue;
                    }
                    let Some(rt) = self.fleet.get(host.as_str()) else { continue };
                    let mut rules: Vec<_> = rt
                        .totals
                        .rules()
                        .filter(|c| c.slice == name && c.link == plan.name && c.direction == Some(direction))
                        .collect();
                    rules.sort_by_key(|c| c.stage.map(stage_order));
                    for c in rules {
                        let drops: u64 = c.drops.values().sum();
                        let last = rt.totals.at;
                        let rates = rt.totals.previous(&rule_key(&c)).zip(last).and_then(|((then, prev), last)| {
                            let dt = last.duration_since(then).ok()?.as_secs_f64();
                            (dt > 0.0).then(|| {
                                let per = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
                                (
                                    per(c.packets, prev.packets),
                                    per(c.bytes, prev.bytes) * 8.0,
                                    per(drops, prev.drops),
                                    dt,
                                )
                            })
                        });
                        hops.push(HopStats {
                            host: host.to_string(),
                            stage: c.stage,
                            frames: c.packets,
                            bytes: c.bytes,
                            drops: c.drops.clone(),
                            frames_per_second: rates.map(|r| r.0),
                            bits_per_second: rates.map(|r| r.1),
                            drops_per_second: rates.map(|r| r.2),
                            interval_seconds: rates.map(|r| r.3),
                            queued_frames: c.queued,
                            queued_bytes: c.queued_bytes,
                            mean_queue_delay_ms: c
                                .queue_delay
                                .as_ref()
                                .filter(|h| h.count > 0)
                                .map(|h| h.sum_ns as f64 / h.count as f64 / 1e6),
                            age_seconds: last.map(|t| age(now, t).as_secs_f64()),
                        });
                    }
                }
                links.push(LinkStats { link: plan.name.clone(), direction, reserved_bps: plan.reserved, hops });
            }
        }
        Ok(SliceStats { slice: name.to_string(), links })
    }
}

/// Frames meet a host's stages in this order.
fn stage_order(s: Stage) -> u8 {
    match s {
        Stage::Ingress => 0,
        Stage::Local => 1,
        Stage::Transit => 2,
        Stage::Egress => 3,
    }
}
