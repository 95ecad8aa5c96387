//! GRE (RFC 2784) with the key and sequence number extensions of RFC 2890.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (Optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (Optional)                    |
//! ```
//!
//! netslice uses the key as the per-hop label of a virtual link.

use crate::checksum;
use crate::ethernet::EtherType;
use crate::{Error, Result, read_u16, read_u32, write_u16, write_u32};

const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
/// Bit 1 (routing present in RFC 1701) and bits 4..12: must be zero (RFC 2784 §2.3).
const RESERVED0: u16 = 0x4ff8;
const VERSION: u16 = 0x0007;

mod field {
    use core::ops::Range;
    pub(super) const FLAGS: Range<usize> = 0..2;
    pub(super) const PROTOCOL: Range<usize> = 2..4;
}

/// Length of the fixed part of the header.
pub const BASE_HEADER_LEN: usize = 4;

/// A view of a GRE packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Ensures the fixed header and every present optional field fit.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_HEADER_LEN || len < self.header_len() { Err(Error::Truncated) } else { Ok(()) }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS.start)
    }

    /// Checksum present.
    pub fn has_checksum(&self) -> bool {
        self.flags() & FLAG_C != 0
    }

    /// Key present.
    pub fn has_key(&self) -> bool {
        self.flags() & FLAG_K != 0
    }

    /// Sequence number present.
    pub fn has_sequence(&self) -> bool {
        self.flags() & FLAG_S != 0
    }

    /// Reserved0 bits (must be zero).
    pub fn reserved0(&self) -> u16 {
        self.flags() & RESERVED0
    }

    /// Version (must be 0).
    pub fn version(&self) -> u8 {
        (self.flags() & VERSION) as u8
    }

    /// Protocol type of the payload (an EtherType).
    pub fn protocol(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::PROTOCOL.start).into()
    }

    /// Header length given the flags.
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        BASE_HEADER_LEN
            + if f & FLAG_C != 0 { 4 } else { 0 }
            + if f & FLAG_K != 0 { 4 } else { 0 }
            + if f & FLAG_S != 0 { 4 } else { 0 }
    }

    fn key_offset(&self) -> usize {
        BASE_HEADER_LEN + if self.has_checksum() { 4 } else { 0 }
    }

    /// Checksum field, if present.
    pub fn checksum(&self) -> Option<u16> {
        self.has_checksum().then(|| read_u16(self.buffer.as_ref(), BASE_HEADER_LEN))
    }

    /// Key, if present.
    pub fn key(&self) -> Option<u32> {
        self.has_key().then(|| read_u32(self.buffer.as_ref(), self.key_offset()))
    }

    /// Sequence number, if present.
    pub fn sequence(&self) -> Option<u32> {
        let at = self.key_offset() + if self.has_key() { 4 } else { 0 };
        self.has_sequence().then(|| read_u32(self.buffer.as_ref(), at))
    }

    /// Checksum is absent, or correct over header and payload.
    pub fn verify_checksum(&self) -> bool {
        !self.has_checksum() || checksum::sum(self.buffer.as_ref()) == 0xffff
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes flags (version 0) and protocol type.
    pub fn set_flags_and_protocol(&mut self, checksum: bool, key: bool, seq: bool, protocol: EtherType) {
        let f = if checksum { FLAG_C } else { 0 } | if key { FLAG_K } else { 0 } | if seq { FLAG_S } else { 0 };
        let b = self.buffer.as_mut();
        write_u16(b, field::FLAGS.start, f);
        write_u16(b, field::PROTOCOL.start, protocol.into());
    }

    /// Overwrites the key in place (label swap). Does nothing if no key is present.
    pub fn set_key(&mut self, key: u32) {
        if self.has_key() {
            let at = self.key_offset();
            write_u32(self.buffer.as_mut(), at, key);
        }
    }

    /// Overwrites the sequence number. Does nothing if absent.
    pub fn set_sequence(&mut self, seq: u32) {
        if self.has_sequence() {
            let at = self.key_offset() + if self.has_key() { 4 } else { 0 };
            write_u32(self.buffer.as_mut(), at, seq);
        }
    }

    /// Recomputes the checksum if present (over header and payload, RFC 2784 §2.5).
    pub fn fill_checksum(&mut self) {
        if self.has_checksum() {
            let b = self.buffer.as_mut();
            write_u32(b, BASE_HEADER_LEN, 0);
            let c = checksum::checksum(b);
            write_u16(b, BASE_HEADER_LEN, c);
        }
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// High-level representation of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Payload protocol (0x6558 for Ethernet frames).
    pub protocol: EtherType,
    /// Whether a checksum is present.
    pub checksum: bool,
    /// Key (RFC 2890 §2.1).
    pub key: Option<u32>,
    /// Sequence number (RFC 2890 §2.2).
    pub sequence: Option<u32>,
}

impl Repr {
    /// Parses a checked packet. Non-zero Reserved0 bits or a version other than 0
    /// are refused (RFC 2784 §2.3: the receiver must discard), as is a bad checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 0 {
            return Err(Error::Unsupported("GRE version other than 0"));
        }
        if packet.reserved0() != 0 {
            return Err(Error::Malformed("GRE reserved bits set"));
        }
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            protocol: packet.protocol(),
            checksum: packet.has_checksum(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// Header length.
    pub fn buffer_len(&self) -> usize {
        BASE_HEADER_LEN
            + if self.checksum { 4 } else { 0 }
            + if self.key.is_some() { 4 } else { 0 }
            + if self.sequence.is_some() { 4 } else { 0 }
    }

    /// Writes the header. With `checksum`, the payload must already be in place and
    /// the packet's buffer must end where the payload ends.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags_and_protocol(self.checksum, self.key.is_some(), self.sequence.is_some(), self.protocol);
        if self.checksum {
            write_u32(packet.buffer.as_mut(), BASE_HEADER_LEN, 0);
        }
        if let Some(k) = self.key {
            packet.set_key(k);
        }
        if let Some(s) = self.sequence {
            packet.set_sequence(s);
        }
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // K and S set, Ethernet payload, key 0x00000064, sequence 7, 2 payload bytes.
    static KEYED: [u8; 14] = [0x30, 0x00, 0x65, 0x58, 0, 0, 0, 0x64, 0, 0, 0, 7, 0xab, 0xcd];
    // C set, IPv4 payload, 2 payload bytes.
    static CSUM: [u8; 10] = [0x80, 0x00, 0x08, 0x00, 0x76, 0xff, 0x00, 0x00, 0x01, 0x00];

    #[test]
    fn parse_keyed() {
        let p = Packet::new_checked(&KEYED[..]).unwrap();
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr { protocol: EtherType::TransparentEthernet, checksum: false, key: Some(100), sequence: Some(7) }
        );
        assert_eq!(p.payload(), &[0xab, 0xcd]);
    }

    #[test]
    fn emit_keyed() {
        let mut buf = [0u8; 14];
        buf[12..].copy_from_slice(&[0xab, 0xcd]);
        Repr { protocol: EtherType::TransparentEthernet, checksum: false, key: Some(100), sequence: Some(7) }
            .emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, KEYED);
    }

    #[test]
    fn checksum_vector() {
        let p = Packet::new_checked(&CSUM[..]).unwrap();
        assert!(Repr::parse(&p).unwrap().checksum);
        let mut buf = [0u8; 10];
        buf[8..].copy_from_slice(&[0x01, 0x00]);
        Repr { protocol: EtherType::Ipv4, checksum: true, key: None, sequence: None }
            .emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, CSUM);
        let mut bad = CSUM;
        bad[9] = 1;
        assert_eq!(Repr::parse(&Packet::new_checked(&bad[..]).unwrap()), Err(Error::Checksum));
    }

    #[test]
    fn label_swap_in_place() {
        let mut buf = KEYED;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.set_key(0xdead_beef);
        assert_eq!(p.key(), Some(0xdead_beef));
        assert_eq!(p.sequence(), Some(7));
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(Packet::new_checked(&KEYED[..11]).unwrap_err(), Error::Truncated);
        let mut v1 = KEYED;
        v1[1] = 0x01;
        assert!(Repr::parse(&Packet::new_checked(&v1[..]).unwrap()).is_err());
        let mut routing = KEYED;
        routing[0] |= 0x40;
        assert!(Repr::parse(&Packet::new_checked(&routing[..]).unwrap()).is_err());
    }
}
