//! Forwarding capacity calibration: how much CPU this machine's agents spend
//! on each frame they forward, per I/O backend, link type and frame size.
//!
//! It runs the agent's own data plane, not a model of it: two or three
//! throwaway hosts (network namespaces joined by veth pairs, named after
//! this process), a slice planned by the manager's own planner with a
//! sliver at each end, and one [`Control`] per host, exactly as `netslice
//! node` runs them. A generator in the first sliver sends UDP datagrams of
//! the frame size as fast as its socket takes them; the agents forward them
//! to the last sliver. The generator runs on one CPU, every agent thread on
//! another, so the second CPU's busy time (`/proc/stat`: user, system,
//! interrupts and softirqs, whatever ran there) divided by the frames
//! delivered is what forwarding cost, the kernel's share included.
//! Anything else that ran on that CPU meanwhile makes the figure higher,
//! never lower: a calibration on a busy machine is conservative.
//!
//! Two paths: `ends` (sliver -> host a -> host b -> sliver: one ingress and
//! one egress) and, with a third host between them, the same plus one
//! transit hop; the difference is the transit cost. Each is measured at
//! two frame sizes, and [`Cost::through`] draws the line.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netslice_dataplane::Registry;
use netslice_io::IoMode;
use netslice_model::api::{NodeConfig, Stage};
use netslice_model::capacity::{BackendCost, Calibration, Cost, LinkTypeCost, Point};
use netslice_model::{SliceSpec, Substrate};

use crate::control::{Control, Setup};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// I/O backends (`Xdp`, `Sockets`).
    pub backends: Vec<IoMode>,
    /// Link types.
    pub link_types: Vec<String>,
    /// Frame sizes, bytes (two or more; the line goes through them).
    pub sizes: Vec<u32>,
    /// Traffic before each measurement (ARP, queues filling).
    pub warmup: Duration,
    /// Each measurement.
    pub measure: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backends: vec![IoMode::Xdp, IoMode::Sockets],
            link_types: vec!["gre".into(), "vxlan".into()],
            sizes: vec![200, 1500],
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(700),
        }
    }
}

/// Why a calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// Setting up the throwaway hosts.
    #[error("calibration setup: {0}")]
    Setup(String),
    /// The agent refused or failed the calibration slice.
    #[error("calibration: the agent of {host} could not apply the calibration slice: {problems}")]
    Apply {
        /// Host.
        host: String,
        /// What it said.
        problems: String,
    },
    /// Nothing arrived.
    #[error("calibration: no frame of {link} ({backend}, {size} bytes) reached the far sliver within {secs} s")]
    NoTraffic {
        /// Link type.
        link: String,
        /// Backend.
        backend: String,
        /// Frame size.
        size: u32,
        /// Waited.
        secs: u64,
    },
    /// Not root.
    #[error("calibration needs root (it creates network namespaces)")]
    NotRoot,
}

impl From<netslice_io::Error> for CalibrateError {
    fn from(e: netslice_io::Error) -> Self {
        CalibrateError::Setup(e.to_string())
    }
}

/// What the machine is, for telling whether a stored calibration is its own.
pub fn machine_id() -> String {
    netslice_io::cpu::machine_id()
}

fn cpu_busy_ns(cpu: usize) -> Option<u64> {
    netslice_io::cpu::busy_ns(cpu)
}

/// The throwaway hosts of one measurement, removed (by name) when dropped.
struct Bench {
    prefix: String,
    hosts: Vec<String>,
    controls: Vec<(String, Control)>,
    configs: BTreeMap<String, NodeConfig>,
    state: PathBuf,
    sink: Option<UdpSocket>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        for (host, c) in &mut self.controls {
            if let Some(cfg) = self.configs.get(host.as_str()) {
                // An empty config removes the sliver (its namespace, TAPs, cgroups).
                let mut empty = cfg.clone();
                empty.slivers.clear();
                empty.ports.clear();
                empty.labels.clear();
                empty.slices.clear();
                empty.revision += 1;
                let _ = c.apply(&empty);
            }
            c.stop();
        }
        self.controls.clear();
        self.sink = None;
        for ns in netslice_io::netns::list() {
            if ns.starts_with(&format!("{}.", self.prefix)) {
                netslice_io::sliver::kill_processes(&ns, false);
                let _ = netslice_io::netns::delete(&ns);
            }
        }
        let _ = std::fs::remove_dir_all(&self.state);
        let _ = &self.hosts;
    }
}

