//! The virtio-net header (`struct virtio_net_hdr`, virtio 1.2 section
//! 5.1.6) that a TAP in `IFF_VNET_HDR` mode puts before every frame: whether
//! the frame's checksum is partial, and how a TCP super-frame is to be cut.
//! Its fields are little-endian on the hosts netslice runs on (the legacy
//! layout follows the host's byte order; every supported host is
//! little-endian), unlike every other header here.

use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub(super) const FLAGS: usize = 0;
    pub(super) const GSO_TYPE: usize = 1;
    pub(super) const HDR_LEN: Range<usize> = 2..4;
    pub(super) const GSO_SIZE: Range<usize> = 4..6;
    pub(super) const CSUM_START: Range<usize> = 6..8;
    pub(super) const CSUM_OFFSET: Range<usize> = 8..10;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CSUM_OFFSET.end;

/// `flags`: the checksum is partial; complete it from `csum_start` to the end.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum is known to be good.
pub const F_DATA_VALID: u8 = 2;
/// `gso_type`: not a super-frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP (fragmentation offload).
pub const GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the sender set ECN CWR on the first segment.
pub const GSO_ECN: u8 = 0x80;

fn read_le16(b: &[u8], at: core::ops::Range<usize>) -> u16 {
    u16::from_le_bytes([b[at.start], b[at.start + 1]])
}

/// A view of a virtio-net header.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer of at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Header<T>> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Header { buffer })
    }

    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// `GSO_*`.
    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// Bytes of headers (Ethernet + IP + TCP) before the payload.
    pub fn hdr_len(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::HDR_LEN)
    }

    /// Payload bytes per segment.
    pub fn gso_size(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::GSO_SIZE)
    }

    /// Where checksumming starts (the L4 header).
    pub fn csum_start(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::CSUM_START)
    }

    /// Offset of the checksum field from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        read_le16(self.buffer.as_ref(), field::CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn write_le16(&mut self, at: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&v.to_le_bytes());
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }

    /// Sets the GSO type.
    pub fn set_gso_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = v;
    }

    /// Sets the header length.
    pub fn set_hdr_len(&mut self, v: u16) {
        self.write_le16(field::HDR_LEN, v);
    }

    /// Sets the segment size.
    pub fn set_gso_size(&mut self, v: u16) {
        self.write_le16(field::GSO_SIZE, v);
    }

    /// Sets where checksumming starts.
    pub fn set_csum_start(&mut self, v: u16) {
        self.write_le16(field::CSUM_START, v);
    }

    /// Sets the checksum field's offset.
    pub fn set_csum_offset(&mut self, v: u16) {
        self.write_le16(field::CSUM_OFFSET, v);
    }
}

/// High-level representation of the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repr {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`.
    pub gso_type: u8,
    /// Bytes of headers (Ethernet + IP + TCP) before the payload.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts (the L4 header).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
}

impl Repr {
    /// Reads a checked header. Every bit pattern is a header (the kernel
    /// checks what it takes); interpreting it is the caller's business.
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Repr {
        Repr {
            flags: h.flags(),
            gso_type: h.gso_type(),
            hdr_len: h.hdr_len(),
            gso_size: h.gso_size(),
            csum_start: h.csum_start(),
            csum_offset: h.csum_offset(),
        }
    }

    /// Header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into a buffer of at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut Header<T>) {
        h.set_flags(self.flags);
        h.set_gso_type(self.gso_type);
        h.set_hdr_len(self.hdr_len);
        h.set_gso_size(self.gso_size);
        h.set_csum_start(self.csum_start);
        h.set_csum_offset(self.csum_offset);
    }

    /// Whether the frame is a super-frame to be cut (any GSO type).
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A TCP/IPv4 super-frame: partial checksum at 34 + 16, 66 header bytes,
    // 1448-byte segments.
    static HDR: [u8; 10] = [0x01, 0x01, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00];

    fn repr() -> Repr {
        Repr { flags: F_NEEDS_CSUM, gso_type: GSO_TCPV4, hdr_len: 66, gso_size: 1448, csum_start: 34, csum_offset: 16 }
    }

    #[test]
    fn parse_vector() {
        assert_eq!(Repr::parse(&Header::new_checked(&HDR[..]).unwrap()), repr());
        assert!(repr().is_gso() && !Repr::default().is_gso());
    }

    #[test]
    fn emit_vector() {
        let mut b = [0xffu8; 10];
        repr().emit(&mut Header::new_unchecked(&mut b[..]));
        assert_eq!(b, HDR);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert_eq!(Header::new_checked(&HDR[..9]).unwrap_err(), Error::Truncated);
    }
}
