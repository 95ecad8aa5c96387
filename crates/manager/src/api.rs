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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use netslice_model::api::{
    ApiError, HostInfo, NodeConfig, NodeReport, RegisterRequest, Registered, SliceInfo, SlicePlan, SliceSummary,
    SubstrateUsage,
};
use netslice_model::types::TypesInfo;
use netslice_model::{FieldError, SliceSpec, Substrate, parse_document};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::Principal;
use crate::state::{Applied, ManagerError, State};

/// Longest long-poll wait an agent may ask for.
pub const MAX_WATCH: Duration = Duration::from_secs(60);

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct App {
    /// The state, under its one lock.
    pub state: Arc<Mutex<State>>,
    /// Bumped after every change, to wake long-polls.
    pub changed: watch::Sender<u64>,
}

impl App {
    /// Runs `f` on the state; wakes long-polls if the revision moved.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, ManagerError>) -> Result<T, ManagerError> {
        let mut s = self.state.lock().expect("state lock poisoned");
        let before = s.revision();
        let r = f(&mut s);
        let after = s.revision();
        if after != before {
            self.changed.send_replace(after);
        }
        r
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
        ManagerError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
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
        (status, Json(ApiError { code: code.to_string(), message, errors, reason, geni_code })).into_response()
    }
}

type ApiResult<T> = Result<T, ManagerError>;

