//! The manager's state and the one place that changes it.
//!
//! Handlers parse and validate, then call a method here under one lock (the
//! firecracker pattern: one owner of the state). Every change is computed on the
//! side, committed to the store in one transaction, and only then made visible, so
//! a refused or failed request changes nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use netslice_dataplane::Registry;
use netslice_embed::{Allocations, PlanError, node_configs, plan, replan};
use netslice_model::api::{HostInfo, HostState, NodeConfig, NodeReport, SliceInfo, SliceState, SliceSummary};
use netslice_model::types::TypeCatalog;
use netslice_model::{FieldError, SliceSpec, SpecError, Substrate};

use crate::store::{SliceRow, Store, StoreError};

/// A host that has not reported for this long is down.
pub const HOST_DOWN_AFTER: Duration = Duration::from_secs(10);

/// Why a request failed. Mapped to HTTP statuses in one place (`api::status_of`).
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The document is invalid.
    #[error("invalid {what}: {}", join_errors(errors))]
    Invalid {
        /// "slice spec", "request", ...
        what: &'static str,
        /// Field errors.
        errors: Vec<FieldError>,
    },
    /// The slice cannot be placed on this substrate.
    #[error("cannot place slice: {0}")]
    Unplaceable(#[from] PlanError),
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn join_errors(errors: &[FieldError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

impl From<SpecError> for ManagerError {
    fn from(e: SpecError) -> Self {
        ManagerError::Invalid { what: "slice spec", errors: e.errors }
    }
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new slice.
    Created,
    /// An existing slice changed in place.
    Updated,
    /// Nothing to do.
    Unchanged,
}

impl Applied {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Updated => "updated",
            Applied::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Default)]
struct HostRuntime {
    registered: Option<Instant>,
    report: Option<(Instant, NodeReport)>,
}

/// The manager's state.
#[derive(Debug)]
pub struct State {
    store: Store,
    substrate: Substrate,
    epoch: String,
    revision: u64,
    slices: BTreeMap<String, SliceRow>,
    alloc: Allocations,
    configs: BTreeMap<String, NodeConfig>,
    hosts: BTreeMap<String, HostRuntime>,
    types: Arc<Registry>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn new_epoch() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{:x}{:05x}", t.as_nanos() as u64, std::process::id() & 0xfffff)
}

/// Config without the fields that change with every derivation.
fn content(c: &NodeConfig) -> NodeConfig {
    NodeConfig { revision: 0, epoch: String::new(), ..c.clone() }
}

impl State {
    /// Opens the store. The substrate comes from the store; `substrate` is stored on
    /// first start, and may replace the stored one only while no slice exists.
    pub fn open(db: &Path, substrate: Option<Substrate>, types: Arc<Registry>) -> Result<State, ManagerError> {
        let store = Store::open(db)?;
        let slices = store.slices()?;
        let stored = store.substrate()?;
        let substrate = match (stored, substrate) {
            (Some(s), None) => s,
            (None, Some(s)) => {
                store.set_meta("substrate", &serde_json::to_string(&s).expect("substrate serializes"))?;
                s
            }
            (Some(old), Some(new)) if old == new => old,
            (Some(_), Some(new)) if slices.is_empty() => {
                store.set_meta("substrate", &serde_json::to_string(&new).expect("substrate serializes"))?;
                new
            }
            (Some(old), Some(_)) => {
                return Err(ManagerError::Conflict(format!(
                    "the store already holds substrate {:?} with {} slices; delete them before changing the substrate",
                    old.name,
                    slices.len()
                )));
            }
            (None, None) => {
                return Err(ManagerError::NotFound(
                    "the store has no substrate yet: start the manager with --substrate FILE".into(),
                ));
            }
        };
        // Ethernet-only links need an Ethernet-layer type to convert to.
        let mut bad = Vec::new();
        for (i, l) in substrate.links.iter().enumerate() {
            if l.network == netslice_model::substrate::Network::Ethernet {
                match types.link_type(&l.l2) {
                    Some(t) if t.layer == netslice_model::types::Layer::Ethernet => {}
                    Some(_) => bad.push(FieldError::new(
                        format!("links[{i}].l2"),
                        format!("{:?} is not an Ethernet-layer link type", l.l2),
                    )),
                    None => bad.push(FieldError::new(
                        format!("links[{i}].l2"),
                        format!(
                            "unknown link type {:?} (this deployment offers: {})",
                            l.l2,
                            types.link_type_names().join(", ")
                        ),
                    )),
                }
            }
        }
        if !bad.is_empty() {
            return Err(ManagerError::Invalid { what: "substrate", errors: bad });
        }
        let epoch = match store.meta("epoch")? {
            Some(e) => e,
            None => {
                let e = new_epoch();
                store.set_meta("epoch", &e)?;
                e
            }
        };
        let revision = store.meta("revision")?.and_then(|r| r.parse().ok()).unwrap_or(0);
        let host_revs = store.host_revisions()?;
        let alloc = Allocations::from_plans(slices.values().map(|s| &s.plan));
        let pairs: Vec<_> = slices.values().map(|s| (&s.spec, &s.plan)).collect();
        let mut configs = node_configs(&substrate, &pairs, &*types);
        for (h, c) in configs.iter_mut() {
            c.revision = host_revs.get(h).copied().unwrap_or(0);
            c.epoch = epoch.clone();
        }
        let hosts = substrate.hosts.iter().map(|h| (h.name.clone(), HostRuntime::default())).collect();
        tracing::info!(
            "store open: substrate {:?} ({} hosts, {} links), {} slices, revision {revision}, epoch {epoch}",
            substrate.name,
            substrate.hosts.len(),
            substrate.links.len(),
            slices.len()
        );
        Ok(State { store, substrate, epoch, revision, slices, alloc, configs, hosts, types })
    }

    /// The substrate.
    pub fn substrate(&self) -> &Substrate {
        &self.substrate
    }

    /// The node and link types this deployment offers.
    pub fn types(&self) -> &Arc<Registry> {
        &self.types
    }

    /// The global revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The store's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Recomputes host configs for `slices`, commits, and makes it visible.
    fn commit(
        &mut self,
        slices: BTreeMap<String, SliceRow>,
        put: &[&str],
        delete: &[&str],
        alloc: Allocations,
    ) -> Result<u64, ManagerError> {
        let revision = self.revision + 1;
        let pairs: Vec<_> = slices.values().map(|s| (&s.spec, &s.plan)).collect();
        let mut configs = node_configs(&self.substrate, &pairs, &*self.types);
        let mut changed = BTreeMap::new();
        for (h, c) in configs.iter_mut() {
            let old = self.configs.get(h);
            if old.map(content).as_ref() == Some(&content(c)) {
                c.revision = old.map(|o| o.revision).unwrap_or(0);
            } else {
                c.revision = revision;
                changed.insert(h.clone(), revision);
            }
            c.epoch = self.epoch.clone();
        }
        let rows: Vec<(&str, &SliceRow)> = put.iter().map(|n| (*n, &slices[*n])).collect();
        self.store.commit(&rows, delete, &changed, revision)?;
        self.revision = revision;
        self.slices = slices;
        self.alloc = alloc;
        self.configs = configs;
        Ok(revision)
    }

    /// Creates a slice, leaves an identical one alone, or changes a running one's
    /// isolation parameters in place. Other changes to an existing slice are
    /// refused (live modification of nodes and links comes with the lifecycle work).
    pub fn apply(&mut self, spec: SliceSpec, create_only: bool) -> Result<Applied, ManagerError> {
        spec.validate()?;
        spec.validate_types(&*self.types)?;
        if let Some(existing) = self.slices.get(&spec.name) {
            if create_only {
                return Err(ManagerError::Conflict(format!("slice {:?} already exists", spec.name)));
            }
            if existing.spec == spec {
                return Ok(Applied::Unchanged);
            }
            // Live modification: the delta (nodes, links, bandwidth, isolation) is
            // admitted as a whole; what stays keeps its host, ports, path and labels.
            let mut held = self.alloc.clone();
            held.remove(&existing.plan);
            let p = replan(&self.substrate, &spec, Some((&existing.spec, &existing.plan)), &held, &*self.types)?;
            held.add(&p);
            let mut slices = self.slices.clone();
            let name = spec.name.clone();
            let created = existing.created;
            slices.insert(name.clone(), SliceRow { spec, plan: p, revision: self.revision + 1, created });
            self.commit(slices, &[&name], &[], held)?;
            tracing::info!("slice {name} changed in place at revision {}", self.revision);
            return Ok(Applied::Updated);
        }
        let p = plan(&self.substrate, &spec, &self.alloc, &*self.types)?;
        let mut alloc = self.alloc.clone();
        alloc.add(&p);
        let mut slices = self.slices.clone();
        let name = spec.name.clone();
        slices.insert(name.clone(), SliceRow { spec, plan: p, revision: self.revision + 1, created: now_secs() });
        self.commit(slices, &[&name], &[], alloc)?;
        tracing::info!("slice {name} created at revision {}", self.revision);
        Ok(Applied::Created)
    }

    /// Deletes a slice; returns the revision at which it is gone.
    pub fn delete(&mut self, name: &str) -> Result<u64, ManagerError> {
        let Some(row) = self.slices.get(name) else {
            return Err(ManagerError::NotFound(format!("no slice named {name:?}")));
        };
        let mut alloc = self.alloc.clone();
        alloc.remove(&row.plan);
        let mut slices = self.slices.clone();
        slices.remove(name);
        let rev = self.commit(slices, &[], &[name], alloc)?;
        tracing::info!("slice {name} deleted at revision {rev}");
        Ok(rev)
    }

    /// The desired config of a host.
    pub fn config(&self, host: &str) -> Option<&NodeConfig> {
        self.configs.get(host)
    }

    /// Records an agent registration.
    pub fn register(&mut self, host: &str) -> Result<(), ManagerError> {
        let rt = self.hosts.get_mut(host).ok_or_else(|| {
            ManagerError::NotFound(format!("no host named {host:?} in substrate {:?}", self.substrate.name))
        })?;
        rt.registered = Some(Instant::now());
        tracing::info!("agent of {host} registered");
        Ok(())
    }

    /// Records an agent report.
    pub fn report(&mut self, host: &str, report: NodeReport) -> Result<(), ManagerError> {
        if report.host != host {
            return Err(ManagerError::Invalid {
                what: "report",
                errors: vec![FieldError::new("host", format!("report for {:?} sent to {host:?}", report.host))],
            });
        }
        let rt = self.hosts.get_mut(host).ok_or_else(|| ManagerError::NotFound(format!("no host named {host:?}")))?;
        rt.report = Some((Instant::now(), report));
        Ok(())
    }

    fn fresh_report(&self, host: &str) -> Option<&NodeReport> {
        self.hosts
            .get(host)
            .and_then(|h| h.report.as_ref())
            .filter(|(t, r)| t.elapsed() < HOST_DOWN_AFTER && r.epoch == self.epoch)
            .map(|(_, r)| r)
    }

    fn slice_state(&self, name: &str, row: &SliceRow) -> (SliceState, Option<String>) {
        let mut hosts: Vec<&str> = row.plan.nodes.iter().map(|n| n.host.as_str()).collect();
        hosts.extend(row.plan.links.iter().flat_map(|l| l.path.iter().map(String::as_str)));
        hosts.sort_unstable();
        hosts.dedup();
        let mut waiting = Vec::new();
        for h in hosts {
            let want = self.configs.get(h).map(|c| c.revision).unwrap_or(0);
            match self.fresh_report(h) {
                Some(r) => {
                    if let Some(e) = r.errors.iter().find(|e| e.slice.as_deref() == Some(name)) {
                        return (
                            SliceState::Failed,
                            Some(format!(
                                "{h}: {}{}",
                                e.node.as_ref().map(|n| format!("node {n}: ")).unwrap_or_default(),
                                e.message
                            )),
                        );
                    }
                    if r.applied_revision < want {
                        waiting.push(h.to_string());
                    }
                }
                None => waiting.push(h.to_string()),
            }
        }
        if waiting.is_empty() {
            (SliceState::Ready, None)
        } else {
            (SliceState::Provisioning, Some(format!("waiting for {}", waiting.join(", "))))
        }
    }

    /// All slices.
    pub fn slice_list(&self) -> Vec<SliceSummary> {
        self.slices
            .iter()
            .map(|(name, row)| SliceSummary {
                name: name.clone(),
                state: self.slice_state(name, row).0,
                nodes: row.spec.nodes.len(),
                links: row.spec.links.len(),
                revision: row.revision,
                created: row.created,
            })
            .collect()
    }

    /// One slice with counters.
    pub fn slice_info(&self, name: &str) -> Result<SliceInfo, ManagerError> {
        let row = self.slices.get(name).ok_or_else(|| ManagerError::NotFound(format!("no slice named {name:?}")))?;
        let (state, message) = self.slice_state(name, row);
        let mut counters: Vec<_> = self
            .hosts
            .values()
            .filter_map(|h| h.report.as_ref())
            .flat_map(|(_, r)| r.counters.iter().filter(|c| c.slice == name).cloned())
            .collect();
        counters.sort_by(|a, b| (&a.link, a.direction, &a.host).cmp(&(&b.link, b.direction, &b.host)));
        let mut programs: Vec<_> = self
            .hosts
            .values()
            .filter_map(|h| h.report.as_ref())
            .flat_map(|(_, r)| r.programs.iter().filter(|p| p.slice == name).cloned())
            .collect();
        programs.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(SliceInfo {
            name: name.to_string(),
            state,
            message,
            revision: row.revision,
            created: row.created,
            spec: row.spec.clone(),
            plan: row.plan.clone(),
            counters,
            programs,
        })
    }

    /// All hosts.
    pub fn hosts(&self) -> Vec<HostInfo> {
        self.substrate
            .hosts
            .iter()
            .map(|h| {
                let rt = self.hosts.get(&h.name);
                let report = rt.and_then(|r| r.report.as_ref());
                let last_seen = report.map(|(t, _)| *t).or(rt.and_then(|r| r.registered));
                let state = match last_seen {
                    None => HostState::Unknown,
                    Some(t) if t.elapsed() < HOST_DOWN_AFTER => HostState::Ready,
                    Some(_) => HostState::Down,
                };
                let cfg = self.configs.get(&h.name);
                HostInfo {
                    name: h.name.clone(),
                    role: h.role,
                    state,
                    last_seen_secs: last_seen.map(|t| t.elapsed().as_secs()),
                    desired_revision: cfg.map(|c| c.revision).unwrap_or(0),
                    applied_revision: report.filter(|(_, r)| r.epoch == self.epoch).map(|(_, r)| r.applied_revision),
                    slivers: cfg.map(|c| c.slivers.len()).unwrap_or(0),
                    io_backend: report.map(|(_, r)| r.io_backend.clone()),
                    errors: report.map(|(_, r)| r.errors.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBSTRATE: &str = "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\n  - {name: h3, role: vnode}\n  - {name: t1, role: transport}\nlinks:\n  - {endpoints: [h1, t1], bandwidth: 1Gbit}\n  - {endpoints: [t1, h2], bandwidth: 1Gbit}\n  - {endpoints: [t1, h3], bandwidth: 1Gbit}\n";

    fn spec(name: &str, a: &str, b: &str) -> SliceSpec {
        SliceSpec::from_text(&format!(
            "name: {name}\nnodes:\n  - {{name: a, host: {a}}}\n  - {{name: b, host: {b}}}\nlinks:\n  - {{name: l, bandwidth: 1Mbit, endpoints: [{{node: a}}, {{node: b}}]}}\n"
        ))
        .unwrap()
    }

    fn open(dir: &std::path::Path) -> State {
        State::open(&dir.join("m.db"), Some(Substrate::from_text(SUBSTRATE).unwrap()), Arc::new(Registry::builtin()))
            .unwrap()
    }

    #[test]
    fn apply_bumps_only_affected_hosts_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        assert_eq!(s.apply(spec("red", "h1", "h2"), false).unwrap(), Applied::Created);
        let rev = s.revision();
        assert_eq!(s.config("h1").unwrap().revision, rev);
        assert_eq!(s.config("t1").unwrap().revision, rev);
        assert_eq!(s.config("h3").unwrap().revision, 0, "h3 is not on red's path");
        // Same spec again: nothing changes.
        assert_eq!(s.apply(spec("red", "h1", "h2"), false).unwrap(), Applied::Unchanged);
        assert_eq!(s.revision(), rev);
        // Creating it again under the same name is refused and changes nothing.
        assert!(matches!(s.apply(spec("red", "h1", "h3"), true), Err(ManagerError::Conflict(_))));
        assert_eq!(s.revision(), rev);
        let epoch = s.epoch().to_string();
        let h1 = s.config("h1").unwrap().clone();
        drop(s);
        // Restart: same slices, same configs, same epoch.
        let s = open(dir.path());
        assert_eq!(s.slice_list().len(), 1);
        assert_eq!(s.epoch(), epoch);
        assert_eq!(s.config("h1").unwrap(), &h1);
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.apply(spec("red", "h1", "h2"), false).unwrap();
        let before = (s.revision(), s.slice_list(), s.config("h1").cloned());
        assert!(matches!(s.apply(spec("bad", "h1", "t1"), false), Err(ManagerError::Unplaceable(_))));
        assert!(matches!(s.apply(spec("bad", "h1", "nowhere"), false), Err(ManagerError::Unplaceable(_))));
        assert!(matches!(s.delete("nope"), Err(ManagerError::NotFound(_))));
        assert_eq!(before, (s.revision(), s.slice_list(), s.config("h1").cloned()));
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.slice_list().len(), 1);
    }

    #[test]
    fn delete_releases_labels_and_ports() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.apply(spec("red", "h1", "h2"), false).unwrap();
        let first = s.slice_info("red").unwrap().plan;
        s.delete("red").unwrap();
        assert!(s.config("t1").unwrap().labels.is_empty());
        s.apply(spec("red", "h1", "h2"), false).unwrap();
        assert_eq!(s.slice_info("red").unwrap().plan, first, "the same labels and ports are free again");
    }

    #[test]
    fn isolation_changes_apply_in_place_and_are_admitted_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.apply(spec("red", "h1", "h2"), false).unwrap();
        let plan = s.slice_info("red").unwrap().plan;
        let mut faster = spec("red", "h1", "h2");
        faster.links[0].bandwidth = netslice_model::Bandwidth::mbit(500);
        faster.links[0].ceiling = Some(netslice_model::Bandwidth::mbit(900));
        let rev = s.revision();
        assert_eq!(s.apply(faster.clone(), false).unwrap(), Applied::Updated);
        assert!(s.revision() > rev);
        let info = s.slice_info("red").unwrap();
        assert_eq!(info.plan.links[0].path, plan.links[0].path, "same path");
        assert_eq!(info.plan.links[0].forward_labels, plan.links[0].forward_labels, "same labels");
        assert_eq!(info.plan.links[0].reserved, 500_000_000);
        assert_eq!(s.config("t1").unwrap().labels[0].qos.ceil, 900_000_000);
        // More than the links hold: refused, nothing changes.
        let mut too_much = faster.clone();
        too_much.links[0].bandwidth = netslice_model::Bandwidth::mbit(1001);
        too_much.links[0].ceiling = None;
        let before = (s.revision(), s.slice_info("red").unwrap());
        assert!(matches!(s.apply(too_much, false), Err(ManagerError::Unplaceable(PlanError::Bandwidth { .. }))));
        assert_eq!(before, (s.revision(), s.slice_info("red").unwrap()));
        // Moving a pinned node is a change too: admitted, and the node moves.
        let mut moved = faster;
        moved.nodes[1].host = Some("h3".into());
        assert_eq!(s.apply(moved, false).unwrap(), Applied::Updated);
        assert_eq!(s.slice_info("red").unwrap().plan.node("b").unwrap().host, "h3");
    }

    #[test]
    fn substrate_cannot_change_under_slices() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.apply(spec("red", "h1", "h2"), false).unwrap();
        drop(s);
        let other = Substrate::from_text("name: other\nhosts:\n  - {name: x, role: vnode}\n").unwrap();
        assert!(matches!(
            State::open(&dir.path().join("m.db"), Some(other), Arc::new(Registry::builtin())),
            Err(ManagerError::Conflict(_))
        ));
    }

    #[test]
    fn slice_state_follows_reports() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.apply(spec("red", "h1", "h2"), false).unwrap();
        assert_eq!(s.slice_list()[0].state, SliceState::Provisioning);
        let rev = s.revision();
        for h in ["h1", "t1", "h2"] {
            let r = NodeReport {
                host: h.into(),
                applied_revision: rev,
                epoch: s.epoch().to_string(),
                errors: vec![],
                counters: vec![],
                unmatched: Default::default(),
                programs: vec![],
                io_backend: "test".into(),
                version: "0".into(),
            };
            s.report(h, r).unwrap();
        }
        assert_eq!(s.slice_list()[0].state, SliceState::Ready);
        let mut bad = s.hosts.get("h2").unwrap().report.clone().unwrap().1;
        bad.errors.push(netslice_model::api::ApplyError {
            slice: Some("red".into()),
            node: Some("b".into()),
            message: "boom".into(),
        });
        s.report("h2", bad).unwrap();
        let info = s.slice_info("red").unwrap();
        assert_eq!(info.state, SliceState::Failed);
        assert!(info.message.unwrap().contains("boom"));
    }
}
