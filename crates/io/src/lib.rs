//! Every piece of OS I/O netslice does, and the only crate with `unsafe` code.
//!
//! - [`cmd`]: running `ip` (iproute2) with errors that say which command failed.
//! - [`netns`]: named network namespaces; running code inside one on a thread.
//! - [`tap`]: persistent TAP devices (so a sliver's interface outlives an agent restart).
//! - [`cbpf`]: classic BPF socket filters (ethertypes, GRE keys).
//! - [`reuseport`]: steering a UDP port's datagrams between sockets by a label in the payload.
//! - [`rtnl`]: interfaces, addresses and routes in namespaces over rtnetlink.
//! - [`sock`]: raw GRE and UDP sockets with batched `recvmmsg`/`sendmmsg`, and `poll`.
//! - [`cpu`]: pinning threads to CPUs.
//! - [`epoll`]: one thread waiting on many descriptors.
//! - [`cgroup`]: cgroup v1 cpu and memory limits for slivers.
//! - [`process`]: signals, liveness, detached daemons.
//! - [`xdp`]: AF_XDP sockets with an XDP program that steals netslice's carrier frames.

#![warn(missing_docs, unreachable_pub)]

pub mod cbpf;
pub mod cgroup;
pub mod clock;
pub mod cmd;
pub mod cpu;
pub(crate) mod ebpf;
pub mod epoll;
pub mod file;
pub mod netns;
pub mod packet;
pub mod process;
pub mod reuseport;
pub mod rtnl;
pub mod sliver;
pub mod sock;
pub mod sockopt;
pub mod tap;
pub mod xdp;

/// An OS-level failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn os(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Os { what: what.into(), source }
    }

    pub(crate) fn last(what: impl Into<String>) -> Error {
        Error::Os { what: what.into(), source: std::io::Error::last_os_error() }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How an agent does substrate I/O (`netslice node --io`, `NETSLICE_IO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// AF_XDP where it can be set up, sockets elsewhere.
    #[default]
    Auto,
    /// AF_XDP on every interface; an interface where it fails is an error.
    Xdp,
    /// Raw, UDP and packet sockets only.
    Sockets,
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoMode::Auto),
            "xdp" | "af_xdp" => Ok(IoMode::Xdp),
            "sockets" => Ok(IoMode::Sockets),
            other => Err(format!("{other:?} is not an I/O mode (auto, xdp, sockets)")),
        }
    }
}
