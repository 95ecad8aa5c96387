//! One typed client of the manager's API, for the CLI, the agents and the
//! tests (and later the portal and the federation endpoint). It owns the
//! paths ([`Route`]), sends the caller's bearer token, retries a 429 after
//! its `Retry-After`, and turns every refusal into an [`Error`] that names
//! what the manager said.

use std::path::Path;
use std::time::Duration;

use netslice_model::api::{
    AuditEntry, HostInfo, NodeConfig, NodeReport, RegisterRequest, Registered, SliceInfo, SliceSummary, SubstrateUsage,
};
use netslice_model::types::TypesInfo;
use netslice_model::{Format, Substrate};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http;
use crate::paths::{BadName, Route};
use crate::types::{
    ApplyQuery, AuditQuery, CaptureStored, CheckQuery, Deleted, DryRun, MeasureInfo, MeasureQuery, MeasureRequest,
    NewUser, Problem, Renew, Renewed, Revoked, SliceCheck, SliceQuery, SliceStats, UserInfo, UserToken, WatchQuery,
    WhoAmI,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manager's URL is not HTTPS.
    #[error("the manager speaks HTTPS only: use https:// in {0}")]
    NotHttps(String),
    /// The HTTPS client could not be built (a bad certificate file).
    #[error(transparent)]
    Http(#[from] http::ClientError),
    /// A name was refused before any request was made.
    #[error(transparent)]
    Name(#[from] BadName),
    /// No answer from the manager.
    #[error("cannot reach the manager at {base}: {cause} (is it running? see `netslice testbed status`)")]
    Unreachable {
        /// The manager's URL.
        base: String,
        /// Why, with every cause in the chain (TLS problems hide there).
        cause: String,
    },
    /// The manager refused, saying why in its error format.
    #[error("{error}{hint}")]
    Api {
        /// HTTP status.
        status: u16,
        /// What the manager said.
        error: Box<Problem>,
        /// What the caller can do (`netslice login`, ...), or "".
        hint: &'static str,
    },
    /// The manager refused in some other format.
    #[error("manager answered {status}: {}{hint}", if body.is_empty() { "no explanation" } else { body.as_str() })]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: String,
        /// What the caller can do, or "".
        hint: &'static str,
    },
    /// The manager's answer could not be read.
    #[error("unreadable answer from the manager ({status}): {source}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// Why.
        source: serde_json::Error,
    },
}

impl Error {
    /// The HTTP status the manager answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Status { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why waiting for a slice ended without it being ready.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The manager could not be asked.
    #[error(transparent)]
    Api(#[from] Error),
    /// An agent reported an error for the slice.
    #[error("the slice failed: {0}")]
    Failed(String),
    /// The slice is being deleted.
    #[error("the slice is being deleted")]
    Deleted,
    /// Time ran out.
    #[error("not ready after {timeout:?}: {}{}", state.as_str(), message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Timeout {
        /// How long was waited.
        timeout: Duration,
        /// The state it had.
        state: netslice_model::api::SliceState,
        /// Why, as the manager said.
        message: Option<String>,
    },
}

/// What applying a spec did.
#[derive(Debug)]
pub enum Applied {
    /// The slice as it is now, and `created`, `updated` or `unchanged`.
    Done {
        /// What happened.
        result: String,
        /// The slice.
        info: Box<SliceInfo>,
    },
    /// A dry run's plan.
    DryRun(DryRun),
}

