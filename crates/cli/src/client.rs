//! The REST client used by the CLI, and how it finds the manager.

use anyhow::{Context, Result, anyhow, bail};
use netslice_model::api::ApiError;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::Target;
use crate::testbed;

/// A client of one manager.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:7300`).
    pub fn new(base: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Client { base: base.trim_end_matches('/').to_string(), http })
    }

    /// Finds the manager: `--manager`, else the manager of `--testbed`, else of the
    /// only local testbed that is up.
    pub fn from_target(t: &Target) -> Result<Client> {
        if let Some(m) = &t.manager {
            return Client::new(m);
        }
        let states = testbed::list(&t.state_root);
        let chosen = match &t.testbed {
            Some(name) => states
                .into_iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| anyhow!("no local testbed named {name:?} (see `netslice testbed status`)"))?,
            None => {
                let mut v = states;
                match v.len() {
                    0 => bail!(
                        "no manager given and no local testbed is up: use --manager URL, or `netslice testbed up FILE` first"
                    ),
                    1 => v.remove(0),
                    _ => bail!(
                        "several local testbeds are up ({}): choose one with --testbed NAME",
                        v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
            }
        };
        Client::new(&chosen.manager_url)
    }

    /// The manager's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<(StatusCode, T)> {
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the manager's answer")?;
        if status.is_success() {
            let v = serde_json::from_slice(&bytes)
                .with_context(|| format!("unreadable answer from the manager ({status})"))?;
            return Ok((status, v));
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(e) => Err(anyhow!("{e}")),
            Err(_) => Err(anyhow!("manager answered {status}: {}", String::from_utf8_lossy(&bytes))),
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        anyhow!("cannot reach the manager at {}: {e} (is it running? see `netslice testbed status`)", self.base)
    }

    /// GET a JSON document.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.http.get(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
        Ok(self.decode(resp).await?.1)
    }

    /// PUT a text body; returns the status, the `x-netslice-result` header and
    /// the decoded answer.
    pub async fn put_text<T: DeserializeOwned>(&self, path: &str, body: String) -> Result<(StatusCode, String, T)> {
        let resp = self
            .http
            .put(self.url(path))
            .header("content-type", "application/yaml")
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let result =
            resp.headers().get("x-netslice-result").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let (status, v) = self.decode(resp).await?;
        Ok((status, result, v))
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.http.delete(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
        Ok(self.decode(resp).await?.1)
    }

    /// Whether `/healthz` answers.
    pub async fn healthy(&self) -> bool {
        matches!(self.http.get(self.url("/healthz")).send().await, Ok(r) if r.status().is_success())
    }
}
