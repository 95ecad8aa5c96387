//! Daemon logs (manager, agents, the testbed supervisor): to stderr, as
//! text (with colours only on a terminal) or as one JSON object per line
//! (`--log-format json`, for log shippers). The manager writes one access
//! line per API request (target `netslice::access`) and one per change
//! (`netslice::audit`).

use std::io::IsTerminal;

/// How daemons write their logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (colours only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Starts logging with `filter` (tracing `EnvFilter` syntax; a bad one
/// falls back to `info` with a warning).
pub fn init(filter: &str, format: LogFormat) {
    let (f, bad) = match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (tracing_subscriber::EnvFilter::new("info"), Some(e)),
    };
    let b = tracing_subscriber::fmt().with_env_filter(f).with_writer(std::io::stderr);
    let done = match format {
        LogFormat::Text => b.with_target(false).with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => b.json().flatten_event(true).with_current_span(false).try_init(),
    };
    if let (Ok(()), Some(e)) = (done, bad) {
        tracing::warn!("--log {filter:?} is not a log filter ({e}); logging at info");
    }
}
