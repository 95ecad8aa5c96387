//! Substrate sockets: raw IPv4 GRE and UDP, non-blocking, with batched receive and
//! send (`recvmmsg`/`sendmmsg`), so one system call moves many packets.
//!
//! UDP sockets can also use the kernel's UDP segmentation offloads: with
//! [`Socket::enable_gro`] the kernel hands over a run of same-size datagrams of
//! one flow as one buffer ([`RecvInfo::seg`] says where to cut it), and
//! [`Socket::send_segments`] sends a run of same-size payloads to one
//! destination as one `UDP_SEGMENT` send. Between two namespaces on a veth the
//! run then crosses the stack and the link as one packet.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sockopt::set_int;
use crate::{Error, Result};

/// Most packets moved by one batched call.
pub const MAX_BATCH: usize = 64;

/// Most payloads in one `UDP_SEGMENT` send (the kernel allows 64 or more).
pub const MAX_SEGMENTS: usize = 64;

/// Most bytes of payload in one `UDP_SEGMENT` send (an IPv4 datagram's limit,
/// less the IP and UDP headers, rounded down).
pub const MAX_SEGMENTED: usize = 65_000;

/// A non-blocking IPv4 datagram socket (raw or UDP).
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    /// `UDP_GRO` is on: received buffers may hold several datagrams.
    gro: bool,
    /// `UDP_SEGMENT` sends still work (cleared at the first refusal).
    gso: AtomicBool,
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
    /// With `UDP_GRO`: the buffer holds consecutive datagrams of this size
    /// (the last may be shorter). 0: it holds one datagram.
    pub seg: usize,
}

impl RecvInfo {
    /// The datagrams in `buf[offset..offset + len]`, as ranges of `buf`.
    pub fn datagrams(&self, offset: usize) -> impl Iterator<Item = Range<usize>> {
        let step = if self.seg == 0 { self.len.max(1) } else { self.seg };
        let end = offset + self.len;
        (offset..end).step_by(step).map(move |a| a..(a + step).min(end))
    }
}

impl Default for RecvInfo {
    fn default() -> Self {
        RecvInfo { len: 0, src: Ipv4Addr::UNSPECIFIED, truncated: false, seg: 0 }
    }
}

