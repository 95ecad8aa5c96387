//! `netslice types`: the node and link types a deployment offers.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use netslice_api::Client;

use crate::client::{Resolve, Target};
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

/// `netslice types`.
#[derive(Debug, Args)]
pub struct TypesArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub target: Target,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// The types built into this binary, without asking a manager.
    #[arg(long)]
    pub builtin: bool,
}

/// Lists the types.
pub async fn run(a: TypesArgs) -> Result<ExitCode> {
    let format = a.output.format();
    let info: netslice_model::types::TypesInfo = if a.builtin {
        netslice_dataplane::Registry::builtin().info()
    } else {
        Client::from_target(&a.target)?.types().await?
    };
    if print_data(format, &info)? {
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Name {
        print_names(info.nodes.iter().map(|n| n.name.as_str()).chain(info.links.iter().map(|l| l.name.as_str())))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("node types:");
    for n in &info.nodes {
        println!("  {:<14} {}  {}", n.name, if n.fast_path { "fast path" } else { "slow path" }, n.description);
        if n.params.is_empty() {
            continue;
        }
        let mut t = Table::new(&[
            ("      PARAM", Align::Left),
            ("KIND", Align::Left),
            ("DEFAULT", Align::Left),
            ("MEANING", Align::Left),
        ]);
        for p in &n.params {
            t.row(vec![
                format!("      params.{}", p.name),
                p.kind.clone(),
                p.default.clone().unwrap_or_default(),
                p.description.clone(),
            ]);
        }
        print!("{}", t.render());
    }
    println!("link types:");
    let mut t = Table::new(&[
        ("  NAME", Align::Left),
        ("LAYER", Align::Left),
        ("OVERHEAD", Align::Right),
        ("MAX LABEL", Align::Right),
        ("WHAT", Align::Left),
    ]);
    for l in &info.links {
        t.row(vec![
            format!("  {}", l.name),
            format!("{:?}", l.layer).to_lowercase(),
            format!("+{} B", l.overhead),
            l.max_label.to_string(),
            l.description.clone(),
        ]);
    }
    t.print()?;
    Ok(ExitCode::SUCCESS)
}
