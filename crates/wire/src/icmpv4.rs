//! ICMPv4 (RFC 792): echo, destination unreachable, time exceeded.

use crate::checksum;
use crate::{Error, Result, read_u16, write_u16};

mod field {
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const SEQ: usize = 6;
}

/// Length of the ICMP header (type, code, checksum, and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;

/// Message types.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// A view of an ICMPv4 message.
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

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Echo identifier.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Echo sequence number.
    pub fn seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SEQ)
    }

    /// Checksum is correct over the whole message.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }

    /// Data after the header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets type and code.
    pub fn set_type_code(&mut self, t: u8, c: u8) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = t;
        b[field::CODE] = c;
    }

    /// Sets the 4-byte rest-of-header as echo identifier and sequence number.
    pub fn set_echo(&mut self, ident: u16, seq: u16) {
        let b = self.buffer.as_mut();
        write_u16(b, field::IDENT, ident);
        write_u16(b, field::SEQ, seq);
    }

    /// Zeroes the rest-of-header (unreachable, time exceeded).
    pub fn clear_rest(&mut self) {
        self.buffer.as_mut()[4..8].fill(0);
    }

    /// Computes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        write_u16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(b);
        write_u16(b, field::CHECKSUM, c);
    }

    /// Mutable data.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// High-level representation of the messages netslice sends and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data length.
        data_len: usize,
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data length.
        data_len: usize,
    },
    /// Destination unreachable; data is the offending IP header + 8 bytes.
    DstUnreachable {
        /// Code.
        code: u8,
        /// Data length.
        data_len: usize,
    },
    /// Time exceeded; data is the offending IP header + 8 bytes.
    TimeExceeded {
        /// Code (0 = TTL exceeded in transit).
        code: u8,
        /// Data length.
        data_len: usize,
    },
}

impl Repr {
    /// Parses a checked message, verifying the checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data_len = packet.data().len();
        match (packet.msg_type(), packet.code()) {
            (msg_type::ECHO_REQUEST, 0) => {
                Ok(Repr::EchoRequest { ident: packet.ident(), seq_no: packet.seq_no(), data_len })
            }
            (msg_type::ECHO_REPLY, 0) => {
                Ok(Repr::EchoReply { ident: packet.ident(), seq_no: packet.seq_no(), data_len })
            }
            (msg_type::DST_UNREACHABLE, code) if code <= 15 => Ok(Repr::DstUnreachable { code, data_len }),
            (msg_type::TIME_EXCEEDED, code) if code <= 1 => Ok(Repr::TimeExceeded { code, data_len }),
            _ => Err(Error::Unsupported("ICMP message type")),
        }
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match *self {
                Repr::EchoRequest { data_len, .. }
                | Repr::EchoReply { data_len, .. }
                | Repr::DstUnreachable { data_len, .. }
                | Repr::TimeExceeded { data_len, .. } => data_len,
            }
    }

    /// Writes the header and checksum; data must already be in place and the
    /// packet buffer must be exactly `buffer_len` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } => {
                packet.set_type_code(msg_type::ECHO_REQUEST, 0);
                packet.set_echo(ident, seq_no);
            }
            Repr::EchoReply { ident, seq_no, .. } => {
                packet.set_type_code(msg_type::ECHO_REPLY, 0);
                packet.set_echo(ident, seq_no);
            }
            Repr::DstUnreachable { code, .. } => {
                packet.set_type_code(msg_type::DST_UNREACHABLE, code);
                packet.clear_rest();
            }
            Repr::TimeExceeded { code, .. } => {
                packet.set_type_code(msg_type::TIME_EXCEEDED, code);
                packet.clear_rest();
            }
        }
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request ident 0x1234 seq 1 with data "hi".
    static ECHO: [u8; 10] = [0x08, 0x00, 0x7d, 0x61, 0x12, 0x34, 0x00, 0x01, 0x68, 0x69];

    #[test]
    fn parse_vector() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr::EchoRequest { ident: 0x1234, seq_no: 1, data_len: 2 });
        assert_eq!(p.data(), b"hi");
    }

    #[test]
    fn emit_vector() {
        let mut buf = [0u8; 10];
        buf[8..].copy_from_slice(b"hi");
        Repr::EchoRequest { ident: 0x1234, seq_no: 1, data_len: 2 }.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, ECHO);
    }

    #[test]
    fn bad_inputs() {
        let mut bad = ECHO;
        bad[9] = 0;
        assert_eq!(Repr::parse(&Packet::new_checked(&bad[..]).unwrap()), Err(Error::Checksum));
        assert_eq!(Packet::new_checked(&ECHO[..7]).unwrap_err(), Error::Truncated);
    }
}
