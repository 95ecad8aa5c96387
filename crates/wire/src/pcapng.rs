//! pcapng (draft-ietf-opsawg-pcapng), the capture format Wireshark, tshark
//! and capinfos read: writers for the three blocks a capture of one point
//! needs (Section Header, Interface Description with its name, description
//! and nanosecond timestamps, Enhanced Packet), and a reader of Enhanced
//! Packet Blocks, which the manager runs on what agents upload.
//!
//! Everything is little-endian (the byte-order magic says so to readers).

use crate::{Error, Result};

/// Block type of a Section Header Block.
pub const SHB: u32 = 0x0A0D_0D0A;
/// Block type of an Interface Description Block.
pub const IDB: u32 = 0x0000_0001;
/// Block type of an Enhanced Packet Block.
pub const EPB: u32 = 0x0000_0006;
/// Link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// Bytes an Enhanced Packet Block adds to a packet's bytes (before padding).
pub const EPB_OVERHEAD: usize = 32;

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(pad4(out.len()), 0);
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let len = (12 + body.len()) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&len.to_le_bytes());
}

/// A Section Header Block naming the writer (`shb_userappl`).
pub fn section_header(out: &mut Vec<u8>, application: &str) {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    option(&mut body, 4, &application.as_bytes()[..application.len().min(1024)]);
    option(&mut body, 0, &[]);
    block(out, SHB, &body);
}

/// An Interface Description Block for Ethernet frames cut at `snaplen`,
/// with `if_name`, `if_description` and nanosecond timestamps (`if_tsresol` 9).
pub fn interface(out: &mut Vec<u8>, snaplen: u32, name: &str, description: &str) {
    let mut body = Vec::new();
    body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&snaplen.to_le_bytes());
    option(&mut body, 2, &name.as_bytes()[..name.len().min(1024)]);
    option(&mut body, 3, &description.as_bytes()[..description.len().min(4096)]);
    option(&mut body, 9, &[9]);
    option(&mut body, 0, &[]);
    block(out, IDB, &body);
}

/// One captured packet of interface `iface`: its time (ns since the Unix
/// epoch), its whole length, and the bytes kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Interface id (index of its Interface Description Block).
    pub iface: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length on the wire.
    pub orig_len: u32,
    /// The bytes kept.
    pub data: &'a [u8],
}

impl Packet<'_> {
    /// Appends its Enhanced Packet Block.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(20 + pad4(self.data.len()));
        body.extend_from_slice(&self.iface.to_le_bytes());
        body.extend_from_slice(&((self.ts_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(self.ts_ns as u32).to_le_bytes());
        body.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        body.extend_from_slice(&self.orig_len.to_le_bytes());
        body.extend_from_slice(self.data);
        body.resize(pad4(body.len()), 0);
        block(out, EPB, &body);
    }

    /// Bytes its block takes.
    pub fn block_len(&self) -> usize {
        EPB_OVERHEAD + pad4(self.data.len())
    }
}

/// Reads a run of Enhanced Packet Blocks (what an agent uploads), each
/// checked: its type, lengths that agree with each other and the buffer,
/// captured length within the original length.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Packets<'a> {
    /// Reads `buf`.
    pub fn new(buf: &'a [u8]) -> Packets<'a> {
        Packets { rest: buf }
    }
}

fn le32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or(Error::Truncated)
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = (|| {
            let b = self.rest;
            if le32(b, 0)? != EPB {
                return Err(Error::Malformed("not an Enhanced Packet Block"));
            }
            let len = le32(b, 4)? as usize;
            if len < EPB_OVERHEAD || len % 4 != 0 {
                return Err(Error::Malformed("block length"));
            }
            if b.len() < len {
                return Err(Error::Truncated);
            }
            if le32(b, len - 4)? as usize != len {
                return Err(Error::Malformed("trailing block length differs"));
            }
            let cap = le32(b, 20)? as usize;
            let orig_len = le32(b, 24)?;
            if pad4(cap) + EPB_OVERHEAD != len || cap as u64 > u64::from(orig_len) {
                return Err(Error::Malformed("captured length"));
            }
            let ts_ns = (u64::from(le32(b, 12)?) << 32) | u64::from(le32(b, 16)?);
            let p = Packet { iface: le32(b, 8)?, ts_ns, orig_len, data: &b[28..28 + cap] };
            self.rest = &b[len..];
            Ok(p)
        })();
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn blocks_have_the_lengths_the_format_gives() {
        let mut out = Vec::new();
        section_header(&mut out, "netslice");
        assert_eq!(&out[0..4], &SHB.to_le_bytes());
        assert_eq!(&out[8..12], &0x1A2B_3C4Du32.to_le_bytes());
        assert_eq!(out.len() % 4, 0);
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize, out.len());
        let at = out.len();
        interface(&mut out, 128, "l/t1", "slice mon link l at t1");
        assert_eq!(u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap()) as usize, out.len() - at);
        let p = Packet { iface: 0, ts_ns: 1_700_000_000_123_456_789, orig_len: 1514, data: &[7; 61] };
        let mut e = Vec::new();
        p.emit(&mut e);
        assert_eq!(e.len(), p.block_len());
        assert_eq!(e.len(), 32 + 64);
    }

    #[test]
    fn bad_blocks_are_refused() {
        let p = Packet { iface: 0, ts_ns: 5, orig_len: 10, data: &[1; 10] };
        let mut e = Vec::new();
        p.emit(&mut e);
        assert!(Packets::new(&e[..e.len() - 1]).next().unwrap().is_err());
        let mut bad = e.clone();
        bad[20] = 11; // captured more than the original length
        assert!(Packets::new(&bad).next().unwrap().is_err());
        let mut bad = e.clone();
        bad[0] = 1;
        assert!(Packets::new(&bad).next().unwrap().is_err());
        let mut two = e.clone();
        two.extend_from_slice(&[0, 0, 0]);
        let v: Vec<_> = Packets::new(&two).collect();
        assert!(v[0].is_ok() && v[1].is_err() && v.len() == 2);
    }

    proptest! {
        #[test]
        fn packets_round_trip(pkts in proptest::collection::vec((any::<u32>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..100), 0u32..100), 0..8)) {
            let mut out = Vec::new();
            for (iface, ts, data, extra) in &pkts {
                Packet { iface: *iface, ts_ns: *ts, orig_len: data.len() as u32 + extra, data }.emit(&mut out);
            }
            let back: Vec<Packet<'_>> = Packets::new(&out).collect::<Result<_>>().unwrap();
            prop_assert_eq!(back.len(), pkts.len());
            for (b, (iface, ts, data, extra)) in back.iter().zip(&pkts) {
                prop_assert_eq!((b.iface, b.ts_ns, b.orig_len, b.data), (*iface, *ts, data.len() as u32 + extra, &data[..]));
            }
        }

        #[test]
        fn reading_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            for p in Packets::new(&buf) {
                let _ = p;
            }
        }
    }
}
