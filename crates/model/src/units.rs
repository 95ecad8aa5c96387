//! Quantities written by people in specs: bandwidth, memory, byte counts,
//! durations, percentages.
//!
//! Each parses from a string with a unit ("100Mbit", "256Mi", "2ms", "0.5%") or a
//! bare number in the base unit, and serializes back to a canonical string, so that
//! `parse(to_string(x)) == x`.

use core::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

fn split_number(s: &str) -> (&str, &str) {
    let s = s.trim();
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (s[..idx].trim(), s[idx..].trim())
}

fn parse_scaled(s: &str, units: &[(&str, u128)], what: &str, example: &str) -> Result<u64, UnitError> {
    let (num, unit) = split_number(s);
    if num.is_empty() {
        return Err(UnitError(format!("{what} {s:?} has no number (example: {example})")));
    }
    // An exact unit first; otherwise a case-insensitive match if it is unambiguous.
    let scale = units
        .iter()
        .find(|(u, _)| *u == unit)
        .or_else(|| {
            let mut it = units.iter().filter(|(u, _)| u.eq_ignore_ascii_case(unit));
            let first = it.next();
            if it.next().is_none() { first } else { None }
        })
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = units.iter().map(|(u, _)| *u).filter(|u| !u.is_empty()).collect();
            UnitError(format!("{what} {s:?}: unknown unit {unit:?} (use one of {})", names.join(", ")))
        })?;
    // Exact decimal arithmetic: "1.5Gbit" = 15 * 10^8, no float rounding.
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if frac.contains('.') || frac.len() > 9 || (int.is_empty() && frac.is_empty()) {
        return Err(UnitError(format!("{what} {s:?} is not a number")));
    }
    let int_v: u128 =
        if int.is_empty() { 0 } else { int.parse().map_err(|_| UnitError(format!("{what} {s:?} is too large")))? };
    let frac_v: u128 = if frac.is_empty() { 0 } else { frac.parse().unwrap_or(0) };
    let denom = 10u128.pow(frac.len() as u32);
    let total = int_v
        .checked_mul(scale)
        .and_then(|a| a.checked_add(frac_v * scale / denom))
        .filter(|&t| t <= u128::from(u64::MAX))
        .ok_or_else(|| UnitError(format!("{what} {s:?} is too large")))?;
    if frac_v * scale % denom != 0 {
        return Err(UnitError(format!("{what} {s:?} is finer than the base unit")));
    }
    Ok(total as u64)
}

/// A bit rate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bandwidth(pub u64);

const BW_UNITS: &[(&str, u128)] = &[
    ("", 1),
    ("bit", 1),
    ("bps", 1),
    ("kbit", 1_000),
    ("kbps", 1_000),
    ("Mbit", 1_000_000),
    ("Mbps", 1_000_000),
    ("Gbit", 1_000_000_000),
    ("Gbps", 1_000_000_000),
    ("Tbit", 1_000_000_000_000),
];

impl Bandwidth {
    /// Bits per second.
    pub fn bps(self) -> u64 {
        self.0
    }

    /// From megabits per second.
    pub const fn mbit(m: u64) -> Bandwidth {
        Bandwidth(m * 1_000_000)
    }
}

impl core::str::FromStr for Bandwidth {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        parse_scaled(s, BW_UNITS, "bandwidth", "100Mbit").map(Bandwidth)
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (unit, scale) in
            [("Tbit", 1_000_000_000_000u64), ("Gbit", 1_000_000_000), ("Mbit", 1_000_000), ("kbit", 1_000)]
        {
            if v >= scale && v % scale == 0 {
                return write!(f, "{}{unit}", v / scale);
            }
        }
        write!(f, "{v}bit")
    }
}

/// An amount of memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Memory(pub u64);

/// Memory units; a bare number is MiB. [`Bytes`] uses the same, with a bare
/// number in bytes (the first entry, replaced).
const MEM_UNITS: &[(&str, u128)] = &[
    ("", 1 << 20),
    ("B", 1),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
];

impl Memory {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// From mebibytes.
    pub const fn mib(m: u64) -> Memory {
        Memory(m << 20)
    }
}

