//! `netslice measure create|list|show|results|delete`: measurement jobs
//! (the NW Monitoring Manager): a slice, one point or two of the same
//! virtual link, a window, a tcpdump filter.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Subcommand;
use netslice_api::Client;
use netslice_api::types::{MeasureInfo, MeasureRequest, MeasureState};
use netslice_model::api::Direction;

use crate::client::{Resolve, Target};
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

/// `netslice measure ...`.
#[derive(Debug, Subcommand)]
pub enum MeasureCmd {
    /// Create a job: count (and optionally capture) a slice's frames at a
    /// point over a window.
    Create {
        /// Slice to measure.
        #[arg(long)]
        slice: String,
        /// Where: `LINK/HOST` (a hop of a virtual link, transit hosts too),
        /// `LINK@NODE` (the link's end at a node) or `NODE:IFACE` (`eth0`,
        /// `eth1`, ...). Twice, on one link, for the loss between them.
        #[arg(long = "point", required = true)]
        points: Vec<String>,
        /// When to start: `+30s` from now, or Unix seconds (default: now).
        #[arg(long, value_parser = parse_start)]
        start: Option<u64>,
        /// How long (`30s`, `5m`, `1h`; at most 24h).
        #[arg(long, value_parser = crate::rt::parse_duration)]
        duration: netslice_model::Micros,
        /// Counting interval (default 1s).
        #[arg(long, value_parser = crate::rt::parse_duration)]
        interval: Option<netslice_model::Micros>,
        /// Only frames travelling this way (two points need one).
        #[arg(long, value_parser = parse_direction)]
        direction: Option<Direction>,
        /// A tcpdump filter expression, e.g. `tcp port 80 and host 10.0.0.2`.
        #[arg(long)]
        filter: Option<String>,
        /// Capture the matching frames (pcapng); needs --capture-bytes.
        #[arg(long, requires = "capture_bytes")]
        capture: bool,
        /// Bytes kept of each captured frame.
        #[arg(long, requires = "capture")]
        snaplen: Option<u32>,
        /// The capture's size cap (`10Mi`, `1Gi`); it stops there and says so.
        #[arg(long, value_parser = parse_bytes)]
        capture_bytes: Option<u64>,
        /// A STAMP probe (RFC 8762) instead of counting: the first point (a
        /// sliver interface) sends test packets inside the slice to the
        /// second, the other end of the same link.
        #[arg(long, conflicts_with_all = ["filter", "capture", "direction", "interval", "reflect"])]
        probe: bool,
        /// Test packets a second (probes).
        #[arg(long, requires = "probe", default_value_t = 100)]
        rate: u32,
        /// Who reflects a probe: `netslice` (the far end's agent) or `sliver`
        /// (a STAMP reflector you run in the far sliver on UDP 862).
        #[arg(long, requires = "probe", default_value = "netslice")]
        reflector: netslice_api::types::ReflectorKind,
        /// A STAMP reflector at the point (a sliver interface) for the window,
        /// answering test packets sent to it on UDP 862 from inside the slice.
        #[arg(long, conflicts_with_all = ["filter", "capture", "direction", "interval"])]
        reflect: bool,
        /// Wait for the window to end and print the results.
        #[arg(long)]
        wait: bool,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format (with --wait: of the results).
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List jobs.
    List {
        /// Only this slice's.
        #[arg(long)]
        slice: Option<String>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a job: its points and what each counted so far.
    Show {
        /// Job id.
        id: u64,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A job's results per interval (and the loss between two points).
    Results {
        /// Job id.
        id: u64,
        /// Wait until the job is done.
        #[arg(long)]
        wait: bool,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Download a capture job's frames as a pcapng file (Wireshark, tshark).
    Capture {
        /// Job id.
        id: u64,
        /// File to write (`-`: standard output).
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Wait until the job is done first.
        #[arg(long)]
        wait: bool,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Delete a job and its results (a running one stops).
    Delete {
        /// Job id.
        id: u64,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    match s {
        "forward" => Ok(Direction::Forward),
        "reverse" => Ok(Direction::Reverse),
        _ => Err(format!("{s:?}: give forward or reverse")),
    }
}

/// A byte count: `10Mi`, `1Gi`, `500K`, or bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    s.parse::<netslice_model::units::Bytes>().map(|b| b.0).map_err(|e| e.0)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn parse_start(s: &str) -> Result<u64, String> {
    if let Some(rel) = s.strip_prefix('+') {
        let d = crate::rt::parse_duration(rel)?;
        return Ok(now_secs() + d.secs());
    }
    s.parse::<u64>().map_err(|_| format!("{s:?}: give +DURATION (e.g. +30s) or Unix seconds"))
}

/// Runs a `measure` command.
pub async fn command(cmd: MeasureCmd) -> Result<ExitCode> {
    match cmd {
        MeasureCmd::Create {
            slice,
            points,
            start,
            duration,
            interval,
            direction,
            filter,
            capture,
            snaplen,
            capture_bytes,
            probe,
            rate,
            reflector,
            reflect,
            wait,
            target,
            output,
        } => {
            let client = Client::from_target(&target)?;
            let req = MeasureRequest {
                slice,
                points,
                direction,
                start,
                duration,
                interval,
                filter,
                capture,
                snaplen,
                capture_bytes,
                probe: probe.then_some(netslice_api::types::ProbeRequest { rate, reflector }),
                reflect,
            };
            let job = client.create_measurement(&req).await?;
            note!(
                "measurement job {} {} (window {} s)",
                job.id,
                job.state.as_str(),
                (job.end_ms - job.start_ms) / 1000
            );
            if wait {
                let done = wait_done(&client, job.id).await?;
                results(&done, output.format())?;
            } else if output.format() == Format::Name {
                println!("{}", job.id);
            } else if !print_data(output.format(), &job)? {
                show(&job);
            }
        }
        MeasureCmd::List { slice, target, output } => {
            let client = Client::from_target(&target)?;
            let jobs = client.measurements(slice.as_deref()).await?;
            if print_data(output.format(), &jobs)? {
                return Ok(ExitCode::SUCCESS);
            }
            if output.format() == Format::Name {
                let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
                print_names(ids.iter().map(String::as_str))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&[
                ("ID", Align::Right),
                ("SLICE", Align::Left),
                ("POINTS", Align::Left),
                ("STATE", Align::Left),
                ("SECONDS", Align::Right),
                ("FRAMES", Align::Right),
                ("OWNER", Align::Left),
            ]);
            for j in &jobs {
                t.row(vec![
                    j.id.to_string(),
                    j.request.slice.clone(),
                    j.request.points.join(" "),
                    j.state.as_str().into(),
                    ((j.end_ms - j.start_ms) / 1000).to_string(),
                    if let Some(st) = &j.stamp {
                        format!("stamp {}/{}", st.received, st.sent)
                    } else if let Some(n) = j.reflected {
                        format!("reflected {n}")
                    } else {
                        j.points.first().map(|p| p.frames.to_string()).unwrap_or_default()
                    },
                    j.owner.clone(),
                ]);
            }
            t.print()?;
        }
        MeasureCmd::Show { id, target, output } => {
            let job = Client::from_target(&target)?.measurement(id).await?;
            if !print_data(output.format(), &job)? {
                show(&job);
            }
        }
        MeasureCmd::Results { id, wait, target, output } => {
            let client = Client::from_target(&target)?;
            let job = if wait { wait_done(&client, id).await? } else { client.measurement(id).await? };
            results(&job, output.format())?;
        }
        MeasureCmd::Capture { id, file, wait, target } => {
            let client = Client::from_target(&target)?;
            if wait {
                wait_done(&client, id).await?;
            }
            let n = if file.as_os_str() == "-" {
                client.download_capture(id, &mut std::io::stdout().lock()).await?
            } else {
                let tmp = file.with_extension("part");
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&tmp).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?,
                );
                let n = client.download_capture(id, &mut f).await?;
                std::io::Write::flush(&mut f)?;
                std::fs::rename(&tmp, &file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                n
            };
            note!("measurement job {id}: {n} bytes of pcapng written to {}", file.display());
        }
        MeasureCmd::Delete { id, target } => {
            Client::from_target(&target)?.delete_measurement(id).await?;
            note!("measurement job {id} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls until the job is done (its window plus the agents' last reports).
async fn wait_done(client: &Client, id: u64) -> Result<MeasureInfo> {
    loop {
        let job = client.measurement(id).await?;
        if job.state == MeasureState::Done {
            return Ok(job);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        let left = job.end_ms.saturating_sub(now);
        if left > 10 * 86_400_000 {
            bail!("job {id} ends in more than 10 days; not waiting");
        }
        tokio::time::sleep(Duration::from_millis(left.clamp(500, 2000))).await;
    }
}

fn rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} Gbit/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.2} Mbit/s", bps / 1e6)
    } else {
        format!("{:.1} kbit/s", bps / 1e3)
    }
}

fn show(j: &MeasureInfo) {
    println!("job {}  slice {}  {}  owner {}", j.id, j.request.slice, j.state.as_str(), j.owner);
    println!(
        "window: {} s from Unix {} (interval {} ms)",
        (j.end_ms - j.start_ms) / 1000,
        j.start_ms / 1000,
        j.interval_ms
    );
    if let Some(f) = &j.request.filter {
        println!("filter: {f}");
    }
    if j.request.probe.is_some() || j.request.reflect {
        for (i, p) in j.request.points.iter().enumerate() {
            let role = if j.request.reflect || i == 1 { "reflector" } else { "sender" };
            let host = j.points.get(i).map(|r| format!(" on {}", r.host)).unwrap_or_else(|| " (in the sliver)".into());
            println!("{role}: {p}{host}");
        }
    } else {
        points(j);
    }
    if let Some(b) = j.capture_bytes {
        println!("capture: {} held (download: netslice measure capture {} -f FILE)", netslice_tools::bytes(b), j.id);
    }
    if let Some(l) = &j.loss {
        println!("loss {} -> {}: {} of {} ({:.3}%)", l.from, l.to, l.lost, l.sent, l.ratio * 100.0);
    }
    if let Some(n) = j.reflected {
        println!("reflected: {n} test packets");
    }
    if let Some(n) = j.probe_dropped.filter(|n| *n > 0) {
        println!("dropped by the probe points: {n} (agent behind, malformed, or over a reflector's rate)");
    }
    if let Some(s) = &j.stamp {
        stamp(s);
    }
}

/// A counting job's points and what each counted.
fn points(j: &MeasureInfo) {
    let mut t = Table::new(&[
        ("POINT", Align::Left),
        ("HOST", Align::Left),
        ("LINK", Align::Left),
        ("FRAMES", Align::Right),
        ("BYTES", Align::Right),
        ("RATE", Align::Right),
        ("CAPTURED", Align::Right),
    ]);
    for p in &j.points {
        t.row(vec![
            p.point.clone(),
            p.host.clone(),
            p.link.clone(),
            p.frames.to_string(),
            netslice_tools::bytes(p.bytes),
            rate(p.bits_per_second),
            if j.request.capture { format!("{} (cap full: {})", p.captured, p.capture_full) } else { "-".into() },
        ]);
    }
    print!("{}", t.render());
}

/// A STAMP session's results, as perfSONAR names them.
fn stamp(s: &netslice_model::api::StampResults) {
    let pct = |n: u64| if s.sent > 0 { n as f64 * 100.0 / s.sent as f64 } else { 0.0 };
    let split = if s.directions_known {
        format!("{} on the way out, {} on the way back", s.lost_forward, s.lost_reverse)
    } else {
        "which way unknown: the reflector echoes the sender's numbers".to_string()
    };
    println!(
        "stamp: sent {}, received {}, lost {} ({:.2}%: {split}), duplicated {}, reordered {}",
        s.sent,
        s.received,
        s.lost,
        pct(s.lost),
        s.duplicated,
        s.reordered
    );
    let mut t = Table::new(&[
        ("DELAY (MS)", Align::Left),
        ("MIN", Align::Right),
        ("MEDIAN", Align::Right),
        ("P99", Align::Right),
        ("MAX", Align::Right),
        ("JITTER", Align::Right),
    ]);
    for (name, d) in [("one-way out", &s.forward), ("one-way back", &s.reverse), ("round trip", &s.round_trip)] {
        if let Some(d) = d {
            t.row(vec![
                name.into(),
                format!("{:.3}", d.min_ms),
                format!("{:.3}", d.median_ms),
                format!("{:.3}", d.p99_ms),
                format!("{:.3}", d.max_ms),
                format!("{:.3}", d.jitter_ms),
            ]);
        }
    }
    print!("{}", t.render());
    println!(
        "clocks: sender error <= {:.6} s, reflector error <= {:.6} s, {}",
        s.sender_error_s,
        s.reflector_error_s,
        if s.synchronized {
            "both synchronized to UTC"
        } else {
            "not both synchronized to UTC (one-way delays assume the clocks agree)"
        }
    );
}

fn results(j: &MeasureInfo, format: Format) -> Result<()> {
    if print_data(format, j)? {
        return Ok(());
    }
    show(j);
    if j.request.probe.is_some() {
        if let Some(s) = &j.stamp
            && let Some(d) = &s.round_trip
        {
            println!("\nround trip, 1-ms buckets:");
            for (ms, n) in d.histogram_1ms.iter().enumerate().filter(|(_, n)| **n > 0) {
                println!("  {ms:>5}-{:<5} ms {n}", ms + 1);
            }
        }
        return Ok(());
    }
    for p in &j.points {
        println!("\n{} at {}:", p.point, p.host);
        let mut t = Table::new(&[
            ("T+S", Align::Right),
            ("FRAMES", Align::Right),
            ("BYTES", Align::Right),
            ("RATE", Align::Right),
        ]);
        for i in &p.intervals {
            t.row(vec![
                format!("{:.1}", (i.start_ms - j.start_ms) as f64 / 1e3),
                i.frames.to_string(),
                i.bytes.to_string(),
                rate(i.bits_per_second),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(())
}
