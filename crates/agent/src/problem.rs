//! What can go wrong applying a config, as a type: the control thread
//! collects these, the report turns them into the API's `ApplyError`s.

use netslice_model::api::ApplyError;
use netslice_model::{NodeName, SliceName};

/// A problem met applying a config; reported to the manager.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A sliver could not be made (or removed) as configured.
    #[error("{message}")]
    Sliver {
        /// Slice.
        slice: SliceName,
        /// Node.
        node: NodeName,
        /// What failed.
        message: String,
    },
    /// A fast-path node's program could not start.
    #[error("{error}")]
    Program {
        /// Slice.
        slice: SliceName,
        /// Node.
        node: NodeName,
        /// What the node type said.
        error: netslice_dataplane::InstantiateError,
    },
    /// A rule could not be built.
    #[error(transparent)]
    Rule(#[from] netslice_dataplane::RuleError),
    /// AF_XDP was required (`--io xdp`) and failed on an interface.
    #[error("AF_XDP on {ifname}: {message}")]
    Xdp {
        /// The interface.
        ifname: String,
        /// Why.
        message: String,
    },
    /// A slice asks for CPUs this host does not have.
    #[error("{slice}: CPUs {cpus:?} are not available here")]
    MissingCpus {
        /// The slice.
        slice: SliceName,
        /// The CPUs missing.
        cpus: Vec<usize>,
    },
    /// A forwarding thread could not be started.
    #[error("{what}: not started: {message}")]
    Thread {
        /// What it would serve.
        what: String,
        /// Why.
        message: String,
    },
    /// A dedicated slice's own receive path is incomplete.
    #[error("{0}")]
    SliceRx(String),
    /// A sliver port could not be polled.
    #[error("{0}")]
    Poller(String),
    /// A physical interface's socket for the Ethernet-layer link types
    /// could not be opened.
    #[error("no packet socket on {ifname}: {message} (Ethernet-layer link types do not cross it)")]
    PacketSocket {
        /// The interface.
        ifname: String,
        /// Why.
        message: String,
    },
}

impl Problem {
    /// As the API reports it.
    pub fn to_api(&self) -> ApplyError {
        let (slice, node) = match self {
            Problem::Sliver { slice, node, .. } | Problem::Program { slice, node, .. } => {
                (Some(slice.to_string()), Some(node.to_string()))
            }
            Problem::MissingCpus { slice, .. } => (Some(slice.to_string()), None),
            _ => (None, None),
        };
        ApplyError { slice, node, message: self.to_string() }
    }

    /// Whether the manager is told (problems of the best-effort kind, such
    /// as a missing dedicated receive socket, only show under `forwarding`).
    pub(crate) fn reported(&self) -> bool {
        !matches!(self, Problem::MissingCpus { .. } | Problem::SliceRx(_))
    }
}