fn host_ns(prefix: &str, host: &str) -> String {
    format!("{prefix}.{host}")
}

impl Bench {
    /// Hosts `a`, (`t`,) `b` in a line, a slice `c` with a sliver at `a` and
    /// `b` and one virtual link per link type, every agent on `agent_cpu`.
    fn up(prefix: &str, transit: bool, io: IoMode, link_types: &[String]) -> Result<Bench, CalibrateError> {
        let hosts: Vec<String> =
            if transit { vec!["a", "t", "b"] } else { vec!["a", "b"] }.into_iter().map(String::from).collect();
        let mut text = format!("name: {prefix}\nhosts:\n");
        for h in &hosts {
            let role = if h == "t" { "transport" } else { "vnode" };
            text.push_str(&format!("  - {{ name: {h}, role: {role}, cpu: 64, memory: 64Gi }}\n"));
        }
        text.push_str("links:\n");
        for w in hosts.windows(2) {
            text.push_str(&format!("  - {{ endpoints: [{}, {}], bandwidth: 400Gbit }}\n", w[0], w[1]));
        }
        let substrate = Substrate::from_text(&text).map_err(|e| CalibrateError::Setup(e.to_string()))?;
        let mut spec = String::from(
            "name: c\nnodes:\n  - { name: a, host: a, cpu: 1, memory: 256Mi }\n  - { name: b, host: b, cpu: 1, memory: 256Mi }\nlinks:\n",
        );
        for (i, t) in link_types.iter().enumerate() {
            spec.push_str(&format!(
                "  - {{ name: l{i}, type: {t}, bandwidth: 100Gbit, endpoints: [ {{ node: a, address: 10.{}.0.1/24 }}, {{ node: b, address: 10.{}.0.2/24 }} ] }}\n",
                i + 1,
                i + 1
            ));
        }
        let spec = SliceSpec::from_text(&spec).map_err(|e| CalibrateError::Setup(e.to_string()))?;
        let registry = Arc::new(Registry::builtin());
        let plan = netslice_embed::plan(&substrate, &spec, &netslice_embed::Allocations::default(), &*registry)
            .map_err(|e| CalibrateError::Setup(format!("planning the calibration slice: {e}")))?;
        let mut configs = netslice_embed::node_configs(&substrate, &[(&spec, &plan)], &*registry);
        for c in configs.values_mut() {
            c.revision = 1;
            c.epoch = "calibration".into();
        }
        let state = std::env::temp_dir().join(format!("netslice-{prefix}"));
        let mut bench = Bench {
            prefix: prefix.to_string(),
            hosts: hosts.clone(),
            controls: Vec::new(),
            configs: configs.clone(),
            state: state.clone(),
            sink: None,
        };
        for h in &hosts {
            netslice_io::netns::create(&host_ns(prefix, h))?;
        }
        for l in &substrate.links {
            let [a, b] = &l.ends;
            let (na, nb) = (host_ns(prefix, &a.host), host_ns(prefix, &b.host));
            netslice_io::cmd::ip(&[
                "link", "add", &a.ifname, "netns", &na, "type", "veth", "peer", "name", &b.ifname, "netns", &nb,
            ])?;
            for (e, ns) in [(a, &na), (b, &nb)] {
                netslice_io::cmd::ip_in(
                    ns,
                    &["addr", "add", &format!("{}/{}", e.addr, l.prefix_len), "dev", &e.ifname],
                )?;
                netslice_io::cmd::ip_in(
                    ns,
                    &["link", "set", "dev", &e.ifname, "address", &e.mac.to_string(), "mtu", &l.mtu.to_string(), "up"],
                )?;
            }
        }
        for h in &hosts {
            let setup = Setup {
                netns: Some(host_ns(prefix, h)),
                buf_len: crate::control::MAX_FRAME,
                io,
                workers: 0,
                state_dir: state.join(h),
                cpu_shares: false,
            };
            std::fs::create_dir_all(&setup.state_dir).map_err(|e| CalibrateError::Setup(e.to_string()))?;
            let control = Control::start(registry.clone(), setup).map_err(|e| CalibrateError::Setup(e.to_string()))?;
            bench.controls.push((h.clone(), control));
        }
        for (h, c) in &mut bench.controls {
            let problems = c.apply(&configs[h.as_str()]);
            if !problems.is_empty() {
                let problems = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
                return Err(CalibrateError::Apply { host: h.clone(), problems });
            }
        }
        // A socket at the far end takes the datagrams (and, never read,
        // drops them once full: the agents' work ends at its queue).
        let far = netslice_embed::sliver_netns(prefix, "c", "b");
        bench.sink = Some(netslice_io::netns::run_in(&far, || {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 9))
                .map_err(|e| netslice_io::Error::Os { what: "binding the calibration sink".into(), source: e })
        })?);
        Ok(bench)
    }

    /// Frames the far host delivered to its sliver on link `l{index}`.
    fn delivered(&self, index: usize) -> u64 {
        let (host, c) = self.controls.last().expect("hosts");
        c.shared()
            .plane
            .load()
            .pipe
            .tables
            .snapshot(host)
            .iter()
            .filter(|r| r.link == format!("l{index}") && r.stage == Some(Stage::Egress))
            .map(|r| r.packets)
            .sum()
    }
}

