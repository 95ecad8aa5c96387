//! The node agent (`netslice node`): one per substrate host.
//!
//! It registers with the manager, watches its desired config by long-polling the
//! REST API, and reconciles (kube-rs style: idempotent, requeued with backoff on
//! error): slivers first ([`slivers`]), then the redirector tables and ports of the
//! forwarding threads ([`forward`]; worker threads and dedicated CPUs in
//! [`workers`], dedicated slices' own receive sockets in [`slicerx`]). It
//! reports applied revision, problems and per-rule counters every few seconds.
//!
//! The last desired config is cached in the state directory, so a restarted agent
//! rebuilds its data plane at once, even while the manager is unreachable; the
//! slivers themselves (namespaces, persistent TAPs, the processes in them) never
//! stop when the agent does.

#![forbid(unsafe_code)]

pub mod egress;
pub mod forward;
pub mod http;
pub mod neigh;
pub mod slicerx;
pub mod slivers;
pub mod workers;
pub mod xsk;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netslice_dataplane::{Registry, Tables};
use netslice_model::api::{ApplyError, NodeConfig, NodeReport, RegisterRequest, Registered};

use crate::forward::Forwarder;
use crate::slivers::Slivers;

/// Largest packet the data plane handles: a TCP super-frame (an IP packet of
/// 64 KiB) with room for encapsulation, or the largest physical MTU allowed.
pub const MAX_FRAME: usize = {
    let phys = netslice_model::substrate::MAX_LINK_MTU as usize + 64;
    let sup = netslice_dataplane::gso::MAX_SUPER + 64;
    if phys > sup { phys } else { sup }
};