/// Space for one control message carrying an `int` (`CMSG_SPACE(4)` on 64-bit
/// Linux is 24 bytes), 8-byte aligned as `cmsghdr` needs.
type CmsgSpace = [u64; 3];

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
        let s = Socket { fd: unsafe { OwnedFd::from_raw_fd(fd) }, gro: false, gso: AtomicBool::new(false) };
        s.tune()?;
        Ok(s)
    }

    /// A UDP socket bound to `0.0.0.0:port` in the calling thread's namespace.
    pub fn udp(port: u16) -> Result<Socket> {
        let u = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .map_err(|e| Error::os(format!("binding UDP port {port}"), e))?;
        u.set_nonblocking(true).map_err(|e| Error::os("setting UDP socket non-blocking", e))?;
        let s = Socket { fd: OwnedFd::from(u), gro: false, gso: AtomicBool::new(true) };
        s.tune()?;
        Ok(s)
    }

    /// A UDP socket bound to `0.0.0.0:port` with `SO_REUSEPORT`, so that
    /// more sockets can share the port; which of them gets a datagram is up
    /// to the group's program ([`crate::reuseport`]).
    pub fn udp_reuseport(port: u16) -> Result<Socket> {
        // SAFETY: plain socket(2) call; the returned fd is checked and then owned.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::last("opening a UDP socket"));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let s = Socket { fd: unsafe { OwnedFd::from_raw_fd(fd) }, gro: false, gso: AtomicBool::new(true) };
        set_int(s.fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).map_err(|e| Error::os("setting SO_REUSEPORT", e))?;
        let a = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        // SAFETY: `a` is a valid sockaddr_in of the size passed.
        let rc = unsafe {
            libc::bind(
                s.fd(),
                (&a as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::last(format!("binding UDP port {port}")));
        }
        s.tune()?;
        Ok(s)
    }

    /// A send-only UDP socket (bound to an ephemeral port in the calling
    /// thread's namespace) whose datagrams carry no UDP checksum
    /// (`SO_NO_CHECK`), as RFC 7348 recommends for VXLAN over IPv4. A
    /// receiver then copies a datagram the IP layer reassembled without a
    /// second pass over it to verify the checksum. The kernel refuses
    /// segmentation offload on such a socket.
    pub fn udp_unchecked() -> Result<Socket> {
        let mut s = Socket::udp(0)?;
        set_int(s.fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1)
            .map_err(|e| Error::os("turning UDP checksums off", e))?;
        // Nothing reads it: stray datagrams to its port may pin only the
        // kernel's minimum of receive buffer.
        set_int(s.fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 0).map_err(|e| Error::os("sizing socket buffers", e))?;
        s.gso = AtomicBool::new(false);
        Ok(s)
    }

    /// Raw GRE sockets: with `keep`, receive only packets whose GRE key is in
    /// `keys`; without, every packet but those (`keys` empty: everything). The
    /// kernel drops the rest before queueing them (see [`crate::cbpf`]).
    pub fn filter_gre_keys(&self, keys: &[u32], keep: bool) -> Result<()> {
        if keys.len() > crate::cbpf::MAX_KEYS {
            return Err(Error::os(
                "filtering GRE keys",
                io::Error::other(format!("{} keys, at most {}", keys.len(), crate::cbpf::MAX_KEYS)),
            ));
        }
        if keys.is_empty() && !keep {
            return crate::cbpf::detach(self.fd());
        }
        crate::cbpf::attach(self.fd(), &crate::cbpf::gre_keys(keys, keep))
    }

    /// Turns on `UDP_GRO` (UDP sockets only): the kernel may then deliver a run
    /// of same-size datagrams of one flow as one buffer, cut by
    /// [`RecvInfo::datagrams`]. Fails on kernels without it (before 5.0).
    pub fn enable_gro(&mut self) -> io::Result<()> {
        set_int(self.fd(), libc::IPPROTO_UDP, libc::UDP_GRO, 1)?;
        self.gro = true;
        Ok(())
    }

    /// Whether `UDP_GRO` is on.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Whether `UDP_SEGMENT` sends are in use (UDP sockets, until the kernel
    /// first refuses one).
    pub fn segments_ok(&self) -> bool {
        self.gso.load(Ordering::Relaxed)
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
        let mut ctl: [CmsgSpace; MAX_BATCH] = [[0; 3]; MAX_BATCH];
        for i in 0..n {
            let b = &mut bufs[i][offset..];
            iov[i].write(libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() });
            msgs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            if self.gro {
                msgs[i].msg_hdr.msg_control = ctl[i].as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_controllen = std::mem::size_of::<CmsgSpace>();
            }
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
            let len = msgs[i].msg_len as usize;
            let seg = if self.gro { gro_size(&msgs[i].msg_hdr).filter(|&s| s > 0 && s < len).unwrap_or(0) } else { 0 };
            info[i] = RecvInfo {
                len,
                src: Ipv4Addr::from(u32::from_be(addrs[i].sin_addr.s_addr)),
                truncated: msgs[i].msg_hdr.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
                seg,
            };
        }
        Ok(got)
    }

    /// Sends runs of payloads: each `(range, dst)` of `runs` sends `segs[range]`
    /// to `dst`, as one `UDP_SEGMENT` send when the range holds more than one
    /// payload. Within a run every payload but the last must have the first's
    /// length, at most [`MAX_SEGMENTS`] payloads and [`MAX_SEGMENTED`] bytes,
    /// and each must fit the path MTU whole (the caller checks; the kernel
    /// refuses otherwise). Should the kernel refuse segmentation offload, the
    /// run goes out as single datagrams, and so does every later one.
    /// Returns how many payloads were sent before the first failure, and that
    /// failure if any.
    pub fn send_segments(&self, segs: &[&[u8]], runs: &[(Range<usize>, SocketAddrV4)]) -> (usize, Option<io::Error>) {
        let mut sent_segs = 0;
        let mut r = 0;
        while r < runs.len() {
            if !self.segments_ok() {
                return self.send_singly(segs, &runs[r..], sent_segs);
            }
            // One sendmmsg call: up to MAX_BATCH runs.
            let chunk = &runs[r..runs.len().min(r + MAX_BATCH)];
            let mut iov: Vec<libc::iovec> = Vec::with_capacity(chunk.iter().map(|(g, _)| g.len()).sum());
            for (g, _) in chunk {
                for s in &segs[g.clone()] {
                    iov.push(libc::iovec { iov_base: s.as_ptr() as *mut libc::c_void, iov_len: s.len() });
                }
            }
            let mut addrs: [MaybeUninit<libc::sockaddr_in>; MAX_BATCH] = [const { MaybeUninit::uninit() }; MAX_BATCH];
            let mut ctl: [CmsgSpace; MAX_BATCH] = [[0; 3]; MAX_BATCH];
            // SAFETY: all-zero is a valid (empty) mmsghdr.
            let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
            let mut at = 0;
            for (i, (g, dst)) in chunk.iter().enumerate() {
                addrs[i].write(sockaddr(*dst));
                let h = &mut msgs[i].msg_hdr;
                h.msg_iov = iov[at..].as_mut_ptr();
                h.msg_iovlen = g.len();
                h.msg_name = addrs[i].as_mut_ptr().cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                if g.len() > 1 {
                    let size = segs[g.start].len() as u16;
                    put_segment_cmsg(h, &mut ctl[i], size);
                }
                at += g.len();
            }
            // SAFETY: each `msgs[i]` points at its own slice of `iov` (covering
            // payloads borrowed for the whole call), its address and its control
            // buffer, all of which outlive the call; the kernel only reads them.
            let rc = unsafe { libc::sendmmsg(self.fd(), msgs.as_mut_ptr(), chunk.len() as u32, 0) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => {
                        if wait_writable(self.fd(), 10).unwrap_or(false) {
                            continue;
                        }
                        return (sent_segs, Some(e));
                    }
                    // Segmentation offload refused (no checksum offload on the
                    // route's device, a segment over the MTU, an old kernel):
                    // from now on every payload is its own datagram.
                    Some(libc::EINVAL | libc::EIO | libc::EMSGSIZE | libc::ENOPROTOOPT) if chunk[0].0.len() > 1 => {
                        self.gso.store(false, Ordering::Relaxed);
                        continue;
                    }
                    _ => return (sent_segs, Some(e)),
                }
            }
            if rc == 0 {
                return (sent_segs, Some(io::Error::other("sendmmsg sent nothing")));
            }
            sent_segs += chunk[..rc as usize].iter().map(|(g, _)| g.len()).sum::<usize>();
            r += rc as usize;
        }
        (sent_segs, None)
    }

    fn send_singly(
        &self,
        segs: &[&[u8]],
        runs: &[(Range<usize>, SocketAddrV4)],
        before: usize,
    ) -> (usize, Option<io::Error>) {
        let msgs: Vec<(&[u8], SocketAddrV4)> =
            runs.iter().flat_map(|(g, dst)| segs[g.clone()].iter().map(move |s| (*s, *dst))).collect();
        let (sent, err) = self.send_batch(&msgs);
        (before + sent, err)
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

/// Writes a `UDP_SEGMENT` control message (the segment size) into `buf` and
/// points `h` at it.
fn put_segment_cmsg(h: &mut libc::msghdr, buf: &mut CmsgSpace, size: u16) {
    h.msg_control = buf.as_mut_ptr().cast();
    h.msg_controllen = std::mem::size_of::<CmsgSpace>();
    // SAFETY: `h` points at `buf`, 24 bytes and 8-byte aligned, which holds
    // one header and a u16 payload (CMSG_SPACE(2) = 24); CMSG_FIRSTHDR then
    // returns a pointer into `buf` and CMSG_DATA one past its header.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(h);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
        h.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
    }
}

