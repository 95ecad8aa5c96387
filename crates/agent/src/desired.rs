//! What the agent's data plane should look like for a config, planned
//! without touching anything: which receivers, pollers, workers and delay
//! lines it needs, and which CPUs each may use. The control thread compares
//! this with what runs and changes only the difference.

use std::collections::{BTreeMap, BTreeSet};

use netslice_dataplane::{Carrier, Registry};
use netslice_model::api::NodeConfig;
use netslice_model::{PhysLinkName, PortNo, SliceName};

use crate::cpus::CpuSets;
use crate::xsk::IoMode;

/// A poller of sliver ports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PollerKey {
    /// Shared poller `k`.
    Shared(usize),
    /// The poller of a slice with dedicated CPUs.
    Slice(SliceName),
}

/// A set of workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerPlan {
    /// CPU of each worker (`None`: the shared CPUs).
    pub(crate) cpus: Vec<Option<usize>>,
}

/// The agent's desired data plane for one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    /// Interfaces that need a packet socket (Ethernet-layer link types).
    pub(crate) ether: BTreeSet<String>,
    /// Interfaces that should have AF_XDP.
    pub(crate) xsk: BTreeSet<String>,
    /// CPUs of shared and dedicated threads.
    pub(crate) cpus: CpuSets,
    /// Slices asking for CPUs this host lacks, and which.
    pub(crate) missing_cpus: Vec<(SliceName, Vec<usize>)>,
    /// Worker sets: shared (`None`) and per dedicated slice.
    pub(crate) workers: BTreeMap<Option<SliceName>, WorkerPlan>,
    /// The poller of every sliver port.
    pub(crate) pollers: BTreeMap<PollerKey, BTreeSet<PortNo>>,
    /// Delay lines: underlay link name -> (index, delay in ns).
    pub(crate) delays: BTreeMap<PhysLinkName, (usize, u64)>,
}

/// Facts about this host that planning needs.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    /// CPUs the agent may use.
    pub(crate) cpus: Vec<usize>,
    /// Shared workers asked for (`--workers`).
    pub(crate) workers: usize,
    /// Substrate I/O mode.
    pub(crate) io: IoMode,
}

/// CPUs by slice.
pub(crate) type SliceCpus = BTreeMap<SliceName, Vec<usize>>;

/// The CPUs each slice has to itself on this host: those of its `qos.cpus`
/// that this host has (`here`) and that no slice before it (by name) took;
/// plus a line for each slice asking for CPUs the host lacks.
pub(crate) fn dedicated(cfg: &NodeConfig, here: &[usize]) -> (SliceCpus, Vec<(SliceName, Vec<usize>)>) {
    let mut want: SliceCpus = BTreeMap::new();
    let mut problems = Vec::new();
    let mut taken: Vec<usize> = Vec::new();
    for (slice, share) in &cfg.slices {
        let (mine, missing): (Vec<usize>, Vec<usize>) =
            share.cpus.iter().map(|&c| c as usize).partition(|c| here.contains(c));
        if !missing.is_empty() {
            problems.push((slice.clone(), missing));
        }
        let mine: Vec<usize> = mine.into_iter().filter(|c| !taken.contains(c)).collect();
        if !mine.is_empty() {
            taken.extend(&mine);
            want.insert(slice.clone(), mine);
        }
    }
    (want, problems)
}

