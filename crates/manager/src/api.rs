//! The REST API. Handlers authenticate the caller and parse and validate
//! the request, then either read the last published [`Snapshot`] or send a
//! command to the state's owner ([`Manager`]) and await its answer; they
//! never lock anything. The OpenAPI document is served at `/openapi.json`.
//!
//! Conventions (see `docs/api.md`):
//!
//! - Every refusal is an RFC 9457 problem document
//!   (`application/problem+json`) with a stable `code`, including bad
//!   bodies, bad queries, unknown paths, wrong methods (with `Allow`) and
//!   oversize bodies. `/problems/{code}` describes each type.
//! - A slice's `ETag` is its revision. `If-Match` on `PUT`, `DELETE` and
//!   renew makes the change conditional: a stale revision gets 412 and
//!   changes nothing. `If-None-Match: *` on `PUT` creates only; on `GET` a
//!   current tag gets 304.
//! - Creation answers 201 with `Location`; a deletion, which agents finish
//!   later, 202; a missing or bad token 401 with `WWW-Authenticate: Bearer`.
//! - `GET /api/v1/slices/{name}?watch=true&after=REV[&state=S]` long-polls
//!   until the slice moves past what the caller has.
//!
//! Authentication: `Authorization: Bearer <secret>`. Developers' and
//! operators' API tokens for slices, users, the substrate and the audit
//! trail; an agent's own credential for `/api/v1/nodes/{host}/...` (issued
//! at registration, which takes the enrollment token). `/healthz`,
//! `/openapi.json` and `/problems/...` are open.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{FromRequestParts, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netslice_api::etag::{self, Condition};
use netslice_api::types::{
    ApplyQuery, AuditQuery, Deleted, DryRun, NewUser, PROBLEM_JSON, Problem, Renew, Renewed, Revoked, SliceQuery,
    UserInfo, UserToken, WatchQuery, WhoAmI,
};
use netslice_model::api::{
    AuditEntry, HostInfo, NodeConfig, NodeReport, RegisterRequest, Registered, SliceInfo, SliceSummary, SubstrateUsage,
};
use netslice_model::types::TypesInfo;
use netslice_model::{FieldError, SliceSpec, Substrate};
use utoipa::OpenApi;

pub use crate::caller::{App, Caller, InFlight, MAX_IN_FLIGHT, NoQuery, Peer, access_log};
// The monitoring routes (and the OpenAPI paths utoipa made of them).
use crate::api_monitor::*;
use crate::auth::Principal;
use crate::caller::{ApiResult, bearer, node, operator, person};
use crate::extract::{ApiQuery, Body, Document, HostName, SliceName, UserName};
use crate::owner::Lane;
use crate::state::{Applied, ManagerError, Precondition};

/// Longest long-poll wait a client may ask for.
pub const MAX_WATCH: Duration = Duration::from_secs(60);

/// Wait of a slice watch that names none.
pub const DEFAULT_SLICE_WATCH: Duration = Duration::from_secs(30);

/// One problem type: its code, HTTP status, title and what it means.
#[derive(Debug, Clone, Copy)]
pub struct ProblemType {
    /// Stable code, the last segment of the type URI.
    pub code: &'static str,
    /// HTTP status.
    pub status: StatusCode,
    /// Short summary.
    pub title: &'static str,
    /// What it means and what to do.
    pub description: &'static str,
}

/// Every problem type the API answers with.
pub const PROBLEM_TYPES: &[ProblemType] = &[
    ProblemType {
        code: "invalid",
        status: StatusCode::BAD_REQUEST,
        title: "Invalid request",
        description: "A body, query or path is malformed or breaks a rule; `errors` names each field at fault.",
    },
    ProblemType {
        code: "unauthorized",
        status: StatusCode::UNAUTHORIZED,
        title: "Credentials required",
        description: "No bearer token was sent: send `Authorization: Bearer <token>`.",
    },
    ProblemType {
        code: "invalid_token",
        status: StatusCode::UNAUTHORIZED,
        title: "Unknown or revoked token",
        description: "The bearer token is not (or no longer) valid.",
    },
    ProblemType {
        code: "forbidden",
        status: StatusCode::FORBIDDEN,
        title: "Not allowed",
        description: "The credential is valid but may not do this (another user's slice, an operator's call, an agent's call).",
    },
    ProblemType {
        code: "not_found",
        status: StatusCode::NOT_FOUND,
        title: "No such object or path",
        description: "The slice, user or host named does not exist, or no route serves the path.",
    },
    ProblemType {
        code: "method_not_allowed",
        status: StatusCode::METHOD_NOT_ALLOWED,
        title: "Method not allowed",
        description: "The path does not take this method; `Allow` lists those it takes.",
    },
    ProblemType {
        code: "timeout",
        status: StatusCode::REQUEST_TIMEOUT,
        title: "Request body too slow",
        description: "The request body did not arrive in time.",
    },
    ProblemType {
        code: "conflict",
        status: StatusCode::CONFLICT,
        title: "Conflict",
        description: "The request conflicts with the current state (the slice exists already, or is being deleted).",
    },
    ProblemType {
        code: "precondition_failed",
        status: StatusCode::PRECONDITION_FAILED,
        title: "Precondition failed",
        description: "`If-Match` or `If-None-Match` does not hold: the object changed since it was read. Nothing was changed; read it again.",
    },
    ProblemType {
        code: "too_large",
        status: StatusCode::PAYLOAD_TOO_LARGE,
        title: "Request body too large",
        description: "The request body is larger than the API accepts.",
    },
    ProblemType {
        code: "unplaceable",
        status: StatusCode::UNPROCESSABLE_ENTITY,
        title: "Cannot be placed",
        description: "The slice is valid but does not fit the substrate now; `reason` and `geni_code` say why.",
    },
    ProblemType {
        code: "too_many_requests",
        status: StatusCode::TOO_MANY_REQUESTS,
        title: "Too many requests in flight",
        description: "This credential has too many requests in flight; retry after `Retry-After` seconds.",
    },
    ProblemType {
        code: "store",
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "Store failure",
        description: "The manager's database failed; nothing was changed.",
    },
    ProblemType {
        code: "internal",
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "Internal error",
        description: "A bug in the manager (logged).",
    },
    ProblemType {
        code: "unavailable",
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Shutting down",
        description: "The manager is stopping.",
    },
];

