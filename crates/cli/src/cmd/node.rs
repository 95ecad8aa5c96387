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
    /// What this host can forward, as the manager admits guaranteed rates
    /// against it: `auto` (STATE_DIR/calibration.json if it was measured on
    /// this machine, else measure at start, about 20 s), a file (from
    /// `netslice node calibrate`, or the operator's own figures), or `none`
    /// (the manager admits no forwarding work on this host).
    #[arg(long, env = "NETSLICE_CAPACITY", default_value = "auto", value_name = "auto|none|FILE")]
    pub capacity: netslice_agent::CapacitySource,
    /// When a forwarding thread falls behind (CPU short), drop the frames
    /// of links beyond their reserved share of forwarding work first (`on`),
    /// or serve every frame first come, first served (`off`, for comparisons).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub cpu_shares: String,
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
    /// Measure what this machine's agents spend, in CPU, on each frame they
    /// forward (per I/O backend, link type and frame size), as the manager
    /// admits virtual links against it. Builds two or three throwaway hosts
    /// (network namespaces named `calPID...`) and runs the agent's own data
    /// plane through them for about 20 seconds; needs root and a quiet
    /// machine (anything else running makes the figures higher, never lower).
    Calibrate {
        /// Where to write the calibration (JSON); agents read it with
        /// `--capacity FILE`, and look for it in their state directory.
        #[arg(long, default_value = "/var/lib/netslice/agent/calibration.json")]
        out: PathBuf,
        /// I/O backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "xdp,sockets")]
        io: Vec<netslice_io::IoMode>,
        /// Link types to measure (others are charged the most expensive of these).
        #[arg(long, value_delimiter = ',', default_value = "gre,vxlan")]
        link_types: Vec<String>,
        /// Frame sizes to measure, bytes (two or more).
        #[arg(long, value_delimiter = ',', default_value = "200,1500")]
        sizes: Vec<u32>,
        /// Seconds each point is measured.
        #[arg(long, default_value_t = 0.7)]
        seconds: f64,
        /// Do nothing if OUT already holds a calibration of this machine
        /// (same CPUs, kernel, netslice version and build).
        #[arg(long)]
        if_stale: bool,
    },
}

/// `node calibrate`: measures, prints a summary, writes the file.
pub fn calibrate(
    out: &std::path::Path,
    io: Vec<netslice_io::IoMode>,
    link_types: Vec<String>,
    sizes: Vec<u32>,
    seconds: f64,
    if_stale: bool,
) -> Result<ExitCode> {
    if if_stale
        && std::fs::read_to_string(out)
            .ok()
            .and_then(|t| serde_json::from_str::<netslice_model::capacity::Calibration>(&t).ok())
            .is_some_and(|c| c.machine == netslice_io::cpu::machine_id())
    {
        println!("{} already holds this machine's calibration", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !(0.1..=60.0).contains(&seconds) {
        anyhow::bail!("--seconds: {seconds} is not between 0.1 and 60");
    }
    if sizes.len() < 2 || sizes.iter().any(|&s| !(netslice_model::capacity::MIN_FRAME_SIZE..=1514).contains(&s)) {
        anyhow::bail!(
            "--sizes: give two or more frame sizes between {} and 1514 bytes",
            netslice_model::capacity::MIN_FRAME_SIZE
        );
    }
    let opts = netslice_agent::calibrate::Options {
        backends: io
            .into_iter()
            .map(|m| if m == netslice_io::IoMode::Auto { netslice_io::IoMode::Xdp } else { m })
            .collect(),
        link_types,
        sizes,
        measure: Duration::from_secs_f64(seconds),
        ..Default::default()
    };
    eprintln!(
        "calibrating forwarding capacity (about {} s)",
        5 + opts.backends.len()
            * opts.link_types.len()
            * opts.sizes.len()
            * 2
            * (opts.measure.as_millis() as usize + 400)
            / 1000
    );
    let cal = netslice_agent::calibrate::calibrate(&opts, &|line| eprintln!("{line}"))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&cal)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    let mut t = Table::new(&[
        ("IO", Align::Left),
        ("LINK TYPE", Align::Left),
        ("HOP", Align::Left),
        ("NS/FRAME", Align::Right),
        ("NS/BYTE", Align::Right),
        ("200 B FRAMES/S/CORE", Align::Right),
        ("1500 B FRAMES/S/CORE", Align::Right),
        ("GBIT/S/CORE AT 1500 B", Align::Right),
    ]);
    for b in &cal.backends {
        for l in &b.link_types {
            for (hop, c) in [("ends", l.ends), ("transit", l.transit)] {
                t.row(vec![
                    b.io.clone(),
                    l.link_type.clone(),
                    hop.into(),
                    format!("{:.0}", c.per_frame_ns),
                    format!("{:.3}", c.per_byte_ns),
                    format!("{:.0}", c.frames_per_core(200)),
                    format!("{:.0}", c.frames_per_core(1500)),
                    format!("{:.2}", c.bps(1.0, 1500) / 1e9),
                ]);
            }
        }
    }
    t.print()?;
    println!(
        "written to {} in {:.1} s{}",
        out.display(),
        cal.seconds,
        if cal.separate_generator_core { "" } else { " (one CPU: the generator's work is in the figures)" }
    );
    Ok(ExitCode::SUCCESS)
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
        capacity: a.capacity,
        cpu_shares: a.cpu_shares == "on",
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