/// The `UDP_GRO` segment size in a received message's control data, if any.
fn gro_size(h: &libc::msghdr) -> Option<usize> {
    if h.msg_control.is_null() || h.msg_controllen == 0 {
        return None;
    }
    // SAFETY: the kernel filled `msg_control` up to `msg_controllen`; the CMSG
    // macros walk only within it, and each data read is bounds-checked against
    // the message's own length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                // The kernel reports the size as an int.
                let data = (*c).cmsg_len.saturating_sub(libc::CMSG_LEN(0) as usize);
                if data >= std::mem::size_of::<libc::c_int>() {
                    return usize::try_from(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>())).ok();
                }
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
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

/// How long a receiving thread keeps looking (yielding the CPU between looks)
/// after its last frame before it sleeps: while traffic flows this saves a
/// wake-up per batch, when it stops the thread sleeps.
pub const SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// How long an idle thread sleeps before checking whether it should stop.
pub const IDLE_POLL_MS: i32 = 200;

/// Waits for `fd` to become readable: yields while the last frame was less
/// than [`SPIN`] ago, else sleeps in `poll` (at most [`IDLE_POLL_MS`]). Every
/// receiving thread of the agents waits this way (and `netslice tool relay`,
/// to measure the same I/O).
pub fn idle(fd: RawFd, last_busy: std::time::Instant) {
    if last_busy.elapsed() < SPIN {
        std::thread::yield_now();
    } else {
        let _ = wait_readable(fd, IDLE_POLL_MS);
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes; `true` if readable.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    poll_one(fd, libc::POLLIN, timeout_ms)
}

/// Waits until `fd` is writable or `timeout_ms` passes; `true` if writable.
pub fn wait_writable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    poll_one(fd, libc::POLLOUT, timeout_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_port(s: &Socket) -> u16 {
        // SAFETY: all-zero is a valid sockaddr_in; getsockname writes at most `len` bytes into it.
        let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        // SAFETY: `a` and `len` are valid for writes for the duration of the call.
        let rc = unsafe { libc::getsockname(s.fd(), (&mut a as *mut libc::sockaddr_in).cast(), &mut len) };
        assert_eq!(rc, 0, "getsockname: {}", io::Error::last_os_error());
        u16::from_be(a.sin_port)
    }

    /// Receives until `want` datagrams arrived (or 2 s pass); returns them and
    /// how many receive buffers held more than one.
    fn receive(rx: &Socket, want: usize) -> (Vec<Vec<u8>>, usize) {
        let mut got = Vec::new();
        let mut coalesced = 0;
        let mut bufs = vec![vec![0u8; 70_000]; 8];
        let mut info = [RecvInfo::default(); 8];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < want && std::time::Instant::now() < deadline {
            match rx.recv_batch(&mut bufs, 16, &mut info) {
                Ok(n) => {
                    for (b, inf) in bufs.iter().zip(&info).take(n) {
                        assert!(!inf.truncated);
                        coalesced += usize::from(inf.seg > 0);
                        got.extend(inf.datagrams(16).map(|r| b[r].to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let _ = wait_readable(rx.fd(), 100);
                }
                Err(e) => panic!("receive: {e}"),
            }
        }
        (got, coalesced)
    }

    fn payloads() -> Vec<Vec<u8>> {
        // Ten of 1000 bytes and a shorter tail (one run), then one of 77 bytes.
        let mut v: Vec<Vec<u8>> = (0..10u8).map(|k| vec![k; 1000]).collect();
        v.push(vec![0xee; 300]);
        v.push(vec![0x77; 77]);
        v
    }

    /// Sends [`payloads`] as a run of 11 and a single datagram over loopback
    /// (with UDP checksums off if `no_check`) into a GRO socket. Returns whether
    /// the sender still uses the offload, what arrived, and how many receive
    /// buffers held more than one datagram.
    fn send_over_loopback(no_check: bool) -> (bool, Vec<Vec<u8>>, usize) {
        let mut rx = Socket::udp(0).unwrap();
        rx.enable_gro().expect("UDP_GRO (Linux 5.0+)");
        let tx = Socket::udp(0).unwrap();
        if no_check {
            set_int(tx.fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        }
        let dst = SocketAddrV4::new(Ipv4Addr::LOCALHOST, local_port(&rx));
        let p = payloads();
        let segs: Vec<&[u8]> = p.iter().map(|v| v.as_slice()).collect();
        let (sent, err) = tx.send_segments(&segs, &[(0..11, dst), (11..12, dst)]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(sent, 12);
        let (got, coalesced) = receive(&rx, 12);
        assert_eq!(got, p, "every datagram arrives whole, in order");
        (tx.segments_ok(), got, coalesced)
    }

    #[test]
    fn a_run_leaves_as_one_segmented_send_and_arrives_as_one_gro_buffer() {
        let (offload, _, coalesced) = send_over_loopback(false);
        assert!(offload);
        // Loopback carries the segmented send whole, and GRO hands it over whole.
        assert!(coalesced >= 1, "the run of 11 arrived as one buffer");
    }

    #[test]
    fn a_refused_segmented_send_falls_back_to_single_datagrams() {
        // Without UDP checksums the kernel refuses segmentation offload (EINVAL).
        let (offload, _, coalesced) = send_over_loopback(true);
        assert!(!offload, "later sends skip the offload");
        assert_eq!(coalesced, 0);
    }

    #[test]
    fn unchecked_datagrams_leave_with_a_zero_udp_checksum() {
        // Raw sockets need CAP_NET_RAW.
        if !crate::process::need_root_for_tests() {
            return;
        }
        // A raw UDP socket sees the datagrams with their headers.
        let raw = Socket::raw_ip(17).unwrap();
        let rx = Socket::udp(0).unwrap();
        let port = local_port(&rx);
        let tx = Socket::udp_unchecked().unwrap();
        assert!(!tx.segments_ok());
        let dst = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        // A super-frame's size (loopback's MTU carries it whole).
        let payload = vec![0x5a; 3000];
        let (sent, err) = tx.send_batch(&[(&payload, dst)]);
        assert!(err.is_none() && sent == 1, "{err:?}");
        let mut bufs = vec![vec![0u8; 70_000]; 8];
        let mut info = [RecvInfo::default(); 8];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let Ok(n) = raw.recv_batch(&mut bufs, 0, &mut info) else {
                let _ = wait_readable(raw.fd(), 100);
                continue;
            };
            for (b, inf) in bufs.iter().zip(&info).take(n) {
                let ihl = usize::from(b[0] & 0x0f) * 4;
                let udp = &b[ihl..inf.len];
                if u16::from_be_bytes([udp[2], udp[3]]) == port {
                    assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum");
                    assert_eq!(&udp[8..], &payload[..]);
                    return;
                }
            }
        }
        panic!("the datagram did not arrive");
    }

    #[test]
    fn datagrams_cut_a_buffer_at_the_segment_size() {
        let inf = RecvInfo { len: 2500, seg: 1000, ..RecvInfo::default() };
        assert_eq!(inf.datagrams(10).collect::<Vec<_>>(), vec![10..1010, 1010..2010, 2010..2510]);
        let one = RecvInfo { len: 64, ..RecvInfo::default() };
        assert_eq!(one.datagrams(0).collect::<Vec<_>>(), vec![0..64]);
        let empty = RecvInfo::default();
        assert_eq!(empty.datagrams(0).count(), 0);
    }
}
