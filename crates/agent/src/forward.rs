//! The forwarding threads: they move frames between TAP devices and substrate
//! sockets, asking the redirector tables what to do with each and handing the
//! frames to the egress port schedulers ([`crate::egress`]).
//!
//! Threads: one receiver per substrate socket (GRE, VXLAN), one reader per sliver
//! port, one timer for throttled egress ports, and one delay line per physical
//! link that emulates a delay. Reads and sends are batched; buffers come from a
//! pool. Reconfiguration swaps one [`Plane`] (tables + routes to egress classes)
//! atomically; schedulers are reconfigured in place, so queued packets of links
//! that stay are kept.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use netslice_dataplane::{DropReason, HEADROOM, Hop, Tables, Verdict};
use netslice_io::sock::{RecvInfo, Socket, wait_readable};
use netslice_io::tap::Tap;
use netslice_model::api::{NodeConfig, UnderlayLink};
use netslice_model::{Isolation, LinkType};
use netslice_qos::sched::LinkId;
use netslice_wire::vxlan;

use crate::egress::{
    self, ClassKey, Clock, Egress, EgressKind, POLICED_LIMITS, Pkt, Pool, Timer, Transmit, class, limits_for,
};

/// Frames handled per batch.
const BATCH: usize = 32;
/// How long an idle thread sleeps before checking whether it should stop.
const IDLE_POLL_MS: i32 = 200;
/// Packets an emulated delay line holds at most.
const DELAY_QUEUE: usize = 8192;
/// Bytes on the wire around an encapsulated packet besides the packet itself:
/// Ethernet header 14 + IPv4 header 20 (+ UDP 8 for VXLAN).
fn wire_overhead(lt: LinkType) -> u32 {
    match lt {
        LinkType::Gre => 34,
        LinkType::Vxlan => 42,
    }
}

/// Per-physical-link impairments, indexed like `NodeConfig::underlay`.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Loss probability in parts per million.
    pub loss_ppm: u32,
    /// Delay line, if the link delays.
    pub delay: Option<SyncSender<Delayed>>,
}

/// A packet waiting in a delay line.
#[derive(Debug)]
pub struct Delayed {
    due: Instant,
    link_type: LinkType,
    dst: SocketAddrV4,
    bytes: Vec<u8>,
}

/// Where a rule's packets go: an egress port and a class of its scheduler.
#[derive(Debug, Clone)]
pub struct Route {
    /// The port.
    pub egress: Arc<Egress>,
    /// The class.
    pub class: LinkId,
}

/// Identity of an egress port across reconfigurations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EgressKey {
    /// A physical link, by name.
    Underlay(String),
    /// A sliver port, by number.
    Tap(u32),
}

/// Everything the per-packet path reads, swapped as one.
#[derive(Debug, Default)]
pub struct Plane {
    /// Redirector tables.
    pub tables: Tables,
    /// Route of each rule, by rule id.
    pub routes: Vec<Option<Route>>,
    /// Egress ports.
    pub egress: BTreeMap<EgressKey, Arc<Egress>>,
}

/// State shared by every forwarding thread.
#[derive(Debug)]
pub struct Shared {
    /// Tables and routes.
    pub plane: ArcSwap<Plane>,
    /// Impairments per underlay link index.
    pub impairments: ArcSwap<Vec<Impairment>>,
    /// GRE socket.
    pub gre: Socket,
    /// VXLAN socket.
    pub vxlan: Socket,
    /// Packet buffers.
    pub pool: Pool,
    /// The clock schedulers and policers run on.
    pub clock: Clock,
    /// Wake-ups of throttled ports.
    pub timer: Timer,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
}

