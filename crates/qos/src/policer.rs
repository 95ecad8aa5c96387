//! Three-colour markers: srTCM (RFC 2697), trTCM (RFC 2698) and the RFC 4115
//! two-rate marker. Each meters packets at `now` and returns a [`Color`];
//! colour-aware variants take the colour a packet already carries.
//!
//! Rates are bytes per second, bursts bytes. Buckets start full (RFC 2697 §3).

use crate::bucket::TokenBucket;
use crate::{ConfigError, Nanos};

/// A packet's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    /// Conforming to the committed rate.
    Green,
    /// Conforming to the excess/peak profile only.
    Yellow,
    /// Not conforming.
    Red,
}

/// Something that colours packets.
pub trait Meter {
    /// Colour-blind metering of a `len`-byte packet.
    fn meter(&mut self, now: Nanos, len: u64) -> Color {
        self.meter_aware(now, len, Color::Green)
    }

    /// Colour-aware metering of a packet that arrived with colour `pre`.
    fn meter_aware(&mut self, now: Nanos, len: u64, pre: Color) -> Color;
}

/// Single rate three colour marker, RFC 2697.
#[derive(Debug, Clone)]
pub struct SrTcm {
    tc: TokenBucket,
    te: TokenBucket,
}

impl SrTcm {
    /// CIR in bytes/s, CBS and EBS in bytes. CIR must be positive and CBS and EBS
    /// not both zero.
    pub fn new(cir: u64, cbs: u64, ebs: u64, now: Nanos) -> Result<SrTcm, ConfigError> {
        if cir == 0 {
            return Err(ConfigError::Invalid("srTCM: CIR must be greater than 0".into()));
        }
        if cbs == 0 && ebs == 0 {
            return Err(ConfigError::Invalid("srTCM: CBS and EBS cannot both be 0".into()));
        }
        // Te earns nothing by itself: it fills only from Tc's overflow.
        Ok(SrTcm { tc: TokenBucket::new(cir, cbs, now), te: TokenBucket::new(0, ebs, now) })
    }

    fn update(&mut self, now: Nanos) {
        let spill = self.tc.refill_spill(now);
        self.te.refill(now);
        if spill > 0 {
            self.te.add(spill);
        }
    }
}

impl Meter for SrTcm {
    fn meter_aware(&mut self, now: Nanos, len: u64, pre: Color) -> Color {
        self.update(now);
        match pre {
            Color::Green if self.tc.try_take(now, len) => Color::Green,
            Color::Green | Color::Yellow if self.te.try_take(now, len) => Color::Yellow,
            _ => Color::Red,
        }
    }
}

/// Two rate three colour marker, RFC 2698.
#[derive(Debug, Clone)]
pub struct TrTcm {
    tc: TokenBucket,
    tp: TokenBucket,
}

impl TrTcm {
    /// CIR and PIR in bytes/s (PIR >= CIR > 0), CBS and PBS in bytes (> 0).
    pub fn new(cir: u64, cbs: u64, pir: u64, pbs: u64, now: Nanos) -> Result<TrTcm, ConfigError> {
        if cir == 0 || pir == 0 || cbs == 0 || pbs == 0 {
            return Err(ConfigError::Invalid("trTCM: CIR, PIR, CBS and PBS must be greater than 0".into()));
        }
        if pir < cir {
            return Err(ConfigError::Invalid(format!("trTCM: PIR {pir} is below CIR {cir}")));
        }
        Ok(TrTcm { tc: TokenBucket::new(cir, cbs, now), tp: TokenBucket::new(pir, pbs, now) })
    }
}

impl Meter for TrTcm {
    fn meter_aware(&mut self, now: Nanos, len: u64, pre: Color) -> Color {
        self.tc.refill(now);
        if pre == Color::Red || !self.tp.try_take(now, len) {
            return Color::Red;
        }
        if pre == Color::Yellow || !self.tc.try_take(now, len) {
            return Color::Yellow;
        }
        Color::Green
    }
}

/// The two rate three colour marker of RFC 4115: committed (CIR, CBS) and excess
/// (EIR, EBS) buckets filled independently; excess traffic is yellow.
#[derive(Debug, Clone)]
pub struct Rfc4115 {
    tc: TokenBucket,
    te: TokenBucket,
}

impl Rfc4115 {
    /// CIR and EIR in bytes/s, CBS and EBS in bytes. CIR or EIR may be 0 (all
    /// traffic excess, or no excess), but not both.
    pub fn new(cir: u64, cbs: u64, eir: u64, ebs: u64, now: Nanos) -> Result<Rfc4115, ConfigError> {
        if cir == 0 && eir == 0 {
            return Err(ConfigError::Invalid("RFC 4115: CIR and EIR cannot both be 0".into()));
        }
        Ok(Rfc4115 { tc: TokenBucket::new(cir, cbs, now), te: TokenBucket::new(eir, ebs, now) })
    }
}

