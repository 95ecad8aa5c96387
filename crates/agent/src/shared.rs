//! State every forwarding thread reads: the plane in force, the substrate
//! sockets, the buffer pool, the clock, the timer and the CPU map. Only the
//! control thread changes what is behind the `ArcSwap`s.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use netslice_dataplane::{Carrier, Registry, TypeIdx};
use netslice_io::packet::PacketSocket;
use netslice_io::sock::Socket;

use crate::cpus::CpuMap;
use crate::egress::{DelayDriver, Timer};
use crate::plane::Plane;
use crate::pool::{Clock, Pool};
use crate::xsk::XskPort;

/// A socket of an IP carrier, and the link type it brings in.
#[derive(Debug)]
pub(crate) struct IpCarrier {
    /// The carrier.
    pub(crate) carrier: Carrier,
    /// Link type of what arrives on it.
    pub(crate) link_type: TypeIdx,
    /// The socket.
    pub(crate) sock: Socket,
    /// UDP carriers: a second socket, without UDP checksums, for payloads the
    /// IP layer must fragment (super-frames).
    pub(crate) unchecked: Option<Socket>,
    /// UDP carriers whose link type locates its label: the selector of the
    /// port's `SO_REUSEPORT` group (dedicated slices' sockets join it).
    pub(crate) steer: Option<netslice_io::reuseport::ReuseportSteer>,
}

/// State shared by every forwarding thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Tables, routes, ports and programs.
    pub(crate) plane: ArcSwap<Plane>,
    /// Sockets of the IP carriers (opened once, at start).
    pub(crate) carriers: Vec<IpCarrier>,
    /// Packet sockets of the physical interfaces, by underlay link index.
    pub(crate) ether: ArcSwap<Vec<Option<Arc<PacketSocket>>>>,
    /// AF_XDP sockets of the physical interfaces, by underlay link index.
    pub(crate) xsk: ArcSwap<Vec<Option<Arc<XskPort>>>>,
    /// Delay lines of the physical links that delay, by underlay link index.
    pub(crate) delays: ArcSwap<Vec<Option<Arc<DelayDriver>>>>,
    /// Node and link types.
    pub(crate) registry: Arc<Registry>,
    /// Packet buffers.
    pub(crate) pool: Pool,
    /// The clock the pipeline runs on.
    pub(crate) clock: Clock,
    /// Wake-ups of throttled ports and delay lines.
    pub(crate) timer: Timer,
    /// CPUs the forwarding threads may use.
    pub(crate) cpus: CpuMap,
    /// Set to stop every thread (the agent is stopping).
    pub(crate) shutdown: AtomicBool,
    /// Whether forwarding threads serve links by their share of forwarding
    /// work when they fall behind (`--cpu-shares`).
    pub(crate) cpu_shares: bool,
    /// What the STAMP endpoints measured, by job (the probe driver
    /// publishes; reports read).
    pub(crate) probe_reports: std::sync::Mutex<std::collections::BTreeMap<u64, netslice_model::api::TapReport>>,
}

impl Shared {
    /// Empty tables, the given carrier sockets, buffers of `buf_len` bytes.
    pub(crate) fn new(carriers: Vec<IpCarrier>, registry: Arc<Registry>, buf_len: usize, cpu_shares: bool) -> Shared {
        Shared {
            plane: ArcSwap::from_pointee(Plane::default()),
            carriers,
            ether: ArcSwap::from_pointee(Vec::new()),
            xsk: ArcSwap::from_pointee(Vec::new()),
            delays: ArcSwap::from_pointee(Vec::new()),
            registry,
            pool: Pool::new(buf_len),
            clock: Clock::new(),
            timer: Timer::default(),
            cpus: CpuMap::default(),
            shutdown: AtomicBool::new(false),
            cpu_shares,
            probe_reports: Default::default(),
        }
    }

    /// The index of the carrier socket of `carrier`.
    pub(crate) fn carrier_index(&self, carrier: Carrier) -> Option<usize> {
        self.carriers.iter().position(|c| c.carrier == carrier)
    }
}
