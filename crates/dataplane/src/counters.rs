//! Counters of one forwarding rule: frames and bytes forwarded, drops by
//! reason, and what its packets do in their egress queue (how many wait now,
//! how long they waited). Shared by every thread; relaxed atomics, no lock.

use std::sync::atomic::{AtomicU64, Ordering};

use netslice_model::api::{DelayHistogram, QUEUE_DELAY_BOUNDS_NS};

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Not a well-formed frame or encapsulation.
    Malformed = 0,
    /// Larger than the virtual link's MTU allows.
    TooBig = 1,
    /// The destination port has no open interface.
    PortDown = 2,
    /// Sending failed (socket or TAP write error).
    TxError = 3,
    /// Dropped by an emulated lossy physical link.
    Loss = 4,
    /// A bounded queue (an egress queue or an emulated delay line) was full.
    QueueFull = 5,
    /// Red by the link's ingress policer.
    Policed = 6,
    /// Beyond its link's reserved share of forwarding work while the
    /// forwarding thread was behind (CPU ran short).
    Cpu = 7,
}

impl DropReason {
    /// All reasons, in index order.
    pub const ALL: [DropReason; 8] = [
        DropReason::Malformed,
        DropReason::TooBig,
        DropReason::PortDown,
        DropReason::TxError,
        DropReason::Loss,
        DropReason::QueueFull,
        DropReason::Policed,
        DropReason::Cpu,
    ];

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::TooBig => "too_big",
            DropReason::PortDown => "port_down",
            DropReason::TxError => "tx_error",
            DropReason::Loss => "loss",
            DropReason::QueueFull => "queue_full",
            DropReason::Policed => "policed",
            DropReason::Cpu => "cpu",
        }
    }
}

/// Counters of one rule. Shared by every thread; relaxed atomics.
#[derive(Debug, Default)]
pub struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    /// Packets and bytes waiting in an egress queue now.
    queued: AtomicU64,
    queued_bytes: AtomicU64,
    /// Packets that left an egress queue, and what they waited.
    waits: AtomicU64,
    waited_ns: AtomicU64,
    wait_buckets: [AtomicU64; QUEUE_DELAY_BOUNDS_NS.len() + 1],
}

impl Counters {
    /// Counts a forwarded frame of `len` bytes.
    pub fn forwarded(&self, len: usize) {
        self.forwarded_many(1, len);
    }

    /// Counts `n` forwarded frames of `bytes` bytes in all (the segments of a
    /// super-frame).
    pub fn forwarded_many(&self, n: usize, bytes: usize) {
        self.packets.fetch_add(n as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a dropped frame.
    pub fn dropped(&self, why: DropReason) {
        self.dropped_many(why, 1);
    }

    /// Counts `n` dropped frames (the segments of a super-frame).
    pub fn dropped_many(&self, why: DropReason, n: usize) {
        self.drops[why as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Frames forwarded.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes forwarded.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Drops for one reason.
    pub fn drops(&self, why: DropReason) -> u64 {
        self.drops[why as usize].load(Ordering::Relaxed)
    }

    /// A packet of `wire` bytes joined an egress queue.
    pub fn enqueued(&self, wire: usize) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queued_bytes.fetch_add(wire as u64, Ordering::Relaxed);
    }

    /// A packet of `wire` bytes left its egress queue after `waited_ns`.
    pub fn dequeued(&self, wire: usize, waited_ns: u64) {
        self.unqueued(wire);
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.waited_ns.fetch_add(waited_ns, Ordering::Relaxed);
        let bucket = QUEUE_DELAY_BOUNDS_NS.partition_point(|&b| b < waited_ns);
        self.wait_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A packet of `wire` bytes left its egress queue without being sent
    /// (refused by a full queue, or its class was removed).
    pub fn unqueued(&self, wire: usize) {
        // Every call follows an `enqueued` of the same packet (the egress
        // port pairs them), so the gauges never go below zero.
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.queued_bytes.fetch_sub(wire as u64, Ordering::Relaxed);
    }

    /// Packets waiting in an egress queue now, and their bytes.
    pub fn queued(&self) -> (u64, u64) {
        (self.queued.load(Ordering::Relaxed), self.queued_bytes.load(Ordering::Relaxed))
    }

    /// What the packets that left an egress queue waited.
    pub fn queue_delay(&self) -> DelayHistogram {
        DelayHistogram {
            count: self.waits.load(Ordering::Relaxed),
            sum_ns: self.waited_ns.load(Ordering::Relaxed),
            buckets: self.wait_buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_in_the_bucket_of_their_upper_bound() {
        let c = Counters::default();
        for (wire, waited) in [(100, 0), (100, 100_000), (200, 100_001), (300, 5_000_000_000)] {
            c.enqueued(wire);
            assert_eq!(c.queued().0, 1);
            c.dequeued(wire, waited);
        }
        assert_eq!(c.queued(), (0, 0));
        let h = c.queue_delay();
        assert_eq!((h.count, h.sum_ns), (4, 5_000_200_001));
        assert_eq!(h.buckets[0], 2, "0 and exactly 100 us are <= 100 us");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(*h.buckets.last().unwrap(), 1, "past the last bound");
        assert_eq!(h.buckets.iter().sum::<u64>(), 4);
    }

    #[test]
    fn a_removed_packet_leaves_the_gauge_but_no_wait() {
        let c = Counters::default();
        c.enqueued(1500);
        c.enqueued(64);
        c.unqueued(1500);
        assert_eq!(c.queued(), (1, 64));
        assert_eq!(c.queue_delay().count, 0);
        c.unqueued(64);
        assert_eq!(c.queued(), (0, 0));
    }
}
