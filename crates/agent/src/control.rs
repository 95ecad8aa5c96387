//! The control thread: the single owner of everything the agent runs.
//!
//! Each config is reconciled the kube-rs way, in three steps: `desired =
//! plan(config)` ([`crate::desired`], pure), a comparison with what runs, and
//! only the difference acted on. Every thread is in one registry
//! ([`crate::threads`]); every socket, port, delay line, program and sliver is
//! owned here. So applying the same config twice changes nothing (no thread
//! restarted, no socket reopened, no queued frame lost), whatever leaves the
//! config is stopped and closed, and a step that failed is retried on the next
//! apply without disturbing what already runs. Forwarding threads only read
//! what the control thread publishes ([`crate::shared::Shared`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use arc_swap::ArcSwap;
use netslice_dataplane::{Carrier, HEADROOM, LabelField, Registry, Tables};
use netslice_io::netns;
use netslice_io::packet::PacketSocket;
use netslice_io::sock::Socket;
use netslice_io::tap::Tap;
use netslice_model::api::{ApplyError, NodeConfig};
use netslice_pipeline::egress::PortKey;
use netslice_pipeline::impair::DELAY_QUEUE;
use netslice_pipeline::plan::{NodeInfo, plan, start_program};

use netslice_model::{NodeName, PhysLinkName, PortNo, SliceName};

use crate::desired::{self, Desired, Facts, PollerKey, WorkerPlan};
use crate::egress::{DelayDriver, PortDevice, PortDriver};
use crate::neigh::Neighbours;
use crate::plane::{Plane, Program, WorkerQueues};
pub use crate::problem::Problem;
use crate::rx::{EtherDev, PollDev, PortSet, Role, SockDev, XskDev, receive};
use crate::shared::{IpCarrier, Shared};
use crate::slicerx::{self, SliceRxs};
use crate::slivers::Slivers;
use crate::threads::{ThreadKey, Threads};
use crate::workers::{QUEUE_BATCHES, worker};
use crate::xsk::{IoMode, XskPort};

/// What the control thread publishes after each apply, for reports.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Problems of the last apply.
    pub problems: Vec<Problem>,
    /// The substrate I/O in use.
    pub backend: String,
    /// How frames are spread over threads and CPUs.
    pub forwarding: Forwarding,
    /// Threads started since the agent began.
    pub threads_started: u64,
    /// Sockets and devices opened since the agent began.
    pub opened: u64,
    /// The forwarding threads running, by name.
    pub threads: Vec<String>,
}

impl Status {
    /// The problems the manager is told of.
    pub fn reported(&self) -> Vec<ApplyError> {
        self.problems.iter().filter(|p| p.reported()).map(Problem::to_api).collect()
    }
}

/// How frames are spread over threads and CPUs, for reports; the frame
/// counts of dedicated slices' own sockets are read when it is shown.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    head: String,
    slices: Vec<DedicatedSlice>,
    problems: Vec<String>,
}

/// A slice with CPUs of its own: its CPUs, and its own sockets' link types
/// and frame counters.
type DedicatedSlice = (SliceName, Vec<usize>, Vec<(String, Arc<AtomicU64>)>);

impl std::fmt::Display for Forwarding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.head)?;
        for (slice, cpus, own) in &self.slices {
            write!(f, "; {slice} on CPUs {cpus:?}")?;
            if !own.is_empty() {
                let own: Vec<String> = own
                    .iter()
                    .map(|(ty, n)| format!("own {ty} socket: {} frames", n.load(Ordering::Relaxed)))
                    .collect();
                write!(f, " ({})", own.join(", "))?;
            }
        }
        for p in &self.problems {
            write!(f, "; {p}")?;
        }
        Ok(())
    }
}

/// How the control thread is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Network namespace of the host's data plane (`None`: this one).
    pub netns: Option<String>,
    /// Buffer length after the headroom.
    pub buf_len: usize,
    /// Substrate I/O.
    pub io: IoMode,
    /// Shared workers.
    pub workers: usize,
    /// Where the sliver ledger lives.
    pub state_dir: std::path::PathBuf,
    /// Serve links by their share of forwarding work when a forwarding
    /// thread falls behind (see [`netslice_pipeline::dispatch::cpu_share`]).
    pub cpu_shares: bool,
}