/// Plans the data plane of `cfg`.
pub(crate) fn plan(cfg: &NodeConfig, registry: &Registry, facts: &Facts) -> Desired {
    let ethernet = registry.links().any(|(_, l)| matches!(l.carrier(), Carrier::Ethernet(_)));
    let ifaces: BTreeSet<String> = cfg.underlay.iter().map(|u| u.ifname.clone()).collect();
    let (slices, missing_cpus) = dedicated(cfg, &facts.cpus);
    let taken: Vec<usize> = slices.values().flatten().copied().collect();
    let rest: Vec<usize> = facts.cpus.iter().copied().filter(|c| !taken.contains(c)).collect();
    let shared = if rest.is_empty() { facts.cpus.clone() } else { rest };
    let mut workers = BTreeMap::new();
    if facts.workers > 0 {
        workers.insert(None, WorkerPlan { cpus: vec![None; facts.workers] });
    }
    for (slice, cpus) in &slices {
        workers.insert(Some(slice.clone()), WorkerPlan { cpus: cpus.iter().map(|&c| Some(c)).collect() });
    }
    // Sliver ports: a dedicated slice's on its own poller, the others spread
    // over one poller per shared CPU (by port number, so a port stays with
    // its poller while the config around it changes).
    let n = shared.len().max(1);
    let mut pollers: BTreeMap<PollerKey, BTreeSet<PortNo>> = BTreeMap::new();
    let slow: BTreeMap<PortNo, &SliceName> = cfg
        .slivers
        .iter()
        .filter(|s| !s.fast_path)
        .flat_map(|s| s.interfaces.iter().map(move |i| (i.port, &s.slice)))
        .collect();
    for (port, slice) in slow {
        let key = if slices.contains_key(slice) {
            PollerKey::Slice(slice.clone())
        } else {
            PollerKey::Shared(port.0 as usize % n)
        };
        pollers.entry(key).or_default().insert(port);
    }
    let delays = cfg
        .underlay
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let d = netslice_pipeline::Impairment::of(u).delay;
            (d > 0).then(|| (u.name.clone(), (i, d)))
        })
        .collect();
    Desired {
        ether: if ethernet { ifaces.clone() } else { BTreeSet::new() },
        xsk: if facts.io == IoMode::Sockets { BTreeSet::new() } else { ifaces },
        cpus: CpuSets { shared, slices: slices.clone() },
        missing_cpus,
        workers,
        pollers,
        delays,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netslice_model::api::{InterfaceConfig, SliceShare, SliverConfig, UnderlayLink};
    use netslice_model::{Bandwidth, Memory, Micros};

    fn sliver(slice: &str, node: &str, ports: &[u32]) -> SliverConfig {
        SliverConfig {
            slice: slice.into(),
            node: node.into(),
            node_type: "slowpath".into(),
            fast_path: false,
            params: serde_json::Value::Null,
            netns: Some(format!("x.{slice}.{node}")),
            cpu: 0.5,
            memory: Memory(1 << 28),
            ip_forward: false,
            interfaces: ports
                .iter()
                .map(|&p| InterfaceConfig {
                    name: format!("eth{p}"),
                    port: PortNo(p),
                    mac: Default::default(),
                    mtu: 1500,
                    addresses: Vec::new(),
                    link: "l".into(),
                })
                .collect(),
            routes: Vec::new(),
        }
    }

    fn link(name: &str, delay_us: Option<u64>) -> UnderlayLink {
        UnderlayLink {
            name: name.into(),
            ifname: format!("to-{name}"),
            local: [10, 0, 0, 1].into(),
            peer_host: "t1".into(),
            peer: [10, 0, 0, 2].into(),
            local_mac: Default::default(),
            peer_mac: Default::default(),
            mtu: 9000,
            bandwidth: Bandwidth(1_000_000_000),
            delay: delay_us.map(Micros),
            loss: None,
        }
    }

    fn cfg() -> NodeConfig {
        let mut slices = BTreeMap::new();
        slices.insert(SliceName::from("fast"), SliceShare { weight: 1, ceil: None, cpus: vec![1, 7] });
        slices.insert(SliceName::from("plain"), SliceShare { weight: 1, ceil: None, cpus: Vec::new() });
        NodeConfig {
            host: "h1".into(),
            substrate: "x".into(),
            revision: 1,
            epoch: "e".into(),
            underlay: vec![link("h1-t1", None), link("h1-t2", Some(2000))],
            slivers: vec![sliver("fast", "a", &[4, 5]), sliver("plain", "a", &[1, 2, 3])],
            ports: Vec::new(),
            labels: Vec::new(),
            slices,
            taps: Vec::new(),
        }
    }

    #[test]
    fn a_dedicated_slice_gets_its_cpus_workers_and_poller_and_the_rest_share() {
        let facts = Facts { cpus: vec![0, 1], workers: 2, io: IoMode::Auto };
        let d = plan(&cfg(), &Registry::builtin(), &facts);
        assert_eq!(d.cpus.slices[&SliceName::from("fast")], vec![1]);
        assert_eq!(d.cpus.shared, vec![0]);
        assert_eq!(d.missing_cpus, vec![(SliceName::from("fast"), vec![7])]);
        assert_eq!(d.workers[&None].cpus, vec![None, None]);
        assert_eq!(d.workers[&Some(SliceName::from("fast"))].cpus, vec![Some(1)]);
        // One shared poller (one shared CPU) for plain's three ports, fast's own for its two.
        let ports = |k: PollerKey| d.pollers[&k].iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(ports(PollerKey::Slice("fast".into())), vec![4, 5]);
        assert_eq!(ports(PollerKey::Shared(0)), vec![1, 2, 3]);
        assert_eq!(d.pollers.len(), 2);
        // Only the delaying link gets a delay line; every interface gets AF_XDP in auto mode.
        assert_eq!(d.delays.len(), 1);
        assert_eq!(d.delays[&PhysLinkName::from("h1-t2")], (1, 2_000_000));
        assert_eq!(d.xsk.len(), 2);
        assert!(!d.ether.is_empty(), "the built-in Ethernet link types need packet sockets");
    }

    #[test]
    fn ports_keep_their_poller_when_others_come_and_go() {
        let facts = Facts { cpus: vec![0, 1], workers: 0, io: IoMode::Sockets };
        let mut c = cfg();
        c.slices.clear();
        let before = plan(&c, &Registry::builtin(), &facts);
        c.slivers.push(sliver("other", "z", &[6, 9]));
        let after = plan(&c, &Registry::builtin(), &facts);
        for (k, ports) in &before.pollers {
            assert!(ports.is_subset(&after.pollers[k]), "{k:?}: {ports:?} moved");
        }
        assert!(after.xsk.is_empty() && after.workers.is_empty());
        // Planning twice is the same plan: re-applying a config changes nothing.
        assert_eq!(plan(&c, &Registry::builtin(), &facts), after);
    }
}
