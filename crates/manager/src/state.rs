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
use netslice_model::api::{
    HostInfo, HostState, HostUsage, LinkUsage, NodeConfig, NodeReport, SliceInfo, SlicePlan, SliceState, SliceSummary,
    SubstrateUsage,
};
use netslice_model::types::TypeCatalog;
use netslice_model::{FieldError, SliceSpec, SpecError, Substrate};

use crate::auth::{Principal, digest, new_secret};
use crate::store::{Audit, SliceRow, Store, StoreError};

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
    /// No (valid) credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The request body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The request did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// The caller has too many requests in flight.
    #[error("{0}")]
    TooManyRequests(String),
    /// The path exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A bug: something that must not fail did (logged).
    #[error("internal error: {0}")]
    Internal(String),
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
    /// Checked and planned, nothing committed (`dry_run`).
    DryRun,
}

impl Applied {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Updated => "updated",
            Applied::Unchanged => "unchanged",
            Applied::DryRun => "dry-run",
        }
    }
}

/// What the operator decides about leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Lease of a slice that asks for none, seconds.
    pub lease_default: u64,
    /// Longest lease, seconds.
    pub lease_max: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { lease_default: 24 * 3600, lease_max: 7 * 24 * 3600 }
    }
}

/// A deleted slice whose agents have this long to confirm it is gone before the
/// row goes anyway (an agent that is down cleans up from its ledger when it
/// comes back).
pub const DELETE_GRACE: Duration = Duration::from_secs(30);

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
    policy: Policy,
    tokens: BTreeMap<String, crate::store::TokenRow>,
    node_creds: BTreeMap<String, String>,
    enroll_digest: Option<String>,
    deleting_since: BTreeMap<String, Instant>,
}

/// The audit record of a change made by `who`.
fn audit(who: &Principal, action: &str, object: &str, detail: impl Into<String>) -> Audit {
    let (caller, role) = match who {
        p if *p == Principal::system() => ("system".to_string(), "system"),
        Principal::User { name, operator } => (name.clone(), if *operator { "operator" } else { "developer" }),
        Principal::Node(h) => (format!("agent:{h}"), "agent"),
    };
    Audit { caller, role: role.into(), action: action.into(), object: object.into(), detail: detail.into() }
}

/// Writes an audit record to the log too (target `netslice::audit`).
fn log_audit(a: &Audit) {
    tracing::info!(target: "netslice::audit", "audit: {} ({}) {} {}: {}", a.caller, a.role, a.action, a.object, a.detail);
}

/// A row stored before fast-path nodes stopped being charged as slivers
/// (issue 14): their `cpu`/`memory` leave the spec, and their plan entries
/// lose the namespace and get what a fast-path node reserves. Returns whether
/// anything changed. Done at every open (it is idempotent), in memory only:
/// allocations are derived from the plans, so they follow.
fn upgrade_fast_path_nodes(row: &mut SliceRow, types: &dyn TypeCatalog) -> bool {
    let mut changed = false;
    let fast: Vec<String> = row
        .spec
        .nodes
        .iter()
        .filter(|n| types.node_type(&n.node_type).is_some_and(|t| t.fast_path))
        .map(|n| n.name.clone())
        .collect();
    for n in row.spec.nodes.iter_mut().filter(|n| fast.contains(&n.name)) {
        changed |= n.cpu.take().is_some() | n.memory.take().is_some();
    }
    for name in &fast {
        let Some(spec_node) = row.spec.node(name) else { continue };
        let d = netslice_embed::node_demand(&row.spec, spec_node, types);
        if let Some(p) = row.plan.nodes.iter_mut().find(|p| &p.name == name) {
            let (cpu, mem) = ((d.cpu * 1000.0).round() as u64, d.memory);
            if p.netns.is_some() || p.cpu_milli != cpu || p.memory != mem {
                p.netns = None;
                p.cpu_milli = cpu;
                p.memory = mem;
                changed = true;
            }
        }
    }
    changed
}

