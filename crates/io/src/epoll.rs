//! `epoll`: one thread waiting on many descriptors (the agent's port pollers
//! serve every sliver interface of a host from a few threads). Level
//! triggered: a descriptor with data left stays ready, so a reader may take a
//! bounded batch from each and come back.
//!
//! [`Epoll::add`] and [`Epoll::remove`] may be called from any thread while
//! another waits ([`Epoll::wait`]): the kernel allows it, and the waiter sees
//! the change at its next wait.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new, empty instance (close-on-exec).
    pub fn new() -> Result<Epoll> {
        // SAFETY: epoll_create1 takes flags only and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(Error::last("epoll_create1"));
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nothing else.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Its descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Watches `fd` for input; [`Epoll::wait`] reports it as `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let rc = unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(Error::last(format!("epoll_ctl(ADD, {fd})")));
        }
        Ok(())
    }

    /// Stops watching `fd` (a descriptor not watched is not an error).
    pub fn remove(&self, fd: RawFd) -> Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `ev` is valid (kernels before 2.6.9 required a non-null pointer).
        let rc = unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) || e.raw_os_error() == Some(libc::EBADF) {
                return Ok(());
            }
            return Err(Error::os(format!("epoll_ctl(DEL, {fd})"), e));
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (0: do not wait, -1: forever) for watched
    /// descriptors to be readable, and puts their tokens in `ready` (cleared
    /// first; at most `max`). Returns how many; an interrupted wait returns 0.
    pub fn wait(&self, ready: &mut Vec<u64>, max: usize, timeout_ms: i32) -> io::Result<usize> {
        ready.clear();
        let max = max.clamp(1, 1024);
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let cap = max.min(evs.len());
        // SAFETY: `evs` has room for `cap` events and outlives the call.
        let n = unsafe { libc::epoll_wait(self.fd(), evs.as_mut_ptr(), cap as i32, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        ready.extend(evs[..n as usize].iter().map(|e| e.u64));
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, 0);
        // SAFETY: both descriptors are new and owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn readable_descriptors_are_reported_by_token_until_removed() {
        let ep = Epoll::new().unwrap();
        let (r1, w1) = pipe();
        let (r2, _w2) = pipe();
        ep.add(r1.as_raw_fd(), 7).unwrap();
        ep.add(r2.as_raw_fd(), 9).unwrap();
        let mut ready = Vec::new();
        assert_eq!(ep.wait(&mut ready, 16, 0).unwrap(), 0);
        // SAFETY: writes one byte from a valid buffer.
        assert_eq!(unsafe { libc::write(w1.as_raw_fd(), b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(ep.wait(&mut ready, 16, 100).unwrap(), 1);
        assert_eq!(ready, vec![7]);
        // Level triggered: still readable, still reported.
        assert_eq!(ep.wait(&mut ready, 16, 0).unwrap(), 1);
        ep.remove(r1.as_raw_fd()).unwrap();
        ep.remove(r1.as_raw_fd()).unwrap();
        assert_eq!(ep.wait(&mut ready, 16, 0).unwrap(), 0);
    }
}
