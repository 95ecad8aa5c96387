//! The `netslice` command line: the manager and node-agent daemons, the local
//! testbed, the client of the REST API, small traffic tools, and the demo.

#![warn(missing_docs, unreachable_pub)]

/// Writes a line for people to stderr. Unlike `eprintln!`, a closed stderr
/// does not panic: the demo must go on to remove its testbed.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes a result line to stdout; a closed stdout does not panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod client;
pub mod demo;
pub mod graph;
pub mod relay;
pub mod slice;
pub mod supervise;
pub mod testbed;
pub mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

/// Slices of programmable virtual networks on shared Linux hosts.
#[derive(Debug, Parser)]
#[command(name = "netslice", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter for daemons (tracing `EnvFilter` syntax, e.g. `info`, `netslice_agent=debug`).
    #[arg(long, global = true, env = "NETSLICE_LOG", default_value = "info")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the client finds the manager.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Manager URL (default: the manager of the only local testbed that is up).
    #[arg(long, global = true, env = "NETSLICE_MANAGER")]
    pub manager: Option<String>,
    /// Local testbed whose manager to use.
    #[arg(long, global = true, env = "NETSLICE_TESTBED")]
    pub testbed: Option<String>,
    /// Directory holding local testbed state.
    #[arg(long, global = true, env = "NETSLICE_STATE_ROOT", default_value = testbed::DEFAULT_STATE_ROOT)]
    pub state_root: PathBuf,
    /// API token (prefer --token-file: command lines are visible to other users).
    #[arg(long, global = true, env = "NETSLICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token.
    #[arg(long, global = true, env = "NETSLICE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Certificate (PEM) to trust for the manager: its self-signed certificate or your CA.
    #[arg(long, global = true, env = "NETSLICE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the management system (REST API, SNC/TNC, store).
    Manager(ManagerArgs),
    /// Run the node agent of a substrate host, or list hosts (`node list`).
    Node(NodeArgs),
    /// Build or remove a substrate of namespaces on this machine.
    #[command(subcommand)]
    Testbed(TestbedCmd),
    /// Create, inspect, renew and delete slices.
    #[command(subcommand)]
    Slice(SliceCmd),
    /// Show the substrate: hosts and links, reserved and free per resource.
    #[command(subcommand)]
    Substrate(SubstrateCmd),
    /// Check a token against a manager and keep both for later commands.
    Login(LoginArgs),
    /// Show who the current token belongs to.
    Whoami {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Add or revoke users (operators only).
    #[command(subcommand)]
    User(UserCmd),
    /// Show the audit trail: every change with who made it (operators only).
    Audit {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many records (1-1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
        /// Print JSON.
        #[arg(short, long)]
        json: bool,
    },
    /// List the node and link types this deployment offers, with their parameters.
    Types {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(short, long)]
        json: bool,
        /// The types built into this binary, without asking a manager.
        #[arg(long)]
        builtin: bool,
    },
    /// Small traffic tools to run inside slivers (`slice exec ... -- netslice tool ...`).
    #[command(subcommand)]
    Tool(tools::ToolCmd),
    /// Bring up the example testbed, run slices and traffic, print a summary, tear down.
    Demo(demo::DemoArgs),
}

/// `netslice manager`.
#[derive(Debug, Args)]
pub struct ManagerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7300")]
    pub listen: SocketAddr,
    /// SQLite database file (created if missing).
    #[arg(long, default_value = "/var/lib/netslice/manager.db")]
    pub db: PathBuf,
    /// Substrate description to load (stored at first start).
    #[arg(long)]
    pub substrate: Option<PathBuf>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); default: a self-signed one created beside the database, in tls/.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where to write the first operator token (user "admin") when no user exists; default: beside the database.
    #[arg(long)]
    pub operator_token_file: Option<PathBuf>,
    /// Enrollment token agents present to register (read, or created if missing); default: beside the database.
    #[arg(long)]
    pub enroll_token_file: Option<PathBuf>,
    /// Lease of a slice that asks for none (e.g. 24h, 90m, 3600s).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub lease_default: netslice_model::Micros,
    /// Longest lease a slice may have.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub lease_max: netslice_model::Micros,
}

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
    pub io: netslice_agent::xsk::IoMode,
    /// Forwarding worker threads fed by flow hash (0: each receiving thread
    /// forwards what it reads). Slices with `qos.cpus` get their own pinned
    /// workers either way.
    #[arg(long, env = "NETSLICE_WORKERS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub workers: u16,
}