/// Names no user may take: they stand for the platform itself in the audit trail.
pub const RESERVED_USERS: &[&str] = &["system"];

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
        let mut slices = store.slices()?;
        for (name, row) in slices.iter_mut() {
            if upgrade_fast_path_nodes(row, &*types) {
                tracing::info!(
                    "slice {name}: fast-path nodes stored as slivers by an older manager now reserve their forwarding work"
                );
            }
        }
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
        let alloc = Allocations::from_plans(slices.values().filter(|s| !s.deleting).map(|s| &s.plan));
        let pairs: Vec<_> = slices.values().filter(|s| !s.deleting).map(|s| (&s.spec, &s.plan)).collect();
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
        let tokens = store.tokens()?;
        let node_creds = store.node_credentials()?;
        Ok(State {
            store,
            substrate,
            epoch,
            revision,
            slices,
            alloc,
            configs,
            hosts,
            types,
            policy: Policy::default(),
            tokens,
            node_creds,
            enroll_digest: None,
            deleting_since: BTreeMap::new(),
        })
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
        audit: Option<Audit>,
    ) -> Result<u64, ManagerError> {
        let revision = self.revision + 1;
        let pairs: Vec<_> = slices.values().filter(|s| !s.deleting).map(|s| (&s.spec, &s.plan)).collect();
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
        self.store.commit(&rows, delete, &changed, revision, audit.as_ref().map(|a| (now_secs(), a)))?;
        if let Some(a) = &audit {
            log_audit(a);
        }
        self.revision = revision;
        self.slices = slices;
        self.alloc = alloc;
        self.configs = configs;
        Ok(revision)
    }

    /// Creates a slice, leaves an identical one alone, or changes a running one
    /// in place (nodes, links, bandwidth, isolation: the delta admitted as a
    /// whole; what stays keeps its host, ports, path and labels). With `dry_run`
    /// everything is checked and planned and nothing is committed. Returns what
    /// happened and the plan.
    pub fn apply(
        &mut self,
        spec: SliceSpec,
        create_only: bool,
        who: &Principal,
        dry_run: bool,
    ) -> Result<(Applied, SlicePlan), ManagerError> {
        let Some(user) = who.user() else {
            return Err(ManagerError::Forbidden("agents do not manage slices".into()));
        };
        spec.validate()?;
        spec.validate_types(&*self.types)?;
        let lease = match spec.lease {
            Some(l) => {
                let secs = l.0 / 1_000_000;
                if secs == 0 || secs > self.policy.lease_max {
                    return Err(ManagerError::Invalid {
                        what: "slice spec",
                        errors: vec![FieldError::new(
                            "lease",
                            format!("{l} is outside 1s..{}s (the operator's maximum)", self.policy.lease_max),
                        )],
                    });
                }
                secs
            }
            None => self.policy.lease_default,
        };
        let now = now_secs();
        // A slice being deleted holds nothing any more: its name may be taken
        // again at once (the agents converge on whatever the desired config says).
        if let Some(existing) = self.slices.get(&spec.name).filter(|r| !r.deleting) {
            if create_only {
                return Err(ManagerError::Conflict(format!("slice {:?} already exists", spec.name)));
            }
            self.check_owner(existing, &spec.name, who)?;
            if existing.spec == spec {
                let result = if dry_run { Applied::DryRun } else { Applied::Unchanged };
                return Ok((result, existing.plan.clone()));
            }
            let mut held = self.alloc.clone();
            held.remove(&existing.plan);
            let p = replan(&self.substrate, &spec, Some((&existing.spec, &existing.plan)), &held, &*self.types)?;
            if dry_run {
                return Ok((Applied::DryRun, p));
            }
            held.add(&p);
            let mut slices = self.slices.clone();
            let name = spec.name.clone();
            let expires = if existing.spec.lease != spec.lease { now + lease } else { existing.expires };
            let row = SliceRow {
                spec,
                plan: p.clone(),
                revision: self.revision + 1,
                created: existing.created,
                owner: existing.owner.clone(),
                expires,
                deleting: false,
            };
            slices.insert(name.clone(), row);
            let rev = self.revision + 1;
            self.commit(
                slices,
                &[&name],
                &[],
                held,
                Some(audit(who, "slice.update", &name, format!("revision {rev}"))),
            )?;
            return Ok((Applied::Updated, p));
        }
        let p = plan(&self.substrate, &spec, &self.alloc, &*self.types)?;
        if dry_run {
            return Ok((Applied::DryRun, p));
        }
        let mut alloc = self.alloc.clone();
        alloc.add(&p);
        let mut slices = self.slices.clone();
        let name = spec.name.clone();
        let row = SliceRow {
            spec,
            plan: p.clone(),
            revision: self.revision + 1,
            created: now,
            owner: user.to_string(),
            expires: now + lease,
            deleting: false,
        };
        slices.insert(name.clone(), row);
        let rev = self.revision + 1;
        self.commit(slices, &[&name], &[], alloc, Some(audit(who, "slice.create", &name, format!("revision {rev}"))))?;
        self.deleting_since.remove(&name);
        Ok((Applied::Created, p))
    }

    fn check_owner(&self, row: &SliceRow, name: &str, who: &Principal) -> Result<(), ManagerError> {
        if who.is_operator() || who.user() == Some(row.owner.as_str()) {
            Ok(())
        } else {
            Err(ManagerError::Forbidden(format!("slice {name:?} belongs to another user")))
        }
    }

    /// A slice the caller may see.
    fn visible(&self, name: &str, who: &Principal) -> Result<&SliceRow, ManagerError> {
        let row = self.slices.get(name).ok_or_else(|| ManagerError::NotFound(format!("no slice named {name:?}")))?;
        self.check_owner(row, name, who)?;
        Ok(row)
    }

    /// Starts deleting a slice: its resources are released and the agents told
    /// at once; the slice shows as `deleting` until they confirm. Returns the
    /// revision at which it is gone from every desired config.
    pub fn delete(&mut self, name: &str, who: &Principal) -> Result<u64, ManagerError> {
        self.delete_as(name, who, "slice.delete")
    }

    fn delete_as(&mut self, name: &str, who: &Principal, action: &str) -> Result<u64, ManagerError> {
        let row = self.visible(name, who)?.clone();
        if row.deleting {
            return Ok(row.revision);
        }
        let mut alloc = self.alloc.clone();
        alloc.remove(&row.plan);
        let mut slices = self.slices.clone();
        let owner = row.owner.clone();
        slices.insert(name.to_string(), SliceRow { deleting: true, revision: self.revision + 1, ..row });
        let detail = format!("revision {}, owner {owner}", self.revision + 1);
        let rev = self.commit(slices, &[name], &[], alloc, Some(audit(who, action, name, detail)))?;
        self.deleting_since.insert(name.to_string(), Instant::now());
        Ok(rev)
    }

    /// Extends a slice's lease to `secs` from now (at most the operator's maximum).
    /// `field` names what the caller sent (`for` or `seconds`) in an error.
    pub fn renew(&mut self, name: &str, secs: Option<u64>, field: &str, who: &Principal) -> Result<u64, ManagerError> {
        let row = self.visible(name, who)?.clone();
        if row.deleting {
            return Err(ManagerError::Conflict(format!("slice {name:?} is being deleted")));
        }
        let secs = secs.unwrap_or(self.policy.lease_default);
        if secs == 0 || secs > self.policy.lease_max {
            return Err(ManagerError::Invalid {
                what: "renew request",
                errors: vec![FieldError::new(
                    field,
                    format!("{secs}s is outside 1s..{}s (the operator's maximum)", self.policy.lease_max),
                )],
            });
        }
        let expires = now_secs() + secs;
        let mut slices = self.slices.clone();
        slices.insert(name.to_string(), SliceRow { expires, ..row });
        let alloc = self.alloc.clone();
        self.commit(
            slices,
            &[name],
            &[],
            alloc,
            Some(audit(who, "slice.renew", name, format!("lease ends {expires}"))),
        )?;
        Ok(expires)
    }

    /// Housekeeping: deletes slices whose lease ended, and forgets deleted slices
    /// once every host on them applied the deletion (or after a grace period).
    /// Returns what it did, for the log.
    pub fn housekeeping(&mut self, now: u64) -> Vec<String> {
        let mut done = Vec::new();
        let expired: Vec<String> = self
            .slices
            .iter()
            .filter(|(_, r)| !r.deleting && r.expires != 0 && r.expires <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in expired {
            match self.delete_as(&name, &Principal::system(), "slice.expire") {
                Ok(_) => done.push(format!("lease of slice {name} ended: deleting it")),
                Err(e) => done.push(format!("cannot delete expired slice {name}: {e}")),
            }
        }
        let finished: Vec<String> = self
            .slices
            .iter()
            .filter(|(name, row)| {
                row.deleting
                    && (self
                        .hosts_of(row)
                        .iter()
                        .all(|h| self.applied(h) >= self.configs.get(*h).map(|c| c.revision).unwrap_or(0))
                        || self.deleting_since.get(*name).is_none_or(|t| t.elapsed() > DELETE_GRACE))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in finished {
            let mut slices = self.slices.clone();
            slices.remove(&name);
            let alloc = self.alloc.clone();
            match self.commit(slices, &[], &[&name], alloc, None) {
                Ok(_) => {
                    self.deleting_since.remove(&name);
                    done.push(format!("slice {name} deleted"));
                }
                Err(e) => done.push(format!("cannot forget slice {name}: {e}")),
            }
        }
        done
    }

    fn hosts_of<'a>(&self, row: &'a SliceRow) -> Vec<&'a str> {
        let mut hosts: Vec<&str> = row.plan.nodes.iter().map(|n| n.host.as_str()).collect();
        hosts.extend(row.plan.links.iter().flat_map(|l| l.path.iter().map(String::as_str)));
        hosts.sort_unstable();
        hosts.dedup();
        hosts
    }

    fn applied(&self, host: &str) -> u64 {
        self.fresh_report(host).map(|r| r.applied_revision).unwrap_or(0)
    }

    /// Sets the lease policy.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// The resources held and free on every host and physical link.
    pub fn usage(&self) -> SubstrateUsage {
        let hosts = self
            .substrate
            .hosts
            .iter()
            .map(|h| {
                let cpu_used = self.alloc.cpu_milli.get(&h.name).copied().unwrap_or(0) as f64 / 1000.0;
                let mem_used = self.alloc.memory.get(&h.name).copied().unwrap_or(0);
                let slivers_used = self.alloc.slivers.get(&h.name).copied().unwrap_or(0);
                let ports_used = self.alloc.ports.get(&h.name).map(|s| s.len() as u32).unwrap_or(0);
                HostUsage {
                    name: h.name.clone(),
                    role: h.role,
                    cpu: h.cpu,
                    cpu_used,
                    memory: h.memory.bytes(),
                    memory_used: mem_used,
                    slivers: h.slivers,
                    slivers_used,
                    ports: h.ports,
                    ports_used,
                }
            })
            .collect();
        let links = self
            .substrate
            .links
            .iter()
            .flat_map(|l| {
                [(&l.ends[0], &l.ends[1]), (&l.ends[1], &l.ends[0])].map(|(a, b)| {
                    let used = self.alloc.bandwidth.get(&(l.name.clone(), a.host.clone())).copied().unwrap_or(0);
                    LinkUsage {
                        name: l.name.clone(),
                        from: a.host.clone(),
                        to: b.host.clone(),
                        bandwidth: l.bandwidth.bps(),
                        reserved: used,
                        free: l.bandwidth.bps().saturating_sub(used),
                    }
                })
            })
            .collect();
        SubstrateUsage { name: self.substrate.name.clone(), hosts, links }
    }

    // --- authentication

    /// Who holds `secret`, if anyone.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        let d = digest(secret);
        if let Some(t) = self.tokens.get(&d) {
            return Some(Principal::User { name: t.user.clone(), operator: t.role == "operator" });
        }
        self.node_creds.iter().find(|(_, c)| **c == d).map(|(h, _)| Principal::Node(h.clone()))
    }

    /// Creates a user token (operators only, or the bootstrap when `who` is None
    /// and no token exists yet). Returns the secret, shown this once.
    pub fn add_user(&mut self, name: &str, operator: bool, who: Option<&Principal>) -> Result<String, ManagerError> {
        match who {
            Some(p) if p.is_operator() => {}
            Some(_) => return Err(ManagerError::Forbidden("only operators add users".into())),
            None if self.tokens.is_empty() => {}
            None => return Err(ManagerError::Unauthorized("a token is needed".into())),
        }
        let mut errs = Vec::new();
        if let Err(e) = netslice_model::names::user(name) {
            errs.push(FieldError::new("name", e.0));
        }
        if RESERVED_USERS.contains(&name) {
            errs.push(FieldError::new("name", format!("{name:?} is reserved for the platform itself")));
        }
        if !errs.is_empty() {
            return Err(ManagerError::Invalid { what: "user", errors: errs });
        }
        let secret = new_secret();
        let role = if operator { "operator" } else { "developer" };
        let a = audit(who.unwrap_or(&Principal::system()), "user.add", name, format!("role {role}, new token"));
        self.store.add_token(&digest(&secret), name, role, now_secs(), &a)?;
        log_audit(&a);
        self.tokens = self.store.tokens()?;
        Ok(secret)
    }

    /// Revokes every token of a user (operators only).
    pub fn revoke_user(&mut self, name: &str, who: &Principal) -> Result<usize, ManagerError> {
        if !who.is_operator() {
            return Err(ManagerError::Forbidden("only operators revoke users".into()));
        }
        let a = audit(who, "user.revoke", name, "every token");
        let n = self.store.remove_tokens(name, now_secs(), &a)?;
        self.tokens = self.store.tokens()?;
        if n == 0 {
            return Err(ManagerError::NotFound(format!("no user named {name:?}")));
        }
        log_audit(&Audit { detail: format!("{n} token(s)"), ..a });
        Ok(n)
    }

    /// The audit trail after record `after` (at most `limit` records), for
    /// operators.
    pub fn audit_trail(
        &self,
        after: u64,
        limit: usize,
        who: &Principal,
    ) -> Result<Vec<netslice_model::api::AuditEntry>, ManagerError> {
        if !who.is_operator() {
            return Err(ManagerError::Forbidden("only operators read the audit trail".into()));
        }
        Ok(self
            .store
            .audit(after, limit)?
            .into_iter()
            .map(|(id, time, a)| netslice_model::api::AuditEntry {
                id,
                time,
                caller: a.caller,
                role: a.role,
                action: a.action,
                object: a.object,
                detail: a.detail,
            })
            .collect())
    }

    /// Whether `secret` is the agent enrollment token.
    pub fn is_enrollment(&self, secret: &str) -> bool {
        self.enroll_digest.as_deref() == Some(digest(secret).as_str())
    }

    /// Whether no user token exists yet.
    pub fn no_users(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Sets the agent enrollment secret (agents present it to register).
    pub fn set_enrollment(&mut self, secret: &str) {
        self.enroll_digest = Some(digest(secret));
    }

    /// An agent registers with the enrollment secret and receives a credential
    /// of its own for everything else (replacing any earlier one).
    pub fn enroll(&mut self, host: &str, secret: &str) -> Result<String, ManagerError> {
        if self.enroll_digest.as_deref() != Some(digest(secret).as_str()) {
            return Err(ManagerError::Unauthorized("wrong enrollment token".into()));
        }
        if self.substrate.host(host).is_none() {
            return Err(ManagerError::NotFound(format!(
                "no host named {host:?} in substrate {:?}",
                self.substrate.name
            )));
        }
        let cred = new_secret();
        let a = audit(&Principal::Node(host.to_string()), "node.enroll", host, "new agent credential");
        self.store.set_node_credential(host, &digest(&cred), now_secs(), &a)?;
        log_audit(&a);
        self.node_creds.insert(host.to_string(), digest(&cred));
        self.register(host)?;
        Ok(cred)
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
        if row.deleting {
            return (SliceState::Deleting, Some("agents are tearing it down".into()));
        }
        let hosts = self.hosts_of(row);
        let n_hosts = hosts.len();
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
        } else if waiting.len() == n_hosts {
            (SliceState::Allocated, Some(format!("reserved; waiting for {}", waiting.join(", "))))
        } else {
            (SliceState::Provisioning, Some(format!("waiting for {}", waiting.join(", "))))
        }
    }

    /// The slices the caller may see.
    pub fn slice_list(&self, who: &Principal) -> Vec<SliceSummary> {
        self.slices
            .iter()
            .filter(|(_, row)| who.is_operator() || who.user() == Some(row.owner.as_str()))
            .map(|(name, row)| SliceSummary {
                owner: row.owner.clone(),
                expires: row.expires,
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
    pub fn slice_info(&self, name: &str, who: &Principal) -> Result<SliceInfo, ManagerError> {
        let row = self.visible(name, who)?;
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
            owner: row.owner.clone(),
            expires: row.expires,
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
                    forwarding: report.map(|(_, r)| r.forwarding.clone()).filter(|f| !f.is_empty()),
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

    fn alice() -> Principal {
        Principal::User { name: "alice".into(), operator: false }
    }

    fn bob() -> Principal {
        Principal::User { name: "bob".into(), operator: false }
    }

    fn op() -> Principal {
        Principal::User { name: "root".into(), operator: true }
    }

    /// Release returns exactly what was taken: the running allocation always
    /// equals what the live slices' plans hold, in memory and after a reopen.
    fn check_invariant(s: &State) {
        let expect = Allocations::from_plans(s.slices.values().filter(|r| !r.deleting).map(|r| &r.plan));
        assert_eq!(s.alloc, expect, "allocations drifted from the slices' plans");
    }

    fn put(s: &mut State, spec: SliceSpec, create_only: bool) -> Result<Applied, ManagerError> {
        let r = s.apply(spec, create_only, &alice(), false).map(|(a, _)| a);
        check_invariant(s);
        r
    }

    fn report_all(s: &mut State) {
        let rev = s.revision();
        let hosts: Vec<String> = s.substrate.hosts.iter().map(|h| h.name.clone()).collect();
        for h in hosts {
            let r = NodeReport {
                host: h.clone(),
                applied_revision: rev,
                epoch: s.epoch().to_string(),
                errors: vec![],
                counters: vec![],
                unmatched: Default::default(),
                programs: vec![],
                io_backend: "test".into(),
                forwarding: String::new(),
                version: "0".into(),
            };
            s.report(&h, r).unwrap();
        }
    }

    #[test]
    fn apply_bumps_only_affected_hosts_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        assert_eq!(put(&mut s, spec("red", "h1", "h2"), false).unwrap(), Applied::Created);
        let rev = s.revision();
        assert_eq!(s.config("h1").unwrap().revision, rev);
        assert_eq!(s.config("t1").unwrap().revision, rev);
        assert_eq!(s.config("h3").unwrap().revision, 0, "h3 is not on red's path");
        // Same spec again: nothing changes.
        assert_eq!(put(&mut s, spec("red", "h1", "h2"), false).unwrap(), Applied::Unchanged);
        assert_eq!(s.revision(), rev);
        // Creating it again under the same name is refused and changes nothing.
        assert!(matches!(put(&mut s, spec("red", "h1", "h3"), true), Err(ManagerError::Conflict(_))));
        assert_eq!(s.revision(), rev);
        let epoch = s.epoch().to_string();
        let h1 = s.config("h1").unwrap().clone();
        let alloc = s.alloc.clone();
        drop(s);
        // Restart: same slices, same configs, same epoch, same reservations.
        let s = open(dir.path());
        assert_eq!(s.slice_list(&op()).len(), 1);
        assert_eq!(s.epoch(), epoch);
        assert_eq!(s.config("h1").unwrap(), &h1);
        assert_eq!(s.alloc, alloc);
        check_invariant(&s);
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let before = (s.revision(), s.slice_list(&op()), s.config("h1").cloned(), s.usage());
        assert!(matches!(put(&mut s, spec("bad", "h1", "t1"), false), Err(ManagerError::Unplaceable(_))));
        assert!(matches!(put(&mut s, spec("bad", "h1", "nowhere"), false), Err(ManagerError::Unplaceable(_))));
        assert!(matches!(s.delete("nope", &alice()), Err(ManagerError::NotFound(_))));
        let mut long = spec("bad", "h1", "h2");
        long.lease = Some(netslice_model::Micros(8 * 24 * 3600 * 1_000_000));
        match put(&mut s, long, false) {
            Err(ManagerError::Invalid { errors, .. }) => assert_eq!(errors[0].field, "lease"),
            other => panic!("{other:?}"),
        }
        assert_eq!(before, (s.revision(), s.slice_list(&op()), s.config("h1").cloned(), s.usage()));
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.slice_list(&op()).len(), 1);
    }

    #[test]
    fn dry_run_plans_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let before = (s.revision(), s.usage());
        let (a, plan) = s.apply(spec("red", "h1", "h2"), false, &alice(), true).unwrap();
        assert_eq!(a, Applied::DryRun);
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(before, (s.revision(), s.usage()));
        assert!(s.slice_list(&op()).is_empty());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let (a, _) = s.apply(spec("red", "h1", "h2"), false, &alice(), true).unwrap();
        assert_eq!(a, Applied::DryRun, "a dry run of an unchanged spec is still a dry run");
    }

    #[test]
    fn delete_releases_everything_at_once_and_forgets_after_agents_confirm() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let empty = s.usage();
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let first = s.slice_info("red", &alice()).unwrap().plan;
        assert!(s.usage().links.iter().any(|l| l.reserved == 1_000_000));
        s.delete("red", &alice()).unwrap();
        check_invariant(&s);
        assert_eq!(s.usage(), empty, "everything released at delete");
        assert!(s.config("t1").unwrap().labels.is_empty());
        assert_eq!(s.slice_info("red", &alice()).unwrap().state, SliceState::Deleting);
        // Housekeeping keeps the row until the hosts applied the deletion.
        assert!(s.housekeeping(now_secs()).is_empty());
        report_all(&mut s);
        assert_eq!(s.housekeeping(now_secs()), vec!["slice red deleted".to_string()]);
        assert!(matches!(s.slice_info("red", &alice()), Err(ManagerError::NotFound(_))));
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        assert_eq!(s.slice_info("red", &alice()).unwrap().plan, first, "the same labels and ports are free again");
        // A name being deleted can be taken again at once.
        s.delete("red", &alice()).unwrap();
        assert_eq!(put(&mut s, spec("red", "h1", "h3"), true).unwrap(), Applied::Created);
        drop(s);
        let s = open(dir.path());
        check_invariant(&s);
        assert_eq!(s.slice_list(&op())[0].state, SliceState::Allocated);
    }

    #[test]
    fn developers_see_and_change_only_their_own_slices() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        assert_eq!(s.slice_list(&alice())[0].owner, "alice");
        assert!(s.slice_list(&bob()).is_empty(), "bob does not see alice's slice");
        assert_eq!(s.slice_list(&op()).len(), 1, "operators see everything");
        let forbidden = |r: Result<_, ManagerError>| matches!(r, Err(ManagerError::Forbidden(_)));
        assert!(forbidden(s.slice_info("red", &bob()).map(|_| ())));
        assert!(forbidden(s.apply(spec("red", "h1", "h3"), false, &bob(), false).map(|_| ())));
        assert!(forbidden(s.apply(spec("red", "h1", "h3"), false, &bob(), true).map(|_| ())));
        assert!(forbidden(s.delete("red", &bob()).map(|_| ())));
        assert!(forbidden(s.renew("red", Some(60), "seconds", &bob()).map(|_| ())));
        assert!(forbidden(s.apply(spec("x", "h1", "h3"), false, &Principal::Node("h1".into()), false).map(|_| ())));
        assert_eq!(s.slice_info("red", &alice()).unwrap().plan.node("b").unwrap().host, "h2", "unchanged");
        // An operator may change and delete it.
        s.apply(spec("red", "h1", "h3"), false, &op(), false).unwrap();
        assert_eq!(s.slice_list(&alice())[0].owner, "alice", "the owner stays");
        s.delete("red", &op()).unwrap();
        check_invariant(&s);
    }

    #[test]
    fn leases_expire_and_renew() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.set_policy(Policy { lease_default: 100, lease_max: 1000 });
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let t0 = now_secs();
        let exp = s.slice_list(&alice())[0].expires;
        assert!((t0 + 99..=t0 + 101).contains(&exp), "default lease: {exp} vs {t0}");
        let renewed = s.renew("red", Some(500), "seconds", &alice()).unwrap();
        assert!(renewed >= t0 + 499);
        assert!(matches!(s.renew("red", Some(5000), "seconds", &alice()), Err(ManagerError::Invalid { .. })));
        assert_eq!(s.slice_list(&alice())[0].expires, renewed, "a refused renewal changes nothing");
        drop(s);
        let mut s = open(dir.path());
        assert_eq!(s.slice_list(&alice())[0].expires, renewed, "the lease survives a restart");
        assert!(s.housekeeping(renewed - 1).is_empty(), "not yet");
        let done = s.housekeeping(renewed);
        assert_eq!(done[0], "lease of slice red ended: deleting it");
        assert_eq!(s.usage(), {
            let d2 = tempfile::tempdir().unwrap();
            open(d2.path()).usage()
        });
        check_invariant(&s);
        assert!(matches!(s.renew("red", None, "seconds", &alice()), Err(ManagerError::Conflict(_))));
    }

    #[test]
    fn tokens_are_stored_hashed_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        assert!(s.no_users());
        let admin = s.add_user("admin", true, None).unwrap();
        assert!(matches!(s.add_user("eve", true, None), Err(ManagerError::Unauthorized(_))), "bootstrap only once");
        let adm = s.authenticate(&admin).unwrap();
        assert!(adm.is_operator());
        let dev = s.add_user("alice", false, Some(&adm)).unwrap();
        assert_eq!(s.authenticate(&dev), Some(alice()));
        assert!(matches!(s.add_user("x", false, Some(&alice())), Err(ManagerError::Forbidden(_))));
        assert!(matches!(s.add_user("bad name!", false, Some(&adm)), Err(ManagerError::Invalid { .. })));
        assert_eq!(s.authenticate("wrong"), None);
        // Only digests are on disk.
        drop(s);
        let raw = std::fs::read(dir.path().join("m.db")).unwrap();
        let wal = std::fs::read(dir.path().join("m.db-wal")).unwrap_or_default();
        for secret in [&admin, &dev] {
            let needle = secret.as_bytes();
            assert!(!raw.windows(needle.len()).any(|w| w == needle), "secret stored in the clear");
            assert!(!wal.windows(needle.len()).any(|w| w == needle), "secret stored in the clear (WAL)");
        }
        let mut s = open(dir.path());
        assert_eq!(s.authenticate(&dev), Some(alice()), "tokens survive a restart");
        assert_eq!(s.revoke_user("alice", &adm).unwrap(), 1);
        assert_eq!(s.authenticate(&dev), None);
        assert!(matches!(s.revoke_user("alice", &adm), Err(ManagerError::NotFound(_))));
    }

    #[test]
    fn agents_enroll_for_their_own_credential() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.set_enrollment("enroll-secret");
        assert!(matches!(s.enroll("h1", "guess"), Err(ManagerError::Unauthorized(_))));
        assert!(matches!(s.enroll("h9", "enroll-secret"), Err(ManagerError::NotFound(_))));
        let c1 = s.enroll("h1", "enroll-secret").unwrap();
        assert_eq!(s.authenticate(&c1), Some(Principal::Node("h1".into())));
        assert_eq!(s.authenticate("enroll-secret"), None, "the enrollment token is no credential");
        let c1b = s.enroll("h1", "enroll-secret").unwrap();
        assert_eq!(s.authenticate(&c1), None, "re-enrolling replaces the old credential");
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.authenticate(&c1b), Some(Principal::Node("h1".into())), "credentials survive a restart");
    }

    #[test]
    fn isolation_changes_apply_in_place_and_are_admitted_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let plan = s.slice_info("red", &alice()).unwrap().plan;
        let mut faster = spec("red", "h1", "h2");
        faster.links[0].bandwidth = netslice_model::Bandwidth::mbit(500);
        faster.links[0].ceiling = Some(netslice_model::Bandwidth::mbit(900));
        let rev = s.revision();
        assert_eq!(put(&mut s, faster.clone(), false).unwrap(), Applied::Updated);
        assert!(s.revision() > rev);
        let info = s.slice_info("red", &alice()).unwrap();
        assert_eq!(info.plan.links[0].path, plan.links[0].path, "same path");
        assert_eq!(info.plan.links[0].forward_labels, plan.links[0].forward_labels, "same labels");
        assert_eq!(info.plan.links[0].reserved, 500_000_000);
        assert_eq!(s.config("t1").unwrap().labels[0].qos.ceil, 900_000_000);
        // More than the links hold: refused, nothing changes.
        let mut too_much = faster.clone();
        too_much.links[0].bandwidth = netslice_model::Bandwidth::mbit(1001);
        too_much.links[0].ceiling = None;
        let before = (s.revision(), s.slice_info("red", &alice()).unwrap());
        assert!(matches!(put(&mut s, too_much, false), Err(ManagerError::Unplaceable(PlanError::Bandwidth { .. }))));
        assert_eq!(before, (s.revision(), s.slice_info("red", &alice()).unwrap()));
        // Moving a pinned node is a change too: admitted, and the node moves.
        let mut moved = faster;
        moved.nodes[1].host = Some("h3".into());
        assert_eq!(put(&mut s, moved, false).unwrap(), Applied::Updated);
        assert_eq!(s.slice_info("red", &alice()).unwrap().plan.node("b").unwrap().host, "h3");
    }

    #[test]
    fn substrate_cannot_change_under_slices() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
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
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        assert_eq!(s.slice_list(&alice())[0].state, SliceState::Allocated, "reserved, no agent has it yet");
        let r = NodeReport {
            host: "h1".into(),
            applied_revision: s.revision(),
            epoch: s.epoch().to_string(),
            errors: vec![],
            counters: vec![],
            unmatched: Default::default(),
            programs: vec![],
            io_backend: "test".into(),
            forwarding: String::new(),
            version: "0".into(),
        };
        s.report("h1", r).unwrap();
        assert_eq!(s.slice_list(&alice())[0].state, SliceState::Provisioning, "one host has it");
        report_all(&mut s);
        assert_eq!(s.slice_list(&alice())[0].state, SliceState::Ready);
        let mut bad = s.hosts.get("h2").unwrap().report.clone().unwrap().1;
        bad.errors.push(netslice_model::api::ApplyError {
            slice: Some("red".into()),
            node: Some("b".into()),
            message: "boom".into(),
        });
        s.report("h2", bad).unwrap();
        let info = s.slice_info("red", &alice()).unwrap();
        assert_eq!(info.state, SliceState::Failed);
        assert!(info.message.unwrap().contains("boom"));
    }

    #[test]
    fn slices_stored_with_fast_path_nodes_as_slivers_are_upgraded_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let sw = SliceSpec::from_text(
            "name: sw\nshare_hosts: true\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h2}\n  - {name: s, type: l2switch, host: h3}\nlinks:\n  - {name: as, bandwidth: 1Mbit, endpoints: [{node: a}, {node: s}]}\n  - {name: bs, bandwidth: 1Mbit, endpoints: [{node: b}, {node: s}]}\n",
        )
        .unwrap();
        {
            let mut s = open(dir.path());
            put(&mut s, sw.clone(), true).unwrap();
        }
        // Make the row look as an older manager stored it.
        {
            let conn = rusqlite::Connection::open(dir.path().join("m.db")).unwrap();
            let (spec, plan): (String, String) = conn
                .query_row("SELECT spec, plan FROM slices WHERE name = 'sw'", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            let mut spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
            spec["nodes"][2]["cpu"] = serde_json::json!(0.5);
            spec["nodes"][2]["memory"] = serde_json::json!("256Mi");
            let mut plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
            plan["nodes"][2]["netns"] = serde_json::json!("lab.sw.s");
            plan["nodes"][2]["cpu_milli"] = serde_json::json!(500);
            plan["nodes"][2]["memory"] = serde_json::json!(256u64 << 20);
            conn.execute(
                "UPDATE slices SET spec = ?1, plan = ?2 WHERE name = 'sw'",
                rusqlite::params![spec.to_string(), plan.to_string()],
            )
            .unwrap();
        }
        let s = open(dir.path());
        let row = &s.slices["sw"];
        let n = row.plan.node("s").unwrap();
        assert_eq!((n.netns.as_deref(), n.cpu_milli), (None, 10), "{n:?}");
        assert_eq!(row.spec.node("s").unwrap().cpu, None);
        assert_eq!(s.alloc.slivers.get("h3"), None, "no sliver slot any more");
        assert_eq!(s.alloc.cpu_milli["h3"], 10);
        check_invariant(&s);
        // Re-applying the spec as `slice show` gives it is unchanged.
        let mut s = s;
        assert_eq!(put(&mut s, sw, false).unwrap(), Applied::Unchanged);
    }
}