/// The single owner of the agent's data plane.
#[derive(Debug)]
pub struct Control {
    shared: Arc<Shared>,
    setup: Setup,
    facts: Facts,
    pass: Option<Arc<netslice_io::xdp::PassMap>>,
    threads: Threads,
    slivers: Slivers,
    ports: BTreeMap<PortKey, Arc<PortDriver>>,
    delays: BTreeMap<PhysLinkName, Arc<DelayDriver>>,
    programs: BTreeMap<(SliceName, NodeName), (NodeInfo, Arc<Program>)>,
    ether: BTreeMap<String, Arc<PacketSocket>>,
    xsk: BTreeMap<String, Arc<XskPort>>,
    xsk_failed: BTreeMap<String, String>,
    workers: BTreeMap<Option<SliceName>, (WorkerPlan, Arc<WorkerQueues>, u64)>,
    /// Worker sets started so far (each set's threads carry its number).
    worker_sets: u64,
    pollers: BTreeMap<PollerKey, Arc<PortSet>>,
    slice_rx: SliceRxs,
    neighbours: Neighbours,
    opened: u64,
    status: Arc<ArcSwap<Status>>,
}

/// Largest packet the data plane handles: a TCP super-frame (an IP packet of
/// 64 KiB) with room for encapsulation, or the largest physical MTU allowed.
pub const MAX_FRAME: usize = {
    let phys = netslice_model::substrate::MAX_LINK_MTU as usize + 64;
    let sup = netslice_dataplane::gso::MAX_SUPER + 64;
    if phys > sup { phys } else { sup }
};

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

/// Opens a socket for every IP carrier of the registered link types.
fn open_carriers(registry: &Registry, netns: Option<&str>) -> netslice_io::Result<Vec<IpCarrier>> {
    let mut carriers: Vec<(Carrier, u16, Option<LabelField>)> = Vec::new();
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
    in_host_ns(netns, open)
}

impl Control {
    /// Opens the carriers' sockets in the host's namespace and starts their
    /// receivers and the timer.
    pub fn start(registry: Arc<Registry>, setup: Setup) -> Result<Control, crate::AgentError> {
        let carriers = open_carriers(&registry, setup.netns.as_deref())?;
        let opened = carriers.len() as u64;
        let shared = Arc::new(Shared::new(carriers, registry, HEADROOM + setup.buf_len, setup.cpu_shares));
        let cpus = netslice_io::cpu::allowed().unwrap_or_default();
        shared.cpus.set(crate::cpus::CpuSets { shared: cpus.clone(), slices: BTreeMap::new() });
        let pass = match setup.io {
            IoMode::Sockets => None,
            _ => match netslice_io::xdp::PassMap::new() {
                Ok(m) => Some(Arc::new(m)),
                Err(e) => {
                    tracing::warn!("{e}: AF_XDP will take dedicated slices' frames into the shared rings");
                    None
                }
            },
        };
        let mut threads = Threads::default();
        for k in 0..shared.carriers.len() {
            let s = shared.clone();
            threads
                .ensure(ThreadKey::Carrier(k), move |stop| {
                    let c = &s.carriers[k];
                    let mut dev = SockDev::new(&c.sock, c.carrier, c.link_type);
                    receive(&s, &mut dev, &stop, Role::Substrate);
                })
                .map_err(crate::AgentError::Threads)?;
        }
        let s = shared.clone();
        threads.ensure(ThreadKey::Timer, move |stop| s.timer.run(&*s, &stop)).map_err(crate::AgentError::Threads)?;
        let s = shared.clone();
        threads
            .ensure(ThreadKey::Probes, move |stop| {
                let mut dev = crate::probes::ProbeDev::new();
                receive(&s, &mut dev, &stop, Role::Ports(None));
            })
            .map_err(crate::AgentError::Threads)?;
        let facts = Facts { cpus, workers: setup.workers, io: setup.io };
        Ok(Control {
            slivers: Slivers::load(&setup.state_dir),
            shared,
            setup,
            facts,
            pass,
            threads,
            ports: BTreeMap::new(),
            delays: BTreeMap::new(),
            programs: BTreeMap::new(),
            ether: BTreeMap::new(),
            xsk: BTreeMap::new(),
            xsk_failed: BTreeMap::new(),
            workers: BTreeMap::new(),
            worker_sets: 0,
            pollers: BTreeMap::new(),
            slice_rx: SliceRxs::default(),
            neighbours: Neighbours::default(),
            opened,
            status: Arc::new(ArcSwap::from_pointee(Status::default())),
        })
    }

