//! Measurement taps: a job's point on this host. A tap hangs on the rules
//! of one virtual link (the slice's own frames, before encapsulation or
//! after it is removed) and, within its window, counts the frames its
//! filter ([`crate::bpf`]) matches per interval, and can keep the first
//! bytes of each (a capture) up to a byte cap. Everything is counted with
//! relaxed atomics; a capture appends to a buffer reserved in advance under
//! a short lock, taken only by frames that match, and the agent takes what
//! gathered ([`MeasureTap::take_captured`]).
//!
//! Times are the caller's clock (`now`, nanoseconds), never the OS's.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use netslice_model::api::{CaptureConfig, TapReport};

use crate::bpf::Program;

/// Most intervals a tap counts (a longer window has longer intervals).
pub const MAX_INTERVALS: usize = 3600;
/// Bytes a capture gathers between two takes, at most.
pub const CAPTURE_CHUNK: usize = 4 << 20;

/// One captured frame: when it came, its length, and the bytes kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// When, on the caller's clock.
    pub at: u64,
    /// Its whole length.
    pub len: u32,
    /// Where its kept bytes are in [`Captured::data`].
    pub kept: (u32, u32),
}

/// Frames captured since the last take.
#[derive(Debug, Default)]
pub struct Captured {
    /// The kept bytes of every frame, one after another.
    pub data: Vec<u8>,
    /// The frames.
    pub records: Vec<Record>,
}

#[derive(Debug)]
struct Capture {
    snaplen: u32,
    max_bytes: u64,
    /// Bytes kept so far, all takes together (the cap counts these).
    used: AtomicU64,
    frames: AtomicU64,
    full: AtomicU64,
    buf: Mutex<Captured>,
}

/// A job's point on this host.
#[derive(Debug)]
pub struct MeasureTap {
    /// The job.
    pub job: u64,
    filter: Option<Program>,
    start: u64,
    end: u64,
    /// The window as configured, Unix milliseconds (its identity).
    window_ms: (u64, u64),
    interval: u64,
    /// Frames and bytes per interval (the totals are their sums).
    buckets: Box<[[AtomicU64; 2]]>,
    capture: Option<Capture>,
}

impl MeasureTap {
    /// A tap counting from `start` to `end` (the caller's clock) in intervals
    /// of `interval` (lengthened so there are at most [`MAX_INTERVALS`]).
    pub fn new(
        job: u64,
        filter: Option<Program>,
        start: u64,
        end: u64,
        interval: u64,
        capture: Option<CaptureConfig>,
    ) -> MeasureTap {
        let span = end.saturating_sub(start).max(1);
        let interval = interval.max(span.div_ceil(MAX_INTERVALS as u64)).max(1);
        let n = span.div_ceil(interval) as usize;
        MeasureTap {
            job,
            filter,
            start,
            end,
            window_ms: (0, 0),
            interval,
            buckets: (0..n).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect(),
            capture: capture.map(|c| Capture {
                snaplen: c.snaplen.max(1),
                max_bytes: c.max_bytes,
                used: AtomicU64::new(0),
                frames: AtomicU64::new(0),
                full: AtomicU64::new(0),
                buf: Mutex::new(Captured::default()),
            }),
        }
    }

    /// The same tap, known by its configured window (Unix ms; see [`Self::same_as`]).
    pub fn with_window_ms(mut self, window_ms: (u64, u64)) -> MeasureTap {
        self.window_ms = window_ms;
        self
    }

    /// The interval length it counts in.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// A frame of the tap's rules at `now`: `frame` is the slice's frame
    /// (a TCP super-frame stands for `segs` frames of `wire` bytes in all).
    pub fn observe(&self, now: u64, frame: &[u8], segs: usize, wire: usize) {
        if now < self.start || now >= self.end {
            return;
        }
        if let Some(f) = &self.filter
            && !f.matches(frame)
        {
            return;
        }
        let i = ((now - self.start) / self.interval) as usize;
        if let Some([p, b]) = self.buckets.get(i) {
            p.fetch_add(segs as u64, Ordering::Relaxed);
            b.fetch_add(wire as u64, Ordering::Relaxed);
        }
        if let Some(c) = &self.capture {
            c.keep(now, frame);
        }
    }

    /// What it counted so far, intervals up to `now`.
    pub fn report(&self, now: u64) -> TapReport {
        let reached = if now < self.start {
            0
        } else {
            (((now - self.start) / self.interval) as usize + 1).min(self.buckets.len())
        };
        let intervals: Vec<[u64; 2]> = self.buckets[..reached]
            .iter()
            .map(|[p, b]| [p.load(Ordering::Relaxed), b.load(Ordering::Relaxed)])
            .collect();
        TapReport {
            job: self.job,
            frames: intervals.iter().map(|i| i[0]).sum(),
            bytes: intervals.iter().map(|i| i[1]).sum(),
            intervals,
            captured: self.capture.as_ref().map_or(0, |c| c.frames.load(Ordering::Relaxed)),
            capture_full: self.capture.as_ref().map_or(0, |c| c.full.load(Ordering::Relaxed)),
            ..TapReport::default()
        }
    }

