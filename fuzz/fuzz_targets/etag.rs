//! Fuzz target: `If-Match` / `If-None-Match` values (RFC 9110 entity tag
//! lists) parse or fail, never panic; what parses prints back to a value
//! that parses the same, and only strong numeric tags name revisions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_api::etag::{Condition, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = parse(data) {
        assert_eq!(parse(c.to_string().as_bytes()).as_ref(), Ok(&c));
        if let Condition::Tags(tags) = &c {
            for t in tags {
                if let Some(r) = t.revision() {
                    assert!(!t.weak && t.opaque.bytes().all(|b| b.is_ascii_digit()));
                    assert_eq!(t.opaque.parse::<u64>(), Ok(r));
                }
            }
        }
    }
});
