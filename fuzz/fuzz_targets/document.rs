//! Fuzz target: any document, JSON or YAML, declared or guessed, parses or
//! fails with a field error within the document limits: never a panic, and
//! (with `scripts/fuzz.sh`'s `-timeout`) never a slow input. What parses as
//! JSON re-serializes and parses again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_model::document::{Limits, parse_with};
use netslice_model::{Format, parse_as};

/// Tight limits, so that small inputs reach every refusal too.
const SMALL: Limits = Limits { max_bytes: 2048, max_depth: 4, max_nodes: 64 };

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [None, Some(Format::Json), Some(Format::Yaml)] {
        if let Ok(v) = parse_with::<serde_json::Value>(text, format, &SMALL) {
            // What fits the tight limits fits the default ones, as the same value.
            assert_eq!(parse_as::<serde_json::Value>(text, format).ok(), Some(v));
        }
        if let Ok(v) = parse_as::<serde_json::Value>(text, format)
            && format == Some(Format::Json)
        {
            let again = serde_json::to_string(&v).unwrap();
            assert_eq!(parse_as::<serde_json::Value>(&again, Some(Format::Json)).unwrap(), v);
        }
    }
});
