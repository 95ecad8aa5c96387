//! Steering one UDP port's datagrams between sockets by a label in their
//! payload: the sockets share the port with `SO_REUSEPORT`, and a BPF program
//! attached to the group picks the socket registered for each datagram's
//! label, and index 0 (the shared socket) for every other datagram. Used so
//! that a slice with dedicated CPUs receives its VXLAN datagrams (by VNI) on
//! a socket of its own.
//!
//! The program reads the label from the first datagram of what the kernel
//! delivers in one piece: when the sender's segmentation offload or the
//! receiver's GRO joined datagrams of several labels of one UDP flow, they go
//! to the socket of the first one's label together. Every socket's reader
//! must therefore accept any label (the agent's do: the redirector classifies
//! each datagram).
//!
//! Without the program a group spreads datagrams by flow hash, so it is
//! attached as soon as the shared socket exists, with no label registered.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use crate::ebpf::{self, Asm, DW, JEQ, W};
use crate::sock::Socket;
use crate::{Error, Result};

const BPF_PROG_TYPE_SK_REUSEPORT: u32 = 21;
const SK_PASS: i32 = 1;
/// `SO_ATTACH_REUSEPORT_EBPF`.
const SO_ATTACH_REUSEPORT_EBPF: libc::c_int = 52;

/// Sockets a group can steer to (index 0 included).
pub const MAX_SOCKETS: u32 = 64;
/// Labels it can hold.
pub const MAX_LABELS: u32 = 4096;

/// The selector of one `SO_REUSEPORT` group.
#[derive(Debug)]
pub struct ReuseportSteer {
    prog: OwnedFd,
    socks: OwnedFd,
    labels: OwnedFd,
    have: Mutex<BTreeMap<u32, u32>>,
}

/// The map key of a 24-bit label: its bytes as they lie in the datagram,
/// with the byte after them zeroed.
fn label_key(label: u32) -> [u8; 4] {
    (label << 8).to_be_bytes()
}

fn program(offset: u16, socks: i32, labels: i32) -> Vec<ebpf::Insn> {
    let mut a = Asm::default();
    let (select, done) = (a.label(), a.label());
    let at = 8 + i32::from(offset); // after the UDP header
    a.mov_reg(6, 1); // r6 = ctx (struct sk_reuseport_md)
    a.ldx(DW, 2, 6, 0); // data: the UDP header
    a.ldx(DW, 3, 6, 8); // data_end
    a.st_w(10, -8, 0); // index: the shared socket
    a.label24_to_stack(2, at, 3, select);
    a.mov_reg(2, 10);
    a.add_imm(2, -4);
    a.ld_map_fd(1, labels);
    a.call(ebpf::HELPER_MAP_LOOKUP_ELEM);
    a.jmp_imm(JEQ, 0, 0, select);
    a.ldx(W, 5, 0, 0);
    a.stx_w(10, -8, 5);
    a.here(select);
    for last in [false, true] {
        a.mov_reg(1, 6);
        a.ld_map_fd(2, socks);
        a.mov_reg(3, 10);
        a.add_imm(3, -8);
        a.mov_imm(4, 0);
        a.call(ebpf::HELPER_SK_SELECT_REUSEPORT);
        if !last {
            // A label whose socket is gone: the shared socket.
            a.jmp_imm(JEQ, 0, 0, done);
            a.st_w(10, -8, 0);
        }
    }
    a.here(done);
    a.mov_imm(0, SK_PASS);
    a.exit();
    a.finish()
}

impl ReuseportSteer {
    /// A selector for 24-bit labels at `offset` in the UDP payload (VXLAN's
    /// VNI: 4), with no socket and no label yet.
    pub fn new(offset: u16) -> Result<ReuseportSteer> {
        let socks =
            ebpf::map_create(ebpf::BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, MAX_SOCKETS, "a reuseport socket array")?;
        let labels = ebpf::map_create(ebpf::BPF_MAP_TYPE_HASH, 4, 4, MAX_LABELS, "a reuseport label map")?;
        let insns = program(offset, socks.as_raw_fd(), labels.as_raw_fd());
        let prog = ebpf::prog_load(BPF_PROG_TYPE_SK_REUSEPORT, &insns, "netslice_steer", 0, 0)?;
        Ok(ReuseportSteer { prog, socks, labels, have: Mutex::new(BTreeMap::new()) })
    }

    /// Makes the program choose the socket of `sock`'s group.
    pub fn attach(&self, sock: &Socket) -> Result<()> {
        crate::sockopt::set_int(sock.fd(), libc::SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, self.prog.as_raw_fd())
            .map_err(|e| Error::os("attaching the reuseport program", e))
    }

    /// Registers `sock` (bound to the group's port with `SO_REUSEPORT`) as
    /// socket `index` (0: the shared socket).
    pub fn set_socket(&self, index: u32, sock: &Socket) -> Result<()> {
        let fd = sock.fd() as u64;
        ebpf::map_update(self.socks.as_raw_fd(), &index.to_ne_bytes(), &fd.to_ne_bytes())
            .map_err(|e| Error::os(format!("registering reuseport socket {index}"), e))
    }

    /// Forgets socket `index` (its labels fall back to the shared socket).
    pub fn clear_socket(&self, index: u32) -> Result<()> {
        ebpf::map_delete(self.socks.as_raw_fd(), &index.to_ne_bytes())
            .map_err(|e| Error::os(format!("removing reuseport socket {index}"), e))
    }

    /// Makes the label map hold exactly `want` (label -> socket index). On
    /// an error the labels handled so far stay changed; a later call converges.
    pub fn set_labels(&self, want: &BTreeMap<u32, u32>) -> Result<()> {
        let mut have = self.have.lock().expect("reuseport labels lock");
        for (&label, &index) in want {
            if have.get(&label) != Some(&index) {
                ebpf::map_update(self.labels.as_raw_fd(), &label_key(label), &index.to_ne_bytes())
                    .map_err(|e| Error::os(format!("steering label {label}"), e))?;
                have.insert(label, index);
            }
        }
        let gone: Vec<u32> = have.keys().filter(|l| !want.contains_key(l)).copied().collect();
        for label in gone {
            ebpf::map_delete(self.labels.as_raw_fd(), &label_key(label))
                .map_err(|e| Error::os(format!("no longer steering label {label}"), e))?;
            have.remove(&label);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_jumps_land_inside_and_end_in_exit() {
        let p = program(4, 3, 4);
        assert_eq!(p.last().unwrap().code, 0x95);
        for (i, ins) in p.iter().enumerate() {
            if matches!(ins.code, 0x05 | 0x15 | 0x55 | 0x25 | 0x2d) {
                let to = i as i64 + 1 + i64::from(ins.off);
                assert!((0..p.len() as i64).contains(&to), "jump at {i} to {to}");
            }
        }
    }
}
