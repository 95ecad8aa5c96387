//! Egress ports: every place a host transmits (a physical link, a sliver's
//! interface) has a hierarchical scheduler (`netslice-qos`) between the
//! redirector and the wire, so that a slice can use neither another slice's
//! guarantee nor its queue.
//!
//! An [`EgressPort`] has quinn's shape: [`EgressPort::enqueue`] with `now`,
//! [`EgressPort::poll_transmit`] for what may leave at `now`, and
//! [`EgressPort::poll_timeout`] for when to come back. It is reconfigured in
//! place from a [`PortPlan`] ([`crate::plan`]), so packets queued in classes
//! that stay are kept.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::ops::Range;
use std::sync::Arc;

use netslice_dataplane::{Carrier, Counters, DropReason, GsoInfo};
use netslice_model::api::Direction;
use netslice_model::{LinkName, PhysLinkName, PortNo, SliceName};
use netslice_qos::Nanos;
use netslice_qos::sched::{ClassConfig, Discipline, LinkId, QueueLimits, Scheduler, SliceId};

/// DRR quantum of every port's scheduler, bytes (one Ethernet frame).
pub const QUANTUM: u32 = 1514;

/// A packet waiting at an egress port.
#[derive(Debug)]
pub struct Pkt {
    /// Its buffer.
    pub buf: Vec<u8>,
    /// The bytes to transmit.
    pub range: Range<usize>,
    /// How a substrate packet leaves (`None`: a frame for a sliver's interface).
    pub dst: Option<TxDst>,
    /// Counters of the rule that sent it (later drops are counted there).
    pub counters: Arc<Counters>,
    /// Set for a TCP super-frame carried whole.
    pub gso: Option<GsoInfo>,
    /// Bytes it takes on the wire (a super-frame: all its segments).
    pub wire: usize,
    /// When it joined its egress queue (what it waited is `now` minus this
    /// when it leaves).
    pub queued_at: Nanos,
}

impl Pkt {
    /// A packet of `range` in `buf`, charged as its length.
    pub fn new(buf: Vec<u8>, range: Range<usize>, dst: Option<TxDst>, counters: Arc<Counters>) -> Pkt {
        let wire = range.len();
        Pkt { buf, range, dst, counters, gso: None, wire, queued_at: 0 }
    }

    /// The bytes to transmit.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

/// How a substrate packet leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxDst {
    /// Through the carrier's socket (an IP protocol or a UDP port) to `dst`.
    Ip {
        /// The carrier ([`Carrier::IpProto`] or [`Carrier::Udp`]).
        carrier: Carrier,
        /// Next hop (the UDP port for UDP carriers, 0 for IP protocols).
        dst: SocketAddrV4,
    },
    /// As a whole Ethernet frame on the physical link's interface.
    Ether,
}

/// Identity of an egress port across reconfigurations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortKey {
    /// A physical link, by name.
    Underlay(PhysLinkName),
    /// A sliver's interface, by port number.
    Tap(PortNo),
}

/// What an egress port transmits on, as far as forwarding decisions care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A physical link.
    Underlay {
        /// Index in `NodeConfig::underlay`.
        index: usize,
        /// The link's MTU.
        mtu: usize,
    },
    /// A sliver's interface.
    Tap {
        /// Port number.
        port: PortNo,
        /// It takes TCP super-frames whole (a TAP with segmentation offload).
        offload: bool,
    },
}

/// Which class of a port's scheduler a rule's packets join.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClassKey {
    /// A shaped link's own queue: slice, virtual link, direction.
    Link(SliceName, LinkName, Direction),
    /// The one shared queue of every policed link on the port.
    Policed,
}

/// One class as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPlan {
    /// The slice class it hangs under (the empty name for the policed class).
    pub slice: SliceName,
    /// Rates (bytes/s), burst, weight.
    pub config: ClassConfig,
    /// Queue bounds.
    pub limits: QueueLimits,
    /// Bytes the port is charged per packet beyond the frame (encapsulation).
    pub overhead: u32,
}

/// What one egress port should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// Its identity.
    pub key: PortKey,
    /// What it transmits on.
    pub kind: PortKind,
    /// Port rate, bytes/s.
    pub rate: u64,
    /// Port bucket depth, bytes.
    pub burst: u64,
    /// Slice classes by slice (the empty name holds the policed class).
    pub slices: BTreeMap<SliceName, ClassConfig>,
    /// Link classes.
    pub classes: BTreeMap<ClassKey, ClassPlan>,
}

/// An egress port: a scheduler and the classes it has.
#[derive(Debug)]
pub struct EgressPort {
    kind: PortKind,
    sched: Scheduler<Pkt>,
    classes: BTreeMap<ClassKey, LinkId>,
    slices: BTreeMap<SliceName, SliceId>,
}

impl EgressPort {
    /// A port as `plan` says, with no classes yet (see [`EgressPort::configure`]).
    pub fn new(plan: &PortPlan, now: Nanos) -> EgressPort {
        let sched = Scheduler::new(plan.rate.max(1), plan.burst.max(1), Discipline::Drr { quantum: QUANTUM }, now)
            .expect("positive rate, burst and quantum");
        EgressPort { kind: plan.kind.clone(), sched, classes: BTreeMap::new(), slices: BTreeMap::new() }
    }

