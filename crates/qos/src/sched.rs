//! A hierarchical scheduler for one egress port:
//!
//! ```text
//! port (rate, burst)
//!  ├── slice (guaranteed rate, ceiling, weight)
//!  │    ├── virtual link (guaranteed rate, ceiling, burst, weight) -> bounded FIFO
//!  │    └── ...
//!  └── ...
//! ```
//!
//! Like Linux HTB, every class has a *rate* bucket (its guarantee) and a *ceil*
//! bucket (its ceiling), both charged for every packet the class sends; the port
//! bucket caps the total. At each dequeue the scheduler picks, in order:
//!
//! 1. a link under its own guarantee (and its slice under its ceiling),
//! 2. else a link whose slice is under the slice's guarantee,
//! 3. else any link under its ceilings: spare capacity, shared by weight.
//!
//! Within a tier, slices and then links inside the chosen slice are picked by
//! deficit round robin (quantum = `quantum x weight` bytes) or by weighted fair
//! queueing (self-clocked virtual finish times), as configured.
//!
//! Queues are bounded in bytes and packets; every drop is counted with its
//! reason. The scheduler is sans-IO: callers pass `now` and ask
//! [`Scheduler::next_wakeup`] when to come back.

use std::collections::VecDeque;

use crate::bucket::TokenBucket;
use crate::{ConfigError, Nanos};

/// How siblings share capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discipline {
    /// Deficit round robin; the quantum (bytes) is multiplied by each weight and
    /// must be at least the largest packet for the textbook fairness bound.
    Drr {
        /// Base quantum in bytes.
        quantum: u32,
    },
    /// Weighted fair queueing by self-clocked virtual finish times.
    Wfq,
}

/// Parameters of a slice or link class. Rates are bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassConfig {
    /// Guaranteed rate (0: nothing guaranteed, only spare capacity).
    pub rate: u64,
    /// Ceiling (>= rate, > 0).
    pub ceil: u64,
    /// Bucket depth in bytes for both rate and ceiling.
    pub burst: u64,
    /// Share of spare capacity among siblings (>= 1).
    pub weight: u32,
}

impl ClassConfig {
    fn check(&self, what: &str) -> Result<(), ConfigError> {
        if self.ceil == 0 {
            return Err(ConfigError::Invalid(format!("{what}: ceiling must be greater than 0")));
        }
        if self.ceil < self.rate {
            return Err(ConfigError::Invalid(format!("{what}: ceiling {} is below rate {}", self.ceil, self.rate)));
        }
        if self.weight == 0 {
            return Err(ConfigError::Invalid(format!("{what}: weight must be at least 1")));
        }
        if self.burst == 0 {
            return Err(ConfigError::Invalid(format!("{what}: burst must be greater than 0")));
        }
        Ok(())
    }
}

/// Bounds of a link's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Bytes queued at most.
    pub bytes: u64,
    /// Packets queued at most.
    pub packets: u32,
}

/// Why the scheduler dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// The queue's byte limit was reached.
    QueueBytes,
    /// The queue's packet limit was reached.
    QueuePackets,
    /// The class is gone (removed while packets were queued or on their way).
    NoClass,
}

/// Counters of one link class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Packets sent.
    pub packets: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Drops: byte limit.
    pub drop_bytes: u64,
    /// Drops: packet limit.
    pub drop_packets: u64,
    /// Packets queued now.
    pub queued_packets: u32,
    /// Bytes queued now.
    pub queued_bytes: u64,
}

/// Index of a slice class.
pub type SliceId = usize;
/// Index of a link class.
pub type LinkId = usize;

#[derive(Debug)]
struct Slice {
    cfg: ClassConfig,
    rate_tb: TokenBucket,
    ceil_tb: TokenBucket,
    links: Vec<LinkId>,
    // DRR state among slices, and cursor among its links
    deficit: i64,
    fresh: bool,
    cursor: usize,
    // WFQ (self-clocked): tag of the last packet served, and the links' virtual time
    start: u128,
    vtime: u128,
    alive: bool,
}

