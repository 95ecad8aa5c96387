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
//! Sliver ports are not steered: their pollers forward inline. A worker's
//! channel is a FIFO in front of the egress schedulers, shared by every
//! slice it serves; were a flooding sliver's frames to enter it, a
//! CPU-starved worker would drop a victim's frames there, before the
//! scheduler could protect them (the e2e isolation tests caught exactly
//! that). From the substrate, a slice's load is already bounded by the
//! shaping at its ingress host.
//!
//! A slice with `qos.cpus` gets its own set of workers on every host it uses,
//! one per CPU and pinned to it; its frames from the substrate go only there,
//! and its sliver ports' poller runs there too. Every other forwarding
//! thread is kept off those CPUs ([`crate::cpus`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TrySendError};
use std::time::Duration;

use netslice_dataplane::{DropReason, Verdict};
use netslice_model::SliceName;

use crate::cpus::Pin;
use crate::forward::Forwarding;
use crate::plane::{Item, Job, Plane, WorkerQueues};
use crate::shared::Shared;

/// Batches a worker's channel holds. When a shared worker's channel is full the
/// receiver waits (the frames back up in the device's ring, as when it
/// forwards inline); a dedicated slice's full channel drops (`queue_full`), so
/// one slice's overload never stalls a receiver that serves every slice. Kept
/// small because buffers are sized for super-frames (about 64 KiB): a full
/// channel holds at most 32 x 32 frames, about 64 MiB.
pub(crate) const QUEUE_BATCHES: usize = 32;

/// How often an idle worker checks whether it should stop.
const IDLE: Duration = Duration::from_millis(200);

/// A worker thread: forwards the jobs of its queue, pinned to `cpu` if given
/// (else it follows the shared CPUs).
pub(crate) fn worker(shared: &Shared, stop: &AtomicBool, rx: &Receiver<Job>, cpu: Option<usize>) {
    if let Some(c) = cpu
        && let Err(e) = netslice_io::cpu::pin_current_thread(&[c])
    {
        tracing::warn!("worker not pinned: {e}");
    }
    let mut fwd = Forwarding::new();
    let mut pin = cpu.is_none().then(Pin::shared);
    let mut spare: Vec<Vec<u8>> = Vec::new();
    while !stop.load(Ordering::Relaxed) && !shared.shutdown.load(Ordering::Relaxed) {
        if let Some(p) = &mut pin {
            p.check(&shared.cpus);
        }
        let job = match rx.recv_timeout(IDLE) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        work(shared, &mut fwd, &mut spare, job);
    }
    // A retired set forwards what was queued before it was told to stop, with
    // the tables those frames were classified under, so a change of a slice's
    // CPUs loses nothing. A receiver still holding the old plane that sends
    // after this finds the channel closed and counts `queue_full`. On agent
    // shutdown nothing is forwarded any more.
    if !shared.shutdown.load(Ordering::Relaxed) {
        while let Ok(job) = rx.try_recv() {
            work(shared, &mut fwd, &mut spare, job);
        }
    }
}

/// Forwards one batch and returns its spent buffers to the pool.
fn work(shared: &Shared, fwd: &mut Forwarding, spare: &mut Vec<Vec<u8>>, job: Job) {
    for (mut buf, v) in job.items {
        fwd.handle(shared, &job.plane, &mut buf, v, job.now);
        if !buf.is_empty() {
            spare.push(buf);
        }
    }
    fwd.flush(shared, &job.plane, &mut []);
    shared.pool.give(spare.drain(..));
}

/// Frames a receiving thread hands to workers, gathered per worker and sent
/// once per batch.
#[derive(Debug, Default)]
pub(crate) struct Steer {
    pending: Vec<(Arc<WorkerQueues>, usize, Vec<Item>)>,
    plane: Option<Arc<Plane>>,
    now: u64,
    own: Option<SliceName>,
}

impl Steer {
    /// For a receiver of dedicated slice `slice`: when the slice has a
    /// single CPU its frames are forwarded inline (handing them to the worker
    /// on the same CPU would only add a context switch); with more, they
    /// still spread over its workers by flow.
    pub(crate) fn inline_for(slice: &SliceName) -> Steer {
        Steer { own: Some(slice.clone()), ..Steer::default() }
    }

    /// Takes the frame in `slot` (leaving it empty) when its rule is served by
    /// workers; returns the verdict back when the caller forwards it inline.
    pub(crate) fn take(&mut self, plane: &Arc<Plane>, slot: &mut Vec<u8>, v: Verdict, now: u64) -> Option<Verdict> {
        let Some(set) = v.rule().and_then(|r| plane.steer.get(r as usize)).and_then(|s| s.as_ref()) else {
            return Some(v);
        };
        if self.own.is_some() && set.slice == self.own && set.queues.len() == 1 {
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
    pub(crate) fn send(&mut self, shared: &Shared) {
        let Some(plane) = self.plane.take() else { return };
        for (set, w, items) in self.pending.drain(..) {
            let job = Job { plane: plane.clone(), now: self.now, items };
            let refused = if set.slice.is_none() {
                set.queues[w].send(job).err().map(|e| e.0)
            } else {
                match set.queues[w].try_send(job) {
                    Ok(()) => None,
                    Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Some(job),
                }
            };
            if let Some(job) = refused {
                for (_, v) in &job.items {
                    if let Some(c) = v.rule().and_then(|r| plane.pipe.tables.counters_of(r)) {
                        c.dropped(DropReason::QueueFull);
                    }
                }
                shared.pool.give(job.items.into_iter().map(|(b, _)| b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netslice_dataplane::Registry;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn a_stopped_worker_works_off_its_queue_first() {
        let shared = Shared::new(Vec::new(), Arc::new(Registry::builtin()), 64, true);
        // 20 batches of 3 frames are queued when the worker is already told to
        // stop (a retired set); the worker runs here, on the test's thread.
        let (tx, rx) = sync_channel::<Job>(QUEUE_BATCHES);
        let plane = Arc::new(Plane::default());
        for _ in 0..20 {
            let items = (0..3).map(|_| (vec![7u8; 64], Verdict::Drop)).collect();
            tx.try_send(Job { plane: plane.clone(), now: 0, items }).expect("room");
        }
        worker(&shared, &AtomicBool::new(true), &rx, None);
        // Every frame was handled (a dropped verdict hands its buffer back).
        let back: Vec<Vec<u8>> = (0..60).map(|_| shared.pool.take()).collect();
        assert!(back.iter().all(|b| b[0] == 7), "some queued frames were never handled");
    }
}
