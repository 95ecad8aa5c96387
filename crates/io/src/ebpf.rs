//! The pieces of eBPF the I/O needs, without a compiler or an object file: a
//! small assembler for the few instructions our programs use, and the `bpf(2)`
//! calls that create maps, change their entries and load programs.
//!
//! Programs built with it: the XDP program of [`crate::xdp`] and the
//! `SO_REUSEPORT` selector of [`crate::reuseport`].

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

pub(crate) const BPF_MAP_CREATE: libc::c_long = 0;
pub(crate) const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub(crate) const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
pub(crate) const BPF_PROG_LOAD: libc::c_long = 5;
pub(crate) const BPF_LINK_CREATE: libc::c_long = 28;

pub(crate) const BPF_MAP_TYPE_HASH: u32 = 1;
pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub(crate) const BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: u32 = 20;

pub(crate) const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
pub(crate) const HELPER_REDIRECT_MAP: i32 = 51;
pub(crate) const HELPER_SK_SELECT_REUSEPORT: i32 = 82;
pub(crate) const HELPER_XDP_GET_BUFF_LEN: i32 = 188;

// Load sizes for `ldx`.
pub(crate) const W: u8 = 0x00;
pub(crate) const H: u8 = 0x08;
pub(crate) const B: u8 = 0x10;
pub(crate) const DW: u8 = 0x18;
// Jumps against an immediate.
pub(crate) const JEQ: u8 = 0x15;
pub(crate) const JNE: u8 = 0x55;
pub(crate) const JGT: u8 = 0x25;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// A jump target, placed with [`Asm::here`] before or after the jumps to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

#[derive(Debug, Default)]
pub(crate) struct Asm {
    pub insns: Vec<Insn>,
    at: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub(crate) fn label(&mut self) -> Label {
        self.at.push(None);
        Label(self.at.len() - 1)
    }
    /// Places `l` at the next instruction.
    pub(crate) fn here(&mut self, l: Label) {
        self.at[l.0] = Some(self.insns.len());
    }
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm });
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.op(code, dst, src, 0, imm);
    }
    pub(crate) fn mov_reg(&mut self, dst: u8, src: u8) {
        self.op(0xbf, dst, src, 0, 0);
    }
    pub(crate) fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.op(0xb7, dst, 0, 0, imm);
    }
    pub(crate) fn add_imm(&mut self, dst: u8, imm: i32) {
        self.op(0x07, dst, 0, 0, imm);
    }
    pub(crate) fn and_imm(&mut self, dst: u8, imm: i32) {
        self.op(0x57, dst, 0, 0, imm);
    }
    /// `dst = *(size *)(src + off)`.
    pub(crate) fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.op(0x61 | size, dst, src, off, 0);
    }
    /// `*(u32 *)(dst + off) = src`.
    pub(crate) fn stx_w(&mut self, dst: u8, off: i16, src: u8) {
        self.op(0x63, dst, src, off, 0);
    }
    /// `*(u32 *)(dst + off) = imm`.
    pub(crate) fn st_w(&mut self, dst: u8, off: i16, imm: i32) {
        self.op(0x62, dst, 0, off, imm);
    }
    pub(crate) fn jmp_imm(&mut self, code: u8, dst: u8, imm: i32, to: Label) {
        self.jump(code, dst, 0, imm, to);
    }
    /// A conditional jump over the next `skip` instructions.
    pub(crate) fn skip_imm(&mut self, code: u8, dst: u8, imm: i32, skip: i16) {
        self.op(code, dst, 0, skip, imm);
    }
    /// `if dst > src goto to` (unsigned).
    pub(crate) fn jgt_reg(&mut self, dst: u8, src: u8, to: Label) {
        self.jump(0x2d, dst, src, 0, to);
    }
    pub(crate) fn ja(&mut self, to: Label) {
        self.jump(0x05, 0, 0, 0, to);
    }
    pub(crate) fn call(&mut self, helper: i32) {
        self.op(0x85, 0, 0, 0, helper);
    }
    pub(crate) fn exit(&mut self) {
        self.op(0x95, 0, 0, 0, 0);
    }
    /// `dst = map` (the map's descriptor, resolved by the kernel at load).
    pub(crate) fn ld_map_fd(&mut self, dst: u8, fd: RawFd) {
        // BPF_LD | BPF_IMM | BPF_DW with src = BPF_PSEUDO_MAP_FD, then the high half.
        self.op(0x18, dst, 1, 0, fd);
        self.op(0, 0, 0, 0, 0);
    }
    /// `*(u32 *)(r10 - 4) = ` the 24-bit big-endian label at `base + at`
    /// (its 4 bytes as they lie in memory, the last one zeroed), or `goto
    /// short` when `base + at + 4` is past `end`. Uses r4 and r5.
    pub(crate) fn label24_to_stack(&mut self, base: u8, at: i32, end: u8, short: Label) {
        self.mov_reg(4, base);
        self.add_imm(4, at + 4);
        self.jgt_reg(4, end, short);
        self.ldx(W, 5, base, at as i16);
        self.and_imm(5, u32::from_ne_bytes([0xff, 0xff, 0xff, 0]) as i32);
        self.stx_w(10, -4, 5);
    }
    /// The program, every jump resolved. Panics on a label never placed (a
    /// bug in the program's builder).
    pub(crate) fn finish(mut self) -> Vec<Insn> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let to = self.at[l.0].expect("every label placed");
            self.insns[at].off = (to as i64 - at as i64 - 1) as i16;
        }
        self.insns
    }
}

