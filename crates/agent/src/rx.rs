//! The receive side: one loop ([`receive`]) for every device a host reads
//! frames from, generic over [`Device`]: a carrier's socket (raw IP or UDP),
//! a physical interface's packet socket or AF_XDP socket, and a set of sliver
//! TAPs served by one poller ([`PortSet`], readiness-driven over all of them,
//! so a host's forwarding threads scale with its cores, not its slivers).
//!
//! The loop reads a batch, classifies each frame (the redirector), hands
//! substrate frames to workers where the plane says so ([`Steer`]) and
//! forwards the rest itself ([`Forwarding`]).

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use netslice_dataplane::{Carrier, HEADROOM, TypeIdx, gso};
use netslice_io::epoll::Epoll;
use netslice_io::packet::{FrameInfo, PacketSocket};
use netslice_io::sock::{IDLE_POLL_MS, RecvInfo, SPIN, Socket, idle, wait_readable};
use netslice_io::tap::Tap;
use netslice_model::{PortNo, SliceName};
use netslice_pipeline::dispatch::{cpu_share, port_ingress};

use crate::cpus::Pin;
use crate::forward::Forwarding;
use crate::shared::Shared;
use crate::workers::Steer;
use crate::xsk::XskPort;

/// Frames read per batch.
pub(crate) const BATCH: usize = 32;
/// How long a receiving thread reads nothing but full batches (its device
/// holds more than it reads) before it counts as behind: frames beyond
/// their link's share of forwarding work are then dropped ([`cpu_share`]).
/// A burst of a thousand frames is read in a few milliseconds and loses
/// nothing; a thread short of CPU stays behind.
pub(crate) const BEHIND_AFTER: Duration = Duration::from_millis(5);
/// Where a frame came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// The substrate, as a packet of this link type.
    Substrate(TypeIdx),
    /// A sliver interface, with the virtio-net header it came with.
    Port(PortNo, gso::VnetHdr),
}

/// A frame read into `bufs[buf][range]`.
#[derive(Debug)]
pub(crate) struct Arrival {
    buf: usize,
    range: Range<usize>,
    from: Source,
}

impl Arrival {
    /// A frame in `bufs[buf][range]` as if read from sliver interface `port`
    /// (plain: no virtio-net metadata).
    pub(crate) fn port(buf: usize, range: Range<usize>, port: PortNo) -> Arrival {
        Arrival { buf, range, from: Source::Port(port, gso::VnetHdr::default()) }
    }
}

/// Something frames are read from.
pub(crate) trait Device {
    /// Reads what is ready into `bufs` (each a pool buffer; frames start
    /// after [`HEADROOM`]; the device may append more buffers, taken from the
    /// pool), one [`Arrival`] per frame to forward, in order; returns how
    /// many the device gave (frames it filtered out count: the device was
    /// busy; 0: nothing ready; errors are the device's to report and pace).
    fn recv(&mut self, shared: &Shared, bufs: &mut Vec<Vec<u8>>, arrivals: &mut Vec<Arrival>) -> usize;
    /// Waits for more after an empty read (`busy`: when the last frame came).
    fn wait(&mut self, busy: Instant);
}

/// How a receiving thread forwards, and what else it does.
#[derive(Debug)]
pub(crate) enum Role {
    /// A shared substrate receiver: follows the shared CPUs, steers to workers.
    Substrate,
    /// A dedicated slice's own substrate socket: pinned by its starter,
    /// forwards the slice's frames inline (or to its workers), counts them,
    /// and when stopped first forwards what its socket still holds.
    Own {
        /// The slice.
        slice: SliceName,
        /// Frames read.
        frames: Arc<AtomicU64>,
    },
    /// A poller of sliver ports: forwards inline, on the shared CPUs or on
    /// the CPUs of the dedicated slice it serves.
    Ports(Option<SliceName>),
}

