//! A snapshot of the state, published after every change: what every read
//! (lists, shows, the substrate, long-polls, authentication) looks at, so
//! that no read ever waits behind a change being planned or committed.
//! Taking one is cheap (persistent maps and shared pointers), and it never
//! changes once taken.

use std::sync::Arc;
use std::time::SystemTime;

use imbl::OrdMap;
use netslice_dataplane::Registry;
use netslice_model::Substrate;
use netslice_model::api::{HostInfo, HostState, NodeConfig, SliceInfo, SliceState, SliceSummary, SubstrateUsage};

use netslice_api::types::MeasureInfo;

use super::common::ManagerError;
use super::credentials::CredView;
use super::fleet::{HOST_DOWN_AFTER, HostRuntime, age};
use super::slices::hosts_of;
use crate::auth::Principal;
use crate::store::SliceRow;

/// The state as of one revision (and one round of agent reports).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) revision: u64,
    pub(crate) epoch: Arc<str>,
    pub(crate) substrate: Arc<Substrate>,
    pub(crate) types: Arc<Registry>,
    pub(crate) slices: OrdMap<String, Arc<SliceRow>>,
    pub(crate) configs: OrdMap<String, Arc<NodeConfig>>,
    pub(crate) usage: Arc<SubstrateUsage>,
    pub(crate) fleet: OrdMap<String, Arc<HostRuntime>>,
    pub(crate) creds: Arc<CredView>,
    pub(crate) jobs: OrdMap<u64, Arc<super::jobs::JobV1>>,
    pub(crate) captures: Arc<std::path::Path>,
    pub(crate) capture_sizes: Arc<std::collections::BTreeMap<u64, u64>>,
    pub(crate) check_tolerance: f64,
    pub(crate) verdicts:
        Arc<std::collections::BTreeMap<(String, String, netslice_model::api::Direction), super::common::Verdicts>>,
}

impl Snapshot {
    /// The global revision.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The store's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The substrate.
    pub fn substrate(&self) -> &Substrate {
        &self.substrate
    }

    /// The node and link types this deployment offers.
    pub fn types(&self) -> &Arc<Registry> {
        &self.types
    }

    /// Credentials, for authentication.
    pub fn creds(&self) -> &CredView {
        &self.creds
    }