fn bearer(parts: &Parts) -> Option<String> {
    let h = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    h.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<App> for Caller {
    type Rejection = ManagerError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| ManagerError::Unauthorized("no credentials: send Authorization: Bearer <token>".into()))?;
        let who = app.state.lock().expect("lock").authenticate(&token);
        who.map(Caller).ok_or_else(|| ManagerError::Unauthorized("unknown or revoked token".into()))
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

fn parse_spec(body: &str) -> ApiResult<SliceSpec> {
    let spec: SliceSpec = parse_document(body)?;
    spec.validate()?;
    Ok(spec)
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "manager is up", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Who the caller is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// User name (or host, for agents).
    pub name: String,
    /// `operator`, `developer` or `agent`.
    pub role: String,
}

/// The caller's identity.
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ApiError)))]
pub async fn whoami(c: Caller) -> Json<WhoAmI> {
    Json(match c.0 {
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
    Ok(Json(app.state.lock().expect("lock").substrate().clone()))
}

/// Every resource of the substrate, reserved and free.
#[utoipa::path(get, path = "/api/v1/substrate/usage", responses((status = 200, body = SubstrateUsage), (status = 401, body = ApiError)))]
pub async fn usage(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<SubstrateUsage>> {
    person(&c)?;
    Ok(Json(app.state.lock().expect("lock").usage()))
}

/// The node and link types this deployment offers, with their parameters.
#[utoipa::path(get, path = "/api/v1/types", responses((status = 200, body = TypesInfo), (status = 401, body = ApiError)))]
pub async fn types(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<TypesInfo>> {
    person(&c)?;
    Ok(Json(app.state.lock().expect("lock").types().info()))
}

/// The caller's slices (an operator's: every slice).
#[utoipa::path(get, path = "/api/v1/slices", responses((status = 200, body = Vec<SliceSummary>), (status = 401, body = ApiError)))]
pub async fn list_slices(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<Vec<SliceSummary>>> {
    let who = person(&c)?;
    Ok(Json(app.state.lock().expect("lock").slice_list(who)))
}

/// One slice, with its plan and counters.
#[utoipa::path(get, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = SliceInfo), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn get_slice(AxState(app): AxState<App>, c: Caller, Path(name): Path<String>) -> ApiResult<Json<SliceInfo>> {
    let who = person(&c)?.clone();
    app.with(|s| s.slice_info(&name, &who)).map(Json)
}

/// Options of an apply.
#[derive(Debug, Default, Deserialize, IntoParams)]
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

fn applied(app: &App, spec: SliceSpec, create_only: bool, who: &Principal, dry_run: bool) -> ApiResult<Response> {
    let name = spec.name.clone();
    let exists = app.state.lock().expect("lock").slice_list(&Principal::system()).iter().any(|s| s.name == name);
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
    Query(q): Query<ApplyQuery>,
    body: String,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    let spec = parse_spec(&body)?;
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
    Path(name): Path<String>,
    Query(q): Query<ApplyQuery>,
    body: String,
) -> ApiResult<Response> {
    let who = person(&c)?.clone();
    let spec = parse_spec(&body)?;
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

/// Answer to a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// Revision at which the slice is gone from every desired config; it shows as
    /// `deleting` until the agents confirm.
    pub revision: u64,
}

/// Deletes a slice.
#[utoipa::path(delete, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = Deleted), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn delete_slice(AxState(app): AxState<App>, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Deleted>> {
    let who = person(&c)?.clone();
    app.with(|s| s.delete(&name, &who)).map(|revision| Json(Deleted { revision }))
}

/// A lease extension.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// Seconds from now (default: the operator's default lease).
    #[serde(default)]
    pub seconds: Option<u64>,
}

/// The new lease end.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Renewed {
    /// Lease end, seconds since the Unix epoch.
    pub expires: u64,
}

/// Extends a slice's lease.
#[utoipa::path(post, path = "/api/v1/slices/{name}/renew", params(("name" = String, Path, description = "slice name")),
    request_body = Renew, responses((status = 200, body = Renewed), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn renew(
    AxState(app): AxState<App>,
    c: Caller,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<Json<Renewed>> {
    let who = person(&c)?.clone();
    let r: Renew = if body.trim().is_empty() { Renew::default() } else { parse_document(&body)? };
    app.with(|s| s.renew(&name, r.seconds, &who)).map(|expires| Json(Renewed { expires }))
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

/// Adds a user and issues a token (operators only).
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    responses((status = 201, body = UserToken), (status = 400, body = ApiError), (status = 403, body = ApiError)))]
pub async fn add_user(AxState(app): AxState<App>, c: Caller, body: String) -> ApiResult<(StatusCode, Json<UserToken>)> {
    let who = person(&c)?.clone();
    let u: NewUser = parse_document(&body)?;
    let role = u.role.unwrap_or_else(|| "developer".into());
    if role != "developer" && role != "operator" {
        return Err(ManagerError::Invalid {
            what: "request",
            errors: vec![FieldError::new("role", format!("{role:?} is not developer or operator"))],
        });
    }
    let token = app.with(|s| s.add_user(&u.name, role == "operator", Some(&who)))?;
    Ok((StatusCode::CREATED, Json(UserToken { name: u.name, role, token })))
}

/// Answer to a revocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    /// User name.
    pub name: String,
    /// Tokens revoked.
    pub tokens: usize,
}

/// Revokes a user's tokens (operators only).
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = Revoked), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn revoke_user(AxState(app): AxState<App>, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Revoked>> {
    let who = person(&c)?.clone();
    app.with(|s| s.revoke_user(&name, &who)).map(|tokens| Json(Revoked { name, tokens }))
}

/// Every substrate host and its agent's health.
#[utoipa::path(get, path = "/api/v1/nodes", responses((status = 200, body = Vec<HostInfo>), (status = 401, body = ApiError)))]
pub async fn list_nodes(AxState(app): AxState<App>, c: Caller) -> ApiResult<Json<Vec<HostInfo>>> {
    person(&c)?;
    Ok(Json(app.state.lock().expect("lock").hosts()))
}

/// An agent registers with the enrollment token and gets its own credential.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/register", params(("host" = String, Path, description = "host name")),
    request_body = RegisterRequest, responses((status = 200, body = Registered), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn register(
    AxState(app): AxState<App>,
    Path(host): Path<String>,
    headers: axum::http::HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Json<Registered>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| ManagerError::Unauthorized("registration needs the enrollment token".into()))?
        .trim()
        .to_string();
    tracing::debug!("register {host} version {}", req.version);
    app.with(|s| s.enroll(&host, &token)).map(|credential| Json(Registered { credential }))
}

/// Long-poll parameters.
#[derive(Debug, Deserialize, IntoParams)]
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

/// An agent watches its desired config (long-poll).
#[utoipa::path(get, path = "/api/v1/nodes/{host}/config", params(("host" = String, Path, description = "host name"), WatchQuery),
    responses((status = 200, body = NodeConfig), (status = 204, description = "no change within the wait"), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn watch_config(
    AxState(app): AxState<App>,
    c: Caller,
    Path(host): Path<String>,
    Query(q): Query<WatchQuery>,
) -> ApiResult<Response> {
    node(&c, &host)?;
    let mut rx = app.changed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait).min(MAX_WATCH);
    loop {
        let cfg = {
            let s = app.state.lock().expect("lock");
            let cfg = s.config(&host).ok_or_else(|| ManagerError::NotFound(format!("no host named {host:?}")))?;
            (cfg.epoch != q.epoch || cfg.revision > q.after || q.wait == 0).then(|| cfg.clone())
        };
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
    Path(host): Path<String>,
    Json(report): Json<NodeReport>,
) -> ApiResult<&'static str> {
    node(&c, &host)?;
    app.with(|s| s.report(&host, report)).map(|_| "ok")
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
        status
    ),
    components(schemas(ApiError, Deleted, FieldError, DryRun, Renew, Renewed, NewUser, UserToken, Revoked, WhoAmI))
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
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(app)
}
