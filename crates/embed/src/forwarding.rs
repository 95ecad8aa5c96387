//! Forwarding capacity as an admitted resource.
//!
//! Every host draws on a CPU *budget*: its own cores (what its agent
//! reported, see [`netslice_model::capacity`]), or, when it shares a machine
//! with other hosts (`machine` in the substrate), that machine's cores once
//! for all of them. Slivers' CPU limits, slices' dedicated CPUs and the
//! forwarding work of guaranteed rates all come out of it. A virtual link of
//! `B` bit/s at `S`-byte frames is `f = B / 8S` frames a second each way;
//! a host at one end of its path does one ingress and one egress per pair
//! (`f x ends(S)`), a transit host two transit hops (`2f x transit(S)`), a
//! host with both ends two of each (`2f x ends(S)`).

use std::collections::{BTreeMap, BTreeSet};

use netslice_model::api::SlicePlan;
use netslice_model::capacity::ForwardingCapacity;
use netslice_model::spec::VLinkSpec;
use netslice_model::{Bandwidth, SliceSpec, Substrate};

/// What each host's agent reported it can forward, by host. A host missing
/// here has not said: no forwarding work is admitted against it (its
/// slivers' CPU still counts against its machine's budget, if it shares
/// one).
pub type Capacities = BTreeMap<String, ForwardingCapacity>;

/// What other slices hold that comes out of CPU budgets, per host.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    /// Slivers' CPU, millicores.
    pub cpu_milli: &'a BTreeMap<String, u64>,
    /// Forwarding work, nanoseconds of CPU per second.
    pub forwarding: &'a BTreeMap<String, u64>,
    /// Dedicated CPUs (CPU -> claims).
    pub cpus: &'a BTreeMap<String, BTreeMap<u32, u32>>,
}

/// Why a budget cannot take what a slice asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// A host cannot forward a link's guaranteed rate.
    Forwarding {
        /// Spec field.
        field: String,
        /// Host.
        host: String,
        /// What it can still forward for this link.
        free: Bandwidth,
        /// Asked.
        asked: Bandwidth,
        /// The frame size the link is reserved at.
        frame_size: u32,
        /// Which budget (see `PlanError::Forwarding`).
        budget: String,
    },
    /// The slice's dedicated CPUs and slivers do not fit a budget.
    Cpu {
        /// Spec field.
        field: String,
        /// Cores asked.
        asked: String,
        /// Cores free.
        free: String,
        /// The host and its budget.
        hosts: String,
    },
}

/// Cores virtual link `l` takes at a host with capacity `cap`: `[at an end
/// of its path, in transit, both ends here]`; zero where nothing was
/// measured.
pub fn work(cap: Option<&ForwardingCapacity>, l: &VLinkSpec) -> [f64; 3] {
    let Some(c) = cap.and_then(|c| c.of(l.link_type.as_str())) else { return [0.0; 3] };
    let (bps, size) = (l.bandwidth.bps(), l.frame_size());
    let end = c.ends.cores(bps, size);
    [end, 2.0 * c.transit.cores(bps, size), 2.0 * end]
}

/// A rate rounded to whole kbit/s (what is left is a float's arithmetic away
/// from a round figure).
fn kbit(bps: f64) -> u64 {
    ((bps / 1000.0).round() * 1000.0) as u64
}

/// The budgets of a substrate, and what is free in each.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    /// Budget of each host (by substrate index).
    pub of_host: Vec<Option<usize>>,
    /// Per budget: `Some(machine)` or `None` (a host's own).
    pub machine: Vec<Option<String>>,
    /// Capacity per budget, cores.
    pub capacity: Vec<f64>,
    /// Free per budget, cores (capacity less what `held` holds).
    pub free: Vec<f64>,
}

