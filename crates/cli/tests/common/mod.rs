//! Helpers for end-to-end tests: a local testbed with a unique name in a private
//! state directory, removed (by name) when the test ends, pass or fail.

#![allow(dead_code)]

pub mod mgr;
pub mod raw;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const EXE: &str = env!("CARGO_BIN_EXE_netslice");

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// End-to-end tests need root (namespaces, TAP, raw sockets); see
/// [`netslice_io::process::need_root_for_tests`].
pub fn need_root() -> bool {
    netslice_io::process::need_root_for_tests()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique, short testbed name: namespaces, state and cgroups are named after it.
pub fn unique_name(tag: &str) -> String {
    format!("t{}{}{}", tag, std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed))
}

pub struct Testbed {
    pub name: String,
    pub root: tempfile::TempDir,
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running netslice")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Testbed {
    pub fn up(tag: &str, substrate: &Path) -> Testbed {
        Testbed::up_env(tag, substrate, &[])
    }

    /// [`Testbed::up`] with environment variables for `testbed up` (e.g.
    /// `NETSLICE_FORWARDING=off`).
    pub fn up_env(tag: &str, substrate: &Path, env: &[(&str, &str)]) -> Testbed {
        let tb = Testbed { name: unique_name(tag), root: tempfile::tempdir().expect("tempdir") };
        let mut cmd = tb.cmd(&["testbed", "up", substrate.to_str().unwrap(), "--name", &tb.name]);
        cmd.envs(env.iter().copied());
        let out = run(&mut cmd);
        assert!(out.status.success(), "testbed up failed: {}", text(&out));
        tb
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(EXE);
        c.args(args)
            .env("NETSLICE_STATE_ROOT", self.root.path())
            .env("NETSLICE_TESTBED", &self.name)
            .env_remove("NETSLICE_MANAGER")
            .stdin(Stdio::null());
        c
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "netslice {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, spec: &Path) {
        self.ok(&["slice", "apply", "-f", spec.to_str().unwrap()]);
    }

