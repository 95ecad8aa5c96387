//! The manager driven in-process over its real HTTPS API, the way the CLI and
//! the agents drive it: a 100-host substrate (a 10 x 10 torus of 10 Gbit/s
//! links), 100 enrolled agents, developers' slices of two nodes and one
//! 1 Mbit/s link.
//!
//!   cargo bench -p netslice-manager --bench manager [-- --quick]
//!
//! Every figure comes with a baseline from the same run: apply and delete
//! latency on an empty manager and with 1,000 slices; agents' reports handled
//! per second, a slice's status (`GET /api/v1/slices/NAME`) and a slice
//! watch's wake-up (a long-poll, woken by a change to its slice, timed from
//! sending the change) with the manager idle and during bursts of 100
//! concurrent applies (100 users, one each; ten bursts one after the other,
//! for enough samples); the process's resident memory empty and with 10,000
//! slices.
//!
//! The manager runs on its own two-thread runtime (as `netslice manager`
//! does) and the clients on another two, all on the same two cores.

// A benchmark measures wall time and memory of the whole process.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netslice_api::Client;
use netslice_api::types::{NewUser, WatchQuery};
use netslice_model::Substrate;
use netslice_model::api::{NodeReport, RegisterRequest};

const SIDE: usize = 10;
/// Bursts of 100 concurrent applies (one per user) measured one after the other.
const BURSTS: usize = 10;

fn host(i: usize) -> String {
    format!("h{i}")
}

/// A 10 x 10 torus: every host linked to its right and lower neighbour.
fn substrate() -> String {
    let mut s = String::from("name: grid\nhosts:\n");
    for i in 0..SIDE * SIDE {
        s += &format!("  - {{name: {}, role: vnode, cpu: 1024, memory: 4Ti, slivers: 256}}\n", host(i));
    }
    s += "links:\n";
    for r in 0..SIDE {
        for c in 0..SIDE {
            let i = r * SIDE + c;
            let right = r * SIDE + (c + 1) % SIDE;
            let down = ((r + 1) % SIDE) * SIDE + c;
            s += &format!("  - {{endpoints: [{}, {}], bandwidth: 10Gbit}}\n", host(i), host(right));
            s += &format!("  - {{endpoints: [{}, {}], bandwidth: 10Gbit}}\n", host(i), host(down));
        }
    }
    s
}

fn spec(name: &str, bw: &str) -> String {
    format!(
        "name: {name}\nnodes:\n  - {{name: a, cpu: 0.1, memory: 16Mi}}\n  - {{name: b, cpu: 0.1, memory: 16Mi}}\nlinks:\n  - {{name: l, bandwidth: {bw}, endpoints: [{{node: a}}, {{node: b}}]}}\n"
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

#[derive(Default)]
struct Lat(Vec<f64>);

impl Lat {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e3);
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
    }
    fn cell(&self) -> String {
        format!("{:.1} / {:.1}", self.pct(50.0), self.pct(99.0))
    }
}