impl core::str::FromStr for Memory {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        parse_scaled(s, MEM_UNITS, "memory", "256Mi").map(Memory)
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (unit, shift) in [("Ti", 40u32), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
            let scale = 1u64 << shift;
            if v >= scale && v % scale == 0 {
                return write!(f, "{}{unit}", v / scale);
            }
        }
        write!(f, "{v}B")
    }
}

/// A number of bytes ("64Ki", "1500", "1.5Mi"): like [`Memory`], but a bare
/// number is bytes (a burst, a buffer), not MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl core::str::FromStr for Bytes {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let mut units = MEM_UNITS.to_vec();
        units[0] = ("", 1);
        parse_scaled(s, &units, "byte count", "64Ki").map(Bytes)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Memory(self.0), f)
    }
}

/// A duration with microsecond resolution ("2ms", "150us", "1.5s", "7d").
///
/// The one duration grammar of netslice: specs (`delay`, `lease`), the API
/// (`renew`'s `for`) and the command line (`--for`, `--lease-max`) all read
/// it. A unit is required (a bare `2` could mean seconds or milliseconds):
/// `us`, `ms`, `s`, `m`, `h`, `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub u64);

const TIME_UNITS: &[(&str, u128)] =
    &[("us", 1), ("ms", 1_000), ("s", 1_000_000), ("m", 60_000_000), ("h", 3_600_000_000), ("d", 86_400_000_000)];

impl Micros {
    /// As a std duration.
    pub fn duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// Whole seconds (rounded down).
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// From whole seconds (saturating).
    pub fn from_secs(s: u64) -> Micros {
        Micros(s.saturating_mul(1_000_000))
    }
}

impl core::str::FromStr for Micros {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let (num, unit) = split_number(s);
        if !num.is_empty() {
            if unit.is_empty() {
                return Err(UnitError(format!("duration {s:?} needs a unit (us, ms, s, m, h, d; e.g. {num}s)")));
            }
            // Case matters here: "m" is minutes, "ms" milliseconds, and there is no "M".
            if !TIME_UNITS.iter().any(|(u, _)| *u == unit) {
                return Err(UnitError(format!(
                    "duration {s:?}: unknown unit {unit:?} (use one of us, ms, s, m, h, d)"
                )));
            }
        }
        parse_scaled(s, TIME_UNITS, "duration", "2ms").map(Micros)
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (unit, scale) in
            [("d", 86_400_000_000u64), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1_000)]
        {
            if v >= scale && v % scale == 0 {
                return write!(f, "{}{unit}", v / scale);
            }
        }
        write!(f, "{v}us")
    }
}

/// A probability written as a percentage ("0.5%"), stored in parts per million.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(pub u32);

impl Percent {
    /// Parts per million.
    pub fn ppm(self) -> u32 {
        self.0
    }
}

impl core::str::FromStr for Percent {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let t = s.trim();
        let num = t.strip_suffix('%').unwrap_or(t);
        // percent * 10_000 = ppm
        let ppm = parse_scaled(num, &[("", 10_000)], "percentage", "0.5%")?;
        if ppm > 1_000_000 {
            return Err(UnitError(format!("percentage {s:?} is over 100%")));
        }
        Ok(Percent(ppm as u32))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let s = format!("{frac:04}");
            write!(f, "{whole}.{}%", s.trim_end_matches('0'))
        }
    }
}