/// The code of each error kind.
pub fn code_of(e: &ManagerError) -> &'static str {
    match e {
        ManagerError::Invalid { .. } => "invalid",
        ManagerError::Unplaceable(_) => "unplaceable",
        ManagerError::NotFound(_) => "not_found",
        ManagerError::Conflict(_) => "conflict",
        ManagerError::PreconditionFailed(_) => "precondition_failed",
        ManagerError::Unauthorized(_) => "unauthorized",
        ManagerError::InvalidToken(_) => "invalid_token",
        ManagerError::Forbidden(_) => "forbidden",
        ManagerError::TooLarge(_) => "too_large",
        ManagerError::Timeout(_) => "timeout",
        ManagerError::TooManyRequests(_) => "too_many_requests",
        ManagerError::MethodNotAllowed { .. } => "method_not_allowed",
        ManagerError::Unavailable(_) => "unavailable",
        ManagerError::Store(_) => "store",
        ManagerError::Internal(_) => "internal",
    }
}

/// The problem type of a code.
pub fn problem_type(code: &str) -> Option<&'static ProblemType> {
    PROBLEM_TYPES.iter().find(|t| t.code == code)
}

/// The HTTP status and code of each error kind.
pub fn status_of(e: &ManagerError) -> (StatusCode, &'static str) {
    let code = code_of(e);
    (problem_type(code).map(|t| t.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), code)
}

/// The problem document of an error (without `instance`, which the
/// [`problem_instance`] layer fills in).
pub fn problem(e: &ManagerError) -> Problem {
    let (status, code) = status_of(e);
    let title = problem_type(code).map(|t| t.title).unwrap_or("Error");
    let (errors, reason, geni_code) = match e {
        ManagerError::Invalid { errors, .. } => (errors.clone(), None, Some("BADARGS".to_string())),
        ManagerError::Unplaceable(p) => {
            let text = p.to_string();
            let msg = text.strip_prefix(&format!("{}: ", p.field())).unwrap_or(&text).to_string();
            (vec![FieldError::new(p.field(), msg)], Some(p.reason().to_string()), Some(p.geni_code().to_string()))
        }
        ManagerError::Forbidden(_) => (Vec::new(), None, Some("FORBIDDEN".to_string())),
        _ => (Vec::new(), None, None),
    };
    let detail = match e {
        ManagerError::Unplaceable(p) => format!("cannot place slice ({})", p.geni_code()),
        // The fields are listed in `errors`.
        ManagerError::Invalid { what, .. } => format!("invalid {what}"),
        other => other.to_string(),
    };
    Problem {
        kind: format!("/problems/{code}"),
        title: title.to_string(),
        status: status.as_u16(),
        detail,
        instance: None,
        code: code.to_string(),
        errors,
        reason,
        geni_code,
    }
}

fn problem_response(status: StatusCode, p: Problem, mut headers: HeaderMap) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    let body = serde_json::to_vec(&p).expect("a problem serializes");
    let mut resp = (status, headers, body).into_response();
    resp.extensions_mut().insert(p);
    resp
}

impl IntoResponse for ManagerError {
    fn into_response(self) -> Response {
        let p = problem(&self);
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("{}", p.detail);
        }
        let mut headers = HeaderMap::new();
        match &self {
            ManagerError::TooManyRequests(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ManagerError::Timeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ManagerError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"netslice\""));
            }
            ManagerError::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"netslice\", error=\"invalid_token\""),
                );
            }
            ManagerError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    headers.insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        problem_response(status, p, headers)
    }
}

