//! The management system (`netslice manager`): REST API, the SNC/TNC of
//! `netslice-embed`, the SQLite store, and the desired config of every agent.
//!
//! Control flow (design brief §4): a slice spec arrives over the API, is validated
//! and planned, committed to the store with a new revision for every host whose
//! desired config changed, and long-polling agents are woken to fetch it. Agents
//! report applied revisions and counters; the slice's state is derived from those.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod api;
mod api_monitor;
pub mod auth;
pub mod caller;
pub mod extract;
pub mod filter;
pub mod monitor;
pub mod owner;
pub mod records;
pub mod state;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use netslice_model::Substrate;

pub use owner::{Lane, Manager};
pub use state::{Core, ManagerError, Policy, Precondition, Snapshot};
pub use tls::CertSource;

/// How the manager is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen address.
    pub listen: SocketAddr,
    /// SQLite database file.
    pub db: PathBuf,
    /// Substrate to store at first start (or to replace one with no slices).
    pub substrate: Option<Substrate>,
    /// The listener's certificate.
    pub tls: CertSource,
    /// Where the first operator token is written when no user exists yet.
    pub operator_token_file: PathBuf,
    /// The enrollment token agents present to register (read, or created).
    pub enroll_token_file: PathBuf,
    /// Lease policy.
    pub policy: Policy,
    /// Most connections from one address (default
    /// [`MAX_CONNECTIONS_PER_PEER`]); raise it when many clients share an
    /// address (behind NAT, or a benchmark's simulated agents on loopback).
    pub connections_per_peer: usize,
}

impl Options {
    /// Defaults that keep everything beside the database: `tls/`,
    /// `operator.token`, `enroll.token`.
    pub fn new(listen: SocketAddr, db: PathBuf, substrate: Option<Substrate>) -> Options {
        let dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
        let names = if listen.ip().is_unspecified() { Vec::new() } else { vec![listen.ip().to_string()] };
        Options {
            listen,
            substrate,
            tls: CertSource::SelfSigned { dir: dir.join("tls"), names },
            operator_token_file: dir.join("operator.token"),
            enroll_token_file: dir.join("enroll.token"),
            policy: Policy::default(),
            connections_per_peer: MAX_CONNECTIONS_PER_PEER,
            db,
        }
    }
}

/// Why the manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// State could not be loaded.
    #[error(transparent)]
    State(#[from] ManagerError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A token file could not be read or written.
    #[error("{path}: {source}")]
    Token {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The state's owner thread could not start.
    #[error("cannot start the manager's state thread: {0}")]
    Thread(std::io::Error),
    /// Cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// A started manager.
#[derive(Debug)]
pub struct Started<F> {
    /// Bound address.
    pub addr: SocketAddr,
    /// The certificate clients should trust.
    pub cert: PathBuf,
    /// Serves until the shutdown future resolves.
    pub serve: F,
}

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Most connections served at once; more are closed at once (and logged).
pub const MAX_CONNECTIONS: usize = 1024;
/// Most connections from one address, so that one client cannot take every
/// slot (a local testbed's agents and clients all come from 127.0.0.1 and use
/// a few each).
pub const MAX_CONNECTIONS_PER_PEER: usize = 256;
/// Largest request head (request line and headers); a larger one is
/// answered 431 by the HTTP layer.
pub const MAX_HEAD: usize = 64 << 10;

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves: headers must
/// arrive within [`HEADER_TIMEOUT`] (a client that trickles them is cut off),
/// at most [`MAX_CONNECTIONS`] are open, and each is its own task, so no
/// client's connection waits for another's. On shutdown, requests in
/// progress get 5 s to finish.
async fn serve(
    mut listener: tls::TlsListener,
    router: axum::Router,
    per_peer_max: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::Listener;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_header_size(MAX_HEAD).keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_peer: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("{MAX_CONNECTIONS} connections open: closing the one from {peer}");
            continue;
        };
        let Some(peer_slot) = PeerSlot::take(&per_peer, peer.ip(), per_peer_max) else {
            tracing::warn!("{per_peer_max} connections open from {}: closing another", peer.ip());
            continue;
        };
        let svc = hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(api::Peer(peer));
                req
            },
        ));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(io), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection from {peer}: {e}");
            }
            drop((slot, peer_slot));
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {
            tracing::info!("closing connections still open after 5 s");
        }
    }
    Ok(())
}

/// One of a peer's connections; counted down when dropped.
struct PeerSlot {
    ip: std::net::IpAddr,
    table: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl PeerSlot {
    fn take(
        table: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
        max: usize,
    ) -> Option<PeerSlot> {
        let mut t = table.lock().expect("peer table");
        let n = t.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot { ip, table: table.clone() })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut t = self.table.lock().expect("peer table");
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

/// How often leases and finished deletions are looked at.
pub const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn read_or_create_secret(path: &Path) -> Result<String, StartError> {
    let err = |source| StartError::Token { path: path.to_path_buf(), source };
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(err(std::io::Error::new(std::io::ErrorKind::InvalidData, "empty token file"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = auth::new_secret();
            netslice_io::file::write_secret(path, &s).map_err(err)?;
            tracing::info!("created the agent enrollment token in {}", path.display());
            Ok(s)
        }
        Err(e) => Err(err(e)),
    }
}

/// Opens the store, sets up TLS and tokens, and binds the listener; returns the
/// bound address and a future that serves until `shutdown` resolves.
pub async fn start(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Started<impl std::future::Future<Output = std::io::Result<()>>>, StartError> {
    let now = std::time::SystemTime::now();
    let types = Arc::new(netslice_dataplane::Registry::builtin());
    let mut core = Core::open(&opts.db, opts.substrate, types, opts.policy, now)?;
    core.set_enrollment(&read_or_create_secret(&opts.enroll_token_file)?);
    if core.snapshot().creds().no_users() {
        let secret = core.add_user(now, "admin", true, None)?;
        netslice_io::file::write_secret(&opts.operator_token_file, &secret)
            .map_err(|source| StartError::Token { path: opts.operator_token_file.clone(), source })?;
        tracing::info!("no users yet: operator token for \"admin\" written to {}", opts.operator_token_file.display());
    }
    let tls_config = tls::server_config(&opts.tls)?;
    let manager = Manager::spawn(core).map_err(StartError::Thread)?;
    let app = api::App::new(manager.clone());
    let tcp = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    let addr = tcp.local_addr().map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    let listener =
        tls::TlsListener::new(tcp, tls_config).map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    tracing::info!("manager listening on https://{addr}");
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match manager.call(Lane::Fast, |s, now| s.tick(now)).await {
                Ok((done, _)) => done.iter().for_each(|line| tracing::info!("{line}")),
                Err(_) => return,
            }
        }
    });
    let serve = serve(listener, api::router(app), opts.connections_per_peer, shutdown);
    let serve = async move {
        let r = serve.await;
        housekeeping.abort();
        r
    };
    Ok(Started { addr, cert: opts.tls.cert_path(), serve })
}
