//! `netslice demo`: the main job on a fresh machine (`netslice-testbed`'s demo).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// `netslice demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Testbed name (namespaces are named after it).
    #[arg(long, default_value = "demo")]
    pub name: String,
    /// Seconds of each TCP transfer.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Leave the testbed up at the end (remove it with `netslice testbed down NAME`).
    #[arg(long)]
    pub keep: bool,
    /// Directory holding local testbed state.
    #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
    pub state_root: PathBuf,
}

/// Runs the demo.
pub fn run(a: DemoArgs) -> Result<ExitCode> {
    netslice_testbed::demo::run(netslice_testbed::demo::DemoOptions {
        name: a.name,
        seconds: a.seconds,
        keep: a.keep,
        state_root: a.state_root,
    })
}
