//! Fuzz target: quantities people write (bandwidth, memory, byte counts,
//! durations, percentages) parse or fail, never panic, and what parses prints
//! back to a string that parses to the same value. Names that pass their check
//! need no escaping in a URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_model::{Bandwidth, Bytes, Memory, Micros, Percent, names};

fn roundtrip<T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug>(s: &str) {
    if let Ok(v) = s.parse::<T>() {
        let again: T = v.to_string().parse().ok().expect("printed value parses");
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    roundtrip::<Bandwidth>(s);
    roundtrip::<Memory>(s);
    roundtrip::<Bytes>(s);
    roundtrip::<Micros>(s);
    roundtrip::<Percent>(s);
    for ok in [names::slice(s).is_ok(), names::user(s).is_ok(), names::host(s).is_ok()] {
        if ok {
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
});
