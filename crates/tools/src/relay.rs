//! `netslice tool relay`: moves frames between pairs of interfaces, both ways,
//! with no logic at all: no lookup, no encapsulation, no scheduler. It uses the
//! agents' own I/O (a TAP in offload mode, or an AF_XDP socket on a veth) and
//! their wait policy (spin about 50 us, then sleep in `poll`), so a chain of
//! relays shaped like a netslice path measures the *floor* of that path: what
//! the I/O alone costs on this machine (`scripts/bench-floor.py`).
//!
//! An endpoint is `tap:NAMESPACE:IFNAME` (the persistent TAP is created if
//! missing, as the agents do for slivers), `xsk:NAMESPACE:IFNAME` (an AF_XDP
//! socket on queue 0 of an existing interface; its XDP program takes every IPv4
//! and ARP frame) or `udp:NAMESPACE:PORT:PEER_IP:PEER_PORT` (frames as UDP
//! datagrams to and from another relay, each behind its virtio-net header,
//! without UDP checksum, sent and received in batches as the agents do).
//! Frames from a TAP keep their virtio-net header when they go to another TAP
//! or through UDP (super-frames pass whole); a frame that still needs a
//! checksum or segmentation cannot go to an AF_XDP socket and is counted as
//! dropped, so switch the slivers' offloads off for such chains
//! (`ethtool -K IF tx off tso off gso off`). TAPs stay after the relay exits
//! (they are persistent, like slivers' TAPs) until their namespace is deleted
//! or `ip link del` removes them. It is a measuring tool: pointed at a live
//! sliver's TAP it would compete with the agent for its frames.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netslice_io::netns;
use netslice_io::sock::{RecvInfo, Socket};
use netslice_io::tap::{Tap, VNET_HDR_LEN};
use netslice_io::xdp::{Filter, Xsk};

/// Frames moved per wake-up (a TAP read or an AF_XDP ring batch).
const BATCH: usize = 64;
/// Room for one frame behind its virtio-net header (a TAP super-frame).
const BUF: usize = VNET_HDR_LEN + 65_550;

/// Where a relay takes or puts frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A persistent TAP in a namespace.
    Tap {
        /// Network namespace.
        netns: String,
        /// TAP name.
        ifname: String,
    },
    /// An AF_XDP socket on an interface in a namespace.
    Xsk {
        /// Network namespace.
        netns: String,
        /// Interface name.
        ifname: String,
    },
    /// A UDP socket on `port` in a namespace, exchanging frames with a relay
    /// at `peer`: each datagram carries one frame behind its virtio-net header
    /// (so super-frames cross whole, fragmented by the IP layer, as netslice's
    /// do), sent without a UDP checksum.
    Udp {
        /// Network namespace.
        netns: String,
        /// Local UDP port (on every address).
        port: u16,
        /// Where the other relay listens.
        peer: std::net::SocketAddrV4,
    },
}

impl FromStr for Endpoint {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Endpoint> {
        let mut it = s.splitn(3, ':');
        let (Some(kind), Some(ns), Some(ifname)) = (it.next(), it.next(), it.next()) else {
            bail!("endpoint {s:?}: expected tap:NAMESPACE:IFNAME or xsk:NAMESPACE:IFNAME");
        };
        if ns.is_empty()
            || ifname.is_empty()
            || (kind != "udp" && (ifname.len() >= 16 || ifname.contains(['/', ':', ' '])))
        {
            bail!(
                "endpoint {s:?}: namespace and interface name (under 16 bytes) must not be empty or contain '/', ':' or spaces"
            );
        }
        let (netns, ifname) = (ns.to_string(), ifname.to_string());
        if kind == "udp" {
            let (port, peer) = ifname.split_once(':').unwrap_or((&ifname, ""));
            let (Ok(port), Ok(peer)) = (port.parse::<u16>(), peer.parse::<std::net::SocketAddrV4>()) else {
                bail!("endpoint {s:?}: expected udp:NAMESPACE:PORT:PEER_IP:PEER_PORT");
            };
            return Ok(Endpoint::Udp { netns, port, peer });
        }
        match kind {
            "tap" => Ok(Endpoint::Tap { netns, ifname }),
            "xsk" => Ok(Endpoint::Xsk { netns, ifname }),
            _ => bail!("endpoint {s:?}: kind {kind:?} is not tap, xsk or udp"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tap { netns, ifname } => write!(f, "tap:{netns}:{ifname}"),
            Endpoint::Xsk { netns, ifname } => write!(f, "xsk:{netns}:{ifname}"),
            Endpoint::Udp { netns, port, peer } => write!(f, "udp:{netns}:{port}:{peer}"),
        }
    }
}

/// An opened endpoint.
enum Port {
    Tap(Tap),
    Xsk(Box<Xsk>),
    Udp { rx: Socket, tx: Socket, peer: std::net::SocketAddrV4 },
}

impl Port {
    fn open(e: &Endpoint) -> Result<Port> {
        match e.clone() {
            Endpoint::Tap { netns: ns, ifname } => Ok(Port::Tap(
                netns::run_in(&ns, move || Tap::open_persistent_offload(&ifname)).with_context(|| e.to_string())?,
            )),
            Endpoint::Xsk { netns: ns, ifname } => {
                let filter = Filter { ethertypes: vec![0x0800, 0x0806], ..Filter::default() };
                Ok(Port::Xsk(Box::new(
                    netns::run_in(&ns, move || Xsk::open(&ifname, &filter)).with_context(|| e.to_string())?,
                )))
            }
            Endpoint::Udp { netns: ns, port, peer } => {
                let (rx, tx) = netns::run_in(&ns, move || Ok((Socket::udp(port)?, Socket::udp_unchecked()?)))
                    .with_context(|| e.to_string())?;
                Ok(Port::Udp { rx, tx, peer })
            }
        }
    }

