//! `netslice demo`: the main job on a fresh machine.
//!
//! Brings up the example testbed (four hosts, one of them a transit switch),
//! applies two slices whose addresses overlap, runs ping and a TCP bulk transfer in
//! each with the tools built into `netslice`, shows that the slices cannot reach
//! each other, prints RTTs, throughputs and per-link counters, and tears it all down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use netslice_model::api::SliceInfo;
use netslice_model::{SliceSpec, SubstrateSpec, parse_document};
use netslice_tools::{PingSummary, TcpSummary, bytes};

use crate::{self as testbed, TestbedState};

const SUBSTRATE: &str = include_str!("../../../examples/substrate.yaml");
const RED: &str = include_str!("../../../examples/red.yaml");
const BLUE: &str = include_str!("../../../examples/blue.yaml");

/// How the demo runs (`netslice demo`'s options).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Testbed name (namespaces are named after it).
    pub name: String,
    /// Seconds of each TCP transfer.
    pub seconds: f64,
    /// Leave the testbed up at the end.
    pub keep: bool,
    /// Directory holding local testbed state.
    pub state_root: PathBuf,
}

struct Row {
    slice: &'static str,
    check: String,
    result: String,
    ok: bool,
}

/// Removes the testbed when dropped, unless told to keep it.
struct Teardown {
    name: String,
    root: PathBuf,
    keep: bool,
    children: Vec<Child>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            note!("testbed {} left up; remove it with `netslice testbed down {}`", self.name, self.name);
            return;
        }
        note!("tearing down testbed {}", self.name);
        if let Err(e) = testbed::down(&self.name, &self.root) {
            note!("teardown failed: {e:#}");
        }
    }
}

/// Applies a built-in slice and waits (at most 60 s) until it is ready.
async fn apply(client: &netslice_api::Client, spec: &SliceSpec, text: &str) -> Result<SliceInfo> {
    match client.apply(&spec.name, text.to_string(), false).await? {
        netslice_api::Applied::Done { result, info } => {
            note!("slice {} {result} (revision {})", spec.name, info.revision)
        }
        netslice_api::Applied::DryRun(_) => bail!("a dry run answered a real apply"),
    }
    let name = spec.name.clone();
    let progress = |i: &SliceInfo| {
        note!("slice {name}: {}{}", i.state.as_str(), i.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())
    };
    client
        .wait_ready(&spec.name, Duration::from_secs(60), progress)
        .await
        .with_context(|| format!("slice {}", spec.name))
}

fn step(n: usize, total: usize, what: &str) {
    note!("\n[{n}/{total}] {what}");
}

fn tool_in(netns: &str, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("tool").args(args);
    netslice_io::process::in_netns(&mut cmd, netns)?;
    Ok(cmd)
}

fn run_json<T: serde::de::DeserializeOwned>(netns: &str, args: &[&str]) -> Result<(bool, Option<T>, String)> {
    let out = tool_in(netns, args)?.stderr(Stdio::piped()).output().context("running a tool in a sliver")?;
    let parsed = serde_json::from_slice(&out.stdout).ok();
    Ok((out.status.success(), parsed, String::from_utf8_lossy(&out.stderr).trim().to_string()))
}

fn netns_of(info: &SliceInfo, node: &str) -> Result<String> {
    info.plan
        .node(node)
        .and_then(|n| n.netns.clone())
        .ok_or_else(|| anyhow!("slice {} has no sliver {node}", info.name))
}

fn ping_row(
    slice: &'static str,
    info: &SliceInfo,
    node: &str,
    addr: &str,
    what: &str,
    expect_reply: bool,
) -> Result<Row> {
    let (_, s, err) =
        run_json::<PingSummary>(&netns_of(info, node)?, &["ping", addr, "-c", "5", "-i", "0.1", "--json"])?;
    let s = s.ok_or_else(|| anyhow!("ping in {slice}/{node} failed: {err}"))?;
    let ok = if expect_reply { s.received == s.sent } else { s.received == 0 };
    let result = match s.rtt_avg_ms {
        Some(avg) => format!("{}/{} replies, rtt avg {avg:.3} ms", s.received, s.sent),
        None => {
            format!("{}/{} replies{}", s.received, s.sent, if expect_reply { "" } else { " (isolated, as it must be)" })
        }
    };
    note!("  {slice:<5} {what:<34} {result}");
    Ok(Row { slice, check: what.to_string(), result, ok })
}

