//! What the commands share: the async runtime, the shutdown signal, the
//! duration grammar of the command line.

use anyhow::{Context, Result};

/// Parses a duration in the one grammar of netslice (specs, API and command
/// line alike, `netslice_model::Micros`): a number and a unit, `us`, `ms`,
/// `s`, `m`, `h` or `d` (`90s`, `30m`, `24h`, `7d`, `1.5h`).
pub fn parse_duration(s: &str) -> std::result::Result<netslice_model::Micros, String> {
    let d: netslice_model::Micros = s.parse().map_err(|e: netslice_model::units::UnitError| e.0)?;
    if d.secs() == 0 || d.secs() > 10 * 365 * 86_400 {
        return Err(format!("{s:?} is outside 1s..3650d"));
    }
    Ok(d)
}

/// The async runtime of client commands and daemons: two workers.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
