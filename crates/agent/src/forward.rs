//! The forwarding step every forwarding thread runs on what it read or was
//! handed: the pipeline's [`Dispatch`] (loss, super-frame cuts, node
//! programs) against the plane in force, then each egress port gets its
//! packets ([`crate::egress::PortDriver::enqueue_and_run`]).

use netslice_dataplane::Verdict;
use netslice_pipeline::Dispatch;

use crate::plane::Plane;
use crate::pool::PoolRef;
use crate::shared::Shared;

/// One thread's forwarding context.
#[derive(Debug)]
pub(crate) struct Forwarding {
    dispatch: Dispatch,
}

/// A seed for a thread's emulated loss: distinct per thread and per run
/// (the agent is the I/O layer; the pipeline only takes seeds).
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
    );
    h.finish()
}

impl Forwarding {
    /// A context with a fresh loss seed.
    pub(crate) fn new() -> Forwarding {
        Forwarding { dispatch: Dispatch::new(seed()) }
    }

    /// Takes the frame out of `slot` (leaving it empty) when it is queued, or
    /// leaves it there when dropped.
    pub(crate) fn handle(&mut self, shared: &Shared, plane: &Plane, slot: &mut Vec<u8>, v: Verdict, now: u64) {
        self.dispatch.handle(&plane.pipe, &mut PoolRef(&shared.pool), plane, slot, v, now);
    }

    /// Hands every port what the frames handled since the last flush send
    /// there (running the ports), then refills `bufs`.
    pub(crate) fn flush(&mut self, shared: &Shared, plane: &Plane, bufs: &mut [Vec<u8>]) {
        for (port, pkts) in self.dispatch.take_batches() {
            match plane.ports.get(port.index()) {
                Some(p) => p.enqueue_and_run(shared, pkts),
                None => shared.pool.give(pkts.into_iter().map(|(_, p)| p.buf)),
            }
        }
        shared.pool.refill(bufs);
    }
}
