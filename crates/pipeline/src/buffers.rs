//! Packet buffers. The pipeline takes buffers (for the segments of a cut
//! super-frame, for a node program's extra outputs) and gives them back
//! (dropped frames) through [`Buffers`], so that the caller decides where they
//! come from: the agent's pool shared by its threads, or a [`VecPool`].

use netslice_dataplane::HEADROOM;

/// Where the pipeline gets and returns packet buffers. Every buffer is
/// [`Buffers::buf_len`] bytes long, of which the first [`HEADROOM`] are left
/// free in front of a frame for encapsulation headers.
pub trait Buffers {
    /// Length of every buffer.
    fn buf_len(&self) -> usize;
    /// A buffer of [`Buffers::buf_len`] bytes (contents unspecified).
    fn take(&mut self) -> Vec<u8>;
    /// Returns a buffer; buffers of another length are dropped.
    fn give(&mut self, buf: Vec<u8>);
}

/// A pool owned by one user: recycled buffers, at most `max` kept.
#[derive(Debug)]
pub struct VecPool {
    len: usize,
    max: usize,
    free: Vec<Vec<u8>>,
}

impl VecPool {
    /// Buffers of `len` bytes (at least [`HEADROOM`] + 64), keeping at most
    /// `max` free ones.
    pub fn new(len: usize, max: usize) -> VecPool {
        VecPool { len: len.max(HEADROOM + 64), max, free: Vec::new() }
    }
}

impl Buffers for VecPool {
    fn buf_len(&self) -> usize {
        self.len
    }

    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0u8; self.len])
    }

    fn give(&mut self, buf: Vec<u8>) {
        if buf.len() == self.len && self.free.len() < self.max {
            self.free.push(buf);
        }
    }
}
