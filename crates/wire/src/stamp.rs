//! STAMP, the Simple Two-way Active Measurement Protocol (RFC 8762),
//! unauthenticated mode, with the TLVs of RFC 8972 carried as they come: a
//! Session-Sender test packet, a Session-Reflector test packet, NTP
//! timestamps and the Error Estimate (RFC 4656 §4.1.2).
//!
//! ```text
//! Session-Sender (44 octets + TLVs):        Session-Reflector (44 octets + TLVs):
//!  0 Sequence Number (4)                     0 Sequence Number (4)
//!  4 Timestamp (8)                           4 Timestamp (8)
//! 12 Error Estimate (2)                     12 Error Estimate (2)
//! 14 SSID (2, RFC 8972; was MBZ)            14 SSID (2)
//! 16 MBZ (28)                               16 Receive Timestamp (8)
//!                                           24 Session-Sender Sequence Number (4)
//!                                           28 Session-Sender Timestamp (8)
//!                                           36 Session-Sender Error Estimate (2)
//!                                           38 MBZ (2)
//!                                           40 Ses-Sender TTL (1)
//!                                           41 MBZ (3)
//! TLV: Flags (1: U M I ...) | Type (1) | Length (2) | Value (Length)
//! ```

use crate::{Error, Result, read_u16, read_u32, write_u16, write_u32};

/// The IANA-assigned UDP port of a Session-Reflector.
pub const UDP_PORT: u16 = 862;
/// Length of either base packet.
pub const BASE_LEN: usize = 44;
/// TLV type: Extra Padding (RFC 8972 §4.1).
pub const TLV_EXTRA_PADDING: u8 = 1;
/// TLV flag: unrecognized (set by a reflector on a type it does not know).
pub const TLV_U: u8 = 0x80;

/// Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

fn read_u64(b: &[u8], at: usize) -> u64 {
    (u64::from(read_u32(b, at)) << 32) | u64::from(read_u32(b, at + 4))
}

fn write_u64(b: &mut [u8], at: usize, v: u64) {
    write_u32(b, at, (v >> 32) as u32);
    write_u32(b, at + 4, v as u32);
}

/// Nanoseconds since the Unix epoch as an NTP 64-bit timestamp.
pub fn ntp_from_unix_ns(ns: u64) -> u64 {
    let secs = ns / 1_000_000_000 + NTP_UNIX_OFFSET;
    let frac = ((ns % 1_000_000_000) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// An NTP 64-bit timestamp as nanoseconds since the Unix epoch (0 before it).
pub fn unix_ns_from_ntp(ntp: u64) -> u64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let frac = ((ntp & 0xffff_ffff) * 1_000_000_000 + (1 << 31)) >> 32;
    secs * 1_000_000_000 + frac
}

/// The Error Estimate: how good a timestamp is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorEstimate {
    /// S: the clock is synchronized to UTC by an external source.
    pub synchronized: bool,
    /// Z: PTPv2 timestamps (else NTP).
    pub ptp: bool,
    /// Scale (6 bits).
    pub scale: u8,
    /// Multiplier (not 0 in a valid estimate).
    pub multiplier: u8,
}

impl ErrorEstimate {
    /// From the wire.
    pub fn from_u16(v: u16) -> ErrorEstimate {
        ErrorEstimate {
            synchronized: v & 0x8000 != 0,
            ptp: v & 0x4000 != 0,
            scale: ((v >> 8) & 0x3f) as u8,
            multiplier: v as u8,
        }
    }

    /// To the wire.
    pub fn to_u16(self) -> u16 {
        (u16::from(self.synchronized) << 15)
            | (u16::from(self.ptp) << 14)
            | (u16::from(self.scale & 0x3f) << 8)
            | u16::from(self.multiplier)
    }

    /// The error it states, seconds: multiplier x 2^(scale - 32).
    pub fn seconds(self) -> f64 {
        f64::from(self.multiplier) * 2f64.powi(i32::from(self.scale & 0x3f) - 32)
    }

    /// The smallest estimate of at least `seconds` (NTP timestamps): the
    /// honest way to state a clock's error.
    pub fn at_least(seconds: f64, synchronized: bool) -> ErrorEstimate {
        let mut scale = 0u8;
        // multiplier = ceil(seconds * 2^(32 - scale)) must fit in 8 bits.
        loop {
            let m = (seconds * 2f64.powi(32 - i32::from(scale))).ceil();
            if m <= 255.0 || scale == 63 {
                return ErrorEstimate { synchronized, ptp: false, scale, multiplier: m.clamp(1.0, 255.0) as u8 };
            }
            scale += 1;
        }
    }
}

/// A TLV as carried: flags, type, value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// Flags (U, M, I, ...).
    pub flags: u8,
    /// Type.
    pub kind: u8,
    /// Value.
    pub value: Vec<u8>,
}

