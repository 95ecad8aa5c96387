//! TAP devices. netslice makes them persistent (`TUNSETPERSIST`), so a sliver's
//! interface, its addresses and routes, and the sockets of programs using it all
//! survive an agent restart; the restarted agent re-attaches by name.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::{Error, Result};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

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
}

impl Tap {
    /// Creates (or attaches to) the persistent TAP `name` in the calling thread's
    /// network namespace, non-blocking.
    pub fn open_persistent(name: &str) -> Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(Error::os(format!("TAP name {name:?}"), io::Error::from(io::ErrorKind::InvalidInput)));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| Error::os("opening /dev/net/tun", e))?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
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
        Ok(Tap { file, name: name.to_string() })
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
