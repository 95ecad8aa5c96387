//! Multi-core forwarding: worker threads fed by flow hash, and CPUs dedicated
//! to slices (FLARE-style core isolation).
//!
//! Without workers (the default, `--workers 0`), the thread that reads a
//! frame also forwards it: classification, node programs, segmentation,
//! scheduling and transmission all run in the receiving thread ("inline").
//! With `--workers N`, the substrate receivers (one per carrier socket or
//! physical interface, where every slice's frames arrive mixed) only read and
//! classify; each frame then goes to one of N worker threads chosen by its
//! flow hash ([`netslice_dataplane::flow::flow_hash`]), so the frames of one
//! flow keep their order and the flows of one busy device spread over several
//! cores. Frames travel in batches over bounded channels, never one by one,
//! and the buffers move with them (no copy).
//!
//! Sliver ports are not steered: each port already has its own reader thread,
//! which forwards inline. A worker's channel is a FIFO in front of the egress
//! schedulers, shared by every slice it serves; were a flooding sliver's frames
//! to enter it, a CPU-starved worker would drop a victim's frames there, before
//! the scheduler could protect them (the e2e isolation tests caught exactly
//! that). From the substrate, a slice's load is already bounded by the
//! shaping at its ingress host.
//!
//! A slice with `qos.cpus` gets its own set of workers on every host it uses,
//! one per CPU and pinned to it; its frames from the substrate go only there,
//! and its sliver ports' readers run there too. Every other forwarding thread (receivers,
//! the timer, shared workers, other slices' port readers) is kept off those
//! CPUs, so a slice's packet processing is not slowed by another slice's
//! load, and vice versa. Threads re-pin themselves when the set changes
//! (they check a generation number once per batch or idle wake-up).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use netslice_dataplane::{DropReason, Verdict};
use netslice_model::api::NodeConfig;

use crate::forward::{Dispatch, Plane, Shared};

/// Batches a worker's channel holds. When a shared worker's channel is full the
/// receiver waits (the frames back up in the device's ring, as when it
/// forwards inline); a dedicated slice's full channel drops (`queue_full`), so
/// one slice's overload never stalls a receiver that serves every slice. Kept
/// small because buffers are sized for super-frames (about 64 KiB): a full
/// channel holds at most 32 x 32 frames, about 64 MiB.
pub const QUEUE_BATCHES: usize = 32;

/// A frame's buffer and the redirector's verdict on it.
pub type Item = (Vec<u8>, Verdict);

/// A batch of classified frames for one worker.
#[derive(Debug)]
pub struct Job {
    /// The tables the verdicts were made with.
    pub plane: Arc<Plane>,
    /// When they were received (scheduler clock).
    pub now: u64,
    /// Buffers and verdicts.
    pub items: Vec<Item>,
}

/// A set of worker threads: the shared set, or one slice's.
#[derive(Debug)]
pub struct WorkerSet {
    /// Empty for the shared set, else the slice.
    pub slice: String,
    /// CPU of each worker (`None`: not pinned).
    pub cpus: Vec<Option<usize>>,
    queues: Vec<SyncSender<Job>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl WorkerSet {
    /// Starts one worker per entry of `cpus`, each pinned to its CPU if given.
    pub fn start(shared: &Arc<Shared>, slice: &str, cpus: Vec<Option<usize>>) -> std::io::Result<Arc<WorkerSet>> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for (k, cpu) in cpus.iter().copied().enumerate() {
            let (tx, rx) = sync_channel::<Job>(QUEUE_BATCHES);
            let (s, st) = (shared.clone(), stop.clone());
            let name = if slice.is_empty() { format!("worker-{k}") } else { format!("w-{slice}-{k}") };
            let h = std::thread::Builder::new().name(name).spawn(move || run(&s, &st, &rx, cpu));
            match h {
                Ok(h) => threads.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            queues.push(tx);
        }
        Ok(Arc::new(WorkerSet { slice: slice.to_string(), cpus, queues, stop, threads: Mutex::new(threads) }))
    }

    /// The worker of a flow: a multiply-shift of the hash onto `0..n`.
    pub fn pick(&self, flow: u32) -> usize {
        ((u64::from(flow) * self.queues.len() as u64) >> 32) as usize
    }

    /// Stops the workers and waits for them.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.lock().expect("worker threads lock").drain(..) {
            let _ = h.join();
        }
    }
}

