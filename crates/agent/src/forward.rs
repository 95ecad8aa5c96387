//! The forwarding threads: they move frames between TAP devices and substrate
//! sockets, asking the redirector tables (swapped atomically on reconfiguration)
//! what to do with each.
//!
//! Threads: one receiver per substrate socket (GRE, VXLAN), one reader per sliver
//! port, one delay line per physical link that emulates a delay. Reads and sends
//! are batched; nothing on the per-packet path takes a lock or allocates (the delay
//! line, an emulation aid, copies its packets).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use netslice_dataplane::{DropReason, HEADROOM, RuleId, Tables, Verdict};
use netslice_io::sock::{RecvInfo, Socket, wait_readable};
use netslice_io::tap::Tap;
use netslice_model::LinkType;
use netslice_model::api::UnderlayLink;
use netslice_wire::vxlan;

/// Frames handled per batch.
const BATCH: usize = 32;
/// Buffer per frame: the largest IPv4 packet plus headroom.
const BUF_LEN: usize = HEADROOM + 65_536;
/// How long an idle thread sleeps before checking whether it should stop.
const IDLE_POLL_MS: i32 = 200;
/// Packets an emulated delay line holds at most.
const DELAY_QUEUE: usize = 8192;

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

/// State shared by every forwarding thread.
#[derive(Debug)]
pub struct Shared {
    /// Redirector tables.
    pub tables: ArcSwap<Tables>,
    /// Open sliver ports.
    pub ports: ArcSwap<HashMap<u32, Arc<Tap>>>,
    /// Impairments per underlay link index.
    pub impairments: ArcSwap<Vec<Impairment>>,
    /// GRE socket.
    pub gre: Socket,
    /// VXLAN socket.
    pub vxlan: Socket,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
}

type PortThreads = HashMap<u32, (Arc<AtomicBool>, JoinHandle<()>, Arc<Tap>)>;

/// The running forwarding plane.
#[derive(Debug)]
pub struct Forwarder {
    /// Shared state.
    pub shared: Arc<Shared>,
    port_threads: Mutex<PortThreads>,
    delay_threads: Mutex<Vec<(Arc<AtomicBool>, JoinHandle<()>)>>,
    rx_threads: Mutex<Vec<JoinHandle<()>>>,
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

/// Sends collected per socket, flushed once per batch.
struct Outbox {
    gre: Vec<(usize, std::ops::Range<usize>, SocketAddrV4, RuleId)>,
    vxlan: Vec<(usize, std::ops::Range<usize>, SocketAddrV4, RuleId)>,
    rng: Rng,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox { gre: Vec::with_capacity(BATCH), vxlan: Vec::with_capacity(BATCH), rng: Rng::new() }
    }

    /// Handles one verdict for the frame in `bufs[i]`.
    fn handle(&mut self, shared: &Shared, tables: &Tables, bufs: &[Vec<u8>], i: usize, verdict: Verdict) {
        match verdict {
            Verdict::Drop => {}
            Verdict::Deliver { port, frame, rule } => {
                let ports = shared.ports.load();
                let res = match ports.get(&port) {
                    Some(tap) => tap.write(&bufs[i][frame]).map(|_| ()),
                    None => Err(io::Error::from(io::ErrorKind::NotFound)),
                };
                if let Err(e) = res
                    && let Some(c) = tables.counters_of(rule)
                {
                    c.dropped(if e.kind() == io::ErrorKind::NotFound {
                        DropReason::PortDown
                    } else {
                        DropReason::TxError
                    });
                }
            }
            Verdict::Send { link_type, next_hop, underlay, packet, rule } => {
                let port = match link_type {
                    LinkType::Gre => 0,
                    LinkType::Vxlan => vxlan::UDP_PORT,
                };
                let dst = SocketAddrV4::new(next_hop, port);
                let imp = shared.impairments.load();
                if let Some(imp) = imp.get(usize::from(underlay)) {
                    if imp.loss_ppm > 0 && self.rng.ppm() < imp.loss_ppm {
                        if let Some(c) = tables.counters_of(rule) {
                            c.dropped(DropReason::Loss);
                        }
                        return;
                    }
                    if let Some(line) = &imp.delay {
                        let d = Delayed { due: Instant::now(), link_type, dst, bytes: bufs[i][packet].to_vec() };
                        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = line.try_send(d)
                            && let Some(c) = tables.counters_of(rule)
                        {
                            c.dropped(DropReason::QueueFull);
                        }
                        return;
                    }
                }
                match link_type {
                    LinkType::Gre => self.gre.push((i, packet, dst, rule)),
                    LinkType::Vxlan => self.vxlan.push((i, packet, dst, rule)),
                }
            }
        }
    }

