//! `netslice slice ...`: apply, list, get (and watch), graph, stats, renew,
//! delete, exec.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use netslice_api::{Applied, Client};
use netslice_model::SliceSpec;
use netslice_model::api::SliceInfo;
use netslice_tools::bytes;

use crate::client::{Resolve, Target};
use crate::graph::GraphFormat;
use crate::output::{Align, Format, OutputArgs, Table, print_data, print_names};

/// `netslice slice ...`.
#[derive(Debug, Subcommand)]
pub enum SliceCmd {
    /// Create a slice from a spec file, or change a running one to match it (an
    /// identical slice is left alone).
    Apply {
        /// Slice spec (YAML or JSON); `-` reads standard input.
        #[arg(short, long)]
        file: PathBuf,
        /// Only check admission and show the plan; reserve and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for the slice to become ready (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Change the slice only if it is still at this revision (what `slice
        /// get` showed): if someone changed it since, nothing is changed.
        #[arg(long)]
        if_revision: Option<u64>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// List slices.
    List {
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a slice: placement, paths, labels, counters. `-o yaml` prints its
    /// spec (which `slice apply -f` takes back unchanged), `-o json` all of it.
    #[command(visible_alias = "show")]
    Get {
        /// Slice name.
        name: String,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
        /// Keep watching: print the slice again whenever its revision or
        /// state changes, until it is gone (or Ctrl-C).
        #[arg(short, long)]
        watch: bool,
    },
    /// Draw a slice: its virtual topology, with `--placement` its embedding
    /// (hosts, paths, labels). `dot -Tsvg`, Markdown's Mermaid, or JSON.
    Graph {
        /// Slice name.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "dot")]
        output: GraphFormat,
        /// Draw the hosts each node runs on and each link's path and labels.
        #[arg(long)]
        placement: bool,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// A slice's figures per virtual link, direction and hop: rates, drops
    /// by reason, queues. Refreshes on a terminal until Ctrl-C.
    Stats {
        /// Slice name.
        name: String,
        /// Print once, even on a terminal.
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2.0, value_parser = refresh_interval)]
        interval: f64,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format (`json` and `yaml` print once).
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Were the slice's guarantees kept? Per virtual link, direction and
    /// one-second window: offered and delivered load, drops by hop and
    /// reason, and a verdict. Exits 1 when any window was violated.
    Check {
        /// Slice name.
        name: String,
        /// From when: `60s` ago (default), or Unix seconds.
        #[arg(long, value_parser = parse_since)]
        since: Option<u64>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
        /// Output format (`wide`: every window, not only the violated ones).
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Extend a slice's lease.
    Renew {
        /// Slice name.
        name: String,
        /// New lease from now (default: the operator's default lease).
        #[arg(long = "for", value_parser = crate::rt::parse_duration)]
        duration: Option<netslice_model::Micros>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Delete a slice.
    Delete {
        /// Slice name.
        name: String,
        /// Seconds to wait for the agents to tear it down (0: do not wait).
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Delete it only if it is still at this revision.
        #[arg(long)]
        if_revision: Option<u64>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
    /// Run a program inside a sliver (on this machine): `slice exec SLICE NODE -- CMD ARGS...`.
    Exec {
        /// Slice name.
        slice: String,
        /// Virtual node name.
        node: String,
        /// Program and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
        /// Where the manager is.
        #[command(flatten)]
        target: Target,
    },
}

/// `--since`: `90s` (that long ago) or Unix seconds.
fn parse_since(s: &str) -> Result<u64, String> {
    if let Ok(t) = s.parse::<u64>() {
        return Ok(t);
    }
    let d = crate::rt::parse_duration(s)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    Ok(now.saturating_sub(d.secs()))
}

/// A refresh interval: 0.5 to 60 seconds.
fn refresh_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if (0.5..=60.0).contains(&v) { Ok(v) } else { Err(format!("{v} s: give 0.5 to 60 seconds")) }
}

/// Reads a spec file (or stdin for `-`) and validates it, naming the file.
pub fn read_spec(path: &std::path::Path) -> Result<(SliceSpec, String)> {
    let (text, shown) = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the spec from standard input")?;
        (s, "<stdin>".to_string())
    } else {
        (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        )
    };
    let spec = SliceSpec::from_text(&text).map_err(|e| anyhow!("{}", e.in_file(shown)))?;
    Ok((spec, text))
}

fn state_line(info: &SliceInfo) -> String {
    format!("{}{}", info.state.as_str(), info.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())
}

/// Applies a spec and waits for the slice to become ready.
pub async fn apply(
    client: &Client,
    spec: &SliceSpec,
    text: String,
    wait: u64,
    if_revision: Option<u64>,
) -> Result<SliceInfo> {
    let info = match client
        .apply_if(&spec.name, text, false, if_revision)
        .await
        .with_context(|| format!("applying slice {}", spec.name))?
    {
        Applied::Done { result, info } => {
            match result.as_str() {
                "created" => note!("slice {} created (revision {})", spec.name, info.revision),
                "updated" => note!("slice {} updated in place (revision {})", spec.name, info.revision),
                _ => note!("slice {} unchanged (revision {})", spec.name, info.revision),
            }
            *info
        }
        Applied::DryRun(_) => bail!("the manager answered a real apply with a dry run"),
    };
    if wait == 0 {
        return Ok(info);
    }
    let name = spec.name.clone();
    let progress = |i: &SliceInfo| note!("slice {name}: {}", state_line(i));
    client.wait_ready(&spec.name, Duration::from_secs(wait), progress).await.with_context(|| format!("slice {name}"))
}

/// Deletes a slice and waits for the agents to tear it down.
pub async fn delete(client: &Client, name: &str, wait: u64, if_revision: Option<u64>) -> Result<()> {
    let d = client.delete_slice_if(name, if_revision).await?;
    note!("slice {name} deleted (revision {}); the agents are tearing it down", d.revision);
    if wait == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let hosts = client.nodes().await?;
        let behind: Vec<&str> = hosts
            .iter()
            .filter(|h| h.applied_revision.is_none_or(|a| a < h.desired_revision))
            .map(|h| h.name.as_str())
            .collect();
        // Once every host applied the deletion the manager forgets the slice
        // (its housekeeping runs every second).
        let gone = behind.is_empty() && client.slice(name).await.is_err();
        if gone {
            note!("slice {name}: torn down on every host");
            return Ok(());
        }
        if Instant::now() > deadline {
            if behind.is_empty() {
                bail!("slice {name} is still listed as deleting after {wait}s");
            }
            bail!("hosts {} have not applied the deletion yet", behind.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long until a Unix time, for people: `in 23h59m`, `expired`.
pub fn until(t: u64) -> String {
    if t == 0 {
        return "never".into();
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    if t <= now {
        return "expired".into();
    }
    let d = t - now;
    match d {
        0..60 => format!("in {d}s"),
        60..3600 => format!("in {}m{:02}s", d / 60, d % 60),
        3600..86_400 => format!("in {}h{:02}m", d / 3600, d % 3600 / 60),
        _ => format!("in {}d{:02}h", d / 86_400, d % 86_400 / 3600),
    }
}

/// How long ago a Unix time was, for people: `5s`, `3m`, `2h`, `4d`.
pub fn age(t: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let d = now.saturating_sub(t);
    match d {
        0..60 => format!("{d}s"),
        60..3600 => format!("{}m", d / 60),
        3600..86_400 => format!("{}h", d / 3600),
        _ => format!("{}d", d / 86_400),
    }
}

/// Asks the manager whether a spec would be admitted and prints the plan.
pub async fn dry_run(client: &Client, spec: &SliceSpec, text: String) -> Result<()> {
    let d = match client
        .apply(&spec.name, text, true)
        .await
        .with_context(|| format!("slice {} would be refused", spec.name))?
    {
        Applied::DryRun(d) => d,
        Applied::Done { .. } => bail!("the manager answered a dry run with a change"),
    };
    println!("slice {} would be admitted ({}); nothing was reserved", spec.name, d.action);
    let mut t =
        Table::new(&[("NODE", Align::Left), ("HOST", Align::Left), ("CPU", Align::Right), ("MEMORY", Align::Right)]);
    for n in &d.plan.nodes {
        t.row(vec![n.name.clone(), n.host.clone(), format!("{:.2}", n.cpu_milli as f64 / 1000.0), bytes(n.memory)]);
    }
    t.print()?;
    let mut t = Table::new(&[("LINK", Align::Left), ("RESERVED", Align::Right), ("PATH", Align::Left)]);
    for l in &d.plan.links {
        t.row(vec![l.name.clone(), netslice_model::Bandwidth(l.reserved).to_string(), l.path.join(" -> ")]);
    }
    if !t.is_empty() {
        t.print()?;
    }
    Ok(())
}

/// The spec of a slice as YAML: what `slice apply -f` takes back unchanged,
/// with a comment saying where it came from.
pub fn spec_yaml(info: &SliceInfo) -> Result<String> {
    let body = serde_yaml_ng::to_string(&info.spec)?;
    Ok(format!(
        "# slice {} at revision {} ({}); `netslice slice apply -f` takes this file back\n{body}",
        info.name,
        info.revision,
        info.state.as_str()
    ))
}

fn print_info(info: &SliceInfo, wide: bool) {
    println!(
        "slice {}  state {}  revision {}  owner {}  lease ends {}",
        info.name,
        info.state.as_str(),
        info.revision,
        info.owner,
        until(info.expires)
    );
    if let Some(m) = &info.message {
        println!("  {m}");
    }
    let mut nodes = Table::new(&[
        ("NODE", Align::Left),
        ("TYPE", Align::Left),
        ("HOST", Align::Left),
        ("RUNS IN", Align::Left),
        ("CPU", Align::Right),
        ("MEMORY", Align::Right),
    ]);
    let mut ifaces = Table::new(&[
        ("NODE", Align::Left),
        ("INTERFACE", Align::Left),
        ("MAC", Align::Left),
        ("LINK", Align::Left),
        ("ADDRESSES", Align::Left),
    ]);
    for n in &info.plan.nodes {
        let spec = info.spec.node(&n.name);
        let kind = spec.map(|s| s.node_type.as_str()).unwrap_or("?");
        nodes.row(vec![
            n.name.clone(),
            kind.to_string(),
            n.host.clone(),
            n.netns.clone().unwrap_or_else(|| "the agent (fast path)".into()),
            format!("{}", n.cpu_milli as f64 / 1000.0),
            netslice_model::Memory(n.memory).to_string(),
        ]);
        for i in &n.interfaces {
            let addrs: Vec<String> = info
                .spec
                .links
                .iter()
                .find(|l| l.name == i.link)
                .map(|l| l.endpoints[usize::from(i.endpoint)].all_addresses().iter().map(|a| a.to_string()).collect())
                .unwrap_or_default();
            ifaces.row(vec![n.name.clone(), i.name.clone(), i.mac.to_string(), i.link.clone(), addrs.join(" ")]);
        }
    }
    print!("{}", nodes.render());
    if !ifaces.is_empty() {
        print!("{}", ifaces.render());
    }
    for p in &info.programs {
        let stats: Vec<String> = p.stats.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k}={v}")).collect();
        let stats = if stats.is_empty() { "no frames yet".to_string() } else { stats.join(" ") };
        println!("program {} on {}: {stats}", p.node, p.host);
    }
    let mut links = Table::new(&[
        ("LINK", Align::Left),
        ("TYPE", Align::Left),
        ("BANDWIDTH", Align::Right),
        ("PATH", Align::Left),
        ("HOPS", Align::Left),
        ("LABELS FWD/REV", Align::Left),
    ]);
    for l in &info.plan.links {
        let spec = info.spec.links.iter().find(|s| s.name == l.name);
        let hops: Vec<&str> = l.hop_types.iter().map(|t| t.as_str()).collect();
        let labels = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        links.row(vec![
            l.name.clone(),
            spec.map(|s| s.link_type.as_str().to_string()).unwrap_or_default(),
            spec.map(|s| s.bandwidth.to_string()).unwrap_or_default(),
            l.path.join(" -> "),
            hops.join(" "),
            if l.underlay.is_empty() {
                "-".into()
            } else {
                format!("{}/{}", labels(&l.forward_labels), labels(&l.reverse_labels))
            },
        ]);
    }
    if !links.is_empty() {
        print!("{}", links.render());
    }
    if wide && !info.counters.is_empty() {
        let mut t = Table::new(&[
            ("LINK", Align::Left),
            ("HOST", Align::Left),
            ("DIRECTION", Align::Left),
            ("STAGE", Align::Left),
            ("PACKETS", Align::Right),
            ("BYTES", Align::Right),
            ("DROPS", Align::Left),
        ]);
        for c in &info.counters {
            let drops: Vec<String> = c.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            t.row(vec![
                c.link.clone(),
                c.host.clone(),
                c.direction.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_default(),
                c.stage.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default(),
                c.packets.to_string(),
                bytes(c.bytes),
                drops.join(" "),
            ]);
        }
        print!("{}", t.render());
    }
}

fn show(info: &SliceInfo, format: Format) -> Result<()> {
    match format {
        Format::Table | Format::Wide => print_info(info, format == Format::Wide),
        Format::Json => println!("{}", serde_json::to_string_pretty(info)?),
        Format::Yaml => print!("{}", spec_yaml(info)?),
        Format::Name => print_names([info.name.as_str()])?,
    }
    Ok(())
}

/// `slice get -w`: prints the slice, then a line (or, in JSON, the slice)
/// whenever its revision or state moves, until it is gone.
async fn watch(client: &Client, name: &str, format: Format) -> Result<()> {
    let mut info = client.slice(name).await?;
    show(&info, format)?;
    loop {
        match client.watch_slice(name, info.revision, Some(info.state), Duration::from_secs(30)).await {
            Ok(None) => continue,
            Ok(Some(next)) => {
                info = next;
                match format {
                    Format::Json => println!("{}", serde_json::to_string(&info)?),
                    Format::Yaml => print!("---\n{}", spec_yaml(&info)?),
                    Format::Name => print_names([info.name.as_str()])?,
                    Format::Table | Format::Wide => {
                        println!("{}  revision {}  {}", info.name, info.revision, state_line(&info))
                    }
                }
            }
            Err(e) if e.status() == Some(404) => {
                note!("slice {name} is gone");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `slice list`.
async fn list(client: &Client, format: Format) -> Result<()> {
    let v = client.slices().await?;
    if print_data(format, &v)? {
        return Ok(());
    }
    if format == Format::Name {
        return print_names(v.iter().map(|s| s.name.as_str()));
    }
    if v.is_empty() {
        note!("no slices");
        return Ok(());
    }
    let mut cols = vec![
        ("NAME", Align::Left),
        ("STATE", Align::Left),
        ("NODES", Align::Right),
        ("LINKS", Align::Right),
        ("REVISION", Align::Right),
        ("OWNER", Align::Left),
        ("EXPIRES", Align::Left),
    ];
    if format == Format::Wide {
        cols.push(("AGE", Align::Right));
    }
    let mut t = Table::new(&cols);
    for s in v {
        t.row(vec![
            s.name,
            s.state.as_str().into(),
            s.nodes.to_string(),
            s.links.to_string(),
            s.revision.to_string(),
            s.owner,
            until(s.expires),
            age(s.created),
        ]);
    }
    t.print()
}

/// The namespace of a sliver, checked to exist on this machine.
pub async fn sliver_netns(target: &Target, slice: &str, node: &str) -> Result<String> {
    netslice_api::Route::slice(slice)?;
    netslice_model::names::lowercase(node, netslice_model::spec::MAX_NAME).map_err(|e| anyhow!("node name {e}"))?;
    let client = Client::from_target(target)?;
    let info: SliceInfo = match client.slice(slice).await {
        Ok(i) => i,
        Err(e) if !client.healthy().await => {
            // The manager is down, but slivers keep running: on a local testbed the
            // namespace name is known from the naming convention.
            let local = netslice_testbed::list(&target.state_root)
                .into_iter()
                .find(|t| t.manager_url == client.base())
                .map(|t| netslice_embed::sliver_netns(&t.name, slice, node))
                .filter(|ns| netslice_io::netns::exists(ns));
            return match local {
                Some(ns) => {
                    note!("warning: {e:#}; using the local sliver namespace {ns}");
                    Ok(ns)
                }
                None => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    let n = info.plan.node(node).ok_or_else(|| {
        anyhow!(
            "slice {slice} has no node {node:?} (nodes: {})",
            info.plan.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let Some(ns) = &n.netns else {
        let kind = info.spec.node(node).map(|s| s.node_type.as_str()).unwrap_or("fast-path");
        bail!(
            "{slice}/{node} is a fast-path node ({kind}): it runs inside the agent of {} and has no namespace to run programs in; exec into a slowpath node, and see `netslice slice get {slice}` for its counters",
            n.host
        );
    };
    if !netslice_io::netns::exists(ns) {
        bail!(
            "sliver {slice}/{node} (namespace {ns}) is not on this machine or not created yet ({})",
            info.state.as_str()
        );
    }
    Ok(ns.clone())
}

/// Replaces this process with `cmd` inside the sliver (and its cgroups, if any).
pub fn exec(netns: &str, cmd: &[String]) -> anyhow::Error {
    let cg = netslice_io::cgroup::available()
        .then_some(netns)
        .filter(|n| std::path::Path::new(&format!("/sys/fs/cgroup/cpu/netslice/{n}")).exists());
    anyhow!(netslice_io::process::exec_in(netns, cg, &cmd[0], &cmd[1..]))
}

/// `netslice slice ...` (all but exec, which replaces the process before
/// any runtime starts).
pub async fn command(cmd: SliceCmd) -> Result<ExitCode> {
    match cmd {
        SliceCmd::Apply { file, target, dry_run: true, .. } => {
            let (spec, text) = read_spec(&file)?;
            let client = Client::from_target(&target)?;
            dry_run(&client, &spec, text).await?;
        }
        SliceCmd::Apply { file, wait, target, dry_run: false, if_revision } => {
            let (spec, text) = read_spec(&file)?;
            let client = Client::from_target(&target)?;
            let info = apply(&client, &spec, text, wait, if_revision).await?;
            if wait > 0 {
                print_info(&info, false);
            }
        }
        SliceCmd::List { target, output } => list(&Client::from_target(&target)?, output.format()).await?,
        SliceCmd::Get { name, target, output, watch: w } => {
            netslice_api::Route::slice(&name)?;
            let client = Client::from_target(&target)?;
            if w {
                watch(&client, &name, output.format()).await?;
            } else {
                show(&client.slice(&name).await?, output.format())?;
            }
        }
        SliceCmd::Graph { name, output, placement, target } => {
            let client = Client::from_target(&target)?;
            let info = client.slice(&name).await?;
            let g = crate::graph::Graph::of(&info.spec, placement.then_some(&info.plan));
            print!("{}", g.render(output));
        }
        SliceCmd::Stats { name, once, interval, target, output } => {
            let client = Client::from_target(&target)?;
            crate::cmd::stats::run(&client, &name, output.format(), once, Duration::from_secs_f64(interval)).await?;
        }
        SliceCmd::Check { name, since, target, output } => {
            let client = Client::from_target(&target)?;
            let c = client.slice_check(&name, since).await?;
            let violated: usize = c.links.iter().map(|l| l.violated).sum();
            if !print_data(output.format(), &c)? {
                crate::cmd::stats::print_check(&c, output.format() == Format::Wide);
            }
            if violated > 0 {
                return Ok(ExitCode::from(1));
            }
        }
        SliceCmd::Renew { name, duration, target } => {
            let client = Client::from_target(&target)?;
            let r = client.renew(&name, &netslice_api::types::Renew { seconds: None, duration }).await?;
            note!("slice {name}: lease ends {}", until(r.expires));
        }
        SliceCmd::Delete { name, wait, target, if_revision } => {
            netslice_api::Route::slice(&name)?;
            let client = Client::from_target(&target)?;
            delete(&client, &name, wait, if_revision).await?;
        }
        SliceCmd::Exec { .. } => unreachable!("exec is handled before the runtime starts"),
    }
    Ok(ExitCode::SUCCESS)
}
