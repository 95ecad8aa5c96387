//! Classic BPF, as libpcap compiles tcpdump's filter expressions
//! (`tcp port 80 and host 10.0.0.2`, `vlan`, `not arp`): a checked program
//! ([`Program::new`], the rules of the kernel's and libpcap's validators)
//! and an interpreter that runs it on a frame ([`Program::matches`]).
//!
//! The manager compiles a measurement job's expression with libpcap once
//! and sends the instructions; the agents run them here on the slice's own
//! frames, with no library and no lock. A checked program always ends:
//! jumps go forward only and the last instruction returns. A load past the
//! end of the frame ends the program with "no match", as in libpcap.

pub use netslice_model::api::BpfInsn as Insn;

/// Most instructions in a program (the kernel's `BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words.
const MEM: usize = 16;

/// Why a program was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    /// No instructions, or more than [`MAX_INSNS`].
    #[error("a filter program has 1 to {MAX_INSNS} instructions, not {0}")]
    Length(usize),
    /// An instruction this interpreter does not know.
    #[error("instruction {at}: unknown operation {code:#06x}")]
    Unknown {
        /// Index.
        at: usize,
        /// Its code.
        code: u16,
    },
    /// A jump past the end.
    #[error("instruction {at}: jumps past the end of the program")]
    Jump {
        /// Index.
        at: usize,
    },
    /// A scratch memory index past the 16 words.
    #[error("instruction {at}: scratch memory index {k} (there are {MEM} words)")]
    Memory {
        /// Index.
        at: usize,
        /// The index given.
        k: u32,
    },
    /// Division or remainder by a constant zero.
    #[error("instruction {at}: division by zero")]
    DivZero {
        /// Index.
        at: usize,
    },
    /// The last instruction does not return.
    #[error("the last instruction does not return")]
    NoReturn,
}

// Instruction classes, sizes, modes and operations (linux/filter.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEMM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;
const SRC_X: u16 = 0x08;
const RET_A: u16 = 0x10;
const RET_X: u16 = 0x08;

/// A checked program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

