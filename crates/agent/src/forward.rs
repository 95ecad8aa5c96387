//! The forwarding threads: they move frames between TAP devices and substrate
//! sockets, asking the redirector tables what to do with each and handing the
//! frames to the egress port schedulers ([`crate::egress`]).
//!
//! Threads: one receiver per IP carrier socket (raw GRE, UDP VXLAN, or whatever
//! the registered link types use), one per physical interface for Ethernet-layer
//! link types (AF_PACKET, filtered in the kernel), one reader per sliver port, one
//! timer for throttled egress ports, and one delay line per physical link that
//! emulates a delay; optionally worker threads that forward what the substrate
//! receivers classified (see [`crate::workers`]). Fast-path node programs run in
//! whichever thread hands them a frame. Reads and sends are batched; buffers come from a
//! pool. Reconfiguration swaps one [`Plane`] (tables + routes to egress classes)
//! atomically; schedulers are reconfigured in place, so queued packets of links
//! that stay are kept.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use netslice_dataplane::program::{InstanceIface, NodeInstance, NodeProgram, Outputs};
use netslice_dataplane::{
    Carrier, DropReason, GsoInfo, HEADROOM, Hop, LabelField, Registry, Tables, TypeIdx, Verdict, gso,
};
use netslice_io::netns;
use netslice_io::packet::{FrameInfo, PacketSocket};
use netslice_io::sock::{RecvInfo, Socket, wait_readable};
use netslice_io::tap::Tap;
use netslice_model::Isolation;
use netslice_model::api::{NodeConfig, SliverConfig, UnderlayLink};
use netslice_qos::sched::LinkId;

use crate::egress::{
    self, ClassKey, Clock, Egress, EgressKind, POLICED_LIMITS, Pkt, Pool, Timer, Transmit, TxDst, class, limits_for,
};
use crate::workers::{CpuMap, CpuSets, Pin, Steer, WorkerSet};
use crate::xsk::{IoMode, Outer, XskPort};

/// Frames handled per batch.
const BATCH: usize = 32;
/// How long a receiving thread keeps looking (yielding the CPU between looks)
/// after its last frame before it sleeps in `poll`: while traffic flows this
/// saves a wake-up per batch, when it stops the thread sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// Waits for `fd` to become readable: yields while the last frame was less
/// than [`SPIN`] ago, else sleeps in `poll` (at most 200 ms). Every receiving
/// thread waits this way (and `netslice tool relay`, to measure the same I/O).
pub fn idle(fd: std::os::fd::RawFd, last_busy: Instant) {
    if last_busy.elapsed() < SPIN {
        std::thread::yield_now();
    } else {
        let _ = wait_readable(fd, IDLE_POLL_MS);
    }
}
/// How long an idle thread sleeps before checking whether it should stop.
const IDLE_POLL_MS: i32 = 200;
/// Packets an emulated delay line holds at most.
const DELAY_QUEUE: usize = 8192;
/// Most node programs a frame passes through on one host (a guard against
/// loops of fast-path nodes wired to each other).
const MAX_NODE_DEPTH: usize = 8;

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
    underlay: usize,
    dst: TxDst,
    bytes: Vec<u8>,
}

/// A socket of an IP carrier, and the link type it brings in.
#[derive(Debug)]
pub struct IpCarrier {
    /// The carrier.
    pub carrier: Carrier,
    /// Link type of what arrives on it.
    pub link_type: TypeIdx,
    /// The socket.
    pub sock: Socket,
    /// UDP carriers: a second socket, without UDP checksums, for payloads the
    /// IP layer must fragment (super-frames).
    pub unchecked: Option<Socket>,
    /// UDP carriers whose link type locates its label: the selector of the
    /// port's `SO_REUSEPORT` group (dedicated slices' sockets join it).
    pub steer: Option<netslice_io::reuseport::ReuseportSteer>,
}

/// A running fast-path node.
#[derive(Debug)]
pub struct NodeRuntime {
    /// Slice.
    pub slice: String,
    /// Node.
    pub node: String,
    /// What it was built from (to tell whether a new config changes it).
    pub config: SliverConfig,
    /// Port number of each of its interfaces.
    pub ports: Vec<u32>,
    /// The program.
    pub program: Mutex<Box<dyn NodeProgram>>,
}

/// Where a rule's packets go.
#[derive(Debug, Clone)]
pub enum Route {
    /// An egress port and a class of its scheduler.
    Egress {
        /// The port.
        egress: Arc<Egress>,
        /// The class.
        class: LinkId,
    },
    /// Into a fast-path node, on one of its interfaces.
    Node {
        /// The node.
        node: Arc<NodeRuntime>,
        /// Interface index.
        iface: usize,
    },
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
    /// Fast-path nodes by (slice, node).
    pub nodes: BTreeMap<(String, String), Arc<NodeRuntime>>,
    /// Workers that forward each rule's frames, by rule id (`None`: the
    /// receiving thread forwards them itself).
    pub steer: Vec<Option<Arc<WorkerSet>>>,
}

/// State shared by every forwarding thread.
#[derive(Debug)]
pub struct Shared {
    /// Tables and routes.
    pub plane: ArcSwap<Plane>,
    /// Impairments per underlay link index.
    pub impairments: ArcSwap<Vec<Impairment>>,
    /// Sockets of the IP carriers.
    pub ip: Vec<IpCarrier>,
    /// Packet sockets of the physical interfaces, by underlay link index.
    pub ether: ArcSwap<Vec<Option<Arc<PacketSocket>>>>,
    /// AF_XDP sockets of the physical interfaces, by underlay link index.
    pub xsk: ArcSwap<Vec<Option<Arc<XskPort>>>>,
    /// How substrate I/O is done.
    pub io_mode: IoMode,
    /// Node and link types.
    pub registry: Arc<Registry>,
    /// Packet buffers.
    pub pool: Pool,
    /// The clock schedulers and policers run on.
    pub clock: Clock,
    /// Wake-ups of throttled ports.
    pub timer: Timer,
    /// CPUs the forwarding threads may use.
    pub cpus: CpuMap,
    /// Set to stop every thread.
    pub shutdown: AtomicBool,
}

impl Shared {
    /// Empty tables, the given carrier sockets, buffers of `buf_len` bytes.
    pub fn new(ip: Vec<IpCarrier>, io_mode: IoMode, registry: Arc<Registry>, buf_len: usize) -> Shared {
        Shared {
            plane: ArcSwap::from_pointee(Plane::default()),
            impairments: ArcSwap::from_pointee(Vec::new()),
            ip,
            ether: ArcSwap::from_pointee(Vec::new()),
            xsk: ArcSwap::from_pointee(Vec::new()),
            io_mode,
            registry,
            pool: Pool::new(buf_len),
            clock: Clock::new(),
            timer: Timer::default(),
            cpus: CpuMap::default(),
            shutdown: AtomicBool::new(false),
        }
    }