/// How often an idle worker checks whether it should stop.
const IDLE: Duration = Duration::from_millis(200);

fn run(shared: &Shared, stop: &AtomicBool, rx: &Receiver<Job>, cpu: Option<usize>) {
    if let Some(c) = cpu
        && let Err(e) = netslice_io::cpu::pin_current_thread(&[c])
    {
        tracing::warn!("worker not pinned: {e}");
    }
    let mut out = Dispatch::new();
    let mut pin = (cpu.is_none()).then(Pin::shared);
    let mut spare: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        if let Some(p) = &mut pin {
            p.check(shared);
        }
        let job = match rx.recv_timeout(IDLE) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        work(shared, &mut out, &mut spare, job);
    }
    // A retired set forwards what was queued before it was told to stop, with
    // the tables those frames were classified under, so a change of a slice's
    // CPUs loses nothing. A receiver still holding the old tables that sends
    // after this finds the channel closed and counts `queue_full`. On agent
    // shutdown nothing is forwarded any more.
    if !shared.shutdown.load(Ordering::Relaxed) {
        while let Ok(job) = rx.try_recv() {
            work(shared, &mut out, &mut spare, job);
        }
    }
}

/// Forwards one batch and returns its spent buffers to the pool.
fn work(shared: &Shared, out: &mut Dispatch, spare: &mut Vec<Vec<u8>>, job: Job) {
    for (mut buf, v) in job.items {
        out.handle(shared, &job.plane, &mut buf, v, job.now, 0);
        if !buf.is_empty() {
            spare.push(buf);
        }
    }
    out.flush(shared, &mut []);
    shared.pool.give(spare.drain(..));
}

/// Frames a receiving thread hands to workers, gathered per worker and sent
/// once per batch.
#[derive(Debug, Default)]
pub struct Steer {
    pending: Vec<(Arc<WorkerSet>, usize, Vec<Item>)>,
    plane: Option<Arc<Plane>>,
    now: u64,
    own: Option<Arc<WorkerSet>>,
}

impl Steer {
    /// For a receiver running on a dedicated slice's CPUs: when the slice has
    /// a single CPU its frames are forwarded inline (handing them to the
    /// worker on the same CPU would only add a context switch); with more,
    /// they still spread over its workers by flow.
    pub fn inline_for(set: Arc<WorkerSet>) -> Steer {
        Steer { own: Some(set), ..Steer::default() }
    }

    /// Takes the frame in `slot` (leaving it empty) when its rule is served by
    /// workers; returns the verdict back when the caller forwards it inline.
    pub fn take(&mut self, plane: &Arc<Plane>, slot: &mut Vec<u8>, v: Verdict, now: u64) -> Option<Verdict> {
        let Some(set) = v.rule().and_then(|r| plane.steer.get(r as usize)).and_then(|s| s.as_ref()) else {
            return Some(v);
        };
        if self.own.as_ref().is_some_and(|o| Arc::ptr_eq(o, set) && o.queues.len() == 1) {
            return Some(v);
        }
        let w = set.pick(v.flow());
        if self.plane.is_none() {
            self.plane = Some(plane.clone());
            self.now = now;
        }
        let item = (std::mem::take(slot), v);
        match self.pending.iter_mut().find(|(s, k, _)| Arc::ptr_eq(s, set) && *k == w) {
            Some((_, _, items)) => items.push(item),
            None => self.pending.push((set.clone(), w, vec![item])),
        }
        None
    }

    /// Sends what was gathered: to shared workers waiting for room, to a
    /// dedicated slice's workers only if there is room. What a worker cannot
    /// take is counted as `queue_full` on its rule and its buffers go back to
    /// the pool.
    pub fn send(&mut self, shared: &Shared) {
        let Some(plane) = self.plane.take() else { return };
        for (set, w, items) in self.pending.drain(..) {
            let job = Job { plane: plane.clone(), now: self.now, items };
            let refused = if set.slice.is_empty() {
                set.queues[w].send(job).err().map(|e| e.0)
            } else {
                match set.queues[w].try_send(job) {
                    Ok(()) => None,
                    Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Some(job),
                }
            };
            if let Some(job) = refused {
                for (_, v) in &job.items {
                    if let Some(c) = v.rule().and_then(|r| plane.tables.counters_of(r)) {
                        c.dropped(DropReason::QueueFull);
                    }
                }
                shared.pool.give(job.items.into_iter().map(|(b, _)| b));
            }
        }
    }
}

