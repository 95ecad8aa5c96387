//! The Internet checksum (RFC 1071): one's-complement sum of 16-bit words.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` folded to 16 bits, not inverted.
///
/// An odd trailing byte is padded with zero, as RFC 1071 §4.1 does. The sum
/// is byte-order independent (RFC 1071 §2(B)): whole 8-byte words are added
/// in native order with end-around carry and the result is swapped back once.
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u128 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        acc += u128::from(u64::from_ne_bytes(c.try_into().expect("8 bytes")));
    }
    // Fold the native-order words to 16 bits, then into network order.
    let mut x = (acc as u64 as u128) + (acc >> 64);
    while x > 0xffff_ffff_ffff_ffff {
        x = (x & 0xffff_ffff_ffff_ffff) + (x >> 64);
    }
    let mut v = x as u64;
    v = (v & 0xffff_ffff) + (v >> 32);
    v = (v & 0xffff_ffff) + (v >> 32);
    let mut w = (v & 0xffff) + (v >> 16);
    w = (w & 0xffff) + (w >> 16);
    let mut total = u64::from(u16::from_be(w as u16));
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        total += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        total += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(total)
}

/// The straightforward 16-bit-word sum, kept to check [`sum`] against.
#[cfg(test)]
fn sum_reference(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut pairs = data.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(acc)
}

/// Folds a wide accumulator into 16 bits with end-around carry.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Combines partial sums.
pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| u64::from(p)).sum())
}

/// The checksum field value for `data`: the inverted sum.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Sum of the IPv4 pseudo-header (RFC 768 / RFC 793).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u64::from(u16::from_be_bytes([s[0], s[1]]))
        + u64::from(u16::from_be_bytes([s[2], s[3]]))
        + u64::from(u16::from_be_bytes([d[0], d[1]]))
        + u64::from(u16::from_be_bytes([d[2], d[3]]))
        + u64::from(protocol)
        + u64::from(length);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc = u64::from(sum(&src.octets())) + u64::from(sum(&dst.octets()));
    acc += u64::from(length >> 16) + u64::from(length & 0xffff) + u64::from(next_header);
    fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn fast_sum_equals_the_reference(data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            proptest::prop_assert_eq!(sum(&data), sum_reference(&data));
        }
    }

    #[test]
    fn all_ones_words_fold_like_the_reference() {
        for n in [8, 64, 1500, 65_535] {
            let d = vec![0xffu8; n];
            assert_eq!(sum(&d), sum_reference(&d), "{n} bytes of 0xff");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn checksum_of_data_with_checksum_is_zero() {
        let mut data = vec![0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }
}
