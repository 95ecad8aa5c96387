//! The REST client used by the CLI, and how it finds the manager, its
//! certificate and the caller's token.
//!
//! Resolution, first match wins:
//! - manager: `--manager`/`NETSLICE_MANAGER`; the manager of `--testbed`; the one
//!   saved by `netslice login`; the only local testbed that is up.
//! - token: `--token`/`NETSLICE_TOKEN`; `--token-file`/`NETSLICE_TOKEN_FILE`; a
//!   local testbed's operator token (`operator.token` in its directory, readable
//!   by whoever built it); the token saved by `netslice login`.
//! - trusted certificate: `--ca-cert`/`NETSLICE_CA_CERT`; a local testbed's
//!   self-signed certificate; the one saved by `netslice login`; the platform's roots.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use netslice_model::api::ApiError;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Target;
use crate::testbed;

/// A path of the manager's API. Only the constructors below make one: names
/// are checked first (a name that is not a valid slice, user or host name is
/// refused here, with the rule it breaks, before any request exists), and
/// every segment is percent-encoded on top, so that no name can become another
/// path (`slice delete ../users/dave` can never reach `/api/v1/users/dave`; a
/// URL parser treats `..` and even `%2e%2e` as "up one level", so encoding
/// alone would not do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route(String);

/// Characters left as they are in a path segment: RFC 3986 unreserved, but `.`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

fn seg(s: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(s, SEGMENT)
}

impl Route {
    /// `/healthz`.
    pub fn healthz() -> Route {
        Route("/healthz".into())
    }

    /// `/api/v1/whoami`.
    pub fn whoami() -> Route {
        Route("/api/v1/whoami".into())
    }

    /// `/api/v1/substrate/usage`.
    pub fn usage() -> Route {
        Route("/api/v1/substrate/usage".into())
    }

    /// `/api/v1/types`.
    pub fn types() -> Route {
        Route("/api/v1/types".into())
    }

    /// `/api/v1/slices`.
    pub fn slices() -> Route {
        Route("/api/v1/slices".into())
    }

    /// `/api/v1/users`.
    pub fn users() -> Route {
        Route("/api/v1/users".into())
    }

    /// `/api/v1/nodes`.
    pub fn nodes() -> Route {
        Route("/api/v1/nodes".into())
    }

    /// `/api/v1/audit`.
    pub fn audit() -> Route {
        Route("/api/v1/audit".into())
    }

    /// `/api/v1/slices/{name}`, the name checked.
    pub fn slice(name: &str) -> Result<Route> {
        netslice_model::names::slice(name).map_err(|e| anyhow!("slice name {e}"))?;
        Ok(Route(format!("/api/v1/slices/{}", seg(name))))
    }

    /// `/api/v1/slices/{name}/renew`, the name checked.
    pub fn renew(name: &str) -> Result<Route> {
        netslice_model::names::slice(name).map_err(|e| anyhow!("slice name {e}"))?;
        Ok(Route(format!("/api/v1/slices/{}/renew", seg(name))))
    }

    /// `/api/v1/users/{name}`, the name checked.
    pub fn user(name: &str) -> Result<Route> {
        netslice_model::names::user(name).map_err(|e| anyhow!("user name {e}"))?;
        Ok(Route(format!("/api/v1/users/{}", seg(name))))
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.0
    }
}

/// A client of one manager.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Where `netslice login` keeps what it learned: `$XDG_CONFIG_HOME/netslice` or
/// `~/.config/netslice`.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("netslice"))
}

