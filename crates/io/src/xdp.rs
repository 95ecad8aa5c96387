//! AF_XDP on a substrate interface: an XDP program steals the frames of
//! netslice's carriers (IP protocols such as GRE, UDP ports such as VXLAN's,
//! Ethernet types such as 802.1Q and 802.1ah) into an AF_XDP socket before the
//! kernel's IP stack sees them, and frames are sent through the socket's TX ring
//! without the IP stack (routing, fragmentation, socket accounting).
//!
//! Everything the kernel should keep handling still reaches it: ARP, IP
//! fragments (the IP layer reassembles TCP super-frames for the raw sockets),
//! IPv4 with options, frames larger than one UMEM frame.
//!
//! The program is assembled here from the carrier list (no compiler, no object
//! file) and attached with a BPF link: when the agent exits, even by `kill -9`,
//! the link closes and the interface is back to plain kernel processing. Veth
//! devices support native XDP in copy mode, the mode used here (`XDP_COPY`);
//! where native attach fails the generic (SKB) mode is tried.
//!
//! Ring protocol (see the kernel's `Documentation/networking/af_xdp.rst`): each
//! ring is a single-producer single-consumer array in shared memory with
//! producer and consumer indices; the RX and fill rings belong to the receiving
//! thread, the TX and completion rings to whoever holds the TX lock.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ebpf::{self, Asm, B, H, Insn, JEQ, JGT, JNE, Label, W, bpf, net16, owned, put_u32, put_u64};
use crate::{Error, Result};

/// Bytes of one UMEM frame.
pub const FRAME_SIZE: usize = 4096;
/// Frames in the UMEM: half for receiving, half for sending.
const NUM_FRAMES: usize = 4096;
/// Entries in each ring.
const RING: u32 = 2048;
/// Largest frame stolen: one UMEM frame less the kernel's XDP headroom.
pub const MAX_STEAL: usize = FRAME_SIZE - 256;

const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;
/// IPv4 protocol number of GRE.
const GRE: u8 = 47;

/// What the XDP program steals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// IPv4 protocols (47 = GRE).
    pub ip_protos: Vec<u8>,
    /// UDP destination ports (4789 = VXLAN).
    pub udp_ports: Vec<u16>,
    /// UDP ports whose datagrams carry a 24-bit label at this offset in the
    /// payload (VXLAN: 4789, 4), checked against the pass map.
    pub udp_labels: Vec<(u16, u16)>,
    /// Ethernet types (0x8100, 0x88e7).
    pub ethertypes: Vec<u16>,
}

/// A label the XDP programs leave to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PassKey {
    /// A GRE key.
    Gre(u32),
    /// A 24-bit label of a UDP port listed in [`Filter::udp_labels`].
    Udp {
        /// Destination port.
        port: u16,
        /// The label (VXLAN: the VNI).
        label: u32,
    },
}

impl PassKey {
    /// The map key: a tag (the IP protocol, or 0x10000 + the UDP port), then
    /// the label's 4 bytes as they lie in the packet (a 24-bit label with the
    /// byte after it zeroed).
    fn bytes(self) -> [u8; 8] {
        let (tag, word) = match self {
            PassKey::Gre(key) => (u32::from(GRE), key.to_be_bytes()),
            PassKey::Udp { port, label } => (0x1_0000 | u32::from(port), (label << 8).to_be_bytes()),
        };
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&tag.to_ne_bytes());
        k[4..].copy_from_slice(&word);
        k
    }
}

/// Labels the XDP programs leave to the kernel: a BPF hash map shared by
/// every program that was opened with it, so a change applies to all at once
/// without reloading them.
#[derive(Debug)]
pub struct PassMap {
    fd: OwnedFd,
    keys: Mutex<BTreeSet<PassKey>>,
}

/// Most keys a [`PassMap`] holds.
pub const PASS_MAP_SIZE: u32 = 4096;

impl PassMap {
    /// An empty map.
    pub fn new() -> Result<PassMap> {
        let fd = ebpf::map_create(ebpf::BPF_MAP_TYPE_HASH, 8, 1, PASS_MAP_SIZE, "the XDP pass map")?;
        Ok(PassMap { fd, keys: Mutex::new(BTreeSet::new()) })
    }

