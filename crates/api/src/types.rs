//! The API's own request and response types (the documents they carry,
//! slice specs, infos and node configs, are `netslice-model`'s).

use netslice_model::api::SlicePlan;
use netslice_model::{FieldError, Micros};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Who the caller is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// User name (or host, for agents).
    pub name: String,
    /// `operator`, `developer` or `agent`.
    pub role: String,
}

/// Options of an apply.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    /// Check and plan only: nothing is reserved or changed.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a dry run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DryRun {
    /// Always true: the spec would be admitted.
    pub admitted: bool,
    /// `create` or `update`.
    pub action: String,
    /// The plan it would get.
    pub plan: SlicePlan,
}

/// Answer to a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// Revision at which the slice is gone from every desired config; it shows as
    /// `deleting` until the agents confirm.
    pub revision: u64,
}

/// A lease extension: `{"for": "48h"}` or `{"seconds": 172800}` (not both);
/// an empty body or `{}` asks for the operator's default lease.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// Seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// How long from now, as a duration (`48h`, `7d`).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub duration: Option<Micros>,
}

/// The new lease end.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Renewed {
    /// Lease end, seconds since the Unix epoch.
    pub expires: u64,
}

/// A new user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// User name.
    pub name: String,
    /// `developer` (default) or `operator`.
    #[serde(default)]
    pub role: Option<String>,
}

/// A user's token, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserToken {
    /// User name.
    pub name: String,
    /// Role.
    pub role: String,
    /// The token (only its hash is kept).
    pub token: String,
}

/// Answer to a revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// User name.
    pub name: String,
    /// Tokens revoked.
    pub tokens: usize,
}

/// Long-poll parameters.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Revision the agent has; answer when the desired one is newer.
    #[serde(default)]
    pub after: u64,
    /// Epoch of that revision; a different epoch is answered at once.
    #[serde(default)]
    pub epoch: String,
    /// Seconds to wait (at most 60; 0 answers at once).
    #[serde(default)]
    pub wait: u64,
}

/// Which part of the audit trail to read.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this sequence number (default 0: from the first).
    #[serde(default)]
    pub after: u64,
    /// At most this many records (default and most: 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A user (operators list them with `netslice user list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// `operator` or `developer`.
    pub role: String,
    /// Tokens the user holds.
    pub tokens: usize,
}

/// Parameters of reading one slice: at once, or as a watch (long-poll).
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SliceQuery {
    /// Wait until the slice differs from what the caller has: a revision
    /// newer than `after`, a state other than `state`, or its deletion.
    #[serde(default)]
    pub watch: bool,
    /// The revision the caller has (its `ETag`).
    #[serde(default)]
    pub after: u64,
    /// The state the caller has (`ready`, `provisioning`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<String>)]
    pub state: Option<netslice_model::api::SliceState>,
    /// Seconds to wait (default 30, at most 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// Every refusal of the API: an RFC 9457 problem document
/// (`application/problem+json`), with the field errors, and for slices
/// that cannot be placed the typed reason and its GENI code, as extension
/// members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// The problem type: `/problems/<code>` on the manager, which
    /// describes it.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type (the same for every occurrence).
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path it happened at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Stable machine-readable code, the last segment of `type`
    /// (`invalid`, `not_found`, `precondition_failed`, ...).
    pub code: String,
    /// Field-level problems, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For refusals: the typed reason (`insufficient_bandwidth`, `insufficient_nodes`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For refusals: the GENI AM API v3 error it maps to (`INSUFFICIENT_BANDWIDTH`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geni_code: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// The media type of [`Problem`] documents.
pub const PROBLEM_JSON: &str = "application/problem+json";