impl Meter for Rfc4115 {
    fn meter_aware(&mut self, now: Nanos, len: u64, pre: Color) -> Color {
        self.te.refill(now);
        match pre {
            Color::Green if self.tc.try_take(now, len) => Color::Green,
            Color::Green | Color::Yellow if self.te.try_take(now, len) => Color::Yellow,
            _ => Color::Red,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NS_PER_SEC;
    use Color::*;

    // The parameters of DPDK's app/test/test_meter.c.
    const CIR: u64 = 46_000_000;
    const PIR: u64 = 69_000_000;
    const CBS: u64 = 2048;
    const EBS: u64 = 4096;
    const PBS: u64 = 4096;

    /// Each check of test_meter.c configures a fresh meter and meters one packet
    /// one second later (buckets full), with these lengths.
    const LENS: [u64; 4] = [CBS - 1, CBS + 1, EBS - 1, EBS + 1];

    fn srtcm(len: u64, pre: Option<Color>) -> Color {
        let mut m = SrTcm::new(CIR, CBS, EBS, 0).unwrap();
        match pre {
            None => m.meter(NS_PER_SEC, len),
            Some(c) => m.meter_aware(NS_PER_SEC, len, c),
        }
    }

    fn trtcm(len: u64, pre: Option<Color>) -> Color {
        let mut m = TrTcm::new(CIR, CBS, PIR, PBS, 0).unwrap();
        match pre {
            None => m.meter(NS_PER_SEC, len),
            Some(c) => m.meter_aware(NS_PER_SEC, len, c),
        }
    }

    fn rfc4115(len: u64, pre: Option<Color>) -> Color {
        // RFC 4115 equivalent of the srTCM vectors: EIR = PIR - CIR, EBS = 4096.
        let mut m = Rfc4115::new(CIR, CBS, PIR - CIR, EBS, 0).unwrap();
        match pre {
            None => m.meter(NS_PER_SEC, len),
            Some(c) => m.meter_aware(NS_PER_SEC, len, c),
        }
    }

    #[test]
    fn dpdk_config_checks() {
        assert!(SrTcm::new(0, CBS, EBS, 0).is_err());
        assert!(SrTcm::new(CIR, 0, 0, 0).is_err());
        assert!(SrTcm::new(CIR, 0, EBS, 0).is_ok());
        assert!(SrTcm::new(CIR, CBS, 0, 0).is_ok());
        assert!(TrTcm::new(0, CBS, PIR, PBS, 0).is_err());
        assert!(TrTcm::new(CIR, 0, PIR, PBS, 0).is_err());
        assert!(TrTcm::new(CIR, CBS, PIR, 0, 0).is_err());
        assert!(TrTcm::new(CIR, CBS, 0, PBS, 0).is_err());
        assert!(TrTcm::new(CIR, CBS, CIR - 1, PBS, 0).is_err(), "PIR < CIR");
        assert!(Rfc4115::new(0, CBS, 0, EBS, 0).is_err());
    }

    #[test]
    fn dpdk_color_blind_vectors() {
        let want = [Green, Yellow, Yellow, Red];
        for (len, w) in LENS.iter().zip(want) {
            assert_eq!(srtcm(*len, None), w, "srTCM blind, {len} bytes");
            assert_eq!(trtcm(*len, None), w, "trTCM blind, {len} bytes");
            assert_eq!(rfc4115(*len, None), w, "RFC 4115 blind, {len} bytes");
        }
    }

    #[test]
    fn dpdk_color_aware_vectors() {
        let table = [
            (Green, [Green, Yellow, Yellow, Red]),
            (Yellow, [Yellow, Yellow, Yellow, Red]),
            (Red, [Red, Red, Red, Red]),
        ];
        for (pre, want) in table {
            for (len, w) in LENS.iter().zip(want) {
                assert_eq!(srtcm(*len, Some(pre)), w, "srTCM aware {pre:?}, {len} bytes");
                assert_eq!(trtcm(*len, Some(pre)), w, "trTCM aware {pre:?}, {len} bytes");
                assert_eq!(rfc4115(*len, Some(pre)), w, "RFC 4115 aware {pre:?}, {len} bytes");
            }
        }
    }

    #[test]
    fn srtcm_overflow_feeds_excess() {
        // Empty both buckets, then wait: Tc refills first, its overflow then Te.
        let mut m = SrTcm::new(1000, 100, 100, 0).unwrap();
        assert_eq!(m.meter(0, 100), Green);
        assert_eq!(m.meter(0, 100), Yellow);
        assert_eq!(m.meter(0, 1), Red);
        // 150 ms at 1000 B/s = 150 bytes: Tc full (100), Te 50.
        assert_eq!(m.meter(150_000_000, 100), Green);
        assert_eq!(m.meter(150_000_000, 50), Yellow);
        assert_eq!(m.meter(150_000_000, 1), Red);
    }

    #[test]
    fn long_run_green_rate_is_cir() {
        // Offer twice the CIR in 1000-byte packets for 10 s: green bytes ~ CIR x 10 s.
        let (cir, pir) = (1_250_000u64, 2_500_000u64); // 10 and 20 Mbit/s
        let mut sr = SrTcm::new(cir, 10_000, 10_000, 0).unwrap();
        let mut tr = TrTcm::new(cir, 10_000, pir, 10_000, 0).unwrap();
        let mut r4 = Rfc4115::new(cir, 10_000, pir - cir, 10_000, 0).unwrap();
        let gap = NS_PER_SEC * 1000 / (2 * cir);
        let (mut g_sr, mut g_tr, mut y_tr, mut g_r4) = (0u64, 0u64, 0u64, 0u64);
        for i in 0..25_000u64 {
            let t = i * gap;
            if sr.meter(t, 1000) == Green {
                g_sr += 1000;
            }
            match tr.meter(t, 1000) {
                Green => g_tr += 1000,
                Yellow => y_tr += 1000,
                Red => {}
            }
            if r4.meter(t, 1000) == Green {
                g_r4 += 1000;
            }
        }
        let expect = cir * 10;
        for g in [g_sr, g_tr, g_r4] {
            assert!(g.abs_diff(expect) <= expect / 100, "green {g} vs {expect}");
        }
        assert!((g_tr + y_tr).abs_diff(pir * 10) <= pir / 10, "trTCM passes PIR");
    }
}
