//! Fuzz target: substrate descriptions must parse and validate or fail with a
//! field error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_model::Substrate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Substrate::from_text(text);
});
