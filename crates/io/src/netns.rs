//! Named network namespaces (the `ip netns` convention: a bind mount under
//! `/run/netns`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::cmd::ip;
use crate::{Error, Result};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Path of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// All named namespaces.
pub fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|rd| rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Creates a named namespace with loopback up; an existing one is kept.
pub fn create(name: &str) -> Result<()> {
    if !exists(name) {
        ip(&["netns", "add", name])?;
    }
    crate::cmd::ip_in(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes a named namespace if it exists.
pub fn delete(name: &str) -> Result<()> {
    if exists(name) {
        ip(&["netns", "del", name])?;
    }
    Ok(())
}

/// PIDs of processes whose network namespace is `name`.
pub fn pids(name: &str) -> Vec<i32> {
    ip(&["netns", "pids", name])
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Moves the calling thread into the named namespace. Only this thread moves; a
/// thread of a multi-threaded process should be dedicated to this.
pub fn enter(name: &str) -> Result<()> {
    let f = File::open(path(name)).map_err(|e| Error::os(format!("opening network namespace {name}"), e))?;
    // SAFETY: setns takes a valid open fd (owned by `f`, alive for the call) and a
    // namespace type constant; it has no memory-safety preconditions.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(Error::last(format!("entering network namespace {name}")));
    }
    Ok(())
}

/// Runs `f` on a new thread inside the named namespace and returns its result.
/// Sockets and TAP devices created there stay in that namespace.
pub fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let owned = name.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{}", owned.chars().take(8).collect::<String>()))
        .spawn(move || {
            enter(&owned)?;
            f()
        })
        .map_err(|e| Error::os("spawning a namespace thread", e))?
        .join()
        .unwrap_or_else(|_| Err(Error::os("namespace thread", std::io::Error::other("panicked"))))
}

/// Writes a sysctl under `/proc/sys/net` inside the named namespace.
pub fn sysctl(name: &str, key: &str, value: &str) -> Result<()> {
    let key = key.replace('.', "/");
    let value = value.to_string();
    run_in(name, move || {
        let p = format!("/proc/sys/{key}");
        std::fs::write(&p, value).map_err(|e| Error::os(format!("writing {p}"), e))
    })
}

/// Turns generic receive offload on or off for interface `ifname` inside the
/// named namespace (the `ethtool -K IF gro on` of the legacy `ETHTOOL_SGRO`
/// ioctl). On a veth this also switches its receive side to NAPI: frames then
/// wait in the device's own ring and leave it in order, as on a real NIC,
/// instead of in the per-CPU backlog of whichever CPU sent them, where a sender
/// that moves between CPUs can overtake its own earlier frames.
pub fn set_gro(name: &str, ifname: &str, on: bool) -> Result<()> {
    let ifname = ifname.to_string();
    run_in(name, move || set_gro_here(&ifname, on))
}

/// [`set_gro`] in the calling thread's namespace.
pub fn set_gro_here(ifname: &str, on: bool) -> Result<()> {
    ethtool_value(ifname, ETHTOOL_SGRO, u32::from(on)).map(|_| ())
}

/// Whether GRO is on for `ifname` in the calling thread's namespace.
pub fn gro_here(ifname: &str) -> Result<bool> {
    ethtool_value(ifname, ETHTOOL_GGRO, 0).map(|v| v != 0)
}

const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;

/// One `SIOCETHTOOL` call with a `struct ethtool_value`; returns its `data`.
fn ethtool_value(ifname: &str, cmd: u32, data: u32) -> Result<u32> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let what = || format!("ethtool command {cmd:#x} on {ifname}");
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(Error::os(what(), std::io::Error::from(std::io::ErrorKind::InvalidInput)));
    }
    let mut value = EthtoolValue { cmd, data };
    // SAFETY: all-zero is a valid ifreq.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    // SAFETY: plain socket(2); the descriptor is checked and then owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last(what()));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: SIOCETHTOOL reads `ifr` (a NUL-terminated name and a pointer to
    // `value`), and reads and writes `value`; both live across the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if rc < 0 {
        return Err(Error::last(what()));
    }
    Ok(value.data)
}