/// The receive loop: until `stop` (or the agent's shutdown).
pub(crate) fn receive<D: Device>(shared: &Shared, dev: &mut D, stop: &AtomicBool, role: Role) {
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    shared.pool.refill(&mut bufs);
    let mut arrivals = Vec::with_capacity(BATCH);
    let mut fwd = Forwarding::new();
    let (mut steer, mut pin) = match &role {
        Role::Substrate => (Some(Steer::default()), Some(Pin::shared())),
        Role::Own { slice, .. } => (Some(Steer::inline_for(slice)), None),
        Role::Ports(None) => (None, Some(Pin::shared())),
        Role::Ports(Some(slice)) => (None, Some(Pin::slice(slice))),
    };
    let drains = matches!(role, Role::Own { .. });
    let mut busy = Instant::now();
    let mut full_since: Option<Instant> = None;
    while !shared.shutdown.load(Ordering::Relaxed) {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && !drains {
            break;
        }
        if let Some(pin) = pin.as_mut() {
            pin.check(&shared.cpus);
        }
        arrivals.clear();
        let n = dev.recv(shared, &mut bufs, &mut arrivals);
        if n == 0 {
            if stopping {
                break;
            }
            dev.wait(busy);
            continue;
        }
        busy = Instant::now();
        if n >= BATCH {
            full_since.get_or_insert(busy);
        } else {
            full_since = None;
        }
        let behind = shared.cpu_shares && full_since.is_some_and(|t| busy.duration_since(t) >= BEHIND_AFTER);
        if let Role::Own { frames, .. } = &role {
            frames.fetch_add(n as u64, Ordering::Relaxed);
        }
        let plane = shared.plane.load_full();
        let now = shared.clock.now();
        for a in arrivals.drain(..) {
            let slot = &mut bufs[a.buf];
            match a.from {
                Source::Substrate(ty) => {
                    let v = plane.pipe.tables.on_substrate(now, ty, slot, a.range);
                    let v = cpu_share(&plane.pipe.tables, v, now, behind);
                    let v = match steer.as_mut() {
                        Some(s) => s.take(&plane, slot, v, now),
                        None => Some(v),
                    };
                    if let Some(v) = v {
                        fwd.handle(shared, &plane, slot, v, now);
                    }
                }
                Source::Port(port, hdr) => {
                    let v = port_ingress(&plane.pipe, now, port, slot, a.range, &hdr);
                    let v = cpu_share(&plane.pipe.tables, v, now, behind);
                    // A sliver's frames are forwarded by its port's poller
                    // (never handed to shared workers): a flooding sliver then
                    // only loads its poller, and the egress scheduler is the
                    // first queue it meets.
                    fwd.handle(shared, &plane, slot, v, now);
                }
            }
        }
        if let Some(s) = steer.as_mut() {
            s.send(shared);
        }
        // Buffers a device added (datagrams of a UDP GRO buffer) go back.
        if bufs.len() > BATCH {
            shared.pool.give(bufs.drain(BATCH..).filter(|b| !b.is_empty()));
        }
        fwd.flush(shared, &plane, &mut bufs);
    }
}

/// Paces a device after a read error other than "nothing ready".
fn failed(what: &dyn std::fmt::Display, e: &io::Error) {
    tracing::warn!("{what}: receive failed: {e}");
    std::thread::sleep(Duration::from_millis(10));
}

/// A carrier's socket: the shared one, or a dedicated slice's own.
#[derive(Debug)]
pub(crate) struct SockDev<'a> {
    sock: &'a Socket,
    carrier: Carrier,
    ty: TypeIdx,
    info: [RecvInfo; BATCH],
}

impl<'a> SockDev<'a> {
    /// Reads `sock`, which brings packets of `carrier` (link type `ty`).
    pub(crate) fn new(sock: &'a Socket, carrier: Carrier, ty: TypeIdx) -> SockDev<'a> {
        SockDev { sock, carrier, ty, info: [RecvInfo::default(); BATCH] }
    }
}

impl Device for SockDev<'_> {
    fn recv(&mut self, shared: &Shared, bufs: &mut Vec<Vec<u8>>, arrivals: &mut Vec<Arrival>) -> usize {
        let n = match self.sock.recv_batch(&mut bufs[..BATCH], HEADROOM, &mut self.info) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return 0,
            Err(e) => {
                failed(&format_args!("{:?}", self.carrier), &e);
                return 0;
            }
        };
        for (i, inf) in self.info.iter().enumerate().take(n) {
            if inf.truncated {
                shared.plane.load().pipe.tables.unmatched.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // With UDP GRO the buffer may hold several datagrams: the second
            // and later are copied into buffers of their own (forwarding the
            // first may take its buffer), and all go in arrival order.
            let mut cuts = inf.datagrams(HEADROOM);
            // (An empty datagram still goes to the classifier, which counts it.)
            let first = cuts.next().unwrap_or(HEADROOM..HEADROOM);
            arrivals.push(Arrival { buf: i, range: first, from: Source::Substrate(self.ty) });
            for r in cuts {
                let mut b = shared.pool.take();
                b[HEADROOM..HEADROOM + r.len()].copy_from_slice(&bufs[i][r.clone()]);
                bufs.push(b);
                let range = HEADROOM..HEADROOM + r.len();
                arrivals.push(Arrival { buf: bufs.len() - 1, range, from: Source::Substrate(self.ty) });
            }
        }
        n
    }

    fn wait(&mut self, busy: Instant) {
        idle(self.sock.fd(), busy);
    }
}

