//! Fuzz target: STAMP test packets (RFC 8762/8972), as a reflector and a
//! sender read them from a slice, never panic; what parses re-emits to an
//! equal packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_wire::stamp::{ReflectorRepr, SenderRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = SenderRepr::parse(data) {
        let mut b = vec![0; s.buffer_len()];
        s.emit(&mut b);
        assert_eq!(SenderRepr::parse(&b).unwrap(), s);
    }
    if let Ok(r) = ReflectorRepr::parse(data) {
        let mut b = vec![0; r.buffer_len()];
        r.emit(&mut b);
        assert_eq!(ReflectorRepr::parse(&b).unwrap(), r);
    }
});
