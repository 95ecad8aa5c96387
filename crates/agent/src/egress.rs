//! Egress drivers: the pipeline's egress ports ([`netslice_pipeline::EgressPort`])
//! and delay lines, shared by the forwarding threads, each behind its own
//! lock, and the one timer thread that runs them when they are due.
//!
//! The model is the kernel's qdisc: the thread that enqueues also runs the
//! port (takes what may leave now and transmits it) unless another thread is
//! already running it, so an unthrottled port costs no thread hand-off. When
//! packets wait for tokens, or in a delay line, the driver registers its next
//! wake-up with the timer thread, which runs it then. Nothing busy-waits.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use netslice_dataplane::DropReason;
use netslice_io::tap::Tap;
use netslice_pipeline::egress::{ClassKey, EgressPort, PortPlan};
use netslice_pipeline::{DelayLine, Pkt};
use netslice_qos::sched::LinkId;

use crate::pool::{Clock, Pool};

/// Most packets one run of a port transmits before re-checking the clock.
const RUN_BATCH: usize = 64;

/// What a port transmits on.
#[derive(Debug)]
pub(crate) enum PortDevice {
    /// A physical link (index into `NodeConfig::underlay`) of this MTU.
    Underlay {
        /// Index.
        index: usize,
        /// MTU (a new config may change it in place).
        mtu: AtomicUsize,
    },
    /// A sliver's TAP.
    Tap(Arc<Tap>),
}

#[derive(Debug)]
struct PortState {
    port: EgressPort,
    /// Some thread is running the port.
    running: bool,
    /// A timer wake-up is registered for this time.
    wake_at: Option<u64>,
}

/// One egress port and its device.
#[derive(Debug)]
pub(crate) struct PortDriver {
    /// What it transmits on.
    pub(crate) device: PortDevice,
    state: Mutex<PortState>,
}

/// How ports and delay lines transmit; implemented by the agent's shared
/// state (sockets, AF_XDP, TAPs).
pub(crate) trait Transmit {
    /// Sends a batch a port let go (emptying `batch`; the buffers go back
    /// to the pool).
    fn transmit(&self, port: &PortDriver, batch: &mut Vec<Pkt>);
    /// Sends packets a delay line of physical link `underlay` let go.
    fn transmit_delayed(&self, underlay: usize, batch: &mut Vec<Pkt>);
    /// The clock.
    fn clock(&self) -> &Clock;
    /// The buffer pool.
    fn pool(&self) -> &Pool;
    /// The wake-up timer.
    fn timer(&self) -> &Timer;
    /// Called by the timer thread on every wake-up (it re-pins itself).
    fn timer_woke(&self) {}
}

impl PortDriver {
    /// A port as `plan` says, on `device`.
    pub(crate) fn new(plan: &PortPlan, device: PortDevice, now: u64) -> PortDriver {
        let port = EgressPort::new(plan, now);
        PortDriver { device, state: Mutex::new(PortState { port, running: false, wake_at: None }) }
    }

    /// Reconfigures the port in place; returns the buffers of the packets of
    /// classes that went.
    pub(crate) fn configure(&self, plan: &PortPlan, now: u64) -> Vec<Vec<u8>> {
        let mut st = self.state.lock().expect("egress lock");
        st.port.configure(plan, now).into_iter().map(|p| p.buf).collect()
    }

    /// The class id of `key`.
    pub(crate) fn class_of(&self, key: &ClassKey) -> Option<LinkId> {
        self.state.lock().expect("egress lock").port.class_of(key)
    }

    /// Packets waiting in the port's scheduler.
    pub(crate) fn backlog(&self) -> usize {
        self.state.lock().expect("egress lock").port.backlog()
    }

    /// Empties the port (it is going); returns the buffers.
    pub(crate) fn drain(&self) -> Vec<Vec<u8>> {
        self.state.lock().expect("egress lock").port.drain().into_iter().map(|p| p.buf).collect()
    }

    /// Queues packets on their classes (what does not fit is counted and its
    /// buffer recycled), then runs the port unless someone else is.
    pub(crate) fn enqueue_and_run<T: Transmit>(self: &Arc<Self>, t: &T, pkts: Vec<(LinkId, Pkt)>) {
        let mut dropped = Vec::new();
        let now = t.clock().now();
        {
            let mut st = self.state.lock().expect("egress lock");
            for (class, p) in pkts {
                if let Err(p) = st.port.enqueue(now, class, p) {
                    dropped.push(p.buf);
                }
            }
        }
        if !dropped.is_empty() {
            t.pool().give(dropped);
        }
        self.run(t);
    }

    /// Transmits what may go now, in batches, until nothing may; registers a
    /// timer wake-up if packets still wait.
    pub(crate) fn run<T: Transmit>(self: &Arc<Self>, t: &T) {
        {
            let mut st = self.state.lock().expect("egress lock");
            if st.running {
                return;
            }
            st.running = true;
        }
        let mut batch = Vec::with_capacity(RUN_BATCH);
        loop {
            let now = t.clock().now();
            {
                let mut st = self.state.lock().expect("egress lock");
                if st.port.poll_transmit(now, RUN_BATCH, &mut batch) == 0 {
                    st.running = false;
                    if let Some(at) = st.port.poll_timeout(now)
                        && st.wake_at.is_none_or(|w| at < w || w <= now)
                    {
                        st.wake_at = Some(at);
                        t.timer().schedule(at, Wake::Port(Arc::downgrade(self)));
                    }
                    return;
                }
            }
            t.transmit(self, &mut batch);
        }
    }

    fn woken(&self) {
        self.state.lock().expect("egress lock").wake_at = None;
    }
}

