//! AF_PACKET sockets: whole Ethernet frames on one interface, for Ethernet-layer
//! link types (802.1Q, 802.1ah) and for tools that speak non-IP protocols.
//!
//! The kernel may strip a VLAN tag into packet metadata on receive (veth does);
//! [`PacketSocket::recv_batch`] puts such a tag back into the frame, so callers
//! always see frames as they were on the wire. Frames this socket's own host sent
//! (`PACKET_OUTGOING`) are skipped.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

const ETH_P_ALL: u16 = 0x0003;
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const PACKET_OUTGOING: u8 = 4;
const BATCH: usize = 64;
const CMSG_SPACE: usize = 64;

/// A non-blocking packet socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

/// Metadata of one received frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// Where the frame starts in its buffer (the offset asked for, or 4 bytes
    /// earlier when a stripped VLAN tag was put back).
    pub start: usize,
    /// Frame length.
    pub len: usize,
    /// The frame is this host's own outgoing traffic (skip it).
    pub outgoing: bool,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

impl PacketSocket {
    /// Opens a packet socket for every protocol on `ifname`, in the calling
    /// thread's network namespace.
    pub fn bind(ifname: &str) -> Result<PacketSocket> {
        let name = CString::new(ifname)
            .map_err(|_| Error::os("interface name", io::Error::from(io::ErrorKind::InvalidInput)))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(Error::last(format!("no interface {ifname}")));
        }
        // SAFETY: plain socket(2); the fd is checked and then owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if fd < 0 {
            return Err(Error::last("opening an AF_PACKET socket (needs CAP_NET_RAW)"));
        }
        // SAFETY: `fd` is fresh and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero is a valid sockaddr_ll; the fields set below are plain integers.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: bind reads a sockaddr_ll of the given size from a valid pointer.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(Error::last(format!("binding a packet socket to {ifname}")));
        }
        crate::sockopt::set_int(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_AUXDATA, 1)
            .map_err(|e| Error::os("enabling PACKET_AUXDATA", e))?;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
            // Failure only leaves the default buffer size.
            let _ = crate::sockopt::set_int(fd.as_raw_fd(), libc::SOL_SOCKET, opt, 8 << 20);
        }
        Ok(PacketSocket { fd, ifindex })
    }

    /// Keeps only frames with a VLAN tag (inline or stripped into metadata) or
    /// one of `ethertypes` (a classic BPF filter in the kernel), so the socket
    /// does not copy the interface's other traffic to user space.
    pub fn filter_ethertypes(&self, ethertypes: &[u16]) -> Result<()> {
        crate::cbpf::attach(self.fd(), &crate::cbpf::ethertypes(ethertypes))
    }

    /// The file descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Receives up to `bufs.len()` frames, each into `bufs[i][offset..]`
    /// (`offset` must be at least 4, room to put back a stripped VLAN tag).
    /// Returns how many arrived; `WouldBlock` if none.
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], offset: usize, info: &mut [FrameInfo]) -> io::Result<usize> {
        assert!(offset >= 4, "room for a VLAN tag");
        let n = bufs.len().min(info.len()).min(BATCH);
        let mut iov: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
        // SAFETY: all-zero is valid for sockaddr_ll, mmsghdr and byte arrays.
        let mut addrs: [libc::sockaddr_ll; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut cmsgs = [[0u64; CMSG_SPACE / 8]; BATCH];
        for i in 0..n {
            let b = &mut bufs[i][offset..];
            iov[i].write(libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() });
            msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msgs[i].msg_hdr.msg_control = cmsgs[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = CMSG_SPACE;
        }
        // SAFETY: every message points at an initialised iovec over its buffer, an
        // address and an 8-byte-aligned control buffer, all alive for the call.
        let got =
            unsafe { libc::recvmmsg(self.fd(), msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..got as usize {
            let len = msgs[i].msg_len as usize;
            let mut fi = FrameInfo { start: offset, len, outgoing: addrs[i].sll_pkttype == PACKET_OUTGOING };
            // SAFETY: the kernel filled msg_control with msg_controllen bytes of
            // cmsgs; CMSG_FIRSTHDR/NXTHDR only walk within them.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msgs[i].msg_hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        let aux: TpacketAuxdata = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                        if aux.tp_status & TP_STATUS_VLAN_VALID != 0 && len >= 12 {
                            let tpid =
                                if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                            // Put the tag back after the two addresses.
                            let b = &mut bufs[i];
                            b.copy_within(offset..offset + 12, offset - 4);
                            b[offset + 8..offset + 10].copy_from_slice(&tpid.to_be_bytes());
                            b[offset + 10..offset + 12].copy_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                            fi.start = offset - 4;
                            fi.len = len + 4;
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msgs[i].msg_hdr, c);
                }
            }
            info[i] = fi;
        }
        Ok(got as usize)
    }

    /// Sends whole frames on the interface; returns how many went before the
    /// first failure, and that failure.
    pub fn send_batch(&self, frames: &[&[u8]]) -> (usize, Option<io::Error>) {
        let mut sent = 0;
        while sent < frames.len() {
            let chunk = &frames[sent..frames.len().min(sent + BATCH)];
            let mut iov: [MaybeUninit<libc::iovec>; BATCH] = [const { MaybeUninit::uninit() }; BATCH];
            // SAFETY: all-zero is a valid (empty) mmsghdr.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, f) in chunk.iter().enumerate() {
                iov[i].write(libc::iovec { iov_base: f.as_ptr() as *mut libc::c_void, iov_len: f.len() });
                msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: the socket is bound to one interface, so no address is
            // needed; iovecs point at frames borrowed for the whole call.
            let rc = unsafe { libc::sendmmsg(self.fd(), msgs.as_mut_ptr(), chunk.len() as u32, 0) };
            if rc <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock && crate::sock::wait_writable(self.fd(), 10).unwrap_or(false) {
                    continue;
                }
                return (sent, Some(e));
            }
            sent += rc as usize;
        }
        (sent, None)
    }
}