/// A physical interface's packet socket (Ethernet-layer link types).
#[derive(Debug)]
pub(crate) struct EtherDev {
    sock: Arc<PacketSocket>,
    by_type: Vec<(u16, TypeIdx)>,
    info: [FrameInfo; BATCH],
}

impl EtherDev {
    /// Reads `sock`; EtherTypes map to the registered link types.
    pub(crate) fn new(shared: &Shared, sock: Arc<PacketSocket>) -> EtherDev {
        let by_type = shared
            .registry
            .links()
            .filter_map(|(i, l)| match l.carrier() {
                Carrier::Ethernet(et) => Some((et, i)),
                _ => None,
            })
            .collect();
        EtherDev { sock, by_type, info: [FrameInfo::default(); BATCH] }
    }
}

impl Device for EtherDev {
    fn recv(&mut self, _: &Shared, bufs: &mut Vec<Vec<u8>>, arrivals: &mut Vec<Arrival>) -> usize {
        let n = match self.sock.recv_batch(&mut bufs[..BATCH], HEADROOM, &mut self.info) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return 0,
            Err(e) => {
                failed(&"packet socket", &e);
                return 0;
            }
        };
        for (i, inf) in self.info.iter().enumerate().take(n) {
            if inf.outgoing || inf.len < netslice_wire::ethernet::HEADER_LEN {
                continue;
            }
            let frame = &bufs[i][inf.start..inf.start + inf.len];
            let Ok(eth) = netslice_wire::ethernet::Frame::new_checked(frame) else { continue };
            let et = u16::from(eth.ethertype());
            let Some(&(_, ty)) = self.by_type.iter().find(|(e, _)| *e == et) else { continue };
            arrivals.push(Arrival { buf: i, range: inf.start..inf.start + inf.len, from: Source::Substrate(ty) });
        }
        n
    }

    fn wait(&mut self, _: Instant) {
        let _ = wait_readable(self.sock.fd(), IDLE_POLL_MS);
    }
}

/// A physical interface's AF_XDP socket (every carrier's frames).
#[derive(Debug)]
pub(crate) struct XskDev {
    port: Arc<XskPort>,
    types: Vec<(Carrier, TypeIdx)>,
}

impl XskDev {
    /// Reads `port`; carriers map to the link types that use them.
    pub(crate) fn new(shared: &Shared, port: Arc<XskPort>) -> XskDev {
        let mut types: Vec<(Carrier, TypeIdx)> = shared.carriers.iter().map(|c| (c.carrier, c.link_type)).collect();
        types.extend(shared.registry.links().filter_map(|(i, l)| match l.carrier() {
            c @ Carrier::Ethernet(_) => Some((c, i)),
            _ => None,
        }));
        XskDev { port, types }
    }
}

impl Device for XskDev {
    fn recv(&mut self, shared: &Shared, bufs: &mut Vec<Vec<u8>>, arrivals: &mut Vec<Arrival>) -> usize {
        let room = shared.pool.buf_len() - HEADROOM;
        let types = &self.types;
        self.port.xsk.recv(BATCH, |frame| {
            let Some((carrier, range)) = crate::xsk::classify(frame) else { return };
            let Some(&(_, ty)) = types.iter().find(|(c, _)| *c == carrier) else { return };
            let len = range.len();
            if len > room {
                return;
            }
            let k = arrivals.len();
            bufs[k][HEADROOM..HEADROOM + len].copy_from_slice(&frame[range]);
            arrivals.push(Arrival { buf: k, range: HEADROOM..HEADROOM + len, from: Source::Substrate(ty) });
        })
    }

    fn wait(&mut self, busy: Instant) {
        idle(self.port.xsk.fd(), busy);
    }
}

/// The sliver ports one poller serves: an epoll set and the TAP behind each
/// port number. The control thread changes it; the poller sees the change at
/// its next read.
#[derive(Debug)]
pub(crate) struct PortSet {
    epoll: Epoll,
    members: ArcSwap<BTreeMap<PortNo, Arc<Tap>>>,
}

impl PortSet {
    /// An empty set.
    pub(crate) fn new() -> netslice_io::Result<PortSet> {
        Ok(PortSet { epoll: Epoll::new()?, members: ArcSwap::from_pointee(BTreeMap::new()) })
    }

    /// The ports served.
    pub(crate) fn members(&self) -> Arc<BTreeMap<PortNo, Arc<Tap>>> {
        self.members.load_full()
    }