fn parse_tlvs(mut b: &[u8]) -> Result<Vec<Tlv>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(Error::Truncated);
        }
        let len = usize::from(read_u16(b, 2));
        let value = b.get(4..4 + len).ok_or(Error::Truncated)?.to_vec();
        out.push(Tlv { flags: b[0], kind: b[1], value });
        b = &b[4 + len..];
    }
    Ok(out)
}

fn tlvs_len(tlvs: &[Tlv]) -> usize {
    tlvs.iter().map(|t| 4 + t.value.len()).sum()
}

fn emit_tlvs(b: &mut [u8], tlvs: &[Tlv]) {
    let mut at = 0;
    for t in tlvs {
        b[at] = t.flags;
        b[at + 1] = t.kind;
        write_u16(b, at + 2, t.value.len() as u16);
        b[at + 4..at + 4 + t.value.len()].copy_from_slice(&t.value);
        at += 4 + t.value.len();
    }
}

/// A Session-Sender test packet (the UDP payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRepr {
    /// Sequence number.
    pub seq: u32,
    /// When it was sent (NTP).
    pub timestamp: u64,
    /// Its Error Estimate.
    pub error: ErrorEstimate,
    /// STAMP Session Identifier (RFC 8972; 0 when the sender sets none).
    pub ssid: u16,
    /// TLVs.
    pub tlvs: Vec<Tlv>,
}

impl SenderRepr {
    /// Parses a test packet. Bytes beyond the base that are not well-formed
    /// TLVs are refused.
    pub fn parse(b: &[u8]) -> Result<SenderRepr> {
        if b.len() < BASE_LEN {
            return Err(Error::Truncated);
        }
        Ok(SenderRepr {
            seq: read_u32(b, 0),
            timestamp: read_u64(b, 4),
            error: ErrorEstimate::from_u16(read_u16(b, 12)),
            ssid: read_u16(b, 14),
            tlvs: parse_tlvs(&b[BASE_LEN..])?,
        })
    }

    /// Its length.
    pub fn buffer_len(&self) -> usize {
        BASE_LEN + tlvs_len(&self.tlvs)
    }

    /// Writes it into `b` (at least [`Self::buffer_len`] bytes; MBZ zeroed).
    pub fn emit(&self, b: &mut [u8]) {
        b[..BASE_LEN].fill(0);
        write_u32(b, 0, self.seq);
        write_u64(b, 4, self.timestamp);
        write_u16(b, 12, self.error.to_u16());
        write_u16(b, 14, self.ssid);
        emit_tlvs(&mut b[BASE_LEN..], &self.tlvs);
    }
}

/// A Session-Reflector test packet (the UDP payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReflectorRepr {
    /// The reflector's own sequence number (stateful: per session).
    pub seq: u32,
    /// When it was sent back (NTP).
    pub timestamp: u64,
    /// Its Error Estimate.
    pub error: ErrorEstimate,
    /// SSID, copied from the test packet.
    pub ssid: u16,
    /// When the test packet arrived (NTP).
    pub receive_timestamp: u64,
    /// The test packet's sequence number.
    pub sender_seq: u32,
    /// The test packet's timestamp.
    pub sender_timestamp: u64,
    /// The test packet's Error Estimate.
    pub sender_error: ErrorEstimate,
    /// The TTL the test packet arrived with.
    pub sender_ttl: u8,
    /// TLVs (the test packet's, as the reflector returns them).
    pub tlvs: Vec<Tlv>,
}

impl ReflectorRepr {
    /// Parses a reflected packet.
    pub fn parse(b: &[u8]) -> Result<ReflectorRepr> {
        if b.len() < BASE_LEN {
            return Err(Error::Truncated);
        }
        Ok(ReflectorRepr {
            seq: read_u32(b, 0),
            timestamp: read_u64(b, 4),
            error: ErrorEstimate::from_u16(read_u16(b, 12)),
            ssid: read_u16(b, 14),
            receive_timestamp: read_u64(b, 16),
            sender_seq: read_u32(b, 24),
            sender_timestamp: read_u64(b, 28),
            sender_error: ErrorEstimate::from_u16(read_u16(b, 36)),
            sender_ttl: b[40],
            tlvs: parse_tlvs(&b[BASE_LEN..])?,
        })
    }

    /// Its length.
    pub fn buffer_len(&self) -> usize {
        BASE_LEN + tlvs_len(&self.tlvs)
    }

    /// Writes it into `b` (at least [`Self::buffer_len`] bytes; MBZ zeroed).
    pub fn emit(&self, b: &mut [u8]) {
        b[..BASE_LEN].fill(0);
        write_u32(b, 0, self.seq);
        write_u64(b, 4, self.timestamp);
        write_u16(b, 12, self.error.to_u16());
        write_u16(b, 14, self.ssid);
        write_u64(b, 16, self.receive_timestamp);
        write_u32(b, 24, self.sender_seq);
        write_u64(b, 28, self.sender_timestamp);
        write_u16(b, 36, self.sender_error.to_u16());
        b[40] = self.sender_ttl;
        emit_tlvs(&mut b[BASE_LEN..], &self.tlvs);
    }

