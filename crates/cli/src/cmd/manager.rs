//! `netslice manager`: the management system daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

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
    #[arg(long, default_value = "24h", value_parser = crate::rt::parse_duration)]
    pub lease_default: netslice_model::Micros,
    /// Longest lease a slice may have.
    #[arg(long, default_value = "7d", value_parser = crate::rt::parse_duration)]
    pub lease_max: netslice_model::Micros,
    /// How long measurement results and captures are kept after their window.
    #[arg(long, default_value = "7d", value_parser = crate::rt::parse_duration)]
    pub results_max_age: netslice_model::Micros,
    /// Bytes all captures together may hold (the sum of their caps; kept
    /// beside the database in `captures/`).
    #[arg(long, default_value = "1Gi", value_parser = crate::cmd::measure::parse_bytes)]
    pub capture_storage: u64,
    /// How far below its guarantee (percent) a one-second window's delivered
    /// rate may be and still meet it (`slice check`).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=50))]
    pub check_tolerance: u32,
}

/// Runs the manager until SIGTERM or SIGINT.
pub fn run(a: ManagerArgs) -> Result<ExitCode> {
    let substrate = match &a.substrate {
        Some(p) => Some(netslice_testbed::load_substrate(p)?),
        None => None,
    };
    if let Some(dir) = a.db.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = crate::rt::runtime()?;
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
        opts.policy = netslice_manager::Policy {
            lease_default: a.lease_default.secs(),
            lease_max: a.lease_max.secs(),
            results_max_age: a.results_max_age.secs(),
            capture_storage: a.capture_storage,
            check_tolerance_pct: a.check_tolerance,
        };
        let started = netslice_manager::start(opts, crate::rt::shutdown_signal()).await?;
        tracing::info!("clients trust {}", started.cert.display());
        if let Some(f) = &a.addr_file {
            std::fs::write(f, started.addr.to_string()).with_context(|| format!("writing {}", f.display()))?;
        }
        started.serve.await.context("serving")?;
        tracing::info!("manager stopped");
        Ok(ExitCode::SUCCESS)
    })
}