/// A network-order u16 as an `ldx` of 2 bytes reads it.
pub(crate) fn net16(v: u16) -> i32 {
    i32::from(u16::from_be_bytes(v.to_ne_bytes()))
}

pub(crate) fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: bpf(2) reads (and for some commands writes) `attr.len()` bytes of
    // the attribute union, which `attr` provides; pointers inside it point to
    // memory that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn owned(fd: libc::c_long, what: &str) -> Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| Error::os(what, io::Error::other("bad descriptor")))?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new map.
pub(crate) fn map_create(kind: u32, key: u32, value: u32, entries: u32, what: &str) -> Result<OwnedFd> {
    let mut attr = [0u8; 72];
    put_u32(&mut attr, 0, kind);
    put_u32(&mut attr, 4, key);
    put_u32(&mut attr, 8, value);
    put_u32(&mut attr, 12, entries);
    owned(bpf(BPF_MAP_CREATE, &mut attr).map_err(|e| Error::os(format!("creating {what}"), e))?, what)
}

/// Sets `key` to `value` in map `fd`.
pub(crate) fn map_update(fd: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = [0u8; 32];
    put_u32(&mut attr, 0, fd as u32);
    put_u64(&mut attr, 8, key.as_ptr() as u64);
    put_u64(&mut attr, 16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// Removes `key` from map `fd` (absent is fine).
pub(crate) fn map_delete(fd: RawFd, key: &[u8]) -> io::Result<()> {
    let mut attr = [0u8; 32];
    put_u32(&mut attr, 0, fd as u32);
    put_u64(&mut attr, 8, key.as_ptr() as u64);
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// Loads a program of type `kind`; the verifier's last words go in the error.
pub(crate) fn prog_load(kind: u32, insns: &[Insn], name: &str, attach_type: u32, flags: u32) -> Result<OwnedFd> {
    let license = CString::new("Apache-2.0").expect("no NUL");
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, kind);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 24, 1); // log_level
    put_u32(&mut attr, 28, log.len() as u32);
    put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    put_u32(&mut attr, 44, flags); // prog_flags
    let n = name.len().min(15);
    attr[48..48 + n].copy_from_slice(&name.as_bytes()[..n]); // prog_name
    put_u32(&mut attr, 68, attach_type); // expected_attach_type
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => owned(fd, "loading a BPF program"),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let last: Vec<&str> = text.lines().rev().take(3).collect();
            Err(Error::os(format!("loading the {name} program (verifier: {})", last.join(" | ")), e))
        }
    }
}
