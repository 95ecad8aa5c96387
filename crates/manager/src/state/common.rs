//! What every part of the state shares: the error of a request, the result
//! of an apply, the precondition of a change, the lease policy, the context
//! each part reads, and audit records.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use netslice_dataplane::Registry;
use netslice_embed::PlanError;
use netslice_model::{FieldError, SpecError, Substrate};

use crate::auth::Principal;
use crate::store::{Audit, StoreError};

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
    /// A condition of the request (`If-Match`, `If-None-Match`) does not
    /// hold: the object changed since the caller read it.
    #[error("{0}")]
    PreconditionFailed(String),
    /// No credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials that are not (or no longer) valid.
    #[error("{0}")]
    InvalidToken(String),
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
    #[error("{message}")]
    MethodNotAllowed {
        /// What to say.
        message: String,
        /// The methods it takes (`Allow`).
        allow: String,
    },
    /// The manager is shutting down.
    #[error("{0}")]
    Unavailable(String),
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

/// What a change requires of the slice's current revision (its `ETag`),
/// checked in the same step as the change, so that a writer who read an
/// older revision changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Nothing.
    #[default]
    None,
    /// The slice must not exist yet (`POST`): 409 if it does.
    Create,
    /// `If-None-Match: *`: the slice must not exist (412 if it does).
    Absent,
    /// `If-Match: *`: the slice must exist.
    Exists,
    /// `If-Match: "N", ...`: the slice must be at one of these revisions.
    Revision(Vec<u64>),
}

impl Precondition {
    /// Checks the condition against the slice's current revision (`None`
    /// if it does not exist).
    pub fn check(&self, name: &str, current: Option<u64>) -> Result<(), ManagerError> {
        let stale = |what: String| Err(ManagerError::PreconditionFailed(what));
        match (self, current) {
            (Precondition::None, _) | (Precondition::Create | Precondition::Absent, None) => Ok(()),
            (Precondition::Create, Some(_)) => Err(ManagerError::Conflict(format!("slice {name:?} already exists"))),
            (Precondition::Absent, Some(r)) => stale(format!("slice {name:?} exists (revision {r})")),
            (Precondition::Exists, Some(_)) => Ok(()),
            (Precondition::Exists | Precondition::Revision(_), None) => stale(format!("slice {name:?} does not exist")),
            (Precondition::Revision(want), Some(r)) if want.contains(&r) => Ok(()),
            (Precondition::Revision(want), Some(r)) => stale(format!(
                "slice {name:?} is at revision {r}, not {}: it changed since it was read; read it again",
                want.iter().map(u64::to_string).collect::<Vec<_>>().join(" or ")
            )),
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
    /// How long measurement results (and captures) are kept after their
    /// window, seconds.
    pub results_max_age: u64,
    /// Bytes all captures together may hold (the sum of their caps).
    pub capture_storage: u64,
    /// How far below its guarantee a window's delivered rate may be and
    /// still meet it, percent (the guarantee check).
    pub check_tolerance_pct: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lease_default: 24 * 3600,
            lease_max: 7 * 24 * 3600,
            results_max_age: 7 * 24 * 3600,
            capture_storage: 1 << 30,
            check_tolerance_pct: 5,
        }
    }
}

/// What every part reads and none changes.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) substrate: Arc<Substrate>,
    pub(crate) types: Arc<Registry>,
    pub(crate) epoch: Arc<str>,
    pub(crate) policy: Policy,
    /// What each host's agent reported it can forward (changed only by
    /// the owner, when a report brings new figures; kept in the store).
    pub(crate) caps: Arc<netslice_embed::Capacities>,
}

/// The audit record of a change made by `who`.
pub(crate) fn audit(who: &Principal, action: &str, object: &str, detail: impl Into<String>) -> Audit {
    let (caller, role) = match who {
        p if *p == Principal::system() => ("system".to_string(), "system"),
        Principal::User { name, operator } => (name.clone(), if *operator { "operator" } else { "developer" }),
        Principal::Node(h) => (format!("agent:{h}"), "agent"),
    };
    Audit { caller, role: role.into(), action: action.into(), object: object.into(), detail: detail.into() }
}

/// Writes an audit record to the log too (target `netslice::audit`).
pub(crate) fn log_audit(a: &Audit) {
    tracing::info!(target: "netslice::audit", "audit: {} ({}) {} {}: {}", a.caller, a.role, a.action, a.object, a.detail);
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Guarantee-check verdicts of one link and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdicts {
    /// Windows that met the guarantee.
    pub met: u64,
    /// Windows that did not.
    pub violated: u64,
    /// The next window to judge, Unix seconds.
    pub next: u64,
}
