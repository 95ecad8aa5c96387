//! `netslice audit` (operators).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use netslice_api::Client;

use crate::client::{Resolve, Target};
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

/// `netslice audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Where the manager is.
    #[command(flatten)]
    pub target: Target,
    /// Only records after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// At most this many records (1-1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Prints part of the audit trail.
pub async fn run(a: AuditArgs) -> Result<ExitCode> {
    let format = a.output.format();
    let q = netslice_api::types::AuditQuery { after: a.after, limit: Some(a.limit as usize) };
    let v = Client::from_target(&a.target)?.audit(&q).await?;
    if print_data(format, &v)? {
        return Ok(ExitCode::SUCCESS);
    }
    if format == Format::Name {
        let ids: Vec<String> = v.iter().map(|e| e.id.to_string()).collect();
        print_names(ids.iter().map(String::as_str))?;
        return Ok(ExitCode::SUCCESS);
    }
    if v.is_empty() {
        note!("no changes recorded after {}", a.after);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("AGE", Align::Right),
        ("CALLER", Align::Left),
        ("ROLE", Align::Left),
        ("ACTION", Align::Left),
        ("OBJECT", Align::Left),
        ("DETAIL", Align::Left),
    ]);
    for e in v {
        t.row(vec![
            e.id.to_string(),
            format!("{} ago", super::slice::age(e.time)),
            e.caller,
            e.role,
            e.action,
            e.object,
            e.detail,
        ]);
    }
    t.print()?;
    Ok(ExitCode::SUCCESS)
}