/// `netslice login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Manager URL (default: the only local testbed that is up).
    #[arg(long, env = "NETSLICE_MANAGER")]
    pub manager: Option<String>,
    /// File holding the token (default: read it from standard input).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Certificate (PEM) to trust for the manager; copied beside the saved token.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Directory holding local testbed state.
    #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = testbed::DEFAULT_STATE_ROOT)]
    pub state_root: PathBuf,
}

/// `netslice substrate ...`.
#[derive(Debug, Subcommand)]
pub enum SubstrateCmd {
    /// Hosts and links with reserved and free cpu, memory, slots, ports and bandwidth.
    Show {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(short, long)]
        json: bool,
    },
}

/// `netslice user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user and print their token (shown once; only its hash is kept).
    Add {
        /// User name.
        name: String,
        /// Make the user an operator (sees and changes every slice, manages users).
        #[arg(long)]
        operator: bool,
        /// Write the new user's token to this file (mode 0600) instead of printing it.
        #[arg(long)]
        save_token: Option<PathBuf>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Revoke every token of a user.
    Revoke {
        /// User name.
        name: String,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
}

/// `netslice node ...` client commands.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// List substrate hosts and the health of their agents.
    List {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(short, long)]
        json: bool,
    },
}

/// `netslice testbed ...`.
#[derive(Debug, Subcommand)]
pub enum TestbedCmd {
    /// Build the substrate of FILE on this machine: namespaces, links, manager, agents.
    Up {
        /// Substrate description (YAML or JSON).
        file: PathBuf,
        /// Testbed name (default: the substrate's name).
        #[arg(long)]
        name: Option<String>,
        /// Directory holding local testbed state.
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
    /// Remove everything `up` made (also after a crash).
    Down {
        /// Testbed name, or the substrate file it was built from.
        name: Option<String>,
        /// Directory holding local testbed state.
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
    /// Show local testbeds and their processes.
    Status {
        /// Directory holding local testbed state.
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
    /// Supervise the manager and agents of a testbed (started by `up`).
    #[command(hide = true)]
    Supervise {
        /// Testbed directory.
        dir: PathBuf,
    },
    /// Restart the manager or one agent of a testbed (kills it first if running).
    Restart {
        /// Testbed name.
        name: String,
        /// Restart the agent of this host.
        #[arg(long, conflicts_with = "manager", required_unless_present = "manager")]
        agent: Option<String>,
        /// Restart the manager.
        #[arg(long)]
        manager: bool,
        /// Directory holding local testbed state.
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
}

/// `netslice slice ...`.
#[derive(Debug, Subcommand)]
pub enum SliceCmd {
    /// Create a slice from a spec file, or change a running one to match it (an
    /// identical slice is left alone).
    Apply {
        /// Slice spec (YAML or JSON); `-` reads standard input.
        #[arg(short, long)]
        file: PathBuf,
        /// Only check admission and show the plan; reserve and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the slice to become ready (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// List slices.
    List {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(short, long)]
        json: bool,
    },
    /// Show a slice: placement, paths, labels, counters.
    Show {
        /// Slice name.
        name: String,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Print JSON.
        #[arg(short, long)]
        json: bool,
    },
    /// Draw a slice: its virtual topology, with `--placement` its embedding
    /// (hosts, paths, labels). `dot -Tsvg`, Markdown's Mermaid, or JSON.
    Graph {
        /// Slice name.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "dot")]
        output: graph::GraphFormat,
        /// Draw the hosts each node runs on and each link's path and labels.
        #[arg(long)]
        placement: bool,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Extend a slice's lease.
    Renew {
        /// Slice name.
        name: String,
        /// New lease from now (default: the operator's default lease).
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<netslice_model::Micros>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Delete a slice.
    Delete {
        /// Slice name.
        name: String,
        /// Seconds to wait for the agents to tear it down (0: do not wait).
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Run a program inside a sliver (on this machine): `slice exec SLICE NODE -- CMD ARGS...`.
    Exec {
        /// Slice name.
        slice: String,
        /// Virtual node name.
        node: String,
        /// Program and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
}

fn init_tracing(filter: &str) {
    let f =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(f).with_writer(std::io::stderr).with_target(false).try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a command may be cut short by a closed pipe (`netslice types |
/// head -1`) without leaving anything half done: client commands, whose one
/// request is answered (or not) before they print. Not the daemons, the
/// tools that run inside slivers, the demo, or the testbed commands that
/// build, restart or remove processes and namespaces: they must finish, and
/// their output lines ignore a closed pipe instead.
fn prints_only(c: &Command) -> bool {
    !matches!(
        c,
        Command::Manager(_)
            | Command::Node(NodeArgs { command: None, .. })
            | Command::Tool(_)
            | Command::Demo(_)
            | Command::Testbed(
                TestbedCmd::Up { .. }
                    | TestbedCmd::Down { .. }
                    | TestbedCmd::Restart { .. }
                    | TestbedCmd::Supervise { .. }
            )
    )
}

fn run(cli: Cli) -> Result<ExitCode> {
    if prints_only(&cli.command) {
        // A closed stdout ends the command quietly, as it does `ls` or `cat`.
        netslice_io::process::default_sigpipe();
    }
    match cli.command {
        Command::Manager(a) => {
            init_tracing(&cli.log);
            run_manager(a)
        }
        Command::Node(NodeArgs { command: Some(NodeCmd::List { target, json }), .. }) => {
            runtime()?.block_on(slice::node_list(&target, json))
        }
        Command::Node(a) => {
            init_tracing(&cli.log);
            run_agent(a)
        }
        Command::Testbed(t) => {
            if matches!(t, TestbedCmd::Supervise { .. }) {
                init_tracing(&cli.log);
            }
            testbed::command(t)
        }
        Command::Slice(SliceCmd::Exec { slice, node, cmd, target }) => {
            let netns = runtime()?.block_on(slice::sliver_netns(&target, &slice, &node))?;
            Err(slice::exec(&netns, &cmd))
        }
        Command::Slice(s) => runtime()?.block_on(slice::command(s)),
        Command::Substrate(SubstrateCmd::Show { target, json }) => {
            runtime()?.block_on(slice::substrate_show(&target, json))
        }
        Command::Login(a) => runtime()?.block_on(slice::login(a)),
        Command::Whoami { target } => runtime()?.block_on(slice::whoami(&target)),
        Command::User(u) => runtime()?.block_on(slice::user(u)),
        Command::Audit { target, after, limit, json } => runtime()?.block_on(slice::audit(&target, after, limit, json)),
        Command::Types { target, json, builtin } => runtime()?.block_on(slice::types(&target, json, builtin)),
        Command::Tool(t) => tools::command(t),
        Command::Demo(d) => demo::run(d),
    }
}

fn run_manager(a: ManagerArgs) -> Result<ExitCode> {
    let substrate = match &a.substrate {
        Some(p) => Some(testbed::load_substrate(p)?),
        None => None,
    };
    if let Some(dir) = a.db.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = runtime()?;
    if a.lease_default > a.lease_max {
        anyhow::bail!("--lease-default ({}) is longer than --lease-max ({})", a.lease_default, a.lease_max);
    }
    rt.block_on(async {
        let mut opts = netslice_manager::Options::new(a.listen, a.db.clone(), substrate);
        if let (Some(cert), Some(key)) = (a.tls_cert, a.tls_key) {
            opts.tls = netslice_manager::CertSource::Files { cert, key };
        }
        if let Some(f) = a.operator_token_file {
            opts.operator_token_file = f;
        }
        if let Some(f) = a.enroll_token_file {
            opts.enroll_token_file = f;
        }
        opts.policy = netslice_manager::Policy { lease_default: a.lease_default.secs(), lease_max: a.lease_max.secs() };
        let started = netslice_manager::start(opts, shutdown_signal()).await?;
        tracing::info!("clients trust {}", started.cert.display());
        if let Some(f) = &a.addr_file {
            std::fs::write(f, started.addr.to_string()).with_context(|| format!("writing {}", f.display()))?;
        }
        started.serve.await.context("serving")?;
        tracing::info!("manager stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn run_agent(a: NodeArgs) -> Result<ExitCode> {
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
    };
    runtime()?.block_on(netslice_agent::run(opts, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}
