//! The manager's state, split in three parts, and the one place that changes
//! it: [`Core`].
//!
//! - [`slices`]: slices and their reservations, and the desired config of
//!   every host derived from them (stored);
//! - [`credentials`]: API tokens, agent credentials, the enrollment token
//!   (stored, as digests);
//! - [`fleet`]: what each host's agent last said (in memory).
//!
//! Every command takes `now` as an argument: nothing here reads a clock, so
//! tests run on a virtual one. [`Core`] is owned by one thread (see
//! [`crate::owner`]), which runs commands one at a time and publishes a
//! [`Snapshot`] after each change; reads never take a lock.

mod check;
mod common;
pub mod credentials;
pub mod fleet;
pub mod jobs;
pub mod slices;
pub mod stats;
pub mod totals;
pub mod view;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use netslice_dataplane::Registry;
use netslice_model::api::{NodeReport, SlicePlan};
use netslice_model::types::TypeCatalog;
use netslice_model::{FieldError, SliceSpec, Substrate};

pub(crate) use common::Ctx;

/// Where the store keeps a host's last reported forwarding capacity.
fn capacity_key(host: &str) -> String {
    format!("capacity/{host}")
}
pub use common::{Applied, ManagerError, Policy, Precondition, Verdicts};
pub use credentials::RESERVED_USERS;
pub use fleet::HOST_DOWN_AFTER;
pub use slices::DELETE_GRACE;
pub use view::Snapshot;

use crate::auth::Principal;
use crate::store::{SliceRow, Store};

