//! Who is calling: the state every handler shares ([`App`]), the
//! authenticated caller of a request ([`Caller`], counted in flight so that
//! one client cannot occupy the manager), the access log, and the checks
//! handlers make of a caller (a person, an operator, a host's own agent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, State as AxState};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use netslice_api::types::Problem;

use crate::auth::Principal;
use crate::monitor::Metrics;
use crate::owner::Manager;
use crate::state::{ManagerError, Snapshot};

/// Most requests one caller (a user, all their tokens together, or an agent)
/// may have in flight at once; more are answered 429 at once, so that one client cannot
/// occupy the manager for the others.
pub const MAX_IN_FLIGHT: usize = 8;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct App {
    /// The state's owner.
    pub manager: Manager,
    /// Requests in flight per caller.
    pub in_flight: Arc<Mutex<HashMap<String, usize>>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

impl App {
    /// The handlers' view of a started owner.
    pub fn new(manager: Manager) -> App {
        let metrics = Arc::new(Metrics::new(manager.clone()));
        App { manager, in_flight: Arc::default(), metrics }
    }

    /// The state as last published.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.manager.snapshot()
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

/// The address a connection came from (inserted by the server per
/// connection; absent in in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Who made a request, filled in by [`Caller`] once the token checks out,
/// read by [`access_log`] when the answer is ready.
#[derive(Debug, Clone, Default)]
struct AccessSlot(Arc<Mutex<Option<String>>>);

/// One line per request, under the `netslice::access` target: method, path,
/// status, the problem's code on a refusal, time to answer, the caller
/// (`user:alice`, `node:h1`, or `-` before authentication) and the peer
/// address. Agents' routine successful requests (their reports and config
/// long-polls, several a second on a large substrate) log at debug; all
/// else at info. Query strings and bodies are never logged: a token
/// could be in neither, but a name in them is the caller's business.
pub async fn access_log(
    AxState(app): AxState<App>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let start = std::time::Instant::now();
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
    let slot = AccessSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req.extensions().get::<Peer>().map(|p| p.0.to_string()).unwrap_or_else(|| "-".into());
    let resp = next.run(req).await;
    let caller = slot.0.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| "-".into());
    let status = resp.status().as_u16();
    let problem = resp.extensions().get::<Problem>().map(|p| p.code.clone()).unwrap_or_else(|| "-".into());
    let elapsed = start.elapsed().as_secs_f64();
    app.metrics.request(route.as_deref().unwrap_or("unmatched"), method.as_str(), status, elapsed);
    let ms = (elapsed * 1e4).round() / 10.0;
    if caller.starts_with("node:") && status < 400 {
        tracing::debug!(target: "netslice::access", %method, %path, status, %problem, ms, %caller, %peer, "request");
    } else {
        tracing::info!(target: "netslice::access", %method, %path, status, %problem, ms, %caller, %peer, "request");
    }
    resp
}

/// What a handler answers: its value, or the error the API's format shows.
pub(crate) type ApiResult<T> = Result<T, ManagerError>;

/// The bearer token of a request, if it sends one.
pub(crate) fn bearer(parts: &Parts) -> Option<String> {
    let h = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
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
            .snapshot()
            .authenticate(&token)
            .ok_or_else(|| ManagerError::InvalidToken("unknown or revoked token".into()))?;
        let key = match &who {
            Principal::User { name, .. } => format!("user:{name}"),
            Principal::Node(h) => format!("node:{h}"),
        };
        if let Some(slot) = parts.extensions.get::<AccessSlot>() {
            *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
        }
        let guard = InFlight::enter(&app.in_flight, key)?;
        Ok(Caller(who, Arc::new(guard)))
    }
}

/// The caller as a person (user or operator); agents' credentials are refused.
pub(crate) fn person(c: &Caller) -> ApiResult<&Principal> {
    match &c.0 {
        p @ Principal::User { .. } => Ok(p),
        Principal::Node(_) => Err(ManagerError::Forbidden("agent credentials only serve the agent's own calls".into())),
    }
}

/// The caller as the agent of `host`; anyone else is refused.
pub(crate) fn node(c: &Caller, host: &str) -> ApiResult<()> {
    match &c.0 {
        Principal::Node(h) if h == host => Ok(()),
        Principal::Node(h) => Err(ManagerError::Forbidden(format!("the credential of {h} cannot act for {host}"))),
        Principal::User { .. } => Err(ManagerError::Forbidden("only the host's agent calls this".into())),
    }
}

/// The query of a route that takes none: any parameter is refused (a
/// typo must not pass silently).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// Refuses anyone but an operator, saying who may `what`.
pub(crate) fn operator(c: &Caller, what: &str) -> ApiResult<()> {
    if c.0.is_operator() { Ok(()) } else { Err(ManagerError::Forbidden(format!("only operators {what}"))) }
}
