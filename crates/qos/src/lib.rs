//! Isolation between slices, sans-IO: everything here takes `now` (nanoseconds on
//! any monotonic clock) and never reads a clock, sleeps or does I/O. Tests drive
//! it with a virtual clock; the agent drives it with the real one.
//!
//! - [`bucket::TokenBucket`]: a token bucket with exact integer arithmetic
//!   (tokens kept in byte-nanoseconds in `u128`/`i128`, so no rate or duration
//!   can overflow or round away bytes).
//! - [`policer`]: the three-color markers srTCM (RFC 2697), trTCM (RFC 2698) and
//!   the RFC 4115 two-rate marker, colour-blind and colour-aware.
//! - [`sched::Scheduler`]: a hierarchical shaper/scheduler per egress port:
//!   port rate -> slice (guaranteed rate, ceiling, weight) -> virtual link
//!   (guaranteed rate, ceiling, burst) -> bounded queue, siblings sharing spare
//!   capacity by deficit round robin or by weighted fair queueing.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod bucket;
pub mod policer;
pub mod sched;

/// Nanoseconds on the caller's monotonic clock.
pub type Nanos = u64;

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Why a parameter set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A rate is zero where it must not be, or a ceiling is below its rate.
    #[error("{0}")]
    Invalid(String),
}