/// A client of one manager.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// How long a request may take at most (long-polls set their own).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// A client for `base` (e.g. `https://127.0.0.1:7300`) trusting the
    /// certificates in `ca` (else the platform's roots) and sending `token`.
    pub fn new(base: &str, ca: Option<&Path>, token: Option<String>) -> Result<Client, Error> {
        Client::with_connect_timeout(base, ca, token, Duration::from_secs(3))
    }

    /// The same with another connect timeout.
    pub fn with_connect_timeout(
        base: &str,
        ca: Option<&Path>,
        token: Option<String>,
        connect: Duration,
    ) -> Result<Client, Error> {
        if base.starts_with("http://") {
            return Err(Error::NotHttps(base.to_string()));
        }
        let http = http::client(ca, connect)?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), http, token })
    }

    /// The same manager with another token (an agent's credential after its
    /// registration).
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client { token, ..self.clone() }
    }

    /// The manager's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether a token is sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn req(&self, method: reqwest::Method, route: &Route) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base, route.path());
        let r = self.http.request(method, url).timeout(REQUEST_TIMEOUT);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> Error {
        // reqwest hides the TLS cause (e.g. an untrusted certificate) in the source chain.
        let mut cause = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            cause = format!("{cause}: {s}");
            src = s.source();
        }
        Error::Unreachable { base: self.base.clone(), cause }
    }

    /// Sends a request; a 429 (this user has too many requests in flight at
    /// the manager) is retried after its `Retry-After`, for up to 30 s, as
    /// 50 commands started at once by one user should all get through.
    async fn send(&self, mut rb: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut attempt = 0u32;
        loop {
            let again = rb.try_clone();
            let resp = rb.send().await.map_err(|e| self.unreachable(e))?;
            let Some(next) = again.filter(|_| resp.status() == StatusCode::TOO_MANY_REQUESTS) else {
                return Ok(resp);
            };
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 10);
            // Spread the retries of clients refused together.
            let jitter = u64::from(std::process::id().wrapping_mul(2_654_435_761).wrapping_add(attempt)) % 500;
            let pause = Duration::from_millis(wait * 1000 / 2 + jitter);
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(resp);
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
            rb = next;
        }
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<(StatusCode, T), Error> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            let v =
                serde_json::from_slice(&bytes).map_err(|source| Error::Decode { status: status.as_u16(), source })?;
            return Ok((status, v));
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED if self.token.is_none() => {
                " (no token: use `netslice login`, --token-file or NETSLICE_TOKEN)"
            }
            StatusCode::UNAUTHORIZED => " (token unknown or revoked: ask an operator for a new one)",
            _ => "",
        };
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(error) => Err(Error::Api { status: status.as_u16(), error: Box::new(error), hint }),
            Err(_) => {
                Err(Error::Status { status: status.as_u16(), body: String::from_utf8_lossy(&bytes).into_owned(), hint })
            }
        }
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, route: &Route) -> Result<T, Error> {
        self.get_query(route, &()).await
    }

    /// GET a JSON document with query parameters (encoded).
    pub async fn get_query<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &Q,
    ) -> Result<T, Error> {
        let resp = self.send(self.req(reqwest::Method::GET, route).query(query)).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// POST a JSON body.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(&self, route: &Route, body: &B) -> Result<T, Error> {
        let resp = self.send(self.req(reqwest::Method::POST, route).json(body)).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// PUT a document (its media type from its format); returns the status,
    /// the `x-netslice-result` header and the decoded answer.
    pub async fn put_doc<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &Q,
        body: String,
    ) -> Result<(StatusCode, String, T), Error> {
        self.put_doc_if(route, query, body, None).await
    }

    /// The same, only if the object is at revision `if_match` (else the
    /// manager answers 412 and changes nothing).
    pub async fn put_doc_if<Q: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &Q,
        body: String,
        if_match: Option<u64>,
    ) -> Result<(StatusCode, String, T), Error> {
        // JSON only if it is JSON: a YAML flow document also starts with `{`.
        let json = serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok();
        let media = if json { Format::Json } else { Format::Yaml }.media_type();
        let mut rb = self.req(reqwest::Method::PUT, route).query(query).header("content-type", media).body(body);
        if let Some(rev) = if_match {
            rb = rb.header("if-match", crate::etag::etag(rev));
        }
        let resp = self.send(rb).await?;
        let result =
            resp.headers().get("x-netslice-result").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let (status, v) = self.decode(resp).await?;
        Ok((status, result, v))
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, route: &Route) -> Result<T, Error> {
        let resp = self.send(self.req(reqwest::Method::DELETE, route)).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// DELETE a resource that answers 204 No Content.
    pub async fn delete_empty(&self, route: &Route) -> Result<(), Error> {
        let resp = self.send(self.req(reqwest::Method::DELETE, route)).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.decode::<serde_json::Value>(resp).await.err().unwrap_or(Error::Status {
            status: 0,
            body: String::new(),
            hint: "",
        }))
    }

    /// Whether `/healthz` answers.
    pub async fn healthy(&self) -> bool {
        matches!(self.req(reqwest::Method::GET, &Route::healthz()).send().await, Ok(r) if r.status().is_success())
    }

    /// Who the token belongs to.
    pub async fn whoami(&self) -> Result<WhoAmI, Error> {
        self.get(&Route::whoami()).await
    }

    /// The substrate description.
    pub async fn substrate(&self) -> Result<Substrate, Error> {
        self.get(&Route::substrate()).await
    }

    /// Every resource of the substrate, reserved and free.
    pub async fn usage(&self) -> Result<SubstrateUsage, Error> {
        self.get(&Route::usage()).await
    }

    /// The node and link types offered.
    pub async fn types(&self) -> Result<TypesInfo, Error> {
        self.get(&Route::types()).await
    }

    /// The caller's slices (an operator's: all).
    pub async fn slices(&self) -> Result<Vec<SliceSummary>, Error> {
        self.get(&Route::slices()).await
    }

    /// One slice.
    pub async fn slice(&self, name: &str) -> Result<SliceInfo, Error> {
        self.get(&Route::slice(name)?).await
    }

    /// A slice's figures per virtual link, direction and hop, with rates.
    pub async fn slice_stats(&self, name: &str) -> Result<SliceStats, Error> {
        self.get(&Route::slice_stats(name)?).await
    }

    /// A slice's guarantee check from `since` (Unix seconds).
    pub async fn slice_check(&self, name: &str, since: Option<u64>) -> Result<SliceCheck, Error> {
        self.get_query(&Route::slice_check(name)?, &CheckQuery { since }).await
    }

    /// Creates a measurement job.
    pub async fn create_measurement(&self, req: &MeasureRequest) -> Result<MeasureInfo, Error> {
        self.post_json(&Route::measurements(), req).await
    }

    /// The measurement jobs the caller may see (of one slice, if given).
    pub async fn measurements(&self, slice: Option<&str>) -> Result<Vec<MeasureInfo>, Error> {
        self.get_query(&Route::measurements(), &MeasureQuery { slice: slice.map(str::to_string) }).await
    }

    /// One measurement job with its results so far.
    pub async fn measurement(&self, id: u64) -> Result<MeasureInfo, Error> {
        self.get(&Route::measurement(id)).await
    }

    /// Deletes a measurement job.
    pub async fn delete_measurement(&self, id: u64) -> Result<(), Error> {
        self.delete_empty(&Route::measurement(id)).await
    }

    /// Uploads what host `host`'s tap captured for job `id` (Enhanced Packet Blocks).
    pub async fn upload_capture(&self, host: &str, id: u64, blocks: Vec<u8>) -> Result<CaptureStored, Error> {
        let rb = self
            .req(reqwest::Method::POST, &Route::capture_upload(host, id)?)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(blocks);
        let resp = self.send(rb).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// A job's capture, a pcapng file, written to `out`; returns its bytes.
    pub async fn download_capture(&self, id: u64, out: &mut (impl std::io::Write + ?Sized)) -> Result<u64, Error> {
        let mut resp = self.send(self.req(reqwest::Method::GET, &Route::capture(id))).await?;
        if !resp.status().is_success() {
            return Err(self.decode::<serde_json::Value>(resp).await.err().unwrap_or(Error::Status {
                status: 0,
                body: String::new(),
                hint: "",
            }));
        }
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            out.write_all(&chunk).map_err(|e| Error::Status {
                status: 0,
                body: format!("writing the capture: {e}"),
                hint: "",
            })?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// The manager's Prometheus metrics (operators), in the text format 0.0.4.
    pub async fn metrics(&self) -> Result<String, Error> {
        let resp = self.send(self.req(reqwest::Method::GET, &Route::metrics())).await?;
        let status = resp.status();
        if status.is_success() {
            return resp.text().await.map_err(|e| self.unreachable(e));
        }
        Err(self.decode::<serde_json::Value>(resp).await.err().unwrap_or(Error::Status {
            status: status.as_u16(),
            body: String::new(),
            hint: "",
        }))
    }

    /// Applies the spec `text` (YAML or JSON) of slice `name`: creates it,
    /// leaves an identical one alone or changes it in place; with
    /// `dry_run`, only plans it.
    pub async fn apply(&self, name: &str, text: String, dry_run: bool) -> Result<Applied, Error> {
        self.apply_if(name, text, dry_run, None).await
    }

    /// The same, only if the slice is at revision `if_match` (its `ETag`):
    /// a writer who read an older revision gets a 412 and changes nothing.
    pub async fn apply_if(
        &self,
        name: &str,
        text: String,
        dry_run: bool,
        if_match: Option<u64>,
    ) -> Result<Applied, Error> {
        let route = Route::slice(name)?;
        let q = ApplyQuery { dry_run };
        if dry_run {
            let (_, _, plan) = self.put_doc_if(&route, &q, text, if_match).await?;
            return Ok(Applied::DryRun(plan));
        }
        let (_, result, info) = self.put_doc_if::<_, SliceInfo>(&route, &q, text, if_match).await?;
        Ok(Applied::Done { result, info: Box::new(info) })
    }

    /// Starts deleting a slice (the manager answers 202: its agents finish
    /// the deletion after the answer).
    pub async fn delete_slice(&self, name: &str) -> Result<Deleted, Error> {
        self.delete_slice_if(name, None).await
    }

    /// The same, only if the slice is at revision `if_match`.
    pub async fn delete_slice_if(&self, name: &str, if_match: Option<u64>) -> Result<Deleted, Error> {
        let mut rb = self.req(reqwest::Method::DELETE, &Route::slice(name)?);
        if let Some(rev) = if_match {
            rb = rb.header("if-match", crate::etag::etag(rev));
        }
        let resp = self.send(rb).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// Waits (at most `wait`) until slice `name` is past revision `after`,
    /// or in a state other than `state`, or gone (an error: not found);
    /// `None`: nothing moved within the wait.
    pub async fn watch_slice(
        &self,
        name: &str,
        after: u64,
        state: Option<netslice_model::api::SliceState>,
        wait: Duration,
    ) -> Result<Option<SliceInfo>, Error> {
        let q = SliceQuery { watch: true, after, state, wait: Some(wait.as_secs()) };
        let rb = self.req(reqwest::Method::GET, &Route::slice(name)?).query(&q).timeout(wait + REQUEST_TIMEOUT);
        let resp = self.send(rb).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(self.decode(resp).await?.1))
    }

    /// Waits until slice `name` is ready, calling `progress` with the slice
    /// whenever its state or message changes (watching, not polling: the
    /// manager answers when something moves). Fails if the slice fails, is
    /// deleted, or is not ready within `timeout`.
    pub async fn wait_ready(
        &self,
        name: &str,
        timeout: Duration,
        mut progress: impl FnMut(&SliceInfo),
    ) -> Result<SliceInfo, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut info = self.slice(name).await?;
        let mut last = None;
        loop {
            let seen = (info.state, info.message.clone());
            if last.as_ref() != Some(&seen) {
                progress(&info);
                last = Some(seen);
            }
            match info.state {
                netslice_model::api::SliceState::Ready => return Ok(info),
                netslice_model::api::SliceState::Failed => {
                    return Err(WaitError::Failed(info.message.clone().unwrap_or_default()));
                }
                netslice_model::api::SliceState::Deleting => return Err(WaitError::Deleted),
                _ => {}
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(WaitError::Timeout { timeout, state: info.state, message: info.message });
            }
            let wait = left.min(Duration::from_secs(30)).max(Duration::from_secs(1));
            if let Some(next) = self.watch_slice(name, info.revision, Some(info.state), wait).await? {
                info = next;
            }
        }
    }

    /// Every user with a token (operators only).
    pub async fn users(&self) -> Result<Vec<UserInfo>, Error> {
        self.get(&Route::users()).await
    }

    /// Extends a slice's lease.
    pub async fn renew(&self, name: &str, r: &Renew) -> Result<Renewed, Error> {
        self.post_json(&Route::renew(name)?, r).await
    }

    /// Adds a user (operators only); the token is shown once.
    pub async fn add_user(&self, u: &NewUser) -> Result<UserToken, Error> {
        self.post_json(&Route::users(), u).await
    }

    /// Revokes a user's tokens (operators only).
    pub async fn revoke_user(&self, name: &str) -> Result<Revoked, Error> {
        self.delete(&Route::user(name)?).await
    }

    /// The substrate hosts with their agents' state.
    pub async fn nodes(&self) -> Result<Vec<HostInfo>, Error> {
        self.get(&Route::nodes()).await
    }

    /// Part of the audit trail (operators only).
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, Error> {
        self.get_query(&Route::audit(), q).await
    }

    /// An agent registers with the enrollment token (this client's token)
    /// and gets its own credential.
    pub async fn register(&self, host: &str, r: &RegisterRequest) -> Result<Registered, Error> {
        self.post_json(&Route::register(host)?, r).await
    }

    /// An agent waits (at most `q.wait` seconds, the request at most
    /// `timeout`) for a desired config newer than `q.after`; `None`: none
    /// came within the wait.
    pub async fn watch_config(
        &self,
        host: &str,
        q: &WatchQuery,
        timeout: Duration,
    ) -> Result<Option<NodeConfig>, Error> {
        let rb = self.req(reqwest::Method::GET, &Route::config(host)?).query(q).timeout(timeout);
        let resp = self.send(rb).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(self.decode(resp).await?.1))
    }

    /// An agent reports its state and counters.
    pub async fn report(&self, host: &str, r: &NodeReport, timeout: Duration) -> Result<(), Error> {
        let rb = self.req(reqwest::Method::POST, &Route::status(host)?).json(r).timeout(timeout);
        let resp = self.send(rb).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        self.decode::<serde::de::IgnoredAny>(resp).await.map(|_| ())
    }
}
