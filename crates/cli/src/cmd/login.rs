//! `netslice login` and `netslice whoami`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use netslice_api::Client;

use crate::client::{Login, Resolve, Target, config_dir, read_token};

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
    #[arg(long, env = "NETSLICE_STATE_ROOT", default_value = netslice_testbed::DEFAULT_STATE_ROOT)]
    pub state_root: PathBuf,
}

/// `whoami`.
pub async fn whoami(target: &Target) -> Result<ExitCode> {
    let client = Client::from_target(target)?;
    let w = client.whoami().await?;
    println!("{} ({}) at {}", w.name, w.role, client.base());
    Ok(ExitCode::SUCCESS)
}

/// `login`: checks the token, then saves manager, token and certificate.
pub async fn login(a: LoginArgs) -> Result<ExitCode> {
    let token = match &a.token_file {
        Some(f) => read_token(f)?,
        None => {
            note!("paste your token and press Enter:");
            let mut s = String::new();
            std::io::stdin().read_line(&mut s).context("reading the token from standard input")?;
            let s = s.trim().to_string();
            if s.is_empty() {
                bail!("no token given");
            }
            s
        }
    };
    // Resolve the manager and certificate as other commands do, but without a saved login.
    let (base, ca) = match &a.manager {
        Some(m) => (m.clone(), a.ca_cert.clone()),
        None => {
            let st = netslice_testbed::list(&a.state_root);
            match st.as_slice() {
                [one] => (one.manager_url.clone(), a.ca_cert.clone().or(Some(one.dir.join("tls").join("cert.pem")))),
                _ => bail!("give --manager URL (no single local testbed is up)"),
            }
        }
    };
    let client = Client::new(&base, ca.as_deref(), Some(token.clone()))?;
    let w = client.whoami().await?;
    let dir = config_dir().context("no HOME or XDG_CONFIG_HOME to keep the login in")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    netslice_io::file::write_secret(&dir.join("token"), &token)
        .with_context(|| format!("writing {}", dir.join("token").display()))?;
    let ca_saved = match &ca {
        Some(c) => {
            let dst = dir.join("ca.pem");
            std::fs::copy(c, &dst).with_context(|| format!("copying {} to {}", c.display(), dst.display()))?;
            Some(dst)
        }
        None => None,
    };
    let login = Login { manager: base.clone(), ca_cert: ca_saved };
    std::fs::write(dir.join("login.json"), serde_json::to_vec_pretty(&login)?)
        .with_context(|| format!("writing {}", dir.join("login.json").display()))?;
    note!("logged in to {base} as {} ({}); saved in {}", w.name, w.role, dir.display());
    Ok(ExitCode::SUCCESS)
}