/// How the agent is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Substrate host this agent serves.
    pub host: String,
    /// Manager base URL, e.g. `https://127.0.0.1:7300`.
    pub manager: String,
    /// File holding the enrollment token, presented once to obtain this
    /// node's own credential (kept in `state_dir/credential`).
    pub enroll_token_file: Option<PathBuf>,
    /// Certificate to trust for the manager (else the platform's roots).
    pub ca_cert: Option<PathBuf>,
    /// Network namespace of the host's data plane (the local testbed runs every
    /// host in a namespace; a real host leaves this unset).
    pub netns: Option<String>,
    /// Where the agent keeps its ledger and cached config.
    pub state_dir: PathBuf,
    /// Long-poll wait asked of the manager.
    pub watch_wait: Duration,
    /// Interval between reports.
    pub report_every: Duration,
    /// Substrate I/O: AF_XDP where possible (`auto`), required (`xdp`), or
    /// sockets only (`sockets`).
    pub io: xsk::IoMode,
    /// Shared forwarding workers (0: receiving threads forward themselves);
    /// see [`workers`].
    pub workers: usize,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// State directory problem.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Substrate sockets could not be opened.
    #[error("opening substrate sockets: {0}")]
    Sockets(#[from] netslice_io::Error),
    /// Thread start failure.
    #[error("starting forwarding threads: {0}")]
    Threads(std::io::Error),
    /// HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] http::ClientError),
    /// The host name is not one (it goes into the agent's API paths).
    #[error("host: {0}")]
    Host(#[from] netslice_model::names::NameError),
}

/// Applied state, shared between the reconciler and the reporter.
#[derive(Debug, Default)]
struct Applied {
    revision: u64,
    epoch: String,
    errors: Vec<ApplyError>,
}

struct Agent {
    opts: Options,
    fwd: Arc<Forwarder>,
    slivers: Arc<Mutex<Slivers>>,
    applied: Arc<Mutex<Applied>>,
    http: reqwest::Client,
    credential: Mutex<Option<String>>,
}

fn cache_path(dir: &Path) -> PathBuf {
    dir.join("desired.json")
}

fn credential_path(dir: &Path) -> PathBuf {
    dir.join("credential")
}

/// Writes a secret readable by its owner only, atomically.
fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
    writeln!(f, "{secret}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(opts: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    netslice_model::names::host(&opts.host)?;
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(|source| AgentError::StateDir { path: opts.state_dir.clone(), source })?;
    let registry = Arc::new(Registry::builtin());
    let fwd = Arc::new(Forwarder::start(registry.clone(), opts.netns.clone(), MAX_FRAME, opts.io, opts.workers)?);
    let agent = Arc::new(Agent {
        slivers: Arc::new(Mutex::new(Slivers::load(&opts.state_dir))),
        applied: Arc::new(Mutex::new(Applied::default())),
        http: http::client(opts.ca_cert.as_deref(), Duration::from_secs(3))?,
        credential: Mutex::new(
            std::fs::read_to_string(credential_path(&opts.state_dir))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        ),
        fwd: fwd.clone(),
        opts,
    });
    tracing::info!(host = %agent.opts.host, manager = %agent.opts.manager, io = ?agent.opts.io, "agent starting");

    let mut current: Option<NodeConfig> =
        std::fs::read(cache_path(&agent.opts.state_dir)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(cfg) = &current {
        tracing::info!("applying cached desired config, revision {}", cfg.revision);
        agent.apply(cfg.clone()).await;
    }
    let reporter = tokio::spawn(agent.clone().report_loop());
    let watcher = agent.clone().watch_loop(current.take());
    tokio::select! {
        _ = shutdown => tracing::info!("shutting down; slivers keep running"),
        _ = watcher => {}
    }
    reporter.abort();
    let f = fwd.clone();
    let _ = tokio::task::spawn_blocking(move || f.stop()).await;
    Ok(())
}

impl Agent {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/nodes/{}/{path}", self.opts.manager.trim_end_matches('/'), self.opts.host)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.credential.lock().expect("credential lock").clone().unwrap_or_default())
    }

    /// Presents the enrollment token and keeps the credential the manager
    /// issues for this host.
    async fn register(&self) -> Result<(), String> {
        let file = self.opts.enroll_token_file.as_ref().ok_or_else(|| {
            format!(
                "no credential in {} and no enrollment token: start the agent with --enroll-token-file",
                credential_path(&self.opts.state_dir).display()
            )
        })?;
        let token = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let req = RegisterRequest { version: env!("CARGO_PKG_VERSION").to_string() };
        let resp = self
            .http
            .post(self.url("register"))
            .header(reqwest::header::AUTHORIZATION, format!("Bearer {}", token.trim()))
            .json(&req)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("manager refused registration ({status}): {body}"));
        }
        let reg: Registered = resp.json().await.map_err(|e| format!("unreadable registration answer: {e}"))?;
        let path = credential_path(&self.opts.state_dir);
        if let Err(e) = write_secret(&path, &reg.credential) {
            tracing::warn!(
                "cannot keep the credential in {}: {e} (will register again after a restart)",
                path.display()
            );
        }
        *self.credential.lock().expect("credential lock") = Some(reg.credential);
        Ok(())
    }

    /// Long-polls the desired config; applies every new revision. Never returns.
    async fn watch_loop(self: Arc<Self>, mut current: Option<NodeConfig>) {
        let mut backoff = Duration::from_millis(250);
        let mut registered = self.credential.lock().expect("credential lock").is_some();
        loop {
            if !registered {
                match self.register().await {
                    Ok(()) => {
                        registered = true;
                        backoff = Duration::from_millis(250);
                        tracing::info!("registered with the manager");
                    }
                    Err(e) => {
                        tracing::warn!("registration failed (retrying in {backoff:?}): {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let (after, epoch) = current.as_ref().map(|c| (c.revision, c.epoch.clone())).unwrap_or_default();
            let wait = self.opts.watch_wait.as_secs().max(1);
            let req = self
                .http
                .get(self.url("config"))
                .header(reqwest::header::AUTHORIZATION, self.bearer())
                .query(&[("after", after.to_string()), ("epoch", epoch), ("wait", wait.to_string())])
                .timeout(self.opts.watch_wait + Duration::from_secs(10))
                .send();
            let failed_errors = !self.applied.lock().expect("applied lock").errors.is_empty();
            // A config with errors is re-applied every few seconds (requeue).
            let res = if failed_errors {
                tokio::time::timeout(Duration::from_secs(3), req).await.ok()
            } else {
                Some(req.await)
            };
            match res {
                None => {
                    if let Some(cfg) = &current {
                        tracing::info!("re-applying revision {} after errors", cfg.revision);
                        self.apply(cfg.clone()).await;
                    }
                }
                Some(Ok(resp)) if resp.status() == reqwest::StatusCode::NO_CONTENT => {
                    backoff = Duration::from_millis(250);
                }
                Some(Ok(resp)) if resp.status().is_success() => match resp.json::<NodeConfig>().await {
                    Ok(cfg) => {
                        backoff = Duration::from_millis(250);
                        tracing::info!("desired config revision {} (epoch {})", cfg.revision, cfg.epoch);
                        if let Ok(bytes) = serde_json::to_vec(&cfg) {
                            let path = cache_path(&self.opts.state_dir);
                            let tmp = path.with_extension("tmp");
                            if std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path)).is_err() {
                                tracing::warn!("cannot cache desired config at {}", path.display());
                            }
                        }
                        self.apply(cfg.clone()).await;
                        current = Some(cfg);
                        self.report().await;
                    }
                    Err(e) => tracing::warn!("unreadable desired config: {e}"),
                },
                Some(Ok(resp)) => {
                    let status = resp.status();
                    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                        // Credential unknown (e.g. a new manager database): enroll again.
                        registered = false;
                    }
                    tracing::warn!("manager answered {status} to config watch; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Some(Err(e)) => {
                    tracing::warn!("manager unreachable ({e}); data plane keeps running; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Reconciles slivers and installs new tables (on a blocking thread).
    async fn apply(&self, cfg: NodeConfig) {
        let slivers = self.slivers.clone();
        let fwd = self.fwd.clone();
        let applied = self.applied.clone();
        let res = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let (ports, errors) = slivers.lock().expect("sliver lock").apply(&cfg);
            let old = fwd.shared.plane.load_full();
            let tables = Tables::build(&cfg, Some(&old.tables), &fwd.shared.registry);
            let mut errors = errors;
            errors.extend(tables.errors.iter().map(|e| ApplyError { slice: None, node: None, message: e.clone() }));
            fwd.set_impairments(&cfg.underlay);
            for (slice, node, message) in fwd.install(&cfg, tables, ports) {
                errors.push(ApplyError { slice: Some(slice), node: Some(node), message });
            }
            tracing::info!(
                "applied revision {}: {} slivers, {} port rules, {} label rules, {} errors in {:?}",
                cfg.revision,
                cfg.slivers.len(),
                cfg.ports.len(),
                cfg.labels.len(),
                errors.len(),
                started.elapsed()
            );
            let mut a = applied.lock().expect("applied lock");
            a.revision = cfg.revision;
            a.epoch = cfg.epoch.clone();
            a.errors = errors;
        })
        .await;
        if let Err(e) = res {
            tracing::error!("apply task failed: {e}");
        }
    }

    async fn report(&self) {
        let report = {
            let a = self.applied.lock().expect("applied lock");
            let plane = self.fwd.shared.plane.load();
            let tables = &plane.tables;
            let programs = plane
                .nodes
                .values()
                .map(|n| netslice_model::api::ProgramStats {
                    host: self.opts.host.clone(),
                    slice: n.slice.clone(),
                    node: n.node.clone(),
                    stats: n.program.lock().map(|p| p.stats()).unwrap_or_default(),
                })
                .collect();
            let mut errors = a.errors.clone();
            errors.extend(self.fwd.io_errors().into_iter().map(|message| ApplyError {
                slice: None,
                node: None,
                message,
            }));
            NodeReport {
                programs,
                host: self.opts.host.clone(),
                applied_revision: a.revision,
                epoch: a.epoch.clone(),
                errors,
                counters: tables.snapshot(&self.opts.host),
                unmatched: tables.unmatched.snapshot(),
                io_backend: self.fwd.backend(),
                forwarding: self.fwd.forwarding(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            }
        };
        match self
            .http
            .post(self.url("status"))
            .header(reqwest::header::AUTHORIZATION, self.bearer())
            .json(&report)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::debug!("report refused: {}", r.status()),
            Err(e) => tracing::debug!("report failed: {e}"),
        }
    }

    async fn report_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.opts.report_every);
        loop {
            tick.tick().await;
            self.report().await;
        }
    }
}