/// Fills in `instance` (the request path) of every problem answered.
pub async fn problem_instance(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let Some(mut p) = resp.extensions().get::<Problem>().cloned() else { return resp };
    p.instance = Some(path);
    let (parts, _) = resp.into_parts();
    let status = parts.status;
    let mut out = problem_response(status, p, parts.headers);
    out.extensions_mut().extend(parts.extensions);
    out
}

/// The `If-Match` / `If-None-Match` of a request, as the precondition of a
/// change (both at once are refused: say one thing).
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    if_match: Option<Condition>,
    if_none_match: Option<Condition>,
}

impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = ManagerError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let get = |name: header::HeaderName, field: &str| -> ApiResult<Option<Condition>> {
            let mut values = parts.headers.get_all(&name).iter();
            let Some(v) = values.next() else { return Ok(None) };
            if values.next().is_some() {
                return Err(invalid_header(field, "give it once"));
            }
            etag::parse(v.as_bytes()).map(Some).map_err(|e| invalid_header(field, &e.0))
        };
        let c = Conditions {
            if_match: get(header::IF_MATCH, "If-Match")?,
            if_none_match: get(header::IF_NONE_MATCH, "If-None-Match")?,
        };
        if c.if_match.is_some() && c.if_none_match.is_some() {
            return Err(invalid_header("If-None-Match", "give If-Match or If-None-Match, not both"));
        }
        Ok(c)
    }
}

fn invalid_header(field: &str, msg: &str) -> ManagerError {
    ManagerError::Invalid { what: "request header", errors: vec![FieldError::new(field, msg)] }
}

impl Conditions {
    /// The precondition of a write.
    fn precondition(&self) -> ApiResult<Precondition> {
        match (&self.if_match, &self.if_none_match) {
            (None, None) => Ok(Precondition::None),
            (Some(Condition::Any), _) => Ok(Precondition::Exists),
            (Some(Condition::Tags(t)), _) => {
                Ok(Precondition::Revision(t.iter().filter_map(|t| t.revision()).collect()))
            }
            (None, Some(Condition::Any)) => Ok(Precondition::Absent),
            (None, Some(Condition::Tags(_))) => {
                Err(invalid_header("If-None-Match", "a write takes If-None-Match: * (create only), no entity tags"))
            }
        }
    }

    /// Whether a read's `If-None-Match` names the current revision (304).
    fn not_modified(&self, rev: u64) -> bool {
        match &self.if_none_match {
            Some(Condition::Any) => true,
            // If-None-Match compares weakly.
            Some(Condition::Tags(t)) => t.iter().any(|t| t.opaque == rev.to_string()),
            None => false,
        }
    }
}

fn etag_header(rev: u64) -> (header::HeaderName, HeaderValue) {
    (header::ETAG, HeaderValue::from_str(&etag::etag(rev)).expect("a number is a header value"))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "healthz",
    responses((status = 200, description = "the manager is up", body = String, content_type = "text/plain")))]
pub async fn healthz(_: ApiQuery<NoQuery>) -> &'static str {
    "ok"
}

/// What a problem type means.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProblemTypeInfo {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Code.
    pub code: String,
    /// HTTP status.
    pub status: u16,
    /// Title.
    pub title: String,
    /// What it means and what to do.
    pub description: String,
}

/// Describes a problem type (the `type` of every error answer).
#[utoipa::path(get, path = "/problems/{code}", tag = "meta", operation_id = "getProblemType",
    params(("code" = String, Path, description = "problem code, e.g. not_found")),
    responses((status = 200, body = ProblemTypeInfo), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn problem_info(uri: axum::http::Uri, _: ApiQuery<NoQuery>) -> ApiResult<Json<ProblemTypeInfo>> {
    let code = uri.path().rsplit('/').next().unwrap_or_default();
    let t = problem_type(code).ok_or_else(|| ManagerError::NotFound(format!("no problem type {code:?}")))?;
    Ok(Json(ProblemTypeInfo {
        kind: format!("/problems/{}", t.code),
        code: t.code.into(),
        status: t.status.as_u16(),
        title: t.title.into(),
        description: t.description.into(),
    }))
}

/// The caller's identity.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "meta", operation_id = "whoAmI", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn whoami(c: Caller, _: ApiQuery<NoQuery>) -> Json<WhoAmI> {
    Json(match c.0.clone() {
        Principal::User { name, operator } => {
            WhoAmI { name, role: if operator { "operator" } else { "developer" }.into() }
        }
        Principal::Node(h) => WhoAmI { name: h, role: "agent".into() },
    })
}