impl Budgets {
    /// The budgets of `substrate` given the reported capacities and what
    /// other slices hold.
    pub fn new(substrate: &Substrate, caps: &Capacities, held: Held<'_>) -> Budgets {
        let mut b = Budgets::default();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for h in &substrate.hosts {
            let (key, cap, machine) = match &h.machine {
                Some(m) => {
                    let cpu = substrate.machines.iter().find(|x| &x.name == m).map(|x| x.cpu).unwrap_or(0.0);
                    (format!("machine/{m}"), cpu, Some(m.clone()))
                }
                None => match caps.get(&h.name) {
                    Some(c) => (format!("host/{}", h.name), c.cores, None),
                    None => {
                        b.of_host.push(None);
                        continue;
                    }
                },
            };
            let i = *index.entry(key).or_insert_with(|| {
                b.machine.push(machine);
                b.capacity.push(cap);
                b.free.push(cap);
                b.capacity.len() - 1
            });
            b.of_host.push(Some(i));
        }
        // What is held: slivers, forwarding, and dedicated CPUs (a CPU named
        // by slices on several hosts of one machine is one CPU).
        let mut dedicated: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); b.capacity.len()];
        for (h, host) in substrate.hosts.iter().enumerate() {
            let Some(i) = b.of_host[h] else { continue };
            let cpu = held.cpu_milli.get(&host.name).copied().unwrap_or(0) as f64 / 1000.0;
            let fwd = held.forwarding.get(&host.name).copied().unwrap_or(0) as f64 / 1e9;
            b.free[i] -= cpu + fwd;
            if let Some(m) = held.cpus.get(&host.name) {
                dedicated[i].extend(m.iter().filter(|(_, n)| **n > 0).map(|(c, _)| *c));
            }
        }
        for (i, d) in dedicated.iter().enumerate() {
            b.free[i] -= d.len() as f64;
        }
        b
    }

    /// The hosts drawing on budget `i`.
    fn hosts<'a>(&self, substrate: &'a Substrate, i: usize) -> Vec<&'a str> {
        substrate
            .hosts
            .iter()
            .zip(&self.of_host)
            .filter(|(_, b)| **b == Some(i))
            .map(|(h, _)| h.name.as_str())
            .collect()
    }

    fn note(&self, substrate: &Substrate, host: &str, i: usize) -> String {
        match &self.machine[i] {
            Some(m) => {
                let others: Vec<&str> = self.hosts(substrate, i).into_iter().filter(|h| *h != host).collect();
                if others.is_empty() {
                    format!(" (machine {m})")
                } else {
                    format!(" (machine {m}, shared with {})", others.join(", "))
                }
            }
            None => String::new(),
        }
    }

    /// The refusal for virtual link `li` at host index `host`, which was
    /// asked `asked` cores with `free` free.
    pub fn refusal(
        &self,
        substrate: &Substrate,
        l: &VLinkSpec,
        li: usize,
        host: usize,
        asked: f64,
        free: f64,
    ) -> Shortfall {
        let name = substrate.hosts[host].name.clone();
        let bps = l.bandwidth.bps();
        let can = if asked > 0.0 { kbit(bps as f64 * (free / asked).clamp(0.0, 1.0)) } else { 0 };
        let budget = self.of_host[host].map(|i| self.note(substrate, &name, i)).unwrap_or_default();
        Shortfall::Forwarding {
            field: format!("links[{li}].bandwidth"),
            host: name,
            free: Bandwidth(can),
            asked: Bandwidth(bps),
            frame_size: l.frame_size(),
            budget,
        }
    }

    /// A slice with dedicated CPUs: each host's share of its forwarding work
    /// must fit those CPUs, and the CPUs (with its slivers' CPU) must fit
    /// the budgets of the hosts it uses.
    pub fn check_dedicated(
        &self,
        substrate: &Substrate,
        spec: &SliceSpec,
        plan: &SlicePlan,
        work: &[(usize, Vec<String>, Vec<u64>)],
    ) -> Result<(), Shortfall> {
        let cores = plan.cpus.len() as f64;
        let mut at: BTreeMap<&str, f64> = BTreeMap::new();
        for (_, path, w) in work {
            for (h, ns) in path.iter().zip(w) {
                *at.entry(h.as_str()).or_default() += *ns as f64 / 1e9;
            }
        }
        for (li, path, w) in work {
            for (h, ns) in path.iter().zip(w) {
                let total = at[h.as_str()];
                if *ns > 0 && total > cores + 1e-9 {
                    let l = &spec.links[*li];
                    // What this link could have, had the others kept theirs.
                    let mine = *ns as f64 / 1e9;
                    let free = (cores - (total - mine)).max(0.0);
                    let can = kbit(l.bandwidth.bps() as f64 * (free / mine).clamp(0.0, 1.0));
                    return Err(Shortfall::Forwarding {
                        field: format!("links[{li}].bandwidth"),
                        host: h.clone(),
                        free: Bandwidth(can),
                        asked: l.bandwidth,
                        frame_size: l.frame_size(),
                        budget: format!(
                            " (its {} dedicated CPU{})",
                            plan.cpus.len(),
                            if plan.cpus.len() == 1 { "" } else { "s" }
                        ),
                    });
                }
            }
        }
        // The dedicated CPUs and the slice's slivers out of each budget.
        let mut free = self.free.clone();
        let mut counted: BTreeSet<usize> = BTreeSet::new();
        for n in &plan.nodes {
            if let Some(i) = substrate.hosts.iter().position(|h| h.name == n.host).and_then(|h| self.of_host[h]) {
                free[i] -= n.cpu_milli as f64 / 1000.0;
            }
        }
        for h in plan.hosts() {
            let Some(hi) = substrate.hosts.iter().position(|x| x.name == h) else { continue };
            let Some(i) = self.of_host[hi] else { continue };
            if counted.insert(i) {
                free[i] -= cores;
            }
            if free[i] < -1e-9 {
                return Err(Shortfall::Cpu {
                    field: "qos.cpus".into(),
                    asked: format!("{cores}"),
                    free: format!("{:.2}", (free[i] + cores).max(0.0)),
                    hosts: format!("[{h}]{}", self.note(substrate, h, i)),
                });
            }
        }
        Ok(())
    }
}