    /// Sends packets of one physical link (of MTU `mtu`; 0: unknown) now:
    /// what fits an AF_XDP frame through the link's AF_XDP socket if it has
    /// one, IP carriers with `sendmmsg` per socket (UDP runs to one next hop as
    /// `UDP_SEGMENT` sends), Ethernet frames on the link's packet socket.
    fn send_now(&self, underlay: usize, mtu: usize, batch: &[Pkt]) {
        // AF_XDP first: whatever fits one UMEM frame and the link MTU.
        let xsks = self.xsk.load();
        let mut rest: Vec<&Pkt> = Vec::new();
        match xsks.get(underlay).and_then(|x| x.as_ref()) {
            Some(x) => {
                let mut v: Vec<(&Pkt, Outer)> = Vec::with_capacity(batch.len());
                for p in batch {
                    let (outer, hop) = match p.dst {
                        Some(TxDst::Ip { sock, dst }) => match self.ip.get(sock).map(|c| c.carrier) {
                            Some(Carrier::IpProto(proto)) => (Outer::Ip(proto), *dst.ip()),
                            Some(Carrier::Udp(port)) => (Outer::Udp(port), *dst.ip()),
                            _ => {
                                rest.push(p);
                                continue;
                            }
                        },
                        Some(TxDst::Ether) => (Outer::Ether, std::net::Ipv4Addr::UNSPECIFIED),
                        None => continue,
                    };
                    if x.fits(outer, p.range.len(), hop) {
                        v.push((p, outer));
                    } else {
                        rest.push(p);
                    }
                }
                let mut done = 0;
                while done < v.len() {
                    let n = x.xsk.send(v.len() - done, |i, frame| {
                        let (p, outer) = v[done + i];
                        x.frame(outer, &p.buf[p.range.clone()], frame)
                    });
                    if n == 0 {
                        // No free frame or ring entry: the sockets take the rest.
                        rest.extend(v[done..].iter().map(|(p, _)| *p));
                        break;
                    }
                    done += n;
                }
            }
            None => rest.extend(batch.iter()),
        }
        if rest.is_empty() {
            return;
        }
        for (k, c) in self.ip.iter().enumerate() {
            let mine: Vec<&Pkt> =
                rest.iter().copied().filter(|p| matches!(p.dst, Some(TxDst::Ip { sock, .. }) if sock == k)).collect();
            if mine.is_empty() {
                continue;
            }
            let msgs: Vec<(&[u8], SocketAddrV4)> = mine
                .iter()
                .filter_map(|p| match p.dst {
                    Some(TxDst::Ip { dst, .. }) => Some((&p.buf[p.range.clone()], dst)),
                    _ => None,
                })
                .collect();
            let (sent, err) = match (&c.unchecked, mtu) {
                (Some(unchecked), 1..) => send_udp(&c.sock, unchecked, &msgs, mtu),
                _ => c.sock.send_batch(&msgs),
            };
            if let Some(e) = err {
                tracing::debug!("send failed after {sent} of {}: {e}", msgs.len());
                for p in &mine[sent..] {
                    p.counters.dropped(DropReason::TxError);
                }
            }
        }
        let frames: Vec<&Pkt> = rest.iter().copied().filter(|p| p.dst == Some(TxDst::Ether)).collect();
        if !frames.is_empty() {
            let socks = self.ether.load();
            match socks.get(underlay).and_then(|s| s.clone()) {
                Some(sock) => {
                    let bufs: Vec<&[u8]> = frames.iter().map(|p| &p.buf[p.range.clone()]).collect();
                    let (sent, err) = sock.send_batch(&bufs);
                    if let Some(e) = err {
                        tracing::debug!("frame send failed after {sent} of {}: {e}", bufs.len());
                        for p in &frames[sent..] {
                            p.counters.dropped(DropReason::TxError);
                        }
                    }
                }
                None => {
                    for p in frames {
                        p.counters.dropped(DropReason::TxError);
                    }
                }
            }
        }
    }
}