    /// What the last apply left, updated after every apply.
    pub fn status(&self) -> Arc<ArcSwap<Status>> {
        self.status.clone()
    }

    /// The state every forwarding thread reads.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Makes the host match `cfg`: slivers, then the data plane. Returns the
    /// problems met (also published in [`Control::status`]).
    pub fn apply(&mut self, cfg: &NodeConfig) -> Vec<Problem> {
        let started = std::time::Instant::now();
        let mut problems = Vec::new();
        let desired = desired::plan(cfg, &self.shared.registry, &self.facts);
        let (taps, sliver_errors) = self.slivers.apply(cfg, &desired.cpus);
        problems.extend(sliver_errors);
        problems.extend(
            desired
                .missing_cpus
                .iter()
                .map(|(slice, cpus)| Problem::MissingCpus { slice: slice.clone(), cpus: cpus.clone() }),
        );
        problems.extend(self.sync_ether(&desired, cfg));
        problems.extend(self.sync_xsk(&desired, cfg));
        // Before any frame of this config is sent: see `neigh` for why.
        for p in self.neighbours.sync(self.setup.netns.as_deref(), &cfg.underlay) {
            tracing::warn!("no permanent neighbour entry (the peer is resolved by ARP): {p}");
        }
        problems.extend(self.sync_data_plane(cfg, &desired, &taps));
        problems.extend(self.sync_pollers(&desired, &taps));
        let status = Status {
            backend: self.backend(),
            forwarding: self.forwarding(&problems),
            threads_started: self.threads.started(),
            opened: self.opened + self.slivers.opened + self.slice_rx.opened,
            threads: self.threads.keys().map(|k| k.to_string()).collect(),
            problems: problems.clone(),
        };
        self.status.store(Arc::new(status));
        tracing::info!(
            "applied revision {}: {} slivers, {} port rules, {} label rules, {} problems in {:?}",
            cfg.revision,
            cfg.slivers.len(),
            cfg.ports.len(),
            cfg.labels.len(),
            problems.len(),
            started.elapsed()
        );
        problems
    }

    /// Packet sockets (and their receivers) on exactly the interfaces that
    /// need them.
    fn sync_ether(&mut self, desired: &Desired, cfg: &NodeConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        let gone: Vec<String> = self.ether.keys().filter(|i| !desired.ether.contains(*i)).cloned().collect();
        for i in gone {
            self.threads.stop(&ThreadKey::Ether(i.clone()));
            self.ether.remove(&i);
        }
        let ethertypes: Vec<u16> = self
            .shared
            .registry
            .links()
            .filter_map(|(_, l)| match l.carrier() {
                Carrier::Ethernet(et) => Some(et),
                _ => None,
            })
            .collect();
        for ifname in &desired.ether {
            if self.ether.contains_key(ifname) {
                continue;
            }
            let (name, ets) = (ifname.clone(), ethertypes.clone());
            let open = move || -> netslice_io::Result<PacketSocket> {
                let s = PacketSocket::bind(&name)?;
                s.filter_ethertypes(&ets)?;
                Ok(s)
            };
            match in_host_ns(self.setup.netns.as_deref(), open) {
                Ok(sock) => {
                    self.opened += 1;
                    let sock = Arc::new(sock);
                    let (s, so) = (self.shared.clone(), sock.clone());
                    let started = self.threads.ensure(ThreadKey::Ether(ifname.clone()), move |stop| {
                        let mut dev = EtherDev::new(&s, so);
                        receive(&s, &mut dev, &stop, Role::Substrate);
                    });
                    match started {
                        Ok(()) => {
                            self.ether.insert(ifname.clone(), sock);
                        }
                        Err(e) => problems.push(Problem::Thread {
                            what: ThreadKey::Ether(ifname.clone()).to_string(),
                            message: e.to_string(),
                        }),
                    }
                }
                Err(e) => {
                    problems.push(Problem::PacketSocket { ifname: ifname.clone(), message: e.to_string() });
                }
            }
        }
        let socks = cfg.underlay.iter().map(|u| self.ether.get(&u.ifname).cloned()).collect();
        self.shared.ether.store(Arc::new(socks));
        problems
    }

