//! The forwarding pipeline of a host, sans-IO: everything that decides what
//! happens to a frame after the redirector's verdict
//! ([`netslice_dataplane::Tables`]), with no sockets, threads, locks, OS clock
//! or OS randomness inside. Callers pass `now` and own every buffer and
//! device; the agent drives it from real devices and threads, the in-memory
//! harness (`netslice-sim`) from a virtual clock.
//!
//! A frame's path through it:
//!
//! ```text
//! redirector verdict (Tables::on_port / on_substrate)
//!   -> Dispatch::handle          loss (seeded), cut super-frames where the
//!                                 path cannot carry them, node programs
//!                                 (their outputs go back to the redirector)
//!   -> EgressPort::enqueue        the port's class (slice > virtual link)
//!   -> EgressPort::poll_transmit  what the scheduler lets go at `now`
//!   -> DelayLine (if the link delays) -> the caller's device
//! ```
//!
//! - [`plan`]: from a host's `NodeConfig` and tables to its egress ports,
//!   their classes and every rule's [`plan::Route`] (ports and classes by id).
//! - [`dispatch`]: the per-frame step above ([`dispatch::Dispatch`]), one
//!   per forwarding thread.
//! - [`egress`]: ports with quinn's shape: `enqueue`, `poll_transmit(now)`,
//!   `poll_timeout`.
//! - [`impair`]: delay lines as deadline queues; loss probabilities.
//! - [`host`]: all of it composed for one owner ([`host::Host`]): frames in,
//!   transmits and timeouts out.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod buffers;
pub mod dispatch;
pub mod egress;
pub mod host;
pub mod impair;
pub mod plan;
pub mod rng;

pub use buffers::{Buffers, VecPool};
pub use dispatch::{Dispatch, Programs};
pub use egress::{ClassKey, EgressPort, Pkt, PortKey, PortKind, PortPlan, TxDst};
pub use host::{Host, Transmit};
pub use impair::{DelayLine, Impairment};
pub use plan::{NodeId, NodeInfo, Plane, PortId, Route};
