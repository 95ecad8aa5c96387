//! What a testbed is made of, as saved in its directory (`state.json`, and
//! `daemons.json` as its supervisor last wrote it), and the command lines of
//! its daemons. Shared by the commands and the supervisor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use netslice_io::process;
use serde::{Deserialize, Serialize};

/// A daemon the testbed started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proc {
    /// PID (of the latest start).
    pub pid: i32,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Log file.
    pub log: PathBuf,
    /// When it was last started, Unix seconds.
    #[serde(default)]
    pub started: u64,
    /// How often it was started.
    #[serde(default)]
    pub starts: u32,
    /// How often the supervisor restarted it after it exited unasked.
    #[serde(default)]
    pub restarts: u32,
    /// Why it last exited (`killed by signal 9 (SIGKILL)`, `exit code 1`).
    #[serde(default)]
    pub last_exit: Option<String>,
    /// When it last exited, Unix seconds.
    #[serde(default)]
    pub last_exit_at: Option<u64>,
    /// Its start time in clock ticks since boot (`/proc/PID/stat`), which a
    /// process that reuses the PID does not share; 0 if unknown.
    #[serde(default)]
    pub start_ticks: u64,
}

/// A daemon not started yet.
pub fn new_proc(args: Vec<String>, log: PathBuf) -> Proc {
    Proc { pid: 0, args, log, started: 0, starts: 0, restarts: 0, last_exit: None, last_exit_at: None, start_ticks: 0 }
}

/// What a testbed is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestbedState {
    /// Testbed (and substrate) name.
    pub name: String,
    /// State directory.
    pub dir: PathBuf,
    /// The description it was built from.
    pub source: PathBuf,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// `building` until every part is up, then `up`.
    pub phase: String,
    /// Manager URL.
    pub manager_url: String,
    /// Manager process (as the supervisor last recorded it in `daemons.json`).
    pub manager: Option<Proc>,
    /// Agent processes by host (likewise).
    pub agents: BTreeMap<String, Proc>,
    /// The supervisor of the manager and the agents.
    #[serde(default)]
    pub supervisor: Option<Proc>,
    /// Substrate hosts (one agent each).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// What built it: `testbed up` or `demo`.
    #[serde(default)]
    pub made_by: String,
    /// Host namespaces created.
    pub namespaces: Vec<String>,
    /// Substrate I/O mode of the agents (`NETSLICE_IO` when the testbed was
    /// built; kept so restarted agents use the same).
    #[serde(default = "default_io")]
    pub io: String,
    /// Shared forwarding workers of the agents (`NETSLICE_WORKERS` when the
    /// testbed was built).
    #[serde(default)]
    pub workers: u16,
    /// Where each host's agent served Prometheus metrics when the testbed
    /// came up (`127.0.0.1:PORT`, chosen by the agent; its restarts keep it
    /// where they can, and [`metrics_addr`] reads where it is now).
    #[serde(default)]
    pub metrics: BTreeMap<String, String>,
    /// What agents are given as `--capacity` (a calibration file, or
    /// `none`); older states: nothing (the agent's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
}

pub(crate) fn default_io() -> String {
    "auto".into()
}

impl TestbedState {
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub(crate) fn save(&self) -> Result<()> {
        let p = Self::path(&self.dir);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
        Ok(())
    }

    /// Reads the state, with the daemons as the supervisor last recorded them.
    pub(crate) fn load(dir: &Path) -> Option<TestbedState> {
        let mut st: TestbedState = std::fs::read(Self::path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok())?;
        if st.hosts.is_empty() {
            // A testbed built before the supervisor: its hosts are its agents.
            st.hosts = st.agents.keys().cloned().collect();
        }
        if let Some(d) = Daemons::load(dir) {
            st.manager = d.manager.or(st.manager);
            st.agents.extend(d.agents);
            if st.manager_url.is_empty() {
                st.manager_url = d.manager_url;
            }
        }
        Some(st)
    }
}

/// Reads the state of the testbed in `dir`.
pub fn load_state(dir: &Path) -> Option<TestbedState> {
    TestbedState::load(dir)
}

/// Every testbed with a state file under `root`.
pub fn list(root: &Path) -> Vec<TestbedState> {
    let mut v: Vec<TestbedState> = std::fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| TestbedState::load(&e.path())).collect())
        .unwrap_or_default();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// What the supervisor knows of the daemons (`daemons.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Daemons {
    /// The supervisor's PID.
    pub supervisor: i32,
    /// Where the manager listens, once it has.
    pub manager_url: String,
    /// The manager.
    pub manager: Option<Proc>,
    /// The agents, by host.
    pub agents: BTreeMap<String, Proc>,
}

impl Daemons {
    fn path(dir: &Path) -> PathBuf {
        dir.join("daemons.json")
    }

    /// Reads `daemons.json` of a testbed directory.
    pub fn load(dir: &Path) -> Option<Daemons> {
        std::fs::read(Self::path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let p = Self::path(dir);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))
    }
}

/// Whether `p` is still the process we started (alive, and its command line
/// still names our state directory, so a reused PID is never signalled).
pub fn is_ours(p: &Proc, dir: &Path) -> bool {
    if !process::alive(p.pid) {
        return false;
    }
    // The same process: its start time, where recorded.
    if p.start_ticks != 0 && process::start_time(p.pid) != Some(p.start_ticks) {
        return false;
    }
    // And our command line exactly (netslice ARGS).
    let Ok(raw) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else { return false };
    let argv: Vec<String> =
        raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let dir = dir.to_string_lossy();
    argv.get(1..) == Some(p.args.as_slice()) && p.args.iter().any(|a| a == &*dir || a.starts_with(&format!("{dir}/")))
}

/// Host namespace name.
pub fn host_netns(testbed: &str, host: &str) -> String {
    format!("{testbed}.{host}")
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The manager's command line.
pub fn manager_args(st: &TestbedState, listen: &str) -> Vec<String> {
    let d = &st.dir;
    vec![
        "manager".into(),
        "--listen".into(),
        listen.into(),
        "--db".into(),
        d.join("manager.db").display().to_string(),
        "--substrate".into(),
        d.join("substrate.yaml").display().to_string(),
        "--addr-file".into(),
        d.join("manager.addr").display().to_string(),
    ]
}

/// An agent's command line.
pub fn agent_args(st: &TestbedState, host: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "node".into(),
        "--host".into(),
        host.into(),
        "--manager".into(),
        st.manager_url.clone(),
        "--netns".into(),
        host_netns(&st.name, host),
        "--state-dir".into(),
        st.dir.join("agents").join(host).display().to_string(),
        "--io".into(),
        st.io.clone(),
        "--workers".into(),
        st.workers.to_string(),
        "--enroll-token-file".into(),
        st.dir.join("enroll.token").display().to_string(),
        "--ca-cert".into(),
        st.dir.join("tls").join("cert.pem").display().to_string(),
    ];
    // A free port picked by the agent (kept across its restarts): one picked
    // here could be taken by any connection before the agent binds it.
    args.extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
    if let Some(c) = &st.capacity {
        args.extend(["--capacity".into(), c.clone()]);
        // Guarantees switched off: first come, first served as well.
        if c == "none" {
            args.extend(["--cpu-shares".into(), "off".into()]);
        }
    }
    args
}

/// Where `host`'s agent serves metrics, as it recorded on binding.
pub fn metrics_addr(st: &TestbedState, host: &str) -> Option<String> {
    let path = st.dir.join("agents").join(host).join("metrics.addr");
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}
