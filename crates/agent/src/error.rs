//! Why the agent could not start.

use std::path::PathBuf;

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
    Client(#[from] netslice_api::Error),
    /// The metrics address cannot be listened on.
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    MetricsListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The forwarding capacity could not be read or measured.
    #[error("forwarding capacity: {0}")]
    Capacity(String),
    /// The host name is not one (it goes into the agent's API paths).
    #[error("host: {0}")]
    Host(#[from] netslice_model::names::NameError),
}
