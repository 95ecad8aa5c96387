//! Slices and their reservations: the rows, what they hold, and the desired
//! config of every host derived from them.
//!
//! A change is computed on the side, committed to the store in one
//! transaction, and only then made visible; a refused or failed change
//! leaves everything as it was. A change recomputes the configs of the hosts
//! it touches (those of the slice before and after) and no others: an index
//! of which live slices use each host gives the slices to derive them from.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use imbl::OrdMap;
use netslice_embed::{Allocations, node_configs_of, replan_with};
use netslice_model::api::{HostUsage, LinkUsage, NodeConfig, SlicePlan, SubstrateUsage, TapConfig};
use netslice_model::{FieldError, SliceSpec};

use super::common::{Applied, Ctx, ManagerError, Precondition, audit, log_audit, unix_secs};
use crate::auth::Principal;
use crate::store::{Audit, SliceRow, Store};

/// A deleted slice whose agents have this long to confirm it is gone before the
/// row goes anyway (an agent that is down cleans up from its ledger when it
/// comes back).
pub const DELETE_GRACE: Duration = Duration::from_secs(30);

/// Config without the fields that change with every derivation.
fn content(c: &NodeConfig) -> NodeConfig {
    NodeConfig { revision: 0, epoch: String::new(), ..c.clone() }
}

/// Every host a slice uses: its nodes' hosts and its links' paths.
pub(crate) fn hosts_of(row: &SliceRow) -> BTreeSet<&str> {
    row.plan.hosts()
}

/// The slices part of the state.
#[derive(Debug)]
pub(crate) struct Slices {
    /// The global revision: bumped by every committed change.
    pub(crate) revision: u64,
    /// Every slice, live or being deleted.
    pub(crate) rows: OrdMap<String, Arc<SliceRow>>,
    /// What the live slices hold.
    pub(crate) alloc: Allocations,
    /// The desired config of every host.
    pub(crate) configs: OrdMap<String, Arc<NodeConfig>>,
    /// The resources held and free, for reads.
    pub(crate) usage: Arc<SubstrateUsage>,
    /// Which live slices use each host.
    users: BTreeMap<String, BTreeSet<String>>,
    /// Since when each deleted slice has waited for its agents.
    deleting_since: BTreeMap<String, SystemTime>,
    /// Measurement jobs' taps, by host (part of each host's config).
    pub(crate) taps: BTreeMap<String, Vec<TapConfig>>,
}

/// One change: rows to write (the new row, or `None` to delete).
type Change = Vec<(String, Option<SliceRow>)>;

