//! Substrate sockets: raw IPv4 GRE and UDP, non-blocking, with batched receive and
//! send (`recvmmsg`/`sendmmsg`), so one system call moves many packets.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

/// Most packets moved by one batched call.
pub const MAX_BATCH: usize = 64;

/// A non-blocking IPv4 datagram socket (raw or UDP).
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

/// Metadata of one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvInfo {
    /// Bytes received.
    pub len: usize,
    /// Sender's address.
    pub src: Ipv4Addr,
    /// The packet was larger than the buffer.
    pub truncated: bool,
}

impl Default for RecvInfo {
    fn default() -> Self {
        RecvInfo { len: 0, src: Ipv4Addr::UNSPECIFIED, truncated: false }
    }
}

fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer to `v`.
    let rc = unsafe {
        libc::setsockopt(fd, level, opt, (&v as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as u32)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
        sin_zero: [0; 8],
    }
}

impl Socket {
    /// A raw IPv4 socket for one IP protocol (47 = GRE) in the calling thread's
    /// namespace. Received packets include their IPv4 header; sent payloads get
    /// one from the kernel. No kernel module for the protocol is needed.
    pub fn raw_ip(protocol: u8) -> Result<Socket> {
        // SAFETY: plain socket(2) call; the returned fd is checked and then owned.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol),
            )
        };
        if fd < 0 {
            return Err(Error::last(format!("opening a raw socket for IP protocol {protocol} (needs CAP_NET_RAW)")));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let s = Socket { fd: unsafe { OwnedFd::from_raw_fd(fd) } };
        s.tune()?;
        Ok(s)
    }

    /// A UDP socket bound to `0.0.0.0:port` in the calling thread's namespace.
    pub fn udp(port: u16) -> Result<Socket> {
        let u = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .map_err(|e| Error::os(format!("binding UDP port {port}"), e))?;
        u.set_nonblocking(true).map_err(|e| Error::os("setting UDP socket non-blocking", e))?;
        let s = Socket { fd: OwnedFd::from(u) };
        s.tune()?;
        Ok(s)
    }

    fn tune(&self) -> Result<()> {
        let fd = self.fd.as_raw_fd();
        // Large buffers absorb bursts; the FORCE variants pass the sysctl caps as root.
        for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
            if set_int(fd, libc::SOL_SOCKET, force, 8 << 20).is_err() {
                set_int(fd, libc::SOL_SOCKET, plain, 8 << 20).map_err(|e| Error::os("sizing socket buffers", e))?;
            }
        }
        // Packets larger than the path MTU (TCP super-frames of a slice) are
        // fragmented by the IP layer and reassembled by the next host's, instead
        // of being refused with EMSGSIZE.
        set_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DONT)
            .map_err(|e| Error::os("allowing fragmentation", e))?;
        Ok(())
    }

    /// The file descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives up to `bufs.len()` (at most [`MAX_BATCH`]) packets, each into
    /// `bufs[i][offset..]`. Returns how many arrived; `WouldBlock` if none.
    pub fn recv_batch(&self, bufs: &mut [Vec<u8>], offset: usize, info: &mut [RecvInfo]) -> io::Result<usize> {
        let n = bufs.len().min(info.len()).min(MAX_BATCH);
        let mut iov: [MaybeUninit<libc::iovec>; MAX_BATCH] = [const { MaybeUninit::uninit() }; MAX_BATCH];
        // SAFETY: all-zero is a valid sockaddr_in and a valid (empty) mmsghdr.
        let mut addrs: [libc::sockaddr_in; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let b = &mut bufs[i][offset..];
            iov[i].write(libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() });
            msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        // SAFETY: `msgs[..n]` point at `iov[..n]` (initialised above) and `addrs`,
        // all of which outlive the call; each iovec covers memory of its buffer.
        let got =
            unsafe { libc::recvmmsg(self.fd(), msgs.as_mut_ptr(), n as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        for i in 0..got {
            info[i] = RecvInfo {
                len: msgs[i].msg_len as usize,
                src: Ipv4Addr::from(u32::from_be(addrs[i].sin_addr.s_addr)),
                truncated: msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            };
        }
        Ok(got)
    }

    /// Sends every `(payload, destination)` with as few calls as possible. Returns
    /// how many were sent before the first failure, and that failure if any.
    pub fn send_batch(&self, msgs_in: &[(&[u8], SocketAddrV4)]) -> (usize, Option<io::Error>) {
        let mut sent = 0;
        while sent < msgs_in.len() {
            let chunk = &msgs_in[sent..msgs_in.len().min(sent + MAX_BATCH)];
            let mut iov: [MaybeUninit<libc::iovec>; MAX_BATCH] = [const { MaybeUninit::uninit() }; MAX_BATCH];
            let mut addrs: [MaybeUninit<libc::sockaddr_in>; MAX_BATCH] = [const { MaybeUninit::uninit() }; MAX_BATCH];
            // SAFETY: all-zero is a valid (empty) mmsghdr.
            let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
            for (i, (payload, dst)) in chunk.iter().enumerate() {
                iov[i].write(libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() });
                addrs[i].write(sockaddr(*dst));
                msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_name = addrs[i].as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            }
            // SAFETY: `msgs[..chunk.len()]` point at initialised iovecs and addresses
            // on this stack frame and at payloads borrowed for the whole call; the
            // kernel only reads through them.
            let rc = unsafe { libc::sendmmsg(self.fd(), msgs.as_mut_ptr(), chunk.len() as u32, 0) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    // Socket buffer full: wait briefly for room rather than drop.
                    if wait_writable(self.fd(), 10).unwrap_or(false) {
                        continue;
                    }
                }
                return (sent, Some(e));
            }
            sent += rc as usize;
            if (rc as usize) < chunk.len() && rc == 0 {
                return (sent, Some(io::Error::other("sendmmsg sent nothing")));
            }
        }
        (sent, None)
    }
}

fn poll_one(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: poll reads and writes exactly one pollfd, which lives across the call.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}

/// Waits until `fd` is readable or `timeout_ms` passes; `true` if readable.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    poll_one(fd, libc::POLLIN, timeout_ms)
}

/// Waits until `fd` is writable or `timeout_ms` passes; `true` if writable.
pub fn wait_writable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    poll_one(fd, libc::POLLOUT, timeout_ms)
}
