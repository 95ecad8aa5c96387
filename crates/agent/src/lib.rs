//! The node agent (`netslice node`): one per substrate host.
//!
//! It registers with the manager, watches its desired config by long-polling the
//! REST API, and hands each config to its control thread ([`control`]), the
//! single owner of everything the agent runs, which reconciles kube-rs style
//! (plan, compare, act on the difference; requeued after errors): slivers first
//! ([`slivers`]), then the data plane. It reports applied revision, problems and
//! per-rule counters every few seconds.
//!
//! The data plane is the sans-IO pipeline (`netslice-pipeline`) driven by
//! threads: receivers and port pollers ([`rx`], one loop over every kind of
//! device), workers ([`workers`]), the egress drivers and timer ([`egress`]),
//! one transmit path ([`tx`]), and dedicated slices' own sockets
//! ([`slicerx`]). They read what the control thread publishes ([`shared`]).
//!
//! The last desired config is cached in the state directory, so a restarted agent
//! rebuilds its data plane at once, even while the manager is unreachable; the
//! slivers themselves (namespaces, persistent TAPs, the processes in them) never
//! stop when the agent does.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod calibrate;
pub mod control;
mod cpus;
mod desired;
mod egress;
mod error;
mod forward;
mod metrics;
pub mod neigh;
mod plane;
mod pool;
mod probes;
mod problem;
pub mod rx;
mod shared;
mod slicerx;
pub mod slivers;
mod threads;
mod tx;
mod workers;
pub mod xsk;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use netslice_api::types::WatchQuery;
use netslice_dataplane::Registry;
use netslice_model::api::{NodeConfig, NodeReport, RegisterRequest, Registered};

pub use crate::error::AgentError;
pub use crate::xsk::IoMode;

use crate::control::{Control, Setup, Status};
use crate::shared::Shared;

pub use crate::control::MAX_FRAME;

/// Whole seconds of counters an agent keeps and sends with each report (it
/// reports every 2 s; a report lost now and then loses no second).
pub const SECONDS_KEPT: usize = 6;

/// Most bytes of capture an agent holds for one job while the manager does
/// not take them.
pub const MAX_PENDING_CAPTURE: usize = 16 << 20;

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
    /// Where to serve Prometheus metrics (`GET /metrics`, plain HTTP; see
    /// [`metrics`]); `None`: nowhere (the default: a real host's operator
    /// chooses an address their scraper reaches and nobody else does). Port
    /// 0 picks a free port, kept across restarts where possible; the address
    /// taken is written to `STATE_DIR/metrics.addr`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// What this host can forward: see [`CapacitySource`].
    pub capacity: CapacitySource,
    /// Serve links by their reserved share of forwarding work when a
    /// forwarding thread falls behind (default on; off: first come, first
    /// served, for comparisons).
    pub cpu_shares: bool,
}

/// Where an agent's forwarding capacity comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CapacitySource {
    /// `STATE_DIR/calibration.json` if it was measured on this machine, else
    /// a calibration at start (about 20 s; written there).
    #[default]
    Auto,
    /// This file: a calibration (`netslice node calibrate`) or the
    /// operator's own figures (a `ForwardingCapacity`).
    File(PathBuf),
    /// None: the manager admits no forwarding work on this host.
    None,
}

impl std::str::FromStr for CapacitySource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(CapacitySource::Auto),
            "none" => Ok(CapacitySource::None),
            "" => Err("give auto, none or a file".into()),
            path => Ok(CapacitySource::File(PathBuf::from(path))),
        }
    }
}

/// The figures of a calibration for I/O mode `io`: its backend's, or for
/// `auto` (AF_XDP where it works, sockets where not) the larger of the two
/// at every size.
pub fn capacity_of(
    cal: &netslice_model::capacity::Calibration,
    io: xsk::IoMode,
    cores: f64,
) -> Option<netslice_model::capacity::ForwardingCapacity> {
    use netslice_model::capacity::{ForwardingCapacity, LinkTypeCost};
    let pick = |name: &str| cal.backends.iter().find(|b| b.io == name);
    let (io_name, link_types): (&str, Vec<LinkTypeCost>) = match io {
        xsk::IoMode::Sockets => ("sockets", pick("sockets")?.link_types.clone()),
        xsk::IoMode::Xdp => ("xdp", pick("xdp")?.link_types.clone()),
        xsk::IoMode::Auto => match (pick("xdp"), pick("sockets")) {
            (Some(x), Some(s)) => (
                "auto",
                x.link_types
                    .iter()
                    .map(|l| {
                        let o = s.of(&l.link_type).unwrap_or_else(|| l.clone());
                        LinkTypeCost {
                            link_type: l.link_type.clone(),
                            ends: l.ends.max(o.ends),
                            transit: l.transit.max(o.transit),
                            points: Vec::new(),
                        }
                    })
                    .collect(),
            ),
            (Some(b), None) | (None, Some(b)) => ("auto", b.link_types.clone()),
            (None, None) => return None,
        },
    };
    let when = cal.created;
    Some(ForwardingCapacity {
        cores,
        io: io_name.into(),
        link_types: link_types.into_iter().map(|l| LinkTypeCost { points: Vec::new(), ..l }).collect(),
        source: format!("calibrated at unix {when} on {}", cal.machine),
    })
}