impl Slices {
    /// The state of these stored rows: allocations and configs derived
    /// from them, config revisions as stored.
    pub(crate) fn load(
        ctx: &Ctx,
        rows: BTreeMap<String, SliceRow>,
        revision: u64,
        host_revisions: &BTreeMap<String, u64>,
        taps: BTreeMap<String, Vec<TapConfig>>,
        now: SystemTime,
    ) -> Slices {
        let live = || rows.values().filter(|r| !r.deleting);
        let alloc = Allocations::from_plans(live().map(|r| &r.plan));
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, row) in rows.iter().filter(|(_, r)| !r.deleting) {
            for h in hosts_of(row) {
                users.entry(h.to_string()).or_default().insert(name.clone());
            }
        }
        let pairs: Vec<_> = live().map(|r| (&r.spec, &r.plan)).collect();
        let all: BTreeSet<&str> = ctx.substrate.hosts.iter().map(|h| h.name.as_str()).collect();
        let configs = node_configs_of(&ctx.substrate, &pairs, &*ctx.types, &all)
            .into_iter()
            .map(|(h, mut c)| {
                c.taps = taps.get(&h).cloned().unwrap_or_default();
                c.revision = host_revisions.get(&h).copied().unwrap_or(0);
                c.epoch = ctx.epoch.to_string();
                (h, Arc::new(c))
            })
            .collect();
        // Slices found deleting get their grace period from now.
        let deleting_since = rows.iter().filter(|(_, r)| r.deleting).map(|(n, _)| (n.clone(), now)).collect();
        let usage = Arc::new(usage(ctx, &alloc));
        Slices {
            revision,
            rows: rows.into_iter().map(|(n, r)| (n, Arc::new(r))).collect(),
            alloc,
            configs,
            usage,
            users,
            deleting_since,
            taps,
        }
    }

    /// Puts `taps` in the hosts' configs: the hosts whose taps change get a
    /// new revision, written with the job change (`job`: a job to write,
    /// `gone`: a job to delete) in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn retap(
        &mut self,
        store: &mut Store,
        now: SystemTime,
        taps: BTreeMap<String, Vec<TapConfig>>,
        job: Option<(u64, &str, &str, &str)>,
        gone: Option<u64>,
        next_job: u64,
        audit: Option<Audit>,
    ) -> Result<u64, ManagerError> {
        let revision = self.revision + 1;
        let hosts: BTreeSet<&String> = taps.keys().chain(self.taps.keys()).collect();
        let mut changed = BTreeMap::new();
        let mut configs = Vec::new();
        for h in hosts {
            let want = taps.get(h).cloned().unwrap_or_default();
            let Some(old) = self.configs.get(h) else { continue };
            if old.taps != want {
                let mut c = (**old).clone();
                c.taps = want;
                c.revision = revision;
                changed.insert(h.clone(), revision);
                configs.push((h.clone(), c));
            }
        }
        store.commit_jobs(job, gone, next_job, &changed, revision, audit.as_ref().map(|a| (unix_secs(now), a)))?;
        if let Some(a) = &audit {
            log_audit(a);
        }
        self.revision = revision;
        for (h, c) in configs {
            self.configs.insert(h, Arc::new(c));
        }
        self.taps = taps;
        Ok(revision)
    }

    fn check_owner(row: &SliceRow, name: &str, who: &Principal) -> Result<(), ManagerError> {
        if who.is_operator() || who.user() == Some(row.owner.as_str()) {
            Ok(())
        } else {
            Err(ManagerError::Forbidden(format!("slice {name:?} belongs to another user")))
        }
    }

    /// A slice the caller may see.
    pub(crate) fn visible(&self, name: &str, who: &Principal) -> Result<&Arc<SliceRow>, ManagerError> {
        let row = self.rows.get(name).ok_or_else(|| ManagerError::NotFound(format!("no slice named {name:?}")))?;
        Self::check_owner(row, name, who)?;
        Ok(row)
    }

    /// Commits `change`: derives the configs of the hosts it touches, writes
    /// rows, host revisions, the global revision and the audit record in one
    /// transaction, and only then makes it visible. `self.alloc` must
    /// already hold what the change holds (the caller reverts it if this fails).
    fn commit(
        &mut self,
        ctx: &Ctx,
        store: &mut Store,
        now: SystemTime,
        change: Change,
        audit: Option<Audit>,
    ) -> Result<u64, ManagerError> {
        let revision = self.revision + 1;
        let mut rows = self.rows.clone();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let live_hosts = |r: Option<&SliceRow>| -> Vec<String> {
            r.filter(|r| !r.deleting).map(|r| hosts_of(r).into_iter().map(str::to_string).collect()).unwrap_or_default()
        };
        for (name, new) in &change {
            let before = live_hosts(self.rows.get(name).map(|r| &**r));
            let after = live_hosts(new.as_ref());
            for h in before.iter().chain(&after) {
                if touched.insert(h.clone()) {
                    users.insert(h.clone(), self.users.get(h).cloned().unwrap_or_default());
                }
            }
            for h in &before {
                users.get_mut(h).expect("touched").remove(name);
            }
            for h in &after {
                users.get_mut(h).expect("touched").insert(name.clone());
            }
            match new {
                Some(r) => rows.insert(name.clone(), Arc::new(r.clone())),
                None => rows.remove(name),
            };
        }
        // The slices that use a touched host, in name order.
        let using: BTreeSet<&String> = users.values().flatten().collect();
        let pairs: Vec<_> = using.iter().map(|n| &rows[*n]).map(|r| (&r.spec, &r.plan)).collect();
        let hosts: BTreeSet<&str> = touched.iter().map(String::as_str).collect();
        let mut configs = node_configs_of(&ctx.substrate, &pairs, &*ctx.types, &hosts);
        let mut changed = BTreeMap::new();
        for (h, c) in configs.iter_mut() {
            c.taps = self.taps.get(h).cloned().unwrap_or_default();
            let old = self.configs.get(h);
            if old.map(|o| content(o)).as_ref() == Some(&content(c)) {
                c.revision = old.map(|o| o.revision).unwrap_or(0);
            } else {
                c.revision = revision;
                changed.insert(h.clone(), revision);
            }
            c.epoch = ctx.epoch.to_string();
        }
        let put: Vec<(&str, &SliceRow)> =
            change.iter().filter_map(|(n, r)| r.as_ref().map(|r| (n.as_str(), r))).collect();
        let delete: Vec<&str> = change.iter().filter(|(_, r)| r.is_none()).map(|(n, _)| n.as_str()).collect();
        store.commit(&put, &delete, &changed, revision, audit.as_ref().map(|a| (unix_secs(now), a)))?;
        if let Some(a) = &audit {
            log_audit(a);
        }
        self.revision = revision;
        self.rows = rows;
        for (h, c) in configs {
            if changed.contains_key(&h) {
                self.configs.insert(h, Arc::new(c));
            }
        }
        for (h, u) in users {
            if u.is_empty() {
                self.users.remove(&h);
            } else {
                self.users.insert(h, u);
            }
        }
        self.usage = Arc::new(usage(ctx, &self.alloc));
        Ok(revision)
    }

    /// Recomputes the usage view (after an agent's capacity changed).
    pub(crate) fn refresh_usage(&mut self, ctx: &Ctx) {
        self.usage = Arc::new(usage(ctx, &self.alloc));
    }

    /// Creates a slice, leaves an identical one alone, or changes a running one
    /// in place (nodes, links, bandwidth, isolation: the delta admitted as a
    /// whole; what stays keeps its host, ports, path and labels). With
    /// `dry_run` everything is checked and planned and nothing is committed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &mut self,
        ctx: &Ctx,
        store: &mut Store,
        now: SystemTime,
        spec: SliceSpec,
        pre: Precondition,
        who: &Principal,
        dry_run: bool,
    ) -> Result<(Applied, SlicePlan), ManagerError> {
        let Some(user) = who.user() else {
            return Err(ManagerError::Forbidden("agents do not manage slices".into()));
        };
        spec.validate()?;
        spec.validate_types(&*ctx.types)?;
        let lease = match spec.lease {
            Some(l) => {
                let secs = l.0 / 1_000_000;
                if secs == 0 || secs > ctx.policy.lease_max {
                    return Err(ManagerError::Invalid {
                        what: "slice spec",
                        errors: vec![FieldError::new(
                            "lease",
                            format!("{l} is outside 1s..{}s (the operator's maximum)", ctx.policy.lease_max),
                        )],
                    });
                }
                secs
            }
            None => ctx.policy.lease_default,
        };
        let now_s = unix_secs(now);
        let name = spec.name.clone();
        // A slice being deleted holds nothing any more: its name may be taken
        // again at once (the agents converge on whatever the desired config says).
        let existing = self.rows.get(&name).filter(|r| !r.deleting).cloned();
        pre.check(&name, existing.as_deref().map(|r| r.revision))?;
        let Some(existing) = existing else {
            let p = replan_with(&ctx.substrate, &spec, None, &self.alloc, &*ctx.types, &ctx.caps)?;
            if dry_run {
                return Ok((Applied::DryRun, p));
            }
            let rev = self.revision + 1;
            let row = SliceRow {
                spec,
                plan: p.clone(),
                revision: rev,
                created: now_s,
                owner: user.to_string(),
                expires: now_s + lease,
                deleting: false,
            };
            self.alloc.add(&p);
            let a = audit(who, "slice.create", &name, format!("revision {rev}"));
            if let Err(e) = self.commit(ctx, store, now, vec![(name.clone(), Some(row))], Some(a)) {
                self.alloc.remove(&p);
                return Err(e);
            }
            self.deleting_since.remove(&name);
            return Ok((Applied::Created, p));
        };
        Self::check_owner(&existing, &name, who)?;
        if existing.spec == spec {
            let result = if dry_run { Applied::DryRun } else { Applied::Unchanged };
            return Ok((result, existing.plan.clone()));
        }
        self.alloc.remove(&existing.plan);
        let planned = replan_with(
            &ctx.substrate,
            &spec,
            Some((&existing.spec, &existing.plan)),
            &self.alloc,
            &*ctx.types,
            &ctx.caps,
        );
        let p = match planned {
            Ok(p) if !dry_run => p,
            other => {
                self.alloc.add(&existing.plan);
                return Ok((Applied::DryRun, other?));
            }
        };
        let rev = self.revision + 1;
        let expires = if existing.spec.lease != spec.lease { now_s + lease } else { existing.expires };
        let row = SliceRow {
            spec,
            plan: p.clone(),
            revision: rev,
            created: existing.created,
            owner: existing.owner.clone(),
            expires,
            deleting: false,
        };
        self.alloc.add(&p);
        let a = audit(who, "slice.update", &name, format!("revision {rev}"));
        if let Err(e) = self.commit(ctx, store, now, vec![(name, Some(row))], Some(a)) {
            self.alloc.remove(&p);
            self.alloc.add(&existing.plan);
            return Err(e);
        }
        Ok((Applied::Updated, p))
    }

    /// Starts deleting a slice: its resources are released and the agents
    /// told at once; the slice shows as `deleting` until they confirm.
    /// Returns the revision at which it is gone from every desired config.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn delete(
        &mut self,
        ctx: &Ctx,
        store: &mut Store,
        now: SystemTime,
        name: &str,
        pre: Precondition,
        who: &Principal,
        action: &str,
    ) -> Result<u64, ManagerError> {
        let row = self.visible(name, who)?.clone();
        pre.check(name, Some(row.revision))?;
        if row.deleting {
            return Ok(row.revision);
        }
        let rev = self.revision + 1;
        let detail = format!("revision {rev}, owner {}", row.owner);
        let new = SliceRow { deleting: true, revision: rev, ..(*row).clone() };
        self.alloc.remove(&row.plan);
        if let Err(e) =
            self.commit(ctx, store, now, vec![(name.to_string(), Some(new))], Some(audit(who, action, name, detail)))
        {
            self.alloc.add(&row.plan);
            return Err(e);
        }
        self.deleting_since.insert(name.to_string(), now);
        Ok(rev)
    }

    /// Extends a slice's lease to `secs` from now (at most the operator's
    /// maximum). `field` names what the caller sent (`for` or `seconds`) in
    /// an error. Returns the new lease end and the slice's new revision.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn renew(
        &mut self,
        ctx: &Ctx,
        store: &mut Store,
        now: SystemTime,
        name: &str,
        secs: Option<u64>,
        field: &str,
        pre: Precondition,
        who: &Principal,
    ) -> Result<(u64, u64), ManagerError> {
        let row = self.visible(name, who)?.clone();
        pre.check(name, Some(row.revision))?;
        if row.deleting {
            return Err(ManagerError::Conflict(format!("slice {name:?} is being deleted")));
        }
        let secs = secs.unwrap_or(ctx.policy.lease_default);
        if secs == 0 || secs > ctx.policy.lease_max {
            return Err(ManagerError::Invalid {
                what: "renew request",
                errors: vec![FieldError::new(
                    field,
                    format!("{secs}s is outside 1s..{}s (the operator's maximum)", ctx.policy.lease_max),
                )],
            });
        }
        let expires = unix_secs(now) + secs;
        let rev = self.revision + 1;
        let new = SliceRow { expires, revision: rev, ..(*row).clone() };
        let a = audit(who, "slice.renew", name, format!("lease ends {expires}"));
        self.commit(ctx, store, now, vec![(name.to_string(), Some(new))], Some(a))?;
        Ok((expires, rev))
    }

    /// Housekeeping: deletes slices whose lease ended, and forgets deleted
    /// slices once every host on them applied the deletion (`applied` says
    /// what a host last applied) or after [`DELETE_GRACE`]. Returns what it
    /// did, for the log.
    pub(crate) fn housekeeping(
        &mut self,
        ctx: &Ctx,
        store: &mut Store,
        now: SystemTime,
        applied: impl Fn(&str) -> u64,
    ) -> Vec<String> {
        let mut done = Vec::new();
        let now_s = unix_secs(now);
        let expired: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.deleting && r.expires != 0 && r.expires <= now_s)
            .map(|(n, _)| n.clone())
            .collect();
        for name in expired {
            match self.delete(ctx, store, now, &name, Precondition::None, &Principal::system(), "slice.expire") {
                Ok(_) => done.push(format!("lease of slice {name} ended: deleting it")),
                Err(e) => done.push(format!("cannot delete expired slice {name}: {e}")),
            }
        }
        let finished: Vec<String> = self
            .rows
            .iter()
            .filter(|(name, row)| {
                row.deleting
                    && (hosts_of(row)
                        .iter()
                        .all(|h| applied(h) >= self.configs.get(*h).map(|c| c.revision).unwrap_or(0))
                        || self.deleting_since.get(*name).is_none_or(|t| super::fleet::age(now, *t) > DELETE_GRACE))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in finished {
            match self.commit(ctx, store, now, vec![(name.clone(), None)], None) {
                Ok(_) => {
                    self.deleting_since.remove(&name);
                    done.push(format!("slice {name} deleted"));
                }
                Err(e) => done.push(format!("cannot forget slice {name}: {e}")),
            }
        }
        done
    }
}

