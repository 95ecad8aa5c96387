//! Fuzz target: super-frame recognition, software segmentation, checksum
//! completion and the virtio-net header parser on arbitrary bytes: never
//! panics, segments never exceed the asked frame size, and the segments'
//! payloads add up to the super-frame's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_dataplane::gso::{complete_csum, read_vnet_hdr, segment, super_frame};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let max = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let (start, off) = (usize::from(data[2]) * 4, usize::from(data[3]));
    let frame = &data[4..];
    let _ = read_vnet_hdr(frame);
    if let Some(s) = super_frame(frame, max) {
        let mut out = vec![0u8; s.hdr_len() + s.mss];
        let mut payload = 0;
        for k in 0..s.segs {
            let n = segment(frame, s.l3, &s, k, &mut out);
            assert!(n <= max, "segment of {n} bytes over {max}");
            payload += n - s.hdr_len();
        }
        assert_eq!(payload, frame.len() - s.hdr_len());
    }
    let mut copy = frame.to_vec();
    complete_csum(&mut copy, start, off);
});
