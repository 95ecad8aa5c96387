//! IEEE 802.1ah backbone service instance tag (I-TAG, "MAC-in-MAC", PBB).
//!
//! A PBB frame is `B-DA B-SA [0x88A8 B-TAG] 0x88E7 I-TAG C-DA C-SA ...`: the view here
//! covers the bytes after the 0x88E7 EtherType: the 4-byte I-TAG TCI (I-PCP, I-DEI,
//! UCA, reserved, 24-bit I-SID) followed by the encapsulated customer Ethernet frame.

use crate::{Error, Result, read_u32, write_u32};

mod field {
    use core::ops::{Range, RangeFrom};
    pub(super) const TCI: Range<usize> = 0..4;
    pub(super) const PAYLOAD: RangeFrom<usize> = 4..;
}

/// Length of the I-TAG TCI.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// Largest I-SID (24 bits).
pub const MAX_ISID: u32 = 0x00ff_ffff;

/// A view of an I-TAG and the customer frame it carries.
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

    /// Ensures the TCI and the customer addresses fit.
    pub fn check_len(&self) -> Result<()> {
        // TCI + C-DA + C-SA: an I-TAG without the customer addresses is meaningless.
        if self.buffer.as_ref().len() < HEADER_LEN + 12 { Err(Error::Truncated) } else { Ok(()) }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn tci(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::TCI.start)
    }

    /// Backbone service instance priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 29) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & (1 << 28) != 0
    }

    /// Use customer addresses.
    pub fn uca(&self) -> bool {
        self.tci() & (1 << 27) != 0
    }

    /// The three reserved bits (must be zero on transmit).
    pub fn reserved(&self) -> u8 {
        ((self.tci() >> 24) & 0x7) as u8
    }

    /// Backbone service instance identifier.
    pub fn isid(&self) -> u32 {
        self.tci() & MAX_ISID
    }

    /// The encapsulated customer frame (starting at C-DA).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets every TCI field; reserved bits are written as zero.
    pub fn set_tci(&mut self, pcp: u8, dei: bool, uca: bool, isid: u32) {
        let tci = (u32::from(pcp & 7) << 29) | (u32::from(dei) << 28) | (u32::from(uca) << 27) | (isid & MAX_ISID);
        write_u32(self.buffer.as_mut(), field::TCI.start, tci);
    }

    /// Mutable customer frame.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// High-level representation of an I-TAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// I-PCP, 0..=7.
    pub pcp: u8,
    /// I-DEI.
    pub dei: bool,
    /// UCA.
    pub uca: bool,
    /// I-SID, 24 bits.
    pub isid: u32,
}

impl Repr {
    /// Parses an I-TAG; set reserved bits are refused.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.reserved() != 0 {
            return Err(Error::Malformed("I-TAG reserved bits set"));
        }
        Ok(Repr { pcp: packet.pcp(), dei: packet.dei(), uca: packet.uca(), isid: packet.isid() })
    }

    /// Length of the TCI.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the TCI.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_tci(self.pcp, self.dei, self.uca, self.isid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // I-PCP 3, DEI 0, UCA 1, I-SID 0x012345, then C-DA and C-SA.
    static ITAG: [u8; 16] = [0x68, 0x01, 0x23, 0x45, 0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a];

    #[test]
    fn parse_vector() {
        let p = Packet::new_checked(&ITAG[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr { pcp: 3, dei: false, uca: true, isid: 0x012345 });
        assert_eq!(&p.payload()[..6], &[0x02, 0, 0, 0, 0, 0x0b]);
    }

    #[test]
    fn emit_vector() {
        let mut buf = ITAG;
        buf[..4].fill(0);
        Repr { pcp: 3, dei: false, uca: true, isid: 0x012345 }.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ITAG);
    }

    #[test]
    fn reserved_and_short() {
        let mut buf = ITAG;
        buf[0] |= 0x01;
        assert!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).is_err());
        assert_eq!(Packet::new_checked(&ITAG[..15]).unwrap_err(), Error::Truncated);
    }
}
