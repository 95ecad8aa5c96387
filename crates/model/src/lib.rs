//! The data model of netslice: what people write (slice specs, substrate
//! descriptions), what the manager decides (plans, per-host desired configs) and what
//! travels over the REST API. Validation lives here so that the CLI, the manager and
//! the agents refuse the same things with the same field-naming errors.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod capacity;
pub mod document;
pub mod error;
pub mod ids;
pub mod names;
pub mod spec;
pub mod substrate;
pub mod types;
pub mod units;

pub use document::{Format, parse_as, parse_document};
pub use error::{FieldError, SpecError};
pub use ids::{HostName, Label, LinkName, NodeName, PhysLinkName, PortNo, SliceName};
pub use spec::{Isolation, LinkType, SliceQos, SliceSpec};
pub use substrate::{Role, Substrate, SubstrateSpec};
pub use units::{Bandwidth, Bytes, Memory, Micros, Percent};