    /// AF_XDP (and its receiver) on exactly the interfaces that should have
    /// it.
    fn sync_xsk(&mut self, desired: &Desired, cfg: &NodeConfig) -> Vec<Problem> {
        let gone: Vec<String> = self.xsk.keys().filter(|i| !desired.xsk.contains(*i)).cloned().collect();
        for i in gone {
            self.threads.stop(&ThreadKey::Xsk(i.clone()));
            self.xsk.remove(&i);
        }
        // Where AF_XDP is optional (`auto`) an interface where it failed is
        // served by the sockets from then on; where it is required (`xdp`)
        // the failure is a problem, tried again at every apply.
        if self.setup.io == IoMode::Xdp {
            self.xsk_failed.clear();
        } else {
            self.xsk_failed.retain(|i, _| desired.xsk.contains(i));
        }
        let filter = crate::xsk::filter(&self.shared.registry);
        for u in cfg.underlay.iter().filter(|u| desired.xsk.contains(&u.ifname)) {
            if self.xsk.contains_key(&u.ifname) || self.xsk_failed.contains_key(&u.ifname) {
                continue;
            }
            let (f, link, pass) = (filter.clone(), u.clone(), self.pass.clone());
            let open = move || XskPort::open(&link, &f, pass.as_deref());
            match in_host_ns(self.setup.netns.as_deref(), open) {
                Ok(x) => {
                    self.opened += 1;
                    let x = Arc::new(x);
                    let (s, xp) = (self.shared.clone(), x.clone());
                    let started = self.threads.ensure(ThreadKey::Xsk(u.ifname.clone()), move |stop| {
                        let mut dev = XskDev::new(&s, xp);
                        receive(&s, &mut dev, &stop, Role::Substrate);
                    });
                    match started {
                        Ok(()) => {
                            tracing::info!("AF_XDP ({} XDP, copy mode) on {}", x.xsk.mode(), u.ifname);
                            self.xsk.insert(u.ifname.clone(), x);
                        }
                        Err(e) => {
                            self.xsk_failed.insert(u.ifname.clone(), format!("cannot start the AF_XDP receiver: {e}"));
                        }
                    }
                }
                Err(e) => {
                    if self.setup.io == IoMode::Xdp {
                        tracing::error!("AF_XDP on {}: {e}", u.ifname);
                    } else {
                        tracing::warn!("AF_XDP on {}: {e}; using sockets there", u.ifname);
                    }
                    self.xsk_failed.insert(u.ifname.clone(), e.to_string());
                }
            }
        }
        let ports = cfg.underlay.iter().map(|u| self.xsk.get(&u.ifname).cloned()).collect();
        self.shared.xsk.store(Arc::new(ports));
        if self.setup.io != IoMode::Xdp {
            return Vec::new();
        }
        self.xsk_failed.iter().map(|(i, e)| Problem::Xdp { ifname: i.clone(), message: e.clone() }).collect()
    }

