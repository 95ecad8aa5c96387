//! Packet formats carried by netslice, in the style of smoltcp's `wire` module.
//!
//! Every format has
//! - a `mod field` of byte ranges,
//! - a zero-copy view (`Packet<T: AsRef<[u8]>>` or `Frame<T>`) whose `new_checked`
//!   validates lengths once, after which no accessor panics,
//! - setters on `T: AsMut<[u8]>`,
//! - a `Repr` with `parse`, `emit` and `buffer_len` (or `header_len`), so that
//!   `Repr::parse(emit(r)) == r` (checked with proptest in `tests/roundtrip.rs`).
//!
//! Parsers never panic on any input; each has a `cargo fuzz` target in `fuzz/`.
//!
//! Formats: Ethernet II, ARP, IEEE 802.1Q tags, IEEE 802.1ah I-TAG (MAC-in-MAC), IPv4,
//! IPv6 base header, UDP, TCP (header fields, options carried opaque), the
//! virtio-net header a TAP puts before frames, ICMPv4 echo, GRE (RFC 2784 with the key and sequence
//! number extensions of RFC 2890), VXLAN (RFC 7348), and the two netslice formats
//! fixed by the design brief: the terminal trailer and the extended-MAC frame.

#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod extmac;
pub mod gre;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv6;
pub mod itag;
pub mod tcp;
pub mod trailer;
pub mod udp;
pub mod vlan;
pub mod vnet;
pub mod vxlan;

pub use ethernet::{EtherType, MacAddr};

/// Why a buffer could not be read as a packet of some format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header (or the length the header claims).
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the format does not allow.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The checksum does not match the contents.
    #[error("bad checksum")]
    Checksum,
    /// Valid, but a variant this implementation does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Result of parsing.
pub type Result<T> = core::result::Result<T, Error>;

pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
