//! The local testbed: a substrate built on this machine from a substrate
//! description, one network namespace per host, a veth pair per physical link, a
//! manager and one agent per host. A state file records everything as it is made
//! (before it is made, for namespaces), so `down` removes exactly that, also after
//! a crash of `up` or of any process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use netslice_io::cmd::{ip, ip_in, run};
use netslice_io::{netns, process};
use netslice_model::api::{HostInfo, HostState};
use netslice_model::{Substrate, SubstrateSpec, parse_document};

use netslice_api::Client;

/// Writes a line for people to stderr; a closed stderr does not panic (the
/// demo must go on to remove its testbed).
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Writes a result line to stdout; a closed stdout does not panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod demo;
mod state;
pub mod supervise;

pub use state::{
    Daemons, Proc, TestbedState, agent_args, host_netns, is_ours, list, load_state, manager_args, metrics_addr,
    new_proc,
};
use state::{default_io, now_secs};

/// Default directory of testbed state.
pub const DEFAULT_STATE_ROOT: &str = "/var/lib/netslice/testbeds";

/// Reads and validates a substrate description, naming the file in errors.
pub fn load_substrate(path: &Path) -> Result<Substrate> {
    load_spec(path)?.validate().map_err(|e| anyhow!("{}", e.in_file(path.display().to_string())))
}

fn load_spec(path: &Path) -> Result<SubstrateSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_document::<SubstrateSpec>(&text).map_err(|e| anyhow!("{}", e.in_file(path.display().to_string())))
}