/// The resources held and free on every host and physical link.
fn usage(ctx: &Ctx, alloc: &Allocations) -> SubstrateUsage {
    let substrate = &ctx.substrate;
    let budgets = netslice_embed::forwarding::Budgets::new(substrate, &ctx.caps, alloc.held());
    let hosts = substrate
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| HostUsage {
            name: h.name.clone(),
            role: h.role,
            cpu: h.cpu,
            cpu_used: alloc.cpu_milli.get(&h.name).copied().unwrap_or(0) as f64 / 1000.0,
            memory: h.memory.bytes(),
            memory_used: alloc.memory.get(&h.name).copied().unwrap_or(0),
            slivers: h.slivers,
            slivers_used: alloc.slivers.get(&h.name).copied().unwrap_or(0),
            ports: h.ports,
            ports_used: alloc.ports.get(&h.name).map(|s| s.len() as u32).unwrap_or(0),
            forwarding_used: alloc.forwarding.get(&h.name).copied().unwrap_or(0) as f64 / 1e9,
            machine: h.machine.clone(),
            budget: budgets.of_host[i].map(|b| budgets.capacity[b]),
            budget_free: budgets.of_host[i].map(|b| budgets.free[b]),
            capacity: ctx.caps.get(&h.name).cloned(),
        })
        .collect();
    let links = substrate
        .links
        .iter()
        .flat_map(|l| {
            [(&l.ends[0], &l.ends[1]), (&l.ends[1], &l.ends[0])].map(|(a, b)| {
                let used = alloc.bandwidth.get(&(l.name.clone(), a.host.clone())).copied().unwrap_or(0);
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
    SubstrateUsage { name: substrate.name.clone(), hosts, links }
}
