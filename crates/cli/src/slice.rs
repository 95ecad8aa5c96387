//! Client commands: slices and hosts.

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use netslice_model::SliceSpec;
use netslice_model::api::{HostInfo, SliceInfo, SliceState, SliceSummary};
use reqwest::StatusCode;

use crate::client::{Client, Resolve, Route};
use crate::{SliceCmd, Target};

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

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Applies a spec and waits for the slice to become ready.
pub async fn apply(client: &Client, spec: &SliceSpec, text: String, wait: u64) -> Result<SliceInfo> {
    let (status, result, info): (StatusCode, String, SliceInfo) = client
        .put_doc(&Route::slice(&spec.name)?, &(), text)
        .await
        .with_context(|| format!("applying slice {}", spec.name))?;
    match (status, result.as_str()) {
        (StatusCode::CREATED, _) => note!("slice {} created (revision {})", spec.name, info.revision),
        (_, "updated") => note!("slice {} updated in place (revision {})", spec.name, info.revision),
        _ => note!("slice {} unchanged", spec.name),
    }
    if wait == 0 {
        return Ok(info);
    }
    wait_ready(client, &spec.name, Duration::from_secs(wait)).await
}

/// Polls a slice until it is ready; fails if it fails or the time runs out.
pub async fn wait_ready(client: &Client, name: &str, timeout: Duration) -> Result<SliceInfo> {
    let route = Route::slice(name)?;
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let info: SliceInfo = client.get(&route).await?;
        let line =
            format!("{}{}", info.state.as_str(), info.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default());
        if line != last {
            note!("slice {name}: {line}");
            last = line;
        }
        match info.state {
            SliceState::Ready => return Ok(info),
            SliceState::Failed => bail!("slice {name} failed: {}", info.message.unwrap_or_default()),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("slice {name} not ready after {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes a slice and waits for the agents to tear it down.
pub async fn delete(client: &Client, name: &str, wait: u64) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Deleted {
        revision: u64,
    }
    let route = Route::slice(name)?;
    let d: Deleted = client.delete(&route).await?;
    note!("slice {name} deleted (revision {})", d.revision);
    if wait == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        let hosts: Vec<HostInfo> = client.get(&Route::nodes()).await?;
        let behind: Vec<&str> = hosts
            .iter()
            .filter(|h| h.applied_revision.is_none_or(|a| a < h.desired_revision))
            .map(|h| h.name.as_str())
            .collect();
        // Once every host applied the deletion the manager forgets the slice
        // (its housekeeping runs every second).
        let gone = behind.is_empty() && client.get::<SliceInfo>(&route).await.is_err();
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

/// Asks the manager whether a spec would be admitted and prints the plan.
pub async fn dry_run(client: &Client, spec: &SliceSpec, text: String) -> Result<()> {
    let (_, _, d): (StatusCode, String, netslice_api::types::DryRun) = client
        .put_doc(&Route::slice(&spec.name)?, &[("dry_run", "true")], text)
        .await
        .with_context(|| format!("slice {} would be refused", spec.name))?;
    println!("slice {} would be admitted ({}); nothing was reserved", spec.name, d.action);
    for n in &d.plan.nodes {
        println!(
            "  node {:<10} host {:<8} cpu {:.2} memory {}",
            n.name,
            n.host,
            n.cpu_milli as f64 / 1000.0,
            bytes(n.memory)
        );
    }
    for l in &d.plan.links {
        println!(
            "  link {:<10} {:>9}  path {}",
            l.name,
            netslice_model::Bandwidth(l.reserved).to_string(),
            l.path.join(" -> ")
        );
    }
    Ok(())
}

/// `substrate show`.
pub async fn substrate_show(target: &Target, json: bool) -> Result<ExitCode> {
    let client = Client::from_target(target)?;
    let u: netslice_model::api::SubstrateUsage = client.get(&Route::usage()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&u)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("substrate {}", u.name);
    println!(
        "{:<10} {:<9} {:>13} {:>21} {:>9} {:>9}",
        "HOST", "ROLE", "CPU used/all", "MEMORY used/all", "SLIVERS", "PORTS"
    );
    for h in &u.hosts {
        println!(
            "{:<10} {:<9} {:>13} {:>21} {:>9} {:>9}",
            h.name,
            h.role.as_str(),
            format!("{:.2}/{}", h.cpu_used, h.cpu),
            format!("{}/{}", bytes(h.memory_used), bytes(h.memory)),
            format!("{}/{}", h.slivers_used, h.slivers),
            format!("{}/{}", h.ports_used, h.ports)
        );
    }
    println!("{:<12} {:<19} {:>12} {:>12} {:>12}", "LINK", "DIRECTION", "CAPACITY", "RESERVED", "FREE");
    for l in &u.links {
        println!(
            "{:<12} {:<19} {:>12} {:>12} {:>12}",
            l.name,
            format!("{} -> {}", l.from, l.to),
            netslice_model::Bandwidth(l.bandwidth).to_string(),
            netslice_model::Bandwidth(l.reserved).to_string(),
            netslice_model::Bandwidth(l.free).to_string()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `whoami`.
pub async fn whoami(target: &Target) -> Result<ExitCode> {
    let client = Client::from_target(target)?;
    let w: netslice_api::types::WhoAmI = client.get(&Route::whoami()).await?;
    println!("{} ({}) at {}", w.name, w.role, client.base());
    Ok(ExitCode::SUCCESS)
}

/// `login`: checks the token, then saves manager, token and certificate.
pub async fn login(a: crate::LoginArgs) -> Result<ExitCode> {
    let token = match &a.token_file {
        Some(f) => crate::client::read_token(f)?,
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
            let st = crate::testbed::list(&a.state_root);
            match st.as_slice() {
                [one] => (one.manager_url.clone(), a.ca_cert.clone().or(Some(one.dir.join("tls").join("cert.pem")))),
                _ => bail!("give --manager URL (no single local testbed is up)"),
            }
        }
    };
    let client = Client::new(&base, ca.as_deref(), Some(token.clone()))?;
    let w: netslice_api::types::WhoAmI = client.get(&Route::whoami()).await?;
    let dir = crate::client::config_dir().context("no HOME or XDG_CONFIG_HOME to keep the login in")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    netslice_manager::auth::write_secret(&dir.join("token"), &token)
        .with_context(|| format!("writing {}", dir.join("token").display()))?;
    let ca_saved = match &ca {
        Some(c) => {
            let dst = dir.join("ca.pem");
            std::fs::copy(c, &dst).with_context(|| format!("copying {} to {}", c.display(), dst.display()))?;
            Some(dst)
        }
        None => None,
    };
    let login = crate::client::Login { manager: base.clone(), ca_cert: ca_saved };
    std::fs::write(dir.join("login.json"), serde_json::to_vec_pretty(&login)?)
        .with_context(|| format!("writing {}", dir.join("login.json").display()))?;
    note!("logged in to {base} as {} ({}); saved in {}", w.name, w.role, dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `user add` / `user revoke`.
pub async fn user(cmd: crate::UserCmd) -> Result<ExitCode> {
    match cmd {
        crate::UserCmd::Add { name, operator, save_token, target } => {
            netslice_model::names::user(&name).map_err(|e| anyhow!("user name {e}"))?;
            let client = Client::from_target(&target)?;
            let body = netslice_api::types::NewUser {
                name: name.clone(),
                role: Some(if operator { "operator" } else { "developer" }.into()),
            };
            let t: netslice_api::types::UserToken = client.post_json(&Route::users(), &body).await?;
            match save_token {
                Some(f) => {
                    netslice_manager::auth::write_secret(&f, &t.token)
                        .with_context(|| format!("writing {}", f.display()))?;
                    note!("{} {name} added; token in {}", t.role, f.display());
                }
                None => {
                    note!("{} {name} added; the token (shown once):", t.role);
                    println!("{}", t.token);
                }
            }
        }
        crate::UserCmd::Revoke { name, target } => {
            let route = Route::user(&name)?;
            let client = Client::from_target(&target)?;
            let r: netslice_api::types::Revoked = client.delete(&route).await?;
            note!("{} token(s) of {name} revoked", r.tokens);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit`.
pub async fn audit(target: &Target, after: u64, limit: u64, json: bool) -> Result<ExitCode> {
    let client = Client::from_target(target)?;
    let v: Vec<netslice_model::api::AuditEntry> =
        client.get_query(&Route::audit(), &[("after", after.to_string()), ("limit", limit.to_string())]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if v.is_empty() {
        println!("no changes recorded after {after}");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    println!("{:>6} {:>9} {:<18} {:<10} {:<14} {:<16} DETAIL", "ID", "AGE", "CALLER", "ROLE", "ACTION", "OBJECT");
    for e in v {
        let age = now.saturating_sub(e.time);
        println!(
            "{:>6} {:>9} {:<18} {:<10} {:<14} {:<16} {}",
            e.id,
            format!("{age}s ago"),
            e.caller,
            e.role,
            e.action,
            e.object,
            e.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(info: &SliceInfo) {
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
    println!("nodes:");
    for n in &info.plan.nodes {
        let spec = info.spec.node(&n.name);
        let kind = spec.map(|s| s.node_type.as_str()).unwrap_or("?");
        let reserved = format!("cpu {} memory {}", n.cpu_milli as f64 / 1000.0, netslice_model::Memory(n.memory));
        match &n.netns {
            Some(ns) => println!("  {:<10} {:<9} host {:<8} netns {ns}  {reserved}", n.name, kind, n.host),
            None => println!("  {:<10} {:<9} host {:<8} fast path in the agent  {reserved}", n.name, kind, n.host),
        }
        for i in &n.interfaces {
            let addrs: Vec<String> = info
                .spec
                .links
                .iter()
                .find(|l| l.name == i.link)
                .map(|l| l.endpoints[usize::from(i.endpoint)].all_addresses().iter().map(|a| a.to_string()).collect())
                .unwrap_or_default();
            println!("      {:<8} {}  link {:<10} {}", i.name, i.mac, i.link, addrs.join(" "));
        }
    }
    for p in &info.programs {
        let stats: Vec<String> = p.stats.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k}={v}")).collect();
        let stats = if stats.is_empty() { "no frames yet".to_string() } else { stats.join(" ") };
        println!("  program {} on {}: {stats}", p.node, p.host);
    }
    println!("links:");
    for l in &info.plan.links {
        let spec = info.spec.links.iter().find(|s| s.name == l.name);
        println!(
            "  {:<10} {:<5} {:>9}  path {}",
            l.name,
            spec.map(|s| s.link_type.as_str()).unwrap_or("?"),
            spec.map(|s| s.bandwidth.to_string()).unwrap_or_default(),
            l.path.join(" -> ")
        );
        if !l.underlay.is_empty() {
            let hops: Vec<&str> = l.hop_types.iter().map(|t| t.as_str()).collect();
            println!(
                "      hops {}  labels forward {:?}  reverse {:?}",
                hops.join(" "),
                l.forward_labels,
                l.reverse_labels
            );
        }
        for c in info.counters.iter().filter(|c| c.link == l.name) {
            let drops: Vec<String> = c.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "      {:<8} {:<8} {:<8} {:>9} pkts {:>10}{}",
                c.host,
                c.direction.map(|d| format!("{d:?}").to_lowercase()).unwrap_or_default(),
                c.stage.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default(),
                c.packets,
                bytes(c.bytes),
                if drops.is_empty() { String::new() } else { format!("  drops {}", drops.join(" ")) }
            );
        }
    }
}

/// `node list`.
pub async fn node_list(target: &Target, json: bool) -> Result<ExitCode> {
    let client = Client::from_target(target)?;
    let hosts: Vec<HostInfo> = client.get(&Route::nodes()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<10} {:<9} {:<8} {:>7} {:>9} {:>9}  IO", "HOST", "ROLE", "STATE", "SLIVERS", "APPLIED", "DESIRED");
    for h in hosts {
        println!(
            "{:<10} {:<9} {:<8} {:>7} {:>9} {:>9}  {}",
            h.name,
            h.role.as_str(),
            format!("{:?}", h.state).to_lowercase(),
            h.slivers,
            h.applied_revision.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            h.desired_revision,
            h.io_backend.unwrap_or_else(|| "-".into())
        );
        if let Some(f) = h.forwarding {
            println!("    forwarding: {f}");
        }
        for e in h.errors {
            println!("    error: {}{}", e.slice.map(|s| format!("slice {s}: ")).unwrap_or_default(), e.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The namespace of a sliver, checked to exist on this machine.
pub async fn sliver_netns(target: &Target, slice: &str, node: &str) -> Result<String> {
    let route = Route::slice(slice)?;
    netslice_model::names::lowercase(node, netslice_model::spec::MAX_NAME).map_err(|e| anyhow!("node name {e}"))?;
    let client = Client::from_target(target)?;
    let info: SliceInfo = match client.get(&route).await {
        Ok(i) => i,
        Err(e) if !client.healthy().await => {
            // The manager is down, but slivers keep running: on a local testbed the
            // namespace name is known from the naming convention.
            let local = crate::testbed::list(&target.state_root)
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
            "{slice}/{node} is a fast-path node ({kind}): it runs inside the agent of {} and has no namespace to run programs in; exec into a slowpath node, and see `netslice slice show {slice}` for its counters",
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

/// `netslice slice ...` (all but exec).
pub async fn command(cmd: SliceCmd) -> Result<ExitCode> {
    match cmd {
        SliceCmd::Apply { file, wait, target, dry_run: true } => {
            let (spec, text) = read_spec(&file)?;
            let client = Client::from_target(&target)?;
            dry_run(&client, &spec, text).await?;
            let _ = wait; // nothing to wait for
        }
        SliceCmd::Apply { file, wait, target, dry_run: false } => {
            let (spec, text) = read_spec(&file)?;
            let client = Client::from_target(&target)?;
            let info = apply(&client, &spec, text, wait).await?;
            if wait > 0 {
                print_info(&info);
            }
        }
        SliceCmd::List { target, json } => {
            let client = Client::from_target(&target)?;
            let v: Vec<SliceSummary> = client.get(&Route::slices()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.is_empty() {
                println!("no slices");
            } else {
                println!(
                    "{:<16} {:<13} {:>5} {:>5} {:>8}  {:<12} EXPIRES",
                    "NAME", "STATE", "NODES", "LINKS", "REVISION", "OWNER"
                );
                for s in v {
                    println!(
                        "{:<16} {:<13} {:>5} {:>5} {:>8}  {:<12} {}",
                        s.name,
                        s.state.as_str(),
                        s.nodes,
                        s.links,
                        s.revision,
                        s.owner,
                        until(s.expires)
                    );
                }
            }
        }
        SliceCmd::Show { name, target, json } => {
            let route = Route::slice(&name)?;
            let client = Client::from_target(&target)?;
            let info: SliceInfo = client.get(&route).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print_info(&info);
            }
        }
        SliceCmd::Graph { name, output, placement, target } => {
            let client = Client::from_target(&target)?;
            let info = client.slice(&name).await?;
            let g = crate::graph::Graph::of(&info.spec, placement.then_some(&info.plan));
            print!("{}", g.render(output));
        }
        SliceCmd::Renew { name, duration, target } => {
            let route = Route::renew(&name)?;
            let client = Client::from_target(&target)?;
            let body = netslice_api::types::Renew { seconds: None, duration };
            let r: netslice_api::types::Renewed = client.post_json(&route, &body).await?;
            note!("slice {name}: lease ends {}", until(r.expires));
        }
        SliceCmd::Delete { name, wait, target } => {
            Route::slice(&name)?;
            let client = Client::from_target(&target)?;
            delete(&client, &name, wait).await?;
        }
        SliceCmd::Exec { .. } => unreachable!("exec is handled before the runtime starts"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether any rule of `info` sends on the substrate (for summaries).
pub fn has_transit(info: &SliceInfo) -> bool {
    info.plan.links.iter().any(|l| l.path.len() > 2)
}

/// `netslice types`.
pub async fn types(target: &Target, json: bool, builtin: bool) -> Result<ExitCode> {
    let info: netslice_model::types::TypesInfo = if builtin {
        netslice_dataplane::Registry::builtin().info()
    } else {
        Client::from_target(target)?.get(&Route::types()).await?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("node types:");
    for n in &info.nodes {
        println!("  {:<14} {}  {}", n.name, if n.fast_path { "fast path" } else { "slow path" }, n.description);
        for p in &n.params {
            println!(
                "      params.{:<12} {:<9} {:<10} {}",
                p.name,
                p.kind,
                p.default.as_deref().map(|d| format!("[{d}]")).unwrap_or_default(),
                p.description
            );
        }
    }
    println!("link types:");
    for l in &info.links {
        println!(
            "  {:<14} {:<8} +{:<3}B  labels <= {:<10} {}",
            l.name,
            format!("{:?}", l.layer).to_lowercase(),
            l.overhead,
            l.max_label,
            l.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
