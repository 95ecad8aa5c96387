//! The REST API. Handlers authenticate the caller, parse and validate, then call
//! [`State`] under its lock; errors become [`ApiError`] bodies with their HTTP
//! status chosen in one place ([`status_of`]). The OpenAPI document is served at
//! `/openapi.json`.
//!
//! Authentication: `Authorization: Bearer <secret>`. Developers' and operators'
//! API tokens for everything under `/api/v1/slices`, `/api/v1/users`,
//! `/api/v1/substrate`; an agent's own credential for `/api/v1/nodes/{host}/...`
//! (issued at registration, which takes the enrollment token). `/healthz` and
//! `/openapi.json` are open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State as AxState};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use netslice_model::api::{
    ApiError, AuditEntry, HostInfo, NodeConfig, NodeReport, RegisterRequest, Registered, SliceInfo, SliceSummary,
    SubstrateUsage,
};
use netslice_model::types::TypesInfo;
use netslice_model::{FieldError, SliceSpec, Substrate};
use tokio::sync::watch;
use utoipa::OpenApi;

use netslice_api::types::{
    ApplyQuery, AuditQuery, Deleted, DryRun, NewUser, Renew, Renewed, Revoked, UserToken, WatchQuery, WhoAmI,
};

use crate::auth::Principal;
use crate::extract::{ApiQuery, Body, Document, HostName, SliceName, UserName};
use crate::state::{Applied, ManagerError, State};

/// Longest long-poll wait an agent may ask for.
pub const MAX_WATCH: Duration = Duration::from_secs(60);

/// Most requests one caller (a user, all their tokens together, or an agent)
/// may have in flight at once; more are answered 429 at once, so that one client cannot
/// occupy the manager for the others.
pub const MAX_IN_FLIGHT: usize = 8;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct App {
    /// The state, under its one lock.
    pub state: Arc<Mutex<State>>,
    /// Bumped after every change, to wake long-polls.
    pub changed: watch::Sender<u64>,
    /// Requests in flight per caller.
    pub in_flight: Arc<Mutex<HashMap<String, usize>>>,
}

/// Runs `f`, which may block (the state lock, SQLite, planning), without
/// holding up the other tasks of this runtime worker: on a multi-threaded
/// runtime they move to another worker meanwhile.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl App {
    /// A new shared state.
    pub fn new(state: State) -> App {
        let (changed, _) = watch::channel(state.revision());
        App { state: Arc::new(Mutex::new(state)), changed, in_flight: Arc::default() }
    }

    /// Runs `f` on the state; wakes long-polls if the revision moved.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, ManagerError>) -> Result<T, ManagerError> {
        blocking(|| {
            let mut s = self.state.lock().expect("state lock poisoned");
            let before = s.revision();
            let r = f(&mut s);
            let after = s.revision();
            if after != before {
                self.changed.send_replace(after);
            }
            r
        })
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        blocking(|| f(&self.state.lock().expect("state lock poisoned")))
    }
}

/// One of a caller's requests in flight; counted down when dropped.
#[derive(Debug)]
pub struct InFlight {
    key: String,
    table: Arc<Mutex<HashMap<String, usize>>>,
}

impl InFlight {
    fn enter(table: &Arc<Mutex<HashMap<String, usize>>>, key: String) -> Result<InFlight, ManagerError> {
        let mut t = table.lock().expect("in-flight lock");
        let n = t.entry(key.clone()).or_default();
        if *n >= MAX_IN_FLIGHT {
            return Err(ManagerError::TooManyRequests(format!(
                "this credential already has {MAX_IN_FLIGHT} requests in flight; wait for their answers"
            )));
        }
        *n += 1;
        Ok(InFlight { key, table: table.clone() })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut t = self.table.lock().expect("in-flight lock");
        if let Some(n) = t.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.key);
            }
        }
    }
}

/// The HTTP status of each error kind.
pub fn status_of(e: &ManagerError) -> (StatusCode, &'static str) {
    match e {
        ManagerError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid"),
        ManagerError::Unplaceable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unplaceable"),
        ManagerError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ManagerError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        ManagerError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        ManagerError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        ManagerError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ManagerError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
        ManagerError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        ManagerError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ManagerError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
        ManagerError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ManagerError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self);
        let (errors, reason, geni_code) = match &self {
            ManagerError::Invalid { errors, .. } => (errors.clone(), None, Some("BADARGS".to_string())),
            ManagerError::Unplaceable(p) => {
                let text = p.to_string();
                let msg = text.strip_prefix(&format!("{}: ", p.field())).unwrap_or(&text).to_string();
                (vec![FieldError::new(p.field(), msg)], Some(p.reason().to_string()), Some(p.geni_code().to_string()))
            }
            ManagerError::Forbidden(_) => (Vec::new(), None, Some("FORBIDDEN".to_string())),
            _ => (Vec::new(), None, None),
        };
        let message = match &self {
            ManagerError::Unplaceable(p) => format!("cannot place slice ({})", p.geni_code()),
            // The fields are listed in `errors`.
            ManagerError::Invalid { what, .. } => format!("invalid {what}"),
            other => other.to_string(),
        };
        if status.is_server_error() {
            tracing::error!("{message}");
        }
        let body = Json(ApiError { code: code.to_string(), message, errors, reason, geni_code });
        match status {
            StatusCode::TOO_MANY_REQUESTS => (status, [("retry-after", "1")], body).into_response(),
            StatusCode::REQUEST_TIMEOUT => (status, [("connection", "close")], body).into_response(),
            _ => (status, body).into_response(),
        }
    }
}