macro_rules! serde_via_string {
    ($t:ty, $expecting:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(|e: UnitError| E::custom(e.0))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        v.to_string().parse().map_err(|e: UnitError| E::custom(e.0))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                        if v < 0 {
                            return Err(E::custom(format!("{v} is negative")));
                        }
                        self.visit_u64(v as u64)
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<$t, E> {
                        if v.is_nan() || v < 0.0 {
                            return Err(E::custom(format!("{v} is negative or not a number")));
                        }
                        format!("{v}").parse().map_err(|e: UnitError| E::custom(e.0))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

serde_via_string!(Bandwidth, "a bandwidth such as \"100Mbit\" or \"1Gbit\"");
serde_via_string!(Memory, "a memory size such as \"256Mi\" or \"1Gi\" (a bare number is MiB)");
serde_via_string!(Bytes, "a byte count such as \"64Ki\" or \"1500\" (a bare number is bytes)");
serde_via_string!(Micros, "a duration such as \"2ms\", \"48h\" or \"7d\"");
serde_via_string!(Percent, "a percentage such as \"0.5%\"");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bandwidth() {
        assert_eq!("100Mbit".parse::<Bandwidth>().unwrap(), Bandwidth(100_000_000));
        assert_eq!("1.5Gbit".parse::<Bandwidth>().unwrap(), Bandwidth(1_500_000_000));
        assert_eq!("1 Gbps".parse::<Bandwidth>().unwrap(), Bandwidth(1_000_000_000));
        assert_eq!("2500".parse::<Bandwidth>().unwrap(), Bandwidth(2500));
        assert!("fast".parse::<Bandwidth>().is_err());
        assert!("10Xbit".parse::<Bandwidth>().unwrap_err().0.contains("unknown unit"));
        assert!("-5Mbit".parse::<Bandwidth>().is_err());
        assert!("99999999999999999999Tbit".parse::<Bandwidth>().is_err());
        assert_eq!(Bandwidth(1_500_000_000).to_string(), "1500Mbit");
    }

    #[test]
    fn memory() {
        assert_eq!("256Mi".parse::<Memory>().unwrap(), Memory::mib(256));
        assert_eq!("256".parse::<Memory>().unwrap(), Memory::mib(256));
        assert_eq!("1Gi".parse::<Memory>().unwrap().to_string(), "1Gi");
    }

    #[test]
    fn micros_and_percent() {
        assert_eq!("2ms".parse::<Micros>().unwrap(), Micros(2000));
        assert_eq!("1.5s".parse::<Micros>().unwrap(), Micros(1_500_000));
        assert!("2".parse::<Micros>().unwrap_err().0.contains("needs a unit"));
        assert_eq!("7d".parse::<Micros>().unwrap(), Micros(7 * 86_400_000_000));
        assert_eq!("48h".parse::<Micros>().unwrap().secs(), 48 * 3600);
        assert_eq!(Micros(7 * 86_400_000_000).to_string(), "7d");
        assert!("3M".parse::<Micros>().unwrap_err().0.contains("unknown unit"));
        assert!("3w".parse::<Micros>().unwrap_err().0.contains("unknown unit"));
        assert_eq!("0.5%".parse::<Percent>().unwrap(), Percent(5000));
        assert_eq!(Percent(5000).to_string(), "0.5%");
        assert!("101%".parse::<Percent>().is_err());
    }

    #[test]
    fn bytes_are_bytes() {
        assert_eq!("1500".parse::<Bytes>().unwrap(), Bytes(1500));
        assert_eq!("64Ki".parse::<Bytes>().unwrap(), Bytes(65536));
        assert_eq!(serde_json::from_str::<Bytes>("18446744073709551615").unwrap(), Bytes(u64::MAX));
        let e = "18446744073709551616".parse::<Bytes>().unwrap_err().0;
        assert!(e.starts_with("byte count"), "{e}");
    }

    #[test]
    fn serde_forms() {
        let b: Bandwidth = serde_json::from_str("\"10Mbit\"").unwrap();
        assert_eq!(b, Bandwidth(10_000_000));
        let b: Bandwidth = serde_json::from_str("1000").unwrap();
        assert_eq!(b, Bandwidth(1000));
        assert!(serde_json::from_str::<Bandwidth>("-1").is_err());
        assert_eq!(serde_json::to_string(&Bandwidth(10_000_000)).unwrap(), "\"10Mbit\"");
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(b: u64, m: u64, t: u64, p in 0u32..=1_000_000) {
            prop_assert_eq!(Bandwidth(b).to_string().parse::<Bandwidth>().unwrap(), Bandwidth(b));
            prop_assert_eq!(Bytes(m).to_string().parse::<Bytes>().unwrap(), Bytes(m));
            prop_assert_eq!(Memory(m).to_string().parse::<Memory>().unwrap(), Memory(m));
            prop_assert_eq!(Micros(t).to_string().parse::<Micros>().unwrap(), Micros(t));
            prop_assert_eq!(Percent(p).to_string().parse::<Percent>().unwrap(), Percent(p));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = s.parse::<Bandwidth>();
            let _ = s.parse::<Memory>();
            let _ = s.parse::<Micros>();
            let _ = s.parse::<Percent>();
            let _ = s.parse::<Bytes>();
        }
    }
}
