//! The management system (`netslice manager`): REST API, the SNC/TNC of
//! `netslice-embed`, the SQLite store, and the desired config of every agent.
//!
//! Control flow (design brief §4): a slice spec arrives over the API, is validated
//! and planned, committed to the store with a new revision for every host whose
//! desired config changed, and long-polling agents are woken to fetch it. Agents
//! report applied revisions and counters; the slice's state is derived from those.

#![forbid(unsafe_code)]

pub mod api;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use netslice_model::Substrate;
use tokio::sync::watch;

pub use state::{ManagerError, State};

/// How the manager is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen address.
    pub listen: SocketAddr,
    /// SQLite database file.
    pub db: PathBuf,
    /// Substrate to store at first start (or to replace one with no slices).
    pub substrate: Option<Substrate>,
}

/// Why the manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// State could not be loaded.
    #[error(transparent)]
    State(#[from] ManagerError),
    /// Cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Opens the store and binds the listener; returns the bound address and a future
/// that serves until `shutdown` resolves.
pub async fn start(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl std::future::Future<Output = std::io::Result<()>>), StartError> {
    let state = State::open(&opts.db, opts.substrate, Arc::new(netslice_dataplane::Registry::builtin()))?;
    let (changed, _) = watch::channel(state.revision());
    let app = api::App { state: Arc::new(Mutex::new(state)), changed };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    tracing::info!("manager listening on http://{addr}");
    let serve = axum::serve(listener, api::router(app)).with_graceful_shutdown(shutdown);
    Ok((addr, async move { serve.await }))
}
