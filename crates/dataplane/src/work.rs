//! A rule's reserved share of its host's forwarding work.
//!
//! The manager reserves forwarding CPU for a virtual link's guaranteed rate
//! `B` at the frame size `S` it declares: `f = B / 8S` frames a second, each
//! costing its host `a + b x bytes` nanoseconds. A frame is *within* the
//! share while the link's frames stay within `f` frames and `f x (S + 64)`
//! bytes a second (two token buckets; the 64 bytes are for the
//! encapsulation headers the meter sees): any mix of frames within both
//! costs at most `f x (a + b x (S + 64))`, what was reserved and a sliver
//! more, whatever the host's `a` and `b`. So the meter needs no cost model
//! of its own: it is the same on every host of the path.
//!
//! What the meter decides is applied by the forwarding threads: a frame
//! beyond its link's share is forwarded while the thread keeps up and
//! dropped first (reason `cpu`) when it falls behind, so that a slice over
//! its share, not the one within it, loses when CPU runs short.

use std::sync::Mutex;

/// How much a meter lets through before it counts frames as beyond the
/// share: 100 ms of the reserved rate, at least 8 frames. A sender held to
/// a fraction of a core by its cgroup runs in bursts a CFS period (100 ms)
/// apart: with a shallower bucket, a sender within its share on average
/// lost its bursts' tails whenever a thread was behind (CI, a 0.05-core
/// sliver at 3,500 frames/s against a share of 4,883: 218 of 2,000).
pub const DEPTH_NS: u64 = 100_000_000;
/// Bytes a frame is allowed beyond its declared size for the headers of
/// its encapsulation (the meter sees the packet as it leaves: GRE, VXLAN or
/// VLAN headers included): at 1,372-byte frames that is 1.6% more work per
/// frame than reserved (64 bytes at well under 1 ns a byte).
pub const ENCAP_SLACK: u32 = 64;
const MIN_FRAMES: f64 = 8.0;

/// The reserved share of one rule: frames and bytes per second.
#[derive(Debug)]
pub struct WorkMeter {
    frames_per_s: f64,
    bytes_per_s: f64,
    frame_depth: f64,
    byte_depth: f64,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    frames: f64,
    bytes: f64,
    last: Option<u64>,
}

impl WorkMeter {
    /// The share of a link guaranteed `rate` bits per second at `frame_size`
    /// bytes a frame; `None` if either is zero (nothing reserved).
    pub fn new(rate: u64, frame_size: u32) -> Option<WorkMeter> {
        if rate == 0 || frame_size == 0 {
            return None;
        }
        let frames_per_s = rate as f64 / 8.0 / f64::from(frame_size);
        let bytes_per_s = frames_per_s * f64::from(frame_size + ENCAP_SLACK);
        let depth_s = DEPTH_NS as f64 / 1e9;
        let frame_depth = (frames_per_s * depth_s).max(MIN_FRAMES);
        let byte_depth = (bytes_per_s * depth_s).max(MIN_FRAMES * f64::from(frame_size));
        Some(WorkMeter {
            frames_per_s,
            bytes_per_s,
            frame_depth,
            byte_depth,
            state: Mutex::new(State { frames: frame_depth, bytes: byte_depth, last: None }),
        })
    }

    /// Frames per second within the share.
    pub fn frames_per_s(&self) -> f64 {
        self.frames_per_s
    }

    /// Whether a frame of `bytes` bytes at `now` (nanoseconds, any
    /// monotonic clock) is within the share; if so, it is taken from it.
    pub fn take(&self, now: u64, bytes: usize) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = s.last
            && now > last
        {
            let dt = (now - last) as f64 / 1e9;
            s.frames = (s.frames + dt * self.frames_per_s).min(self.frame_depth);
            s.bytes = (s.bytes + dt * self.bytes_per_s).min(self.byte_depth);
        }
        if s.last.is_none_or(|l| now > l) {
            s.last = Some(now);
        }
        let b = bytes as f64;
        if s.frames >= 1.0 && s.bytes >= b.min(self.byte_depth) {
            s.frames -= 1.0;
            s.bytes -= b;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Frames of `bytes` bytes offered at `fps` for one second (virtual
    /// clock): how many were within the share.
    fn within(m: &WorkMeter, start: u64, fps: u64, bytes: usize) -> u64 {
        (0..fps).filter(|i| m.take(start + i * 1_000_000_000 / fps, bytes)).count() as u64
    }

    #[test]
    fn a_link_within_its_reserved_frames_and_bytes_is_always_within() {
        // 8 Mbit/s at 1000-byte frames: 1,000 frames/s.
        let m = WorkMeter::new(8_000_000, 1000).unwrap();
        assert_eq!(within(&m, 0, 990, 1000), 990);
        assert_eq!(within(&m, 1_000 * MS, 1000, 500), 1000, "smaller frames at the same frame rate");
    }

    #[test]
    fn beyond_the_share_in_frames_or_in_bytes_is_beyond() {
        let m = WorkMeter::new(8_000_000, 1000).unwrap();
        // Twice the frames (of half the size: the same bits): half beyond,
        // less the bucket's depth.
        let n = within(&m, 0, 2000, 500);
        assert!((1000..=1000 + 100).contains(&n), "{n}");
        // Large frames where small ones were declared: 5,000 frames/s of
        // 200 (+64) bytes is 1,320 frames/s of 1000.
        let m = WorkMeter::new(8_000_000, 200).unwrap();
        let n = within(&m, 0, 2000, 1000);
        assert!((1320..=1320 + 132).contains(&n), "{n}");
    }

    #[test]
    fn an_idle_link_gets_a_bounded_burst_not_its_whole_idle_time() {
        let m = WorkMeter::new(8_000_000, 1000).unwrap();
        assert!(m.take(0, 1000));
        // After ten idle seconds, a burst at once: only the depth (100 ms = 100 frames).
        let t = 10_000 * MS;
        let n = (0..1000).filter(|_| m.take(t, 1000)).count();
        assert_eq!(n, 100);
    }

    #[test]
    fn nothing_reserved_means_no_meter() {
        assert!(WorkMeter::new(0, 512).is_none());
        assert!(WorkMeter::new(1_000_000, 0).is_none());
    }
}