/// Reads a capacity file: a calibration, or a `ForwardingCapacity`.
pub fn read_capacity(
    path: &Path,
    io: xsk::IoMode,
    cores: f64,
) -> Result<netslice_model::capacity::ForwardingCapacity, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cap = if let Ok(cal) = serde_json::from_str::<netslice_model::capacity::Calibration>(&text) {
        capacity_of(&cal, io, cores)
            .ok_or_else(|| format!("{}: the calibration has no figures for I/O mode {io:?}", path.display()))?
    } else {
        let mut c: netslice_model::capacity::ForwardingCapacity = serde_json::from_str(&text)
            .map_err(|e| format!("{}: neither a calibration nor forwarding figures: {e}", path.display()))?;
        c.source = format!("operator: {}", path.display());
        c
    };
    cap.check().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cap)
}

/// This agent's capacity as `opts` says, calibrating if it must.
fn load_capacity(opts: &Options) -> Result<Option<netslice_model::capacity::ForwardingCapacity>, AgentError> {
    let cores = netslice_io::cpu::allowed().map(|c| c.len()).unwrap_or(1).max(1) as f64;
    match &opts.capacity {
        CapacitySource::None => Ok(None),
        CapacitySource::File(p) => read_capacity(p, opts.io, cores).map(Some).map_err(AgentError::Capacity),
        CapacitySource::Auto => {
            let path = opts.state_dir.join("calibration.json");
            let stored = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<netslice_model::capacity::Calibration>(&t).ok())
                .filter(|c| c.machine == calibrate::machine_id());
            let cal = match stored {
                Some(c) => c,
                None => {
                    tracing::info!("measuring what this host can forward (about 20 s, once per machine)");
                    let cal =
                        calibrate::calibrate(&calibrate::Options::default(), &|l| tracing::info!("calibration: {l}"))
                            .map_err(|e| AgentError::Capacity(e.to_string()))?;
                    let tmp = path.with_extension("tmp");
                    if let Err(e) = std::fs::write(&tmp, serde_json::to_vec_pretty(&cal).unwrap_or_default())
                        .and_then(|()| std::fs::rename(&tmp, &path))
                    {
                        tracing::warn!("cannot keep the calibration in {}: {e}", path.display());
                    }
                    cal
                }
            };
            Ok(capacity_of(&cal, opts.io, cores))
        }
    }
}

/// The revision applied last.
#[derive(Debug, Default)]
struct Applied {
    revision: u64,
    epoch: String,
}

/// What the control thread is asked to do.
enum Command {
    /// Apply a config; answer when done.
    Apply(Box<NodeConfig>, tokio::sync::oneshot::Sender<()>),
    /// Stop every thread; answer when done.
    Stop(tokio::sync::oneshot::Sender<()>),
}

/// Runs the control thread: one command at a time, until `Stop`.
fn control_loop(mut control: Control, commands: std::sync::mpsc::Receiver<Command>) {
    while let Ok(cmd) = commands.recv() {
        match cmd {
            Command::Apply(cfg, done) => {
                control.apply(&cfg);
                let _ = done.send(());
            }
            Command::Stop(done) => {
                control.stop();
                let _ = done.send(());
                return;
            }
        }
    }
    control.stop();
}

struct Agent {
    opts: Options,
    commands: std::sync::mpsc::Sender<Command>,
    shared: Arc<Shared>,
    status: Arc<ArcSwap<Status>>,
    applied: Mutex<Applied>,
    /// The revision applied last, for the metrics endpoint.
    revision: Arc<std::sync::atomic::AtomicU64>,
    /// Identifies this run in reports (the manager carries counters across
    /// restarts by it).
    instance: String,
    /// Every rule's counters at the last whole seconds, oldest first.
    seconds: Mutex<std::collections::VecDeque<(u64, Vec<netslice_model::api::RuleCounters>)>>,
    client: netslice_api::Client,
    credential: Mutex<Option<String>>,
    /// What this host can forward, reported with every report.
    capacity: Option<netslice_model::capacity::ForwardingCapacity>,
}