fn exe() -> Result<PathBuf> {
    process::current_exe().context("locating the netslice executable")
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Progress lines go to stderr so that stdout stays for results.
macro_rules! progress {
    ($($arg:tt)*) => { note!($($arg)*) };
}

/// Where the local testbed keeps this machine's calibration
/// (`NETSLICE_CALIBRATION` overrides it): measured once, by the first
/// testbed that needs it, and given to every agent with `--capacity`.
pub fn calibration_path() -> PathBuf {
    std::env::var_os("NETSLICE_CALIBRATION")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/netslice/calibration.json"))
}

/// Whether forwarding guarantees are on (`NETSLICE_FORWARDING=off` turns
/// them off: the testbed does not say its hosts share one machine, agents
/// report no capacity, so the manager admits no forwarding work and
/// slivers' CPU only against each host's own `cpu`, as before; for
/// comparisons and for raw throughput benchmarks).
pub fn forwarding_guarantees() -> bool {
    std::env::var("NETSLICE_FORWARDING").map(|v| v != "off").unwrap_or(true)
}

/// This machine's calibration, measured now (under a lock, so that
/// testbeds started together measure once) if there is none for it yet.
fn ensure_calibration() -> Result<PathBuf> {
    let path = calibration_path();
    let current = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<netslice_model::capacity::Calibration>(&t).ok())
            .is_some_and(|c| c.machine == netslice_io::cpu::machine_id())
    };
    if current(&path) {
        return Ok(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    netslice_io::file::lock_exclusive(&lock).with_context(|| format!("locking {}", lock_path.display()))?;
    if current(&path) {
        return Ok(path);
    }
    progress!("measuring what this machine can forward (once per machine, about 20 s; see {})", path.display());
    let out = Command::new(exe()?)
        .args(["node", "calibrate", "--out"])
        .arg(&path)
        .output()
        .context("running netslice node calibrate")?;
    if !out.status.success() {
        bail!(
            "calibrating forwarding capacity failed:\n{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        progress!("  {line}");
    }
    Ok(path)
}

/// The share of its CPUs a local testbed offers its hosts together (the
/// rest is for the system, the manager and the testbed's own processes).
pub const MACHINE_SHARE: f64 = 0.9;

fn start_proc(dir: &Path, args: Vec<String>, log: PathBuf) -> Result<Proc> {
    let mut cmd = Command::new(exe()?);
    cmd.args(&args).current_dir(dir);
    let pid = process::spawn_daemon(cmd, &log)? as i32;
    let start_ticks = process::start_time(pid).unwrap_or(0);
    Ok(Proc { pid, starts: 1, started: now_secs(), start_ticks, ..new_proc(args, log) })
}

fn stop_proc(p: &Proc, dir: &Path) {
    if !is_ours(p, dir) {
        return;
    }
    let _ = process::signal(p.pid, process::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        process::reap_children();
        if !process::alive(p.pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = process::signal(p.pid, process::SIGKILL);
    std::thread::sleep(Duration::from_millis(50));
    process::reap_children();
}

/// Starts the supervisor of a testbed (which starts, or adopts, the manager
/// and the agents) and waits until the manager listens.
fn start_supervisor(st: &mut TestbedState) -> Result<()> {
    let args = vec!["testbed".into(), "supervise".into(), st.dir.display().to_string()];
    let p = start_proc(&st.dir, args, st.dir.join("supervisor.log"))?;
    st.supervisor = Some(p.clone());
    st.save()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(d) = Daemons::load(&st.dir)
            && d.supervisor == p.pid
            && !d.manager_url.is_empty()
            && d.agents.len() == st.hosts.len()
        {
            st.manager_url = d.manager_url;
            st.save()?;
            return Ok(());
        }
        if !process::alive(p.pid) {
            process::reap_children();
            bail!(
                "the testbed's supervisor exited at start; its log ({}) ends with:\n{}\nand the manager's:\n{}",
                p.log.display(),
                log_tail(&p.log, 15),
                log_tail(&st.dir.join("manager.log"), 15)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the manager did not start listening within 20s; see {} and {}",
                p.log.display(),
                st.dir.join("manager.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TestbedState {
    /// A client of this testbed's manager, as its builder: the operator
    /// token and the testbed's certificate.
    pub fn client(&self) -> Result<Client> {
        let token = std::fs::read_to_string(self.dir.join("operator.token")).ok().map(|t| t.trim().to_string());
        Ok(Client::new(&self.manager_url, Some(&self.dir.join("tls").join("cert.pem")), token)?)
    }
}

/// The processes of a testbed still running: `supervisor`, `manager`, hosts.
pub fn running(st: &TestbedState) -> Vec<String> {
    let mut v = Vec::new();
    if supervised(st) {
        v.push("supervisor".to_string());
    }
    if st.manager.as_ref().is_some_and(|p| is_ours(p, &st.dir)) {
        v.push("manager".to_string());
    }
    v.extend(st.agents.iter().filter(|(_, p)| is_ours(p, &st.dir)).map(|(h, _)| format!("agent of {h}")));
    v
}

/// Whether the testbed's supervisor runs.
pub fn supervised(st: &TestbedState) -> bool {
    st.supervisor.as_ref().is_some_and(|p| is_ours(p, &st.dir))
}

/// Agents that did not report ready in time.
#[derive(Debug)]
pub struct NotReady {
    pub timeout: Duration,
    pub missing: Vec<String>,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agents not ready within {:?}: {}", self.timeout, self.missing.join(", "))
    }
}

impl std::error::Error for NotReady {}

/// Waits until every host's agent reports, printing who is missing.
pub async fn wait_hosts_ready(client: &Client, timeout: Duration) -> Result<Vec<HostInfo>> {
    let deadline = Instant::now() + timeout;
    let mut last_missing: Vec<String> = Vec::new();
    loop {
        let hosts: Result<Vec<HostInfo>> = client.nodes().await.map_err(Into::into);
        if let Ok(hosts) = &hosts {
            let missing: Vec<String> =
                hosts.iter().filter(|h| h.state != HostState::Ready).map(|h| h.name.clone()).collect();
            if missing.is_empty() {
                return Ok(hosts.clone());
            }
            if missing != last_missing {
                progress!("  waiting for agents: {}", missing.join(", "));
                last_missing = missing;
            }
        }
        if Instant::now() > deadline {
            return Err(NotReady { timeout, missing: last_missing }.into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tbf_args(ifname: &str, bps: u64, mtu: u32) -> Vec<String> {
    // Burst: 4 ms at line rate, at least two full frames plus a GSO super-frame.
    let burst = (bps / 8 / 250).max(2 * u64::from(mtu) + 65_536);
    let rate = format!("{bps}bit");
    vec![
        "qdisc".into(),
        "replace".into(),
        "dev".into(),
        ifname.into(),
        "root".into(),
        "tbf".into(),
        "rate".into(),
        rate,
        "burst".into(),
        burst.to_string(),
        "latency".into(),
        "20ms".into(),
    ]
}

/// Builds the testbed described in `file`. On failure, removes whatever was made.
pub fn up(file: &Path, name: Option<&str>, root: &Path) -> Result<TestbedState> {
    let spec = load_spec(file)?;
    let source = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    up_spec(spec, &source, name, root, "testbed up")
}

/// Builds a testbed from a parsed description. On failure, removes whatever was made.
/// `made_by` is recorded (`testbed up`, `demo`): the demo removes a leftover
/// testbed only if a demo made it and nothing of it runs.
pub fn up_spec(
    mut spec: SubstrateSpec,
    file: &Path,
    name: Option<&str>,
    root: &Path,
    made_by: &str,
) -> Result<TestbedState> {
    if let Some(n) = name {
        spec.name = n.to_string();
    }
    // Every host of a local testbed runs on this one machine: their slivers
    // and forwarding share its CPUs, and the manager is told so (unless
    // guarantees are switched off, for comparisons and raw benchmarks).
    if forwarding_guarantees() {
        let cpus = netslice_io::cpu::allowed().map(|c| c.len()).unwrap_or(1).max(1);
        spec.machines = vec![netslice_model::substrate::MachineSpec {
            name: "local".into(),
            cpu: ((cpus as f64 * MACHINE_SHARE) * 100.0).round() / 100.0,
        }];
        for h in &mut spec.hosts {
            h.machine = Some("local".into());
        }
    }
    let substrate = spec.validate().map_err(|e| anyhow!("{}", e.in_file(file.display().to_string())))?;
    if !process::is_root() {
        bail!("the local testbed needs root (it creates network namespaces): run with sudo");
    }
    run("ip", &["-V"]).context("iproute2's `ip` is needed (apt-get install iproute2)")?;
    let dir = root.join(&substrate.name);
    if let Some(old) = TestbedState::load(&dir) {
        bail!(
            "testbed {:?} is already up (since {}); run `netslice testbed down {}` first",
            old.name,
            old.created,
            old.name
        );
    }
    let taken: Vec<String> =
        netns::list().into_iter().filter(|n| n.starts_with(&format!("{}.", substrate.name))).collect();
    if !taken.is_empty() {
        bail!(
            "network namespaces of a testbed {:?} already exist ({}); run `netslice testbed down {}` first",
            substrate.name,
            taken.join(", "),
            substrate.name
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Absolute: daemons run with it as their working directory and name it in
    // their arguments, by which they are recognised later.
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))?;
    let mut st = TestbedState {
        name: substrate.name.clone(),
        dir: dir.clone(),
        source: file.to_path_buf(),
        created: now_secs(),
        phase: "building".into(),
        manager_url: String::new(),
        manager: None,
        agents: BTreeMap::new(),
        namespaces: substrate.hosts.iter().map(|h| host_netns(&substrate.name, &h.name)).collect(),
        supervisor: None,
        hosts: substrate.hosts.iter().map(|h| h.name.clone()).collect(),
        made_by: made_by.to_string(),
        io: std::env::var("NETSLICE_IO").ok().filter(|v| !v.is_empty()).unwrap_or_else(default_io),
        workers: match std::env::var("NETSLICE_WORKERS").ok().filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => match v.parse::<u16>() {
                Ok(n) if n <= 64 => n,
                _ => bail!("NETSLICE_WORKERS: {v:?} is not a number of workers in 0..=64"),
            },
        },
        metrics: BTreeMap::new(),
        capacity: None,
    };
    if let Err(e) = st.io.parse::<netslice_io::IoMode>() {
        bail!("NETSLICE_IO: {e}");
    }
    st.capacity = Some(if forwarding_guarantees() {
        ensure_calibration()?.display().to_string()
    } else {
        progress!("NETSLICE_FORWARDING=off: agents report no forwarding capacity and serve slices as frames come");
        "none".to_string()
    });
    st.save()?;
    std::fs::write(dir.join("substrate.yaml"), serde_yaml_ng_to_string(&spec)?)?;
    let started = Instant::now();
    match build(&mut st, &substrate) {
        Ok(()) => {
            st.phase = "up".into();
            st.save()?;
            progress!("testbed {} is up in {:.1}s", st.name, started.elapsed().as_secs_f64());
            Ok(st)
        }
        Err(e) => {
            progress!("building testbed {} failed: {e:#}\nremoving what was made...", st.name);
            if let Err(d) = down_state(&st) {
                progress!("cleanup also failed: {d:#}");
            }
            Err(e)
        }
    }
}

fn serde_yaml_ng_to_string(spec: &SubstrateSpec) -> Result<String> {
    // JSON is valid YAML; the manager reads either.
    Ok(serde_json::to_string_pretty(spec)?)
}

fn build(st: &mut TestbedState, s: &Substrate) -> Result<()> {
    progress!("creating {} host namespaces", s.hosts.len());
    for ns in &st.namespaces {
        netns::create(ns)?;
        // Slivers talk to nothing in the host namespace; keep it quiet and closed.
        let _ = netns::sysctl(ns, "net.ipv4.ip_forward", "0");
    }
    progress!("wiring {} physical links", s.links.len());
    for l in &s.links {
        let [a, b] = &l.ends;
        let (na, nb) = (host_netns(&st.name, &a.host), host_netns(&st.name, &b.host));
        ip(&["link", "add", &a.ifname, "netns", &na, "type", "veth", "peer", "name", &b.ifname, "netns", &nb])
            .with_context(|| format!("creating link {}", l.name))?;
        for (e, ns) in [(a, &na), (b, &nb)] {
            // An Ethernet-only transport link gets no addresses: nothing IP crosses it.
            if l.network == netslice_model::substrate::Network::Ip {
                ip_in(ns, &["addr", "add", &format!("{}/{}", e.addr, l.prefix_len), "dev", &e.ifname])?;
            }
            ip_in(
                ns,
                &["link", "set", "dev", &e.ifname, "address", &e.mac.to_string(), "mtu", &l.mtu.to_string(), "up"],
            )?;
            let mut tc = vec!["-n".to_string(), ns.clone()];
            tc.extend(tbf_args(&e.ifname, l.bandwidth.bps(), l.mtu));
            run("tc", &tc).with_context(|| format!("shaping link {} to {}", l.name, l.bandwidth))?;
        }
    }
    progress!("starting the supervisor, the manager and {} agents", s.hosts.len());
    start_supervisor(st)?;
    progress!("manager at {}", st.manager_url);
    let client = st.client()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hosts = rt.block_on(wait_hosts_ready(&client, Duration::from_secs(30))).map_err(|e| {
        // The testbed's directory is removed on failure: carry the logs that explain it.
        let mut msg = format!("{e:#}");
        let missing = e.downcast_ref::<NotReady>().map(|n| n.missing.clone()).unwrap_or_default();
        for h in &missing {
            let log = st.dir.join("agents").join(format!("{h}.log"));
            msg.push_str(&format!("\nthe agent of {h} logged last:\n{}", log_tail(&log, 20)));
        }
        msg.push_str(&format!("\nthe supervisor logged last:\n{}", log_tail(&st.dir.join("supervisor.log"), 10)));
        anyhow!(msg)
    })?;
    // Slices applied before a host's figures arrive would not be charged
    // for forwarding there: wait for every agent's first report of them.
    if st.capacity.as_deref().is_some_and(|c| c != "none") {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let usage = rt.block_on(client.usage())?;
            let missing: Vec<&str> =
                usage.hosts.iter().filter(|h| h.capacity.is_none()).map(|h| h.name.as_str()).collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                bail!("agents did not report their forwarding capacity within 15s: {}", missing.join(", "));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for h in hosts {
        progress!("  {:<10} {:<9} ready  netns {}", h.name, h.role.as_str(), host_netns(&st.name, &h.name));
        if let Some(a) = state::metrics_addr(st, &h.name) {
            st.metrics.insert(h.name, a);
        }
    }
    st.save()?;
    Ok(())
}

/// Removes everything a testbed state names, and anything else named after it.
pub fn down_state(st: &TestbedState) -> Result<()> {
    let mut report = Vec::new();
    // The supervisor first, so that it restarts nothing; it stops its daemons.
    if let Some(p) = &st.supervisor
        && is_ours(p, &st.dir)
    {
        let _ = process::signal(p.pid, process::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && process::alive(p.pid) {
            process::reap_children();
            std::thread::sleep(Duration::from_millis(50));
        }
        stop_proc(p, &st.dir);
    }
    // Then whatever it left (also when it was killed before).
    let st = &TestbedState::load(&st.dir).unwrap_or_else(|| st.clone());
    for p in st.agents.values() {
        stop_proc(p, &st.dir);
    }
    if let Some(p) = &st.manager {
        stop_proc(p, &st.dir);
    }
    let n = remove_namespaces(&st.name, &mut report);
    let c = remove_cgroups(&st.name);
    if st.dir.exists() {
        std::fs::remove_dir_all(&st.dir).with_context(|| format!("removing {}", st.dir.display()))?;
    }
    progress!(
        "testbed {} removed: {} processes stopped, {n} namespaces and {c} cgroups deleted",
        st.name,
        st.agents.len() + usize::from(st.manager.is_some())
    );
    if !report.is_empty() {
        bail!("some parts could not be removed:\n  {}", report.join("\n  "));
    }
    Ok(())
}

fn remove_namespaces(name: &str, problems: &mut Vec<String>) -> usize {
    let prefix = format!("{name}.");
    let mut all: Vec<String> = netns::list().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    // Slivers (testbed.slice.node) first: their processes are killed by PID.
    all.sort_by_key(|n| std::cmp::Reverse(n.matches('.').count()));
    let mut count = 0;
    for ns in all {
        if ns.matches('.').count() >= 2 {
            netslice_io::sliver::kill_processes(&ns, true);
        }
        match netns::delete(&ns) {
            Ok(()) => count += 1,
            Err(e) => problems.push(format!("namespace {ns}: {e}")),
        }
    }
    count
}

fn remove_cgroups(name: &str) -> usize {
    let prefix = format!("{name}.");
    let dir = Path::new("/sys/fs/cgroup/cpu/netslice");
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    let mut count = 0;
    for n in names {
        if netslice_io::sliver::remove_cgroup(&n).is_ok() {
            count += 1;
        }
    }
    // The shared parent goes too once no testbed uses it.
    for c in ["cpu", "memory", "cpuset"] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(c).join("netslice"));
    }
    count
}

/// Resolves a `down` argument: a testbed name, a substrate file, or nothing (the
/// only testbed up).
/// The testbed a command means: `name` (a testbed name, or the substrate
/// file it was built from), else the only one that is up.
pub fn resolve(name: Option<&str>, root: &Path) -> Result<String> {
    match name {
        Some(n) if Path::new(n).is_file() => Ok(load_spec(Path::new(n))?.name),
        Some(n) => Ok(n.to_string()),
        None => {
            let v = list(root);
            match v.len() {
                1 => Ok(v[0].name.clone()),
                0 => bail!("no local testbed is up; name one to clean up leftovers: `netslice testbed down NAME`"),
                _ => bail!(
                    "several testbeds are up ({}); name one",
                    v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    }
}

/// Removes a testbed by name (works without a state file too: namespaces and
/// cgroups are found by the testbed's name prefix).
pub fn down(name: &str, root: &Path) -> Result<()> {
    if !process::is_root() {
        bail!("removing a testbed needs root: run with sudo");
    }
    let st = TestbedState::load(&root.join(name)).unwrap_or_else(|| TestbedState {
        name: name.to_string(),
        dir: root.join(name),
        source: PathBuf::new(),
        created: 0,
        phase: "unknown".into(),
        manager_url: String::new(),
        manager: None,
        agents: BTreeMap::new(),
        namespaces: Vec::new(),
        io: default_io(),
        workers: 0,
        metrics: BTreeMap::new(),
        supervisor: None,
        hosts: Vec::new(),
        made_by: String::new(),
        capacity: None,
    });
    down_state(&st)
}

/// Restarts the manager (same address, same store) or one agent, through
/// the testbed's supervisor (started first if it is not running: it adopts
/// the daemons still alive).
pub fn restart(name: &str, root: &Path, agent: Option<&str>, manager: bool) -> Result<()> {
    let dir = root.join(name);
    let mut st = TestbedState::load(&dir).ok_or_else(|| anyhow!("no local testbed named {name:?}"))?;
    if let Some(h) = agent
        && !st.hosts.iter().any(|x| x == h)
    {
        bail!("testbed {name} has no host {h:?} (hosts: {})", st.hosts.join(", "));
    }
    if !supervised(&st) {
        progress!("the supervisor of {name} is not running: starting it (it adopts the daemons still alive)");
        start_supervisor(&mut st)?;
    }
    let ask = |daemon: &str| -> Result<String> {
        let a = crate::supervise::request(&dir, &crate::supervise::Request::Restart { daemon: daemon.to_string() })?;
        if a.ok { Ok(a.message) } else { bail!("{}", a.message) }
    };
    if manager {
        let m = ask("manager")?;
        // Wait until it answers again.
        let client = st.client()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while !rt.block_on(client.healthy()) {
            if Instant::now() > deadline {
                bail!(
                    "{m}, but it does not answer at {} after 15s; see {}",
                    st.manager_url,
                    dir.join("manager.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        progress!("{m} at {}", st.manager_url);
    }
    if let Some(h) = agent {
        progress!("{}", ask(h)?.replacen(h, &format!("agent of {h}"), 1));
    }
    Ok(())
}

fn ago(t: u64) -> String {
    let d = now_secs().saturating_sub(t);
    match d {
        0..120 => format!("{d}s ago"),
        120..7200 => format!("{}m ago", d / 60),
        _ => format!("{}h ago", d / 3600),
    }
}

/// One line about a daemon of a testbed: pid, running or not, restarts, last exit.
pub fn proc_line(label: &str, p: &Proc, dir: &Path) -> String {
    let state = if is_ours(p, dir) { "running" } else { "STOPPED" };
    let mut line = format!("  {label:<10} pid {:<8} {state:<8} restarts {}", p.pid, p.restarts);
    if let Some(why) = &p.last_exit {
        line.push_str(&format!("  last exit: {why}"));
        if let Some(t) = p.last_exit_at {
            line.push_str(&format!(" ({})", ago(t)));
        }
    }
    line
}