/// Checks an agent's capture upload: a run of whole Enhanced Packet Blocks
/// of interface 0. Returns its length.
pub fn check_capture_blocks(data: &[u8]) -> Result<usize, ManagerError> {
    let mut kept = 0usize;
    for p in netslice_wire::pcapng::Packets::new(data) {
        let bad = |msg: String| ManagerError::Invalid {
            what: "capture upload",
            errors: vec![FieldError::new("", format!("block at byte {kept}: {msg}"))],
        };
        let p = p.map_err(|e| bad(e.to_string()))?;
        if p.iface != 0 {
            return Err(bad(format!("interface {} (one point: 0)", p.iface)));
        }
        kept += p.block_len();
    }
    if kept == 0 {
        return Err(ManagerError::Invalid {
            what: "capture upload",
            errors: vec![FieldError::new("", "no Enhanced Packet Block")],
        });
    }
    Ok(kept)
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

fn new_epoch(now: SystemTime) -> String {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{:x}{:05x}", t.as_nanos() as u64, std::process::id() & 0xfffff)
}

/// The manager's state: the store and the three parts. One thread owns it.
#[derive(Debug)]
pub struct Core {
    store: Store,
    ctx: Ctx,
    slices: slices::Slices,
    creds: credentials::Credentials,
    fleet: fleet::Fleet,
    jobs: jobs::Jobs,
    next_job: u64,
    /// Where captures are kept (`<job>.epb`: the Enhanced Packet Blocks the
    /// agents uploaded), and how many bytes each holds.
    captures: Arc<std::path::Path>,
    capture_sizes: Arc<BTreeMap<u64, u64>>,
    /// Guarantee-check verdicts counted so far, per slice, link and
    /// direction (for the metrics), and the next window to judge.
    verdicts: Arc<BTreeMap<(String, String, netslice_model::api::Direction), Verdicts>>,
    /// Bumped by every change of anything a snapshot shows.
    generation: u64,
}

impl Core {
    /// Opens the store. The substrate comes from the store; `substrate` is stored on
    /// first start, and may replace the stored one only while no slice exists.
    pub fn open(
        db: &Path,
        substrate: Option<Substrate>,
        types: Arc<Registry>,
        policy: Policy,
        now: SystemTime,
    ) -> Result<Core, ManagerError> {
        let store = Store::open(db)?;
        let mut rows = store.slices()?;
        for (name, row) in rows.iter_mut() {
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
            (Some(_), Some(new)) if rows.is_empty() => {
                store.set_meta("substrate", &serde_json::to_string(&new).expect("substrate serializes"))?;
                new
            }
            (Some(old), Some(_)) => {
                return Err(ManagerError::Conflict(format!(
                    "the store already holds substrate {:?} with {} slices; delete them before changing the substrate",
                    old.name,
                    rows.len()
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
                let e = new_epoch(now);
                store.set_meta("epoch", &e)?;
                e
            }
        };
        let revision = store.meta("revision")?.and_then(|r| r.parse().ok()).unwrap_or(0);
        let host_revs = store.host_revisions()?;
        tracing::info!(
            "store open: substrate {:?} ({} hosts, {} links), {} slices, revision {revision}, epoch {epoch}",
            substrate.name,
            substrate.hosts.len(),
            substrate.links.len(),
            rows.len()
        );
        // What the agents last reported they can forward, so admission does
        // not wait for their next report after a restart.
        let mut caps = netslice_embed::Capacities::new();
        for h in &substrate.hosts {
            if let Some(text) = store.meta(&capacity_key(&h.name))? {
                match serde_json::from_str::<netslice_model::capacity::ForwardingCapacity>(&text) {
                    Ok(c) if c.check().is_ok() => {
                        caps.insert(h.name.clone(), c);
                    }
                    _ => tracing::warn!("ignoring the stored forwarding capacity of {}: unreadable", h.name),
                }
            }
        }
        let ctx = Ctx { substrate: Arc::new(substrate), types, epoch: epoch.into(), policy, caps: Arc::new(caps) };
        let mut jobs = jobs::Jobs::default();
        for (id, (version, record)) in store.jobs()? {
            if version != crate::store::JOB_VERSION {
                return Err(ManagerError::Store(crate::store::StoreError::Corrupt {
                    what: format!("job {id}"),
                    detail: format!("record version {version}; this manager reads {}", crate::store::JOB_VERSION),
                }));
            }
            let job: jobs::JobV1 = serde_json::from_str(&record).map_err(|e| {
                ManagerError::Store(crate::store::StoreError::Corrupt {
                    what: format!("job {id}"),
                    detail: e.to_string(),
                })
            })?;
            jobs.jobs.insert(id, Arc::new(job));
        }
        let next_job = store.meta("next_job")?.and_then(|r| r.parse().ok()).unwrap_or(0).max(jobs.next_id());
        let slices = slices::Slices::load(&ctx, rows, revision, &host_revs, jobs.taps(), now);
        let creds = credentials::Credentials::load(&store)?;
        let fleet = fleet::Fleet::new(ctx.substrate.hosts.iter().map(|h| h.name.as_str()));
        let captures = db.parent().map(Path::to_path_buf).unwrap_or_default().join("captures");
        std::fs::create_dir_all(&captures).map_err(|e| {
            ManagerError::Store(crate::store::StoreError::Corrupt {
                what: captures.display().to_string(),
                detail: format!("cannot create the captures directory: {e}"),
            })
        })?;
        let mut capture_sizes = BTreeMap::new();
        for id in jobs.jobs.keys() {
            if let Ok(m) = std::fs::metadata(captures.join(format!("{id}.epb"))) {
                capture_sizes.insert(*id, m.len());
            }
        }
        Ok(Core {
            store,
            ctx,
            slices,
            creds,
            fleet,
            jobs,
            next_job,
            captures: captures.into(),
            capture_sizes: Arc::new(capture_sizes),
            verdicts: Arc::default(),
            generation: 0,
        })
    }

    /// The state as of now, for reads.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.slices.revision,
            epoch: self.ctx.epoch.clone(),
            substrate: self.ctx.substrate.clone(),
            types: self.ctx.types.clone(),
            slices: self.slices.rows.clone(),
            configs: self.slices.configs.clone(),
            usage: self.slices.usage.clone(),
            fleet: self.fleet.hosts.clone(),
            creds: self.creds.view.clone(),
            jobs: self.jobs.jobs.clone(),
            captures: self.captures.clone(),
            capture_sizes: self.capture_sizes.clone(),
            check_tolerance: f64::from(self.ctx.policy.check_tolerance_pct) / 100.0,
            verdicts: self.verdicts.clone(),
        }
    }

    /// Bumped by every change a snapshot would show.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The global revision.
    pub fn revision(&self) -> u64 {
        self.slices.revision
    }

    /// The store's epoch.
    pub fn epoch(&self) -> &str {
        &self.ctx.epoch
    }

    /// The substrate.
    pub fn substrate(&self) -> &Substrate {
        &self.ctx.substrate
    }

    /// The lease policy.
    pub fn policy(&self) -> Policy {
        self.ctx.policy
    }

    fn changed<T>(&mut self, r: Result<T, ManagerError>) -> Result<T, ManagerError> {
        if r.is_ok() {
            self.generation += 1;
        }
        r
    }

    /// Creates a slice, leaves an identical one alone, or changes a running one
    /// in place (nodes, links, bandwidth, isolation: the delta admitted as a
    /// whole; what stays keeps its host, ports, path and labels), if `pre`
    /// holds. With `dry_run` everything is checked and planned and nothing is
    /// committed. Returns what happened and the plan.
    pub fn apply(
        &mut self,
        now: SystemTime,
        spec: SliceSpec,
        pre: Precondition,
        who: &Principal,
        dry_run: bool,
    ) -> Result<(Applied, SlicePlan), ManagerError> {
        let r = self.slices.apply(&self.ctx, &mut self.store, now, spec, pre, who, dry_run);
        let committed = matches!(r, Ok((Applied::Created | Applied::Updated, _)));
        if committed {
            self.generation += 1;
        }
        r
    }

    /// Starts deleting a slice (if `pre` holds): its resources are released
    /// and the agents told at once; it shows as `deleting` until they
    /// confirm. Returns the revision at which it is gone from every desired config.
    pub fn delete(
        &mut self,
        now: SystemTime,
        name: &str,
        pre: Precondition,
        who: &Principal,
    ) -> Result<u64, ManagerError> {
        let r = self.slices.delete(&self.ctx, &mut self.store, now, name, pre, who, "slice.delete");
        self.changed(r)
    }

    /// Extends a slice's lease to `secs` from now (if `pre` holds). Returns
    /// the new lease end and the slice's new revision.
    pub fn renew(
        &mut self,
        now: SystemTime,
        name: &str,
        secs: Option<u64>,
        field: &str,
        pre: Precondition,
        who: &Principal,
    ) -> Result<(u64, u64), ManagerError> {
        let r = self.slices.renew(&self.ctx, &mut self.store, now, name, secs, field, pre, who);
        self.changed(r)
    }

    /// Housekeeping at `now`: deletes slices whose lease ended, and forgets
    /// deleted slices once their hosts applied the deletion (or after a
    /// grace period). Returns what it did, for the log.
    pub fn tick(&mut self, now: SystemTime) -> Vec<String> {
        let (fleet, epoch) = (&self.fleet, &self.ctx.epoch);
        let done = self.slices.housekeeping(&self.ctx, &mut self.store, now, |h| fleet.applied(now, h, epoch));
        if !done.is_empty() {
            self.generation += 1;
        }
        self.finish_jobs(now);
        self.judge_guarantees(now);
        done
    }

    /// Judges the one-second windows that completed since the last tick
    /// (the guarantee check, counted for the metrics); a slice's windows are
    /// judged once each.
    fn judge_guarantees(&mut self, now: SystemTime) {
        let snap = self.snapshot();
        let now_s = common::unix_secs(now);
        let mut verdicts = (*self.verdicts).clone();
        let mut changed = false;
        let live: Vec<String> = snap.slices.iter().filter(|(_, r)| !r.deleting).map(|(n, _)| n.clone()).collect();
        verdicts.retain(|(s, _, _), _| live.contains(s));
        for name in &live {
            // From the earliest next window of its links (a minute back at first).
            let since = verdicts
                .iter()
                .filter(|((s, _, _), _)| s == name)
                .map(|(_, v)| v.next)
                .min()
                .unwrap_or(now_s.saturating_sub(60));
            let Ok(check) = snap.slice_check(now, name, &Principal::system(), Some(since)) else { continue };
            for l in check.links {
                let v = verdicts.entry((name.clone(), l.link.clone(), l.direction)).or_insert(Verdicts {
                    met: 0,
                    violated: 0,
                    next: since,
                });
                let from = v.next;
                for w in l.windows.iter().filter(|w| w.t >= from) {
                    if w.verdict == "met" {
                        v.met += 1;
                    } else {
                        v.violated += 1;
                    }
                    v.next = w.t + 1;
                    changed = true;
                }
            }
        }
        if changed || verdicts.len() != self.verdicts.len() {
            self.verdicts = Arc::new(verdicts);
            self.generation += 1;
        }
    }

    /// Creates a measurement job on a slice the caller may see; returns its id.
    pub fn create_job(
        &mut self,
        now: SystemTime,
        req: &netslice_api::types::MeasureRequest,
        who: &Principal,
    ) -> Result<u64, ManagerError> {
        let row = self.slices.visible(&req.slice, who)?.clone();
        if row.deleting {
            return Err(ManagerError::Conflict(format!("slice {:?} is being deleted", req.slice)));
        }
        let owner = who.user().unwrap_or("operator").to_string();
        if self.jobs.open_of(&owner) >= jobs::MAX_OPEN_PER_USER {
            return Err(ManagerError::Conflict(format!(
                "{owner} has {} measurement jobs not done yet (at most {}): delete some first",
                jobs::MAX_OPEN_PER_USER,
                jobs::MAX_OPEN_PER_USER
            )));
        }
        let mut job = jobs::plan_job(req, &row, &owner, now, crate::filter::compile)?;
        if let Some(why) = self.jobs.probe_conflict(&job) {
            return Err(ManagerError::Conflict(why));
        }
        if let Some(c) = job.capture {
            let held: u64 = self.jobs.jobs.values().filter_map(|j| j.capture.map(|c| c.max_bytes)).sum();
            let limit = self.ctx.policy.capture_storage;
            if held + c.max_bytes > limit {
                return Err(ManagerError::Conflict(format!(
                    "capture storage: {} MiB of {} MiB are held by other jobs' captures, {} MiB asked (delete old jobs, or ask for less)",
                    held >> 20,
                    limit >> 20,
                    c.max_bytes.div_ceil(1 << 20)
                )));
            }
        }
        job.id = self.next_job.max(self.jobs.next_id());
        let record = serde_json::to_string(&job).expect("jobs serialize");
        let mut all = self.jobs.clone();
        all.jobs.insert(job.id, Arc::new(job.clone()));
        let a = common::audit(who, "measure.create", &req.slice, format!("job {}", job.id));
        self.slices.retap(
            &mut self.store,
            now,
            all.taps(),
            Some((job.id, &owner, &req.slice, &record)),
            None,
            job.id + 1,
            Some(a),
        )?;
        self.jobs = all;
        self.next_job = job.id + 1;
        self.generation += 1;
        Ok(job.id)
    }

    /// Deletes a job (and its results) the caller may see.
    pub fn delete_job(&mut self, now: SystemTime, id: u64, who: &Principal) -> Result<(), ManagerError> {
        let job = self
            .jobs
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| ManagerError::NotFound(format!("no measurement job {id}")))?;
        if !(who.is_operator() || who.user() == Some(job.owner.as_str())) {
            return Err(ManagerError::Forbidden(format!("measurement job {id} belongs to another user")));
        }
        let mut all = self.jobs.clone();
        all.jobs.remove(&id);
        let a = common::audit(who, "measure.delete", &job.slice, format!("job {id}"));
        self.slices.retap(&mut self.store, now, all.taps(), None, Some(id), self.next_job, Some(a))?;
        self.jobs = all;
        self.forget_capture(id);
        self.generation += 1;
        Ok(())
    }

    fn forget_capture(&mut self, id: u64) {
        let path = self.captures.join(format!("{id}.epb"));
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
        Arc::make_mut(&mut self.capture_sizes).remove(&id);
    }

    /// Appends what `host`'s agent captured for job `id` (Enhanced Packet
    /// Blocks, checked one by one), up to the job's cap: what does not fit
    /// is left out and counted. Returns the bytes kept and left out.
    pub fn append_capture(
        &mut self,
        now: SystemTime,
        host: &str,
        id: u64,
        data: &[u8],
    ) -> Result<(u64, u64), ManagerError> {
        let job = self.jobs.jobs.get(&id).ok_or_else(|| ManagerError::NotFound(format!("no measurement job {id}")))?;
        let cap = job.capture.ok_or_else(|| ManagerError::Conflict(format!("job {id} captures nothing")))?;
        if !job.points.iter().any(|p| p.host == host) {
            return Err(ManagerError::Forbidden(format!("job {id} has no point on {host}")));
        }
        if job.results.is_some() {
            return Err(ManagerError::Conflict(format!("job {id} is done")));
        }
        let kept = check_capture_blocks(data)?;
        let stored = self.capture_sizes.get(&id).copied().unwrap_or(0);
        // Whole blocks that fit under the cap.
        let room = cap.max_bytes.saturating_sub(stored) as usize;
        let mut take = 0usize;
        for p in netslice_wire::pcapng::Packets::new(data).flatten() {
            if take + p.block_len() > room {
                break;
            }
            take += p.block_len();
        }
        if take > 0 {
            use std::io::Write;
            let path = self.captures.join(format!("{id}.epb"));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(&data[..take]))
                .map_err(|e| {
                    ManagerError::Store(crate::store::StoreError::Corrupt {
                        what: path.display().to_string(),
                        detail: e.to_string(),
                    })
                })?;
            *Arc::make_mut(&mut self.capture_sizes).entry(id).or_default() += take as u64;
            self.generation += 1;
        }
        let _ = now;
        Ok((take as u64, (kept - take) as u64))
    }

    /// Writes the results of jobs whose window ended (and whose last reports
    /// had time to come), and takes their taps away; deletes jobs (and their
    /// captures) done longer ago than the operator keeps results.
    fn finish_jobs(&mut self, now: SystemTime) {
        let keep_ms = self.ctx.policy.results_max_age.saturating_mul(1000);
        let now_ms = common::unix_secs(now).saturating_mul(1000);
        let old: Vec<u64> = self
            .jobs
            .jobs
            .values()
            .filter(|j| j.results.is_some() && j.end_ms.saturating_add(keep_ms) < now_ms)
            .map(|j| j.id)
            .collect();
        for id in old {
            let mut all = self.jobs.clone();
            all.jobs.remove(&id);
            let a =
                common::audit(&Principal::system(), "measure.expire", &format!("job {id}"), "results kept long enough");
            match self.slices.retap(&mut self.store, now, all.taps(), None, Some(id), self.next_job, Some(a)) {
                Ok(_) => {
                    self.jobs = all;
                    self.forget_capture(id);
                    self.generation += 1;
                }
                Err(e) => tracing::warn!("measurement job {id}: cannot remove it ({e}); trying again"),
            }
        }
        let due: Vec<Arc<jobs::JobV1>> = self.jobs.jobs.values().filter(|j| j.due(now)).cloned().collect();
        for j in due {
            let fleet = &self.fleet;
            let counts = j.counts(|h| fleet.hosts.get(h).and_then(|rt| rt.report.clone()));
            let mut done = (*j).clone();
            done.results = Some(counts.into_iter().map(|(c, _)| c).collect());
            let record = serde_json::to_string(&done).expect("jobs serialize");
            let mut all = self.jobs.clone();
            all.jobs.insert(j.id, Arc::new(done));
            let r = self.slices.retap(
                &mut self.store,
                now,
                all.taps(),
                Some((j.id, &j.owner, &j.slice, &record)),
                None,
                self.next_job,
                None,
            );
            match r {
                Ok(_) => {
                    self.jobs = all;
                    self.generation += 1;
                    tracing::info!("measurement job {} on slice {} is done", j.id, j.slice);
                }
                Err(e) => tracing::warn!("measurement job {}: cannot store its results ({e}); trying again", j.id),
            }
        }
    }

    /// Creates a user token (operators only, or the bootstrap when `who` is None
    /// and no token exists yet). Returns the secret, shown this once.
    pub fn add_user(
        &mut self,
        now: SystemTime,
        name: &str,
        operator: bool,
        who: Option<&Principal>,
    ) -> Result<String, ManagerError> {
        let r = self.creds.add_user(&mut self.store, now, name, operator, who);
        self.changed(r)
    }

    /// Revokes every token of a user (operators only).
    pub fn revoke_user(&mut self, now: SystemTime, name: &str, who: &Principal) -> Result<usize, ManagerError> {
        let r = self.creds.revoke_user(&mut self.store, now, name, who);
        self.changed(r)
    }

    /// Sets the agent enrollment secret (agents present it to register).
    pub fn set_enrollment(&mut self, secret: &str) {
        self.creds.set_enrollment(secret);
        self.generation += 1;
    }

    /// An agent registers with the enrollment secret and receives a credential
    /// of its own for everything else (replacing any earlier one).
    pub fn enroll(&mut self, now: SystemTime, host: &str, secret: &str) -> Result<String, ManagerError> {
        if !self.creds.view.is_enrollment(secret) {
            return Err(ManagerError::Unauthorized("wrong enrollment token".into()));
        }
        if self.ctx.substrate.host(host).is_none() {
            return Err(ManagerError::NotFound(format!(
                "no host named {host:?} in substrate {:?}",
                self.ctx.substrate.name
            )));
        }
        let cred = self.creds.enroll(&mut self.store, now, host, secret)?;
        self.generation += 1;
        self.fleet.register(now, host, &self.ctx.substrate.name)?;
        Ok(cred)
    }

    /// Records an agent report; new forwarding figures are kept (in the
    /// store too) and admit slices from then on.
    pub fn report(&mut self, now: SystemTime, host: &str, report: NodeReport) -> Result<(), ManagerError> {
        let capacity = report.capacity.clone();
        let r = self.fleet.report(now, host, report, &self.ctx.substrate.name);
        if r.is_ok()
            && let Some(c) = capacity
            && self.ctx.caps.get(host) != Some(&c)
        {
            match c.check() {
                Err(e) => tracing::warn!("{host} reported forwarding figures that make no sense ({e}); ignored"),
                Ok(()) => {
                    let text = serde_json::to_string(&c).expect("capacity serializes");
                    self.store.set_meta(&capacity_key(host), &text)?;
                    tracing::info!(
                        "{host} can forward: {} ({} cores, {})",
                        c.link_types
                            .iter()
                            .map(|l| format!(
                                "{} {:.0} kframes/s per core at 1500 B",
                                l.link_type,
                                l.ends.frames_per_core(1500) / 1e3
                            ))
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.cores,
                        c.source
                    );
                    Arc::make_mut(&mut self.ctx.caps).insert(host.to_string(), c);
                    self.slices.refresh_usage(&self.ctx);
                }
            }
        }
        self.changed(r)
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

    /// Every stored slice row (for tests and the invariant check).
    pub fn rows(&self) -> BTreeMap<String, SliceRow> {
        self.slices.rows.iter().map(|(n, r)| (n.clone(), (**r).clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::common::unix_secs;
    use super::*;
    use netslice_embed::PlanError;
    use netslice_model::api::{NodeConfig, SliceState};

    const SUBSTRATE: &str = "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\n  - {name: h3, role: vnode}\n  - {name: t1, role: transport}\nlinks:\n  - {endpoints: [h1, t1], bandwidth: 1Gbit}\n  - {endpoints: [t1, h2], bandwidth: 1Gbit}\n  - {endpoints: [t1, h3], bandwidth: 1Gbit}\n";

    fn spec(name: &str, a: &str, b: &str) -> SliceSpec {
        SliceSpec::from_text(&format!(
            "name: {name}\nnodes:\n  - {{name: a, host: {a}}}\n  - {{name: b, host: {b}}}\nlinks:\n  - {{name: l, bandwidth: 1Mbit, endpoints: [{{node: a}}, {{node: b}}]}}\n"
        ))
        .unwrap()
    }

    /// The start of the virtual clock the tests run on.
    fn t0() -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
    }

    /// A core on a virtual clock, with the calls the tests make.
    struct S {
        core: Core,
        now: SystemTime,
    }

    impl S {
        fn apply(
            &mut self,
            spec: SliceSpec,
            create_only: bool,
            who: &Principal,
            dry_run: bool,
        ) -> Result<(Applied, SlicePlan), ManagerError> {
            let pre = if create_only { Precondition::Create } else { Precondition::None };
            self.core.apply(self.now, spec, pre, who, dry_run)
        }
        fn delete(&mut self, name: &str, who: &Principal) -> Result<u64, ManagerError> {
            self.core.delete(self.now, name, Precondition::None, who)
        }
        fn renew(&mut self, name: &str, secs: Option<u64>, field: &str, who: &Principal) -> Result<u64, ManagerError> {
            self.core.renew(self.now, name, secs, field, Precondition::None, who).map(|(e, _)| e)
        }
        /// Housekeeping with the clock set to `now` (Unix seconds).
        fn housekeeping(&mut self, now: u64) -> Vec<String> {
            self.now = UNIX_EPOCH + std::time::Duration::from_secs(now);
            self.core.tick(self.now)
        }
        fn now_secs(&self) -> u64 {
            unix_secs(self.now)
        }
        fn report(&mut self, host: &str, r: NodeReport) -> Result<(), ManagerError> {
            self.core.report(self.now, host, r)
        }
        fn config(&self, host: &str) -> Option<NodeConfig> {
            self.core.snapshot().config(host).map(|c| (**c).clone())
        }
        fn revision(&self) -> u64 {
            self.core.revision()
        }
        fn epoch(&self) -> String {
            self.core.epoch().to_string()
        }
        fn slice_list(&self, who: &Principal) -> Vec<netslice_model::api::SliceSummary> {
            self.core.snapshot().slice_list(self.now, who)
        }
        fn slice_info(&self, name: &str, who: &Principal) -> Result<netslice_model::api::SliceInfo, ManagerError> {
            self.core.snapshot().slice_info(self.now, name, who)
        }
        fn usage(&self) -> netslice_model::api::SubstrateUsage {
            (**self.core.snapshot().usage()).clone()
        }
        fn authenticate(&self, secret: &str) -> Option<Principal> {
            self.core.snapshot().authenticate(secret)
        }
        fn no_users(&self) -> bool {
            self.core.snapshot().creds().no_users()
        }
        fn add_user(&mut self, name: &str, operator: bool, who: Option<&Principal>) -> Result<String, ManagerError> {
            self.core.add_user(self.now, name, operator, who)
        }
        fn revoke_user(&mut self, name: &str, who: &Principal) -> Result<usize, ManagerError> {
            self.core.revoke_user(self.now, name, who)
        }
        fn set_enrollment(&mut self, secret: &str) {
            self.core.set_enrollment(secret)
        }
        fn enroll(&mut self, host: &str, secret: &str) -> Result<String, ManagerError> {
            self.core.enroll(self.now, host, secret)
        }
        fn alloc(&self) -> &netslice_embed::Allocations {
            &self.core.slices.alloc
        }
    }

    fn open_with(dir: &std::path::Path, policy: Policy) -> S {
        let substrate = Substrate::from_text(SUBSTRATE).unwrap();
        let core = Core::open(&dir.join("m.db"), Some(substrate), Arc::new(Registry::builtin()), policy, t0()).unwrap();
        S { core, now: t0() }
    }

    fn open(dir: &std::path::Path) -> S {
        open_with(dir, Policy::default())
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
    fn check_invariant(s: &S) {
        let rows = s.core.rows();
        let expect = netslice_embed::Allocations::from_plans(rows.values().filter(|r| !r.deleting).map(|r| &r.plan));
        assert_eq!(s.alloc(), &expect, "allocations drifted from the slices' plans");
        // And every host's config is what deriving it from every slice gives.
        let pairs: Vec<_> = rows.values().filter(|r| !r.deleting).map(|r| (&r.spec, &r.plan)).collect();
        let all = netslice_embed::node_configs(s.core.substrate(), &pairs, &*s.core.ctx.types);
        for (h, c) in all {
            assert_eq!(slices_content(&s.config(&h).unwrap()), slices_content(&c), "config of {h} drifted");
        }
    }

    fn slices_content(c: &NodeConfig) -> NodeConfig {
        NodeConfig { revision: 0, epoch: String::new(), ..c.clone() }
    }

    fn put(s: &mut S, spec: SliceSpec, create_only: bool) -> Result<Applied, ManagerError> {
        let r = s.apply(spec, create_only, &alice(), false).map(|(a, _)| a);
        check_invariant(s);
        r
    }

    fn report_all(s: &mut S) {
        let rev = s.revision();
        let hosts: Vec<String> = s.core.substrate().hosts.iter().map(|h| h.name.clone()).collect();
        for h in hosts {
            let r = report_of(&h, rev, &s.epoch());
            s.report(&h, r).unwrap();
        }
    }

    /// A clean report of `host` at revision `rev`.
    fn report_of(host: &str, rev: u64, epoch: &str) -> NodeReport {
        NodeReport {
            host: host.into(),
            applied_revision: rev,
            epoch: epoch.into(),
            errors: vec![],
            counters: vec![],
            unmatched: Default::default(),
            programs: vec![],
            io_backend: "test".into(),
            forwarding: String::new(),
            version: "0".into(),
            instance: String::new(),
            taps: vec![],
            seconds: vec![],
            capacity: None,
        }
    }

    /// What a host forwards: 10 us a frame at the ends, 5 us in transit.
    fn capacity(cores: f64) -> netslice_model::capacity::ForwardingCapacity {
        use netslice_model::capacity::{Cost, ForwardingCapacity, LinkTypeCost};
        ForwardingCapacity {
            cores,
            io: "xdp".into(),
            link_types: vec![LinkTypeCost {
                link_type: "gre".into(),
                ends: Cost { per_frame_ns: 10_000.0, per_byte_ns: 0.0 },
                transit: Cost { per_frame_ns: 5_000.0, per_byte_ns: 0.0 },
                points: vec![],
            }],
            source: "test".into(),
        }
    }

    #[test]
    fn reported_forwarding_capacity_admits_slices_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let big = |name: &str| {
            let mut sp = spec(name, "h1", "h2");
            // 4 Mbit/s of 500-byte frames: 1,000 frames/s, 0.01 core at each end.
            sp.links[0].bandwidth = netslice_model::Bandwidth(4_000_000);
            sp.links[0].frame_size = Some(500);
            sp
        };
        // No host reported yet: nothing is charged for forwarding.
        assert_eq!(put(&mut s, big("before"), false).unwrap(), Applied::Created);
        assert_eq!(s.usage().hosts[0].forwarding_used, 0.0);
        // h1 reports 0.535 cores, 0.5 of them held by the sliver there: room
        // for one more slice of 0.01-core slivers (0.02 with its forwarding).
        for h in ["h1", "h2", "t1"] {
            let mut r = report_of(h, 0, &s.epoch());
            r.capacity = Some(capacity(if h == "h1" { 0.535 } else { 4.0 }));
            s.report(h, r).unwrap();
        }
        let h1 = s.usage().hosts.iter().find(|h| h.name == "h1").cloned().unwrap();
        assert_eq!(h1.budget, Some(0.535));
        assert!(h1.capacity.is_some());
        let mut small = big("small");
        small.nodes[0].cpu = Some(0.01);
        small.nodes[1].cpu = Some(0.01);
        assert_eq!(put(&mut s, small, false).unwrap(), Applied::Created);
        let h1 = s.usage().hosts.iter().find(|h| h.name == "h1").cloned().unwrap();
        assert!((h1.forwarding_used - 0.01).abs() < 1e-9, "{h1:?}");
        let mut third = big("third");
        third.nodes[0].cpu = Some(0.01);
        third.nodes[1].cpu = Some(0.01);
        let err = put(&mut s, third.clone(), false).unwrap_err();
        assert!(err.to_string().contains("host h1 can forward 2Mbit more at 500-byte frames, 4Mbit asked"), "{err}");
        let rev = s.revision();
        drop(s);
        // The figures are kept: a restarted manager refuses the same way
        // before any agent reports again.
        let mut s = open(dir.path());
        assert_eq!(s.revision(), rev);
        assert_eq!(s.usage().hosts[0].budget, Some(0.535));
        let err = put(&mut s, third, false).unwrap_err();
        assert!(err.to_string().contains("host h1 can forward"), "{err}");
        // Figures that make no sense are ignored, the old ones kept.
        let mut r = report_of("h1", 0, &s.epoch());
        r.capacity = Some(capacity(f64::NAN));
        s.report("h1", r).unwrap();
        assert_eq!(s.usage().hosts[0].budget, Some(0.535));
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
        let epoch = s.epoch();
        let h1 = s.config("h1").unwrap();
        let alloc = s.alloc().clone();
        drop(s);
        // Restart: same slices, same configs, same epoch, same reservations.
        let s = open(dir.path());
        assert_eq!(s.slice_list(&op()).len(), 1);
        assert_eq!(s.epoch(), epoch);
        assert_eq!(s.config("h1").unwrap(), h1);
        assert_eq!(s.alloc(), &alloc);
        check_invariant(&s);
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let before = (s.revision(), s.slice_list(&op()), s.config("h1"), s.usage());
        assert!(matches!(put(&mut s, spec("bad", "h1", "t1"), false), Err(ManagerError::Unplaceable(_))));
        assert!(matches!(put(&mut s, spec("bad", "h1", "nowhere"), false), Err(ManagerError::Unplaceable(_))));
        assert!(matches!(s.delete("nope", &alice()), Err(ManagerError::NotFound(_))));
        let mut long = spec("bad", "h1", "h2");
        long.lease = Some(netslice_model::Micros(8 * 24 * 3600 * 1_000_000));
        match put(&mut s, long, false) {
            Err(ManagerError::Invalid { errors, .. }) => assert_eq!(errors[0].field, "lease"),
            other => panic!("{other:?}"),
        }
        assert_eq!(before, (s.revision(), s.slice_list(&op()), s.config("h1"), s.usage()));
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
        assert!(s.housekeeping(s.now_secs()).is_empty());
        report_all(&mut s);
        assert_eq!(s.housekeeping(s.now_secs()), vec!["slice red deleted".to_string()]);
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
        let policy = Policy { lease_default: 100, lease_max: 1000, ..Policy::default() };
        let mut s = open_with(dir.path(), policy);
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        let t0 = s.now_secs();
        let exp = s.slice_list(&alice())[0].expires;
        assert!((t0 + 99..=t0 + 101).contains(&exp), "default lease: {exp} vs {t0}");
        let renewed = s.renew("red", Some(500), "seconds", &alice()).unwrap();
        assert!(renewed >= t0 + 499);
        assert!(matches!(s.renew("red", Some(5000), "seconds", &alice()), Err(ManagerError::Invalid { .. })));
        assert_eq!(s.slice_list(&alice())[0].expires, renewed, "a refused renewal changes nothing");
        drop(s);
        let mut s = open_with(dir.path(), policy);
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
            Core::open(&dir.path().join("m.db"), Some(other), Arc::new(Registry::builtin()), Policy::default(), t0()),
            Err(ManagerError::Conflict(_))
        ));
    }

    #[test]
    fn slice_state_follows_reports() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        assert_eq!(s.slice_list(&alice())[0].state, SliceState::Allocated, "reserved, no agent has it yet");
        let r = report_of("h1", s.revision(), &s.epoch());
        s.report("h1", r).unwrap();
        assert_eq!(s.slice_list(&alice())[0].state, SliceState::Provisioning, "one host has it");
        report_all(&mut s);
        assert_eq!(s.slice_list(&alice())[0].state, SliceState::Ready);
        let mut bad = (*s.core.fleet.hosts.get("h2").unwrap().report.clone().unwrap().1).clone();
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
        let rows = s.core.rows();
        let row = &rows["sw"];
        let n = row.plan.node("s").unwrap();
        assert_eq!((n.netns.as_deref(), n.cpu_milli), (None, 10), "{n:?}");
        assert_eq!(row.spec.node("s").unwrap().cpu, None);
        assert_eq!(s.alloc().slivers.get("h3"), None, "no sliver slot any more");
        assert_eq!(s.alloc().cpu_milli["h3"], 10);
        check_invariant(&s);
        // Re-applying the spec as `slice show` gives it is unchanged.
        let mut s = s;
        assert_eq!(put(&mut s, sw, false).unwrap(), Applied::Unchanged);
    }

    #[test]
    fn conditional_changes_check_the_revision_in_the_same_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let now = s.now;
        fn stale<T>(r: Result<T, ManagerError>) -> bool {
            matches!(r, Err(ManagerError::PreconditionFailed(_)))
        }
        assert!(stale(s.core.apply(now, spec("red", "h1", "h2"), Precondition::Exists, &alice(), false)));
        assert!(stale(s.core.apply(now, spec("red", "h1", "h2"), Precondition::Revision(vec![1]), &alice(), false)));
        s.core.apply(now, spec("red", "h1", "h2"), Precondition::Absent, &alice(), false).unwrap();
        let rev = s.slice_info("red", &alice()).unwrap().revision;
        let before = (s.revision(), s.usage(), s.core.rows());
        assert!(stale(s.core.apply(now, spec("red", "h1", "h2"), Precondition::Absent, &alice(), false)));
        assert!(matches!(
            s.core.apply(now, spec("red", "h1", "h3"), Precondition::Create, &alice(), false),
            Err(ManagerError::Conflict(_))
        ));
        let old = Precondition::Revision(vec![rev + 7, rev - 1]);
        assert!(stale(s.core.apply(now, spec("red", "h1", "h3"), old.clone(), &alice(), false)));
        assert!(stale(s.core.apply(now, spec("red", "h1", "h3"), old.clone(), &alice(), true)));
        assert!(stale(s.core.delete(now, "red", old.clone(), &alice())));
        assert!(stale(s.core.renew(now, "red", Some(60), "seconds", old, &alice())));
        assert_eq!(before, (s.revision(), s.usage(), s.core.rows()), "a stale writer changed something");
        check_invariant(&s);
        let (_, rev2) =
            s.core.renew(now, "red", Some(60), "seconds", Precondition::Revision(vec![rev]), &alice()).unwrap();
        assert!(rev2 > rev, "a renewal moves the slice's revision");
        s.core.delete(now, "red", Precondition::Revision(vec![rev2]), &alice()).unwrap();
        check_invariant(&s);
    }

    /// Nothing reads a clock: hosts go down, slices' states follow, and
    /// deletions give up waiting, as the virtual clock says.
    #[test]
    fn time_is_an_argument() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        put(&mut s, spec("red", "h1", "h2"), false).unwrap();
        report_all(&mut s);
        let at = |secs: u64| t0() + std::time::Duration::from_secs(secs);
        let snap = s.core.snapshot();
        assert_eq!(snap.slice_info(at(9), "red", &alice()).unwrap().state, SliceState::Ready);
        let later = snap.slice_info(at(11), "red", &alice()).unwrap();
        assert_eq!(later.state, SliceState::Allocated, "no report for 11 s: the hosts are down");
        let hosts = snap.hosts(at(11));
        assert!(hosts.iter().all(|h| h.state == netslice_model::api::HostState::Down), "{hosts:?}");
        assert_eq!(hosts[0].last_seen_secs, Some(11));
        // A deletion whose agents are down is forgotten after the grace period.
        s.now = at(20);
        s.delete("red", &alice()).unwrap();
        assert!(s.housekeeping(unix_secs(at(20 + DELETE_GRACE.as_secs() - 1))).is_empty());
        assert_eq!(s.housekeeping(unix_secs(at(21 + DELETE_GRACE.as_secs()))), ["slice red deleted"]);
        check_invariant(&s);
    }
}