impl Transmit for Shared {
    fn transmit(&self, egress: &Egress, batch: Vec<Pkt>) -> Vec<Vec<u8>> {
        match &egress.kind {
            EgressKind::Tap { tap, .. } => {
                for p in &batch {
                    if tap.write(&p.buf[p.range.clone()]).is_err() {
                        p.counters.dropped(DropReason::TxError);
                    }
                }
            }
            EgressKind::Underlay { index, .. } => {
                let imps = self.impairments.load();
                let delay = imps.get(*index).and_then(|i| i.delay.clone());
                for (lt, sock) in [(LinkType::Gre, &self.gre), (LinkType::Vxlan, &self.vxlan)] {
                    let mine: Vec<&Pkt> = batch.iter().filter(|p| p.dst.is_some_and(|(t, _)| t == lt)).collect();
                    if mine.is_empty() {
                        continue;
                    }
                    if let Some(line) = &delay {
                        // The wire delays what the scheduler let go.
                        for p in mine {
                            let (link_type, dst) = p.dst.expect("filtered");
                            let d =
                                Delayed { due: Instant::now(), link_type, dst, bytes: p.buf[p.range.clone()].to_vec() };
                            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = line.try_send(d) {
                                p.counters.dropped(DropReason::QueueFull);
                            }
                        }
                        continue;
                    }
                    let msgs: Vec<(&[u8], SocketAddrV4)> =
                        mine.iter().map(|p| (&p.buf[p.range.clone()], p.dst.expect("filtered").1)).collect();
                    let (sent, err) = sock.send_batch(&msgs);
                    if let Some(e) = err {
                        tracing::debug!("send failed after {sent} of {}: {e}", msgs.len());
                        for p in &mine[sent..] {
                            p.counters.dropped(DropReason::TxError);
                        }
                    }
                }
            }
        }
        batch.into_iter().map(|p| p.buf).collect()
    }

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn timer(&self) -> &Timer {
        &self.timer
    }
}

type PortThreads = HashMap<u32, (Arc<AtomicBool>, JoinHandle<()>, Arc<Tap>)>;

/// The running forwarding plane.
#[derive(Debug)]
pub struct Forwarder {
    /// Shared state.
    pub shared: Arc<Shared>,
    port_threads: Mutex<PortThreads>,
    delay_threads: Mutex<Vec<(Arc<AtomicBool>, JoinHandle<()>)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Rng(t.as_nanos() as u64 | 1)
    }

    /// xorshift64*: uniform in 0..1_000_000.
    fn ppm(&mut self) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32 % 1_000_000
    }
}

/// Packets of one batch bound for one egress port, with their classes.
type PortBatch = (Arc<Egress>, Vec<(LinkId, Pkt)>);

/// Hands a batch's verdicts to the egress ports.
struct Dispatch {
    per_port: Vec<PortBatch>,
    rng: Rng,
}

impl Dispatch {
    fn new() -> Dispatch {
        Dispatch { per_port: Vec::new(), rng: Rng::new() }
    }

    /// Takes the frame out of `bufs[i]` and queues it for its egress port.
    fn handle(&mut self, shared: &Shared, plane: &Plane, bufs: &mut [Vec<u8>], i: usize, verdict: Verdict) {
        let (rule, range, dst) = match verdict {
            Verdict::Drop => return,
            Verdict::Deliver { frame, rule, .. } => (rule, frame, None),
            Verdict::Send { link_type, next_hop, underlay, packet, rule } => {
                let port = match link_type {
                    LinkType::Gre => 0,
                    LinkType::Vxlan => vxlan::UDP_PORT,
                };
                let imps = shared.impairments.load();
                if let Some(imp) = imps.get(usize::from(underlay))
                    && imp.loss_ppm > 0
                    && self.rng.ppm() < imp.loss_ppm
                {
                    if let Some(c) = plane.tables.counters_of(rule) {
                        c.dropped(DropReason::Loss);
                    }
                    return;
                }
                (rule, packet, Some((link_type, SocketAddrV4::new(next_hop, port))))
            }
        };
        let Some(r) = plane.tables.rule(rule) else { return };
        let Some(route) = plane.routes.get(rule as usize).and_then(|r| r.clone()) else {
            r.counters.dropped(DropReason::PortDown);
            return;
        };
        let pkt = Pkt { buf: std::mem::take(&mut bufs[i]), range, dst, counters: r.counters.clone() };
        match self.per_port.iter_mut().find(|(e, _)| Arc::ptr_eq(e, &route.egress)) {
            Some((_, v)) => v.push((route.class, pkt)),
            None => self.per_port.push((route.egress, vec![(route.class, pkt)])),
        }
    }

