//! TAP devices. netslice makes them persistent (`TUNSETPERSIST`), so a sliver's
//! interface, its addresses and routes, and the sockets of programs using it all
//! survive an agent restart; the restarted agent re-attaches by name.
//!
//! In offload mode (`IFF_VNET_HDR` plus `TUNSETOFFLOAD` with checksum and TSO)
//! every frame read or written is preceded by a 10-byte virtio-net header, and
//! the sliver's TCP hands over super-frames of many segments with partial
//! checksums instead of one MSS at a time.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::{Error, Result};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_ulong = 0x01;
const TUN_F_TSO4: libc::c_ulong = 0x02;
const TUN_F_TSO6: libc::c_ulong = 0x04;
const TUN_F_TSO_ECN: libc::c_ulong = 0x08;

/// Bytes of the virtio-net header in offload mode.
pub const VNET_HDR_LEN: usize = 10;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TAP device.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    offload: bool,
}

impl Tap {
    /// Creates (or attaches to) the persistent TAP `name` in the calling thread's
    /// network namespace, non-blocking, in plain mode (frames only).
    pub fn open_persistent(name: &str) -> Result<Tap> {
        Tap::open(name, false)
    }

    /// Like [`Tap::open_persistent`], in offload mode: every frame read or
    /// written carries a virtio-net header, and the kernel may hand over
    /// checksum-partial TCP super-frames (TSO for IPv4 and IPv6).
    pub fn open_persistent_offload(name: &str) -> Result<Tap> {
        Tap::open(name, true)
    }

    fn open(name: &str, offload: bool) -> Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(Error::os(format!("TAP name {name:?}"), io::Error::from(io::ErrorKind::InvalidInput)));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| Error::os("opening /dev/net/tun", e))?;
        let flags = IFF_TAP | IFF_NO_PI | if offload { IFF_VNET_HDR } else { 0 };
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags, _pad: [0; 22] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `IfReq` has its layout
        // (16-byte name, flags, padding to 40 bytes) and lives across the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(Error::last(format!("TUNSETIFF {name}")));
        }
        // SAFETY: TUNSETPERSIST takes an integer argument by value.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETPERSIST, 1 as libc::c_ulong) };
        if rc < 0 {
            return Err(Error::last(format!("TUNSETPERSIST {name}")));
        }
        let offloads = if offload { TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN } else { 0 };
        // SAFETY: TUNSETOFFLOAD takes an integer argument by value.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, offloads) };
        if rc < 0 {
            return Err(Error::last(format!("TUNSETOFFLOAD {name}")));
        }
        Ok(Tap { file, name: name.to_string(), offload })
    }

    /// Whether frames carry a virtio-net header.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file descriptor.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Reads one frame; `WouldBlock` when none is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid writable region of `buf.len()` bytes for the call.
        let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Writes one frame.
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: `frame` is a valid readable region of `frame.len()` bytes.
        let n = unsafe { libc::write(self.fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Clears the persist flag: the device disappears when this handle closes.
    pub fn unpersist(&self) -> Result<()> {
        // SAFETY: TUNSETPERSIST takes an integer argument by value.
        let rc = unsafe { libc::ioctl(self.fd(), TUNSETPERSIST, 0 as libc::c_ulong) };
        if rc < 0 {
            return Err(Error::last(format!("TUNSETPERSIST 0 {}", self.name)));
        }
        Ok(())
    }
}
