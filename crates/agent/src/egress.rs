//! Egress ports: every place the agent transmits (a physical link, a sliver's
//! TAP) has a hierarchical scheduler (`netslice-qos`) between the redirector and
//! the wire, so that a slice can use neither another slice's guarantee nor its
//! queue.
//!
//! The model is the kernel's qdisc: the thread that enqueues also runs the
//! scheduler (dequeue what may go now, transmit it) unless another thread is
//! already running it, so an unthrottled port costs no thread hand-off. When
//! packets wait for tokens, the port registers its next wake-up with one timer
//! thread, which runs the port then. Nothing busy-waits.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddrV4;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use netslice_dataplane::{Counters, DropReason, GsoInfo};
use netslice_io::tap::Tap;
use netslice_model::api::Direction;
use netslice_qos::sched::{ClassConfig, Discipline, LinkId, QueueLimits, Scheduler, SliceId};

/// Most packets one scheduler run transmits before re-checking the clock.
const RUN_BATCH: usize = 64;
/// Buffers kept in the pool at most.
const POOL_MAX: usize = 2048;

/// The agent's monotonic clock in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock(Instant::now())
    }

    /// Nanoseconds since the clock started.
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Recycled packet buffers, so the forwarding path does not allocate per packet.
#[derive(Debug)]
pub struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    len: usize,
}

impl Pool {
    /// Buffers of `len` bytes.
    pub fn new(len: usize) -> Pool {
        Pool { free: Mutex::new(Vec::new()), len }
    }

    /// Buffer length.
    pub fn buf_len(&self) -> usize {
        self.len
    }

    /// Replaces every empty buffer in `bufs` with a pooled (or new) one.
    pub fn refill(&self, bufs: &mut [Vec<u8>]) {
        let mut free = self.free.lock().expect("pool lock");
        for b in bufs.iter_mut().filter(|b| b.len() != self.len) {
            *b = free.pop().unwrap_or_else(|| vec![0u8; self.len]);
        }
    }

    /// One buffer.
    pub fn take(&self) -> Vec<u8> {
        self.free.lock().expect("pool lock").pop().unwrap_or_else(|| vec![0u8; self.len])
    }

    /// Returns buffers.
    pub fn give(&self, bufs: impl IntoIterator<Item = Vec<u8>>) {
        let mut free = self.free.lock().expect("pool lock");
        for b in bufs {
            if free.len() < POOL_MAX && b.len() == self.len {
                free.push(b);
            }
        }
    }
}

/// A packet waiting at an egress port.
#[derive(Debug)]
pub struct Pkt {
    /// Its buffer (from the pool).
    pub buf: Vec<u8>,
    /// The bytes to transmit.
    pub range: Range<usize>,
    /// How to send it, for substrate ports.
    pub dst: Option<TxDst>,
    /// Counters of the rule that sent it (transmit errors are counted there).
    pub counters: Arc<Counters>,
    /// Set for a TCP super-frame carried whole.
    pub gso: Option<GsoInfo>,
    /// Bytes it takes on the wire (a super-frame: all its segments).
    pub wire: usize,
}

impl Pkt {
    /// A packet of `range` in `buf`, charged as its length.
    pub fn new(buf: Vec<u8>, range: Range<usize>, dst: Option<TxDst>, counters: Arc<Counters>) -> Pkt {
        let wire = range.len();
        Pkt { buf, range, dst, counters, gso: None, wire }
    }
}

/// How a substrate packet leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxDst {
    /// On IP carrier socket `sock` (an index into the agent's IP sockets) to `dst`.
    Ip {
        /// Socket index.
        sock: usize,
        /// Destination.
        dst: SocketAddrV4,
    },
    /// As a whole Ethernet frame on the physical link's interface.
    Ether,
}

/// Which class of an egress scheduler a rule's packets join.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClassKey {
    /// A shaped link's own queue.
    Link(String, String, Direction),
    /// The one shared queue of every policed link on the port.
    Policed,
}

/// What an egress port transmits on.
#[derive(Debug)]
pub enum EgressKind {
    /// A physical link (index into `NodeConfig::underlay`).
    Underlay {
        /// Index.
        index: usize,
        /// Link name.
        name: String,
        /// The link's MTU.
        mtu: usize,
    },
    /// A sliver's TAP.
    Tap {
        /// Port number.
        port: u32,
        /// The device.
        tap: Arc<Tap>,
    },
}

/// The scheduler of one port and what it knows about its classes.
#[derive(Debug)]
pub struct EgressState {
    /// The scheduler.
    pub sched: Scheduler<Pkt>,
    /// Someone is running the scheduler.
    running: bool,
    /// A timer wake-up is registered for this time.
    wake_at: Option<u64>,
    /// Class ids.
    pub classes: HashMap<ClassKey, LinkId>,
    /// Slice class ids (the policed class lives under the slice named "").
    pub slices: HashMap<String, SliceId>,
}

/// One egress port.
#[derive(Debug)]
pub struct Egress {
    /// What it transmits on.
    pub kind: EgressKind,
    /// Its scheduler.
    pub state: Mutex<EgressState>,
}