#[derive(Debug)]
struct Link<P> {
    cfg: ClassConfig,
    limits: QueueLimits,
    slice: SliceId,
    rate_tb: TokenBucket,
    ceil_tb: TokenBucket,
    queue: VecDeque<(u32, P)>,
    deficit: i64,
    fresh: bool,
    start: u128,
    stats: ClassStats,
    /// Bytes the port is charged per packet on top of its length (encapsulation
    /// and link-layer headers the class does not pay for).
    overhead: u32,
    alive: bool,
}

/// The scheduler of one egress port. `P` is whatever the caller queues (a buffer
/// handle); the scheduler only looks at the length given with it.
#[derive(Debug)]
pub struct Scheduler<P> {
    port: TokenBucket,
    discipline: Discipline,
    slices: Vec<Slice>,
    links: Vec<Link<P>>,
    slice_cursor: usize,
    vtime: u128,
    backlog: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    OwnRate,
    SliceRate,
    Spare,
}

/// WFQ virtual-time scale: finish tags are bytes x this / weight.
const WFQ_SCALE: u128 = 1 << 20;

impl<P> Scheduler<P> {
    /// A scheduler for a port of `rate` bytes/s with a `burst`-byte bucket.
    pub fn new(rate: u64, burst: u64, discipline: Discipline, now: Nanos) -> Result<Scheduler<P>, ConfigError> {
        if rate == 0 || burst == 0 {
            return Err(ConfigError::Invalid("port rate and burst must be greater than 0".into()));
        }
        if let Discipline::Drr { quantum: 0 } = discipline {
            return Err(ConfigError::Invalid("DRR quantum must be greater than 0".into()));
        }
        Ok(Scheduler {
            port: TokenBucket::new(rate, burst, now),
            discipline,
            slices: Vec::new(),
            links: Vec::new(),
            slice_cursor: 0,
            vtime: 0,
            backlog: 0,
        })
    }

    /// Changes the port's rate and burst.
    pub fn set_port(&mut self, rate: u64, burst: u64, now: Nanos) -> Result<(), ConfigError> {
        if rate == 0 || burst == 0 {
            return Err(ConfigError::Invalid("port rate and burst must be greater than 0".into()));
        }
        self.port.reconfigure(rate, burst, now);
        Ok(())
    }

    /// Adds a slice class.
    pub fn add_slice(&mut self, cfg: ClassConfig, now: Nanos) -> Result<SliceId, ConfigError> {
        cfg.check("slice")?;
        self.slices.push(Slice {
            cfg,
            rate_tb: TokenBucket::new(cfg.rate, cfg.burst, now),
            ceil_tb: TokenBucket::new(cfg.ceil, cfg.burst, now),
            links: Vec::new(),
            deficit: 0,
            fresh: false,
            cursor: 0,
            start: 0,
            vtime: 0,
            alive: true,
        });
        Ok(self.slices.len() - 1)
    }

    /// Changes a slice's parameters in place (queued packets stay).
    pub fn set_slice(&mut self, id: SliceId, cfg: ClassConfig, now: Nanos) -> Result<(), ConfigError> {
        cfg.check("slice")?;
        let s = self.slices.get_mut(id).filter(|s| s.alive).ok_or(ConfigError::Invalid(format!("no slice {id}")))?;
        s.cfg = cfg;
        s.rate_tb.reconfigure(cfg.rate, cfg.burst, now);
        s.ceil_tb.reconfigure(cfg.ceil, cfg.burst, now);
        Ok(())
    }

    /// Adds a link class under `slice`.
    pub fn add_link(
        &mut self,
        slice: SliceId,
        cfg: ClassConfig,
        limits: QueueLimits,
        now: Nanos,
    ) -> Result<LinkId, ConfigError> {
        cfg.check("link")?;
        if limits.bytes == 0 || limits.packets == 0 {
            return Err(ConfigError::Invalid("queue limits must be greater than 0".into()));
        }
        if !self.slices.get(slice).is_some_and(|s| s.alive) {
            return Err(ConfigError::Invalid(format!("no slice {slice}")));
        }
        let id = self.links.len();
        self.links.push(Link {
            cfg,
            limits,
            slice,
            rate_tb: TokenBucket::new(cfg.rate, cfg.burst, now),
            ceil_tb: TokenBucket::new(cfg.ceil, cfg.burst, now),
            queue: VecDeque::new(),
            deficit: 0,
            fresh: false,
            start: 0,
            stats: ClassStats::default(),
            overhead: 0,
            alive: true,
        });
        self.slices[slice].links.push(id);
        Ok(id)
    }