    pub fn exec(&self, slice: &str, node: &str, args: &[&str]) -> Output {
        let mut all = vec!["slice", "exec", slice, node, "--", EXE];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    pub fn spawn_exec(&self, slice: &str, node: &str, args: &[&str]) -> Child {
        let mut all = vec!["slice", "exec", slice, node, "--", EXE];
        all.extend_from_slice(args);
        self.cmd(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn")
    }

    pub fn ping(&self, slice: &str, node: &str, addr: &str, count: &str) -> (bool, serde_json::Value) {
        let out = self.exec(slice, node, &["tool", "ping", addr, "-c", count, "-i", "0.1", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.success(), v)
    }

    pub fn show(&self, slice: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["slice", "show", slice, "--json"])).expect("slice show --json")
    }

    pub fn state(&self) -> serde_json::Value {
        let p = self.root.path().join(&self.name).join("state.json");
        serde_json::from_slice(&std::fs::read(p).expect("state.json")).expect("state json")
    }

    /// What the testbed's supervisor records of its daemons (`daemons.json`).
    pub fn daemons(&self) -> serde_json::Value {
        let p = self.root.path().join(&self.name).join("daemons.json");
        serde_json::from_slice(&std::fs::read(p).expect("daemons.json")).expect("daemons json")
    }

    pub fn agent_pid(&self, host: &str) -> i32 {
        self.daemons()["agents"][host]["pid"].as_i64().expect("agent pid") as i32
    }

    pub fn manager_pid(&self) -> i32 {
        self.daemons()["manager"]["pid"].as_i64().expect("manager pid") as i32
    }

    /// Packets counted on `host` for `slice`/`link` in `direction` (as last reported).
    pub fn counter(&self, slice: &str, link: &str, direction: &str, host: &str) -> u64 {
        self.rule_sum(slice, link, direction, host, |c| c["packets"].as_u64())
    }

    /// `field` of the rules of `slice`/`link` in `direction` on `host`, summed.
    fn rule_sum(
        &self,
        slice: &str,
        link: &str,
        direction: &str,
        host: &str,
        field: impl Fn(&serde_json::Value) -> Option<u64>,
    ) -> u64 {
        let v = self.show(slice);
        v["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["link"] == link && c["direction"] == direction && c["host"] == host)
            .map(|c| field(c).unwrap_or(0))
            .sum()
    }

    /// Frames dropped on `host` for `slice`/`link` in `direction` for
    /// `reason` (as last reported).
    pub fn drops(&self, slice: &str, link: &str, direction: &str, host: &str, reason: &str) -> u64 {
        self.rule_sum(slice, link, direction, host, |c| c["drops"][reason].as_u64())
    }

    /// Frames `slice` lost to forwarding-CPU shortage (reason `cpu`: beyond
    /// their link's share of forwarding work while a thread was behind), on
    /// every host and link (as last reported).
    pub fn cpu_drops(&self, slice: &str) -> u64 {
        let v = self.show(slice);
        v["counters"].as_array().into_iter().flatten().map(|c| c["drops"]["cpu"].as_u64().unwrap_or(0)).sum()
    }

    /// Frames the kernel of `slice`'s sliver `node` dropped on its way out of
    /// interface `ifname` (the TAP's queue was full: the agent did not read
    /// it in time). Sliver interfaces are named eth0, eth1, ... in the order
    /// of the node's links in the spec.
    pub fn tx_dropped(&self, slice: &str, node: &str, ifname: &str) -> u64 {
        let show = self.show(slice);
        let nodes = show["plan"]["nodes"].as_array().cloned().unwrap_or_default();
        let ns = nodes.iter().find(|n| n["name"] == node).and_then(|n| n["netns"].as_str()).expect("sliver netns");
        let path = format!("/sys/class/net/{ifname}/statistics/tx_dropped");
        let out = Command::new("ip").args(["netns", "exec", ns, "cat", &path]).output().expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{path} in {ns}: {}", text(&out)))
    }

    /// Every counter of `slice` with its drops, one line per rule (for
    /// failure messages that say where frames were lost).
    pub fn counters_text(&self, slice: &str) -> String {
        let v = self.show(slice);
        let c: Vec<String> = v["counters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!("{} {} {} {} {} {}", c["host"], c["link"], c["direction"], c["stage"], c["packets"], c["drops"])
            })
            .collect();
        c.join("; ")
    }

    /// Frames the kernels of the testbed's hosts dropped, by where: socket
    /// receive queues (`/proc/net/{raw,udp}` drops), interfaces (`ip -s
    /// link`), qdiscs (`tc -s qdisc`), in every host namespace, and the
    /// machine's per-CPU backlogs (`/proc/net/softnet_stat`, shared by
    /// everything on the machine). A data plane that is starved of CPU loses
    /// frames there, before it ever sees them; what the data plane itself
    /// loses is never in these.
    pub fn kernel_drops(&self) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        let hosts: Vec<String> = self.state()["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(String::from))
            .collect();
        for h in hosts {
            let ns = format!("{}.{h}", self.name);
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "cat",
                    "/proc/net/raw",
                    "/proc/net/udp",
                    "/proc/net/raw6",
                    "/proc/net/udp6",
                ])
                .output()
                .expect("ip netns exec");
            let socks: u64 = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim_start().starts_with("sl"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
            *m.entry(format!("{h} sockets")).or_default() += socks;
            let out = Command::new("ip").args(["-n", &ns, "-s", "-j", "link"]).output().expect("ip -s link");
            let links: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            for l in links.as_array().into_iter().flatten() {
                let n = l["stats64"]["rx"]["dropped"].as_u64().unwrap_or(0)
                    + l["stats64"]["tx"]["dropped"].as_u64().unwrap_or(0);
                *m.entry(format!("{h} interfaces")).or_default() += n;
            }
            let out = Command::new("tc").args(["-n", &ns, "-s", "-j", "qdisc"]).output().expect("tc -s qdisc");
            let qdiscs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let q: u64 = qdiscs.as_array().into_iter().flatten().map(|q| q["drops"].as_u64().unwrap_or(0)).sum();
            *m.entry(format!("{h} qdiscs")).or_default() += q;
        }
        let softnet: u64 = std::fs::read_to_string("/proc/net/softnet_stat")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
            .sum();
        m.insert("machine backlogs".into(), softnet);
        m
    }

    pub fn namespaces(&self) -> Vec<String> {
        let prefix = format!("{}.", self.name);
        std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let out = self.cli(&["testbed", "down", &self.name]);
        if !out.status.success() {
            eprintln!("teardown of {} failed: {}", self.name, text(&out));
        }
        assert!(self.namespaces().is_empty() || std::thread::panicking(), "namespaces left: {:?}", self.namespaces());
    }
}

pub fn kill9(pid: i32) {
    let st = Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    assert!(st.success(), "kill -9 {pid}");
}

pub fn wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    wait_until_or(timeout, f, || format!("timed out waiting for {what}"));
}

/// Like [`wait_until`], but on timeout panics with what `state` says then
/// (for waits whose failure should show where things stood).
pub fn wait_until_or(timeout: Duration, mut f: impl FnMut() -> bool, state: impl FnOnce() -> String) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{}", state());
}