fn cache_path(dir: &Path) -> PathBuf {
    dir.join("desired.json")
}

fn credential_path(dir: &Path) -> PathBuf {
    dir.join("credential")
}

/// A name for this run of the agent: its start time and process id.
fn instance_id(started: std::time::SystemTime) -> String {
    let t = started.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}-{}", t.as_nanos(), std::process::id())
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

fn metrics_addr_path(dir: &Path) -> PathBuf {
    dir.join("metrics.addr")
}

/// Listens for metrics scrapes on `addr`. Port 0 picks a free port, the one
/// this state directory used before if it is still free (so that a restart
/// keeps the scrape target); the address taken is written to
/// `STATE_DIR/metrics.addr` either way.
async fn listen_metrics(addr: std::net::SocketAddr, dir: &Path) -> Result<tokio::net::TcpListener, AgentError> {
    let path = metrics_addr_path(dir);
    let before = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<std::net::SocketAddr>().ok())
        .filter(|b| addr.port() == 0 && b.ip() == addr.ip());
    let mut listener = None;
    if let Some(b) = before {
        match tokio::net::TcpListener::bind(b).await {
            Ok(l) => listener = Some(l),
            Err(e) => tracing::warn!("metrics: {b} (used before) is taken ({e}); picking another port"),
        }
    }
    let listener = match listener {
        Some(l) => l,
        None => {
            tokio::net::TcpListener::bind(addr).await.map_err(|source| AgentError::MetricsListen { addr, source })?
        }
    };
    let bound = listener.local_addr().map_err(|source| AgentError::MetricsListen { addr, source })?;
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, format!("{bound}\n")).and_then(|()| std::fs::rename(&tmp, &path)) {
        tracing::warn!("cannot record the metrics address in {}: {e}", path.display());
    }
    Ok(listener)
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(opts: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    netslice_model::names::host(&opts.host)?;
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(|source| AgentError::StateDir { path: opts.state_dir.clone(), source })?;
    let registry = Arc::new(Registry::builtin());
    let setup = Setup {
        netns: opts.netns.clone(),
        buf_len: MAX_FRAME,
        io: opts.io,
        workers: opts.workers,
        state_dir: opts.state_dir.clone(),
        cpu_shares: opts.cpu_shares,
    };
    let started = std::time::SystemTime::now();
    let metrics_listener = match opts.metrics_listen {
        Some(addr) => Some(listen_metrics(addr, &opts.state_dir).await?),
        None => None,
    };
    let capacity = load_capacity(&opts)?;
    match &capacity {
        Some(c) => tracing::info!("forwarding capacity: {} cores, {} ({})", c.cores, c.io, c.source),
        None => tracing::warn!("no forwarding capacity: the manager admits no forwarding work on this host"),
    }
    let control = Control::start(registry, setup)?;
    let (shared, status) = (control.shared().clone(), control.status());
    let (commands, rx) = std::sync::mpsc::channel();
    let control_thread = std::thread::Builder::new()
        .name("agent-control".into())
        .spawn(move || control_loop(control, rx))
        .map_err(AgentError::Threads)?;
    let agent = Arc::new(Agent {
        commands,
        shared,
        status,
        applied: Mutex::new(Applied::default()),
        revision: Arc::default(),
        instance: instance_id(started),
        seconds: Mutex::default(),
        capacity,
        client: netslice_api::Client::new(&opts.manager, opts.ca_cert.as_deref(), None)?,
        credential: Mutex::new(
            std::fs::read_to_string(credential_path(&opts.state_dir))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        ),
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
    let uploader = tokio::spawn(agent.clone().capture_loop());
    let sampler = tokio::spawn(agent.clone().second_loop());
    let metrics = metrics_listener.map(|l| {
        let registry = metrics::registry(metrics::AgentMetrics {
            host: agent.opts.host.clone(),
            shared: agent.shared.clone(),
            status: agent.status.clone(),
            revision: agent.revision.clone(),
            started,
        });
        if let Ok(addr) = l.local_addr() {
            tracing::info!("metrics at http://{addr}/metrics");
        }
        tokio::spawn(metrics::serve(l, registry))
    });
    let watcher = agent.clone().watch_loop(current.take());
    tokio::select! {
        _ = shutdown => tracing::info!("shutting down; slivers keep running"),
        _ = watcher => {}
    }
    reporter.abort();
    uploader.abort();
    sampler.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    let (done, wait) = tokio::sync::oneshot::channel();
    if agent.commands.send(Command::Stop(done)).is_ok() {
        let _ = wait.await;
    }
    let _ = tokio::task::spawn_blocking(move || control_thread.join()).await;
    Ok(())
}

impl Agent {
    /// The client with this host's credential.
    fn authed(&self) -> netslice_api::Client {
        self.client.with_token(self.credential.lock().expect("credential lock").clone())
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
        let enroll = self.client.with_token(Some(token.trim().to_string()));
        let reg: Registered =
            enroll.register(&self.opts.host, &req).await.map_err(|e| format!("manager refused registration: {e}"))?;
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
            let client = self.authed();
            let q = WatchQuery { after, epoch, wait };
            let req = client.watch_config(&self.opts.host, &q, self.opts.watch_wait + Duration::from_secs(10));
            let failed_errors = !self.status.load().reported().is_empty();
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
                Some(Ok(None)) => {
                    backoff = Duration::from_millis(250);
                }
                Some(Ok(Some(cfg))) => {
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
                Some(Err(e)) if e.status().is_some() => {
                    if matches!(e.status(), Some(401 | 403)) {
                        // Credential unknown (e.g. a new manager database): enroll again.
                        registered = false;
                    }
                    tracing::warn!("manager refused the config watch ({e}); retrying in {backoff:?}");
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

    /// Has the control thread apply `cfg`, and waits for it.
    async fn apply(&self, cfg: NodeConfig) {
        let (revision, epoch) = (cfg.revision, cfg.epoch.clone());
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Apply(Box::new(cfg), done)).is_err() || wait.await.is_err() {
            tracing::error!("the control thread is gone");
            return;
        }
        let mut a = self.applied.lock().expect("applied lock");
        a.revision = revision;
        a.epoch = epoch;
        self.revision.store(revision, std::sync::atomic::Ordering::Relaxed);
    }

    async fn report(&self) {
        let report = {
            let a = self.applied.lock().expect("applied lock");
            let status = self.status.load();
            let plane = self.shared.plane.load();
            let tables = &plane.pipe.tables;
            let programs = plane
                .pipe
                .nodes
                .iter()
                .zip(&plane.programs)
                .map(|(n, p)| netslice_model::api::ProgramStats {
                    host: self.opts.host.clone(),
                    slice: n.config.slice.to_string(),
                    node: n.config.node.to_string(),
                    stats: p.lock().map(|p| p.stats()).unwrap_or_default(),
                })
                .collect();
            let counters = tables.snapshot(&self.opts.host);
            let seconds = self.second_samples(&counters);
            NodeReport {
                seconds,
                programs,
                host: self.opts.host.clone(),
                applied_revision: a.revision,
                epoch: a.epoch.clone(),
                errors: status.reported(),
                counters,
                unmatched: tables.unmatched.snapshot(),
                io_backend: status.backend.clone(),
                forwarding: status.forwarding.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                instance: self.instance.clone(),
                taps: {
                    let now = self.shared.clock.now();
                    let mut t: Vec<_> = tables.taps().values().map(|t| t.report(now)).collect();
                    let probes = self.shared.probe_reports.lock().unwrap_or_else(|e| e.into_inner());
                    t.extend(tables.probes().keys().map(|job| {
                        probes
                            .get(job)
                            .cloned()
                            .unwrap_or_else(|| netslice_model::api::TapReport { job: *job, ..Default::default() })
                    }));
                    t.sort_by_key(|t| t.job);
                    t
                },
                capacity: self.capacity.clone(),
            }
        };
        if let Err(e) = self.authed().report(&self.opts.host, &report, Duration::from_secs(5)).await {
            tracing::debug!("report failed: {e}");
        }
    }

    /// Every quarter second, uploads what the taps of capture jobs gathered
    /// (pcapng Enhanced Packet Blocks, stamped with Unix time). What the
    /// manager cannot take yet waits, up to [`MAX_PENDING_CAPTURE`] bytes a
    /// job; past that it is dropped and logged.
    async fn capture_loop(self: Arc<Self>) {
        let mut pending: std::collections::BTreeMap<u64, Vec<u8>> = std::collections::BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let plane = self.shared.plane.load_full();
            let clock_now = self.shared.clock.now();
            let unix_now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
                    as u64;
            for (job, tap) in plane.pipe.tables.taps() {
                let c = tap.take_captured();
                if c.records.is_empty() {
                    continue;
                }
                let buf = pending.entry(*job).or_default();
                for r in &c.records {
                    let (at, n) = (r.kept.0 as usize, r.kept.1 as usize);
                    let ts_ns = unix_now.saturating_sub(clock_now.saturating_sub(r.at));
                    netslice_wire::pcapng::Packet { iface: 0, ts_ns, orig_len: r.len, data: &c.data[at..at + n] }
                        .emit(buf);
                }
                if buf.len() > MAX_PENDING_CAPTURE {
                    tracing::warn!("capture of job {job}: {} bytes wait for the manager; dropping them", buf.len());
                    buf.clear();
                }
            }
            drop(plane);
            for (job, buf) in pending.iter_mut().filter(|(_, b)| !b.is_empty()) {
                // In pieces of whole blocks within the API's body limit.
                while !buf.is_empty() {
                    let mut n = 0;
                    for p in netslice_wire::pcapng::Packets::new(buf).flatten() {
                        if n > 0 && n + p.block_len() > netslice_api::MAX_UPLOAD {
                            break;
                        }
                        n += p.block_len();
                    }
                    match self.authed().upload_capture(&self.opts.host, *job, buf[..n].to_vec()).await {
                        Ok(s) => {
                            if s.left_out > 0 {
                                tracing::debug!(
                                    "capture of job {job}: the manager left out {} bytes (cap)",
                                    s.left_out
                                );
                            }
                            buf.drain(..n);
                        }
                        // The job is gone or done, or no longer has a point here.
                        Err(e) if matches!(e.status(), Some(400 | 403 | 404 | 409)) => {
                            tracing::debug!("capture of job {job} not taken: {e}");
                            buf.clear();
                        }
                        Err(e) => {
                            tracing::debug!("capture upload of job {job} failed (will retry): {e}");
                            break;
                        }
                    }
                }
            }
            pending.retain(|_, b| !b.is_empty());
        }
    }

    /// At every whole Unix second, keeps every rule's counters (the last
    /// [`SECONDS_KEPT`]); reports carry them, for the guarantee check's
    /// one-second windows.
    async fn second_loop(self: Arc<Self>) {
        loop {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let next = now.as_secs() + 1;
            tokio::time::sleep(Duration::from_secs(next) - now).await;
            let counters = self.shared.plane.load().pipe.tables.snapshot(&self.opts.host);
            let mut s = self.seconds.lock().expect("seconds lock");
            s.push_back((next, counters));
            while s.len() > SECONDS_KEPT {
                s.pop_front();
            }
        }
    }

    /// The samples of the last seconds in a report's shape: each rule by its
    /// index in `counters`.
    fn second_samples(&self, counters: &[netslice_model::api::RuleCounters]) -> Vec<netslice_model::api::SecondSample> {
        let index: std::collections::HashMap<(&str, &str, Option<_>, Option<_>), u32> = counters
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.slice.as_str(), c.link.as_str(), c.direction, c.stage), i as u32))
            .collect();
        let s = self.seconds.lock().expect("seconds lock");
        s.iter()
            .map(|(t, rules)| netslice_model::api::SecondSample {
                t: *t,
                rules: rules
                    .iter()
                    .filter_map(|c| {
                        let i = *index.get(&(c.slice.as_str(), c.link.as_str(), c.direction, c.stage))?;
                        Some(netslice_model::api::RuleSample { i, p: c.packets, b: c.bytes, d: c.drops.clone() })
                    })
                    .collect(),
            })
            .collect()
    }

    async fn report_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.opts.report_every);
        loop {
            tick.tick().await;
            self.report().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_port_zero_is_recorded_and_kept_across_restarts_while_free() {
        let dir = tempfile::tempdir().unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let first = listen_metrics(any, dir.path()).await.unwrap().local_addr().unwrap();
        assert_ne!(first.port(), 0);
        let recorded = std::fs::read_to_string(metrics_addr_path(dir.path())).unwrap();
        assert_eq!(recorded.trim(), first.to_string());
        // A restart (the first listener is gone) gets the same port back.
        let again = listen_metrics(any, dir.path()).await.unwrap();
        assert_eq!(again.local_addr().unwrap(), first);
        // While something else holds it, another port is picked and recorded.
        let other = listen_metrics(any, dir.path()).await.unwrap().local_addr().unwrap();
        assert_ne!(other, first);
        assert_eq!(std::fs::read_to_string(metrics_addr_path(dir.path())).unwrap().trim(), other.to_string());
        // An explicit port is used as given, never swapped for the recorded one.
        drop(again);
        let explicit = listen_metrics(first, dir.path()).await.unwrap().local_addr().unwrap();
        assert_eq!(explicit, first);
    }
}
