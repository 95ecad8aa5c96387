//! IEEE 802.1Q tags.
//!
//! The view covers the bytes that follow a TPID of 0x8100 (or 0x88A8 for an S-tag):
//! the tag control information (PCP, DEI, VID) and the EtherType of what follows.

use crate::ethernet::EtherType;
use crate::{Error, Result, read_u16, write_u16};

mod field {
    use core::ops::{Range, RangeFrom};
    pub(super) const TCI: Range<usize> = 0..2;
    pub(super) const ETHERTYPE: Range<usize> = 2..4;
    pub(super) const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of a tag after its TPID.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// The highest VLAN id that may be carried; 4095 is reserved (802.1Q Table 9-2).
pub const MAX_VID: u16 = 4094;

/// A view of an 802.1Q tag and what follows it.
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

    /// Ensures the tag fits.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn tci(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI.start)
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of the tagged payload.
    pub fn ethertype(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start).into()
    }

    /// The tagged payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets PCP, DEI and VID at once.
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = (u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff);
        write_u16(self.buffer.as_mut(), field::TCI.start, tci);
    }

    /// Sets the inner EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, t.into());
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// High-level representation of an 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id, 0..=4094 (0 = priority tag only).
    pub vid: u16,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses a tag; VID 4095 is refused as reserved.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.vid() > MAX_VID {
            return Err(Error::Malformed("VLAN id 4095 is reserved"));
        }
        Ok(Repr { pcp: packet.pcp(), dei: packet.dei(), vid: packet.vid(), ethertype: packet.ethertype() })
    }

    /// Tag length (after the TPID).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_tci(self.pcp, self.dei, self.vid);
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // PCP 5, DEI 0, VID 100, inner IPv4.
    static TAG: [u8; 6] = [0xa0, 0x64, 0x08, 0x00, 0x45, 0x00];

    #[test]
    fn parse_vector() {
        let p = Packet::new_checked(&TAG[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r, Repr { pcp: 5, dei: false, vid: 100, ethertype: EtherType::Ipv4 });
        assert_eq!(p.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn emit_vector() {
        let r = Repr { pcp: 5, dei: false, vid: 100, ethertype: EtherType::Ipv4 };
        let mut buf = [0u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, TAG[..4]);
    }

    #[test]
    fn dei_and_reserved_vid() {
        let p = Packet::new_checked(&[0x1f, 0xff, 0x08, 0x00][..]).unwrap();
        assert!(p.dei());
        assert_eq!(Repr::parse(&p), Err(Error::Malformed("VLAN id 4095 is reserved")));
        assert_eq!(Packet::new_checked(&[0u8; 3][..]).unwrap_err(), Error::Truncated);
    }
}