    fn flush(&mut self, shared: &Shared, tables: &Tables, bufs: &[Vec<u8>]) {
        for (sock, list) in [(&shared.gre, &mut self.gre), (&shared.vxlan, &mut self.vxlan)] {
            if list.is_empty() {
                continue;
            }
            let msgs: Vec<(&[u8], SocketAddrV4)> = list.iter().map(|(i, r, d, _)| (&bufs[*i][r.clone()], *d)).collect();
            let (sent, err) = sock.send_batch(&msgs);
            if let Some(e) = err {
                tracing::debug!("send failed after {sent} of {}: {e}", msgs.len());
                for (_, _, _, rule) in &list[sent..] {
                    if let Some(c) = tables.counters_of(*rule) {
                        c.dropped(DropReason::TxError);
                    }
                }
            }
            list.clear();
        }
    }
}

fn buffers() -> Vec<Vec<u8>> {
    (0..BATCH).map(|_| vec![0u8; BUF_LEN]).collect()
}

impl Forwarder {
    /// Starts the substrate receivers on sockets opened in the host's namespace.
    pub fn start(gre: Socket, vxlan: Socket) -> io::Result<Forwarder> {
        let shared = Arc::new(Shared {
            tables: ArcSwap::from_pointee(Tables::default()),
            ports: ArcSwap::from_pointee(HashMap::new()),
            impairments: ArcSwap::from_pointee(Vec::new()),
            gre,
            vxlan,
            shutdown: AtomicBool::new(false),
        });
        let mut rx = Vec::new();
        for lt in [LinkType::Gre, LinkType::Vxlan] {
            let s = shared.clone();
            rx.push(
                std::thread::Builder::new().name(format!("rx-{}", lt.as_str())).spawn(move || substrate_rx(&s, lt))?,
            );
        }
        Ok(Forwarder {
            shared,
            port_threads: Mutex::new(HashMap::new()),
            delay_threads: Mutex::new(Vec::new()),
            rx_threads: Mutex::new(rx),
        })
    }

    /// Installs new tables and the set of open ports; starts readers for new ports
    /// and stops those of ports that are gone.
    pub fn install(&self, tables: Tables, ports: HashMap<u32, Arc<Tap>>) {
        self.shared.tables.store(Arc::new(tables));
        self.shared.ports.store(Arc::new(ports.clone()));
        let mut threads = self.port_threads.lock().expect("port thread lock");
        // Ports that are gone, or whose TAP was re-opened (a new fd needs a new reader).
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
        for (_, (stop, h, _)) in self.port_threads.lock().expect("lock").drain() {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        for (stop, h) in self.delay_threads.lock().expect("lock").drain(..) {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        for h in self.rx_threads.lock().expect("lock").drain(..) {
            let _ = h.join();
        }
    }
}

fn substrate_rx(shared: &Shared, lt: LinkType) {
    let sock = match lt {
        LinkType::Gre => &shared.gre,
        LinkType::Vxlan => &shared.vxlan,
    };
    let mut bufs = buffers();
    let mut info = [RecvInfo::default(); BATCH];
    let mut out = Outbox::new();
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
        let tables = shared.tables.load();
        for (i, inf) in info.iter().enumerate().take(n) {
            if inf.truncated {
                tables.unmatched.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let range = HEADROOM..HEADROOM + inf.len;
            let v = match lt {
                LinkType::Gre => tables.on_gre(&mut bufs[i], range),
                LinkType::Vxlan => tables.on_vxlan(&mut bufs[i], range),
            };
            out.handle(shared, &tables, &bufs, i, v);
        }
        out.flush(shared, &tables, &bufs);
    }
}

fn port_rx(shared: &Shared, stop: &AtomicBool, port: u32, tap: &Tap) {
    let mut bufs = buffers();
    let mut lens = [0usize; BATCH];
    let mut out = Outbox::new();
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
        let tables = shared.tables.load();
        for i in 0..n {
            let v = tables.on_port(port, &mut bufs[i], HEADROOM..HEADROOM + lens[i]);
            out.handle(shared, &tables, &bufs, i, v);
        }
        out.flush(shared, &tables, &bufs);
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
