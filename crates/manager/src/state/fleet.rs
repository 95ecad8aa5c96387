//! The fleet: what the manager has heard from each host's agent. Kept in
//! memory only (agents report every two seconds; after a restart the next
//! reports rebuild it).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use imbl::OrdMap;
use netslice_model::FieldError;
use netslice_model::api::NodeReport;

use super::common::ManagerError;
use super::totals::Totals;

/// A host that has not reported for this long is down.
pub const HOST_DOWN_AFTER: Duration = Duration::from_secs(10);

/// What the manager knows of one host's agent.
#[derive(Debug, Clone, Default)]
pub struct HostRuntime {
    /// When it last registered.
    pub registered: Option<SystemTime>,
    /// Its last report and when it came.
    pub report: Option<(SystemTime, Arc<NodeReport>)>,
    /// Its counters across the runs of its agent.
    pub totals: Totals,
}

/// How long ago `then` was, seen from `now` (zero if the clock went back).
pub fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

impl HostRuntime {
    /// The last report, if it is recent and of this store's `epoch`.
    pub fn fresh_report(&self, now: SystemTime, epoch: &str) -> Option<&NodeReport> {
        self.report.as_ref().filter(|(t, r)| age(now, *t) < HOST_DOWN_AFTER && r.epoch == epoch).map(|(_, r)| &**r)
    }
}

/// Every host's runtime, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fleet {
    pub(crate) hosts: OrdMap<String, Arc<HostRuntime>>,
}

impl Fleet {
    /// A fleet of these hosts, none heard from yet.
    pub(crate) fn new<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Fleet {
        Fleet { hosts: hosts.into_iter().map(|h| (h.to_string(), Arc::new(HostRuntime::default()))).collect() }
    }

    fn get_mut(&mut self, host: &str, substrate: &str) -> Result<&mut HostRuntime, ManagerError> {
        self.hosts
            .get_mut(host)
            .map(Arc::make_mut)
            .ok_or_else(|| ManagerError::NotFound(format!("no host named {host:?} in substrate {substrate:?}")))
    }

    /// Records an agent registration.
    pub(crate) fn register(&mut self, now: SystemTime, host: &str, substrate: &str) -> Result<(), ManagerError> {
        self.get_mut(host, substrate)?.registered = Some(now);
        tracing::info!("agent of {host} registered");
        Ok(())
    }

    /// Records an agent report.
    pub(crate) fn report(
        &mut self,
        now: SystemTime,
        host: &str,
        report: NodeReport,
        substrate: &str,
    ) -> Result<(), ManagerError> {
        if report.host != host {
            return Err(ManagerError::Invalid {
                what: "report",
                errors: vec![FieldError::new("host", format!("report for {:?} sent to {host:?}", report.host))],
            });
        }
        let h = self.get_mut(host, substrate)?;
        h.totals.update(now, &report);
        h.report = Some((now, Arc::new(report)));
        Ok(())
    }

    /// The revision a host's agent last reported applied (0 if none
    /// recently, or from another store).
    pub(crate) fn applied(&self, now: SystemTime, host: &str, epoch: &str) -> u64 {
        self.hosts.get(host).and_then(|h| h.fresh_report(now, epoch)).map(|r| r.applied_revision).unwrap_or(0)
    }
}
