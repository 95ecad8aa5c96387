//! Node slivers: a network namespace per virtual node, with persistent TAP
//! interfaces, addresses, routes, forwarding sysctls and cgroup limits.
//!
//! Reconciliation is idempotent: it compares what the kernel has with what the
//! desired config says and changes only the difference, so re-applying the same
//! config (after an agent restart, say) disturbs nothing a sliver is running.
//! A ledger in the agent's state directory records every sliver *before* it is
//! created, so a crash at any point leaves nothing the next run cannot find.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use netslice_io::rtnl::Netlink;
use netslice_io::tap::Tap;
use netslice_io::{cgroup, netns, sliver};
use netslice_model::PortNo;
use netslice_model::api::{NodeConfig, SliverConfig};
use serde::{Deserialize, Serialize};

use crate::cpus::CpuSets;
use crate::problem::Problem;

/// What the agent created for one sliver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliverRecord {
    /// Slice.
    pub slice: String,
    /// Virtual node.
    pub node: String,
    /// Interfaces created.
    pub interfaces: BTreeSet<String>,
    /// Routes installed, as `ip route` arguments (`TO via VIA`).
    pub routes: BTreeSet<String>,
    /// Whether cgroups were created.
    pub cgroup: bool,
}

/// Every sliver this agent created, by namespace name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Records by namespace.
    pub slivers: BTreeMap<String, SliverRecord>,
}