    fn fd(&self) -> i32 {
        match self {
            Port::Tap(t) => t.fd(),
            Port::Xsk(x) => x.fd(),
            Port::Udp { rx, .. } => rx.fd(),
        }
    }
}

/// Frames in flight in one direction: each buffer holds a virtio-net header
/// (zero for frames from AF_XDP) and the frame behind it.
struct Batch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    info: Vec<RecvInfo>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: (0..BATCH).map(|_| vec![0u8; BUF]).collect(),
            lens: Vec::with_capacity(BATCH),
            info: vec![RecvInfo::default(); BATCH],
        }
    }

    /// Takes what `from` has queued, up to a batch.
    fn fill(&mut self, from: &Port) {
        self.lens.clear();
        match from {
            Port::Tap(t) => {
                for b in self.bufs.iter_mut() {
                    match t.read(b) {
                        Ok(n) if n > VNET_HDR_LEN => self.lens.push(n),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            Port::Xsk(x) => {
                let (bufs, lens) = (&mut self.bufs, &mut self.lens);
                x.recv(BATCH, |f| {
                    let b = &mut bufs[lens.len()];
                    b[..VNET_HDR_LEN].fill(0);
                    b[VNET_HDR_LEN..VNET_HDR_LEN + f.len()].copy_from_slice(f);
                    lens.push(VNET_HDR_LEN + f.len());
                });
            }
            Port::Udp { rx, .. } => {
                let n = rx.recv_batch(&mut self.bufs, 0, &mut self.info).unwrap_or(0);
                // Buffers outsize any datagram; one too short for a header
                // becomes an empty frame that no port takes.
                self.lens.extend(self.info[..n].iter().map(|i| i.len.max(VNET_HDR_LEN)));
            }
        }
    }

    /// Hands the batch to `to`; returns how many frames it did not take.
    fn drain(&self, to: &Port) -> u64 {
        match to {
            Port::Tap(t) => {
                self.lens.iter().zip(&self.bufs).filter(|(n, b)| t.write(&b[..**n]).is_err()).count() as u64
            }
            Port::Udp { tx, peer, .. } => {
                let msgs: Vec<(&[u8], std::net::SocketAddrV4)> =
                    self.lens.iter().zip(&self.bufs).map(|(n, b)| (&b[..*n], *peer)).collect();
                let (sent, _) = tx.send_batch(&msgs);
                (msgs.len() - sent) as u64
            }
            Port::Xsk(x) => {
                // Frames that need the kernel's offloads (a partial checksum,
                // a super-frame) are not sendable as they are.
                let ok: Vec<usize> = (0..self.lens.len())
                    .filter(|&i| {
                        self.bufs[i][..VNET_HDR_LEN].iter().all(|&b| b == 0)
                            && self.lens[i] - VNET_HDR_LEN <= netslice_io::xdp::FRAME_SIZE
                    })
                    .collect();
                let sent = x.send(ok.len(), |k, out| {
                    let i = ok[k];
                    let f = &self.bufs[i][VNET_HDR_LEN..self.lens[i]];
                    out[..f.len()].copy_from_slice(f);
                    f.len()
                });
                (self.lens.len() - sent) as u64
            }
        }
    }
}

/// Counters of one relay, both directions of every pair together.
#[derive(Debug, Default)]
pub struct Counts {
    /// Frames handed on.
    pub frames: AtomicU64,
    /// Frames the far side did not take.
    pub dropped: AtomicU64,
}

fn pump(from: Arc<Port>, to: Arc<Port>, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut batch = Batch::new();
    let mut last_busy = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        batch.fill(&from);
        if batch.lens.is_empty() {
            netslice_io::sock::idle(from.fd(), last_busy);
            continue;
        }
        last_busy = Instant::now();
        let dropped = batch.drain(&to);
        counts.frames.fetch_add(batch.lens.len() as u64 - dropped, Ordering::Relaxed);
        counts.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

/// Opens every endpoint, prints `ready` on standard output, then relays each
/// pair (`ends[0]` with `ends[1]`, ...) both ways until `seconds` pass (or
/// forever).
pub fn run(ends: &[Endpoint], seconds: Option<f64>) -> Result<Counts> {
    if ends.is_empty() || ends.len() % 2 != 0 {
        bail!("relay needs endpoints in pairs, got {}", ends.len());
    }
    let ports: Vec<Arc<Port>> = ends.iter().map(|e| Port::open(e).map(Arc::new)).collect::<Result<_>>()?;
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (k, pair) in ports.chunks(2).enumerate() {
        for (dir, (a, b)) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])].into_iter().enumerate() {
            let (a, b, c, s) = (a.clone(), b.clone(), counts.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("relay-{k}-{dir}"))
                    .spawn(move || pump(a, b, c, s))
                    .context("starting a relay thread")?,
            );
        }
    }
    // The benchmark reads this line; a closed stdout does not stop the relay.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    match seconds {
        Some(s) => std::thread::sleep(Duration::from_secs_f64(s.max(0.0))),
        None => loop {
            std::thread::park();
        },
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(Arc::into_inner(counts).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_print_back() {
        for s in ["tap:ns1:tap0", "xsk:db1.t1:veth-a", "udp:ns2:5000:10.0.0.1:5001"] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), s);
        }
        for bad in [
            "tap",
            "tap:ns",
            "raw:ns:eth0",
            "tap::eth0",
            "xsk:ns:",
            "tap:ns:a/b",
            "tap:ns:0123456789abcdef",
            "udp:ns:eth0",
            "udp:ns:5000",
            "udp:ns:5000:10.0.0.1",
            "udp:ns:70000:10.0.0.1:1",
        ] {
            let e = bad.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
