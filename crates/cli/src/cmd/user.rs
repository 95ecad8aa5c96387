//! `netslice user add|list|revoke` (operators).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use netslice_api::Client;

use crate::client::{Resolve, Target};
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

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
    /// List users: name, role and how many tokens each holds.
    List {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
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

/// Runs a user command.
pub async fn command(cmd: UserCmd) -> Result<ExitCode> {
    match cmd {
        UserCmd::Add { name, operator, save_token, target } => {
            netslice_model::names::user(&name).map_err(|e| anyhow!("user name {e}"))?;
            let client = Client::from_target(&target)?;
            let body = netslice_api::types::NewUser {
                name: name.clone(),
                role: Some(if operator { "operator" } else { "developer" }.into()),
            };
            let t = client.add_user(&body).await?;
            match save_token {
                Some(f) => {
                    netslice_io::file::write_secret(&f, &t.token)
                        .with_context(|| format!("writing {}", f.display()))?;
                    note!("{} {name} added; token in {}", t.role, f.display());
                }
                None => {
                    note!("{} {name} added; the token (shown once):", t.role);
                    println!("{}", t.token);
                }
            }
        }
        UserCmd::List { target, output } => {
            let format = output.format();
            let users = Client::from_target(&target)?.users().await?;
            if !print_data(format, &users)? {
                if format == Format::Name {
                    print_names(users.iter().map(|u| u.name.as_str()))?;
                } else {
                    let mut t = Table::new(&[("NAME", Align::Left), ("ROLE", Align::Left), ("TOKENS", Align::Right)]);
                    for u in users {
                        t.row(vec![u.name, u.role, u.tokens.to_string()]);
                    }
                    t.print()?;
                }
            }
        }
        UserCmd::Revoke { name, target } => {
            netslice_api::Route::user(&name)?;
            let r = Client::from_target(&target)?.revoke_user(&name).await?;
            note!("{} token(s) of {name} revoked", r.tokens);
        }
    }
    Ok(ExitCode::SUCCESS)
}
