//! Running iproute2's `ip`.

use std::process::Command;

use crate::{Error, Result};

/// Runs `ip ARGS...`; returns stdout, or an error with the command line and stderr.
pub fn ip<S: AsRef<str>>(args: &[S]) -> Result<String> {
    run("ip", args)
}

/// Runs `ip -n NETNS ARGS...`.
pub fn ip_in<S: AsRef<str>>(netns: &str, args: &[S]) -> Result<String> {
    let mut all: Vec<&str> = vec!["-n", netns];
    all.extend(args.iter().map(|s| s.as_ref()));
    run("ip", &all)
}

/// Runs `ip ARGS...` in namespace `netns`, or in the calling thread's one.
pub fn ip_at<S: AsRef<str>>(netns: Option<&str>, args: &[S]) -> Result<String> {
    match netns {
        Some(ns) => ip_in(ns, args),
        None => ip(args),
    }
}

/// Runs a program; returns stdout, or an error with the command line and stderr.
pub fn run<S: AsRef<str>>(prog: &str, args: &[S]) -> Result<String> {
    let line = std::iter::once(prog).chain(args.iter().map(|a| a.as_ref())).collect::<Vec<_>>().join(" ");
    let out = Command::new(prog)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .map_err(|e| Error::os(format!("running `{line}`"), e))?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One address of an interface as `ip -j addr` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// Address and prefix length, e.g. `10.0.0.1/24`.
    pub cidr: String,
    /// Scope (`global`, `link`, `host`).
    pub scope: String,
}

/// `ip -j` output as JSON; `line` names the command in the error.
fn json(out: &str, line: impl FnOnce() -> String) -> Result<serde_json::Value> {
    serde_json::from_str(out).map_err(|e| Error::Command {
        cmd: line(),
        status: "ok".into(),
        stderr: format!("unreadable JSON: {e}"),
    })
}

/// Addresses of `dev` in `netns`.
pub fn addresses(netns: &str, dev: &str) -> Result<Vec<IfAddr>> {
    let out = ip_in(netns, &["-j", "addr", "show", "dev", dev])?;
    let v = json(&out, || format!("ip -n {netns} -j addr show dev {dev}"))?;
    let mut res = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                res.push(IfAddr {
                    cidr: format!("{local}/{len}"),
                    scope: a["scope"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }
    Ok(res)
}

/// The MAC address of `dev` in namespace `netns`, or in the calling thread's
/// one (empty if it has none).
pub fn link_mac(netns: Option<&str>, dev: &str) -> Result<String> {
    let out = ip_at(netns, &["-j", "link", "show", "dev", dev])?;
    let v = json(&out, || format!("ip -j link show dev {dev} (namespace {netns:?})"))?;
    Ok(v[0]["address"].as_str().unwrap_or_default().to_string())
}

/// Whether `dev` exists in `netns`.
pub fn link_exists(netns: &str, dev: &str) -> bool {
    ip_in(netns, &["link", "show", "dev", dev]).is_ok()
}
