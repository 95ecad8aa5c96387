//! The manager's REST API as its clients see it: the request and response
//! types ([`types`]; the documents they carry are `netslice-model`'s), the
//! paths ([`paths`]: names checked and every segment encoded), the HTTPS
//! client ([`http`]) and one typed client ([`client::Client`]) that the CLI,
//! the agents and the tests use (and, later, the portal and the federation
//! endpoint). The manager serves these types; it does not define them.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod client;
pub mod etag;
pub mod http;
pub mod metrics;
pub mod paths;
pub mod types;

pub use client::{Applied, Client, Error, WaitError};

/// Most bytes of one capture upload (`POST /api/v1/nodes/{host}/captures/{id}`):
/// the API's body limit; an agent sends more in several.
pub const MAX_UPLOAD: usize = netslice_model::document::LIMITS.max_bytes;
pub use paths::{BadName, Route};
