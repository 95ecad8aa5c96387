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

use clap::Args;

use anyhow::{Context, Result, anyhow, bail};
pub use netslice_api::{Client, Route};
use serde::Serialize;

use netslice_testbed as testbed;

/// Where the client finds the manager.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Manager URL (default: the manager of the only local testbed that is up).
    #[arg(long, global = true, env = "NETSLICE_MANAGER")]
    pub manager: Option<String>,
    /// Local testbed whose manager to use.
    #[arg(long, global = true, env = "NETSLICE_TESTBED")]
    pub testbed: Option<String>,
    /// Directory holding local testbed state.
    #[arg(long, global = true, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
    pub state_root: PathBuf,
    /// API token (prefer --token-file: command lines are visible to other users).
    #[arg(long, global = true, env = "NETSLICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token.
    #[arg(long, global = true, env = "NETSLICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Certificate (PEM) to trust for the manager: its self-signed certificate or your CA.
    #[arg(long, global = true, env = "NETSLICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
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

/// How the CLI finds its manager: as the module docs say.
pub trait Resolve: Sized {
    /// Finds the manager, certificate and token as the module docs say.
    fn from_target(t: &Target) -> Result<Self>;
}

impl Resolve for Client {
    /// Finds the manager, certificate and token as the module docs say.
    fn from_target(t: &Target) -> Result<Client> {
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
        Ok(Client::new(&base, ca.as_deref(), token)?)
    }
}