    /// The stateful reflector's answer to `test` (arrived at `received`
    /// with `ttl`, sent back at `now`): its own sequence number, the test
    /// packet's fields, and its TLVs returned (RFC 8972 §4: a type the
    /// reflector does not know comes back flagged U; it knows Extra Padding).
    pub fn reflect(
        test: &SenderRepr,
        seq: u32,
        received: u64,
        ttl: u8,
        now: u64,
        error: ErrorEstimate,
    ) -> ReflectorRepr {
        ReflectorRepr {
            seq,
            timestamp: now,
            error,
            ssid: test.ssid,
            receive_timestamp: received,
            sender_seq: test.seq,
            sender_timestamp: test.timestamp,
            sender_error: test.error,
            sender_ttl: ttl,
            tlvs: test
                .tlvs
                .iter()
                .map(|t| Tlv {
                    flags: if t.kind == TLV_EXTRA_PADDING { t.flags } else { t.flags | TLV_U },
                    ..t.clone()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ntp_timestamps_round_trip_to_the_nanosecond() {
        for ns in [0u64, 1, 999_999_999, 1_796_645_039_123_456_789] {
            assert_eq!(unix_ns_from_ntp(ntp_from_unix_ns(ns)), ns);
        }
        // 1970-01-01 is 2208988800 s after 1900-01-01.
        assert_eq!(ntp_from_unix_ns(0) >> 32, 2_208_988_800);
    }

    #[test]
    fn an_error_estimate_is_never_smaller_than_the_error() {
        for s in [1e-9, 1e-6, 1e-3, 0.02, 1.0, 100.0] {
            let e = ErrorEstimate::at_least(s, true);
            assert!(e.seconds() >= s && e.seconds() < 1.01 * s + 2f64.powi(-32) * 2.0, "{s}: {e:?} = {}", e.seconds());
            assert_eq!(ErrorEstimate::from_u16(e.to_u16()), e);
        }
    }

    #[test]
    fn the_base_packets_are_44_octets_and_tlvs_follow() {
        let s = SenderRepr {
            seq: 7,
            timestamp: 0x0102_0304_0506_0708,
            error: ErrorEstimate::at_least(1e-6, true),
            ssid: 0,
            tlvs: vec![Tlv { flags: 0, kind: TLV_EXTRA_PADDING, value: vec![0; 8] }],
        };
        let mut b = vec![0xaa; s.buffer_len()];
        s.emit(&mut b);
        assert_eq!(b.len(), 44 + 12);
        assert!(b[16..44].iter().all(|&x| x == 0), "MBZ");
        assert_eq!(SenderRepr::parse(&b).unwrap(), s);
        assert!(SenderRepr::parse(&b[..43]).is_err());
        assert!(SenderRepr::parse(&b[..50]).is_err(), "a TLV cut short");
        let unknown = SenderRepr { tlvs: vec![Tlv { flags: 0, kind: 250, value: vec![1] }], ..s.clone() };
        let r = ReflectorRepr::reflect(&unknown, 3, 10, 255, 11, ErrorEstimate::at_least(1e-6, true));
        assert_eq!(r.tlvs[0].flags & TLV_U, TLV_U);
        assert_eq!((r.sender_seq, r.sender_timestamp, r.sender_ttl), (7, 0x0102_0304_0506_0708, 255));
    }

    fn tlvs() -> impl Strategy<Value = Vec<Tlv>> {
        proptest::collection::vec(
            (any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(flags, kind, value)| Tlv { flags, kind, value }),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn sender_packets_round_trip(seq: u32, ts: u64, e: u16, ssid: u16, t in tlvs()) {
            let s = SenderRepr { seq, timestamp: ts, error: ErrorEstimate::from_u16(e), ssid, tlvs: t };
            let mut b = vec![0; s.buffer_len()];
            s.emit(&mut b);
            prop_assert_eq!(SenderRepr::parse(&b).unwrap(), s);
        }

        #[test]
        fn reflector_packets_round_trip(seq: u32, ts: u64, rx: u64, sseq: u32, sts: u64, e: u16, ttl: u8, t in tlvs()) {
            let r = ReflectorRepr {
                seq, timestamp: ts, error: ErrorEstimate::from_u16(e), ssid: 5, receive_timestamp: rx, sender_seq: sseq,
                sender_timestamp: sts, sender_error: ErrorEstimate::from_u16(e.rotate_left(3)), sender_ttl: ttl, tlvs: t,
            };
            let mut b = vec![0; r.buffer_len()];
            r.emit(&mut b);
            prop_assert_eq!(ReflectorRepr::parse(&b).unwrap(), r);
        }

        #[test]
        fn parsing_never_panics(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = SenderRepr::parse(&b);
            let _ = ReflectorRepr::parse(&b);
        }
    }
}