/// What `netslice login` saved.
#[derive(Debug, Default, Clone, serde::Deserialize, Serialize)]
pub struct Login {
    /// Manager URL.
    pub manager: String,
    /// Trusted certificate (copied into the config directory), if any.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

impl Login {
    /// Reads the saved login, with its token.
    pub fn load() -> Option<(Login, Option<String>)> {
        let dir = config_dir()?;
        let login: Login = serde_json::from_slice(&std::fs::read(dir.join("login.json")).ok()?).ok()?;
        let token = read_token(&dir.join("token")).ok();
        Some((login, token))
    }
}

/// Reads a token file (surrounding whitespace ignored).
pub fn read_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).with_context(|| format!("reading token file {}", path.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(t)
}

impl Client {
    /// A client for `base` (e.g. `https://127.0.0.1:7300`) trusting `ca` (else the
    /// platform's roots) and sending `token`.
    pub fn new(base: &str, ca: Option<&Path>, token: Option<String>) -> Result<Client> {
        if base.starts_with("http://") {
            bail!("the manager speaks HTTPS only: use https:// in {base}");
        }
        let http = netslice_agent::http::client(ca, std::time::Duration::from_secs(3))?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), http, token })
    }

    /// The client for a local testbed, as its builder (operator token, its certificate).
    pub fn for_testbed(st: &testbed::TestbedState) -> Result<Client> {
        let token = read_token(&st.dir.join("operator.token")).ok();
        Client::new(&st.manager_url, Some(&st.dir.join("tls").join("cert.pem")), token)
    }

    /// Finds the manager, certificate and token as the module docs say.
    pub fn from_target(t: &Target) -> Result<Client> {
        let explicit_token = match (&t.token, &t.token_file) {
            (Some(tok), _) => Some(tok.trim().to_string()),
            (None, Some(f)) => Some(read_token(f)?),
            _ => None,
        };
        let login = Login::load();
        let local = |name: Option<&str>| -> Result<testbed::TestbedState> {
            let states = testbed::list(&t.state_root);
            match name {
                Some(name) => states
                    .into_iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| anyhow!("no local testbed named {name:?} (see `netslice testbed status`)")),
                None => {
                    let mut v = states;
                    match v.len() {
                        0 => bail!(
                            "no manager given and no local testbed is up: use --manager URL, `netslice login`, or `netslice testbed up FILE` first"
                        ),
                        1 => Ok(v.remove(0)),
                        _ => bail!(
                            "several local testbeds are up ({}): choose one with --testbed NAME",
                            v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    }
                }
            }
        };
        let (base, tb) = if let Some(m) = &t.manager {
            let tb = testbed::list(&t.state_root).into_iter().find(|s| &s.manager_url == m);
            (m.clone(), tb)
        } else if let Some(name) = &t.testbed {
            let st = local(Some(name))?;
            (st.manager_url.clone(), Some(st))
        } else if let Some((l, _)) = &login {
            (l.manager.clone(), None)
        } else {
            let st = local(None)?;
            (st.manager_url.clone(), Some(st))
        };
        let saved_login = login.as_ref().filter(|(l, _)| l.manager == base);
        let ca = t
            .ca_cert
            .clone()
            .or_else(|| tb.as_ref().map(|s| s.dir.join("tls").join("cert.pem")))
            .or_else(|| saved_login.and_then(|(l, _)| l.ca_cert.clone()));
        let token = explicit_token
            .or_else(|| tb.as_ref().and_then(|s| read_token(&s.dir.join("operator.token")).ok()))
            .or_else(|| saved_login.and_then(|(_, tok)| tok.clone()));
        Client::new(&base, ca.as_deref(), token)
    }

    /// The manager's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn req(&self, method: reqwest::Method, route: &Route) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base, route.path());
        let r = self.http.request(method, url).timeout(std::time::Duration::from_secs(30));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<(StatusCode, T)> {
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the manager's answer")?;
        if status.is_success() {
            let v = serde_json::from_slice(&bytes)
                .with_context(|| format!("unreadable answer from the manager ({status})"))?;
            return Ok((status, v));
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED if self.token.is_none() => {
                " (no token: use `netslice login`, --token-file or NETSLICE_TOKEN)"
            }
            StatusCode::UNAUTHORIZED => " (token unknown or revoked: ask an operator for a new one)",
            _ => "",
        };
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => Err(anyhow!("{e}{hint}")),
            Err(_) if bytes.is_empty() => Err(anyhow!("manager answered {status} with no explanation{hint}")),
            Err(_) => Err(anyhow!("manager answered {status}: {}{hint}", String::from_utf8_lossy(&bytes))),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        // reqwest hides the TLS cause (e.g. an untrusted certificate) in the source chain.
        let mut cause = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            cause = format!("{cause}: {s}");
            src = s.source();
        }
        anyhow!("cannot reach the manager at {}: {cause} (is it running? see `netslice testbed status`)", self.base)
    }

    /// Sends a request; a 429 (this user has too many requests in flight at
    /// the manager) is retried after its `Retry-After`, for up to 30 s, as
    /// 50 commands started at once by one user should all get through.
    async fn send(&self, mut rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
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
            let pause = std::time::Duration::from_millis(wait * 1000 / 2 + jitter);
            if std::time::Instant::now() + pause > deadline {
                return Ok(resp);
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
            rb = next;
        }
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, route: &Route) -> Result<T> {
        self.get_query(route, &[]).await
    }

    /// GET a JSON document with query parameters (encoded).
    pub async fn get_query<T: DeserializeOwned>(&self, route: &Route, query: &[(&str, String)]) -> Result<T> {
        let resp = self.send(self.req(reqwest::Method::GET, route).query(query)).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// POST a JSON body.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(&self, route: &Route, body: &B) -> Result<T> {
        let resp = self.send(self.req(reqwest::Method::POST, route).json(body)).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// PUT a document (its media type from its format); returns the status,
    /// the `x-netslice-result` header and the decoded answer.
    pub async fn put_doc<T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &[(&str, String)],
        body: String,
    ) -> Result<(StatusCode, String, T)> {
        // JSON only if it is JSON: a YAML flow document also starts with `{`.
        let json = serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok();
        let media = if json { netslice_model::Format::Json } else { netslice_model::Format::Yaml }.media_type();
        let resp = self
            .send(self.req(reqwest::Method::PUT, route).query(query).header("content-type", media).body(body))
            .await?;
        let result =
            resp.headers().get("x-netslice-result").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let (status, v) = self.decode(resp).await?;
        Ok((status, result, v))
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, route: &Route) -> Result<T> {
        let resp = self.send(self.req(reqwest::Method::DELETE, route)).await?;
        Ok(self.decode(resp).await?.1)
    }

    /// Whether `/healthz` answers.
    pub async fn healthy(&self) -> bool {
        matches!(self.req(reqwest::Method::GET, &Route::healthz()).send().await, Ok(r) if r.status().is_success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_segments_encoded() {
        // The review's path tricks are refused before any request exists.
        let e = Route::slice("../users/dave").unwrap_err().to_string();
        assert!(e.contains("not a valid name"), "{e}");
        assert!(Route::user("../slices/x").is_err());
        assert!(Route::slice("../etc").is_err());
        assert_eq!(Route::slice("red").unwrap().path(), "/api/v1/slices/red");
        assert_eq!(Route::renew("red-2").unwrap().path(), "/api/v1/slices/red-2/renew");
        assert_eq!(Route::user("Dave_1").unwrap().path(), "/api/v1/users/Dave_1");
        assert_eq!(seg("../a b/%").to_string(), "%2E%2E%2Fa%20b%2F%25");
    }
}
