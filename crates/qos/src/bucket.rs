//! Token buckets with exact integer arithmetic.
//!
//! Tokens are kept in byte-nanoseconds (bytes x 1e9): refilling adds
//! `rate_bytes_per_sec x elapsed_ns` exactly, in 128-bit integers, so a bucket
//! neither overflows (a u64 rate times a u64 duration fits in u128) nor loses
//! fractions of a byte to rounding, however small the steps.

use crate::{NS_PER_SEC, Nanos};

const SCALE: i128 = NS_PER_SEC as i128;

/// A token bucket: `rate` bytes per second up to `depth` bytes.
///
/// Two ways to use it: as a *meter* ([`try_take`](Self::try_take): tokens never
/// go negative), or as a *shaper* ([`charge`](Self::charge): a conforming sender
/// may send whenever tokens are not negative, and the bucket goes into debt by
/// the packet's size, which keeps the long-run rate exact for packets of any size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    depth: u64,
    /// Tokens in byte-nanoseconds; may be negative (debt) in shaper use.
    tokens: i128,
    last: Nanos,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(rate_bytes_per_sec: u64, depth_bytes: u64, now: Nanos) -> TokenBucket {
        TokenBucket { rate: rate_bytes_per_sec, depth: depth_bytes, tokens: i128::from(depth_bytes) * SCALE, last: now }
    }

    /// Rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Depth in bytes.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Changes rate and depth, keeping the tokens (capped at the new depth).
    pub fn reconfigure(&mut self, rate_bytes_per_sec: u64, depth_bytes: u64, now: Nanos) {
        self.refill(now);
        self.rate = rate_bytes_per_sec;
        self.depth = depth_bytes;
        self.tokens = self.tokens.min(i128::from(depth_bytes) * SCALE);
    }

    /// Adds the tokens earned since the last call (time never runs backwards:
    /// an earlier `now` adds nothing).
    pub fn refill(&mut self, now: Nanos) {
        if now > self.last {
            // rate x elapsed can exceed i128 only when it is far above any depth.
            let earned = i128::from(self.rate).checked_mul(i128::from(now - self.last)).unwrap_or(i128::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(i128::from(self.depth) * SCALE);
            self.last = now;
        }
    }

    /// Whole tokens (bytes) available at `now`; negative when in debt.
    pub fn tokens(&mut self, now: Nanos) -> i64 {
        self.refill(now);
        (self.tokens.div_euclid(SCALE)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Whether the bucket is not in debt at `now` (a shaper may send).
    pub fn conforms(&mut self, now: Nanos) -> bool {
        self.refill(now);
        self.tokens >= 0
    }

    /// Meter use: takes `bytes` if that many tokens are there.
    pub fn try_take(&mut self, now: Nanos, bytes: u64) -> bool {
        self.refill(now);
        let need = i128::from(bytes) * SCALE;
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }

    /// Shaper use: takes `bytes` unconditionally; the bucket may go into debt,
    /// but never deeper than `depth` plus one packet.
    pub fn charge(&mut self, now: Nanos, bytes: u64) {
        self.refill(now);
        let floor = -(i128::from(self.depth) + i128::from(bytes)) * SCALE;
        self.tokens = (self.tokens - i128::from(bytes) * SCALE).max(floor);
    }

    /// Adds `bytes` tokens (up to the depth): used for RFC 2697 overflow.
    pub fn add(&mut self, bytes_ns: i128) {
        self.tokens = (self.tokens + bytes_ns).min(i128::from(self.depth) * SCALE);
    }

    /// Nanoseconds from `now` until the bucket holds `bytes` tokens (0 if it
    /// already does); `None` if it never will (rate 0, or more than the depth).
    pub fn time_until(&mut self, now: Nanos, bytes: u64) -> Option<Nanos> {
        self.refill(now);
        let need = i128::from(bytes) * SCALE - self.tokens;
        if need <= 0 {
            return Some(0);
        }
        if self.rate == 0 || bytes > self.depth {
            return None;
        }
        let ns = (need + i128::from(self.rate) - 1) / i128::from(self.rate);
        Some(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Nanoseconds from `now` until the bucket is out of debt (0 if it is).
    pub fn time_until_conforming(&mut self, now: Nanos) -> Option<Nanos> {
        self.refill(now);
        if self.tokens >= 0 {
            return Some(0);
        }
        if self.rate == 0 {
            return None;
        }
        let ns = (-self.tokens + i128::from(self.rate) - 1) / i128::from(self.rate);
        Some(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Tokens above the depth that a refill to `now` would have spilled
    /// (byte-nanoseconds), refilling as a side effect. Used by srTCM, where the
    /// committed bucket's overflow feeds the excess bucket.
    pub fn refill_spill(&mut self, now: Nanos) -> i128 {
        if now <= self.last {
            return 0;
        }
        let earned = i128::from(self.rate).checked_mul(i128::from(now - self.last)).unwrap_or(i128::MAX);
        let cap = i128::from(self.depth) * SCALE;
        let total = self.tokens.saturating_add(earned);
        self.last = now;
        if total > cap {
            self.tokens = cap;
            total - cap
        } else {
            self.tokens = total;
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_full_and_refills_exactly() {
        let mut b = TokenBucket::new(1000, 500, 0);
        assert!(b.try_take(0, 500));
        assert!(!b.try_take(0, 1));
        // 1000 B/s: one byte per millisecond, never rounded away in tiny steps.
        for t in 1..=1000u64 {
            b.refill(t * 1_000); // 1 us steps for 1 ms
        }
        assert_eq!(b.tokens(1_000_000), 1);
        assert_eq!(b.tokens(NS_PER_SEC), 500, "capped at depth");
    }

    #[test]
    fn shaper_debt_and_wait() {
        let mut b = TokenBucket::new(1_000_000, 1500, 0);
        b.charge(0, 1500);
        assert!(b.conforms(0));
        b.charge(0, 1500);
        assert!(!b.conforms(0));
        assert_eq!(b.time_until_conforming(0), Some(1_500_000));
        assert!(b.conforms(1_500_000));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut b = TokenBucket::new(u64::MAX, u64::MAX, 0);
        b.refill(u64::MAX);
        assert!(b.try_take(u64::MAX, u64::MAX));
        let mut z = TokenBucket::new(0, 10, 0);
        z.charge(0, 100);
        assert_eq!(z.time_until_conforming(5), None);
        assert_eq!(TokenBucket::new(10, 10, 0).time_until(0, 11), None);
    }

    proptest! {
        /// Whatever the step pattern, a meter never passes more than
        /// depth + rate x elapsed bytes.
        #[test]
        fn meter_never_exceeds_rate(rate in 1u64..10_000_000_000, depth in 1u64..1_000_000, steps in proptest::collection::vec((0u64..10_000_000, 1u64..100_000), 1..200)) {
            let mut b = TokenBucket::new(rate, depth, 0);
            let (mut now, mut passed) = (0u64, 0u128);
            for (dt, len) in steps {
                now += dt;
                if b.try_take(now, len) {
                    passed += u128::from(len);
                }
            }
            let bound = u128::from(depth) + u128::from(rate) * u128::from(now) / u128::from(NS_PER_SEC);
            prop_assert!(passed <= bound, "{passed} > {bound}");
        }
    }
}