/// The slivers of this host.
#[derive(Debug)]
pub struct Slivers {
    path: PathBuf,
    ledger: Ledger,
    taps: HashMap<(String, String), Arc<Tap>>,
    /// What each sliver was last made from, with the CPUs it was confined
    /// to: a sliver whose config and CPUs are unchanged is not looked at
    /// again (the kernel is only asked about slivers that change).
    applied: HashMap<String, (SliverConfig, Vec<usize>)>,
    /// rtnetlink connections to the slivers' namespaces (opened when first
    /// needed).
    netlink: Option<Netlink>,
    /// TAP devices opened since the agent began.
    pub(crate) opened: u64,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Slivers {
    /// Loads the ledger from `state_dir`.
    pub fn load(state_dir: &Path) -> Slivers {
        let path = state_dir.join("slivers.json");
        let ledger = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Slivers { path, ledger, taps: HashMap::new(), applied: HashMap::new(), netlink: None, opened: 0 }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn save(&self) {
        let bytes = serde_json::to_vec_pretty(&self.ledger).expect("ledger serializes");
        if let Err(e) = write_atomic(&self.path, &bytes) {
            tracing::error!("cannot save sliver ledger {}: {e}", self.path.display());
        }
    }

    /// Makes the slivers match `cfg`, confining each sliver's processes to
    /// the CPUs `cpus` gives its slice. Returns the open TAP of every port and
    /// the problems met; a sliver that fails does not stop the others.
    pub(crate) fn apply(&mut self, cfg: &NodeConfig, cpus: &CpuSets) -> (BTreeMap<PortNo, Arc<Tap>>, Vec<Problem>) {
        let mut errors = Vec::new();
        let mut ports = BTreeMap::new();
        // Fast-path nodes run inside the data plane: no namespace for them.
        let slow: Vec<&SliverConfig> = cfg.slivers.iter().filter(|s| !s.fast_path).collect();
        let wanted: BTreeSet<&str> = slow.iter().filter_map(|s| s.netns.as_deref()).collect();
        // Tear down slivers no longer wanted first, freeing their resources.
        let gone: Vec<String> = self.ledger.slivers.keys().filter(|n| !wanted.contains(n.as_str())).cloned().collect();
        for ns in gone {
            let rec = self.ledger.slivers[&ns].clone();
            match self.teardown(&ns, &rec) {
                Ok(()) => {
                    self.ledger.slivers.remove(&ns);
                    self.applied.remove(&ns);
                    self.save();
                    tracing::info!("removed sliver {}/{} ({ns})", rec.slice, rec.node);
                }
                Err(e) => errors.push(Problem::Sliver {
                    slice: rec.slice.clone().into(),
                    node: rec.node.clone().into(),
                    message: format!("removing sliver: {e}"),
                }),
            }
        }
        // CPUs dedicated to slices here: their slivers run there, every other
        // sliver runs on the shared ones.
        for s in slow {
            let cpus = cpus.slices.get(&s.slice).unwrap_or(&cpus.shared);
            let ns = s.netns.clone().unwrap_or_default();
            if let Some(taps) = self.unchanged(&ns, s, cpus) {
                ports.extend(taps);
                continue;
            }
            self.applied.remove(&ns);
            // The interfaces that are open carry traffic even when a later
            // step fails (it is retried at the next apply).
            let mut open = Vec::new();
            let done = self.ensure(s, cpus, &mut open);
            ports.extend(open);
            match done {
                Ok(()) => {
                    self.applied.insert(ns, (s.clone(), cpus.clone()));
                }
                Err(e) => {
                    tracing::warn!("sliver {}/{}: {e}", s.slice, s.node);
                    errors.push(Problem::Sliver { slice: s.slice.clone(), node: s.node.clone(), message: e });
                }
            }
        }
        (ports, errors)
    }

    /// The TAPs of sliver `s` in `ns` if it was last made from the same
    /// config on the same CPUs (and every interface's TAP is still open).
    fn unchanged(&self, ns: &str, s: &SliverConfig, cpus: &[usize]) -> Option<Vec<(PortNo, Arc<Tap>)>> {
        let (was, on) = self.applied.get(ns)?;
        if was != s || on != cpus {
            return None;
        }
        s.interfaces
            .iter()
            .map(|i| self.taps.get(&(ns.to_string(), i.name.clone())).map(|t| (i.port, t.clone())))
            .collect()
    }

    /// Creates or updates one sliver; its processes are confined to `cpus`
    /// (empty: every CPU).
    /// Puts the TAP of every interface into `out` as soon as it is open.
    fn ensure(&mut self, s: &SliverConfig, cpus: &[usize], out: &mut Vec<(PortNo, Arc<Tap>)>) -> Result<(), String> {
        let ns = s.netns.as_deref().ok_or("the desired config gives this sliver no namespace")?;
        // Record intent before touching the kernel.
        let rec = self
            .ledger
            .slivers
            .entry(ns.to_string())
            .or_insert_with(|| SliverRecord {
                slice: s.slice.to_string(),
                node: s.node.to_string(),
                ..Default::default()
            })
            .clone();
        let mut rec = SliverRecord {
            interfaces: rec.interfaces.union(&s.interfaces.iter().map(|i| i.name.clone()).collect()).cloned().collect(),
            ..rec
        };
        self.ledger.slivers.insert(ns.to_string(), rec.clone());
        self.save();

        netns::create(ns).map_err(|e| e.to_string())?;
        // IPv6 only where the spec asks for it: no link-local chatter otherwise, so
        // a link's counters show exactly the slice's own traffic.
        let v6 = s.interfaces.iter().any(|i| i.addresses.iter().any(|a| a.addr().is_ipv6()));
        let off = if v6 { "0" } else { "1" };
        for key in ["net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"] {
            netns::sysctl(ns, key, off).map_err(|e| e.to_string())?;
        }
        for i in &s.interfaces {
            let key = (ns.to_string(), i.name.clone());
            let exists = self.netlink()?.link_index(ns, &i.name).map_err(|e| e.to_string())?.is_some();
            let tap = match self.taps.get(&key) {
                Some(t) if exists => t.clone(),
                _ => {
                    let name = i.name.clone();
                    let t = Arc::new(
                        netns::run_in(ns, move || Tap::open_persistent_offload(&name))
                            .map_err(|e| format!("interface {}: {e}", i.name))?,
                    );
                    self.taps.insert(key, t.clone());
                    self.opened += 1;
                    t
                }
            };
            out.push((i.port, tap));
            let nl = self.netlink()?;
            // TSO super-frames stay under 60000 bytes, leaving room for the
            // encapsulation inside one 64 KiB IP packet on the substrate.
            nl.set_link(ns, &i.name, i.mac.0, i.mtu, Some(60_000)).map_err(|e| e.to_string())?;
            // Addresses: add what is missing, remove what is no longer wanted.
            let have: BTreeSet<IpNet> = nl
                .addresses(ns, &i.name)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|a| !a.link_scope)
                .map(|a| a.net)
                .collect();
            let want: BTreeSet<IpNet> = i.addresses.iter().copied().collect();
            for a in want.difference(&have) {
                nl.add_address(ns, &i.name, *a, a.addr().is_ipv6()).map_err(|e| e.to_string())?;
            }
            for a in have.difference(&want) {
                nl.delete_address(ns, &i.name, *a).map_err(|e| e.to_string())?;
            }
        }
        // Interfaces this sliver no longer has.
        let want_if: BTreeSet<String> = s.interfaces.iter().map(|i| i.name.clone()).collect();
        for old in rec.interfaces.difference(&want_if).cloned().collect::<Vec<_>>() {
            if let Some(t) = self.taps.remove(&(ns.to_string(), old.clone())) {
                let _ = t.unpersist();
            }
            self.netlink()?.delete_link(ns, &old).map_err(|e| e.to_string())?;
            rec.interfaces.remove(&old);
        }
        // Routes (kept in the ledger as `TO via VIA`).
        let nl = self.netlink()?;
        let want_routes: BTreeSet<String> = s.routes.iter().map(|r| format!("{} via {}", r.to, r.via)).collect();
        for r in &s.routes {
            nl.replace_route(ns, r.to, r.via).map_err(|e| e.to_string())?;
        }
        for r in rec.routes.difference(&want_routes) {
            if let Some((to, via)) = r.split_once(" via ")
                && let (Ok(to), Ok(via)) = (to.parse(), via.parse())
            {
                let _ = nl.delete_route(ns, to, via);
            }
        }
        rec.routes = want_routes;
        // Forwarding.
        let fwd = if s.ip_forward { "1" } else { "0" };
        netns::sysctl(ns, "net.ipv4.ip_forward", fwd).map_err(|e| e.to_string())?;
        // Limits.
        if cgroup::available() {
            cgroup::ensure(ns, s.cpu, s.memory.bytes()).map_err(|e| e.to_string())?;
            rec.cgroup = true;
            cgroup::set_cpus(ns, (!cpus.is_empty()).then_some(cpus)).map_err(|e| e.to_string())?;
        }
        self.ledger.slivers.insert(ns.to_string(), rec);
        self.save();
        Ok(())
    }

    fn netlink(&mut self) -> Result<&mut Netlink, String> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::new().map_err(|e| e.to_string())?);
        }
        Ok(self.netlink.as_mut().expect("just made"))
    }

    fn teardown(&mut self, ns: &str, rec: &SliverRecord) -> Result<(), String> {
        sliver::kill_processes(ns, rec.cgroup);
        let keys: Vec<(String, String)> = self.taps.keys().filter(|(n, _)| n == ns).cloned().collect();
        for k in keys {
            if let Some(t) = self.taps.remove(&k) {
                let _ = t.unpersist();
            }
        }
        if netns::exists(ns) {
            let nl = self.netlink()?;
            for i in &rec.interfaces {
                let _ = nl.delete_link(ns, i);
            }
            nl.forget(ns);
        }
        netns::delete(ns).map_err(|e| e.to_string())?;
        if rec.cgroup {
            sliver::remove_cgroup(ns)?;
        }
        Ok(())
    }
}
