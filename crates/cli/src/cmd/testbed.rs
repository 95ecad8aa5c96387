//! `netslice testbed ...`: a substrate of namespaces on this machine
//! (`netslice-testbed`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

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
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
    /// Remove everything `up` made (also after a crash).
    Down {
        /// Testbed name, or the substrate file it was built from.
        name: Option<String>,
        /// Directory holding local testbed state.
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
    /// Show local testbeds and their processes.
    Status {
        /// Directory holding local testbed state.
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
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
        #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
        state_root: PathBuf,
    },
}

/// `netslice testbed ...`.
pub fn command(cmd: TestbedCmd) -> Result<ExitCode> {
    use netslice_testbed::{down, host_netns, is_ours, list, proc_line, resolve, restart, up};
    match cmd {
        TestbedCmd::Up { file, name, state_root } => {
            let st = up(&file, name.as_deref(), &state_root)?;
            out!("{}", st.manager_url);
            Ok(ExitCode::SUCCESS)
        }
        TestbedCmd::Down { name, state_root } => {
            let name = resolve(name.as_deref(), &state_root)?;
            down(&name, &state_root)?;
            Ok(ExitCode::SUCCESS)
        }
        TestbedCmd::Status { state_root } => {
            let v = list(&state_root);
            if v.is_empty() {
                println!("no local testbeds");
            }
            for st in v {
                println!("{}  {}  manager {}  ({})", st.name, st.phase, st.manager_url, st.dir.display());
                match &st.supervisor {
                    Some(p) => println!(
                        "  supervisor pid {:<8} {}",
                        p.pid,
                        if is_ours(p, &st.dir) {
                            "running"
                        } else {
                            "STOPPED (daemons are not restarted; `netslice testbed restart` starts it again)"
                        }
                    ),
                    None => println!("  supervisor none (a testbed from an older netslice)"),
                }
                if let Some(p) = &st.manager {
                    println!("{}", proc_line("manager", p, &st.dir));
                }
                for (h, p) in &st.agents {
                    let metrics = netslice_testbed::metrics_addr(&st, h)
                        .map(|a| format!("  metrics http://{a}/metrics"))
                        .unwrap_or_default();
                    println!("{}  netns {}{metrics}", proc_line(h, p, &st.dir), host_netns(&st.name, h));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TestbedCmd::Supervise { dir } => {
            netslice_testbed::supervise::run(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        TestbedCmd::Restart { name, agent, manager, state_root } => {
            restart(&name, &state_root, agent.as_deref(), manager)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
