//! TCP headers (RFC 9293), as far as netslice touches them: it cuts TCP
//! super-frames into segments (sequence numbers, flags and checksums per
//! segment) and hashes flows by port. Options are carried as they are.

use std::net::IpAddr;

use crate::checksum;
use crate::ipv4::protocol;
use crate::{Error, Result, read_u16, read_u32, write_u16, write_u32};

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ_NUM: Range<usize> = 4..8;
    pub(super) const ACK_NUM: Range<usize> = 8..12;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WIN_SIZE: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Longest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Offset of the checksum field in the header.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// TCP flags (the low byte of the flags field: CWR ... FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from the sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push.
    pub const PSH: Flags = Flags(0x08);
    /// The acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// The urgent pointer is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN echo (RFC 3168).
    pub const ECE: Flags = Flags(0x40);
    /// Congestion window reduced (RFC 3168).
    pub const CWR: Flags = Flags(0x80);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags without those of `other`.
    pub fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, len: u32) -> Result<u16> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok(checksum::pseudo_header_v4(s, d, protocol::TCP, len)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ok(checksum::pseudo_header_v6(s, d, protocol::TCP, len)),
        _ => Err(Error::Malformed("TCP pseudo-header mixes IPv4 and IPv6")),
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

    /// Ensures the fixed header fits, the data offset is at least 5 words and
    /// the header it claims fits. After this no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed("TCP data offset below 5"));
        }
        if len < hl {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset x 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Receive window.
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The options, as bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Everything after the header (TCP has no length field: the IP layer's
    /// length bounds the segment).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Verifies the checksum over the whole buffer and the pseudo-header.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<bool> {
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).map_err(|_| Error::Malformed("TCP segment over 4 GiB"))?;
        Ok(checksum::combine(&[pseudo_sum(src, dst, len)?, checksum::sum(data)]) == 0xffff)
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM.start, v);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM.start, v);
    }

    /// Sets the header length (a multiple of 4 from 20 to 60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = ((len / 4) as u8) << 4 | (*b & 0x0f);
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, f: Flags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }

    /// Sets the receive window.
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, v);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, v);
    }

    /// Computes the checksum over the whole buffer and the pseudo-header.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) -> Result<()> {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).map_err(|_| Error::Malformed("TCP segment over 4 GiB"))?;
        let sum = checksum::combine(&[pseudo_sum(src, dst, len)?, checksum::sum(data)]);
        self.set_checksum(!sum);
        Ok(())
    }

    /// Mutable payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// High-level representation of a TCP header. Options are not interpreted:
/// `header_len` says how many bytes they take, and [`Repr::emit`] fills them
/// with NOPs (the caller may write real ones after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Flags.
    pub flags: Flags,
    /// Receive window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Header length, options included (a multiple of 4, 20 to 60).
    pub header_len: usize,
    /// Payload bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Parses a checked segment, verifying the checksum against the addresses.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, src: IpAddr, dst: IpAddr) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst)? {
            return Err(Error::Checksum);
        }
        if packet.dst_port() == 0 {
            return Err(Error::Malformed("TCP destination port 0"));
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent: packet.urgent(),
            header_len: packet.header_len(),
            payload_len: packet.payload().len(),
        })
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Writes the header (options as NOPs) into a buffer of exactly
    /// [`buffer_len`](Self::buffer_len) bytes; the payload must already be in
    /// place when `checksum` is true (the checksum covers it).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: IpAddr,
        dst: IpAddr,
        checksum: bool,
    ) -> Result<()> {
        if self.header_len < HEADER_LEN || self.header_len > MAX_HEADER_LEN || self.header_len % 4 != 0 {
            return Err(Error::Malformed("TCP header length must be 20 to 60, a multiple of 4"));
        }
        if packet.buffer.as_ref().len() < self.header_len {
            return Err(Error::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::DATA_OFF] = 0;
        packet.set_header_len(self.header_len);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent(self.urgent);
        packet.buffer.as_mut()[HEADER_LEN..self.header_len].fill(1); // NOP
        if checksum {
            packet.fill_checksum(src, dst)?;
        } else {
            packet.set_checksum(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    // 40000 -> 5201, seq 1, ack 2, PSH+ACK, window 512, no options, payload "hi".
    static SEGMENT: [u8; 22] = [
        0x9c, 0x40, 0x14, 0x51, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x50, 0x18, 0x02, 0x00, 0x80, 0xca,
        0x00, 0x00, b'h', b'i',
    ];

    fn repr() -> Repr {
        Repr {
            src_port: 40000,
            dst_port: 5201,
            seq_number: 1,
            ack_number: 2,
            flags: Flags::PSH | Flags::ACK,
            window_len: 512,
            urgent: 0,
            header_len: 20,
            payload_len: 2,
        }
    }

    #[test]
    fn parse_vector() {
        let p = Packet::new_checked(&SEGMENT[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST).unwrap(), repr());
        assert_eq!(p.payload(), b"hi");
        assert!(p.flags().contains(Flags::ACK) && !p.flags().contains(Flags::SYN));
    }

    #[test]
    fn emit_vector() {
        let mut buf = [0u8; 22];
        buf[20..].copy_from_slice(b"hi");
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]), SRC, DST, true).unwrap();
        assert_eq!(buf, SEGMENT);
    }

    #[test]
    fn bad_inputs() {
        let mut bad = SEGMENT;
        bad[21] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_checked(&bad[..]).unwrap(), SRC, DST), Err(Error::Checksum));
        let mut short_off = SEGMENT;
        short_off[12] = 0x40;
        assert!(Packet::new_checked(&short_off[..]).is_err());
        let mut long_off = SEGMENT;
        long_off[12] = 0xf0;
        assert_eq!(Packet::new_checked(&long_off[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&SEGMENT[..19]).unwrap_err(), Error::Truncated);
        let r = Repr { header_len: 22, ..repr() };
        assert!(r.emit(&mut Packet::new_unchecked(&mut [0u8; 24][..]), SRC, DST, false).is_err());
    }
}
