//! Classic BPF socket filters (`SO_ATTACH_FILTER`): the kernel runs them on
//! every packet a socket would receive and drops what they reject before it
//! is queued, so a socket only holds (and its reader only copies) its share.
//!
//! Used for the packet sockets' ethertype filter and for splitting GRE
//! between sockets by key: a slice with dedicated CPUs gets a raw GRE socket
//! of its own that keeps only its keys, and the shared socket drops them.

use std::os::fd::RawFd;

use crate::{Error, Result};

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_W_IND: u16 = 0x40;
const LD_H_IND: u16 = 0x48;
const LDX_B_MSH: u16 = 0xb1;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;

/// Keep the whole packet.
const ACCEPT: u32 = u32::MAX;
/// Drop it.
const REJECT: u32 = 0;

/// Most keys one GRE filter may list (two instructions each, within the
/// kernel's 4096-instruction limit).
pub const MAX_KEYS: usize = 2000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// For a packet socket: frames with a VLAN tag (inline or stripped into
/// metadata) or one of `ethertypes`.
pub fn ethertypes(ethertypes: &[u16]) -> Vec<Insn> {
    // SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT
    const VLAN_PRESENT: u32 = (-4096i32 + 48) as u32;
    let mut prog = vec![insn(LD_W_ABS, 0, 0, VLAN_PRESENT), insn(JEQ_K, 0, 1, 1), insn(RET_K, 0, 0, 0x0004_0000)];
    prog.push(insn(LD_H_ABS, 0, 0, 12));
    for et in ethertypes {
        prog.push(insn(JEQ_K, 0, 1, u32::from(*et)));
        prog.push(insn(RET_K, 0, 0, 0x0004_0000));
    }
    prog.push(insn(RET_K, 0, 0, REJECT));
    prog
}

/// For a raw IPv4 GRE socket (packets start at the IPv4 header): with `keep`,
/// only GRE packets whose key (RFC 2890, after the checksum when present) is
/// one of `keys`; without, every packet except those. Packets without a key
/// are never kept by a `keep` filter and never dropped by the other.
pub fn gre_keys(keys: &[u32], keep: bool) -> Vec<Insn> {
    let (hit, miss) = if keep { (ACCEPT, REJECT) } else { (REJECT, ACCEPT) };
    let mut prog = vec![
        insn(LDX_B_MSH, 0, 0, 0),   // x = IPv4 header length
        insn(LD_H_IND, 0, 0, 0),    // GRE flags and version
        insn(JSET_K, 1, 0, 0x2000), // key present?
        insn(RET_K, 0, 0, miss),
        insn(JSET_K, 0, 2, 0x8000), // checksum present: the key is 4 bytes later
        insn(LD_W_IND, 0, 0, 8),
        insn(JA, 0, 0, 1),
        insn(LD_W_IND, 0, 0, 4),
    ];
    for &key in keys {
        prog.push(insn(JEQ_K, 0, 1, key));
        prog.push(insn(RET_K, 0, 0, hit));
    }
    prog.push(insn(RET_K, 0, 0, miss));
    prog
}

/// Attaches `prog` to socket `fd`, replacing any filter it had.
pub fn attach(fd: RawFd, prog: &[Insn]) -> Result<()> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const Insn,
    }
    let len = u16::try_from(prog.len())
        .ok()
        .filter(|&n| n <= 4096)
        .ok_or_else(|| Error::os("attaching a socket filter", std::io::Error::other("over 4096 instructions")))?;
    let fprog = SockFprog { len, filter: prog.as_ptr() };
    // SAFETY: SO_ATTACH_FILTER copies `len` instructions from `filter`, which
    // points into `prog`, alive across the call; both structs have the kernel's layout.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const SockFprog).cast(),
            std::mem::size_of::<SockFprog>() as u32,
        )
    };
    if rc < 0 {
        return Err(Error::last("attaching a socket filter"));
    }
    Ok(())
}