    /// Who holds `secret`, if anyone.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        self.creds.authenticate(secret)
    }

    /// The desired config of a host.
    pub fn config(&self, host: &str) -> Option<&Arc<NodeConfig>> {
        self.configs.get(host)
    }

    /// The resources held and free on every host and physical link.
    pub fn usage(&self) -> &Arc<SubstrateUsage> {
        &self.usage
    }

    /// A slice's stored row, whoever owns it.
    pub fn row(&self, name: &str) -> Option<&Arc<SliceRow>> {
        self.slices.get(name)
    }

    pub(crate) fn visible(&self, name: &str, who: &Principal) -> Result<&SliceRow, ManagerError> {
        let row = self.slices.get(name).ok_or_else(|| ManagerError::NotFound(format!("no slice named {name:?}")))?;
        if who.is_operator() || who.user() == Some(row.owner.as_str()) {
            Ok(row)
        } else {
            Err(ManagerError::Forbidden(format!("slice {name:?} belongs to another user")))
        }
    }

    fn fresh_report(&self, now: SystemTime, host: &str) -> Option<&netslice_model::api::NodeReport> {
        self.fleet.get(host).and_then(|h| h.fresh_report(now, &self.epoch))
    }

    /// A slice's state, derived from its hosts' reports as of `now`.
    pub fn slice_state(&self, now: SystemTime, name: &str, row: &SliceRow) -> (SliceState, Option<String>) {
        if row.deleting {
            return (SliceState::Deleting, Some("agents are tearing it down".into()));
        }
        let hosts = hosts_of(row);
        let n_hosts = hosts.len();
        let mut waiting = Vec::new();
        for h in hosts {
            let want = self.configs.get(h).map(|c| c.revision).unwrap_or(0);
            match self.fresh_report(now, h) {
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
    pub fn slice_list(&self, now: SystemTime, who: &Principal) -> Vec<SliceSummary> {
        self.slices
            .iter()
            .filter(|(_, row)| who.is_operator() || who.user() == Some(row.owner.as_str()))
            .map(|(name, row)| SliceSummary {
                owner: row.owner.clone(),
                expires: row.expires,
                name: name.clone(),
                state: self.slice_state(now, name, row).0,
                nodes: row.spec.nodes.len(),
                links: row.spec.links.len(),
                revision: row.revision,
                created: row.created,
            })
            .collect()
    }

    /// One slice with its counters.
    pub fn slice_info(&self, now: SystemTime, name: &str, who: &Principal) -> Result<SliceInfo, ManagerError> {
        let row = self.visible(name, who)?;
        let (state, message) = self.slice_state(now, name, row);
        let reports = || self.fleet.values().filter_map(|h| h.report.as_ref()).map(|(_, r)| r);
        let mut counters: Vec<_> =
            self.fleet.values().flat_map(|h| h.totals.rules().filter(|c| c.slice == name)).collect();
        counters.sort_by(|a, b| (&a.link, a.direction, &a.host).cmp(&(&b.link, b.direction, &b.host)));
        let mut programs: Vec<_> =
            reports().flat_map(|r| r.programs.iter().filter(|p| p.slice == name).cloned()).collect();
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

    /// A measurement job, with its results so far, for its owner or an operator.
    pub fn job_info(&self, now: SystemTime, id: u64, who: &Principal) -> Result<MeasureInfo, ManagerError> {
        let j = self.jobs.get(&id).ok_or_else(|| ManagerError::NotFound(format!("no measurement job {id}")))?;
        if !(who.is_operator() || who.user() == Some(j.owner.as_str())) {
            return Err(ManagerError::Forbidden(format!("measurement job {id} belongs to another user")));
        }
        let mut info = j.info(now, |h| self.fleet.get(h).and_then(|rt| rt.report.clone()));
        info.capture_bytes = j.capture.map(|_| self.capture_sizes.get(&id).copied().unwrap_or(0));
        Ok(info)
    }

    /// A job's capture for someone who may see the job: the job, the file
    /// of its Enhanced Packet Blocks, and their bytes.
    pub fn capture(
        &self,
        now: SystemTime,
        id: u64,
        who: &Principal,
    ) -> Result<(MeasureInfo, std::path::PathBuf, u64), ManagerError> {
        let info = self.job_info(now, id, who)?;
        let Some(bytes) = info.capture_bytes else {
            return Err(ManagerError::NotFound(format!("measurement job {id} captures nothing")));
        };
        Ok((info, self.captures.join(format!("{id}.epb")), bytes))
    }

    /// The jobs the caller may see (a slice's only, if given).
    pub fn job_list(&self, now: SystemTime, who: &Principal, slice: Option<&str>) -> Vec<MeasureInfo> {
        self.jobs
            .values()
            .filter(|j| who.is_operator() || who.user() == Some(j.owner.as_str()))
            .filter(|j| slice.is_none_or(|s| s == j.slice))
            .map(|j| j.info(now, |h| self.fleet.get(h).and_then(|rt| rt.report.clone())))
            .collect()
    }

    /// Every host and its agent's health as of `now`.
    pub fn hosts(&self, now: SystemTime) -> Vec<HostInfo> {
        self.substrate
            .hosts
            .iter()
            .map(|h| {
                let rt = self.fleet.get(&h.name);
                let report = rt.and_then(|r| r.report.as_ref());
                let last_seen = report.map(|(t, _)| *t).or(rt.and_then(|r| r.registered));
                let state = match last_seen {
                    None => HostState::Unknown,
                    Some(t) if age(now, t) < HOST_DOWN_AFTER => HostState::Ready,
                    Some(_) => HostState::Down,
                };
                let cfg = self.configs.get(&h.name);
                HostInfo {
                    name: h.name.clone(),
                    role: h.role,
                    state,
                    last_seen_secs: last_seen.map(|t| age(now, t).as_secs()),
                    desired_revision: cfg.map(|c| c.revision).unwrap_or(0),
                    applied_revision: report.filter(|(_, r)| *r.epoch == *self.epoch).map(|(_, r)| r.applied_revision),
                    slivers: cfg.map(|c| c.slivers.len()).unwrap_or(0),
                    io_backend: report.map(|(_, r)| r.io_backend.clone()),
                    forwarding: report.map(|(_, r)| r.forwarding.clone()).filter(|f| !f.is_empty()),
                    errors: report.map(|(_, r)| r.errors.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }
}