    /// Tables, node programs, egress ports, delay lines, workers and the
    /// dedicated slices' receive sockets; one new plane published.
    fn sync_data_plane(
        &mut self,
        cfg: &NodeConfig,
        desired: &Desired,
        taps: &BTreeMap<PortNo, Arc<Tap>>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        let now = self.shared.clock.now();
        let old = self.shared.plane.load_full();
        let clock = netslice_dataplane::WallClock { now, unix_ms: unix_ms() };
        let tables = Tables::build(cfg, Some(&old.pipe.tables), &self.shared.registry, clock);
        problems.extend(tables.errors.iter().map(|e| Problem::Rule(e.clone())));
        // Fast-path nodes: those whose config is unchanged keep running, with
        // what they learned.
        let mut old_programs = std::mem::take(&mut self.programs);
        for s in cfg.slivers.iter().filter(|s| s.fast_path) {
            let key = (s.slice.clone(), s.node.clone());
            if let Some(p) = old_programs.remove(&key).filter(|(info, _)| info.config == *s) {
                self.programs.insert(key, p);
                continue;
            }
            match start_program(&self.shared.registry, s) {
                Ok(Some(p)) => {
                    tracing::info!("started {} node {}/{}", s.node_type, s.slice, s.node);
                    self.programs.insert(key, (NodeInfo::of(s), Arc::new(std::sync::Mutex::new(p))));
                }
                Ok(None) => {}
                Err(error) => problems.push(Problem::Program { slice: key.0, node: key.1, error }),
            }
        }
        let (nodes, programs): (Vec<NodeInfo>, Vec<Arc<Program>>) =
            self.programs.values().map(|(i, p)| (i.clone(), p.clone())).unzip();
        let tap = |p: PortNo| taps.get(&p).map(|t| t.offload());
        let planned = plan(cfg, tables, &tap, nodes);
        // Ports: those that stay (same device) are reconfigured in place.
        let mut old_ports = std::mem::take(&mut self.ports);
        let mut ports = Vec::new();
        // Ports whose device changed: emptied once no plane names them.
        let mut replaced = Vec::new();
        for p in &planned.ports {
            let device = match &p.key {
                PortKey::Tap(port) => match taps.get(port) {
                    Some(t) => PortDevice::Tap(t.clone()),
                    None => continue,
                },
                PortKey::Underlay(_) => match p.kind {
                    netslice_pipeline::PortKind::Underlay { index, mtu } => {
                        PortDevice::Underlay { index, mtu: AtomicUsize::new(mtu) }
                    }
                    _ => continue,
                },
            };
            let driver = match old_ports.remove(&p.key) {
                // Same device: reconfigured in place, its queues stay.
                Some(d) if same_device(&d.device, &device) => {
                    if let (PortDevice::Underlay { mtu, .. }, PortDevice::Underlay { mtu: new, .. }) =
                        (&d.device, &device)
                    {
                        mtu.store(new.load(Ordering::Relaxed), Ordering::Relaxed);
                    }
                    d
                }
                Some(d) => {
                    replaced.push(d);
                    Arc::new(PortDriver::new(p, device, now))
                }
                None => Arc::new(PortDriver::new(p, device, now)),
            };
            self.shared.pool.give(driver.configure(p, now));
            self.ports.insert(p.key.clone(), driver.clone());
            ports.push(driver);
        }
        let pipe = planned.resolve(|id, key| ports.get(id.index()).and_then(|d| d.class_of(key)));
        // Delay lines: kept (with what they hold) while their link delays.
        let mut old_delays = std::mem::take(&mut self.delays);
        let mut by_index: Vec<Option<Arc<DelayDriver>>> = vec![None; cfg.underlay.len()];
        let mut moved = Vec::new();
        for (name, &(index, delay)) in &desired.delays {
            let d = match old_delays.remove(name) {
                Some(d) if d.underlay == index => {
                    if d.delay() != delay {
                        d.set_delay(delay);
                    }
                    d
                }
                Some(d) => {
                    // The link moved in the config: its line is retired after
                    // the swap (what it held is lost).
                    moved.push((name.clone(), d));
                    Arc::new(DelayDriver::new(index, delay, DELAY_QUEUE))
                }
                None => Arc::new(DelayDriver::new(index, delay, DELAY_QUEUE)),
            };
            by_index[index] = Some(d.clone());
            self.delays.insert(name.clone(), d);
        }
        // Workers: new sets start before the plane names them.
        let retired = self.sync_workers(desired, &mut problems);
        self.shared.cpus.set(desired.cpus.clone());
        let steer: Vec<Option<Arc<WorkerQueues>>> = pipe
            .tables
            .rules()
            .iter()
            .map(|r| {
                let own = self.workers.get(&Some(r.key.slice.clone()));
                own.or_else(|| self.workers.get(&None)).map(|(_, q, _)| q.clone())
            })
            .collect();
        let mut pipe = pipe;
        pipe.tables.hash_flows = steer.iter().any(Option::is_some);
        self.shared.delays.store(Arc::new(by_index));
        self.shared.plane.store(Arc::new(Plane { pipe, ports, programs, steer }));
        // Delay lines of links that stopped delaying send what they hold.
        for (name, d) in old_delays.into_iter().chain(moved) {
            self.flush_delay(&name, &d, cfg);
        }
        // Dedicated slices' own receive sockets.
        let want = slicerx::wanted(cfg, &self.shared.registry, &self.shared.carriers, &desired.cpus.slices);
        let netns = self.setup.netns.clone();
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
        let slice_problems = slicerx::sync(
            &self.shared,
            &mut self.threads,
            &mut self.slice_rx,
            &want,
            &desired.cpus.slices,
            self.pass.as_deref(),
            &open,
        );
        for p in slice_problems {
            tracing::warn!("{p}");
            problems.push(Problem::SliceRx(p));
        }
        // Retired workers forward what is queued for them, then stop.
        for key in retired {
            self.stop_workers(key);
        }
        // Ports no longer used, or on a device that changed: queued packets
        // are dropped, buffers recycled.
        for d in old_ports.into_values().chain(replaced) {
            self.shared.pool.give(d.drain());
        }
        problems
    }

