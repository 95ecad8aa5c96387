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
//! fixed by the design brief: the terminal trailer and the extended-MAC frame;
//! pcapng, the capture file format ([`pcapng`]); and STAMP test packets
//! (RFC 8762/8972, [`stamp`]).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod extmac;
pub mod gre;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv6;
pub mod itag;
pub mod pcapng;
pub mod stamp;
pub mod tcp;
pub mod trailer;
pub mod udp;
pub mod vlan;
pub mod vnet;
pub mod vxlan;

mod bytes;
mod error;

pub(crate) use bytes::{read_u16, read_u32, write_u16, write_u32};
pub use error::{Error, Result};
pub use ethernet::{EtherType, MacAddr};
