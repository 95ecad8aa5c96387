//! Fuzz target: the bodies agents and clients send the manager (reports,
//! registrations, slice specs, measurement jobs), in either format, never
//! panic; a report or a job that parses round-trips through JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_api::types::MeasureRequest;
use netslice_model::api::{NodeReport, RegisterRequest};
use netslice_model::{Format, SliceSpec, parse_as};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = match sel % 3 {
        0 => None,
        1 => Some(Format::Json),
        _ => Some(Format::Yaml),
    };
    match sel / 3 % 4 {
        0 => {
            if let Ok(r) = parse_as::<NodeReport>(text, format) {
                let json = serde_json::to_string(&r).unwrap();
                assert_eq!(parse_as::<NodeReport>(&json, Some(Format::Json)).unwrap(), r);
            }
        }
        1 => {
            let _ = parse_as::<RegisterRequest>(text, format);
        }
        2 => {
            if let Ok(m) = parse_as::<MeasureRequest>(text, format) {
                let json = serde_json::to_string(&m).unwrap();
                assert_eq!(parse_as::<MeasureRequest>(&json, Some(Format::Json)).unwrap(), m);
            }
        }
        _ => {
            if let Ok(s) = parse_as::<SliceSpec>(text, format) {
                let _ = s.validate();
            }
        }
    }
});
