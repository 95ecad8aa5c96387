//! Fuzz target: the virtio-net header a TAP (that is, a sliver's kernel)
//! puts before every frame: every buffer of 10 bytes or more reads as a
//! header that re-emits to the same bytes; the agent's checksum completion
//! never panics on what it says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_dataplane::gso;
use netslice_wire::vnet;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = vnet::Header::new_checked(data) else { return };
    let r = vnet::Repr::parse(&h);
    let mut buf = [0u8; vnet::HEADER_LEN];
    r.emit(&mut vnet::Header::new_unchecked(&mut buf[..]));
    assert_eq!(&buf[..], &data[..vnet::HEADER_LEN]);
    // What follows is the frame the header describes.
    let mut frame = data[vnet::HEADER_LEN..].to_vec();
    let _ = gso::complete_csum(&mut frame, usize::from(r.csum_start), usize::from(r.csum_offset));
    let _ = gso::super_frame(&frame, 1514);
});
