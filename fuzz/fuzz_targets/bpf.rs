//! Fuzz target: a measurement filter program (checked first, as an agent
//! checks what the manager sends) run on any frame never panics or loops.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netslice_dataplane::bpf::{Insn, Program};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 64) + 1;
    if rest.len() < n * 8 {
        return;
    }
    let (prog, frame) = rest.split_at(n * 8);
    let insns: Vec<Insn> = prog
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_be_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if let Ok(p) = Program::new(insns) {
        let _ = p.run(frame, frame.len() as u32);
    }
});