/// Runs the demo.
pub fn run(args: DemoOptions) -> Result<ExitCode> {
    if !netslice_io::process::is_root() {
        bail!("the demo builds network namespaces and needs root: run `sudo netslice demo`");
    }
    let total = 6;
    let started = Instant::now();
    let spec: SubstrateSpec = parse_document(SUBSTRATE).map_err(|e| anyhow!("built-in example substrate: {e}"))?;
    if let Some(old) = testbed::list(&args.state_root).into_iter().find(|t| t.name == args.name) {
        // Only a demo's own leftover, with nothing of it running, is removed:
        // a testbed someone built (or a demo still running) is left alone.
        let running = testbed::running(&old);
        if !running.is_empty() || old.made_by != "demo" {
            bail!(
                "a testbed named {} already exists ({}, made by `{}`); the demo does not remove a testbed it did not make: choose another name with `netslice demo --name NAME`, or remove it with `netslice testbed down {}`",
                old.name,
                if running.is_empty() {
                    "nothing of it runs".to_string()
                } else {
                    format!("running: {}", running.join(", "))
                },
                if old.made_by.is_empty() { "testbed up" } else { old.made_by.as_str() },
                old.name
            );
        }
        note!("a testbed named {} is left from an earlier demo that did not finish; removing it", args.name);
        testbed::down(&args.name, &args.state_root)?;
    }

    step(1, total, &format!("bringing up testbed {} (4 hosts, 4 links)", args.name));
    let st: TestbedState =
        testbed::up_spec(spec, Path::new("examples/substrate.yaml"), Some(&args.name), &args.state_root, "demo")?;
    let mut guard =
        Teardown { name: st.name.clone(), root: args.state_root.clone(), keep: args.keep, children: Vec::new() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = st.client()?;

    step(2, total, "applying slices red (a@h1, b@h2, c@h3; a-b crosses t1) and blue (same addresses as red)");
    let mut infos = Vec::new();
    for text in [RED, BLUE] {
        let spec = SliceSpec::from_text(text).map_err(|e| anyhow!("built-in example slice: {e}"))?;
        infos.push(rt.block_on(apply(&client, &spec, text))?);
    }
    let (red, blue) = (&infos[0], &infos[1]);
    for i in [red, blue] {
        for l in &i.plan.links {
            note!(
                "  {}/{}: path {}  labels {:?}/{:?}",
                i.name,
                l.name,
                l.path.join(" -> "),
                l.forward_labels,
                l.reverse_labels
            );
        }
    }

    let mut rows = Vec::new();
    step(3, total, "ping inside each slice");
    rows.push(ping_row("red", red, "a", "10.0.0.2", "ping a -> b (via t1)", true)?);
    rows.push(ping_row("red", red, "a", "10.0.1.2", "ping a -> c (routed by b, 2 ms link)", true)?);
    rows.push(ping_row("blue", blue, "a", "10.0.0.2", "ping a -> b (via t1)", true)?);

    step(4, total, &format!("TCP bulk transfer inside each slice ({}s each)", args.seconds));
    for (slice, info) in [("red", red), ("blue", blue)] {
        let banner = format!("{slice}-b");
        let server = tool_in(&netns_of(info, "b")?, &["tcp-server", "--listen", "0.0.0.0:5201", "--banner", &banner])?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a tcp-server")?;
        guard.children.push(server);
    }
    std::thread::sleep(Duration::from_millis(300));
    // The monitoring manager watches red's transfer where it crosses t1.
    let job = rt.block_on(client.create_measurement(&netslice_api::types::MeasureRequest {
        slice: "red".into(),
        points: vec!["ab/t1".into()],
        direction: Some(netslice_model::api::Direction::Forward),
        start: None,
        duration: netslice_model::Micros(((args.seconds + 1.0) * 1e6) as u64),
        interval: None,
        filter: Some("tcp port 5201".into()),
        capture: false,
        snaplen: None,
        capture_bytes: None,
        probe: None,
        reflect: false,
    }))?;
    note!("  measurement job {}: red's link ab at t1, TCP port 5201, {} s", job.id, args.seconds + 1.0);
    // And a STAMP probe across red's link bc, which crosses the 2 ms h2-h3 link.
    let probe = rt.block_on(client.create_measurement(&netslice_api::types::MeasureRequest {
        slice: "red".into(),
        points: vec!["bc@b".into(), "bc@c".into()],
        direction: None,
        start: None,
        duration: netslice_model::Micros(((args.seconds + 1.0) * 1e6) as u64),
        interval: None,
        filter: None,
        capture: false,
        snaplen: None,
        capture_bytes: None,
        probe: Some(netslice_api::types::ProbeRequest {
            rate: 100,
            reflector: netslice_api::types::ReflectorKind::Netslice,
        }),
        reflect: false,
    }))?;
    note!("  measurement job {}: STAMP probe b -> c on red's link bc, 100 a second", probe.id);
    for (slice, info) in [("red", red), ("blue", blue)] {
        let banner = format!("{slice}-b");
        let secs = args.seconds.to_string();
        let (ok, s, err) = run_json::<TcpSummary>(
            &netns_of(info, "a")?,
            &["tcp-client", "10.0.0.2:5201", "--seconds", &secs, "--expect-banner", &banner, "--json"],
        )?;
        let (result, ok) = match (ok, s) {
            (true, Some(s)) => {
                (format!("{:.2} Gbit/s, {} confirmed by {}", s.bits_per_second / 1e9, bytes(s.bytes), s.banner), true)
            }
            _ => (format!("FAILED: {err}"), false),
        };
        note!("  {slice:<5} {:<34} {result}", "tcp a -> b 10.0.0.2:5201");
        rows.push(Row { slice: if slice == "red" { "red" } else { "blue" }, check: "tcp a -> b".into(), result, ok });
    }

    // The job's results, once its window ended and the agents reported.
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds + 15.0);
    let done = loop {
        let j = rt.block_on(client.measurement(job.id))?;
        if j.state == netslice_api::types::MeasureState::Done || Instant::now() > deadline {
            break j;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (result, ok) = match done.points.first() {
        Some(p) if done.state == netslice_api::types::MeasureState::Done && p.frames > 0 => {
            (format!("{} frames, {} at t1 in its window, as red sees them", p.frames, bytes(p.bytes)), true)
        }
        Some(p) => (format!("FAILED: job {} is {}, {} frames", done.id, done.state.as_str(), p.frames), false),
        None => (format!("FAILED: job {} has no point", done.id), false),
    };
    note!("  red   {:<34} {result}", "measure ab/t1 tcp port 5201");
    rows.push(Row { slice: "red", check: "measure ab/t1 'tcp port 5201'".into(), result, ok });
    let p = loop {
        let j = rt.block_on(client.measurement(probe.id))?;
        if j.state == netslice_api::types::MeasureState::Done || Instant::now() > deadline {
            break j;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (result, ok) = match (&p.stamp, p.state) {
        (Some(s), netslice_api::types::MeasureState::Done) if s.received > 0 => {
            let d = |x: &Option<netslice_model::api::StampDelay>| x.as_ref().map_or(f64::NAN, |d| d.median_ms);
            (
                format!(
                    "{} of {} back, one-way {:.2} ms, round trip {:.2} ms (median)",
                    s.received,
                    s.sent,
                    d(&s.forward),
                    d(&s.round_trip)
                ),
                true,
            )
        }
        _ => (format!("FAILED: job {} is {}: {:?}", p.id, p.state.as_str(), p.stamp), false),
    };
    note!("  red   {:<34} {result}", "stamp bc@b -> bc@c");
    rows.push(Row { slice: "red", check: "stamp b -> c (2 ms link)".into(), result, ok });

    step(5, total, "isolation: blue cannot reach red's c (10.0.1.2), and each client reached its own server");
    rows.push(ping_row("blue", blue, "a", "10.0.1.2", "ping red's c from blue's a", false)?);

    step(6, total, "summary");
    // Let the agents report their latest counters.
    std::thread::sleep(Duration::from_millis(2500));
    let red_now: SliceInfo = rt.block_on(client.slice("red"))?;
    let blue_now: SliceInfo = rt.block_on(client.slice("blue"))?;
    out!("\nnetslice demo: {} ({} hosts)", st.name, 4);
    out!("{:<6} {:<38} result", "slice", "check");
    for r in &rows {
        out!("{:<6} {:<38} {}{}", r.slice, r.check, r.result, if r.ok { "" } else { "   <-- FAILED" });
    }
    out!("\nper-link counters (frames and bytes forwarded at each host, drops by reason):");
    for info in [&red_now, &blue_now] {
        for c in &info.counters {
            let drops: Vec<String> = c.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out!(
                "  {:<5} {:<3} {:<8} {:<3} {:<8} {:>8} frames {:>10}{}",
                info.name,
                c.link,
                c.direction.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_default(),
                c.host,
                c.stage.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default(),
                c.packets,
                bytes(c.bytes),
                if drops.is_empty() { String::new() } else { format!("  drops: {}", drops.join(" ")) }
            );
        }
    }
    // The guarantee check of red over the demo (information, not a check:
    // TCP probes the link beyond its guarantee, on purpose).
    if let Ok(c) = rt.block_on(client.slice_check("red", None)) {
        let (judged, violated): (usize, usize) =
            c.links.iter().fold((0, 0), |(j, v), l| (j + l.windows.len(), v + l.violated));
        out!(
            "\nslice check red (one-second windows, last minute): {judged} judged, {violated} violated (`netslice slice check red` explains any)"
        );
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    out!("\n{} checks, {} failed, {:.1}s", rows.len(), failed, started.elapsed().as_secs_f64());
    drop(guard);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