    /// Changes a link's parameters in place (queued packets stay; a smaller limit
    /// drops nothing already queued).
    pub fn set_link(
        &mut self,
        id: LinkId,
        cfg: ClassConfig,
        limits: QueueLimits,
        now: Nanos,
    ) -> Result<(), ConfigError> {
        cfg.check("link")?;
        let l = self.links.get_mut(id).filter(|l| l.alive).ok_or(ConfigError::Invalid(format!("no link {id}")))?;
        l.cfg = cfg;
        l.limits = limits;
        l.rate_tb.reconfigure(cfg.rate, cfg.burst, now);
        l.ceil_tb.reconfigure(cfg.ceil, cfg.burst, now);
        Ok(())
    }

    /// Sets the per-packet overhead the *port* is charged for this link's packets
    /// (classes are charged the packet length only): a guarantee is a rate of the
    /// slice's own frames, while the port's rate is a rate of bytes on the wire.
    pub fn set_overhead(&mut self, id: LinkId, bytes: u32) {
        if let Some(l) = self.links.get_mut(id) {
            l.overhead = bytes;
        }
    }

    /// Removes a link; returns what was queued (the caller drops it).
    pub fn remove_link(&mut self, id: LinkId) -> Vec<P> {
        let Some(l) = self.links.get_mut(id).filter(|l| l.alive) else { return Vec::new() };
        l.alive = false;
        let q: Vec<P> = l.queue.drain(..).map(|(_, p)| p).collect();
        self.backlog -= q.len();
        let s = l.slice;
        self.slices[s].links.retain(|&x| x != id);
        q
    }

