//! Socket options, for every kind of socket the crate opens.

use std::io;
use std::os::fd::RawFd;

/// Sets an integer socket option.
pub(crate) fn set_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer to `v`.
    let rc = unsafe {
        libc::setsockopt(fd, level, opt, (&v as *const libc::c_int).cast(), std::mem::size_of::<libc::c_int>() as u32)
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Frames the kernel dropped because this socket's receive queue was full (or
/// its filter refused them, for raw sockets): the socket's `sk_drops`, read
/// with `SO_MEMINFO`. Works for raw, UDP and packet sockets.
pub fn socket_drops(fd: RawFd) -> io::Result<u64> {
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to `info`, a valid buffer of that size.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_MEMINFO, info.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < std::mem::size_of_val(&info) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "SO_MEMINFO has no drop count on this kernel"));
    }
    Ok(u64::from(info[libc::SK_MEMINFO_DROPS as usize]))
}