/// The CPUs each slice has to itself on this host: those of its `qos.cpus`
/// that this host has (`here`) and that no slice before it (by name) took;
/// plus a line for each slice asking for CPUs the host lacks.
pub fn dedicated(cfg: &NodeConfig, here: &[usize]) -> (BTreeMap<String, Vec<usize>>, Vec<String>) {
    let mut want: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut taken: Vec<usize> = Vec::new();
    for (slice, share) in &cfg.slices {
        let (mine, missing): (Vec<usize>, Vec<usize>) =
            share.cpus.iter().map(|&c| c as usize).partition(|c| here.contains(c));
        if !missing.is_empty() {
            problems.push(format!("{slice}: CPUs {missing:?} are not available here"));
        }
        let mine: Vec<usize> = mine.into_iter().filter(|c| !taken.contains(c)).collect();
        if !mine.is_empty() {
            taken.extend(&mine);
            want.insert(slice.clone(), mine);
        }
    }
    (want, problems)
}

/// Which CPUs each kind of forwarding thread may use.
#[derive(Debug, Default)]
pub struct CpuMap {
    /// Bumped on every change.
    pub generation: AtomicU64,
    /// The current map.
    pub map: ArcSwap<CpuSets>,
}

/// CPUs of shared threads and of dedicated slices' port readers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CpuSets {
    /// Receivers, the timer, shared workers and undedicated port readers:
    /// every CPU the agent may use minus the dedicated ones (all of them when
    /// nothing is dedicated or nothing would be left).
    pub shared: Vec<usize>,
    /// Port readers of slices with dedicated CPUs.
    pub ports: BTreeMap<u32, Vec<usize>>,
}

impl CpuMap {
    /// Publishes a new map (threads pick it up at their next batch).
    pub fn set(&self, sets: CpuSets) {
        if **self.map.load() != sets {
            self.map.store(Arc::new(sets));
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// A thread's view of [`CpuMap`]: re-pins the thread when the map changed.
#[derive(Debug)]
pub struct Pin {
    seen: u64,
    port: Option<u32>,
}

impl Pin {
    /// For a shared thread.
    pub fn shared() -> Pin {
        Pin { seen: 0, port: None }
    }

    /// For the reader of sliver port `port`.
    pub fn port(port: u32) -> Pin {
        Pin { seen: 0, port: Some(port) }
    }

    /// Re-pins the calling thread if the map changed since the last call.
    pub fn check(&mut self, shared: &Shared) {
        let g = shared.cpus.generation.load(Ordering::Acquire);
        if g == self.seen {
            return;
        }
        self.seen = g;
        let map = shared.cpus.map.load();
        let cpus = self.port.and_then(|p| map.ports.get(&p)).unwrap_or(&map.shared);
        if !cpus.is_empty()
            && let Err(e) = netslice_io::cpu::pin_current_thread(cpus)
        {
            tracing::warn!("cannot re-pin a forwarding thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::Plane;
    use netslice_dataplane::Registry;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(Vec::new(), crate::xsk::IoMode::Sockets, Arc::new(Registry::builtin()), 64))
    }

    #[test]
    fn a_stopped_set_works_off_its_queue_first() {
        let shared = shared();
        // 20 batches of 3 frames are queued when the worker is already told to
        // stop (a retired set); the worker runs here, on the test's thread.
        let (tx, rx) = sync_channel::<Job>(QUEUE_BATCHES);
        let plane = Arc::new(Plane::default());
        for _ in 0..20 {
            let items = (0..3).map(|_| (vec![7u8; 64], Verdict::Drop)).collect();
            tx.try_send(Job { plane: plane.clone(), now: 0, items }).expect("room");
        }
        run(&shared, &AtomicBool::new(true), &rx, None);
        // Every frame was handled (a dropped verdict hands its buffer back).
        let back: Vec<Vec<u8>> = (0..60).map(|_| shared.pool.take()).collect();
        assert!(back.iter().all(|b| b[0] == 7), "some queued frames were never handled");
    }
}
