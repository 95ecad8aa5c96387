//! Fuzz target: slice specs (API bodies and CLI files) must parse or fail with a
//! field error, never panic; what validates re-serializes to an equal spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_model::SliceSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = SliceSpec::from_text(text) {
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(SliceSpec::from_text(&json).unwrap(), spec);
    }
});