    /// Makes the map hold exactly `want`. On an error the keys handled so
    /// far stay changed; a later call converges.
    pub fn set(&self, want: &BTreeSet<PassKey>) -> Result<()> {
        let mut have = self.keys.lock().expect("pass map lock");
        for &key in want.difference(&have.clone()) {
            ebpf::map_update(self.fd.as_raw_fd(), &key.bytes(), &[1])
                .map_err(|e| Error::os(format!("passing {key:?} to the kernel"), e))?;
            have.insert(key);
        }
        for &key in have.clone().difference(want) {
            ebpf::map_delete(self.fd.as_raw_fd(), &key.bytes())
                .map_err(|e| Error::os(format!("no longer passing {key:?}"), e))?;
            have.remove(&key);
        }
        Ok(())
    }
}

/// Looks the 8-byte key at r10-8 up in map `pass`: found, pass; else steal.
fn pass_or_steal(a: &mut Asm, pass: RawFd, to_pass: Label, to_steal: Label) {
    a.mov_reg(2, 10);
    a.add_imm(2, -8);
    a.ld_map_fd(1, pass);
    a.call(ebpf::HELPER_MAP_LOOKUP_ELEM);
    a.jmp_imm(JNE, 0, 0, to_pass);
    a.ja(to_steal);
}

/// The XDP program for `f`, redirecting to the XSKMAP `map_fd`. With `frags`,
/// frames spanning several buffers are measured and left to the kernel. With
/// `pass`, GRE packets and labelled UDP datagrams whose label is in that map
/// are left to the kernel too.
fn program(f: &Filter, map_fd: RawFd, frags: bool, pass: Option<RawFd>) -> Vec<Insn> {
    let mut a = Asm::default();
    let (to_pass, to_steal, to_gre) = (a.label(), a.label(), a.label());
    let labelled: Vec<(u16, u16, Label)> = match pass {
        Some(_) => f
            .udp_labels
            .iter()
            .filter(|(port, _)| f.udp_ports.contains(port))
            .map(|&(port, off)| (port, off, a.label()))
            .collect(),
        None => Vec::new(),
    };
    a.mov_reg(6, 1); // r6 = ctx
    a.ldx(W, 2, 6, 0); // r2 = data
    a.ldx(W, 3, 6, 4); // r3 = data_end
    a.mov_reg(4, 2);
    a.add_imm(4, 14);
    a.jgt_reg(4, 3, to_pass);
    a.ldx(H, 5, 2, 12); // ethertype
    for &et in &f.ethertypes {
        a.jmp_imm(JEQ, 5, net16(et), to_steal);
    }
    a.jmp_imm(JNE, 5, net16(0x0800), to_pass);
    a.mov_reg(4, 2);
    a.add_imm(4, 34);
    a.jgt_reg(4, 3, to_pass);
    a.ldx(B, 5, 2, 14);
    a.jmp_imm(JNE, 5, 0x45, to_pass); // IPv4 without options only
    a.ldx(H, 5, 2, 20);
    a.and_imm(5, 0xff3f); // MF and fragment offset
    a.jmp_imm(JNE, 5, 0, to_pass); // fragments: the kernel reassembles
    a.ldx(B, 5, 2, 23); // protocol
    for &p in &f.ip_protos {
        let to = if p == GRE && pass.is_some() { to_gre } else { to_steal };
        a.jmp_imm(JEQ, 5, i32::from(p), to);
    }
    if !f.udp_ports.is_empty() {
        a.jmp_imm(JNE, 5, 17, to_pass);
        a.mov_reg(4, 2);
        a.add_imm(4, 42);
        a.jgt_reg(4, 3, to_pass);
        a.ldx(H, 5, 2, 36); // UDP destination port
        for &port in &f.udp_ports {
            let to = labelled.iter().find(|(p, _, _)| *p == port).map(|(_, _, l)| *l).unwrap_or(to_steal);
            a.jmp_imm(JEQ, 5, net16(port), to);
        }
    }
    a.ja(to_pass);
    // (The verifier refuses unreachable code: each block only when jumped to.)
    a.here(to_gre);
    if let Some(pass) = pass.filter(|_| f.ip_protos.contains(&GRE)) {
        // GRE: look the key up; a malformed header is stolen (the agent counts it).
        a.mov_reg(4, 2);
        a.add_imm(4, 14 + 20 + 8);
        a.jgt_reg(4, 3, to_steal);
        a.ldx(H, 5, 2, 14 + 20); // flags
        a.mov_reg(7, 5);
        a.and_imm(7, net16(0x2000)); // key present
        a.jmp_imm(JEQ, 7, 0, to_steal);
        a.mov_reg(4, 2);
        a.add_imm(4, 14 + 20 + 4);
        a.and_imm(5, net16(0x8000)); // checksum present: the key follows it
        a.skip_imm(JEQ, 5, 0, 1);
        a.add_imm(4, 4);
        a.mov_reg(7, 4);
        a.add_imm(7, 4);
        a.jgt_reg(7, 3, to_steal);
        a.ldx(W, 5, 4, 0); // the key, as its bytes lie in the packet
        a.stx_w(10, -4, 5);
        a.st_w(10, -8, i32::from(GRE));
        pass_or_steal(&mut a, pass, to_pass, to_steal);
    }
    if let Some(pass) = pass {
        // Labelled UDP: the 24 bits at the offset in the payload.
        for &(port, off, l) in &labelled {
            let at = 42 + i32::from(off);
            a.here(l);
            a.label24_to_stack(2, at, 3, to_steal);
            a.st_w(10, -8, (0x1_0000 | u32::from(port)) as i32);
            pass_or_steal(&mut a, pass, to_pass, to_steal);
        }
    }
    a.here(to_steal);
    if frags {
        a.mov_reg(1, 6);
        a.call(ebpf::HELPER_XDP_GET_BUFF_LEN);
        a.jmp_imm(JGT, 0, MAX_STEAL as i32, to_pass);
    }
    a.ldx(W, 2, 6, 16); // rx_queue_index
    a.ld_map_fd(1, map_fd);
    a.mov_imm(3, XDP_PASS); // no socket on the queue: pass
    a.call(ebpf::HELPER_REDIRECT_MAP);
    a.exit();
    a.here(to_pass);
    a.mov_imm(0, XDP_PASS);
    a.exit();
    a.finish()
}