/// The delay line of one physical link.
#[derive(Debug)]
pub(crate) struct DelayDriver {
    /// The link's index in the config.
    pub(crate) underlay: usize,
    line: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    line: DelayLine<Pkt>,
    /// A timer wake-up is registered for this time.
    wake_at: Option<u64>,
    /// Set once the line is retired: `true` if what still arrives goes out
    /// at once (the link stopped delaying), `false` if it is dropped (the
    /// link is gone). A thread still holding the old lines may push after
    /// the control thread emptied them.
    retired: Option<bool>,
}

impl DelayDriver {
    /// A line of `delay` nanoseconds holding at most `limit` packets.
    pub(crate) fn new(underlay: usize, delay: u64, limit: usize) -> DelayDriver {
        let st = LineState { line: DelayLine::new(delay, limit), wake_at: None, retired: None };
        DelayDriver { underlay, line: Mutex::new(st) }
    }

    /// Changes the delay (queued packets keep their time).
    pub(crate) fn set_delay(&self, delay: u64) {
        self.line.lock().expect("delay lock").line.set_delay(delay);
    }

    /// The delay.
    pub(crate) fn delay(&self) -> u64 {
        self.line.lock().expect("delay lock").line.delay()
    }

    /// Puts what a port let go into the line (a full line drops, counted as
    /// `queue_full`) and asks the timer to come back when the first is due.
    pub(crate) fn push<T: Transmit>(self: &Arc<Self>, t: &T, batch: &mut Vec<Pkt>) {
        let now = t.clock().now();
        let mut dropped = Vec::new();
        let wake = {
            let mut st = self.line.lock().expect("delay lock");
            match st.retired {
                Some(true) => {
                    drop(st);
                    t.transmit_delayed(self.underlay, batch);
                    return;
                }
                Some(false) => {
                    for p in batch.drain(..) {
                        p.counters.dropped(DropReason::PortDown);
                        dropped.push(p.buf);
                    }
                    None
                }
                None => {
                    for p in batch.drain(..) {
                        if let Err(p) = st.line.push(now, p) {
                            p.counters.dropped(DropReason::QueueFull);
                            dropped.push(p.buf);
                        }
                    }
                    Self::rearm(&mut st)
                }
            }
        };
        if let Some(at) = wake {
            t.timer().schedule(at, Wake::Delay(Arc::downgrade(self)));
        }
        if !dropped.is_empty() {
            t.pool().give(dropped);
        }
    }

    /// The wake-up to register, if the line's first packet is due earlier
    /// than the one registered.
    fn rearm(st: &mut LineState) -> Option<u64> {
        let at = st.line.poll_timeout()?;
        if st.wake_at.is_none_or(|w| at < w) {
            st.wake_at = Some(at);
            return Some(at);
        }
        None
    }

    /// Sends what is due (called by the timer thread).
    fn run<T: Transmit>(self: &Arc<Self>, t: &T) {
        let mut batch = Vec::new();
        loop {
            let now = t.clock().now();
            let wake = {
                let mut st = self.line.lock().expect("delay lock");
                st.wake_at = None;
                while batch.len() < RUN_BATCH {
                    match st.line.poll(now) {
                        Some(p) => batch.push(p),
                        None => break,
                    }
                }
                if batch.is_empty() { Self::rearm(&mut st) } else { None }
            };
            if batch.is_empty() {
                if let Some(at) = wake {
                    t.timer().schedule(at, Wake::Delay(Arc::downgrade(self)));
                }
                return;
            }
            t.transmit_delayed(self.underlay, &mut batch);
        }
    }

    /// Retires the line and returns what it held, in order: from now on what
    /// is pushed goes out at once (`send_later`) or is dropped.
    pub(crate) fn retire(&self, send_later: bool) -> Vec<Pkt> {
        let mut st = self.line.lock().expect("delay lock");
        st.retired = Some(send_later);
        st.line.drain().collect()
    }
}

/// What the timer wakes.
#[derive(Debug, Clone)]
pub(crate) enum Wake {
    /// A throttled port.
    Port(Weak<PortDriver>),
    /// A delay line.
    Delay(Weak<DelayDriver>),
}

#[derive(Debug)]
struct Due {
    at: u64,
    seq: u64,
    what: Wake,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // A min-heap on time.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The one thread that runs throttled ports and delay lines when they are due.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    heap: Mutex<(BinaryHeap<Due>, u64)>,
    cv: Condvar,
}

impl Timer {
    /// Asks for `what` to be run at `at` (clock nanoseconds).
    pub(crate) fn schedule(&self, at: u64, what: Wake) {
        let mut h = self.heap.lock().expect("timer lock");
        h.1 += 1;
        let seq = h.1;
        h.0.push(Due { at, seq, what });
        self.cv.notify_one();
    }

    /// Wakes the timer thread (to see a stop flag).
    pub(crate) fn nudge(&self) {
        self.cv.notify_all();
    }

    /// The timer loop; returns when `stop` is set.
    pub(crate) fn run<T: Transmit>(&self, t: &T, stop: &AtomicBool) {
        let mut h = self.heap.lock().expect("timer lock");
        while !stop.load(Ordering::Relaxed) {
            t.timer_woke();
            let now = t.clock().now();
            match h.0.peek() {
                Some(w) if w.at <= now => {
                    let w = h.0.pop().expect("peeked");
                    drop(h);
                    match w.what {
                        Wake::Port(p) => {
                            if let Some(p) = p.upgrade() {
                                p.woken();
                                p.run(t);
                            }
                        }
                        Wake::Delay(d) => {
                            if let Some(d) = d.upgrade() {
                                d.run(t);
                            }
                        }
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