    /// Takes the frames captured since the last take (none without a capture).
    pub fn take_captured(&self) -> Captured {
        let Some(c) = &self.capture else { return Captured::default() };
        let mut b = c.buf.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = Captured { data: Vec::with_capacity(b.data.len().min(CAPTURE_CHUNK)), records: Vec::new() };
        std::mem::replace(&mut *b, fresh)
    }

    /// Whether it counts as a tap of these parameters would (a config re-applied keeps
    /// the tap and what it counted). `window_ms` is the window as the config
    /// gives it (Unix milliseconds): the tap's own times on the caller's clock
    /// are placed once, when it is made, and a later mapping of the same
    /// window may differ by the clocks' reading error.
    pub fn same_as(
        &self,
        job: u64,
        filter: Option<&Program>,
        window_ms: (u64, u64),
        capture: Option<CaptureConfig>,
    ) -> bool {
        self.job == job
            && self.filter.as_ref() == filter
            && self.window_ms == window_ms
            && self.capture.as_ref().map(|c| (c.snaplen, c.max_bytes))
                == capture.map(|c| (c.snaplen.max(1), c.max_bytes))
    }
}

/// Bytes a record takes against the cap beyond the frame's kept bytes
/// (what a pcapng Enhanced Packet Block adds).
pub const RECORD_OVERHEAD: u64 = 32;

impl Capture {
    fn keep(&self, now: u64, frame: &[u8]) {
        let kept = frame.len().min(self.snaplen as usize);
        let cost = kept as u64 + RECORD_OVERHEAD;
        // Reserve against the cap first: frames that do not fit are counted, not kept.
        let fits = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| (u + cost <= self.max_bytes).then_some(u + cost))
            .is_ok();
        if !fits {
            self.full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        if b.data.len() + kept > CAPTURE_CHUNK {
            // The taker is late; what does not fit in this chunk is counted.
            drop(b);
            self.used.fetch_sub(cost, Ordering::Relaxed);
            self.full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let at = b.data.len() as u32;
        b.data.extend_from_slice(&frame[..kept]);
        b.records.push(Record { at: now, len: frame.len().min(u32::MAX as usize) as u32, kept: (at, kept as u32) });
        self.frames.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::Insn;

    fn frame(ethertype: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn ip_only() -> Program {
        let i = |code, jt, jf, k| Insn { code, jt, jf, k };
        Program::new(vec![i(0x28, 0, 0, 12), i(0x15, 0, 1, 0x800), i(0x06, 0, 0, 262144), i(0x06, 0, 0, 0)]).unwrap()
    }

    #[test]
    fn counts_what_the_filter_matches_within_the_window_per_interval() {
        let s = 1_000_000_000;
        let t = MeasureTap::new(7, Some(ip_only()), 10 * s, 13 * s, s, None);
        t.observe(9 * s, &frame(0x800, 100), 1, 100); // before
        t.observe(10 * s, &frame(0x800, 100), 1, 100);
        t.observe(10 * s + 5, &frame(0x806, 60), 1, 60); // ARP: not matched
        t.observe(12 * s, &frame(0x800, 200), 3, 4000); // a super-frame of 3
        t.observe(13 * s, &frame(0x800, 100), 1, 100); // after
        let r = t.report(12 * s + 1);
        assert_eq!(r.intervals, vec![[1, 100], [0, 0], [3, 4000]]);
        assert_eq!((r.frames, r.bytes), (4, 4100));
        assert_eq!(t.report(10 * s).intervals.len(), 1);
        assert!(t.report(5 * s).intervals.is_empty());
    }

    #[test]
    fn a_long_window_gets_longer_intervals() {
        let t = MeasureTap::new(1, None, 0, 10 * 3600 * 1_000_000_000, 1_000_000_000, None);
        assert_eq!(t.interval(), 10_000_000_000);
        assert_eq!(t.buckets.len(), MAX_INTERVALS);
    }

    #[test]
    fn a_capture_keeps_snaplen_bytes_and_stops_at_its_cap() {
        let cap = CaptureConfig { snaplen: 64, max_bytes: 3 * (64 + RECORD_OVERHEAD) };
        let t = MeasureTap::new(1, None, 0, 100, 100, Some(cap));
        for i in 0..5u8 {
            let mut f = frame(0x800, 1000);
            f[20] = i;
            t.observe(u64::from(i), &f, 1, 1000);
        }
        let c = t.take_captured();
        assert_eq!(c.records.len(), 3);
        assert_eq!(c.data.len(), 3 * 64);
        assert_eq!(c.records[2], Record { at: 2, len: 1000, kept: (128, 64) });
        assert_eq!(c.data[128 + 20], 2);
        let r = t.report(50);
        assert_eq!((r.frames, r.captured, r.capture_full), (5, 3, 2));
        assert!(t.take_captured().records.is_empty());
    }
}

/// Two readings of the same instant: the caller's clock and Unix time, to
/// place a job's window (Unix milliseconds) on the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WallClock {
    /// The caller's clock, nanoseconds.
    pub now: u64,
    /// Unix time then, milliseconds.
    pub unix_ms: u64,
}

impl WallClock {
    /// Unix milliseconds `ms` on the caller's clock.
    pub fn local(&self, ms: u64) -> u64 {
        if ms >= self.unix_ms {
            self.now.saturating_add((ms - self.unix_ms).saturating_mul(1_000_000))
        } else {
            self.now.saturating_sub((self.unix_ms - ms).saturating_mul(1_000_000))
        }
    }
}