    /// What it transmits on.
    pub fn kind(&self) -> &PortKind {
        &self.kind
    }

    /// Makes the port match `plan` in place: rates change, classes come and go,
    /// queued packets of classes that stay are kept. Returns the packets of
    /// the classes removed (the caller recycles their buffers).
    pub fn configure(&mut self, plan: &PortPlan, now: Nanos) -> Vec<Pkt> {
        self.kind = plan.kind.clone();
        let _ = self.sched.set_port(plan.rate.max(1), plan.burst.max(1), now);
        for (slice, c) in &plan.slices {
            match self.slices.get(slice) {
                Some(&id) => {
                    let _ = self.sched.set_slice(id, *c, now);
                }
                None => {
                    if let Ok(id) = self.sched.add_slice(*c, now) {
                        self.slices.insert(slice.clone(), id);
                    }
                }
            }
        }
        for (key, c) in &plan.classes {
            let id = match self.classes.get(key) {
                Some(&id) => self.sched.set_link(id, c.config, c.limits, now).ok().map(|()| id),
                None => {
                    let slice = self.slices.get(&c.slice).copied();
                    slice.and_then(|s| self.sched.add_link(s, c.config, c.limits, now).ok())
                }
            };
            if let Some(id) = id {
                self.sched.set_overhead(id, c.overhead);
                self.classes.insert(key.clone(), id);
            }
        }
        let mut removed = Vec::new();
        let stale: Vec<ClassKey> = self.classes.keys().filter(|k| !plan.classes.contains_key(*k)).cloned().collect();
        for k in stale {
            if let Some(id) = self.classes.remove(&k) {
                removed.extend(unqueued(self.sched.remove_link(id)));
            }
        }
        let stale: Vec<SliceName> = self.slices.keys().filter(|s| !plan.slices.contains_key(*s)).cloned().collect();
        for s in stale {
            if let Some(id) = self.slices.remove(&s) {
                removed.extend(unqueued(self.sched.remove_slice(id)));
            }
        }
        removed
    }

    /// The scheduler class of `key`, once configured.
    pub fn class_of(&self, key: &ClassKey) -> Option<LinkId> {
        self.classes.get(key).copied()
    }

    /// Queues a packet on `class` at `now`; a full queue (or an unknown
    /// class) gives it back, counted as `queue_full` on its rule.
    // The refused packet goes back whole so its buffer is recycled; boxing it
    // would allocate per drop, under overload of all times.
    #[allow(clippy::result_large_err)]
    pub fn enqueue(&mut self, now: Nanos, class: LinkId, mut pkt: Pkt) -> Result<(), Pkt> {
        pkt.queued_at = now;
        let len = pkt.wire.min(u32::MAX as usize) as u32;
        // Counted as queued first (the scheduler owns it once it is in).
        pkt.counters.enqueued(pkt.wire);
        self.sched.enqueue(class, len, pkt).map_err(|(p, _why)| {
            p.counters.unqueued(p.wire);
            p.counters.dropped(DropReason::QueueFull);
            p
        })
    }

    /// Moves up to `max` packets that may leave at `now` into `out`, in
    /// order; returns how many.
    pub fn poll_transmit(&mut self, now: Nanos, max: usize, out: &mut Vec<Pkt>) -> usize {
        let mut n = 0;
        while n < max {
            match self.sched.dequeue(now) {
                Some((_, _, p)) => {
                    p.counters.dequeued(p.wire, now.saturating_sub(p.queued_at));
                    out.push(p);
                }
                None => break,
            }
            n += 1;
        }
        n
    }

    /// When packets still queued may leave (`None`: nothing is queued).
    pub fn poll_timeout(&mut self, now: Nanos) -> Option<Nanos> {
        self.sched.next_wakeup(now)
    }

    /// Packets queued.
    pub fn backlog(&self) -> usize {
        self.sched.backlog()
    }

    /// Removes every class and returns what was queued (the port is going).
    pub fn drain(&mut self) -> Vec<Pkt> {
        let mut out = Vec::new();
        for (_, id) in std::mem::take(&mut self.slices) {
            out.extend(unqueued(self.sched.remove_slice(id)));
        }
        self.classes.clear();
        out
    }
}

/// Packets taken out of a queue unsent: they leave their rules' queue gauges.
fn unqueued(pkts: Vec<Pkt>) -> impl Iterator<Item = Pkt> {
    pkts.into_iter().inspect(|p| p.counters.unqueued(p.wire))
}

/// Queue limits of a shaped link's class: room for a few bursts.
pub fn limits_for(burst: u64) -> QueueLimits {
    QueueLimits { bytes: (4 * burst).clamp(256 * 1024, 16 << 20), packets: 2048 }
}

/// Queue limits of the shared policed class.
pub const POLICED_LIMITS: QueueLimits = QueueLimits { bytes: 8 << 20, packets: 8192 };

/// A class config from bits per second.
pub fn class(rate_bps: u64, ceil_bps: u64, burst: u64, weight: u32) -> ClassConfig {
    let rate = rate_bps / 8;
    let ceil = (ceil_bps / 8).max(rate).max(1);
    ClassConfig { rate, ceil, burst: burst.max(1), weight: weight.max(1) }
}
