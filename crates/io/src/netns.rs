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
