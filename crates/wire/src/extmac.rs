//! The netslice extended-MAC frame (design brief §7): a non-IP protocol with
//! 16-byte addresses that a slice carries end to end.
//!
//! Carried in an Ethernet II frame with EtherType 0x88B5. The view covers the
//! Ethernet payload:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | version = 1 |
//! | 1 | 1 | address length = 16 |
//! | 2 | 2 | inner EtherType |
//! | 4 | 16 | destination |
//! | 20 | 16 | source |
//! | 36 | .. | payload |

use core::fmt;

use crate::ethernet::EtherType;
use crate::{Error, Result, read_u16, write_u16};

/// The only version defined.
pub const VERSION: u8 = 1;
/// The only address length defined.
pub const ADDR_LEN: u8 = 16;
/// Length of the header.
pub const HEADER_LEN: usize = 36;

mod field {
    use core::ops::Range;
    pub(super) const VERSION: usize = 0;
    pub(super) const ADDR_LEN: usize = 1;
    pub(super) const ETHERTYPE: Range<usize> = 2..4;
    pub(super) const DST: Range<usize> = 4..20;
    pub(super) const SRC: Range<usize> = 20..36;
}

/// A 16-byte extended-MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ExtAddr(pub [u8; 16]);

impl ExtAddr {
    /// The broadcast address (all ones).
    pub const BROADCAST: ExtAddr = ExtAddr([0xff; 16]);

    /// The group bit (lowest bit of the first byte, as in IEEE 802 addresses).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    fn from_bytes(b: &[u8]) -> ExtAddr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        ExtAddr(a)
    }
}

impl fmt::Display for ExtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 && i % 2 == 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ExtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtAddr({self})")
    }
}

impl core::str::FromStr for ExtAddr {
    type Err = Error;
    /// Parses 32 hex digits, optionally grouped by `:` (e.g. `0200:0000:...`).
    fn from_str(s: &str) -> Result<ExtAddr> {
        let hex: String = s.chars().filter(|&c| c != ':').collect();
        if hex.len() != 32 || !hex.is_ascii() {
            return Err(Error::Malformed("extended-MAC address must be 32 hex digits"));
        }
        let mut a = [0u8; 16];
        for (i, byte) in a.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| Error::Malformed("extended-MAC address must be 32 hex digits"))?;
        }
        Ok(ExtAddr(a))
    }
}

/// A view of an extended-MAC frame (the Ethernet payload).
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

    /// Ensures the header fits.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    /// Version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Address length field.
    pub fn addr_len(&self) -> u8 {
        self.buffer.as_ref()[field::ADDR_LEN]
    }

    /// EtherType of the payload.
    pub fn ethertype(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start).into()
    }

    /// Destination address.
    pub fn dst_addr(&self) -> ExtAddr {
        ExtAddr::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    /// Source address.
    pub fn src_addr(&self) -> ExtAddr {
        ExtAddr::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// Payload (may include Ethernet padding; the format carries no length).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version and address length.
    pub fn set_version_and_len(&mut self) {
        let b = self.buffer.as_mut();
        b[field::VERSION] = VERSION;
        b[field::ADDR_LEN] = ADDR_LEN;
    }

    /// Sets the inner EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, t.into());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: ExtAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: ExtAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// High-level representation of an extended-MAC header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// EtherType of the payload.
    pub ethertype: EtherType,
    /// Destination.
    pub dst_addr: ExtAddr,
    /// Source.
    pub src_addr: ExtAddr,
}

impl Repr {
    /// Parses a checked frame; other versions and address lengths are refused.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(Error::Unsupported("extended-MAC version"));
        }
        if packet.addr_len() != ADDR_LEN {
            return Err(Error::Malformed("extended-MAC address length is not 16"));
        }
        Ok(Repr { ethertype: packet.ethertype(), dst_addr: packet.dst_addr(), src_addr: packet.src_addr() })
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_and_len();
        packet.set_ethertype(self.ethertype);
        packet.set_dst_addr(self.dst_addr);
        packet.set_src_addr(self.src_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> [u8; 40] {
        let mut v = [0u8; 40];
        v[0] = 1;
        v[1] = 16;
        v[2] = 0x12;
        v[3] = 0x34;
        v[4..20].copy_from_slice(&[0xff; 16]);
        for (i, b) in v[20..36].iter_mut().enumerate() {
            *b = i as u8;
        }
        v[36..].copy_from_slice(b"data");
        v
    }

    #[test]
    fn parse_vector() {
        let v = vector();
        let p = Packet::new_checked(&v[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.ethertype, EtherType::Unknown(0x1234));
        assert_eq!(r.dst_addr, ExtAddr::BROADCAST);
        assert_eq!(r.src_addr.0[15], 15);
        assert_eq!(p.payload(), b"data");
    }

    #[test]
    fn emit_vector() {
        let v = vector();
        let r = Repr::parse(&Packet::new_checked(&v[..]).unwrap()).unwrap();
        let mut buf = [0u8; 40];
        buf[36..].copy_from_slice(b"data");
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, v);
    }

    #[test]
    fn bad_inputs() {
        let mut v = vector();
        v[1] = 6;
        assert!(Repr::parse(&Packet::new_checked(&v[..]).unwrap()).is_err());
        let mut v = vector();
        v[0] = 2;
        assert!(Repr::parse(&Packet::new_checked(&v[..]).unwrap()).is_err());
        assert_eq!(Packet::new_checked(&vector()[..35]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn addr_text() {
        let a: ExtAddr = "0200:0000:0000:0000:0000:0000:0000:0001".parse().unwrap();
        assert_eq!(a.to_string(), "0200:0000:0000:0000:0000:0000:0000:0001");
        assert_eq!(a.to_string().parse::<ExtAddr>().unwrap(), a);
        assert!("0200".parse::<ExtAddr>().is_err());
    }
}