    /// Removes a slice and its links; returns what was queued.
    pub fn remove_slice(&mut self, id: SliceId) -> Vec<P> {
        let links = self.slices.get(id).filter(|s| s.alive).map(|s| s.links.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for l in links {
            out.extend(self.remove_link(l));
        }
        if let Some(s) = self.slices.get_mut(id) {
            s.alive = false;
        }
        out
    }

    /// Counters of a link.
    pub fn stats(&self, id: LinkId) -> Option<ClassStats> {
        self.links.get(id).filter(|l| l.alive).map(|l| l.stats)
    }

    /// Packets queued in all links.
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    /// Queues a `len`-byte packet on link `id`, or gives it back with the reason.
    pub fn enqueue(&mut self, id: LinkId, len: u32, pkt: P) -> Result<(), (P, Drop)> {
        let Some(l) = self.links.get_mut(id).filter(|l| l.alive) else { return Err((pkt, Drop::NoClass)) };
        if l.stats.queued_packets >= l.limits.packets {
            l.stats.drop_packets += 1;
            return Err((pkt, Drop::QueuePackets));
        }
        if l.stats.queued_bytes + u64::from(len) > l.limits.bytes {
            l.stats.drop_bytes += 1;
            return Err((pkt, Drop::QueueBytes));
        }
        if l.queue.is_empty() && matches!(self.discipline, Discipline::Wfq) {
            // A newly backlogged class starts at its level's virtual time (SCFQ).
            let sid = l.slice;
            let slice_idle = self.slices[sid].links.iter().all(|&x| self.links[x].queue.is_empty());
            let l = &mut self.links[id];
            let s = &mut self.slices[sid];
            l.start = l.start.max(s.vtime);
            if slice_idle {
                s.start = s.start.max(self.vtime);
            }
        }
        let l = &mut self.links[id];
        l.queue.push_back((len, pkt));
        l.stats.queued_packets += 1;
        l.stats.queued_bytes += u64::from(len);
        self.backlog += 1;
        Ok(())
    }

    fn link_ok(&mut self, id: LinkId, now: Nanos, tier: Tier) -> bool {
        let l = &mut self.links[id];
        if !l.alive || l.queue.is_empty() || !l.ceil_tb.conforms(now) {
            return false;
        }
        // A class without a guarantee is never "under its rate".
        let own = l.cfg.rate > 0 && l.rate_tb.conforms(now);
        let s = &mut self.slices[l.slice];
        if !s.ceil_tb.conforms(now) {
            return false;
        }
        match tier {
            Tier::OwnRate => own,
            Tier::SliceRate => s.cfg.rate > 0 && s.rate_tb.conforms(now),
            Tier::Spare => true,
        }
    }

    fn slice_has(&mut self, s: SliceId, now: Nanos, tier: Tier) -> bool {
        if !self.slices[s].alive {
            return false;
        }
        (0..self.slices[s].links.len()).any(|i| {
            let l = self.slices[s].links[i];
            self.link_ok(l, now, tier)
        })
    }

    /// Picks a link of slice `s` eligible in `tier` (inner DRR/WFQ).
    fn pick_link(&mut self, s: SliceId, now: Nanos, tier: Tier) -> Option<LinkId> {
        let n = self.slices[s].links.len();
        if n == 0 {
            return None;
        }
        match self.discipline {
            Discipline::Wfq => {
                let mut best: Option<(u128, LinkId)> = None;
                for i in 0..n {
                    let l = self.slices[s].links[i];
                    if self.link_ok(l, now, tier) {
                        let f = self.links[l].start + head_cost(&self.links[l]);
                        if best.is_none_or(|(bf, _)| f < bf) {
                            best = Some((f, l));
                        }
                    }
                }
                best.map(|(_, l)| l)
            }
            Discipline::Drr { quantum } => {
                // Bounded: each step either finds a link or adds a quantum.
                // Textbook DRR: a visit adds one quantum, then serves while the
                // deficit covers the head packet. Bounded: every visit adds a quantum.
                for _ in 0..(n * 64 + 64) {
                    let idx = self.slices[s].cursor % n;
                    let l = self.slices[s].links[idx];
                    if self.link_ok(l, now, tier) {
                        let link = &mut self.links[l];
                        if !link.fresh {
                            link.deficit += i64::from(quantum) * i64::from(link.cfg.weight);
                            link.fresh = true;
                        }
                        let head = i64::from(link.queue.front().map(|(len, _)| *len).unwrap_or(0));
                        if link.deficit >= head {
                            return Some(l);
                        }
                    }
                    self.links[l].fresh = false;
                    self.slices[s].cursor = (idx + 1) % n;
                }
                None
            }
        }
    }

    fn pick(&mut self, now: Nanos, tier: Tier) -> Option<(SliceId, LinkId)> {
        let n = self.slices.len();
        if n == 0 {
            return None;
        }
        match self.discipline {
            Discipline::Wfq => {
                let mut best: Option<(u128, SliceId, LinkId)> = None;
                for s in 0..n {
                    if !self.slices[s].alive {
                        continue;
                    }
                    if let Some(l) = self.pick_link(s, now, tier) {
                        let len = self.links[l].queue.front().map(|(len, _)| *len).unwrap_or(0);
                        let tag =
                            self.slices[s].start + u128::from(len) * WFQ_SCALE / u128::from(self.slices[s].cfg.weight);
                        if best.is_none_or(|(bt, _, _)| tag < bt) {
                            best = Some((tag, s, l));
                        }
                    }
                }
                best.map(|(_, s, l)| (s, l))
            }
            Discipline::Drr { quantum } => {
                // Walk the round only if someone is eligible in this tier, so that
                // probing an empty tier never moves the round or grants quanta.
                if !(0..n).any(|s| self.slice_has(s, now, tier)) {
                    return None;
                }
                for _ in 0..(n * 64 + 64) {
                    let s = self.slice_cursor % n;
                    if self.slice_has(s, now, tier) {
                        if !self.slices[s].fresh {
                            self.slices[s].deficit += i64::from(quantum) * i64::from(self.slices[s].cfg.weight);
                            self.slices[s].fresh = true;
                        }
                        let l = self.pick_link(s, now, tier)?;
                        let head = i64::from(self.links[l].queue.front().map(|(len, _)| *len).unwrap_or(0));
                        if self.slices[s].deficit >= head {
                            return Some((s, l));
                        }
                    }
                    self.slices[s].fresh = false;
                    self.slice_cursor = (s + 1) % n;
                }
                None
            }
        }
    }

    /// The next packet to send at `now`, if any may go: `(link, len, packet)`.
    pub fn dequeue(&mut self, now: Nanos) -> Option<(LinkId, u32, P)> {
        if self.backlog == 0 || !self.port.conforms(now) {
            return None;
        }
        let (s, l) = [Tier::OwnRate, Tier::SliceRate, Tier::Spare].into_iter().find_map(|t| self.pick(now, t))?;
        let link = &mut self.links[l];
        let (len, pkt) = link.queue.pop_front().expect("picked link is backlogged");
        let bytes = u64::from(len);
        link.stats.queued_packets -= 1;
        link.stats.queued_bytes -= bytes;
        link.stats.packets += 1;
        link.stats.bytes += bytes;
        link.rate_tb.charge(now, bytes);
        link.ceil_tb.charge(now, bytes);
        let slice = &mut self.slices[s];
        slice.rate_tb.charge(now, bytes);
        slice.ceil_tb.charge(now, bytes);
        self.port.charge(now, bytes + u64::from(link.overhead));
        self.backlog -= 1;
        match self.discipline {
            Discipline::Drr { .. } => {
                link.deficit -= i64::from(len);
                slice.deficit -= i64::from(len);
                if link.queue.is_empty() {
                    // An emptied queue ends its visit and keeps no credit (DRR).
                    link.deficit = 0;
                    link.fresh = false;
                }
                let slice_empty = slice.links.iter().all(|&x| self.links[x].queue.is_empty());
                if slice_empty {
                    self.slices[s].deficit = 0;
                    self.slices[s].fresh = false;
                }
            }
            Discipline::Wfq => {
                link.start += u128::from(len) * WFQ_SCALE / u128::from(link.cfg.weight);
                slice.vtime = link.start;
                slice.start += u128::from(len) * WFQ_SCALE / u128::from(slice.cfg.weight);
                self.vtime = slice.start;
            }
        }
        Some((l, len, pkt))
    }

    /// When to call [`dequeue`](Self::dequeue) next: `Some(now)` or later if
    /// packets wait, `None` when nothing is queued (or nothing can ever go).
    pub fn next_wakeup(&mut self, now: Nanos) -> Option<Nanos> {
        if self.backlog == 0 {
            return None;
        }
        let port = self.port.time_until_conforming(now)?;
        let mut best: Option<Nanos> = None;
        for l in 0..self.links.len() {
            let link = &mut self.links[l];
            if !link.alive || link.queue.is_empty() {
                continue;
            }
            let Some(a) = link.ceil_tb.time_until_conforming(now) else { continue };
            let Some(b) = self.slices[link.slice].ceil_tb.time_until_conforming(now) else { continue };
            let t = a.max(b);
            best = Some(best.map_or(t, |x| x.min(t)));
        }
        best.map(|t| now.saturating_add(t.max(port)))
    }
}

fn head_cost<P>(l: &Link<P>) -> u128 {
    l.queue.front().map(|(len, _)| u128::from(*len) * WFQ_SCALE / u128::from(l.cfg.weight)).unwrap_or(0)
}

/// Rate in bytes per second from bits per second.
pub fn bytes_per_sec(bits_per_sec: u64) -> u64 {
    bits_per_sec / 8
}

/// A bucket depth of `ms` milliseconds at `rate` bytes/s, at least `min` bytes.
pub fn burst_for(rate: u64, ms: u64, min: u64) -> u64 {
    let b = u128::from(rate) * u128::from(ms) / 1000;
    u64::try_from(b).unwrap_or(u64::MAX).max(min).max(1)
}