type ApiResult<T> = Result<T, ManagerError>;

fn bearer(parts: &Parts) -> Option<String> {
    let h = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    h.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// The authenticated caller of a request, counted in flight while it lasts.
#[derive(Debug, Clone)]
pub struct Caller(
    pub Principal,
    // Held for its `Drop`: the request stops counting when it is answered.
    #[allow(dead_code)] Arc<InFlight>,
);

impl FromRequestParts<App> for Caller {
    type Rejection = ManagerError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| ManagerError::Unauthorized("no credentials: send Authorization: Bearer <token>".into()))?;
        let who = app
            .read(|s| s.authenticate(&token))
            .ok_or_else(|| ManagerError::Unauthorized("unknown or revoked token".into()))?;
        let key = match &who {
            Principal::User { name, .. } => format!("user:{name}"),
            Principal::Node(h) => format!("node:{h}"),
        };
        let guard = InFlight::enter(&app.in_flight, key)?;
        Ok(Caller(who, Arc::new(guard)))
    }
}

fn person(c: &Caller) -> ApiResult<&Principal> {
    match &c.0 {
        p @ Principal::User { .. } => Ok(p),
        Principal::Node(_) => Err(ManagerError::Forbidden("agent credentials only serve the agent's own calls".into())),
    }
}

fn node(c: &Caller, host: &str) -> ApiResult<()> {
    match &c.0 {
        Principal::Node(h) if h == host => Ok(()),
        Principal::Node(h) => Err(ManagerError::Forbidden(format!("the credential of {h} cannot act for {host}"))),
        Principal::User { .. } => Err(ManagerError::Forbidden("only the host's agent calls this".into())),
    }
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "manager is up", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The caller's identity.
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ApiError)))]
pub async fn whoami(c: Caller) -> Json<WhoAmI> {
    Json(match c.0.clone() {
        Principal::User { name, operator } => {
            WhoAmI { name, role: if operator { "operator" } else { "developer" }.into() }
        }
        Principal::Node(h) => WhoAmI { name: h, role: "agent".into() },
    })
}

