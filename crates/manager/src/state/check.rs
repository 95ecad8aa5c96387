//! The guarantee check (`netslice slice check`): per virtual link,
//! direction and one-second window, what the sender offered (at the first
//! hop), what was delivered (at the last), the drops of every hop by
//! reason, and a verdict: met when delivered >= min(offered, guaranteed) x
//! (1 - tolerance). Built from the per-second counters the agents sample at
//! whole Unix seconds ([`super::totals::Totals::seconds`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use netslice_api::types::{HopDrop, LinkCheck, SliceCheck, Window};
use netslice_model::api::{Direction, Stage};

use super::common::ManagerError;
use super::totals::Second;
use super::view::Snapshot;
use crate::auth::Principal;

/// Drops a frame meets after its rule counted it at the last hop (it was
/// counted as forwarded, then not delivered).
const AFTER_COUNT: [&str; 4] = ["queue_full", "port_down", "tx_error", "cpu"];

/// What one rule did in one second: frames, bytes, drops by reason.
#[derive(Debug, Default)]
struct Delta {
    packets: u64,
    bytes: u64,
    drops: BTreeMap<String, u64>,
}

impl Delta {
    fn between(a: &Second, b: &Second) -> Option<Delta> {
        if b.packets < a.packets || b.bytes < a.bytes {
            return None;
        }
        let drops = b
            .drops
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(a.drops.get(k).copied().unwrap_or(0))))
            .filter(|(_, v)| *v > 0)
            .collect();
        Some(Delta { packets: b.packets - a.packets, bytes: b.bytes - a.bytes, drops })
    }

    fn avg_frame(&self) -> f64 {
        if self.packets > 0 { self.bytes as f64 / self.packets as f64 } else { 0.0 }
    }
}

impl Snapshot {
    /// The guarantee check of a slice the caller may see, from `since`
    /// (Unix seconds) to the last second every host reported.
    pub fn slice_check(
        &self,
        now: SystemTime,
        name: &str,
        who: &Principal,
        since: Option<u64>,
    ) -> Result<SliceCheck, ManagerError> {
        let row = self.visible(name, who)?;
        let now_s = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let since = since.unwrap_or(now_s.saturating_sub(60));
        let tol = self.check_tolerance;
        let mut links = Vec::new();
        for plan in &row.plan.links {
            for direction in Direction::BOTH {
                let mut path: Vec<&str> = plan.path.iter().map(String::as_str).collect();
                if direction == Direction::Reverse {
                    path.reverse();
                }
                // A rule's counters at second t, at a host, for this link and direction.
                let at = |host: &str, t: u64, stages: &[Stage]| -> Option<Second> {
                    let rt = self.fleet.get(host)?;
                    let m = rt.totals.seconds.get(&t)?;
                    m.iter()
                        .find(|((s, l, d, st), _)| {
                            s == name
                                && l == &plan.name
                                && *d == Some(direction)
                                && st.is_some_and(|x| stages.contains(&x))
                        })
                        .map(|(_, v)| v.clone())
                };
                let delta = |host: &str, t: u64, stages: &[Stage]| -> Option<Delta> {
                    Delta::between(&at(host, t - 1, stages)?, &at(host, t, stages)?)
                };
                let (first, last) = (path[0], *path.last().expect("a path has a host"));
                let local = path.len() == 1;
                let (in_stages, out_stages): (&[Stage], &[Stage]) =
                    if local { (&[Stage::Local], &[Stage::Local]) } else { (&[Stage::Ingress], &[Stage::Egress]) };
                let mut seconds: Vec<u64> = self
                    .fleet
                    .get(first)
                    .map(|rt| rt.totals.seconds.keys().copied().filter(|t| *t > since.max(1)).collect())
                    .unwrap_or_default();
                seconds.sort_unstable();
                let mut windows = Vec::new();
                for t in seconds {
                    let (Some(input), Some(output)) = (delta(first, t, in_stages), delta(last, t, out_stages)) else {
                        continue;
                    };
                    let policed = input.drops.get("policed").copied().unwrap_or(0);
                    let offered = (input.bytes as f64 + policed as f64 * input.avg_frame()) * 8.0;
                    let lost_after: u64 = AFTER_COUNT.iter().map(|r| output.drops.get(*r).copied().unwrap_or(0)).sum();
                    let delivered = (output.bytes as f64 - lost_after as f64 * output.avg_frame()).max(0.0) * 8.0;
                    let mut drops = Vec::new();
                    for (i, host) in path.iter().enumerate() {
                        if path[..i].contains(host) {
                            continue;
                        }
                        let stages: &[Stage] = if local {
                            &[Stage::Local]
                        } else if i == 0 {
                            &[Stage::Ingress]
                        } else if i + 1 == path.len() {
                            &[Stage::Egress]
                        } else {
                            &[Stage::Transit]
                        };
                        if let Some(d) = delta(host, t, stages) {
                            for (reason, frames) in d.drops {
                                drops.push(HopDrop { host: host.to_string(), reason, frames });
                            }
                        }
                    }
                    let need = offered.min(plan.reserved as f64) * (1.0 - tol);
                    let met = delivered >= need;
                    let why = (!met).then(|| {
                        if drops.is_empty() {
                            let gone = input.packets.saturating_sub(output.packets);
                            format!(
                                "{gone} frames entered at {first} and did not reach {last}, and no hop counted a drop: lost between hosts (the substrate: a physical link's queue, another tenant's traffic)"
                            )
                        } else {
                            let parts: Vec<String> =
                                drops.iter().map(|d| format!("{} dropped {} ({})", d.host, d.frames, d.reason)).collect();
                            parts.join("; ")
                        }
                    });
                    windows.push(Window {
                        t: t - 1,
                        offered_bps: offered,
                        delivered_bps: delivered,
                        verdict: if met { "met" } else { "violated" }.into(),
                        drops,
                        why,
                    });
                }
                let violated = windows.iter().filter(|w| w.verdict == "violated").count();
                links.push(LinkCheck {
                    link: plan.name.clone(),
                    direction,
                    guaranteed_bps: plan.reserved,
                    windows,
                    violated,
                });
            }
        }
        Ok(SliceCheck { slice: name.to_string(), tolerance: tol, links })
    }
}
