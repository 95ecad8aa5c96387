//! `netslice substrate show`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use netslice_api::Client;
use netslice_model::Bandwidth;
use netslice_tools::bytes;

use crate::client::{Resolve, Target};
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

/// `netslice substrate ...`.
#[derive(Debug, Subcommand)]
pub enum SubstrateCmd {
    /// Hosts and links with reserved and free cpu, memory, slots, ports and bandwidth.
    Show {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Runs a substrate command.
pub async fn command(cmd: SubstrateCmd) -> Result<ExitCode> {
    let SubstrateCmd::Show { target, output } = cmd;
    let format = output.format();
    let u = Client::from_target(&target)?.usage().await?;
    if print_data(format, &u)? {
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Name {
        print_names(u.hosts.iter().map(|h| h.name.as_str()))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("substrate {}", u.name);
    let mut t = Table::new(&[
        ("HOST", Align::Left),
        ("ROLE", Align::Left),
        ("CPU USED/ALL", Align::Right),
        ("MEMORY USED/ALL", Align::Right),
        ("SLIVERS", Align::Right),
        ("PORTS", Align::Right),
        ("FORWARDING", Align::Right),
        ("BUDGET FREE/ALL", Align::Right),
        ("FORWARDS PER CORE", Align::Left),
    ]);
    for h in &u.hosts {
        // What one core forwards at the ends of a path, at 1500 and 200 bytes.
        let per_core = h
            .capacity
            .as_ref()
            .and_then(|c| c.link_types.first().map(|l| (c, l)))
            .map(|(c, l)| {
                format!(
                    "{} {:.0}k/{:.0}k frames/s at 1500/200 B ({})",
                    l.link_type,
                    l.ends.frames_per_core(1500) / 1e3,
                    l.ends.frames_per_core(200) / 1e3,
                    c.io
                )
            })
            .unwrap_or_else(|| "not measured".into());
        t.row(vec![
            h.name.clone(),
            h.role.as_str().into(),
            format!("{:.2}/{}", h.cpu_used, h.cpu),
            format!("{}/{}", bytes(h.memory_used), bytes(h.memory)),
            format!("{}/{}", h.slivers_used, h.slivers),
            format!("{}/{}", h.ports_used, h.ports),
            format!("{:.3}", h.forwarding_used),
            match (h.budget_free, h.budget) {
                (Some(f), Some(b)) => {
                    format!("{f:.2}/{b}{}", h.machine.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())
                }
                _ => "-".into(),
            },
            per_core,
        ]);
    }
    t.print()?;
    if u.hosts.iter().any(|h| h.machine.is_some()) {
        println!("(hosts on one machine share its budget: slivers' CPU, dedicated CPUs and forwarding work, in cores)");
    }
    let mut t = Table::new(&[
        ("LINK", Align::Left),
        ("DIRECTION", Align::Left),
        ("CAPACITY", Align::Right),
        ("RESERVED", Align::Right),
        ("FREE", Align::Right),
    ]);
    for l in &u.links {
        t.row(vec![
            l.name.clone(),
            format!("{} -> {}", l.from, l.to),
            Bandwidth(l.bandwidth).to_string(),
            Bandwidth(l.reserved).to_string(),
            Bandwidth(l.free).to_string(),
        ]);
    }
    if !t.is_empty() {
        t.print()?;
    }
    Ok(ExitCode::SUCCESS)
}