async fn apply(c: &Client, name: &str, bw: &str) {
    c.apply(name, spec(name, bw), false).await.unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// `n` applies, changes (the link's bandwidth) and deletes of fresh slices,
/// one at a time.
async fn apply_delete(c: &Client, tag: &str, n: usize) -> (Lat, Lat, Lat) {
    let (mut a, mut u, mut d) = (Lat::default(), Lat::default(), Lat::default());
    for i in 0..n {
        let name = format!("{tag}{i}");
        let t = Instant::now();
        apply(c, &name, "1Mbit").await;
        a.push(t.elapsed());
        let t = Instant::now();
        apply(c, &name, "2Mbit").await;
        u.push(t.elapsed());
        let t = Instant::now();
        c.delete_slice(&name).await.unwrap_or_else(|e| panic!("delete {name}: {e}"));
        d.push(t.elapsed());
    }
    (a, u, d)
}

/// Creates slices `from..to` named `{tag}{i}`, `par` at a time (spread over
/// the users' clients: each user may have 8 requests in flight).
async fn fill(users: &[Client], tag: &str, from: usize, to: usize, par: usize) {
    let next = Arc::new(AtomicU64::new(from as u64));
    let mut tasks = Vec::new();
    for w in 0..par {
        let c = users[w % users.len()].clone();
        let next = next.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= to {
                    break;
                }
                apply(&c, &format!("{tag}{i}"), "1Mbit").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// What goes on beside the measured work: agents reporting in a loop, a
/// reader of one slice's status, and a watcher of another slice woken by
/// changes to it.
struct Background {
    reports: Arc<AtomicU64>,
    status: Lat,
    wake: Lat,
    change: Lat,
    /// An agent's config long-poll, on a host the changed slice uses.
    config: Lat,
}

async fn background<F: std::future::Future<Output = ()>>(
    agents: &[(String, Client)],
    report_every: Option<Duration>,
    op: &Client,
    read: &str,
    watched: &str,
    work: F,
) -> (Background, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let reports = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (h, c) in agents {
        let (h, c, stop, reports) = (h.clone(), c.clone(), stop.clone(), reports.clone());
        tasks.push(tokio::spawn(async move {
            let r = NodeReport {
                host: h.clone(),
                applied_revision: 0,
                epoch: String::new(),
                errors: Vec::new(),
                counters: Vec::new(),
                unmatched: Default::default(),
                programs: Vec::new(),
                io_backend: "bench".into(),
                forwarding: String::new(),
                version: "bench".into(),
                instance: "bench".into(),
                taps: Vec::new(),
                seconds: Vec::new(),
                capacity: None,
            };
            while !stop.load(Ordering::Relaxed) {
                if c.report(&h, &r, Duration::from_secs(10)).await.is_ok() {
                    reports.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(d) = report_every {
                    tokio::time::sleep(d).await;
                }
            }
        }));
    }
    let status = {
        let (c, stop, name) = (op.clone(), stop.clone(), read.to_string());
        tokio::spawn(async move {
            let mut l = Lat::default();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.slice(&name).await.expect("status");
                l.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            l
        })
    };
    let wake = {
        let (c, stop, name) = (op.clone(), stop.clone(), watched.to_string());
        let agents = agents.to_vec();
        tokio::spawn(async move {
            let (mut l, mut ch, mut cf) = (Lat::default(), Lat::default(), Lat::default());
            let mut bw = 1;
            while !stop.load(Ordering::Relaxed) {
                let info = c.slice(&name).await.expect("watched");
                let rev = info.revision;
                let w = {
                    let (c, name) = (c.clone(), name.clone());
                    tokio::spawn(async move {
                        c.watch_slice(&name, rev, None, Duration::from_secs(20)).await.expect("watch");
                        Instant::now()
                    })
                };
                // The agent of the host of the slice's node a, as agents do:
                // its current config, then a long-poll for a newer one.
                let host = info.plan.nodes.iter().find(|n| n.name == "a").expect("node a").host.clone();
                let agent = agents.iter().find(|(h, _)| *h == host).expect("agent").1.clone();
                let now = WatchQuery { after: 0, epoch: String::new(), wait: 0 };
                let cur = agent.watch_config(&host, &now, Duration::from_secs(10)).await.expect("config").expect("one");
                let cw = tokio::spawn(async move {
                    let q = WatchQuery { after: cur.revision, epoch: cur.epoch, wait: 20 };
                    agent.watch_config(&host, &q, Duration::from_secs(30)).await.expect("config watch");
                    Instant::now()
                });
                // Let the watch arrive first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                bw = bw % 9 + 1;
                let sent = Instant::now();
                apply(&c, &name, &format!("{bw}Mbit")).await;
                ch.push(sent.elapsed());
                let woke = w.await.unwrap();
                l.push(woke.saturating_duration_since(sent));
                cf.push(cw.await.unwrap().saturating_duration_since(sent));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (l, ch, cf)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = reports.load(Ordering::Relaxed);
    let t = Instant::now();
    work.await;
    let took = t.elapsed();
    let during = reports.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let status = status.await.unwrap();
    let (wake, change, config) = wake.await.unwrap();
    (Background { reports: Arc::new(AtomicU64::new(during)), status, wake, change, config }, took)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (ops, full) = if quick { (20, 4_000) } else { (200, 10_000) };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let sub = Substrate::from_text(&substrate()).expect("substrate");
    let mut opts = netslice_manager::Options::new("127.0.0.1:0".parse().unwrap(), dir.path().join("m.db"), Some(sub));
    // The 100 agents and 100 users all come from 127.0.0.1 here.
    opts.connections_per_peer = 1024;
    let started = server
        .block_on(netslice_manager::start(opts, async {
            let _ = rx.await;
        }))
        .expect("manager start");
    let url = format!("https://{}", started.addr);
    let serve = server.spawn(started.serve);
    let clients = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    clients.block_on(run(dir.path(), &url, ops, full));
    let _ = tx.send(());
    let _ = server.block_on(serve);
}

async fn run(dir: &Path, url: &str, ops: usize, full: usize) {
    let token = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    let ca = dir.join("tls/cert.pem");
    let op = Client::new(url, Some(&ca), Some(token("operator.token"))).unwrap();
    // 100 agents with credentials of their own.
    let enroll = op.with_token(Some(token("enroll.token")));
    let mut agents = Vec::new();
    for i in 0..SIDE * SIDE {
        let h = host(i);
        let r = enroll.register(&h, &RegisterRequest { version: "bench".into() }).await.expect("register");
        agents.push((h, op.with_token(Some(r.credential))));
    }
    // 100 developers, one apply each in the burst.
    let mut users = Vec::new();
    for i in 0..100 {
        let t = op.add_user(&NewUser { name: format!("dev{i}"), role: None }).await.expect("user");
        users.push(op.with_token(Some(t.token)));
    }
    let rss_empty = rss_kib();
    println!("manager benchmark: 100 hosts (10 x 10 torus), 100 agents, {ops} timed operations per row");
    println!();

    let (a0, u0, d0) = apply_delete(&op, "e", ops).await;
    apply(&op, "read", "1Mbit").await;
    apply(&op, "watched", "1Mbit").await;
    // Capacity: agents reporting as fast as the manager answers.
    let (idle, idle_t) =
        background(&agents, None, &op, "read", "watched", tokio::time::sleep(Duration::from_secs(3))).await;
    // Latency: agents reporting every 2 s, as they do.
    let every = Some(Duration::from_secs(2));
    let (quiet, _) =
        background(&agents, every, &op, "read", "watched", tokio::time::sleep(Duration::from_secs(3))).await;

    let t = Instant::now();
    fill(&users, "s", 0, 1_000, 16).await;
    let fill_rate = 1_000.0 / t.elapsed().as_secs_f64();
    let (a1, u1, d1) = apply_delete(&op, "k", ops).await;
    let bursts = |tag: &'static str| {
        let users = users.clone();
        async move {
            for round in 0..BURSTS {
                let mut tasks = Vec::new();
                for (i, c) in users.iter().cloned().enumerate() {
                    tasks.push(tokio::spawn(async move { apply(&c, &format!("{tag}{round}x{i}"), "1Mbit").await }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            }
        }
    };
    let (busy, busy_t) = background(&agents, None, &op, "read", "watched", bursts("b")).await;
    let (loaded, _) = background(&agents, every, &op, "read", "watched", bursts("c")).await;
    let rps = |b: &Background, t: Duration| b.reports.load(Ordering::Relaxed) as f64 / t.as_secs_f64();

    let t = Instant::now();
    fill(&users, "s", 1_000 + 200 * BURSTS, full, 16).await;
    let fill_rate_full = (full - 1_000 - 200 * BURSTS) as f64 / t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_full = rss_kib();
    let listed = op.slices().await.expect("list").len();

    println!("| measure | baseline | measured | ratio |");
    println!("| --- | --- | --- | --- |");
    let row = |what: &str, base: &Lat, now: &Lat| {
        println!(
            "| {what}, p50 / p99 ms | {} (empty) | {} (1,000 slices) | {:.2}x / {:.2}x |",
            base.cell(),
            now.cell(),
            now.pct(50.0) / base.pct(50.0),
            now.pct(99.0) / base.pct(99.0)
        );
    };
    row("apply (create)", &a0, &a1);
    row("apply (change a link's bandwidth)", &u0, &u1);
    row("delete", &d0, &d1);
    println!(
        "| agent reports handled per second | {:.0} (idle, 3 s) | {:.0} ({BURSTS} bursts of 100 concurrent applies, {:.2} s) | {:.2}x |",
        rps(&idle, idle_t),
        rps(&busy, busy_t),
        busy_t.as_secs_f64(),
        rps(&busy, busy_t) / rps(&idle, idle_t)
    );
    let bg = |what: &str, base: &Lat, now: &Lat| {
        println!(
            "| {what}, p50 / p99 ms ({} / {} samples) | {} (idle) | {} (burst) | {:.2}x / {:.2}x |",
            base.0.len(),
            now.0.len(),
            base.cell(),
            now.cell(),
            now.pct(50.0) / base.pct(50.0),
            now.pct(99.0) / base.pct(99.0)
        );
    };
    bg("slice status read", &quiet.status, &loaded.status);
    bg("a change to the watched slice, answered", &quiet.change, &loaded.change);
    bg("its watch (long-poll) woken, from sending the change", &quiet.wake, &loaded.wake);
    bg("an agent's config long-poll woken, from sending the change", &quiet.config, &loaded.config);
    bg("the same with agents reporting flat out: status read", &idle.status, &busy.status);
    bg("the same with agents reporting flat out: watch woken", &idle.wake, &busy.wake);
    println!(
        "| resident memory (whole process) | {:.1} MiB (empty) | {:.1} MiB ({listed} slices) | {:.1} KiB per slice |",
        rss_empty as f64 / 1024.0,
        rss_full as f64 / 1024.0,
        (rss_full.saturating_sub(rss_empty)) as f64 / listed.max(1) as f64
    );
    println!(
        "| creation rate, 16 in flight | | {fill_rate:.0} /s (0 -> 1,000), {fill_rate_full:.0} /s (3,000 -> {full}) | |"
    );
}
