//! The `netslice` command line: one module per command ([`cmd`]), each
//! owning its arguments. The daemons are the manager's and the agents'
//! crates, the testbed and the demo are `netslice-testbed`'s, the traffic
//! tools `netslice-tools`'; this crate parses, resolves the manager
//! ([`client`]) and prints ([`output`]).

#![warn(missing_docs, unreachable_pub)]

/// Writes a line for people to stderr. Unlike `eprintln!`, a closed stderr
/// does not panic.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes a result line to stdout; a closed stdout (`| head`) does not panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod client;
pub mod cmd;
pub mod graph;
pub mod logging;
pub mod output;
pub mod rt;

pub use rt::{parse_duration, runtime, shutdown_signal};

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

pub use client::Target;
use cmd::node::{NodeArgs, NodeCmd};
use cmd::testbed::TestbedCmd;

/// Slices of programmable virtual networks on shared Linux hosts.
#[derive(Debug, Parser)]
#[command(name = "netslice", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log filter for daemons (tracing `EnvFilter` syntax, e.g. `info`, `netslice_agent=debug`).
    #[arg(long, global = true, env = "NETSLICE_LOG", default_value = "info")]
    pub log: String,
    /// Log format of daemons: `text` (colours only on a terminal) or `json`
    /// (one object per line).
    #[arg(long, global = true, env = "NETSLICE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: logging::LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the management system (REST API, SNC/TNC, store).
    Manager(cmd::manager::ManagerArgs),
    /// Run the node agent of a substrate host, or list hosts (`node list`).
    Node(NodeArgs),
    /// Build or remove a substrate of namespaces on this machine.
    #[command(subcommand)]
    Testbed(TestbedCmd),
    /// Create, inspect, watch, renew and delete slices.
    #[command(subcommand)]
    Slice(cmd::slice::SliceCmd),
    /// Measurement jobs: count and capture a slice's frames at chosen points and times.
    #[command(subcommand)]
    Measure(cmd::measure::MeasureCmd),
    /// Show the substrate: hosts and links, reserved and free per resource.
    #[command(subcommand)]
    Substrate(cmd::substrate::SubstrateCmd),
    /// Check a token against a manager and keep both for later commands.
    Login(cmd::login::LoginArgs),
    /// Show who the current token belongs to.
    Whoami {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Add, list or revoke users (operators only).
    #[command(subcommand)]
    User(cmd::user::UserCmd),
    /// Show the audit trail: every change with who made it (operators only).
    Audit(cmd::audit::AuditArgs),
    /// List the node and link types this deployment offers, with their parameters.
    Types(cmd::types::TypesArgs),
    /// Small traffic tools to run inside slivers (`slice exec ... -- netslice tool ...`).
    #[command(subcommand)]
    Tool(cmd::tool::ToolCmd),
    /// Bring up the example testbed, run slices and traffic, print a summary, tear down.
    Demo(cmd::demo::DemoArgs),
    /// Print a shell completion script (`source <(netslice completions bash)`).
    Completions(cmd::completions::CompletionsArgs),
    /// Write man pages into a directory.
    Man(cmd::completions::ManArgs),
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
/// request is answered (or not) before they print, and the traffic tools
/// (`tool ping ... | head -3` ends like `ping | head -3`). Not the daemons,
/// the relay (a benchmark's long-running hop), the demo, or the testbed
/// commands that build, restart or remove processes and namespaces: they
/// must finish, and their output lines ignore a closed pipe instead.
fn prints_only(c: &Command) -> bool {
    !matches!(
        c,
        Command::Manager(_)
            | Command::Node(NodeArgs { command: None | Some(NodeCmd::Calibrate { .. }), .. })
            | Command::Tool(cmd::tool::ToolCmd::Relay { .. })
            | Command::Demo(_)
            | Command::Man(_)
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
    let daemon_logs = || logging::init(&cli.log, cli.log_format);
    match cli.command {
        Command::Manager(a) => {
            daemon_logs();
            cmd::manager::run(a)
        }
        Command::Node(NodeArgs { command: Some(NodeCmd::List { target, output }), .. }) => {
            runtime()?.block_on(cmd::node::list(&target, output.format()))
        }
        Command::Node(NodeArgs {
            command: Some(NodeCmd::Calibrate { out, io, link_types, sizes, seconds, if_stale }),
            ..
        }) => cmd::node::calibrate(&out, io, link_types, sizes, seconds, if_stale),
        Command::Node(a) => {
            daemon_logs();
            cmd::node::run_agent(a)
        }
        Command::Testbed(t) => {
            if matches!(t, TestbedCmd::Supervise { .. }) {
                daemon_logs();
            }
            cmd::testbed::command(t)
        }
        Command::Slice(cmd::slice::SliceCmd::Exec { slice, node, cmd, target }) => {
            let netns = runtime()?.block_on(cmd::slice::sliver_netns(&target, &slice, &node))?;
            Err(cmd::slice::exec(&netns, &cmd))
        }
        Command::Slice(s) => runtime()?.block_on(cmd::slice::command(s)),
        Command::Measure(m) => runtime()?.block_on(cmd::measure::command(m)),
        Command::Substrate(s) => runtime()?.block_on(cmd::substrate::command(s)),
        Command::Login(a) => runtime()?.block_on(cmd::login::login(a)),
        Command::Whoami { target } => runtime()?.block_on(cmd::login::whoami(&target)),
        Command::User(u) => runtime()?.block_on(cmd::user::command(u)),
        Command::Audit(a) => runtime()?.block_on(cmd::audit::run(a)),
        Command::Types(a) => runtime()?.block_on(cmd::types::run(a)),
        Command::Tool(t) => cmd::tool::command(t),
        Command::Demo(d) => cmd::demo::run(d),
        Command::Completions(a) => cmd::completions::completions(a, Cli::command()),
        Command::Man(a) => cmd::completions::man(a, Cli::command()),
    }
}