impl Transmit for Shared {
    fn transmit(&self, egress: &Egress, batch: Vec<Pkt>) -> Vec<Vec<u8>> {
        match &egress.kind {
            EgressKind::Tap { tap, .. } => {
                let mut batch = batch;
                for p in &mut batch {
                    let ok = if tap.offload() {
                        // The virtio-net header goes in the headroom before the frame.
                        let h = p.gso.map(|g| g.layout.vnet_hdr()).unwrap_or_default();
                        match p.range.start.checked_sub(gso::VNET_HDR_LEN) {
                            Some(at) => {
                                h.emit(&mut p.buf[at..p.range.start]);
                                tap.write(&p.buf[at..p.range.end]).is_ok()
                            }
                            None => {
                                let mut v = vec![0u8; gso::VNET_HDR_LEN];
                                h.emit(&mut v);
                                v.extend_from_slice(&p.buf[p.range.clone()]);
                                tap.write(&v).is_ok()
                            }
                        }
                    } else {
                        tap.write(&p.buf[p.range.clone()]).is_ok()
                    };
                    if !ok {
                        p.counters.dropped(DropReason::TxError);
                    }
                }
                return batch.into_iter().map(|p| p.buf).collect();
            }
            EgressKind::Underlay { index, mtu, .. } => {
                let imps = self.impairments.load();
                if let Some(line) = imps.get(*index).and_then(|i| i.delay.as_ref()) {
                    // The wire delays what the scheduler let go.
                    for p in &batch {
                        let Some(dst) = p.dst else { continue };
                        let d = Delayed {
                            due: Instant::now(),
                            underlay: *index,
                            dst,
                            bytes: p.buf[p.range.clone()].to_vec(),
                        };
                        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = line.try_send(d) {
                            p.counters.dropped(DropReason::QueueFull);
                        }
                    }
                } else {
                    self.send_now(*index, *mtu, &batch);
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

    fn timer_woke(&self) {
        thread_local! {
            static PIN: std::cell::RefCell<Pin> = std::cell::RefCell::new(Pin::shared());
        }
        PIN.with(|p| p.borrow_mut().check(self));
    }
}

type PortThreads = HashMap<u32, (Arc<AtomicBool>, JoinHandle<()>, Arc<Tap>)>;
type EtherThreads = BTreeMap<String, (Arc<PacketSocket>, Arc<AtomicBool>, JoinHandle<()>)>;
type XskThreads = BTreeMap<String, (Arc<XskPort>, Arc<AtomicBool>, JoinHandle<()>)>;

/// The running forwarding plane.
#[derive(Debug)]
pub struct Forwarder {
    /// Shared state.
    pub shared: Arc<Shared>,
    netns: Option<String>,
    port_threads: Mutex<PortThreads>,
    ether_threads: Mutex<EtherThreads>,
    xsk_threads: Mutex<XskThreads>,
    io_errors: Mutex<BTreeMap<String, String>>,
    delay_threads: Mutex<Vec<(Arc<AtomicBool>, JoinHandle<()>)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Worker sets: the shared one under "", dedicated ones by slice.
    workers: Mutex<BTreeMap<String, Arc<WorkerSet>>>,
    /// CPUs the agent may use.
    all_cpus: Vec<usize>,
    /// Dedicated CPUs that could not be honoured here.
    cpu_problems: Mutex<Vec<String>>,
    /// Neighbour entries written for the substrate peers.
    neighbours: Mutex<crate::neigh::Neighbours>,
    /// Dedicated slices' own receive sockets.
    slice_rx: Mutex<crate::slicerx::SliceRxs>,
    /// Problems with them, for reports.
    slice_rx_problems: Mutex<Vec<String>>,
    /// Labels (GRE keys, VNIs) the XDP programs leave to the kernel, for the
    /// dedicated slices' sockets (AF_XDP modes).
    pass: Option<Arc<netslice_io::xdp::PassMap>>,
}

#[derive(Debug)]
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
#[derive(Debug)]
pub(crate) struct Dispatch {
    per_port: Vec<PortBatch>,
    rng: Rng,
    outputs: Outputs,
}

impl Dispatch {
    pub(crate) fn new() -> Dispatch {
        Dispatch { per_port: Vec::new(), rng: Rng::new(), outputs: Outputs::default() }
    }

    /// A frame of link type `ty` arrived from the substrate in `slot[range]`:
    /// classified here, then handed to a worker (`steer`) or forwarded inline.
    #[allow(clippy::too_many_arguments)]
    fn arrived(
        &mut self,
        shared: &Shared,
        plane: &Arc<Plane>,
        steer: &mut Steer,
        ty: TypeIdx,
        slot: &mut Vec<u8>,
        range: std::ops::Range<usize>,
        now: u64,
    ) {
        let v = plane.tables.on_substrate(ty, slot, range);
        if let Some(v) = steer.take(plane, slot, v, now) {
            self.handle(shared, plane, slot, v, now, 0);
        }
    }

    /// Takes the frame out of `slot` (leaving it empty) when it is queued for an
    /// egress port, or runs it through a fast-path node. A TCP super-frame goes
    /// on whole where the path carries it (IP carriers, offload TAPs) and is cut
    /// into segments where it cannot (Ethernet carriers, lossy links, fast-path
    /// nodes, plain TAPs).
    pub(crate) fn handle(
        &mut self,
        shared: &Shared,
        plane: &Plane,
        slot: &mut Vec<u8>,
        verdict: Verdict,
        now: u64,
        depth: usize,
    ) {
        let (rule, range, dst, loss_ppm, gso) = match verdict {
            Verdict::Drop => return,
            Verdict::Deliver { frame, rule, gso, .. } => (rule, frame, None, 0, gso),
            Verdict::Send { link_type: _, carrier, next_hop, underlay, packet, rule, gso, .. } => {
                let imps = shared.impairments.load();
                let loss_ppm = imps.get(usize::from(underlay)).map(|i| i.loss_ppm).unwrap_or(0);
                let dst = match carrier {
                    Carrier::Ethernet(_) => TxDst::Ether,
                    Carrier::IpProto(_) | Carrier::Udp(_) => {
                        let Some(sock) = shared.ip.iter().position(|c| c.carrier == carrier) else {
                            if let Some(c) = plane.tables.counters_of(rule) {
                                c.dropped(DropReason::TxError);
                            }
                            return;
                        };
                        let port = if let Carrier::Udp(p) = carrier { p } else { 0 };
                        TxDst::Ip { sock, dst: SocketAddrV4::new(next_hop, port) }
                    }
                };
                (rule, packet, Some(dst), loss_ppm, gso)
            }
        };
        let Some(r) = plane.tables.rule(rule) else { return };
        let route = plane.routes.get(rule as usize).and_then(|r| r.clone());
        if let Some(g) = gso {
            let whole = match (&route, dst) {
                (Some(Route::Egress { egress, .. }), None) => match &egress.kind {
                    EgressKind::Tap { tap, .. } => tap.offload(),
                    EgressKind::Underlay { .. } => true,
                },
                (Some(Route::Egress { .. }), Some(TxDst::Ip { .. })) => loss_ppm == 0,
                _ => false,
            };
            if !whole {
                // Cut here; each segment takes the rest of the path on its own.
                for (mut b, seg) in segments(shared, slot, range, &g) {
                    self.place(shared, plane, r, route.clone(), &mut b, seg, dst, loss_ppm, None, now, depth);
                    if !b.is_empty() {
                        shared.pool.give([b]);
                    }
                }
                return;
            }
        }
        self.place(shared, plane, r, route, slot, range, dst, loss_ppm, gso, now, depth);
    }

    /// Queues one frame (or a super-frame carried whole) at its egress port, or
    /// runs it through a fast-path node; emulated loss applies here.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        shared: &Shared,
        plane: &Plane,
        r: &netslice_dataplane::Rule,
        route: Option<Route>,
        slot: &mut Vec<u8>,
        range: std::ops::Range<usize>,
        dst: Option<TxDst>,
        loss_ppm: u32,
        gso: Option<GsoInfo>,
        now: u64,
        depth: usize,
    ) {
        if loss_ppm > 0 && self.rng.ppm() < loss_ppm {
            r.counters.dropped(DropReason::Loss);
            return;
        }
        match route {
            None => r.counters.dropped(DropReason::PortDown),
            Some(Route::Egress { egress, class }) => {
                let wire = gso.map(|g| g.wire_len(&range)).unwrap_or(range.len());
                let pkt = Pkt { buf: std::mem::take(slot), range, dst, counters: r.counters.clone(), gso, wire };
                match self.per_port.iter_mut().find(|(e, _)| Arc::ptr_eq(e, &egress)) {
                    Some((_, v)) => v.push((class, pkt)),
                    None => self.per_port.push((egress, vec![(class, pkt)])),
                }
            }
            Some(Route::Node { node, iface }) => {
                if depth >= MAX_NODE_DEPTH {
                    r.counters.dropped(DropReason::Malformed);
                    return;
                }
                self.run_node(shared, plane, &node, iface, slot, range, now, depth);
            }
        }
    }

    /// Runs a node program on a frame and sends what it emits out of the node's
    /// interfaces (each is a port with its own rules, like a sliver's).
    #[allow(clippy::too_many_arguments)]
    fn run_node(
        &mut self,
        shared: &Shared,
        plane: &Plane,
        node: &NodeRuntime,
        iface: usize,
        slot: &mut Vec<u8>,
        range: std::ops::Range<usize>,
        now: u64,
        depth: usize,
    ) {
        let mut out = std::mem::take(&mut self.outputs);
        out.clear();
        node.program.lock().expect("node program lock").process(now, iface, &mut slot[range.clone()], &mut out);
        // Every output needs its own buffer with headroom; the last forward may
        // keep the input buffer.
        let len = range.len();
        let mut jobs: Vec<(u32, Vec<u8>, usize, usize)> = Vec::new();
        let n_fwd = out.forward.len();
        for (k, &o) in out.forward.iter().enumerate() {
            let Some(&port) = node.ports.get(o) else { continue };
            if k + 1 == n_fwd && range.start >= HEADROOM {
                jobs.push((port, std::mem::take(slot), range.start, len));
            } else {
                let mut b = shared.pool.take();
                b[HEADROOM..HEADROOM + len].copy_from_slice(&slot[range.clone()]);
                jobs.push((port, b, HEADROOM, len));
            }
        }
        for (o, frame) in out.generated.drain(..) {
            let Some(&port) = node.ports.get(o) else { continue };
            if frame.len() + HEADROOM > shared.pool.buf_len() {
                continue;
            }
            let mut b = shared.pool.take();
            b[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
            jobs.push((port, b, HEADROOM, frame.len()));
        }
        self.outputs = out;
        for (port, mut buf, start, flen) in jobs {
            let v = plane.tables.on_port(now, port, &mut buf, start..start + flen);
            self.handle(shared, plane, &mut buf, v, now, depth + 1);
            if !buf.is_empty() {
                shared.pool.give([buf]);
            }
        }
    }

    pub(crate) fn flush(&mut self, shared: &Shared, bufs: &mut [Vec<u8>]) {
        for (egress, pkts) in self.per_port.drain(..) {
            egress.enqueue_and_run(shared, pkts);
        }
        shared.pool.refill(bufs);
    }
}

/// Sends UDP payloads in order over a link of `mtu` bytes: those that fit it
/// whole through `sock`, in `UDP_SEGMENT` runs while the kernel takes them;
/// those the IP layer must fragment (super-frames) through `unchecked`, without
/// a UDP checksum. Returns how many were sent before the first failure.
fn send_udp(
    sock: &Socket,
    unchecked: &Socket,
    msgs: &[(&[u8], SocketAddrV4)],
    mtu: usize,
) -> (usize, Option<std::io::Error>) {
    let big = |m: &(&[u8], SocketAddrV4)| m.0.len() + 28 > mtu;
    let mut done = 0;
    // Consecutive stretches of one kind, so the order between them holds.
    while done < msgs.len() {
        let kind = big(&msgs[done]);
        let n = msgs[done..].iter().take_while(|m| big(m) == kind).count();
        let part = &msgs[done..done + n];
        let (sent, err) = if kind {
            unchecked.send_batch(part)
        } else {
            // Single datagrams once the kernel has refused the offload.
            let segs: Vec<&[u8]> = part.iter().map(|(p, _)| *p).collect();
            sock.send_segments(&segs, &udp_runs(part, mtu))
        };
        done += sent;
        if err.is_some() || sent < n {
            return (done, err);
        }
    }
    (done, None)
}

/// Groups UDP payloads (in order) into runs for [`Socket::send_segments`]:
/// consecutive payloads to the same destination, all but the last of a run the
/// length of its first, each fitting a link of `mtu` bytes whole (IPv4 and UDP
/// headers included), within the kernel's limits per send. A payload that needs
/// IP fragmentation (a super-frame) is a run of its own.
fn udp_runs(msgs: &[(&[u8], SocketAddrV4)], mtu: usize) -> Vec<(std::ops::Range<usize>, SocketAddrV4)> {
    const IP_UDP: usize = 28;
    let mut runs: Vec<(std::ops::Range<usize>, SocketAddrV4)> = Vec::new();
    // Of the last run: segment size, bytes so far, still open to more.
    let (mut size, mut bytes, mut open) = (0usize, 0usize, false);
    for (i, (p, dst)) in msgs.iter().enumerate() {
        let len = p.len();
        if let Some((r, d)) = runs.last_mut()
            && open
            && d == dst
            && len <= size
            && len > 0
            && r.len() < netslice_io::sock::MAX_SEGMENTS
            && bytes + len <= netslice_io::sock::MAX_SEGMENTED
        {
            r.end = i + 1;
            bytes += len;
            open = len == size;
            continue;
        }
        runs.push((i..i + 1, *dst));
        (size, bytes) = (len, len);
        open = len > 0 && len + IP_UDP <= mtu;
    }
    runs
}

/// Runs `open` in the host's namespace (`netns`), or here when there is none.
fn in_host_ns<T: Send + 'static>(
    netns: Option<&str>,
    open: impl FnOnce() -> netslice_io::Result<T> + Send + 'static,
) -> netslice_io::Result<T> {
    match netns {
        Some(ns) => netns::run_in(ns, open),
        None => open(),
    }
}

/// Cuts the super-frame `g` inside `buf[packet]` (encapsulation included) into
/// segments, each in a pool buffer at [`HEADROOM`].
fn segments(
    shared: &Shared,
    buf: &[u8],
    packet: std::ops::Range<usize>,
    g: &GsoInfo,
) -> Vec<(Vec<u8>, std::ops::Range<usize>)> {
    let l3 = g.ip_at.saturating_sub(packet.start);
    let Some(pkt) = buf.get(packet.clone()) else { return Vec::new() };
    let room = shared.pool.buf_len().saturating_sub(HEADROOM);
    if g.seg_header(packet.start) + g.layout.mss > room {
        return Vec::new();
    }
    (0..g.layout.segs)
        .map(|k| {
            let mut b = shared.pool.take();
            let n = gso::segment(pkt, l3, &g.layout, k, &mut b[HEADROOM..]);
            (b, HEADROOM..HEADROOM + n)
        })
        .collect()
}

/// The shared socket of a UDP port whose datagrams carry a label at `offset`:
/// in a `SO_REUSEPORT` group with a selector attached (so that dedicated
/// slices' sockets can join it), or, where the kernel refuses that, a plain
/// socket (every slice's datagrams then share it).
fn udp_steered(
    port: u16,
    offset: u16,
) -> netslice_io::Result<(Socket, Option<netslice_io::reuseport::ReuseportSteer>)> {
    let steered = || -> netslice_io::Result<_> {
        let s = Socket::udp_reuseport(port)?;
        let steer = netslice_io::reuseport::ReuseportSteer::new(offset)?;
        steer.set_socket(0, &s)?;
        steer.attach(&s)?;
        Ok((s, Some(steer)))
    };
    match steered() {
        Ok(x) => Ok(x),
        Err(e) => {
            tracing::warn!("UDP port {port}: {e}; dedicated slices share its receiver");
            Ok((Socket::udp(port)?, None))
        }
    }
}

impl Forwarder {
    /// Opens a socket for every IP carrier of the registered link types in the
    /// host's namespace (`netns`, or this one), and starts their receivers and the
    /// timer. Buffers hold `buf_len` bytes after the headroom.
    pub fn start(
        registry: Arc<Registry>,
        netns: Option<String>,
        buf_len: usize,
        io_mode: IoMode,
        workers: usize,
    ) -> Result<Forwarder, netslice_io::Error> {
        let mut carriers: Vec<(Carrier, TypeIdx, Option<LabelField>)> = Vec::new();
        for (idx, l) in registry.links() {
            let c = l.carrier();
            if matches!(c, Carrier::IpProto(_) | Carrier::Udp(_)) && !carriers.iter().any(|(x, _, _)| *x == c) {
                carriers.push((c, idx, l.label_field()));
            }
        }
        let open = move || -> netslice_io::Result<Vec<IpCarrier>> {
            carriers
                .into_iter()
                .map(|(carrier, link_type, field)| {
                    let (sock, unchecked, steer) = match carrier {
                        Carrier::IpProto(p) => (Socket::raw_ip(p)?, None, None),
                        Carrier::Udp(port) => {
                            let (mut s, steer) = match field {
                                Some(LabelField::UdpBe24 { offset }) => udp_steered(port, offset)?,
                                _ => (Socket::udp(port)?, None),
                            };
                            // Runs of datagrams of one flow arrive as one buffer.
                            if let Err(e) = s.enable_gro() {
                                tracing::info!("no UDP GRO on port {port}: {e}");
                            }
                            (s, Some(Socket::udp_unchecked()?), steer)
                        }
                        Carrier::Ethernet(_) => unreachable!("filtered above"),
                    };
                    Ok(IpCarrier { carrier, link_type, sock, unchecked, steer })
                })
                .collect()
        };
        let ip = in_host_ns(netns.as_deref(), open)?;
        let shared = Arc::new(Shared::new(ip, io_mode, registry, HEADROOM + buf_len));
        let all_cpus = netslice_io::cpu::allowed().unwrap_or_default();
        shared.cpus.set(CpuSets { shared: all_cpus.clone(), ports: BTreeMap::new() });
        let mut sets = BTreeMap::new();
        if workers > 0 {
            let set = WorkerSet::start(&shared, "", vec![None; workers])
                .map_err(|e| netslice_io::Error::Os { what: "starting workers".into(), source: e })?;
            sets.insert(String::new(), set);
        }
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(f)
                .map_err(|e| netslice_io::Error::Os { what: format!("starting {name}"), source: e })
        };
        let mut threads = Vec::new();
        for k in 0..shared.ip.len() {
            let s = shared.clone();
            threads.push(spawn(format!("rx-ip{k}"), Box::new(move || ip_rx(&s, k)))?);
        }
        let s = shared.clone();
        threads.push(spawn("egress-timer".into(), Box::new(move || s.timer.run(&*s, &s.shutdown)))?);
        let pass = match io_mode {
            IoMode::Sockets => None,
            _ => match netslice_io::xdp::PassMap::new() {
                Ok(m) => Some(Arc::new(m)),
                Err(e) => {
                    tracing::warn!("{e}: AF_XDP will take dedicated slices' frames into the shared rings");
                    None
                }
            },
        };
        Ok(Forwarder {
            shared,
            netns,
            port_threads: Mutex::new(HashMap::new()),
            delay_threads: Mutex::new(Vec::new()),
            ether_threads: Mutex::new(BTreeMap::new()),
            xsk_threads: Mutex::new(BTreeMap::new()),
            io_errors: Mutex::new(BTreeMap::new()),
            threads: Mutex::new(threads),
            workers: Mutex::new(sets),
            all_cpus,
            cpu_problems: Mutex::new(Vec::new()),
            neighbours: Mutex::new(crate::neigh::Neighbours::default()),
            slice_rx: Mutex::new(Default::default()),
            slice_rx_problems: Mutex::new(Vec::new()),
            pass,
        })
    }

    /// Opens a packet socket (filtered to the Ethernet-layer link types) on every
    /// physical interface not yet served, and starts its receiver.
    fn ensure_ether(&self, underlay: &[UnderlayLink]) {
        let ethertypes: Vec<u16> = self
            .shared
            .registry
            .links()
            .filter_map(|(_, l)| match l.carrier() {
                Carrier::Ethernet(et) => Some(et),
                _ => None,
            })
            .collect();
        if ethertypes.is_empty() {
            return;
        }
        let mut threads = self.ether_threads.lock().expect("ether lock");
        let mut socks: Vec<Option<Arc<PacketSocket>>> = vec![None; underlay.len()];
        for (i, u) in underlay.iter().enumerate() {
            if let Some((sock, _, _)) = threads.get(&u.ifname) {
                socks[i] = Some(sock.clone());
                continue;
            }
            let ifname = u.ifname.clone();
            let ets = ethertypes.clone();
            let open = move || -> netslice_io::Result<PacketSocket> {
                let s = PacketSocket::bind(&ifname)?;
                s.filter_ethertypes(&ets)?;
                Ok(s)
            };
            match in_host_ns(self.netns.as_deref(), open) {
                Ok(sock) => {
                    let sock = Arc::new(sock);
                    let stop = Arc::new(AtomicBool::new(false));
                    let (s, st, so) = (self.shared.clone(), stop.clone(), sock.clone());
                    match std::thread::Builder::new()
                        .name(format!("rx-{}", u.ifname))
                        .spawn(move || ether_rx(&s, &st, &so))
                    {
                        Ok(h) => {
                            threads.insert(u.ifname.clone(), (sock.clone(), stop, h));
                            socks[i] = Some(sock);
                        }
                        Err(e) => tracing::error!("cannot start receiver on {}: {e}", u.ifname),
                    }
                }
                Err(e) => {
                    tracing::warn!("no packet socket on {}: {e}; Ethernet-layer link types will not cross it", u.ifname)
                }
            }
        }
        self.shared.ether.store(Arc::new(socks));
    }

    /// Opens AF_XDP on every physical interface not yet served (unless the mode
    /// is `sockets`) and starts its receiver; where that fails the sockets
    /// serve the interface (mode `auto`) or the failure is reported (`xdp`).
    fn ensure_xsk(&self, underlay: &[UnderlayLink]) {
        if self.shared.io_mode == IoMode::Sockets {
            return;
        }
        let filter = crate::xsk::filter(&self.shared.registry);
        let mut threads = self.xsk_threads.lock().expect("xsk lock");
        let mut errors = self.io_errors.lock().expect("io errors lock");
        let mut ports: Vec<Option<Arc<XskPort>>> = vec![None; underlay.len()];
        for (i, u) in underlay.iter().enumerate() {
            if let Some((x, _, _)) = threads.get(&u.ifname) {
                ports[i] = Some(x.clone());
                continue;
            }
            if errors.contains_key(&u.ifname) {
                continue;
            }
            let (f, link, pass) = (filter.clone(), u.clone(), self.pass.clone());
            let open = move || XskPort::open(&link, &f, pass.as_deref());
            match in_host_ns(self.netns.as_deref(), open) {
                Ok(x) => {
                    let x = Arc::new(x);
                    let stop = Arc::new(AtomicBool::new(false));
                    let (s, st, xp) = (self.shared.clone(), stop.clone(), x.clone());
                    match std::thread::Builder::new()
                        .name(format!("xsk-{}", u.ifname))
                        .spawn(move || xsk_rx(&s, &st, &xp))
                    {
                        Ok(h) => {
                            tracing::info!("AF_XDP ({} XDP, copy mode) on {}", x.xsk.mode(), u.ifname);
                            threads.insert(u.ifname.clone(), (x.clone(), stop, h));
                            ports[i] = Some(x);
                        }
                        Err(e) => {
                            errors.insert(u.ifname.clone(), format!("cannot start the AF_XDP receiver: {e}"));
                        }
                    }
                }
                Err(e) => {
                    if self.shared.io_mode == IoMode::Xdp {
                        tracing::error!("AF_XDP on {}: {e}", u.ifname);
                    } else {
                        tracing::warn!("AF_XDP on {}: {e}; using sockets there", u.ifname);
                    }
                    errors.insert(u.ifname.clone(), e.to_string());
                }
            }
        }
        self.shared.xsk.store(Arc::new(ports));
    }

    /// The substrate I/O in use, for reports: e.g.
    /// `af_xdp(native,copy)+raw-ip+udp(gso,gro)+af_packet`; the UDP socket's
    /// offloads in parentheses (`gso` goes once the kernel refuses a send).
    pub fn backend(&self) -> String {
        let threads = self.xsk_threads.lock().expect("xsk lock");
        let errors = self.io_errors.lock().expect("io errors lock");
        let udp = self.shared.ip.iter().find(|c| matches!(c.carrier, Carrier::Udp(_))).map(|c| &c.sock);
        let offloads: Vec<&str> =
            [("gso", udp.is_some_and(|s| s.segments_ok())), ("gro", udp.is_some_and(|s| s.gro()))]
                .into_iter()
                .filter_map(|(n, on)| on.then_some(n))
                .collect();
        let udp = if offloads.is_empty() { "udp".to_string() } else { format!("udp({})", offloads.join(",")) };
        let sockets = format!("raw-ip+{udp}+af_packet");
        match threads.values().next() {
            None => sockets.to_string(),
            Some((x, _, _)) if errors.is_empty() => format!("af_xdp({},copy)+{sockets}", x.xsk.mode()),
            Some((x, _, _)) => {
                format!(
                    "af_xdp({},copy) on {} of {} links+{sockets}",
                    x.xsk.mode(),
                    threads.len(),
                    threads.len() + errors.len()
                )
            }
        }
    }

    /// Interfaces where AF_XDP was required (mode `xdp`) and failed.
    pub fn io_errors(&self) -> Vec<String> {
        if self.shared.io_mode != IoMode::Xdp {
            return Vec::new();
        }
        self.io_errors.lock().expect("io errors lock").iter().map(|(i, e)| format!("AF_XDP on {i}: {e}")).collect()
    }

    /// Installs new tables and ports: egress schedulers are created, reconfigured
    /// in place or removed; readers start for new ports and stop for gone ones.
    /// Returns problems met (a node program that could not start).
    pub fn install(
        &self,
        cfg: &NodeConfig,
        tables: Tables,
        ports: HashMap<u32, Arc<Tap>>,
    ) -> Vec<(String, String, String)> {
        let now = self.shared.clock.now();
        let old = self.shared.plane.load_full();
        self.ensure_ether(&cfg.underlay);
        self.ensure_xsk(&cfg.underlay);
        // Before any frame of this config is sent: see `neigh` for why.
        for p in self.neighbours.lock().expect("neighbours lock").sync(self.netns.as_deref(), &cfg.underlay) {
            tracing::warn!("no permanent neighbour entry (the peer is resolved by ARP): {p}");
        }
        let (nodes, errors) = build_nodes(cfg, &self.shared.registry, &old);
        let (sets, retired) = self.plan_workers(cfg);
        let mut plane = build_plane(cfg, tables, &ports, nodes, &old, now);
        plane.steer = (0..)
            .map_while(|id| plane.tables.rule(id))
            .map(|r| sets.get(&r.key.slice).or_else(|| sets.get("")).cloned())
            .collect();
        plane.tables.hash_flows = plane.steer.iter().any(Option::is_some);
        let gone: Vec<Arc<Egress>> =
            old.egress.iter().filter(|(k, _)| !plane.egress.contains_key(k)).map(|(_, e)| e.clone()).collect();
        self.shared.plane.store(Arc::new(plane));
        {
            let want = crate::slicerx::wanted(cfg, &self.shared.registry, &self.shared.ip, &sets);
            let netns = self.netns.clone();
            let open = move |c: Carrier| {
                in_host_ns(netns.as_deref(), move || match c {
                    Carrier::Udp(port) => {
                        let mut s = Socket::udp_reuseport(port)?;
                        if let Err(e) = s.enable_gro() {
                            tracing::info!("no UDP GRO on a slice's socket of port {port}: {e}");
                        }
                        Ok(s)
                    }
                    Carrier::IpProto(p) => Socket::raw_ip(p),
                    Carrier::Ethernet(_) => unreachable!("no label field"),
                })
            };
            let mut rxs = self.slice_rx.lock().expect("slice rx lock");
            let problems = crate::slicerx::sync(&self.shared, &mut rxs, &want, &sets, self.pass.as_deref(), &open);
            for p in &problems {
                tracing::warn!("{p}");
            }
            *self.slice_rx_problems.lock().expect("slice rx problems lock") = problems;
        }
        for set in retired {
            // It forwards the frames still queued for it before it stops.
            set.stop();
        }
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
        errors
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
        for (_, (_, stop, h)) in std::mem::take(&mut *self.ether_threads.lock().expect("lock")) {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        for (_, (_, stop, h)) in std::mem::take(&mut *self.xsk_threads.lock().expect("lock")) {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        self.shared.xsk.store(Arc::new(Vec::new()));
        crate::slicerx::stop_all(&self.shared.ip, &mut self.slice_rx.lock().expect("lock"));
        for h in self.threads.lock().expect("lock").drain(..) {
            let _ = h.join();
        }
        for (_, set) in std::mem::take(&mut *self.workers.lock().expect("lock")) {
            set.stop();
        }
    }

    /// How frames are spread over threads and CPUs, for reports.
    pub fn forwarding(&self) -> String {
        let sets = self.workers.lock().expect("workers lock");
        let mut s = match sets.get("") {
            None => "inline (each receiving thread forwards)".to_string(),
            Some(w) => format!("{} workers (flow hash)", w.cpus.len()),
        };
        let rxs = self.slice_rx.lock().expect("slice rx lock");
        for (slice, w) in sets.iter().filter(|(k, _)| !k.is_empty()) {
            let cpus: Vec<usize> = w.cpus.iter().flatten().copied().collect();
            s.push_str(&format!("; {slice} on CPUs {cpus:?}"));
            let own = crate::slicerx::describe(&rxs, slice, &self.shared.registry, &self.shared.ip);
            if !own.is_empty() {
                s.push_str(&format!(" ({})", own.join(", ")));
            }
        }
        let problems = self.slice_rx_problems.lock().expect("slice rx problems lock");
        for p in self.cpu_problems.lock().expect("cpu problems lock").iter().chain(problems.iter()) {
            s.push_str(&format!("; {p}"));
        }
        s
    }

    /// Starts, keeps or stops the dedicated worker sets of the slices in
    /// `cfg`, publishes which CPUs each thread may use, and returns the set
    /// that serves each slice (shared workers under ""). Sets no longer
    /// wanted are returned separately, to be stopped once no plane uses them.
    fn plan_workers(&self, cfg: &NodeConfig) -> (BTreeMap<String, Arc<WorkerSet>>, Vec<Arc<WorkerSet>>) {
        let mut sets = self.workers.lock().expect("workers lock");
        let (want, mut problems) = crate::workers::dedicated(cfg, &self.all_cpus);
        let taken: Vec<usize> = want.values().flatten().copied().collect();
        let mut gone = Vec::new();
        let keep = |k: &String, set: &Arc<WorkerSet>| {
            k.is_empty() || want.get(k).is_some_and(|c| set.cpus == c.iter().map(|&c| Some(c)).collect::<Vec<_>>())
        };
        let stale: Vec<String> = sets.iter().filter(|(k, v)| !keep(k, v)).map(|(k, _)| k.clone()).collect();
        for k in stale {
            if let Some(set) = sets.remove(&k) {
                gone.push(set);
            }
        }
        for (slice, cpus) in &want {
            if sets.contains_key(slice) {
                continue;
            }
            match WorkerSet::start(&self.shared, slice, cpus.iter().map(|&c| Some(c)).collect()) {
                Ok(set) => {
                    sets.insert(slice.clone(), set);
                }
                Err(e) => problems.push(format!("{slice}: workers not started: {e}")),
            }
        }
        let shared_cpus: Vec<usize> = self.all_cpus.iter().copied().filter(|c| !taken.contains(c)).collect();
        let mut map = CpuSets {
            shared: if shared_cpus.is_empty() { self.all_cpus.clone() } else { shared_cpus },
            ports: BTreeMap::new(),
        };
        for r in &cfg.ports {
            if let Some(c) = want.get(&r.slice).filter(|_| sets.contains_key(&r.slice)) {
                map.ports.insert(r.port, c.clone());
            }
        }
        self.shared.cpus.set(map);
        *self.cpu_problems.lock().expect("cpu problems lock") = problems;
        (sets.clone(), gone)
    }
}

/// Builds the routes of every rule: each egress port (a physical link or a sliver
/// TAP) gets a scheduler whose classes are the slices and links that send there.
fn build_plane(
    cfg: &NodeConfig,
    tables: Tables,
    ports: &HashMap<u32, Arc<Tap>>,
    nodes: Nodes,
    old: &Plane,
    now: u64,
) -> Plane {
    let node_ports: HashMap<u32, (Arc<NodeRuntime>, usize)> =
        nodes.values().flat_map(|n| n.ports.iter().enumerate().map(move |(i, p)| (*p, (n.clone(), i)))).collect();
    let mut routes: Vec<Option<Route>> = vec![None; tables.rules().len()];
    // Which rules send where.
    let mut users: BTreeMap<EgressKey, Vec<usize>> = BTreeMap::new();
    for (id, r) in tables.rules().iter().enumerate() {
        let key = match r.hop {
            Hop::Send { underlay, .. } => match cfg.underlay.get(usize::from(underlay)) {
                Some(u) => EgressKey::Underlay(u.name.clone()),
                None => continue,
            },
            Hop::Deliver { port } => {
                if let Some((node, iface)) = node_ports.get(&port) {
                    // Into a fast-path node: no queue, the program runs at once.
                    routes[id] = Some(Route::Node { node: node.clone(), iface: *iface });
                    continue;
                }
                EgressKey::Tap(port)
            }
        };
        users.entry(key).or_default().push(id);
    }
    let mut egress = BTreeMap::new();
    for (key, rules) in users {
        // Port rate: the physical link's capacity, or a TAP's fastest link ceiling.
        let (kind, rate_bps, burst) = match &key {
            EgressKey::Underlay(name) => {
                let Some((index, u)) = cfg.underlay.iter().enumerate().find(|(_, u)| &u.name == name) else { continue };
                let rate = u.bandwidth.bps();
                let mtu = u.mtu as usize;
                (EgressKind::Underlay { index, name: name.clone(), mtu }, rate, (rate / 8 / 1000).max(64 * 1024))
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
    Plane { tables, routes, egress, nodes, steer: Vec::new() }
}

/// Fast-path nodes by (slice, node).
type Nodes = BTreeMap<(String, String), Arc<NodeRuntime>>;

/// Starts (or keeps, when their config is unchanged, with their learned state)
/// the fast-path nodes of this host.
fn build_nodes(cfg: &NodeConfig, registry: &Registry, old: &Plane) -> (Nodes, Vec<(String, String, String)>) {
    let mut nodes = BTreeMap::new();
    let mut errors = Vec::new();
    for s in cfg.slivers.iter().filter(|s| s.fast_path) {
        let key = (s.slice.clone(), s.node.clone());
        if let Some(n) = old.nodes.get(&key).filter(|n| n.config == *s) {
            nodes.insert(key, n.clone());
            continue;
        }
        let inst = NodeInstance {
            slice: s.slice.clone(),
            node: s.node.clone(),
            params: s.params.clone(),
            interfaces: s
                .interfaces
                .iter()
                .map(|i| InstanceIface {
                    name: i.name.clone(),
                    port: i.port,
                    mac: i.mac.parse().unwrap_or_default(),
                    addresses: i.addresses.clone(),
                    mtu: i.mtu,
                })
                .collect(),
            routes: s.routes.clone(),
        };
        let program = match registry.node(&s.node_type).map(|t| t.instantiate(&inst)) {
            Some(Ok(Some(p))) => p,
            Some(Ok(None)) => continue,
            Some(Err(e)) => {
                errors.push((s.slice.clone(), s.node.clone(), e));
                continue;
            }
            None => {
                errors.push((s.slice.clone(), s.node.clone(), format!("unknown node type {}", s.node_type)));
                continue;
            }
        };
        tracing::info!("started {} node {}/{}", s.node_type, s.slice, s.node);
        nodes.insert(
            key,
            Arc::new(NodeRuntime {
                slice: s.slice.clone(),
                node: s.node.clone(),
                config: s.clone(),
                ports: s.interfaces.iter().map(|i| i.port).collect(),
                program: Mutex::new(program),
            }),
        );
    }
    (nodes, errors)
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
            Hop::Send { link_type, .. } => tables.registry().link(link_type).map(|l| l.wire_overhead()).unwrap_or(0),
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
        let share = cfg.slices.get(slice);
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
            routes[i] = Some(Route::Egress { egress: e.clone(), class });
        }
    }
}

fn ip_rx(shared: &Shared, k: usize) {
    ip_rx_on(shared, k, &shared.ip[k].sock, None);
}

/// A receiver of one slice's frames on a socket of its own (see `slicerx`).
pub(crate) struct OwnRx<'a> {
    /// Set to stop; the receiver first forwards what its socket still holds.
    pub stop: &'a AtomicBool,
    /// Frames received.
    pub frames: &'a AtomicU64,
    /// The slice's workers (their single CPU's frames are forwarded inline).
    pub set: Arc<WorkerSet>,
}

/// Receives from `sock`, a socket of carrier `k`: the shared one (`own`
/// `None`, re-pinned with the shared threads) or a dedicated slice's.
pub(crate) fn ip_rx_on(shared: &Shared, k: usize, sock: &Socket, own: Option<OwnRx<'_>>) {
    let carrier = &shared.ip[k];
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut info = [RecvInfo::default(); BATCH];
    // Buffers for the datagrams after the first of a UDP GRO buffer (refilled
    // from the pool as forwarding takes them), and their lengths.
    let mut extra: Vec<Vec<u8>> = Vec::new();
    let mut lens: Vec<usize> = Vec::new();
    let mut out = Dispatch::new();
    let (mut steer, mut pin) = match &own {
        None => (Steer::default(), Some(Pin::shared())),
        Some(o) => (Steer::inline_for(o.set.clone()), None),
    };
    let mut busy = Instant::now();
    while !shared.shutdown.load(Ordering::Relaxed) {
        if let Some(pin) = pin.as_mut() {
            pin.check(shared);
        }
        let stopping = own.as_ref().is_some_and(|o| o.stop.load(Ordering::Relaxed));
        let n = match sock.recv_batch(&mut bufs, HEADROOM, &mut info) {
            Ok(n) => {
                busy = Instant::now();
                if let Some(o) = &own {
                    o.frames.fetch_add(n as u64, Ordering::Relaxed);
                }
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                if stopping {
                    break;
                }
                idle(sock.fd(), busy);
                continue;
            }
            Err(e) => {
                tracing::warn!("{:?} receive failed: {e}", carrier.carrier);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let plane = shared.plane.load();
        let now = shared.clock.now();
        for (i, inf) in info.iter().enumerate().take(n) {
            if inf.truncated {
                plane.tables.unmatched.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // With UDP GRO the buffer may hold several datagrams. The second and
            // later are copied into buffers of their own first (forwarding the
            // first may take its buffer), then each is forwarded in arrival order.
            let mut cuts = inf.datagrams(HEADROOM);
            // (An empty datagram still goes to the classifier, which counts it.)
            let first = cuts.next().unwrap_or(HEADROOM..HEADROOM);
            lens.clear();
            for r in cuts {
                let k = lens.len();
                if k == extra.len() {
                    extra.push(Vec::new());
                }
                if extra[k].len() != shared.pool.buf_len() {
                    shared.pool.refill(&mut extra[k..]);
                }
                extra[k][HEADROOM..HEADROOM + r.len()].copy_from_slice(&bufs[i][r.clone()]);
                lens.push(r.len());
            }
            out.arrived(shared, &plane, &mut steer, carrier.link_type, &mut bufs[i], first, now);
            for (b, &len) in extra.iter_mut().zip(&lens) {
                out.arrived(shared, &plane, &mut steer, carrier.link_type, b, HEADROOM..HEADROOM + len, now);
            }
        }
        steer.send(shared);
        out.flush(shared, &mut bufs);
    }
}

fn ether_rx(shared: &Shared, stop: &AtomicBool, sock: &PacketSocket) {
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut info = [FrameInfo::default(); BATCH];
    let mut out = Dispatch::new();
    let mut steer = Steer::default();
    let mut pin = Pin::shared();
    let by_type: Vec<(u16, TypeIdx)> = shared
        .registry
        .links()
        .filter_map(|(i, l)| match l.carrier() {
            Carrier::Ethernet(et) => Some((et, i)),
            _ => None,
        })
        .collect();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        pin.check(shared);
        let n = match sock.recv_batch(&mut bufs, HEADROOM, &mut info) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                let _ = wait_readable(sock.fd(), IDLE_POLL_MS);
                continue;
            }
            Err(e) => {
                tracing::warn!("packet socket receive failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let plane = shared.plane.load();
        let now = shared.clock.now();
        for (i, inf) in info.iter().enumerate().take(n) {
            if inf.outgoing || inf.len < 14 {
                continue;
            }
            let et = u16::from_be_bytes([bufs[i][inf.start + 12], bufs[i][inf.start + 13]]);
            let Some(&(_, ty)) = by_type.iter().find(|(e, _)| *e == et) else { continue };
            out.arrived(shared, &plane, &mut steer, ty, &mut bufs[i], inf.start..inf.start + inf.len, now);
        }
        steer.send(shared);
        out.flush(shared, &mut bufs);
    }
}

fn xsk_rx(shared: &Shared, stop: &AtomicBool, port: &XskPort) {
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut meta: Vec<(TypeIdx, usize)> = Vec::with_capacity(BATCH);
    let mut out = Dispatch::new();
    let mut steer = Steer::default();
    let mut pin = Pin::shared();
    let mut types: Vec<(Carrier, TypeIdx)> = shared.ip.iter().map(|c| (c.carrier, c.link_type)).collect();
    types.extend(shared.registry.links().filter_map(|(i, l)| match l.carrier() {
        c @ Carrier::Ethernet(_) => Some((c, i)),
        _ => None,
    }));
    let room = shared.pool.buf_len() - HEADROOM;
    let mut busy = Instant::now();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        pin.check(shared);
        meta.clear();
        let n = port.xsk.recv(BATCH, |frame| {
            let Some((carrier, range)) = crate::xsk::classify(frame) else { return };
            let Some(&(_, ty)) = types.iter().find(|(c, _)| *c == carrier) else { return };
            let len = range.len();
            if len > room {
                return;
            }
            let k = meta.len();
            bufs[k][HEADROOM..HEADROOM + len].copy_from_slice(&frame[range]);
            meta.push((ty, len));
        });
        if n == 0 {
            idle(port.xsk.fd(), busy);
            continue;
        }
        busy = Instant::now();
        let plane = shared.plane.load();
        let now = shared.clock.now();
        for (i, &(ty, len)) in meta.iter().enumerate() {
            out.arrived(shared, &plane, &mut steer, ty, &mut bufs[i], HEADROOM..HEADROOM + len, now);
        }
        steer.send(shared);
        out.flush(shared, &mut bufs);
    }
}

fn port_rx(shared: &Shared, stop: &AtomicBool, port: u32, tap: &Tap) {
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut lens = [0usize; BATCH];
    let mut hdrs = [gso::VnetHdr::default(); BATCH];
    let mut out = Dispatch::new();
    let mut pin = Pin::port(port);
    let mut busy = Instant::now();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        pin.check(shared);
        let mut n = 0;
        let vnet = if tap.offload() { gso::VNET_HDR_LEN } else { 0 };
        while n < BATCH {
            match tap.read(&mut bufs[n][HEADROOM - vnet..]) {
                Ok(len) if len >= vnet => {
                    lens[n] = len - vnet;
                    hdrs[n] = if vnet > 0 {
                        gso::VnetHdr::parse(&bufs[n][HEADROOM - vnet..HEADROOM]).unwrap_or_default()
                    } else {
                        gso::VnetHdr::default()
                    };
                    n += 1;
                }
                Ok(_) => continue,
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
            idle(tap.fd(), busy);
            continue;
        }
        busy = Instant::now();
        let plane = shared.plane.load();
        let now = shared.clock.now();
        let max_frame = plane.tables.port_max_frame(port).unwrap_or(usize::MAX);
        for i in 0..n {
            let frame = HEADROOM..HEADROOM + lens[i];
            // A partial checksum (checksum offload) is completed here, except in
            // a super-frame carried whole: it stays partial, as the TAP at the
            // far end takes it with its segmentation metadata.
            let h = hdrs[i];
            if h.flags & gso::F_NEEDS_CSUM != 0 && (h.gso_type == gso::GSO_NONE || lens[i] <= max_frame) {
                gso::complete_csum(&mut bufs[i][frame.clone()], usize::from(h.csum_start), usize::from(h.csum_offset));
            }
            let v = plane.tables.on_port(now, port, &mut bufs[i], frame);
            // A sliver's frames are forwarded by its own port's reader (never
            // handed to shared workers): a flooding sliver then only loads its
            // own thread, and the egress scheduler is the first queue it meets.
            out.handle(shared, &plane, &mut bufs[i], v, now, 0);
        }
        out.flush(shared, &mut bufs);
    }
}

fn delay_line(shared: &Shared, stop: &AtomicBool, rx: &Receiver<Delayed>, delay: Duration) {
    let mut pin = Pin::shared();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        pin.check(shared);
        let Ok(p) = rx.recv_timeout(Duration::from_millis(IDLE_POLL_MS as u64)) else { continue };
        let due = p.due + delay;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let len = p.bytes.len();
        let pkt = Pkt::new(p.bytes, 0..len, Some(p.dst), Default::default());
        shared.send_now(p.underlay, 0, std::slice::from_ref(&pkt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dst(k: u8) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, k), 4789)
    }

    fn runs_of(lens: &[(usize, u8)], mtu: usize) -> Vec<(std::ops::Range<usize>, u8)> {
        let bufs: Vec<Vec<u8>> = lens.iter().map(|&(l, _)| vec![0; l]).collect();
        let msgs: Vec<(&[u8], SocketAddrV4)> =
            bufs.iter().zip(lens).map(|(b, &(_, d))| (b.as_slice(), dst(d))).collect();
        udp_runs(&msgs, mtu).into_iter().map(|(r, d)| (r, d.ip().octets()[3])).collect()
    }

    #[test]
    fn runs_group_equal_sizes_to_one_hop_and_end_at_a_shorter_one() {
        let l = [(1000, 1), (1000, 1), (500, 1), (1000, 1), (1000, 2), (1000, 2), (1200, 2), (60_000, 2), (90, 2)];
        assert_eq!(runs_of(&l, 9000), vec![(0..3, 1), (3..4, 1), (4..6, 2), (6..7, 2), (7..8, 2), (8..9, 2)]);
        // Payloads that do not fit the MTU whole (with 28 bytes of IP and UDP) stand alone.
        assert_eq!(runs_of(&[(1473, 1), (1473, 1), (1472, 1), (1472, 1)], 1500), vec![(0..1, 1), (1..2, 1), (2..4, 1)]);
    }

    #[test]
    fn runs_keep_to_the_kernel_limits() {
        let l = vec![(64, 1); 200];
        let r = runs_of(&l, 9000);
        assert!(r.iter().all(|(g, _)| g.len() <= netslice_io::sock::MAX_SEGMENTS));
        let big = vec![(8000, 1); 20];
        assert!(runs_of(&big, 9000).iter().all(|(g, _)| g.len() * 8000 <= netslice_io::sock::MAX_SEGMENTED));
    }

    proptest! {
        /// Runs cover every payload once, in order; within a run all share the
        /// destination, all but the last have the first's length and none is
        /// longer, and the kernel's limits hold.
        #[test]
        fn runs_partition_the_batch_within_the_rules(
            lens in proptest::collection::vec((prop_oneof![Just(0usize), 1usize..200, Just(1400), Just(1472), 1473usize..9000, Just(60_000)], 0u8..3), 0..300),
            mtu in prop_oneof![Just(1500usize), Just(9000)],
        ) {
            let runs = runs_of(&lens, mtu);
            let mut next = 0;
            for (r, d) in &runs {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty());
                next = r.end;
                let first = lens[r.start].0;
                if r.len() > 1 {
                    prop_assert!(first > 0 && first + 28 <= mtu);
                    prop_assert!(r.len() <= netslice_io::sock::MAX_SEGMENTS);
                    prop_assert!(lens[r.clone()].iter().map(|l| l.0).sum::<usize>() <= netslice_io::sock::MAX_SEGMENTED);
                    for k in r.clone() {
                        prop_assert_eq!(lens[k].1, *d);
                        prop_assert!(lens[k].0 <= first && lens[k].0 > 0);
                        if k + 1 < r.end {
                            prop_assert_eq!(lens[k].0, first);
                        }
                    }
                }
            }
            prop_assert_eq!(next, lens.len());
        }
    }
}
