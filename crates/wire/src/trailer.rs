//! Trailer bytes (design brief §7): application-aware slice selection without DPI.
//!
//! A terminal appends 16 bytes right after its L3 packet inside the Ethernet frame.
//! The IP length field does not count them, so ordinary stacks ignore them.
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | app_id (0 = unknown) |
//! | 4 | 6 | terminal_id |
//! | 10 | 2 | reserved, zero |
//! | 12 | 1 | version = 1 |
//! | 13 | 1 | length = 16 |
//! | 14 | 2 | magic = 0xF1A7 |
//!
//! [`locate`] finds the trailer in a frame: it starts at the L3 offset plus the IP
//! total length, and Ethernet padding may follow it. Anything that does not match
//! exactly is "no trailer" with a [`Absent`] reason for the caller to count, never an
//! error that drops the packet.

use crate::ethernet::{self, EtherType};
use crate::{Error, Result, read_u16, read_u32, write_u16, write_u32};

/// Length of a trailer.
pub const LEN: usize = 16;
/// Version written and accepted.
pub const VERSION: u8 = 1;
/// Magic number at the end.
pub const MAGIC: u16 = 0xF1A7;

mod field {
    use core::ops::Range;
    pub(super) const APP_ID: Range<usize> = 0..4;
    pub(super) const TERMINAL_ID: Range<usize> = 4..10;
    pub(super) const RESERVED: Range<usize> = 10..12;
    pub(super) const VERSION: usize = 12;
    pub(super) const LENGTH: usize = 13;
    pub(super) const MAGIC: Range<usize> = 14..16;
}

/// A view of the 16 trailer bytes.
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

    /// Ensures 16 bytes are present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    /// Application id.
    pub fn app_id(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::APP_ID.start)
    }

    /// Terminal id.
    pub fn terminal_id(&self) -> [u8; 6] {
        let mut t = [0u8; 6];
        t.copy_from_slice(&self.buffer.as_ref()[field::TERMINAL_ID]);
        t
    }

    /// Reserved field.
    pub fn reserved(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::RESERVED.start)
    }

    /// Version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Length.
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }

    /// Magic.
    pub fn magic(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MAGIC.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes every field.
    pub fn set(&mut self, app_id: u32, terminal_id: [u8; 6]) {
        let b = self.buffer.as_mut();
        write_u32(b, field::APP_ID.start, app_id);
        b[field::TERMINAL_ID].copy_from_slice(&terminal_id);
        write_u16(b, field::RESERVED.start, 0);
        b[field::VERSION] = VERSION;
        b[field::LENGTH] = LEN as u8;
        write_u16(b, field::MAGIC.start, MAGIC);
    }
}

/// High-level representation of a trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Application id (0 = unknown).
    pub app_id: u32,
    /// Terminal id.
    pub terminal_id: [u8; 6],
}

/// Why a frame carries no trailer. Each is a counter, not a drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Absent {
    /// Not an IPv4/IPv6 frame (after up to two VLAN tags).
    NotIp,
    /// The L3 header is unreadable or its length field overruns the frame.
    BadL3,
    /// Fewer than 16 bytes follow the L3 packet.
    NoRoom,
    /// The magic number does not match.
    BadMagic,
    /// Magic matches but version is not 1.
    BadVersion,
    /// Magic matches but the length byte is not 16.
    BadLength,
    /// Magic matches but the reserved bytes are not zero.
    ReservedNonZero,
}

impl Repr {
    /// Parses 16 trailer bytes; any mismatch is an error.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        Self::check(packet).map_err(|a| match a {
            Absent::BadMagic => Error::Malformed("trailer magic"),
            Absent::BadVersion => Error::Unsupported("trailer version"),
            Absent::BadLength => Error::Malformed("trailer length"),
            Absent::ReservedNonZero => Error::Malformed("trailer reserved bytes"),
            _ => Error::Truncated,
        })
    }

    fn check<T: AsRef<[u8]>>(packet: &Packet<T>) -> core::result::Result<Repr, Absent> {
        packet.check_len().map_err(|_| Absent::NoRoom)?;
        if packet.magic() != MAGIC {
            return Err(Absent::BadMagic);
        }
        if packet.version() != VERSION {
            return Err(Absent::BadVersion);
        }
        if usize::from(packet.length()) != LEN {
            return Err(Absent::BadLength);
        }
        if packet.reserved() != 0 {
            return Err(Absent::ReservedNonZero);
        }
        Ok(Repr { app_id: packet.app_id(), terminal_id: packet.terminal_id() })
    }

    /// Length of a trailer.
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the trailer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set(self.app_id, self.terminal_id);
    }
}