    /// Sends what the delay line of link `name` holds now, if the link is
    /// still where it was (it stopped delaying); else drops it (the link is
    /// gone or moved).
    fn flush_delay(&self, name: &str, d: &DelayDriver, cfg: &NodeConfig) {
        let stays = cfg.underlay.get(d.underlay).is_some_and(|u| u.name == name);
        let mut pkts = d.retire(stays);
        if stays {
            use crate::egress::Transmit;
            self.shared.transmit_delayed(d.underlay, &mut pkts);
        }
        self.shared.pool.give(pkts.into_iter().map(|p| p.buf));
    }

    /// Starts the worker sets wanted that do not run (or run on other CPUs);
    /// returns the sets to stop once no plane names them.
    fn sync_workers(&mut self, desired: &Desired, problems: &mut Vec<Problem>) -> Vec<u64> {
        let mut retired = Vec::new();
        let stale: Vec<Option<SliceName>> = self
            .workers
            .iter()
            .filter(|(k, (plan, _, _))| desired.workers.get(*k) != Some(plan))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some((_, _, generation)) = self.workers.remove(&k) {
                retired.push(generation);
            }
        }
        for (key, plan) in &desired.workers {
            if self.workers.contains_key(key) {
                continue;
            }
            self.worker_sets += 1;
            let generation = self.worker_sets;
            let mut queues = Vec::new();
            let mut failed = None;
            for (k, cpu) in plan.cpus.iter().copied().enumerate() {
                let (tx, rx) = sync_channel(QUEUE_BATCHES);
                let s = self.shared.clone();
                let tkey = match key {
                    None => ThreadKey::Worker(generation, k),
                    Some(slice) => ThreadKey::SliceWorker(slice.clone(), generation, k),
                };
                if let Err(e) = self.threads.ensure(tkey, move |stop| worker(&s, &stop, &rx, cpu)) {
                    failed = Some(e);
                    break;
                }
                queues.push(tx);
            }
            match failed {
                None => {
                    let q = WorkerQueues { slice: key.clone(), queues };
                    self.workers.insert(key.clone(), (plan.clone(), Arc::new(q), generation));
                }
                Some(e) => {
                    self.stop_workers(generation);
                    let what = key.as_deref().map_or("shared workers".to_string(), |s| format!("{s}: workers"));
                    problems.push(Problem::Thread { what, message: e.to_string() });
                }
            }
        }
        retired
    }

    /// Stops the threads of worker set `generation`; each forwards what is
    /// queued for it first.
    fn stop_workers(&mut self, generation: u64) {
        self.threads.stop_where(|t| match t {
            ThreadKey::Worker(g, _) | ThreadKey::SliceWorker(_, g, _) => *g == generation,
            _ => false,
        });
    }

    /// Pollers for exactly the sliver ports of the config, on the CPUs each
    /// may use.
    fn sync_pollers(&mut self, desired: &Desired, taps: &BTreeMap<PortNo, Arc<Tap>>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let thread_of = |k: &PollerKey| match k {
            PollerKey::Shared(i) => ThreadKey::Poller(*i),
            PollerKey::Slice(s) => ThreadKey::SlicePoller(s.clone()),
        };
        // Pollers not wanted: their ports leave, then they stop.
        let gone: Vec<PollerKey> = self.pollers.keys().filter(|k| !desired.pollers.contains_key(*k)).cloned().collect();
        for k in gone {
            if let Some(set) = self.pollers.remove(&k) {
                set.sync(&BTreeMap::new());
            }
            self.threads.stop(&thread_of(&k));
        }
        // Ports leave their old pollers before they join new ones.
        for (k, set) in &self.pollers {
            let want: BTreeMap<PortNo, Arc<Tap>> = set
                .members()
                .iter()
                .filter(|(p, _)| desired.pollers.get(k).is_some_and(|ports| ports.contains(p)))
                .map(|(p, t)| (*p, t.clone()))
                .collect();
            problems.extend(set.sync(&want).into_iter().map(Problem::Poller));
        }
        for (k, ports) in &desired.pollers {
            let set = match self.pollers.get(k) {
                Some(s) => s.clone(),
                None => match PortSet::new() {
                    Ok(s) => {
                        self.opened += 1;
                        let s = Arc::new(s);
                        self.pollers.insert(k.clone(), s.clone());
                        s
                    }
                    Err(e) => {
                        problems.push(Problem::Poller(format!("no poller for ports {ports:?}: {e}")));
                        continue;
                    }
                },
            };
            let want: BTreeMap<PortNo, Arc<Tap>> =
                ports.iter().filter_map(|p| taps.get(p).map(|t| (*p, t.clone()))).collect();
            problems.extend(set.sync(&want).into_iter().map(Problem::Poller));
            let (s, st) = (self.shared.clone(), set.clone());
            let slice = match k {
                PollerKey::Slice(s) => Some(s.clone()),
                PollerKey::Shared(_) => None,
            };
            let started = self.threads.ensure(thread_of(k), move |stop| {
                let mut dev = PollDev::new(st);
                receive(&s, &mut dev, &stop, Role::Ports(slice));
            });
            if let Err(e) = started {
                problems.push(Problem::Thread { what: thread_of(k).to_string(), message: e.to_string() });
            }
        }
        problems
    }

    /// The substrate I/O in use, for reports: e.g.
    /// `af_xdp(native,copy)+raw-ip+udp(gso,gro)+af_packet`; the UDP socket's
    /// offloads in parentheses (`gso` goes once the kernel refuses a send).
    fn backend(&self) -> String {
        let udp = self.shared.carriers.iter().find(|c| matches!(c.carrier, Carrier::Udp(_))).map(|c| &c.sock);
        let offloads: Vec<&str> =
            [("gso", udp.is_some_and(|s| s.segments_ok())), ("gro", udp.is_some_and(|s| s.gro()))]
                .into_iter()
                .filter_map(|(n, on)| on.then_some(n))
                .collect();
        let udp = if offloads.is_empty() { "udp".to_string() } else { format!("udp({})", offloads.join(",")) };
        let sockets = format!("raw-ip+{udp}+af_packet");
        match self.xsk.values().next() {
            None => sockets,
            Some(x) if self.xsk_failed.is_empty() => format!("af_xdp({},copy)+{sockets}", x.xsk.mode()),
            Some(x) => format!(
                "af_xdp({},copy) on {} of {} links+{sockets}",
                x.xsk.mode(),
                self.xsk.len(),
                self.xsk.len() + self.xsk_failed.len()
            ),
        }
    }

    /// How frames are spread over threads and CPUs, for reports.
    fn forwarding(&self, problems: &[Problem]) -> Forwarding {
        let mut head = match self.workers.get(&None) {
            None => "inline (each receiving thread forwards)".to_string(),
            Some((plan, _, _)) => format!("{} workers (flow hash)", plan.cpus.len()),
        };
        if !self.pollers.is_empty() {
            let ports: usize = self.pollers.values().map(|p| p.members().len()).sum();
            head.push_str(&format!("; {ports} sliver ports on {} pollers", self.pollers.len()));
        }
        let slices = self
            .workers
            .iter()
            .filter_map(|(k, (plan, _, _))| k.as_ref().map(|k| (k, plan)))
            .map(|(slice, plan)| {
                let cpus: Vec<usize> = plan.cpus.iter().flatten().copied().collect();
                let own = slicerx::describe(&self.slice_rx, slice, &self.shared.registry, &self.shared.carriers);
                (slice.clone(), cpus, own)
            })
            .collect();
        let problems = problems
            .iter()
            .filter(|p| matches!(p, Problem::MissingCpus { .. } | Problem::SliceRx(_) | Problem::Thread { .. }))
            .map(|p| p.to_string())
            .collect();
        Forwarding { head, slices, problems }
    }

    /// Stops every thread (the agent is stopping; slivers keep running).
    pub fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.shared.timer.nudge();
        slicerx::stop_all(&self.shared.carriers, &mut self.threads, &mut self.slice_rx);
        self.threads.stop_where(|_| true);
        self.shared.xsk.store(Arc::new(Vec::new()));
    }
}

fn same_device(a: &PortDevice, b: &PortDevice) -> bool {
    match (a, b) {
        // (A changed MTU is stored into the port that stays.)
        (PortDevice::Underlay { index: i, .. }, PortDevice::Underlay { index: j, .. }) => i == j,
        (PortDevice::Tap(t), PortDevice::Tap(u)) => Arc::ptr_eq(t, u),
        _ => false,
    }
}

/// Unix time now, milliseconds.
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}
