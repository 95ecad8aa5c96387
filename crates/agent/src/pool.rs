//! The agent's clock and packet buffers, shared by its forwarding threads.

use std::sync::Mutex;
use std::time::Instant;

use netslice_pipeline::Buffers;

/// Buffers kept in the pool at most.
const POOL_MAX: usize = 2048;

/// The agent's monotonic clock in nanoseconds: the `now` every pipeline
/// call gets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    /// A clock starting now.
    pub(crate) fn new() -> Clock {
        Clock(Instant::now())
    }

    /// Nanoseconds since the clock started.
    pub(crate) fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Recycled packet buffers, so the forwarding path does not allocate per packet.
#[derive(Debug)]
pub(crate) struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    len: usize,
}

impl Pool {
    /// Buffers of `len` bytes.
    pub(crate) fn new(len: usize) -> Pool {
        Pool { free: Mutex::new(Vec::new()), len }
    }

    /// Buffer length.
    pub(crate) fn buf_len(&self) -> usize {
        self.len
    }

    /// Replaces every buffer of another length in `bufs` (the empty ones a
    /// forwarded frame left) with a pooled or new one.
    pub(crate) fn refill(&self, bufs: &mut [Vec<u8>]) {
        let mut free = self.free.lock().expect("pool lock");
        for b in bufs.iter_mut().filter(|b| b.len() != self.len) {
            *b = free.pop().unwrap_or_else(|| vec![0u8; self.len]);
        }
    }

    /// One buffer.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.free.lock().expect("pool lock").pop().unwrap_or_else(|| vec![0u8; self.len])
    }

    /// Returns buffers.
    pub(crate) fn give(&self, bufs: impl IntoIterator<Item = Vec<u8>>) {
        let mut free = self.free.lock().expect("pool lock");
        for b in bufs {
            if free.len() < POOL_MAX && b.len() == self.len {
                free.push(b);
            }
        }
    }
}

/// The pool as the pipeline takes buffers.
#[derive(Debug)]
pub(crate) struct PoolRef<'a>(pub(crate) &'a Pool);

impl Buffers for PoolRef<'_> {
    fn buf_len(&self) -> usize {
        self.0.len
    }

    fn take(&mut self) -> Vec<u8> {
        self.0.take()
    }

    fn give(&mut self, buf: Vec<u8>) {
        self.0.give([buf]);
    }
}