fn load(f: &Filter, map: RawFd, frags: bool, pass: Option<RawFd>) -> Result<OwnedFd> {
    let insns = program(f, map, frags, pass);
    let flags = if frags { BPF_F_XDP_HAS_FRAGS } else { 0 };
    ebpf::prog_load(BPF_PROG_TYPE_XDP, &insns, "netslice_rx", BPF_XDP, flags)
}

fn ifindex(ifname: &str) -> Result<u32> {
    let name = CString::new(ifname).map_err(|_| Error::os("interface name", io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 { Err(Error::last(format!("no interface {ifname}"))) } else { Ok(i) }
}

#[derive(Debug)]
struct Ring {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    map: *mut libc::c_void,
    map_len: usize,
}

// SAFETY: the ring's memory is a kernel mapping owned by this struct; access is
// serialised by the owners documented on `Xsk` (one thread per ring side).
unsafe impl Send for Ring {}

impl Ring {
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, entry: usize, pgoff: libc::off_t) -> Result<Ring> {
        let map_len = off.desc as usize + RING as usize * entry;
        // SAFETY: mapping a ring of the XDP socket `fd` at the offset the kernel
        // defines for it; length covers the descriptors the kernel reported.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(Error::last("mapping an AF_XDP ring"));
        }
        let base = map.cast::<u8>();
        // SAFETY: the offsets lie inside the mapping (kernel-reported); the index
        // words are 4-byte aligned u32s the kernel updates atomically.
        unsafe {
            Ok(Ring {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                desc: base.add(off.desc as usize),
                map,
                map_len,
            })
        }
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `map`).
        unsafe { &*self.producer }
    }
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { (*self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0 }
    }
    /// Address-ring entry `i` (fill and completion rings hold u64 addresses).
    fn addr(&self, i: u32) -> *mut u64 {
        // SAFETY: the index is masked into the ring's RING entries.
        unsafe { self.desc.cast::<u64>().add((i & (RING - 1)) as usize) }
    }
    /// Descriptor-ring entry `i` (RX and TX rings).
    fn desc(&self, i: u32) -> *mut libc::xdp_desc {
        // SAFETY: the index is masked into the ring's RING entries.
        unsafe { self.desc.cast::<libc::xdp_desc>().add((i & (RING - 1)) as usize) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

#[derive(Debug)]
struct RxSide {
    rx: Ring,
    fill: Ring,
}

#[derive(Debug)]
struct TxSide {
    tx: Ring,
    comp: Ring,
    free: Vec<u64>,
}

/// An AF_XDP socket on one interface queue, with its UMEM and XDP program.
///
/// Ownership of the shared memory: frames `0..NUM_FRAMES/2` cycle between the
/// fill ring, the kernel and the RX ring and are only read by whoever holds the
/// RX lock; frames `NUM_FRAMES/2..` cycle between the TX free list, the TX ring
/// and the completion ring and are only written under the TX lock.
#[derive(Debug)]
pub struct Xsk {
    rx: Mutex<RxSide>,
    tx: Mutex<TxSide>,
    umem: *mut u8,
    umem_len: usize,
    mode: &'static str,
    // Closed explicitly in Drop, before the UMEM is unmapped.
    sock: std::mem::ManuallyDrop<OwnedFd>,
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
}

// SAFETY: the UMEM pointer is only dereferenced under the RX or TX lock, on
// disjoint frame sets (see the type's documentation).
unsafe impl Send for Xsk {}
// SAFETY: as above.
unsafe impl Sync for Xsk {}

fn set_opt<T>(fd: RawFd, opt: libc::c_int, v: &T, what: &str) -> Result<()> {
    // SAFETY: setsockopt reads size_of::<T>() bytes from `v`.
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_XDP, opt, (v as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    if rc < 0 { Err(Error::last(what)) } else { Ok(()) }
}

impl Xsk {
    /// Opens an AF_XDP socket on queue 0 of `ifname` (in the calling thread's
    /// network namespace) and attaches the program stealing `filter`'s frames.
    pub fn open(ifname: &str, filter: &Filter) -> Result<Xsk> {
        Xsk::open_passing(ifname, filter, None)
    }

    /// As [`Xsk::open`], but GRE packets whose key is in `pass` are left to
    /// the kernel (for the raw sockets of slices with dedicated CPUs).
    pub fn open_passing(ifname: &str, filter: &Filter, pass: Option<&PassMap>) -> Result<Xsk> {
        let pass = pass.map(|p| p.fd.as_raw_fd());
        let ifidx = ifindex(ifname)?;
        // The XSKMAP: queue index -> socket.
        let map = ebpf::map_create(ebpf::BPF_MAP_TYPE_XSKMAP, 4, 4, 1, "an XSKMAP")?;
        let prog = match load(filter, map.as_raw_fd(), true, pass) {
            Ok(p) => p,
            // Kernels without multi-buffer XDP: the plain program (attach then
            // needs an MTU that fits one page).
            Err(_) => load(filter, map.as_raw_fd(), false, pass)?,
        };
        let mut link_err = None;
        let mut link = None;
        for (flags, mode) in [(XDP_FLAGS_DRV_MODE, "native"), (XDP_FLAGS_SKB_MODE, "generic")] {
            let mut attr = [0u8; 64];
            put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
            put_u32(&mut attr, 4, ifidx);
            put_u32(&mut attr, 8, BPF_XDP);
            put_u32(&mut attr, 12, flags);
            match bpf(ebpf::BPF_LINK_CREATE, &mut attr) {
                Ok(fd) => {
                    link = Some((owned(fd, "XDP link")?, mode));
                    break;
                }
                Err(e) => link_err = Some(e),
            }
        }
        let Some((link, mode)) = link else {
            return Err(Error::os(
                format!("attaching XDP to {ifname}"),
                link_err.unwrap_or_else(|| io::Error::other("no mode worked")),
            ));
        };

        // SAFETY: plain socket(2); the descriptor is checked and then owned.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::last("opening an AF_XDP socket"));
        }
        // SAFETY: fresh descriptor.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let umem_len = NUM_FRAMES * FRAME_SIZE;
        // SAFETY: anonymous private mapping, checked below, unmapped in Drop.
        let umem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(Error::last("allocating the UMEM"));
        }
        let umem = umem.cast::<u8>();
        // From here on a failure must unmap the UMEM: build the socket in a
        // closure and clean up on error.
        let built = (|| -> Result<(RxSide, TxSide)> {
            let reg = libc::xdp_umem_reg {
                addr: umem as u64,
                len: umem_len as u64,
                chunk_size: FRAME_SIZE as u32,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            set_opt(fd, libc::XDP_UMEM_REG, &reg, "registering the UMEM")?;
            for opt in [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING, libc::XDP_TX_RING]
            {
                set_opt(fd, opt, &RING, "sizing an AF_XDP ring")?;
            }
            // SAFETY: all-zero is a valid xdp_mmap_offsets.
            let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `off`.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_XDP,
                    libc::XDP_MMAP_OFFSETS,
                    (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                    &mut len,
                )
            };
            if rc < 0 {
                return Err(Error::last("reading AF_XDP ring offsets"));
            }
            let desc = std::mem::size_of::<libc::xdp_desc>();
            let rx = Ring::map(fd, &off.rx, desc, libc::XDP_PGOFF_RX_RING)?;
            let tx = Ring::map(fd, &off.tx, desc, libc::XDP_PGOFF_TX_RING)?;
            let fill = Ring::map(fd, &off.fr, 8, libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t)?;
            let comp = Ring::map(fd, &off.cr, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t)?;
            // Hand the receive half of the frames to the kernel.
            let half = (NUM_FRAMES / 2) as u32;
            let n = half.min(RING);
            for i in 0..n {
                // SAFETY: entry `i` of the fill ring, which we produce.
                unsafe { *fill.addr(i) = u64::from(i) * FRAME_SIZE as u64 };
            }
            fill.prod().store(n, Ordering::Release);
            let sa = libc::sockaddr_xdp {
                sxdp_family: libc::AF_XDP as u16,
                sxdp_flags: libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP,
                sxdp_ifindex: ifidx,
                sxdp_queue_id: 0,
                sxdp_shared_umem_fd: 0,
            };
            // SAFETY: bind reads a sockaddr_xdp of the given size.
            let rc = unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(Error::last(format!("binding an AF_XDP socket to {ifname}")));
            }
            let mut attr = [0u8; 32];
            let key: u32 = 0;
            let val: u32 = fd as u32;
            put_u32(&mut attr, 0, map.as_raw_fd() as u32);
            put_u64(&mut attr, 8, &key as *const u32 as u64);
            put_u64(&mut attr, 16, &val as *const u32 as u64);
            bpf(ebpf::BPF_MAP_UPDATE_ELEM, &mut attr).map_err(|e| Error::os("registering the AF_XDP socket", e))?;
            let free = (half..NUM_FRAMES as u32).map(|i| u64::from(i) * FRAME_SIZE as u64).collect();
            Ok((RxSide { rx, fill }, TxSide { tx, comp, free }))
        })();
        match built {
            Ok((rx, tx)) => Ok(Xsk {
                rx: Mutex::new(rx),
                tx: Mutex::new(tx),
                umem,
                umem_len,
                mode,
                sock: std::mem::ManuallyDrop::new(sock),
                _link: link,
                _prog: prog,
                _map: map,
            }),
            Err(e) => {
                drop(sock);
                // SAFETY: the socket holding a reference to the UMEM is closed.
                unsafe { libc::munmap(umem.cast(), umem_len) };
                Err(e)
            }
        }
    }

    /// The socket's descriptor (readable when frames arrived).
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Frames the kernel dropped before this socket read them
    /// (`XDP_STATISTICS`: no room in the receive ring, or no free frame in
    /// the fill ring).
    pub fn kernel_drops(&self) -> io::Result<u64> {
        // SAFETY: xdp_statistics is plain integers; all zeroes is a valid value.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes to `st`, a valid value of that size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.rx_dropped + st.rx_ring_full)
    }

    /// `native` or `generic` XDP.
    pub fn mode(&self) -> &'static str {
        self.mode
    }

    /// Hands up to `max` received frames to `f`, returning their frames to the
    /// kernel afterwards. Returns how many there were.
    pub fn recv(&self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let side = self.rx.lock().expect("xsk rx lock");
        let cons = side.rx.cons().load(Ordering::Relaxed);
        let prod = side.rx.prod().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons).min(max as u32);
        if n == 0 {
            return 0;
        }
        let fill_prod = side.fill.prod().load(Ordering::Relaxed);
        for i in 0..n {
            // SAFETY: entries cons..prod of the RX ring are published by the
            // kernel (acquire above); each names a frame of the receive half
            // whose first `len` bytes hold the packet.
            let d = unsafe { *side.rx.desc(cons.wrapping_add(i)) };
            let (addr, len) = (d.addr as usize, d.len as usize);
            if addr.saturating_add(len) <= self.umem_len {
                // SAFETY: bounds checked against the UMEM just above.
                f(unsafe { std::slice::from_raw_parts(self.umem.add(addr), len) });
            }
            // The frame goes back to the kernel (aligned mode: the chunk start).
            // SAFETY: the fill ring has room: it holds at most the receive half.
            unsafe { *side.fill.addr(fill_prod.wrapping_add(i)) = (d.addr / FRAME_SIZE as u64) * FRAME_SIZE as u64 };
        }
        side.rx.cons().store(cons.wrapping_add(n), Ordering::Release);
        side.fill.prod().store(fill_prod.wrapping_add(n), Ordering::Release);
        if side.fill.needs_wakeup() {
            // SAFETY: a zero-length non-blocking recvfrom only wakes the driver.
            unsafe {
                libc::recvfrom(
                    self.fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        n as usize
    }

    /// Sends `n` frames, each written by `write(i, frame)` into a UMEM frame of
    /// [`FRAME_SIZE`] bytes (returning its length, 0 to skip). Returns how many
    /// were queued; the rest found no free frame or ring entry.
    pub fn send(&self, n: usize, mut write: impl FnMut(usize, &mut [u8]) -> usize) -> usize {
        let mut side = self.tx.lock().expect("xsk tx lock");
        // Reclaim frames the kernel has sent.
        let ccons = side.comp.cons().load(Ordering::Relaxed);
        let cprod = side.comp.prod().load(Ordering::Acquire);
        for i in 0..cprod.wrapping_sub(ccons) {
            // SAFETY: completed entries published by the kernel.
            let a = unsafe { *side.comp.addr(ccons.wrapping_add(i)) };
            side.free.push(a);
        }
        side.comp.cons().store(cprod, Ordering::Release);
        let prod = side.tx.prod().load(Ordering::Relaxed);
        let room = RING - prod.wrapping_sub(side.tx.cons().load(Ordering::Acquire));
        let mut queued = 0u32;
        for i in 0..n {
            if queued >= room {
                break;
            }
            let Some(addr) = side.free.pop() else { break };
            // SAFETY: a frame of the send half that we own until the kernel
            // completes it; FRAME_SIZE bytes inside the UMEM.
            let frame = unsafe { std::slice::from_raw_parts_mut(self.umem.add(addr as usize), FRAME_SIZE) };
            let len = write(i, frame).min(FRAME_SIZE);
            if len == 0 {
                side.free.push(addr);
                continue;
            }
            // SAFETY: entry `prod + queued` is free (room checked).
            unsafe { *side.tx.desc(prod.wrapping_add(queued)) = libc::xdp_desc { addr, len: len as u32, options: 0 } };
            queued += 1;
        }
        if queued == 0 {
            return 0;
        }
        let target = prod.wrapping_add(queued);
        side.tx.prod().store(target, Ordering::Release);
        // Copy mode transmits in the kicking system call, a few dozen frames per
        // call: kick until the kernel has taken everything or stops making progress.
        for _ in 0..64 {
            // SAFETY: a zero-length non-blocking sendto only kicks transmission.
            let rc = unsafe { libc::sendto(self.fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
            if side.tx.cons().load(Ordering::Acquire) == target {
                break;
            }
            if rc < 0 {
                let e = io::Error::last_os_error();
                if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS)) {
                    break;
                }
            }
        }
        queued as usize
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // Close the socket first (the kernel then drops its hold on the UMEM),
        // then unmap the UMEM; rings are unmapped by their own Drop afterwards.
        // SAFETY: `sock` is never used again.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.sock) };
        // SAFETY: the UMEM mapping made in `open`, no longer referenced.
        unsafe { libc::munmap(self.umem.cast(), self.umem_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_jumps_land_inside_and_end_in_exit() {
        let f = Filter {
            ip_protos: vec![47],
            udp_ports: vec![4789],
            udp_labels: vec![(4789, 4)],
            ethertypes: vec![0x8100, 0x88e7],
        };
        for (frags, pass) in [(false, None), (true, None), (false, Some(4)), (true, Some(4))] {
            let p = program(&f, 3, frags, pass);
            assert_eq!(p.last().unwrap().code, 0x95);
            for (i, ins) in p.iter().enumerate() {
                if matches!(ins.code, 0x05 | 0x15 | 0x55 | 0x25 | 0x2d) {
                    let to = i as i64 + 1 + i64::from(ins.off);
                    assert!((0..p.len() as i64).contains(&to), "jump at {i} to {to}");
                }
            }
            // The VXLAN port as the program compares it (network order read little-endian).
            assert!(p.iter().any(|i| i.code == 0x15 && i.imm == 0xb512));
        }
    }
}
