//! A small seeded generator for emulated loss: the same seed gives the same
//! losses, so an experiment (or a test) that names its seed repeats exactly.

/// xorshift64* seeded through SplitMix64 (so nearby seeds give unrelated
/// streams). Not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        // SplitMix64 finaliser: a bijection, so distinct seeds stay distinct.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // xorshift's state must not be zero.
        Rng(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..1_000_000` (parts per million).
    pub fn ppm(&mut self) -> u32 {
        // Multiply-shift onto the range: no modulo bias worth the name.
        (((self.next_u64() >> 32) * 1_000_000) >> 32) as u32
    }

    /// `true` with probability `ppm` / 1,000,000.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.ppm() < ppm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_and_seeds_differ() {
        let a: Vec<u64> = (0..8).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..8).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        let c: Vec<u64> = (0..8).scan(Rng::new(8), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(Rng::new(0).next_u64() != 0);
    }

    #[test]
    fn chance_is_near_its_probability() {
        let mut r = Rng::new(1);
        let n = 1_000_000;
        let hits = (0..n).filter(|_| r.chance(10_000)).count();
        // 1% of 1e6 = 10,000; sd = ~99.5: within 5 sd.
        assert!((9_500..=10_500).contains(&hits), "{hits}");
        assert_eq!((0..1000).filter(|_| r.chance(0)).count(), 0);
        assert_eq!((0..1000).filter(|_| r.chance(1_000_000)).count(), 1000);
    }
}