/// The substrate description.
#[utoipa::path(get, path = "/api/v1/substrate", tag = "substrate", operation_id = "getSubstrate", security(("bearer" = [])),
    responses((status = 200, body = Substrate), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn substrate(AxState(app): AxState<App>, c: Caller, _: ApiQuery<NoQuery>) -> ApiResult<Json<Substrate>> {
    person(&c)?;
    Ok(Json(app.snapshot().substrate().clone()))
}

/// Every resource of the substrate, reserved and free.
#[utoipa::path(get, path = "/api/v1/substrate/usage", tag = "substrate", operation_id = "getSubstrateUsage", security(("bearer" = [])),
    responses((status = 200, body = SubstrateUsage), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn usage(AxState(app): AxState<App>, c: Caller, _: ApiQuery<NoQuery>) -> ApiResult<Json<SubstrateUsage>> {
    person(&c)?;
    Ok(Json((**app.snapshot().usage()).clone()))
}

/// The node and link types this deployment offers, with their parameters.
#[utoipa::path(get, path = "/api/v1/types", tag = "substrate", operation_id = "listTypes", security(("bearer" = [])),
    responses((status = 200, body = TypesInfo), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn types(AxState(app): AxState<App>, c: Caller, _: ApiQuery<NoQuery>) -> ApiResult<Json<TypesInfo>> {
    person(&c)?;
    Ok(Json(app.snapshot().types().info()))
}

/// The caller's slices (an operator's: every slice).
#[utoipa::path(get, path = "/api/v1/slices", tag = "slices", operation_id = "listSlices", security(("bearer" = [])),
    responses((status = 200, body = Vec<SliceSummary>), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn list_slices(
    AxState(app): AxState<App>,
    c: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Json<Vec<SliceSummary>>> {
    let who = person(&c)?;
    Ok(Json(app.snapshot().slice_list(SystemTime::now(), who)))
}

fn slice_response(status: StatusCode, info: SliceInfo, result: Option<&'static str>) -> Response {
    let mut headers = HeaderMap::new();
    let (k, v) = etag_header(info.revision);
    headers.insert(k, v);
    if let Some(r) = result {
        headers.insert("x-netslice-result", HeaderValue::from_static(r));
    }
    if status == StatusCode::CREATED
        && let Ok(loc) = HeaderValue::from_str(
            &netslice_api::Route::slice(&info.name).map(|r| r.path().to_string()).unwrap_or_default(),
        )
    {
        headers.insert(header::LOCATION, loc);
    }
    (status, headers, Json(info)).into_response()
}

/// One slice, with its plan and counters; its `ETag` is its revision. With
/// `watch=true`, waits (up to `wait` seconds) until the slice's revision is
/// past `after`, its state is not `state`, or it is gone; 204 if nothing
/// moved within the wait.
#[utoipa::path(get, path = "/api/v1/slices/{name}", tag = "slices", operation_id = "getSlice", security(("bearer" = [])),
    params(("name" = String, Path, description = "slice name"), SliceQuery,
           ("If-None-Match" = Option<String>, Header, description = "answer 304 if the slice is still at this ETag")),
    responses((status = 200, body = SliceInfo, headers(("ETag" = String, description = "the slice's revision"))),
              (status = 204, description = "watch: nothing moved within the wait"),
              (status = 304, description = "the slice is still at the ETag given in If-None-Match"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn get_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    ApiQuery(q): ApiQuery<SliceQuery>,
    cond: Conditions,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    if !q.watch {
        if q.wait.is_some() || q.state.is_some() || q.after != 0 {
            return Err(ManagerError::Invalid {
                what: "query",
                errors: vec![FieldError::new("watch", "after, state and wait go with watch=true")],
            });
        }
        let info = app.snapshot().slice_info(SystemTime::now(), &name, &who)?;
        if cond.not_modified(info.revision) {
            let (k, v) = etag_header(info.revision);
            return Ok((StatusCode::NOT_MODIFIED, [(k, v)]).into_response());
        }
        return Ok(slice_response(StatusCode::OK, info, None));
    }
    let wait = q.wait.map(Duration::from_secs).unwrap_or(DEFAULT_SLICE_WATCH).min(MAX_WATCH);
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = app.manager.snapshots();
    loop {
        let snap = rx.borrow_and_update().clone();
        let info = snap.slice_info(SystemTime::now(), &name, &who)?;
        if info.revision > q.after || q.state.is_some_and(|s| s != info.state) {
            return Ok(slice_response(StatusCode::OK, info, None));
        }
        // Slice states also move with time (a host that stops reporting):
        // look again every 2 s even when nothing is published.
        let next = (tokio::time::Instant::now() + Duration::from_secs(2)).min(deadline);
        match tokio::time::timeout_at(next, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ManagerError::Unavailable("the manager is stopping".into())),
            Err(_) if next >= deadline => return Ok(StatusCode::NO_CONTENT.into_response()),
            Err(_) => {}
        }
    }
}

/// The answer to an apply when it is not a dry run, or its dry run.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
// The body is the variant's own (no wrapper object), as `untagged` says.
#[serde(untagged)]
enum ApplyAnswer {
    /// The slice as it is now.
    Slice(Box<SliceInfo>),
    /// A dry run's plan.
    DryRun(DryRun),
}

async fn applied(app: &App, spec: SliceSpec, pre: Precondition, who: Principal, dry_run: bool) -> ApiResult<Response> {
    let name = spec.name.clone();
    let (r, snap) =
        app.manager.call(Lane::Slow, move |s, now| s.apply(now, spec, pre, &who, dry_run).map(|r| (r, who))).await?;
    let (outcome, reason) = match &r {
        Ok(((Applied::DryRun, _), _)) => ("admitted", None),
        Ok(((a, _), _)) => (a.as_str(), None),
        Err(ManagerError::Unplaceable(e)) => ("unplaceable", Some(e.reason())),
        Err(e) => (code_of(e), None),
    };
    app.metrics.admission(dry_run, outcome, reason);
    let ((result, plan), who) = r?;
    if result == Applied::DryRun {
        let action = if snap.row(&name).is_some_and(|r| !r.deleting) { "update" } else { "create" }.to_string();
        return Ok((StatusCode::OK, [("x-netslice-result", "dry-run")], Json(DryRun { admitted: true, action, plan }))
            .into_response());
    }
    let info = snap.slice_info(SystemTime::now(), &name, &who)?;
    let status = if result == Applied::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(slice_response(status, info, Some(result.as_str())))
}

/// Creates a slice from a spec (JSON or YAML body): 201 with `Location`, or
/// 409 if one of that name exists.
#[utoipa::path(post, path = "/api/v1/slices", tag = "slices", operation_id = "createSlice", security(("bearer" = [])), params(ApplyQuery),
    request_body(description = "slice spec, YAML (as `netslice slice apply` sends it) or JSON",
                 content((SliceSpec = "application/yaml"), (SliceSpec = "application/json"))),
    responses((status = 201, body = SliceInfo, headers(("Location" = String, description = "the new slice"), ("ETag" = String, description = "its revision"))),
              (status = 200, description = "dry run: the plan it would get", body = DryRun),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn create_slice(
    AxState(app): AxState<App>,
    c: Caller,
    ApiQuery(q): ApiQuery<ApplyQuery>,
    Document(spec): Document<SliceSpec>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    spec.validate()?;
    applied(&app, spec, Precondition::Create, who, q.dry_run).await
}

/// Applies a spec: creates the slice (201 with `Location`), leaves an
/// identical one alone, or changes a running one in place, the delta
/// admitted as a whole (header `x-netslice-result`: `created`, `updated`,
/// `unchanged` or `dry-run`). `If-Match` makes it conditional on the
/// slice's revision; `If-None-Match: *` creates only.
#[utoipa::path(put, path = "/api/v1/slices/{name}", tag = "slices", operation_id = "applySlice", security(("bearer" = [])),
    params(("name" = String, Path, description = "slice name"), ApplyQuery,
           ("If-Match" = Option<String>, Header, description = "change only if the slice is at this ETag (`*`: if it exists)"),
           ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body(description = "slice spec, YAML (as `netslice slice apply` sends it) or JSON",
                 content((SliceSpec = "application/yaml"), (SliceSpec = "application/json"))),
    responses((status = 200, description = "unchanged or updated (the slice), or a dry run (the plan)", body = ApplyAnswer,
                headers(("ETag" = String, description = "the slice's revision"))),
              (status = 201, description = "created", body = SliceInfo,
                headers(("Location" = String, description = "the new slice"), ("ETag" = String, description = "its revision"))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn apply_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    ApiQuery(q): ApiQuery<ApplyQuery>,
    cond: Conditions,
    Document(spec): Document<SliceSpec>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    spec.validate()?;
    if spec.name != name {
        return Err(ManagerError::Invalid {
            what: "request",
            errors: vec![FieldError::new(
                "name",
                format!("spec names slice {:?} but the URL names {name:?}", spec.name),
            )],
        });
    }
    applied(&app, spec, cond.precondition()?, who, q.dry_run).await
}

/// Starts deleting a slice: 202, as its agents finish the deletion after
/// the answer (the slice shows as `deleting` until they have). `If-Match`
/// makes it conditional on the slice's revision.
#[utoipa::path(delete, path = "/api/v1/slices/{name}", tag = "slices", operation_id = "deleteSlice", security(("bearer" = [])),
    params(("name" = String, Path, description = "slice name"),
           ("If-Match" = Option<String>, Header, description = "delete only if the slice is at this ETag")),
    responses((status = 202, description = "resources released; the agents are tearing it down", body = Deleted),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    _: ApiQuery<NoQuery>,
    cond: Conditions,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    let pre = cond.precondition()?;
    let (r, _) = app.manager.call(Lane::Slow, move |s, now| s.delete(now, &name, pre, &who)).await?;
    let revision = r?;
    Ok((StatusCode::ACCEPTED, Json(Deleted { revision })).into_response())
}

impl Body for Renew {
    const WHAT: &'static str = "renew request";

    fn empty() -> Option<Self> {
        Some(Renew::default())
    }
}

/// The asked-for lease of a renew request in whole seconds, if any, and the
/// field it came in.
pub fn renew_secs(r: &Renew) -> ApiResult<(Option<u64>, &'static str)> {
    let bad = |msg: String| ManagerError::Invalid { what: "renew request", errors: vec![FieldError::new("for", msg)] };
    match (r.seconds, r.duration) {
        (Some(_), Some(_)) => Err(bad("give either for or seconds, not both".into())),
        (Some(s), None) => Ok((Some(s), "seconds")),
        (None, Some(d)) if d.0 % 1_000_000 != 0 || d.secs() == 0 => {
            Err(bad(format!("{d} is not a whole number of seconds of at least 1s")))
        }
        (None, Some(d)) => Ok((Some(d.secs()), "for")),
        (None, None) => Ok((None, "for")),
    }
}

impl Body for NewUser {
    const WHAT: &'static str = "user";
}

/// Extends a slice's lease (a change of the slice: its revision moves).
#[utoipa::path(post, path = "/api/v1/slices/{name}/renew", tag = "slices", operation_id = "renewSlice", security(("bearer" = [])),
    params(("name" = String, Path, description = "slice name"),
           ("If-Match" = Option<String>, Header, description = "renew only if the slice is at this ETag")),
    request_body(content = Renew, description = "the new lease; an empty body asks for the operator's default"),
    responses((status = 200, body = Renewed, headers(("ETag" = String, description = "the slice's new revision"))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn renew(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    _: ApiQuery<NoQuery>,
    cond: Conditions,
    Document(r): Document<Renew>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    let (secs, field) = renew_secs(&r)?;
    let pre = cond.precondition()?;
    let (r, _) = app.manager.call(Lane::Slow, move |s, now| s.renew(now, &name, secs, field, pre, &who)).await?;
    let (expires, rev) = r?;
    Ok(([etag_header(rev)], Json(Renewed { expires })).into_response())
}

/// Every user with a token (operators only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", operation_id = "listUsers", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserInfo>),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn list_users(AxState(app): AxState<App>, c: Caller, _: ApiQuery<NoQuery>) -> ApiResult<Json<Vec<UserInfo>>> {
    operator(&c, "list users")?;
    Ok(Json(app.snapshot().creds().users()))
}

/// Adds a user and issues a token (operators only): 201 with `Location`.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", operation_id = "addUser", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = UserToken, headers(("Location" = String, description = "the user"))),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn add_user(
    AxState(app): AxState<App>,
    c: Caller,
    _: ApiQuery<NoQuery>,
    Document(u): Document<NewUser>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    let role = u.role.unwrap_or_else(|| "developer".into());
    if role != "developer" && role != "operator" {
        return Err(ManagerError::Invalid {
            what: "user",
            errors: vec![FieldError::new("role", format!("{role:?} is not developer or operator"))],
        });
    }
    let name = u.name;
    let (op, n) = (role == "operator", name.clone());
    let (r, _) = app.manager.call(Lane::Slow, move |s, now| s.add_user(now, &n, op, Some(&who))).await?;
    let token = r?;
    let location = netslice_api::Route::user(&name).map(|r| r.path().to_string()).unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(UserToken { name, role, token })).into_response())
}

/// Revokes a user's tokens (operators only).
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", operation_id = "revokeUser", security(("bearer" = [])),
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = Revoked),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_user(
    AxState(app): AxState<App>,
    c: Caller,
    UserName(name): UserName,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Json<Revoked>> {
    let who = person(&c)?.clone();
    let n = name.clone();
    let (r, _) = app.manager.call(Lane::Slow, move |s, now| s.revoke_user(now, &n, &who)).await?;
    Ok(Json(Revoked { name, tokens: r? }))
}

/// Every substrate host and its agent's health.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", operation_id = "listNodes", security(("bearer" = [])),
    responses((status = 200, body = Vec<HostInfo>),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn list_nodes(AxState(app): AxState<App>, c: Caller, _: ApiQuery<NoQuery>) -> ApiResult<Json<Vec<HostInfo>>> {
    person(&c)?;
    Ok(Json(app.snapshot().hosts(SystemTime::now())))
}

/// An agent registers with the enrollment token and gets its own credential.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/register", tag = "nodes", operation_id = "registerNode", security(("bearer" = [])),
    params(("host" = String, Path, description = "host name")), request_body = RegisterRequest,
    responses((status = 200, body = Registered),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn register(
    AxState(app): AxState<App>,
    HostName(host): HostName,
    _: ApiQuery<NoQuery>,
    Enrollment(token): Enrollment,
    Document(req): Document<RegisterRequest>,
) -> ApiResult<Json<Registered>> {
    tracing::debug!("register {host} version {}", req.version);
    let (r, _) = app.manager.call(Lane::Fast, move |s, now| s.enroll(now, &host, &token)).await?;
    Ok(Json(Registered { credential: r? }))
}

/// The enrollment token of a registration, checked before its body is read
/// (a client without it gets nothing parsed).
#[derive(Debug)]
pub struct Enrollment(String);

impl FromRequestParts<App> for Enrollment {
    type Rejection = ManagerError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| ManagerError::Unauthorized("registration needs the enrollment token".into()))?;
        if !app.snapshot().creds().is_enrollment(&token) {
            return Err(ManagerError::InvalidToken("wrong enrollment token".into()));
        }
        Ok(Enrollment(token))
    }
}

/// An agent watches its desired config (long-poll).
#[utoipa::path(get, path = "/api/v1/nodes/{host}/config", tag = "nodes", operation_id = "watchNodeConfig", security(("bearer" = [])),
    params(("host" = String, Path, description = "host name"), WatchQuery),
    responses((status = 200, body = NodeConfig), (status = 204, description = "no change within the wait"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn watch_config(
    AxState(app): AxState<App>,
    c: Caller,
    HostName(host): HostName,
    ApiQuery(q): ApiQuery<WatchQuery>,
) -> ApiResult<Response> {
    node(&c, &host)?;
    let mut rx = app.manager.revisions();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait).min(MAX_WATCH);
    loop {
        rx.borrow_and_update();
        let snap = app.snapshot();
        let cfg = snap.config(&host).ok_or_else(|| ManagerError::NotFound(format!("no host named {host:?}")))?;
        if cfg.epoch != q.epoch || cfg.revision > q.after || q.wait == 0 {
            return Ok(Json(&**cfg).into_response());
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err(ManagerError::Unavailable("the manager is stopping".into())),
            Err(_) => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// An agent reports status and counters.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/status", tag = "nodes", operation_id = "reportNodeStatus", security(("bearer" = [])),
    params(("host" = String, Path, description = "host name")), request_body = NodeReport,
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 408, body = Problem, content_type = "application/problem+json"),
              (status = 413, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn status(
    AxState(app): AxState<App>,
    c: Caller,
    HostName(host): HostName,
    _: ApiQuery<NoQuery>,
    Document(report): Document<NodeReport>,
) -> ApiResult<&'static str> {
    node(&c, &host)?;
    let (r, _) = app.manager.call(Lane::Fast, move |s, now| s.report(now, &host, report)).await?;
    r.map(|_| "ok")
}

/// The audit trail: every change with its caller, oldest first (operators only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", operation_id = "getAudit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json"),
              (status = 500, body = Problem, content_type = "application/problem+json")))]
pub async fn audit(
    AxState(app): AxState<App>,
    c: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let who = person(&c)?.clone();
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    let (r, _) = app.manager.call(Lane::Slow, move |s, _| s.audit_trail(q.after, limit, &who)).await?;
    r.map(Json)
}

/// Every route and the methods it takes (what a 405's `Allow` lists).
/// `tests/api.rs` checks it against the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("/healthz", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
    ("/problems/{code}", "GET, HEAD"),
    ("/api/v1/whoami", "GET, HEAD"),
    ("/api/v1/substrate", "GET, HEAD"),
    ("/api/v1/substrate/usage", "GET, HEAD"),
    ("/api/v1/types", "GET, HEAD"),
    ("/api/v1/slices", "GET, HEAD, POST"),
    ("/api/v1/slices/{name}", "GET, HEAD, PUT, DELETE"),
    ("/api/v1/slices/{name}/renew", "POST"),
    ("/api/v1/slices/{name}/stats", "GET, HEAD"),
    ("/api/v1/slices/{name}/check", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/api/v1/measurements", "GET, HEAD, POST"),
    ("/api/v1/measurements/{id}", "GET, HEAD, DELETE"),
    ("/api/v1/measurements/{id}/capture", "GET, HEAD"),
    ("/api/v1/nodes/{host}/captures/{id}", "POST"),
    ("/api/v1/users", "GET, HEAD, POST"),
    ("/api/v1/users/{name}", "DELETE"),
    ("/api/v1/nodes", "GET, HEAD"),
    ("/api/v1/nodes/{host}/register", "POST"),
    ("/api/v1/nodes/{host}/config", "GET, HEAD"),
    ("/api/v1/nodes/{host}/status", "POST"),
    ("/api/v1/audit", "GET, HEAD"),
];

/// The methods the route serving `path` takes.
pub fn allowed(path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().find_map(|(pattern, methods)| {
        let pat: Vec<&str> = pattern.split('/').collect();
        (pat.len() == segs.len() && pat.iter().zip(&segs).all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s))
            .then_some(*methods)
    })
}

/// Answers a path no route serves, in the API's error format.
pub async fn no_route(uri: axum::http::Uri) -> ManagerError {
    ManagerError::NotFound(format!("no API path {:?} (see /openapi.json)", uri.path()))
}

/// Answers a method a path does not take, in the API's error format.
pub async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ManagerError {
    let allow = allowed(uri.path()).unwrap_or("");
    ManagerError::MethodNotAllowed {
        message: format!("{} does not take {method}; it takes {allow} (see /openapi.json)", uri.path()),
        allow: allow.to_string(),
    }
}

/// Declares the bearer scheme, the names' rules in paths, and the error
/// media type of every operation.
#[derive(Debug)]
struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A user's API token (`netslice user add`), or an agent's credential for /api/v1/nodes/{host}/..., or the enrollment token for registration",
                    ))
                    .build(),
            ),
        );
        let name_schema = |pattern: &str, max: usize| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .min_length(Some(1))
                .max_length(Some(max))
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            // Names in paths: the rules of netslice_model::names, so that
            // clients (and API fuzzers) know what a valid name is.
            let (kind_pattern, max) = if path.starts_with("/api/v1/users/") {
                ("^[A-Za-z0-9_-]+$", netslice_model::names::MAX_USER)
            } else {
                ("^[a-z]([a-z0-9-]*[a-z0-9])?$", netslice_model::spec::MAX_NAME)
            };
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if p.parameter_in == ParameterIn::Path && (p.name == "name" || p.name == "host") {
                        p.schema = Some(name_schema(kind_pattern, max).into());
                    }
                }
                let problem = |what: &str| {
                    ResponseBuilder::new()
                        .description(what)
                        .content(
                            PROBLEM_JSON,
                            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                        )
                        .build()
                        .into()
                };
                // Every route refuses query parameters it does not take.
                op.responses
                    .responses
                    .entry("400".to_string())
                    .or_insert_with(|| problem("invalid request: the fields at fault are listed"));
                if path.starts_with("/api/") {
                    // Every API call reaches the state's owner or its
                    // snapshots, which answer 503 while the manager stops;
                    // a store failure is a 500.
                    op.responses
                        .responses
                        .entry("503".to_string())
                        .or_insert_with(|| problem("unavailable: the manager is stopping"));
                    op.responses
                        .responses
                        .entry("500".to_string())
                        .or_insert_with(|| problem("internal error (the store failed); nothing was changed"));
                }
            }
        }
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "netslice manager API", description = "Slices of virtual nodes and links on a shared substrate. Errors are RFC 9457 problem documents; a slice's ETag is its revision."),
    paths(
        healthz,
        problem_info,
        whoami,
        substrate,
        usage,
        types,
        list_slices,
        get_slice,
        create_slice,
        apply_slice,
        delete_slice,
        renew,
        slice_stats,
        check_slice,
        metrics,
        create_measurement,
        list_measurements,
        get_measurement,
        delete_measurement,
        get_capture,
        upload_capture,
        list_users,
        add_user,
        revoke_user,
        list_nodes,
        register,
        watch_config,
        status,
        audit
    ),
    components(schemas(Problem, Deleted, FieldError, DryRun, Renew, Renewed, NewUser, UserToken, UserInfo, Revoked, WhoAmI, AuditEntry, ProblemTypeInfo)),
    tags(
        (name = "slices", description = "Slices: create, change, watch, renew, delete"),
        (name = "substrate", description = "The substrate, its usage and the node and link types it offers"),
        (name = "measurements", description = "Measurement jobs: points, windows, filters, results"),
        (name = "users", description = "Users and their tokens (operators)"),
        (name = "nodes", description = "Substrate hosts and their agents"),
        (name = "audit", description = "The audit trail (operators)"),
        (name = "meta", description = "Health, identity, problem types")
    ),
    modifiers(&Conventions)
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Serves the OpenAPI document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Routes of the API.
pub fn router(app: App) -> axum::Router {
    use axum::routing::{delete, get, post};
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/problems/{code}", get(problem_info))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/substrate", get(substrate))
        .route("/api/v1/substrate/usage", get(usage))
        .route("/api/v1/types", get(types))
        .route("/api/v1/slices", get(list_slices).post(create_slice))
        .route("/api/v1/slices/{name}", get(get_slice).put(apply_slice).delete(delete_slice))
        .route("/api/v1/slices/{name}/renew", post(renew))
        .route("/api/v1/slices/{name}/stats", get(slice_stats))
        .route("/api/v1/slices/{name}/check", get(check_slice))
        .route("/metrics", get(metrics))
        .route("/api/v1/measurements", get(list_measurements).post(create_measurement))
        .route("/api/v1/measurements/{id}", get(get_measurement).delete(delete_measurement))
        .route("/api/v1/measurements/{id}/capture", get(get_capture))
        .route("/api/v1/nodes/{host}/captures/{id}", post(upload_capture))
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}", delete(revoke_user))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{host}/register", post(register))
        .route("/api/v1/nodes/{host}/config", get(watch_config))
        .route("/api/v1/nodes/{host}/status", post(status))
        .route("/api/v1/audit", get(audit))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn(crate::extract::linger))
        .layer(axum::middleware::from_fn(problem_instance))
        .layer(axum::middleware::from_fn_with_state(app.clone(), access_log))
        .with_state(app)
}
