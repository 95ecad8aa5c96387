//! `netslice node`: the node agent daemon, and `node list`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use netslice_api::Client;

use crate::client::{Resolve, Target};
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

/// `netslice node`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    /// `node list`; none: run the agent.
    #[command(subcommand)]
    pub command: Option<NodeCmd>,
    /// Substrate host this agent serves.
    #[arg(long)]
    pub host: Option<String>,
    /// Manager URL.
    #[arg(long, env = "NETSLICE_MANAGER")]
    pub manager: Option<String>,
    /// Network namespace of this host's data plane (local testbed).
    #[arg(long)]
    pub netns: Option<String>,
    /// Agent state directory (keeps the node credential, the ledger and the last config).
    #[arg(long, default_value = "/var/lib/netslice/agent")]
    pub state_dir: PathBuf,
    /// Enrollment token file, presented once to get this node's own credential.
    #[arg(long)]
    pub enroll_token_file: Option<PathBuf>,
    /// Certificate (PEM) to trust for the manager.
    #[arg(long, env = "NETSLICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Substrate I/O: `auto` (AF_XDP where it works, else sockets), `xdp`
    /// (AF_XDP required), `sockets` (raw, UDP and packet sockets only).
    #[arg(long, env = "NETSLICE_IO", default_value = "auto")]
    pub io: netslice_io::IoMode,
    /// Forwarding worker threads fed by flow hash (0: each receiving thread
    /// forwards what it reads). Slices with `qos.cpus` get their own pinned
    /// workers either way.
    #[arg(long, env = "NETSLICE_WORKERS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub workers: u16,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (plain HTTP, no
    /// authentication: pick an address only your scraper reaches). Off
    /// unless given. Port 0 picks a free port (the same one after a restart
    /// where possible) and writes the address taken to
    /// STATE_DIR/metrics.addr.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `netslice node ...` client commands.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List substrate hosts and the health of their agents.
    List {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run_agent(a: NodeArgs) -> Result<ExitCode> {
    let host = a.host.context("`netslice node` needs --host NAME (or use `netslice node list`)")?;
    // The host name goes into the agent's API paths.
    netslice_model::names::host(&host).map_err(|e| anyhow::anyhow!("--host: {e}"))?;
    let manager = a.manager.context("`netslice node` needs --manager URL")?;
    if let Some(ns) = &a.netns
        && !netslice_io::netns::exists(ns)
    {
        anyhow::bail!("network namespace {ns:?} does not exist");
    }
    let opts = netslice_agent::Options {
        host,
        manager,
        netns: a.netns,
        state_dir: a.state_dir,
        enroll_token_file: a.enroll_token_file,
        ca_cert: a.ca_cert,
        io: a.io,
        workers: usize::from(a.workers),
        watch_wait: Duration::from_secs(25),
        report_every: Duration::from_secs(2),
        metrics_listen: a.metrics_listen,
    };
    crate::rt::runtime()?.block_on(netslice_agent::run(opts, crate::rt::shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// `node list`.
pub async fn list(target: &Target, format: Format) -> Result<ExitCode> {
    let hosts = Client::from_target(target)?.nodes().await?;
    if print_data(format, &hosts)? {
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Name {
        print_names(hosts.iter().map(|h| h.name.as_str()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut cols = vec![
        ("HOST", Align::Left),
        ("ROLE", Align::Left),
        ("STATE", Align::Left),
        ("SLIVERS", Align::Right),
        ("APPLIED", Align::Right),
        ("DESIRED", Align::Right),
        ("IO", Align::Left),
        ("ERRORS", Align::Right),
    ];
    if format == Format::Wide {
        cols.push(("LAST SEEN", Align::Right));
        cols.push(("FORWARDING", Align::Left));
    }
    let mut t = Table::new(&cols);
    for h in &hosts {
        t.row(vec![
            h.name.clone(),
            h.role.as_str().into(),
            format!("{:?}", h.state).to_lowercase(),
            h.slivers.to_string(),
            h.applied_revision.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            h.desired_revision.to_string(),
            h.io_backend.clone().unwrap_or_else(|| "-".into()),
            h.errors.len().to_string(),
            h.last_seen_secs.map(|s| format!("{s}s ago")).unwrap_or_else(|| "never".into()),
            h.forwarding.clone().unwrap_or_default(),
        ]);
    }
    t.print()?;
    for h in &hosts {
        for e in &h.errors {
            println!(
                "{}: error: {}{}",
                h.name,
                e.slice.as_ref().map(|s| format!("slice {s}: ")).unwrap_or_default(),
                e.message
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
