//! The REST API. Handlers parse and validate, then call [`State`] under its lock;
//! errors become [`ApiError`] bodies with their HTTP status chosen in one place
//! ([`status_of`]). The OpenAPI document is served at `/openapi.json`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netslice_model::api::{ApiError, HostInfo, NodeConfig, NodeReport, RegisterRequest, SliceInfo, SliceSummary};
use netslice_model::types::TypesInfo;
use netslice_model::{FieldError, SliceSpec, Substrate, parse_document};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::state::{ManagerError, State};

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
    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T, ManagerError>) -> Result<T, ManagerError> {
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
        ManagerError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
    }
}

impl IntoResponse for ManagerError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self);
        let errors = match &self {
            ManagerError::Invalid { errors, .. } => errors.clone(),
            ManagerError::Unplaceable(p) => {
                let text = p.to_string();
                let msg = text.strip_prefix(&format!("{}: ", p.field())).unwrap_or(&text).to_string();
                vec![FieldError::new(p.field(), msg)]
            }
            _ => Vec::new(),
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
        (status, Json(ApiError { code: code.to_string(), message, errors })).into_response()
    }
}

type ApiResult<T> = Result<T, ManagerError>;

fn parse_spec(body: &str) -> ApiResult<SliceSpec> {
    let spec: SliceSpec = parse_document(body)?;
    spec.validate()?;
    Ok(spec)
}

/// The node and link types this deployment offers, with their parameters.
#[utoipa::path(get, path = "/api/v1/types", responses((status = 200, body = TypesInfo)))]
pub async fn types(AxState(app): AxState<App>) -> Json<TypesInfo> {
    Json(app.state.lock().expect("lock").types().info())
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "manager is up", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The substrate.
#[utoipa::path(get, path = "/api/v1/substrate", responses((status = 200, body = Substrate)))]
pub async fn substrate(AxState(app): AxState<App>) -> Json<Substrate> {
    Json(app.state.lock().expect("lock").substrate().clone())
}

/// Every slice.
#[utoipa::path(get, path = "/api/v1/slices", responses((status = 200, body = Vec<SliceSummary>)))]
pub async fn list_slices(AxState(app): AxState<App>) -> Json<Vec<SliceSummary>> {
    Json(app.state.lock().expect("lock").slice_list())
}

/// One slice, with its plan and counters.
#[utoipa::path(get, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = SliceInfo), (status = 404, body = ApiError)))]
pub async fn get_slice(AxState(app): AxState<App>, Path(name): Path<String>) -> ApiResult<Json<SliceInfo>> {
    app.with(|s| s.slice_info(&name)).map(Json)
}

/// Creates a slice from a spec (JSON or YAML body).
#[utoipa::path(post, path = "/api/v1/slices", request_body(content = SliceSpec, description = "slice spec, JSON or YAML"),
    responses((status = 201, body = SliceInfo), (status = 400, body = ApiError), (status = 409, body = ApiError),
              (status = 422, body = ApiError)))]
pub async fn create_slice(AxState(app): AxState<App>, body: String) -> ApiResult<(StatusCode, Json<SliceInfo>)> {
    let spec = parse_spec(&body)?;
    let name = spec.name.clone();
    app.with(|s| {
        s.apply(spec, true)?;
        s.slice_info(&name)
    })
    .map(|i| (StatusCode::CREATED, Json(i)))
}

/// Applies a spec: creates the slice, leaves an identical one alone, or changes
/// the isolation parameters of a running one (header `x-netslice-result`:
/// `created`, `updated` or `unchanged`).
#[utoipa::path(put, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    request_body(content = SliceSpec, description = "slice spec, JSON or YAML"),
    responses((status = 200, description = "unchanged or updated", body = SliceInfo), (status = 201, description = "created", body = SliceInfo),
              (status = 400, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
pub async fn apply_slice(
    AxState(app): AxState<App>,
    Path(name): Path<String>,
    body: String,
) -> ApiResult<(StatusCode, [(&'static str, &'static str); 1], Json<SliceInfo>)> {
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
    app.with(|s| {
        let applied = s.apply(spec, false)?;
        Ok((applied, s.slice_info(&name)?))
    })
    .map(|(applied, i)| {
        let status = if applied == crate::state::Applied::Created { StatusCode::CREATED } else { StatusCode::OK };
        (status, [("x-netslice-result", applied.as_str())], Json(i))
    })
}

/// Answer to a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// Revision at which the slice is gone; hosts that applied it have torn it down.
    pub revision: u64,
}

/// Deletes a slice.
#[utoipa::path(delete, path = "/api/v1/slices/{name}", params(("name" = String, Path, description = "slice name")),
    responses((status = 200, body = Deleted), (status = 404, body = ApiError)))]
pub async fn delete_slice(AxState(app): AxState<App>, Path(name): Path<String>) -> ApiResult<Json<Deleted>> {
    app.with(|s| s.delete(&name)).map(|revision| Json(Deleted { revision }))
}

/// Every substrate host and its agent's health.
#[utoipa::path(get, path = "/api/v1/nodes", responses((status = 200, body = Vec<HostInfo>)))]
pub async fn list_nodes(AxState(app): AxState<App>) -> Json<Vec<HostInfo>> {
    Json(app.state.lock().expect("lock").hosts())
}

/// An agent registers.
#[utoipa::path(post, path = "/api/v1/nodes/{host}/register", params(("host" = String, Path, description = "host name")),
    request_body = RegisterRequest, responses((status = 200, body = String), (status = 404, body = ApiError)))]
pub async fn register(
    AxState(app): AxState<App>,
    Path(host): Path<String>,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<&'static str> {
    tracing::debug!("register {host} version {}", req.version);
    app.with(|s| s.register(&host)).map(|_| "registered")
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
    responses((status = 200, body = NodeConfig), (status = 204, description = "no change within the wait"), (status = 404, body = ApiError)))]
pub async fn watch_config(
    AxState(app): AxState<App>,
    Path(host): Path<String>,
    Query(q): Query<WatchQuery>,
) -> ApiResult<Response> {
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
    request_body = NodeReport, responses((status = 200, body = String), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
pub async fn status(
    AxState(app): AxState<App>,
    Path(host): Path<String>,
    Json(report): Json<NodeReport>,
) -> ApiResult<&'static str> {
    app.with(|s| s.report(&host, report)).map(|_| "ok")
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "netslice manager API", description = "Slices of virtual nodes and links on a shared substrate."),
    paths(
        healthz,
        substrate,
        list_slices,
        get_slice,
        create_slice,
        apply_slice,
        delete_slice,
        list_nodes,
        register,
        watch_config,
        status
    ),
    components(schemas(ApiError, Deleted, FieldError))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Serves the OpenAPI document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Routes of the API.
pub fn router(app: App) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/substrate", get(substrate))
        .route("/api/v1/types", get(types))
        .route("/api/v1/slices", get(list_slices).post(create_slice))
        .route("/api/v1/slices/{name}", get(get_slice).put(apply_slice).delete(delete_slice))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{host}/register", post(register))
        .route("/api/v1/nodes/{host}/config", get(watch_config))
        .route("/api/v1/nodes/{host}/status", post(status))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(app)
}
