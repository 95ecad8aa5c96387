//! UDP (RFC 768).

use std::net::IpAddr;

use crate::checksum;
use crate::ipv4::protocol;
use crate::{Error, Result, read_u16, write_u16};

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, len: u32) -> Result<u16> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok(checksum::pseudo_header_v4(s, d, protocol::UDP, len)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ok(checksum::pseudo_header_v6(s, d, protocol::UDP, len)),
        _ => Err(Error::Malformed("UDP pseudo-header mixes IPv4 and IPv6")),
    }
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

    /// Ensures the header fits and the length field is sane.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed("UDP length below 8"));
        }
        if len < field_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The length field is at most a header (never true for a checked packet with payload).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0 = not computed, IPv4 only).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Verifies the checksum against the pseudo-header. A zero checksum over IPv4
    /// means "none" (RFC 768) and verifies.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<bool> {
        if self.checksum() == 0 && src.is_ipv4() {
            return Ok(true);
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        Ok(checksum::combine(&[pseudo_sum(src, dst, u32::from(len))?, checksum::sum(data)]) == 0xffff)
    }

    /// The payload, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Computes the checksum over header, payload and pseudo-header.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) -> Result<()> {
        self.set_checksum(0);
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let sum = checksum::combine(&[pseudo_sum(src, dst, u32::from(len))?, checksum::sum(data)]);
        // A computed zero is sent as all ones (RFC 768).
        let c = match !sum {
            0 => 0xffff,
            c => c,
        };
        self.set_checksum(c);
        Ok(())
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// High-level representation of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked datagram, verifying the checksum against the addresses.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, src: IpAddr, dst: IpAddr) -> Result<Repr> {
        packet.check_len()?;
        if packet.dst_port() == 0 {
            return Err(Error::Malformed("UDP destination port 0"));
        }
        if !packet.verify_checksum(src, dst)? {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Header length.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header; the payload must already be in place when `checksum` is
    /// true (the checksum covers it).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: IpAddr,
        dst: IpAddr,
        checksum: bool,
    ) -> Result<()> {
        let len = u16::try_from(self.buffer_len()).map_err(|_| Error::Malformed("UDP length over 65535"))?;
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        if checksum {
            packet.fill_checksum(src, dst)?;
        } else {
            if dst.is_ipv6() {
                return Err(Error::Malformed("UDP over IPv6 requires a checksum"));
            }
            packet.set_checksum(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 1));
    const DST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 2));

    // 49152 -> 4789, 4 payload bytes, checksum over the pseudo-header.
    static PACKET: [u8; 12] = [0xc0, 0x00, 0x12, 0xb5, 0x00, 0x0c, 0xa5, 0xc6, 0x01, 0x02, 0x03, 0x04];

    #[test]
    fn parse_vector() {
        let p = Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST).unwrap(), Repr { src_port: 49152, dst_port: 4789, payload_len: 4 });
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn emit_vector() {
        let mut buf = [0u8; 12];
        buf[8..].copy_from_slice(&[1, 2, 3, 4]);
        Repr { src_port: 49152, dst_port: 4789, payload_len: 4 }
            .emit(&mut Packet::new_unchecked(&mut buf[..]), SRC, DST, true)
            .unwrap();
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn bad_inputs() {
        let mut bad = PACKET;
        bad[11] ^= 0xff;
        assert_eq!(Repr::parse(&Packet::new_checked(&bad[..]).unwrap(), SRC, DST), Err(Error::Checksum));
        let mut short = PACKET;
        short[5] = 4;
        assert!(Packet::new_checked(&short[..]).is_err());
        assert_eq!(Packet::new_checked(&PACKET[..11]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn zero_checksum_means_none_over_ipv4() {
        let mut buf = PACKET;
        buf[6] = 0;
        buf[7] = 0;
        assert!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap(), SRC, DST).is_ok());
    }
}