/// How a port transmits a batch; implemented by the forwarding plane.
pub trait Transmit {
    /// Sends a batch dequeued from `egress` and returns the buffers.
    fn transmit(&self, egress: &Egress, batch: Vec<Pkt>) -> Vec<Vec<u8>>;
    /// The clock.
    fn clock(&self) -> &Clock;
    /// The buffer pool.
    fn pool(&self) -> &Pool;
    /// The wake-up timer.
    fn timer(&self) -> &Timer;
    /// Called by the timer thread on every wake-up (the forwarding plane uses
    /// it to keep the thread on the CPUs it may use).
    fn timer_woke(&self) {}
}

impl Egress {
    /// A port of `rate` bytes/s with a `burst`-byte bucket, scheduling by DRR.
    pub fn new(kind: EgressKind, rate: u64, burst: u64, now: u64) -> Egress {
        let sched = Scheduler::new(rate.max(1), burst.max(1), Discipline::Drr { quantum: 1514 }, now)
            .expect("positive port rate and burst");
        Egress {
            kind,
            state: Mutex::new(EgressState {
                sched,
                running: false,
                wake_at: None,
                classes: HashMap::new(),
                slices: HashMap::new(),
            }),
        }
    }

    /// Queues packets on their classes; what does not fit is counted and its
    /// buffer returned. Then runs the scheduler unless someone else is.
    pub fn enqueue_and_run<T: Transmit>(self: &Arc<Self>, t: &T, pkts: Vec<(LinkId, Pkt)>) {
        let mut dropped = Vec::new();
        {
            let mut st = self.state.lock().expect("egress lock");
            for (class, p) in pkts {
                let len = p.wire.min(u32::MAX as usize) as u32;
                if let Err((p, _why)) = st.sched.enqueue(class, len, p) {
                    p.counters.dropped(DropReason::QueueFull);
                    dropped.push(p.buf);
                }
            }
        }
        if !dropped.is_empty() {
            t.pool().give(dropped);
        }
        self.run(t);
    }

    /// Runs the scheduler: transmits what may go now, in batches, until nothing
    /// may; registers a timer wake-up if packets still wait.
    pub fn run<T: Transmit>(self: &Arc<Self>, t: &T) {
        {
            let mut st = self.state.lock().expect("egress lock");
            if st.running {
                return;
            }
            st.running = true;
        }
        loop {
            let now = t.clock().now();
            let mut batch = Vec::with_capacity(RUN_BATCH);
            {
                let mut st = self.state.lock().expect("egress lock");
                while batch.len() < RUN_BATCH {
                    match st.sched.dequeue(now) {
                        Some((_, _, p)) => batch.push(p),
                        None => break,
                    }
                }
                if batch.is_empty() {
                    st.running = false;
                    if let Some(at) = st.sched.next_wakeup(now)
                        && st.wake_at.is_none_or(|w| at < w || w <= now)
                    {
                        st.wake_at = Some(at);
                        t.timer().schedule(at, Arc::downgrade(self));
                    }
                    return;
                }
            }
            let bufs = t.transmit(self, batch);
            t.pool().give(bufs);
        }
    }

    /// Clears the registered wake-up (the timer fired).
    fn woken(&self) {
        self.state.lock().expect("egress lock").wake_at = None;
    }
}

#[derive(Debug)]
struct Wake {
    at: u64,
    seq: u64,
    egress: Weak<Egress>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wake {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // A min-heap on time.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The one thread that runs throttled ports when their tokens are due.
#[derive(Debug, Default)]
pub struct Timer {
    heap: Mutex<(BinaryHeap<Wake>, u64)>,
    cv: Condvar,
}

impl Timer {
    /// Asks for `egress` to be run at `at` (clock nanoseconds).
    pub fn schedule(&self, at: u64, egress: Weak<Egress>) {
        let mut h = self.heap.lock().expect("timer lock");
        h.1 += 1;
        let seq = h.1;
        h.0.push(Wake { at, seq, egress });
        self.cv.notify_one();
    }

    /// The timer loop; returns when `stop` is set.
    pub fn run<T: Transmit>(&self, t: &T, stop: &AtomicBool) {
        let mut h = self.heap.lock().expect("timer lock");
        while !stop.load(Ordering::Relaxed) {
            t.timer_woke();
            let now = t.clock().now();
            match h.0.peek() {
                Some(w) if w.at <= now => {
                    let w = h.0.pop().expect("peeked");
                    drop(h);
                    if let Some(e) = w.egress.upgrade() {
                        e.woken();
                        e.run(t);
                    }
                    h = self.heap.lock().expect("timer lock");
                }
                Some(w) => {
                    let wait = Duration::from_nanos(w.at - now);
                    h = self.cv.wait_timeout(h, wait).expect("timer lock").0;
                }
                None => {
                    h = self.cv.wait_timeout(h, Duration::from_millis(200)).expect("timer lock").0;
                }
            }
        }
    }
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