    fn flush(&mut self, shared: &Shared, bufs: &mut [Vec<u8>]) {
        for (egress, pkts) in self.per_port.drain(..) {
            egress.enqueue_and_run(shared, pkts);
        }
        shared.pool.refill(bufs);
    }
}

impl Forwarder {
    /// Starts the substrate receivers and the timer on sockets opened in the
    /// host's namespace. Buffers hold `buf_len` bytes after the headroom.
    pub fn start(gre: Socket, vxlan: Socket, buf_len: usize) -> io::Result<Forwarder> {
        let shared = Arc::new(Shared {
            plane: ArcSwap::from_pointee(Plane::default()),
            impairments: ArcSwap::from_pointee(Vec::new()),
            gre,
            vxlan,
            pool: Pool::new(HEADROOM + buf_len),
            clock: Clock::new(),
            timer: Timer::default(),
            shutdown: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        for lt in [LinkType::Gre, LinkType::Vxlan] {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new().name(format!("rx-{}", lt.as_str())).spawn(move || substrate_rx(&s, lt))?,
            );
        }
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new().name("egress-timer".into()).spawn(move || s.timer.run(&*s, &s.shutdown))?,
        );
        Ok(Forwarder {
            shared,
            port_threads: Mutex::new(HashMap::new()),
            delay_threads: Mutex::new(Vec::new()),
            threads: Mutex::new(threads),
        })
    }

    /// Installs new tables and ports: egress schedulers are created, reconfigured
    /// in place or removed; readers start for new ports and stop for gone ones.
    pub fn install(&self, cfg: &NodeConfig, tables: Tables, ports: HashMap<u32, Arc<Tap>>) {
        let now = self.shared.clock.now();
        let old = self.shared.plane.load_full();
        let plane = build_plane(cfg, tables, &ports, &old, now);
        let gone: Vec<Arc<Egress>> =
            old.egress.iter().filter(|(k, _)| !plane.egress.contains_key(k)).map(|(_, e)| e.clone()).collect();
        self.shared.plane.store(Arc::new(plane));
        for e in gone {
            // Queued packets of removed ports are dropped with their buffers recycled.
            let mut st = e.state.lock().expect("egress lock");
            let classes: Vec<LinkId> = st.classes.values().copied().collect();
            for c in classes {
                let bufs: Vec<Vec<u8>> = st.sched.remove_link(c).into_iter().map(|p| p.buf).collect();
                self.shared.pool.give(bufs);
            }
        }
        let mut threads = self.port_threads.lock().expect("port thread lock");
        let stale: Vec<u32> = threads
            .iter()
            .filter(|(p, (_, _, tap))| ports.get(p).is_none_or(|t| !Arc::ptr_eq(t, tap)))
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            if let Some((stop, h, _)) = threads.remove(&p) {
                stop.store(true, Ordering::Relaxed);
                let _ = h.join();
            }
        }
        for (port, tap) in ports {
            if threads.contains_key(&port) {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let (s, st, t) = (self.shared.clone(), stop.clone(), tap.clone());
            match std::thread::Builder::new().name(format!("port-{port}")).spawn(move || port_rx(&s, &st, port, &t)) {
                Ok(h) => {
                    threads.insert(port, (stop, h, tap));
                }
                Err(e) => tracing::error!("cannot start reader for port {port}: {e}"),
            }
        }
    }

