//! The data model of netslice: what people write (slice specs, substrate
//! descriptions), what the manager decides (plans, per-host desired configs) and what
//! travels over the REST API. Validation lives here so that the CLI, the manager and
//! the agents refuse the same things with the same field-naming errors.

#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod spec;
pub mod substrate;
pub mod types;
pub mod units;

pub use error::{FieldError, SpecError, parse_document};
pub use spec::{Isolation, LinkType, SliceQos, SliceSpec};
pub use substrate::{Role, Substrate, SubstrateSpec};
pub use units::{Bandwidth, Memory, Micros, Percent};