/// Where the L3 packet of an Ethernet frame starts and ends (skipping up to two
/// 802.1Q/802.1ad tags), or why it cannot be told.
pub fn l3_bounds(frame: &[u8]) -> core::result::Result<(usize, usize), Absent> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| Absent::NotIp)?;
    let mut ethertype = eth.ethertype();
    let mut off = ethernet::HEADER_LEN;
    for _ in 0..2 {
        if matches!(ethertype, EtherType::Vlan | EtherType::QinQ) {
            if frame.len() < off + 4 {
                return Err(Absent::NotIp);
            }
            ethertype = read_u16(frame, off + 2).into();
            off += 4;
        }
    }
    let l3 = &frame[off..];
    let len = match ethertype {
        EtherType::Ipv4 => {
            let p = crate::ipv4::Packet::new_checked(l3).map_err(|_| Absent::BadL3)?;
            if p.version() != 4 {
                return Err(Absent::BadL3);
            }
            usize::from(p.total_len())
        }
        EtherType::Ipv6 => {
            let p = crate::ipv6::Packet::new_checked(l3).map_err(|_| Absent::BadL3)?;
            if p.version() != 6 {
                return Err(Absent::BadL3);
            }
            crate::ipv6::HEADER_LEN + usize::from(p.payload_len())
        }
        _ => return Err(Absent::NotIp),
    };
    Ok((off, off + len))
}

/// Finds the trailer of an Ethernet frame. Returns it with its offset in the frame.
pub fn locate(frame: &[u8]) -> core::result::Result<(Repr, usize), Absent> {
    let (_, end) = l3_bounds(frame)?;
    let repr = Repr::check(&Packet::new_unchecked(&frame[end..]))?;
    Ok((repr, end))
}

/// Writes a trailer right after the L3 packet of the frame in `buf[..frame_len]` and
/// returns the new frame length (any old padding beyond the L3 packet is replaced).
pub fn append(buf: &mut [u8], frame_len: usize, repr: &Repr) -> Result<usize> {
    let (_, end) = l3_bounds(&buf[..frame_len.min(buf.len())]).map_err(|_| Error::Malformed("not an IP frame"))?;
    if buf.len() < end + LEN {
        return Err(Error::Truncated);
    }
    repr.emit(&mut Packet::new_unchecked(&mut buf[end..end + LEN]));
    Ok(end + LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    static TRAILER: [u8; 16] =
        [0x00, 0x00, 0x00, 0x2a, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00, 0x01, 0x10, 0xf1, 0xa7];

    fn repr() -> Repr {
        Repr { app_id: 42, terminal_id: [0x02, 0x11, 0x22, 0x33, 0x44, 0x55] }
    }

    /// Ethernet + a 20-byte IPv4 header with no payload.
    fn ip_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20];
        f[12] = 0x08;
        f[14..34].copy_from_slice(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f
    }

    #[test]
    fn parse_emit_vector() {
        assert_eq!(Repr::parse(&Packet::new_checked(&TRAILER[..]).unwrap()).unwrap(), repr());
        let mut buf = [0u8; 16];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, TRAILER);
    }

    #[test]
    fn locate_with_padding() {
        let mut f = ip_frame();
        f.extend_from_slice(&TRAILER);
        // 14 + 20 + 16 = 50 bytes: Ethernet pads to 60.
        f.resize(60, 0);
        assert_eq!(locate(&f), Ok((repr(), 34)));
    }

    #[test]
    fn locate_behind_vlan_tag() {
        let ip = ip_frame();
        let mut f = ip[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        f.extend_from_slice(&ip[12..]);
        f.extend_from_slice(&TRAILER);
        assert_eq!(locate(&f), Ok((repr(), 38)));
    }

    #[test]
    fn absent_reasons() {
        let f = ip_frame();
        assert_eq!(locate(&f), Err(Absent::NoRoom));
        let mut padded = f.clone();
        padded.resize(60, 0);
        assert_eq!(locate(&padded), Err(Absent::BadMagic));
        let mut badver = f.clone();
        let mut t = TRAILER;
        t[12] = 2;
        badver.extend_from_slice(&t);
        assert_eq!(locate(&badver), Err(Absent::BadVersion));
        let mut badlen = f.clone();
        let mut t = TRAILER;
        t[13] = 15;
        badlen.extend_from_slice(&t);
        assert_eq!(locate(&badlen), Err(Absent::BadLength));
        let mut res = f.clone();
        let mut t = TRAILER;
        t[11] = 1;
        res.extend_from_slice(&t);
        assert_eq!(locate(&res), Err(Absent::ReservedNonZero));
        let mut arp = f.clone();
        arp[13] = 0x06;
        assert_eq!(locate(&arp), Err(Absent::NotIp));
        let mut overrun = f;
        overrun[17] = 200;
        assert_eq!(locate(&overrun), Err(Absent::BadL3));
    }

    #[test]
    fn append_then_locate() {
        let mut buf = ip_frame();
        let len = buf.len();
        buf.resize(80, 0xee);
        let new_len = append(&mut buf, len, &repr()).unwrap();
        assert_eq!(new_len, 50);
        assert_eq!(locate(&buf[..new_len]), Ok((repr(), 34)));
    }
}