/// Removes the filter of socket `fd` (none attached is fine).
pub fn detach(fd: RawFd) -> Result<()> {
    // SO_DETACH_FILTER ignores its value.
    if let Err(e) = crate::sockopt::set_int(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0) {
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(Error::os("removing a socket filter", e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs a classic BPF program the way the kernel does, for the opcodes
    /// used here: a load outside the packet ends it with 0 (drop); ancillary
    /// loads (negative offsets) read as 0 (no VLAN tag).
    fn run(prog: &[Insn], p: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |at: u32, n: usize| -> Option<u32> {
            if at >= 0x8000_0000 {
                return Some(0);
            }
            let b = p.get(at as usize..at as usize + n)?;
            Some(b.iter().fold(0u32, |v, &x| (v << 8) | u32::from(x)))
        };
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_W_IND | LD_H_IND => {
                    let n = if matches!(i.code, LD_W_ABS | LD_W_IND) { 4 } else { 2 };
                    let at = if matches!(i.code, LD_W_IND | LD_H_IND) { x.wrapping_add(i.k) } else { i.k };
                    match load(at, n) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                LDX_B_MSH => match p.get(i.k as usize) {
                    Some(b) => x = 4 * u32::from(b & 0x0f),
                    None => return 0,
                },
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET_K => return i.k,
                c => panic!("opcode {c:#x} not modelled"),
            }
        }
    }

    /// What the GRE filter should decide, written plainly.
    fn expected(p: &[u8], keys: &[u32], keep: bool) -> bool {
        let Some(&b0) = p.first() else { return false };
        let hl = 4 * usize::from(b0 & 0x0f);
        let Some(f) = p.get(hl..hl + 2) else { return false };
        let flags = u16::from_be_bytes([f[0], f[1]]);
        if flags & 0x2000 == 0 {
            return !keep;
        }
        let at = hl + if flags & 0x8000 != 0 { 8 } else { 4 };
        let Some(k) = p.get(at..at + 4) else { return false };
        keys.contains(&u32::from_be_bytes([k[0], k[1], k[2], k[3]])) == keep
    }

    fn packet(ihl: u8, flags: u16, key: u32, cut: usize) -> Vec<u8> {
        let mut p = vec![0u8; 4 * usize::from(ihl)];
        p[0] = 0x40 | ihl;
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&0x6558u16.to_be_bytes());
        if flags & 0x8000 != 0 {
            p.extend_from_slice(&[0xc5, 0xc5, 0, 0]);
        }
        p.extend_from_slice(&key.to_be_bytes());
        p.extend_from_slice(&[0xab; 20]);
        p.truncate(p.len().saturating_sub(cut));
        p
    }

    proptest! {
        #[test]
        fn the_gre_filter_keeps_exactly_the_listed_keys(
            ihl in 1u8..16,
            flags in prop_oneof![Just(0x2000u16), Just(0xa000u16), Just(0u16), any::<u16>()],
            keys in proptest::collection::vec(0u32..8, 0..5),
            key in 0u32..10,
            cut in prop_oneof![Just(0usize), 0usize..80],
            keep in any::<bool>(),
        ) {
            let p = packet(ihl, flags, key, cut);
            let got = run(&gre_keys(&keys, keep), &p) != 0;
            prop_assert_eq!(got, expected(&p, &keys, keep), "packet {:02x?}", p);
        }

        #[test]
        fn the_ethertype_filter_keeps_exactly_the_listed_types(
            types in proptest::collection::vec(any::<u16>(), 0..4),
            et in any::<u16>(),
            pick in any::<bool>(),
        ) {
            let et = if pick && !types.is_empty() { types[0] } else { et };
            let mut f = vec![0u8; 60];
            f[12..14].copy_from_slice(&et.to_be_bytes());
            let got = run(&ethertypes(&types), &f) != 0;
            prop_assert_eq!(got, types.contains(&et));
        }
    }

    #[test]
    fn a_full_key_list_fits_the_kernel_limit() {
        let keys: Vec<u32> = (0..MAX_KEYS as u32).collect();
        assert!(gre_keys(&keys, true).len() <= 4096);
        let p = packet(5, 0x2000, MAX_KEYS as u32 - 1, 0);
        assert_ne!(run(&gre_keys(&keys, true), &p), 0, "the last key is reachable");
    }
}