impl Program {
    /// Checks `insns`: known operations, jumps inside the program, scratch
    /// indices in range, no division by a constant zero, a return at the end.
    pub fn new(insns: Vec<Insn>) -> Result<Program, BpfError> {
        let n = insns.len();
        if n == 0 || n > MAX_INSNS {
            return Err(BpfError::Length(n));
        }
        for (at, i) in insns.iter().enumerate() {
            let unknown = || BpfError::Unknown { at, code: i.code };
            let mem = |k: u32| if (k as usize) < MEM { Ok(()) } else { Err(BpfError::Memory { at, k }) };
            let left = n - at - 1;
            if i.code > 0xff {
                return Err(unknown());
            }
            match i.code & 0x07 {
                LD | LDX => {
                    let (size, mode) = (i.code & 0x18, i.code & 0xe0);
                    let ok = if i.code & 0x07 == LD {
                        matches!((size, mode), (W | H | B, ABS | IND) | (W, IMM | MEMM | LEN))
                    } else {
                        matches!((size, mode), (W, IMM | MEMM | LEN) | (B, MSH))
                    };
                    if !ok {
                        return Err(unknown());
                    }
                    if mode == MEMM {
                        mem(i.k)?;
                    }
                }
                ST | STX => {
                    if i.code & !0x07 != 0 {
                        return Err(unknown());
                    }
                    mem(i.k)?;
                }
                ALU => {
                    let op = i.code & 0xf0;
                    if op > 0xa0 || i.code & !0xff != 0 {
                        return Err(unknown());
                    }
                    if matches!(op, 0x30 | 0x90) && i.code & SRC_X == 0 && i.k == 0 {
                        return Err(BpfError::DivZero { at });
                    }
                }
                JMP => {
                    let op = i.code & 0xf0;
                    if i.code & !0xff != 0 || op > 0x40 {
                        return Err(unknown());
                    }
                    if op == 0x00 {
                        if i.code != JMP || i.k as usize >= left {
                            return Err(if i.code != JMP { unknown() } else { BpfError::Jump { at } });
                        }
                    } else if usize::from(i.jt) >= left || usize::from(i.jf) >= left {
                        return Err(BpfError::Jump { at });
                    }
                }
                RET => {
                    if !matches!(i.code & !0x07, 0x00 | RET_A | RET_X) {
                        return Err(unknown());
                    }
                }
                _ => {
                    if !matches!(i.code, 0x07 | 0x87) {
                        return Err(unknown());
                    }
                }
            }
        }
        if insns[n - 1].code & 0x07 != RET {
            return Err(BpfError::NoReturn);
        }
        Ok(Program { insns })
    }

    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// What the program returns for `frame` (whose length on the wire was
    /// `wire_len`; more than `frame.len()` when only part of it is given).
    pub fn run(&self, frame: &[u8], wire_len: u32) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEM];
        let mut pc = 0usize;
        let load = |at: u32, size: u16| -> Option<u32> {
            let at = at as usize;
            let n = match size {
                W => 4,
                H => 2,
                _ => 1,
            };
            let b = frame.get(at..at.checked_add(n)?)?;
            Some(b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
        };
        loop {
            // A checked program ends with a return and jumps forward only.
            let i = self.insns[pc];
            pc += 1;
            match i.code & 0x07 {
                LD => {
                    a = match i.code & 0xe0 {
                        IMM => i.k,
                        ABS => match load(i.k, i.code & 0x18) {
                            Some(v) => v,
                            None => return 0,
                        },
                        IND => match x.checked_add(i.k).and_then(|at| load(at, i.code & 0x18)) {
                            Some(v) => v,
                            None => return 0,
                        },
                        MEMM => mem[i.k as usize],
                        _ => wire_len,
                    }
                }
                LDX => {
                    x = match i.code & 0xe0 {
                        IMM => i.k,
                        MEMM => mem[i.k as usize],
                        LEN => wire_len,
                        _ => match load(i.k, B) {
                            Some(v) => (v & 0x0f) << 2,
                            None => return 0,
                        },
                    }
                }
                ST => mem[i.k as usize] = a,
                STX => mem[i.k as usize] = x,
                ALU => {
                    let v = if i.code & SRC_X != 0 { x } else { i.k };
                    a = match i.code & 0xf0 {
                        0x00 => a.wrapping_add(v),
                        0x10 => a.wrapping_sub(v),
                        0x20 => a.wrapping_mul(v),
                        0x30 => match a.checked_div(v) {
                            Some(q) => q,
                            None => return 0,
                        },
                        0x40 => a | v,
                        0x50 => a & v,
                        0x60 => a.checked_shl(v).unwrap_or(0),
                        0x70 => a.checked_shr(v).unwrap_or(0),
                        0x80 => a.wrapping_neg(),
                        0x90 => match a.checked_rem(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        _ => a ^ v,
                    }
                }
                JMP => {
                    let v = if i.code & SRC_X != 0 { x } else { i.k };
                    let taken = match i.code & 0xf0 {
                        0x00 => {
                            pc += i.k as usize;
                            continue;
                        }
                        0x10 => a == v,
                        0x20 => a > v,
                        0x30 => a >= v,
                        _ => a & v != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                RET => {
                    return match i.code & 0x18 {
                        RET_A => a,
                        RET_X => x,
                        _ => i.k,
                    };
                }
                _ => {
                    if i.code & 0x80 != 0 {
                        a = x;
                    } else {
                        x = a;
                    }
                }
            }
        }
    }

    /// Whether the program accepts `frame` (all of it given).
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.run(frame, frame.len().min(u32::MAX as usize) as u32) != 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// `ip` (tcpdump -d): ldh [12]; jeq #0x800 jt 2 jf 3; ret #262144; ret #0
    fn ip_only() -> Program {
        Program::new(vec![i(0x28, 0, 0, 12), i(0x15, 0, 1, 0x800), i(0x06, 0, 0, 262144), i(0x06, 0, 0, 0)]).unwrap()
    }

    #[test]
    fn a_program_matches_what_it_should() {
        let mut f = vec![0u8; 60];
        f[12] = 0x08;
        assert!(ip_only().matches(&f));
        f[13] = 0x06;
        assert!(!ip_only().matches(&f));
        assert!(!ip_only().matches(&f[..13]), "a load past the end is no match");
    }

    #[test]
    fn bad_programs_are_refused() {
        assert_eq!(Program::new(vec![]), Err(BpfError::Length(0)));
        assert_eq!(Program::new(vec![i(0x28, 0, 0, 12)]), Err(BpfError::NoReturn));
        assert_eq!(Program::new(vec![i(0x15, 5, 0, 1), i(0x06, 0, 0, 0)]), Err(BpfError::Jump { at: 0 }));
        assert_eq!(Program::new(vec![i(0x05, 0, 0, 1), i(0x06, 0, 0, 0)]), Err(BpfError::Jump { at: 0 }));
        assert_eq!(Program::new(vec![i(0x02, 0, 0, 16), i(0x06, 0, 0, 0)]), Err(BpfError::Memory { at: 0, k: 16 }));
        assert_eq!(Program::new(vec![i(0x34, 0, 0, 0), i(0x06, 0, 0, 0)]), Err(BpfError::DivZero { at: 0 }));
        assert_eq!(
            Program::new(vec![i(0xff, 0, 0, 0), i(0x06, 0, 0, 0)]),
            Err(BpfError::Unknown { at: 0, code: 0xff })
        );
        assert!(Program::new(vec![i(0x06, 0, 0, 1); MAX_INSNS + 1]).is_err());
    }

    #[test]
    fn division_by_a_zero_register_is_no_match() {
        // ldx #0; ld #5; div x; ret a
        let p = Program::new(vec![i(0x01, 0, 0, 0), i(0x00, 0, 0, 5), i(0x3c, 0, 0, 0), i(0x16, 0, 0, 0)]).unwrap();
        assert_eq!(p.run(&[], 0), 0);
    }

    proptest! {
        /// Any program that passes the check ends on any frame, without a
        /// panic (the interpreter reads untrusted frames).
        #[test]
        fn checked_programs_always_end(
            raw in proptest::collection::vec((any::<u16>(), 0u8..8, 0u8..8, 0u32..64), 1..40),
            frame in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut insns: Vec<Insn> = raw.into_iter().map(|(c, jt, jf, k)| i(c & 0xff, jt, jf, k)).collect();
            insns.push(i(0x16, 0, 0, 0));
            if let Ok(p) = Program::new(insns) {
                let _ = p.run(&frame, frame.len() as u32);
            }
        }
    }
}