/// The substrate description.
#[utoipa::path(get, path = "/api/v1/substrate", responses((status = 200, body = Substrate), (status = 401, body = ApiError)))]
pub async fn substrate(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<Substrate>> {
    person(&c)?;
    Ok(Json(app.read(|s| s.substrate().clone())))
}

/// Every resource of the substrate, reserved and free.
#[utoipa::path(get, path = "/api/v1/substrate/usage", responses((status = 200, body = SubstrateUsage), (status = 401, body = ApiError)))]
pub async fn usage(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<SubstrateUsage>> {
    person(&c)?;
    Ok(Json(app.read(|s| s.usage())))
}

/// The node and link types this deployment offers, with their parameters.
#[utoipa::path(get, path = "/api/v1/types", responses((status = 200, body = TypesInfo), (status = 401, body = ApiError)))]
pub async fn types(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<TypesInfo>> {
    person(&c)?;
    Ok(Json(app.read(|s| s.types().info())))
}

/// The caller's slices (an operator's: every slice).
#[utoipa::path(get, path = "/api/v1/slices", responses((status = 200, body = Vec<SliceSummary>), (status = 401, body = ApiError)))]
pub async fn list_slices(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<Vec<SliceSummary>>> {
    let who = person(&c)?;
    Ok(Json(app.read(|s| s.slice_list(who))))
}

/// One slice, with its plan and counters.
#[utoipa::path(get, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = SliceInfo), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn get_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
) -> ApiResult<Json<SliceInfo>> {
    let who = person(&c)?.clone();
    app.with(|s| s.slice_info(&name, &who)).map(Json)
}

fn applied(app: &App, spec: SliceSpec, create_only: bool, who: &Principal, dry_run: bool) -> ApiResult<Response> {
    let name = spec.name.clone();
    let exists = app.read(|s| s.slice_list(&Principal::system()).iter().any(|s| s.name == name));
    let (result, plan) = app.with(|s| s.apply(spec, create_only, who, dry_run))?;
    if result == Applied::DryRun {
        let action = if exists { "update" } else { "create" }.to_string();
        return Ok((StatusCode::OK, [("x-netslice-result", "dry-run")], Json(DryRun { admitted: true, action, plan }))
            .into_response());
    }
    let info = app.with(|s| s.slice_info(&name, who))?;
    let status = if result == Applied::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, [("x-netslice-result", result.as_str())], Json(info)).into_response())
}

/// Creates a slice from a spec (JSON or YAML body).
#[utoipa::path(post, path = "/api/v1/slices", params(ApplyQuery), request_body(content = SliceSpec, description = "slice spec, JSON or YAML"),
    responses((status = 201, body = SliceInfo), (status = 200, description = "dry run", body = DryRun), (status = 400, body = ApiError),
              (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn create_slice(
    AxState(app): AxState<App>,
    c: Caller,
    ApiQuery(q): ApiQuery<ApplyQuery>,
    Document(spec): Document<SliceSpec>,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    spec.validate()?;
    applied(&app, spec, true, &who, q.dry_run)
}

/// Applies a spec: creates the slice, leaves an identical one alone, or changes a
/// running one in place, the delta admitted as a whole (header
/// `x-netslice-result`: `created`, `updated`, `unchanged` or `dry-run`).
#[utoipa::path(put, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name"), ApplyQuery),
    request_body(content = SliceSpec, description = "slice spec, JSON or YAML"),
    responses((status = 200, description = "unchanged, updated or dry run", body = SliceInfo), (status = 201, description = "created", body = SliceInfo),
              (status = 400, body = ApiError), (status = 403, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn apply_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    ApiQuery(q): ApiQuery<ApplyQuery>,
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
    applied(&app, spec, false, &who, q.dry_run)
}

/// Deletes a slice.
#[utoipa::path(delete, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = Deleted), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn delete_slice(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
) -> ApiResult<Json<Deleted>> {
    let who = person(&c)?.clone();
    app.with(|s| s.delete(&name, &who)).map(|revision| Json(Deleted { revision }))
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

/// Extends a slice's lease.
#[utoipa::path(post, path = "/api/v1/slices/{name}/renew", params(("name" = String, Path, description = "slice name")),
    request_body = Renew, responses((status = 200, body = Renewed), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn renew(
    AxState(app): AxState<App>,
    c: Caller,
    SliceName(name): SliceName,
    Document(r): Document<Renew>,
) -> ApiResult<Json<Renewed>> {
    let who = person(&c)?.clone();
    let (secs, field) = renew_secs(&r)?;
    app.with(|s| s.renew(&name, secs, field, &who)).map(|expires| Json(Renewed { expires }))
}

/// Adds a user and issues a token (operators only).
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    responses((status = 201, body = UserToken), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn add_user(
    AxState(app): AxState<App>,
    c: Caller,
    Document(u): Document<NewUser>,
) -> ApiResult<(StatusCode, Json<UserToken>)> {
    let who = person(&c)?.clone();
    let role = u.role.unwrap_or_else(|| "developer".into());
    if role != "developer" && role != "operator" {
        return Err(ManagerError::Invalid {
            what: "user",
            errors: vec![FieldError::new("role", format!("{role:?} is not developer or operator"))],
        });
    }
    let token = app.with(|s| s.add_user(&u.name, role == "operator", Some(&who)))?;
    Ok((StatusCode::CREATED, Json(UserToken { name: u.name, role, token })))
}

/// Revokes a user's tokens (operators only).
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = Revoked), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn revoke_user(AxState(app): AxState<App>, c: Caller, UserName(name): UserName) -> ApiResult<Json<Revoked>> {
    let who = person(&c)?.clone();
    app.with(|s| s.revoke_user(&name, &who)).map(|tokens| Json(Revoked { name, tokens }))
}

/// Every substrate host and its agent's health.
#[utoipa::path(get, path = "/api/v1/nodes", responses((status = 200, body = Vec<HostInfo>), (status = 401, body = ApiError)))]
pub async fn list_nodes(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<Vec<HostInfo>>> {
    person(&c)?;
    Ok(Json(app.read(|s| s.hosts())))
}

/// An agent registers with the enrollment token and gets its own credential.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/register", params(("host" = String, Path, description = "host name")),
    request_body = RegisterRequest, responses((status = 200, body = Registered), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn register(
    AxState(app): AxState<App>,
    HostName(host): HostName,
    Enrollment(token): Enrollment,
    Document(req): Document<RegisterRequest>,
) -> ApiResult<Json<Registered>> {
    tracing::debug!("register {host} version {}", req.version);
    app.with(|s| s.enroll(&host, &token)).map(|credential| Json(Registered { credential }))
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
        if !app.read(|s| s.is_enrollment(&token)) {
            return Err(ManagerError::Unauthorized("wrong enrollment token".into()));
        }
        Ok(Enrollment(token))
    }
}

/// An agent watches its desired config (long-poll).
#[utoipa::path(get, path = "/api/v1/nodes/{host}/config", params(("host" = String, Path, description = "host name"), WatchQuery),
    responses((status = 200, body = NodeConfig), (status = 204, description = "no change within the wait"), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn watch_config(
    AxState(app): AxState<App>,
    c: Caller,
    HostName(host): HostName,
    ApiQuery(q): ApiQuery<WatchQuery>,
) -> ApiResult<Response> {
    node(&c, &host)?;
    let mut rx = app.changed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait).min(MAX_WATCH);
    loop {
        let cfg = app.read(|s| {
            let cfg = s.config(&host).ok_or_else(|| ManagerError::NotFound(format!("no host named {host:?}")))?;
            Ok::<_, ManagerError>((cfg.epoch != q.epoch || cfg.revision > q.after || q.wait == 0).then(|| cfg.clone()))
        })?;
        if let Some(cfg) = cfg {
            return Ok(Json(cfg).into_response());
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// An agent reports status and counters.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/status", params(("host" = String, Path, description = "host name")),
    request_body = NodeReport, responses((status = 200, body = String), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn status(
    AxState(app): AxState<App>,
    c: Caller,
    HostName(host): HostName,
    Document(report): Document<NodeReport>,
) -> ApiResult<&'static str> {
    node(&c, &host)?;
    app.with(|s| s.report(&host, report)).map(|_| "ok")
}

/// The audit trail: every change with its caller, oldest first (operators only).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = ApiError)))]
pub async fn audit(
    AxState(app): AxState<App>,
    c: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let who = person(&c)?.clone();
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    app.read(|s| s.audit_trail(q.after, limit, &who)).map(Json)
}

/// Answers a path no route serves, in the API's error format.
pub async fn no_route(uri: axum::http::Uri) -> ManagerError {
    ManagerError::NotFound(format!("no API path {:?} (see /openapi.json)", uri.path()))
}

/// Answers a method a path does not take, in the API's error format.
pub async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ManagerError {
    ManagerError::MethodNotAllowed(format!("{} does not take {method} (see /openapi.json)", uri.path()))
}

/// Adds the errors any operation may answer to every operation of the
/// document: a bad request, a missing or unknown token, a body too large or
/// too slow, too many requests in flight, a name that does not exist.
#[derive(Debug)]
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let common = [
            ("400", "invalid request: the fields at fault are listed"),
            ("401", "no credentials, or unknown or revoked token"),
            ("403", "the credential may not do this"),
            ("404", "no such object or path"),
            ("405", "the path does not take this method"),
            ("408", "the request body did not arrive in time"),
            ("409", "conflicts with the current state"),
            ("413", "the request body is too large"),
            ("422", "cannot be placed on this substrate"),
            ("429", "too many requests of this credential in flight"),
        ];
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
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
                for (code, desc) in common {
                    op.responses.responses.entry(code.to_string()).or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(desc)
                            .content(
                                "application/json",
                                ContentBuilder::new().schema(Some(Ref::from_schema_name("ApiError"))).build(),
                            )
                            .build()
                            .into()
                    });
                }
            }
        }
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "netslice manager API", description = "Slices of virtual nodes and links on a shared substrate."),
    paths(
        healthz,
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
        add_user,
        revoke_user,
        list_nodes,
        register,
        watch_config,
        status,
        audit
    ),
    components(schemas(ApiError, Deleted, FieldError, DryRun, Renew, Renewed, NewUser, UserToken, Revoked, WhoAmI, AuditEntry)),
    modifiers(&CommonErrors)
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
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/substrate", get(substrate))
        .route("/api/v1/substrate/usage", get(usage))
        .route("/api/v1/types", get(types))
        .route("/api/v1/slices", get(list_slices).post(create_slice))
        .route("/api/v1/slices/{name}", get(get_slice).put(apply_slice).delete(delete_slice))
        .route("/api/v1/slices/{name}/renew", post(renew))
        .route("/api/v1/users", post(add_user))
        .route("/api/v1/users/{name}", delete(revoke_user))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{host}/register", post(register))
        .route("/api/v1/nodes/{host}/config", get(watch_config))
        .route("/api/v1/nodes/{host}/status", post(status))
        .route("/api/v1/audit", get(audit))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn(crate::extract::linger))
        .with_state(app)
}
