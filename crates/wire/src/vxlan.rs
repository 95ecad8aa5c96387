//! VXLAN (RFC 7348 §5). Carried in UDP to port 4789; netslice uses the VNI as the
//! per-hop label of a virtual link.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```

use crate::{Error, Result, read_u32, write_u32};

/// The IANA-assigned UDP port.
pub const UDP_PORT: u16 = 4789;
/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
const FLAG_I: u32 = 0x0800_0000;

/// A view of a VXLAN packet (the UDP payload).
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

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The first word: flags and reserved bits.
    pub fn flags_word(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 0)
    }

    /// The I flag (VNI valid).
    pub fn vni_valid(&self) -> bool {
        self.flags_word() & FLAG_I != 0
    }

    /// The VNI.
    pub fn vni(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4) >> 8
    }

    /// The low reserved byte of the second word.
    pub fn reserved2(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the I flag and a VNI; reserved fields are zeroed.
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        write_u32(b, 0, FLAG_I);
        write_u32(b, 4, (vni & MAX_VNI) << 8);
    }

    /// Mutable inner frame.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// High-level representation of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
}

impl Repr {
    /// Parses a checked packet. The I flag must be set (RFC 7348 §5); reserved bits
    /// are ignored on receipt, as the RFC requires.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(Error::Malformed("VXLAN I flag clear"));
        }
        Ok(Repr { vni: packet.vni() })
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; a VNI wider than 24 bits is an error.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        if self.vni > MAX_VNI {
            return Err(Error::Malformed("VNI wider than 24 bits"));
        }
        packet.set_vni(self.vni);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PACKET: [u8; 10] = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0, 0xaa, 0xbb];

    #[test]
    fn parse_vector() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr { vni: 0x123456 });
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn emit_vector() {
        let mut buf = [0u8; 10];
        buf[8..].copy_from_slice(&[0xaa, 0xbb]);
        Repr { vni: 0x123456 }.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn bad_inputs() {
        let mut no_i = PACKET;
        no_i[0] = 0;
        assert!(Repr::parse(&Packet::new_checked(&no_i[..]).unwrap()).is_err());
        assert_eq!(Packet::new_checked(&PACKET[..7]).unwrap_err(), Error::Truncated);
        let mut buf = [0u8; 8];
        assert!(Repr { vni: 1 << 24 }.emit(&mut Packet::new_unchecked(&mut buf[..])).is_err());
    }
}