    /// Makes the set serve exactly `want` (port -> its TAP); a port whose
    /// TAP was replaced is watched on the new one.
    pub(crate) fn sync(&self, want: &BTreeMap<PortNo, Arc<Tap>>) -> Vec<String> {
        let have = self.members.load_full();
        let mut problems = Vec::new();
        // Ports leaving (or changing device) stop being watched first.
        for (port, tap) in have.iter() {
            if want.get(port).is_none_or(|t| !Arc::ptr_eq(t, tap))
                && let Err(e) = self.epoll.remove(tap.fd())
            {
                problems.push(format!("port {port}: {e}"));
            }
        }
        // The poller must know a token before it can be reported.
        let mut merged: BTreeMap<PortNo, Arc<Tap>> = want.clone();
        for (port, tap) in have.iter() {
            merged.entry(*port).or_insert_with(|| tap.clone());
        }
        self.members.store(Arc::new(merged));
        // A port that could not be watched is not a member: the next apply
        // tries again.
        let mut now = want.clone();
        for (port, tap) in want {
            if have.get(port).is_none_or(|t| !Arc::ptr_eq(t, tap))
                && let Err(e) = self.epoll.add(tap.fd(), u64::from(port.0))
            {
                problems.push(format!("port {port} is not read: {e}"));
                now.remove(port);
            }
        }
        self.members.store(Arc::new(now));
        problems
    }
}

/// A poller's view of its [`PortSet`].
#[derive(Debug)]
pub(crate) struct PollDev {
    set: Arc<PortSet>,
    ready: Vec<u64>,
    /// TAPs taken out of the set after a read error, and when: polled again
    /// a second later (if still members), so a failing TAP neither spins
    /// the poller nor is lost for good.
    parked: Vec<(PortNo, Arc<Tap>, Instant)>,
    /// Descriptors this poller put back into the set itself, by token: if
    /// the control thread took the port away meanwhile, the poller removes
    /// the descriptor when it sees it ready without a member behind it.
    readded: std::collections::HashMap<u64, std::os::fd::RawFd>,
}

impl PollDev {
    /// Polls `set`.
    pub(crate) fn new(set: Arc<PortSet>) -> PollDev {
        PollDev { set, ready: Vec::new(), parked: Vec::new(), readded: Default::default() }
    }
}

impl Device for PollDev {
    fn recv(&mut self, _: &Shared, bufs: &mut Vec<Vec<u8>>, arrivals: &mut Vec<Arrival>) -> usize {
        if self.parked.first().is_some_and(|(_, _, at)| at.elapsed() > Duration::from_secs(1)) {
            let members = self.set.members.load();
            for (port, tap, _) in self.parked.drain(..) {
                if members.get(&port).is_some_and(|t| Arc::ptr_eq(t, &tap))
                    && self.set.epoll.add(tap.fd(), u64::from(port.0)).is_ok()
                {
                    self.readded.insert(u64::from(port.0), tap.fd());
                }
            }
        }
        if let Err(e) = self.set.epoll.wait(&mut self.ready, 64, 0) {
            failed(&"port poller", &e);
            return 0;
        }
        if self.ready.is_empty() {
            return 0;
        }
        let members = self.set.members.load();
        // Each ready port gets an equal share of the batch (at least one
        // frame), so a flooding sliver cannot crowd out the others here; what
        // it leaves unread keeps its TAP ready for the next round.
        let quota = (BATCH / self.ready.len()).max(1);
        for &token in &self.ready {
            let port = PortNo(token as u32);
            let Some(tap) = members.get(&port) else {
                // A descriptor this poller put back after its port left the
                // set: out it goes, or it would be reported ready forever.
                if let Some(fd) = self.readded.remove(&token) {
                    let _ = self.set.epoll.remove(fd);
                }
                continue;
            };
            let vnet = if tap.offload() { gso::VNET_HDR_LEN } else { 0 };
            let mut got = 0;
            while got < quota && arrivals.len() < BATCH {
                let k = arrivals.len();
                match tap.read(&mut bufs[k][HEADROOM - vnet..]) {
                    Ok(len) if len >= vnet => {
                        let hdr = if vnet > 0 {
                            gso::read_vnet_hdr(&bufs[k][HEADROOM - vnet..HEADROOM]).unwrap_or_default()
                        } else {
                            gso::VnetHdr::default()
                        };
                        let range = HEADROOM..HEADROOM + len - vnet;
                        arrivals.push(Arrival { buf: k, range, from: Source::Port(port, hdr) });
                        got += 1;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // A failing TAP would be reported ready forever: it
                        // rests for a second.
                        tracing::warn!("port {port} ({}) read failed: {e}", tap.name());
                        let _ = self.set.epoll.remove(tap.fd());
                        self.parked.push((port, tap.clone(), Instant::now()));
                        break;
                    }
                }
            }
            if arrivals.len() >= BATCH {
                break;
            }
        }
        arrivals.len()
    }

    fn wait(&mut self, busy: Instant) {
        if busy.elapsed() < SPIN {
            std::thread::yield_now();
        } else {
            let _ = self.set.epoll.wait(&mut self.ready, 1, IDLE_POLL_MS);
        }
    }
}