    /// Sets loss and delay per underlay link (in `NodeConfig::underlay` order).
    pub fn set_impairments(&self, underlay: &[UnderlayLink]) {
        let mut old = self.delay_threads.lock().expect("delay thread lock");
        for (stop, h) in old.drain(..) {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        let mut imps = Vec::new();
        for u in underlay {
            let mut imp = Impairment { loss_ppm: u.loss.map(|l| l.ppm()).unwrap_or(0), delay: None };
            if let Some(d) = u.delay.filter(|d| d.0 > 0) {
                let (tx, rx) = sync_channel(DELAY_QUEUE);
                let stop = Arc::new(AtomicBool::new(false));
                let (s, st, delay) = (self.shared.clone(), stop.clone(), d.duration());
                if let Ok(h) = std::thread::Builder::new()
                    .name(format!("delay-{}", u.name))
                    .spawn(move || delay_line(&s, &st, &rx, delay))
                {
                    old.push((stop, h));
                    imp.delay = Some(tx);
                }
            }
            imps.push(imp);
        }
        self.shared.impairments.store(Arc::new(imps));
    }

    /// Stops every thread.
    pub fn stop(&self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.shared.timer.schedule(0, std::sync::Weak::new());
        for (_, (stop, h, _)) in self.port_threads.lock().expect("lock").drain() {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        for (stop, h) in self.delay_threads.lock().expect("lock").drain(..) {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        for h in self.threads.lock().expect("lock").drain(..) {
            let _ = h.join();
        }
    }
}

/// Builds the routes of every rule: each egress port (a physical link or a sliver
/// TAP) gets a scheduler whose classes are the slices and links that send there.
fn build_plane(cfg: &NodeConfig, tables: Tables, ports: &HashMap<u32, Arc<Tap>>, old: &Plane, now: u64) -> Plane {
    // Which rules send where.
    let mut users: BTreeMap<EgressKey, Vec<usize>> = BTreeMap::new();
    for (id, r) in tables.rules().iter().enumerate() {
        let key = match r.hop {
            Hop::Send { underlay, .. } => match cfg.underlay.get(usize::from(underlay)) {
                Some(u) => EgressKey::Underlay(u.name.clone()),
                None => continue,
            },
            Hop::Deliver { port } => EgressKey::Tap(port),
        };
        users.entry(key).or_default().push(id);
    }
    let mut egress = BTreeMap::new();
    let mut routes: Vec<Option<Route>> = vec![None; tables.rules().len()];
    for (key, rules) in users {
        // Port rate: the physical link's capacity, or a TAP's fastest link ceiling.
        let (kind, rate_bps, burst) = match &key {
            EgressKey::Underlay(name) => {
                let Some((index, u)) = cfg.underlay.iter().enumerate().find(|(_, u)| &u.name == name) else { continue };
                let rate = u.bandwidth.bps();
                (EgressKind::Underlay { index, name: name.clone() }, rate, (rate / 8 / 1000).max(64 * 1024))
            }
            EgressKey::Tap(port) => {
                let Some(tap) = ports.get(port) else { continue };
                let rs = rules.iter().map(|&i| &tables.rules()[i]);
                let rate = rs.clone().map(|r| r.qos.ceil).max().unwrap_or(1);
                let burst = rs.map(|r| r.qos.burst).max().unwrap_or(64 * 1024);
                (EgressKind::Tap { port: *port, tap: tap.clone() }, rate, burst)
            }
        };
        let e = match old.egress.get(&key) {
            // Same port and, for a TAP, the same device: keep it and its queues.
            Some(e) if same_device(&e.kind, &kind) => e.clone(),
            _ => Arc::new(Egress::new(kind, rate_bps / 8, burst, now)),
        };
        {
            let mut st = e.state.lock().expect("egress lock");
            let _ = st.sched.set_port((rate_bps / 8).max(1), burst.max(1), now);
            configure(&mut st, cfg, &tables, &rules, rate_bps, now, &mut routes, &e);
        }
        egress.insert(key, e);
    }
    Plane { tables, routes, egress }
}

fn same_device(a: &EgressKind, b: &EgressKind) -> bool {
    match (a, b) {
        (EgressKind::Underlay { index: i, .. }, EgressKind::Underlay { index: j, .. }) => i == j,
        (EgressKind::Tap { tap: t, .. }, EgressKind::Tap { tap: u, .. }) => Arc::ptr_eq(t, u),
        _ => false,
    }
}

/// Makes one port's classes match the rules that send there.
#[allow(clippy::too_many_arguments)]
fn configure(
    st: &mut egress::EgressState,
    cfg: &NodeConfig,
    tables: &Tables,
    rules: &[usize],
    port_bps: u64,
    now: u64,
    routes: &mut [Option<Route>],
    e: &Arc<Egress>,
) {
    // Desired classes, and per slice the sum of its guarantees and ceilings here.
    struct Want {
        rate: u64,
        ceil: u64,
        burst: u64,
        overhead: u32,
        slice: String,
        weight: u32,
    }
    let mut want: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new(); // slice -> (rate, ceil, burst)
    let mut classes: HashMap<ClassKey, Want> = HashMap::new();
    for &i in rules {
        let r = &tables.rules()[i];
        let overhead = match r.hop {
            Hop::Send { link_type, .. } => wire_overhead(link_type),
            Hop::Deliver { .. } => 0,
        };
        let (key, slice) = match r.qos.isolation {
            Isolation::Shaped => {
                (ClassKey::Link(r.key.slice.clone(), r.key.link.clone(), r.key.direction), r.key.slice.clone())
            }
            Isolation::Policed => (ClassKey::Policed, String::new()),
        };
        let weight = cfg.slices.get(&r.key.slice).map(|s| s.weight).unwrap_or(1);
        let w = classes.entry(key.clone()).or_insert(Want {
            rate: 0,
            ceil: 0,
            burst: 0,
            overhead,
            slice: slice.clone(),
            weight: if key == ClassKey::Policed { 1 } else { weight },
        });
        if key == ClassKey::Policed {
            // One shared queue: its guarantee is the sum of the policed links'.
            w.rate += r.qos.rate;
            w.ceil = port_bps;
            w.burst = w.burst.max(r.qos.burst);
            w.overhead = w.overhead.max(overhead);
        } else {
            w.rate = r.qos.rate;
            w.ceil = r.qos.ceil;
            w.burst = r.qos.burst;
        }
        let s = want.entry(slice).or_default();
        s.0 += r.qos.rate;
        s.1 += if key == ClassKey::Policed { port_bps } else { r.qos.ceil };
        s.2 = s.2.max(r.qos.burst);
    }
    // Slices: create or update, with the slice ceiling capped by the port and
    // by the slice's own ceiling.
    for (slice, (rate, ceil, burst)) in &want {
        let share = cfg.slices.get(slice).copied();
        let ceil = (*ceil).min(port_bps).min(share.and_then(|s| s.ceil).unwrap_or(u64::MAX)).max(*rate);
        let weight = share.map(|s| s.weight).unwrap_or(1);
        let c = class(*rate, ceil, *burst, weight);
        match st.slices.get(slice) {
            Some(&id) => {
                let _ = st.sched.set_slice(id, c, now);
            }
            None => {
                if let Ok(id) = st.sched.add_slice(c, now) {
                    st.slices.insert(slice.clone(), id);
                }
            }
        }
    }
    // Links.
    for (key, w) in &classes {
        let c = class(w.rate, w.ceil.max(w.rate), w.burst, w.weight);
        let limits = if *key == ClassKey::Policed { POLICED_LIMITS } else { limits_for(w.burst) };
        let id = match st.classes.get(key) {
            Some(&id) => {
                let _ = st.sched.set_link(id, c, limits, now);
                Some(id)
            }
            None => {
                let slice = st.slices.get(&w.slice).copied();
                slice.and_then(|s| st.sched.add_link(s, c, limits, now).ok())
            }
        };
        if let Some(id) = id {
            st.sched.set_overhead(id, w.overhead);
            st.classes.insert(key.clone(), id);
        }
    }
    // Classes and slices no longer wanted.
    let stale: Vec<ClassKey> = st.classes.keys().filter(|k| !classes.contains_key(k)).cloned().collect();
    for k in stale {
        if let Some(id) = st.classes.remove(&k) {
            drop(st.sched.remove_link(id));
        }
    }
    let stale: Vec<String> = st.slices.keys().filter(|s| !want.contains_key(*s)).cloned().collect();
    for s in stale {
        if let Some(id) = st.slices.remove(&s) {
            drop(st.sched.remove_slice(id));
        }
    }
    // Routes of the rules.
    for &i in rules {
        let r = &tables.rules()[i];
        let key = match r.qos.isolation {
            Isolation::Shaped => ClassKey::Link(r.key.slice.clone(), r.key.link.clone(), r.key.direction),
            Isolation::Policed => ClassKey::Policed,
        };
        if let Some(&class) = st.classes.get(&key) {
            routes[i] = Some(Route { egress: e.clone(), class });
        }
    }
}

fn substrate_rx(shared: &Shared, lt: LinkType) {
    let sock = match lt {
        LinkType::Gre => &shared.gre,
        LinkType::Vxlan => &shared.vxlan,
    };
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut info = [RecvInfo::default(); BATCH];
    let mut out = Dispatch::new();
    while !shared.shutdown.load(Ordering::Relaxed) {
        let n = match sock.recv_batch(&mut bufs, HEADROOM, &mut info) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                let _ = wait_readable(sock.fd(), IDLE_POLL_MS);
                continue;
            }
            Err(e) => {
                tracing::warn!("{} receive failed: {e}", lt.as_str());
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let plane = shared.plane.load();
        for (i, inf) in info.iter().enumerate().take(n) {
            if inf.truncated {
                plane.tables.unmatched.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let range = HEADROOM..HEADROOM + inf.len;
            let v = match lt {
                LinkType::Gre => plane.tables.on_gre(&mut bufs[i], range),
                LinkType::Vxlan => plane.tables.on_vxlan(&mut bufs[i], range),
            };
            out.handle(shared, &plane, &mut bufs, i, v);
        }
        out.flush(shared, &mut bufs);
    }
}

fn port_rx(shared: &Shared, stop: &AtomicBool, port: u32, tap: &Tap) {
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut lens = [0usize; BATCH];
    let mut out = Dispatch::new();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        let mut n = 0;
        while n < BATCH {
            match tap.read(&mut bufs[n][HEADROOM..]) {
                Ok(len) => {
                    lens[n] = len;
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::warn!("port {port} ({}) read failed: {e}", tap.name());
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    break;
                }
            }
        }
        if n == 0 {
            let _ = wait_readable(tap.fd(), IDLE_POLL_MS);
            continue;
        }
        let plane = shared.plane.load();
        let now = shared.clock.now();
        for i in 0..n {
            let v = plane.tables.on_port(now, port, &mut bufs[i], HEADROOM..HEADROOM + lens[i]);
            out.handle(shared, &plane, &mut bufs, i, v);
        }
        out.flush(shared, &mut bufs);
    }
}

fn delay_line(shared: &Shared, stop: &AtomicBool, rx: &Receiver<Delayed>, delay: Duration) {
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        let Ok(p) = rx.recv_timeout(Duration::from_millis(IDLE_POLL_MS as u64)) else { continue };
        let due = p.due + delay;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let sock = match p.link_type {
            LinkType::Gre => &shared.gre,
            LinkType::Vxlan => &shared.vxlan,
        };
        let _ = sock.send_batch(&[(&p.bytes, p.dst)]);
    }
}