/// Sends `size`-byte frames (UDP, the Ethernet frame's length) to the far
/// sliver's address on link `index` until stopped.
fn generator(
    prefix: &str,
    index: usize,
    size: u32,
    cpu: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<()>, CalibrateError> {
    let near = netslice_embed::sliver_netns(prefix, "c", "a");
    let sock = netslice_io::netns::run_in(&near, || {
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .map_err(|e| netslice_io::Error::Os { what: "binding the calibration generator".into(), source: e })
    })?;
    let to = Ipv4Addr::new(10, (index + 1) as u8, 0, 2);
    sock.connect((to, 9)).map_err(|e| CalibrateError::Setup(format!("connecting the generator: {e}")))?;
    let payload = vec![0x5au8; (size as usize).saturating_sub(14 + 20 + 8).max(1)];
    std::thread::Builder::new()
        .name("calib-gen".into())
        .spawn(move || {
            let _ = netslice_io::cpu::pin_current_thread(&[cpu]);
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    // A full TAP queue answers ENOBUFS: the agents are behind, as meant.
                    if sock.send(&payload).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
        .map_err(|e| CalibrateError::Setup(format!("starting the generator: {e}")))
}

/// One measurement: nanoseconds of the agents' CPU per frame delivered.
fn measure(
    bench: &Bench,
    index: usize,
    link: &str,
    io: &str,
    size: u32,
    cpus: (usize, usize),
    opts: &Options,
) -> Result<(u64, f64), CalibrateError> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let gen_thread = generator(&bench.prefix, index, size, cpus.0, stop.clone(), sent.clone())?;
    let result = (|| {
        // Wait for the first frames (ARP through the slice), then warm up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = bench.delivered(index);
        while bench.delivered(index) == start {
            if Instant::now() > deadline {
                return Err(CalibrateError::NoTraffic { link: link.into(), backend: io.into(), size, secs: 10 });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(opts.warmup);
        let (f0, c0) = (bench.delivered(index), cpu_busy_ns(cpus.1).unwrap_or(0));
        std::thread::sleep(opts.measure);
        let (f1, c1) = (bench.delivered(index), cpu_busy_ns(cpus.1).unwrap_or(0));
        let frames = f1.saturating_sub(f0);
        if frames == 0 {
            return Err(CalibrateError::NoTraffic {
                link: link.into(),
                backend: io.into(),
                size,
                secs: opts.measure.as_secs(),
            });
        }
        Ok((frames, c1.saturating_sub(c0) as f64 / frames as f64))
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = gen_thread.join();
    // Let the queues drain so the next point starts empty.
    std::thread::sleep(Duration::from_millis(50));
    result
}

/// Runs the calibration; `progress` hears about each step. Takes the
/// calling thread's CPUs as they are: the generator goes on the first, the
/// agents on the second (on a single CPU both share it, and the figures
/// include the generator's work).
pub fn calibrate(opts: &Options, progress: &dyn Fn(&str)) -> Result<Calibration, CalibrateError> {
    if !netslice_io::process::is_root() {
        return Err(CalibrateError::NotRoot);
    }
    if opts.sizes.len() < 2 {
        return Err(CalibrateError::Setup("at least two frame sizes are needed to draw a line".into()));
    }
    let started = Instant::now();
    let allowed = netslice_io::cpu::allowed().unwrap_or_default();
    let (cpus, separate) = match allowed.as_slice() {
        [] => ((0, 0), false),
        [only] => ((*only, *only), false),
        [first, .., last] => ((*first, *last), true),
    };
    // Everything the agents start inherits the affinity of the thread that
    // starts it: the work runs on a thread of its own, pinned to their CPU.
    let opts = opts.clone();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let worker = std::thread::Builder::new()
        .name("calibrate".into())
        .spawn(move || -> Result<Vec<BackendCost>, CalibrateError> {
            netslice_io::cpu::pin_current_thread(&[cpus.1])?;
            let mut out = Vec::new();
            for &io in &opts.backends {
                let io_name = match io {
                    IoMode::Sockets => "sockets",
                    _ => "xdp",
                };
                // ends[link type][size], path[link type][size]
                let mut ns: BTreeMap<(String, bool, u32), (u64, f64)> = BTreeMap::new();
                let mut skipped = false;
                for transit in [false, true] {
                    let prefix = format!("cal{}{}", std::process::id(), if transit { "t" } else { "e" });
                    let _ = tx.send(format!(
                        "{io_name}: {} hosts{}",
                        if transit { 3 } else { 2 },
                        if transit { " (one transit hop)" } else { "" }
                    ));
                    let bench = match Bench::up(&prefix, transit, io, &opts.link_types) {
                        Ok(b) => b,
                        // AF_XDP may be missing (an old kernel, a container): measure the rest.
                        Err(e) if io == IoMode::Xdp && opts.backends.len() > 1 => {
                            let _ = tx.send(format!("{io_name}: unavailable here ({e}); skipped"));
                            skipped = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                    for (i, lt) in opts.link_types.iter().enumerate() {
                        for &size in &opts.sizes {
                            let (frames, per) = measure(&bench, i, lt, io_name, size, cpus, &opts)?;
                            let _ = tx.send(format!(
                                "  {lt:<6} {size:>5} bytes: {frames:>8} frames, {:.0} ns each ({:.0} kframes/s per core)",
                                per,
                                1e6 / per.max(1.0)
                            ));
                            ns.insert((lt.clone(), transit, size), (frames, per));
                        }
                    }
                    drop(bench);
                }
                if skipped {
                    continue;
                }
                let mut link_types = Vec::new();
                for lt in &opts.link_types {
                    let mut points = Vec::new();
                    let (mut ends, mut transit) = (Vec::new(), Vec::new());
                    for &size in &opts.sizes {
                        let (fe, e) = ns[&(lt.clone(), false, size)];
                        let (ft, t) = ns[&(lt.clone(), true, size)];
                        // A transit hop costs what the longer path costs more;
                        // at least a tenth of the ends (noise can make it look free).
                        let tr = (t - e).max(e / 10.0);
                        points.push(Point { hop: "ends".into(), frame_size: size, frames: fe, ns_per_frame: e });
                        points.push(Point { hop: "transit".into(), frame_size: size, frames: ft, ns_per_frame: tr });
                        ends.push((size, e));
                        transit.push((size, tr));
                    }
                    let line = |pts: &[(u32, f64)]| {
                        let lo = pts.iter().min_by_key(|p| p.0).copied().unwrap_or((0, 0.0));
                        let hi = pts.iter().max_by_key(|p| p.0).copied().unwrap_or((0, 0.0));
                        // Never below any measured point.
                        let c = Cost::through(lo, hi);
                        let lift = pts.iter().map(|&(s, v)| v - c.ns(s)).fold(0.0, f64::max);
                        Cost { per_frame_ns: c.per_frame_ns + lift, per_byte_ns: c.per_byte_ns }
                    };
                    link_types.push(LinkTypeCost {
                        link_type: lt.clone(),
                        ends: line(&ends),
                        transit: line(&transit),
                        points,
                    });
                }
                out.push(BackendCost { io: io_name.into(), link_types });
            }
            if out.is_empty() {
                return Err(CalibrateError::Setup("no I/O backend could be measured".into()));
            }
            Ok(out)
        })
        .map_err(|e| CalibrateError::Setup(format!("starting the calibration thread: {e}")))?;
    for line in rx {
        progress(&line);
    }
    let backends = worker.join().map_err(|_| CalibrateError::Setup("the calibration thread panicked".into()))??;
    Ok(Calibration {
        version: 1,
        machine: machine_id(),
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs(),
        seconds: started.elapsed().as_secs_f64(),
        separate_generator_core: separate,
        backends,
    })
}
