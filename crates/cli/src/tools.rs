//! Traffic tools built into `netslice`, so a fresh machine needs no extra packages
//! to exercise a slice: run them inside slivers with `slice exec`.
//!
//! - `ping`: ICMP echo over a raw socket, with RTT statistics.
//! - `tcp-server` / `tcp-client`: a bulk TCP transfer with a banner (which proves
//!   which server answered) and the byte count confirmed by the receiver.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use netslice_wire::{icmpv4, ipv4};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

/// `netslice tool ...`.
#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Send ICMP echo requests; exit 0 if any reply came back.
    Ping {
        /// IPv4 address.
        addr: Ipv4Addr,
        /// Number of requests.
        #[arg(short, long, default_value_t = 4)]
        count: u32,
        /// Seconds between requests.
        #[arg(short, long, default_value_t = 0.2)]
        interval: f64,
        /// Seconds to wait for each reply.
        #[arg(short = 'W', long, default_value_t = 1.0)]
        timeout: f64,
        /// IP time to live of the requests.
        #[arg(short = 't', long, default_value_t = 64)]
        ttl: u8,
        /// Print a JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send extended-MAC frames (EtherType 0x88B5, 16-byte addresses) on an interface.
    ExtmacSend {
        /// Interface.
        #[arg(long)]
        iface: String,
        /// Destination address, 32 hex digits (colons allowed).
        #[arg(long)]
        dst: String,
        /// Source address.
        #[arg(long)]
        src: String,
        /// Frames to send.
        #[arg(long, default_value_t = 5)]
        count: u32,
        /// Seconds between frames.
        #[arg(long, default_value_t = 0.1)]
        interval: f64,
        /// Payload text.
        #[arg(long, default_value = "hello over extended MAC")]
        payload: String,
    },
    /// Send Ethernet frames with random source and destination MACs (to test a
    /// switch's table limit).
    MacFlood {
        /// Interface.
        #[arg(long)]
        iface: String,
        /// Frames to send.
        #[arg(long, default_value_t = 10_000)]
        count: u32,
    },
    /// Receive extended-MAC frames on an interface and print them.
    ExtmacRecv {
        /// Interface.
        #[arg(long)]
        iface: String,
        /// Stop after this many frames.
        #[arg(long, default_value_t = 5)]
        count: u32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Accept TCP connections, send a banner, count what arrives.
    TcpServer {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:5201")]
        listen: SocketAddr,
        /// Banner sent to every client (e.g. the slice name).
        #[arg(long, default_value = "netslice")]
        banner: String,
        /// Exit after this many connections (0: never).
        #[arg(long, default_value_t = 0)]
        count: u32,
    },
    /// Send UDP datagrams as fast as possible (or at a rate) and report what was sent.
    UdpSend {
        /// Destination.
        addr: std::net::SocketAddrV4,
        /// UDP payload bytes (1330 makes a 1372-byte Ethernet frame).
        #[arg(long, default_value_t = 1330)]
        size: usize,
        /// Seconds to send (ignored with --count).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Send exactly this many datagrams.
        #[arg(long)]
        count: Option<u64>,
        /// Pace to this many bits per second of Ethernet frames (payload + 42
        /// bytes of Ethernet, IPv4 and UDP headers), e.g. 20Mbit; default: as
        /// fast as possible.
        #[arg(long)]
        rate: Option<netslice_model::Bandwidth>,
        /// Print a JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Relay frames between pairs of interfaces with no logic at all: the I/O
    /// floor of a data path (see scripts/bench-floor.py). Prints "ready" once
    /// every endpoint is open.
    Relay {
        /// Endpoints in pairs, each tap:NAMESPACE:IFNAME, xsk:NAMESPACE:IFNAME or
        /// udp:NAMESPACE:PORT:PEER_IP:PEER_PORT; the first is relayed with the
        /// second, the third with the fourth, ...
        #[arg(required = true, num_args = 2..)]
        ends: Vec<crate::relay::Endpoint>,
        /// Stop after this many seconds and print the counts (default: run until killed).
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// Count UDP datagrams arriving on a port for a while.
    UdpSink {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:9999")]
        listen: std::net::SocketAddrV4,
        /// Seconds to listen.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Print a JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Connect, check the banner, send data for a while, report throughput.
    TcpClient {
        /// Server address.
        addr: SocketAddr,
        /// Seconds to send.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Fail unless the server's banner is exactly this.
        #[arg(long)]
        expect_banner: Option<String>,
        /// Seconds to wait for the connection.
        #[arg(long, default_value_t = 3.0)]
        connect_timeout: f64,
        /// Print a JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Result of `ping`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PingSummary {
    /// Requests sent.
    pub sent: u32,
    /// Replies received.
    pub received: u32,
    /// Smallest RTT in milliseconds.
    pub rtt_min_ms: Option<f64>,
    /// Mean RTT.
    pub rtt_avg_ms: Option<f64>,
    /// Largest RTT.
    pub rtt_max_ms: Option<f64>,
    /// Median RTT.
    pub rtt_p50_ms: Option<f64>,
    /// 99th percentile RTT.
    pub rtt_p99_ms: Option<f64>,
    /// ICMP errors received about our requests, e.g. `time exceeded from 10.0.0.1`.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// One extended-MAC frame received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExtmacFrame {
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// Payload as text (lossy).
    pub payload: String,
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// Result of `tcp-client`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TcpSummary {
    /// Banner the server sent.
    pub banner: String,
    /// Bytes the server confirmed receiving.
    pub bytes: u64,
    /// Seconds from first byte sent to confirmation.
    pub seconds: f64,
    /// Throughput in bits per second.
    pub bits_per_second: f64,
}

/// Result of `udp-send` and `udp-sink`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UdpSummary {
    /// Datagrams sent or received.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Seconds from first to last datagram (sink) or of sending (sender).
    pub seconds: f64,
    /// Datagrams per second.
    pub pps: f64,
    /// Datagrams received in each whole second after the first one (sink only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_second: Vec<u64>,
    /// Datagrams that arrived after one the sender sent later (sink only).
    #[serde(default)]
    pub out_of_order: u64,
    /// Lowest and highest sequence number among those late datagrams (sink
    /// only): where in the run the reordering happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<(u64, u64)>,
    /// Datagrams whose length or contents differ from what `udp-send` sends
    /// (sink only).
    #[serde(default)]
    pub bad: u64,
}

/// Byte `i` of every `udp-send` payload from byte 8 on (bytes 0..8 hold the
/// sequence number, big-endian, when the payload has room for it).
fn pattern(i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ 0xa5
}

fn print_udp(what: &str, s: &UdpSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!(
            "{what} {} datagrams ({}) in {:.2}s = {:.0} pps, {:.3} Gbit/s of payload",
            s.packets,
            crate::slice::bytes(s.bytes),
            s.seconds,
            s.pps,
            s.bytes as f64 * 8.0 / s.seconds.max(1e-9) / 1e9
        );
        if s.out_of_order > 0 || s.bad > 0 {
            println!("{} out of order, {} with the wrong length or contents", s.out_of_order, s.bad);
        }
        if let Some((lo, hi)) = s.late {
            println!("late datagrams had sequence numbers {lo} - {hi}");
        }
    }
    Ok(())
}

/// Sends datagrams in batches (`sendmmsg`) for `duration` or until `count`,
/// paced to `rate_bps` of Ethernet frames if given.
pub fn udp_send(
    addr: std::net::SocketAddrV4,
    size: usize,
    duration: Duration,
    count: Option<u64>,
    rate_bps: Option<u64>,
) -> Result<UdpSummary> {
    use netslice_io::sock::{MAX_BATCH, Socket as NsSocket};
    let sock = NsSocket::udp(0)?;
    // One payload per batch slot, each stamped with its sequence number.
    let mut payloads: Vec<Vec<u8>> = (0..MAX_BATCH).map(|_| (0..size).map(pattern).collect()).collect();
    let start = Instant::now();
    let (mut packets, mut errors) = (0u64, 0u64);
    // Pacing: frames of size + 42 bytes at rate_bps; small bursts of 8.
    let gap = rate_bps.filter(|r| *r > 0).map(|r| Duration::from_secs_f64((size as f64 + 42.0) * 8.0 / r as f64));
    loop {
        let mut left = match count {
            Some(c) if packets >= c => break,
            Some(c) => (c - packets).min(MAX_BATCH as u64) as usize,
            None if start.elapsed() >= duration => break,
            None => MAX_BATCH,
        };
        if let Some(gap) = gap {
            left = left.min(8);
            let due = start + gap.mul_f64(packets as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if size >= 8 {
            for (k, p) in payloads.iter_mut().take(left).enumerate() {
                p[..8].copy_from_slice(&(packets + k as u64).to_be_bytes());
            }
        }
        let msgs: Vec<(&[u8], std::net::SocketAddrV4)> = payloads[..left].iter().map(|p| (&p[..], addr)).collect();
        let (sent, err) = sock.send_batch(&msgs);
        packets += sent as u64;
        if let Some(e) = err {
            errors += 1;
            if errors > 1000 {
                return Err(e).with_context(|| format!("sending to {addr}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(UdpSummary {
        packets,
        bytes: packets * size as u64,
        seconds,
        pps: packets as f64 / seconds.max(1e-9),
        per_second: Vec::new(),
        out_of_order: 0,
        late: None,
        bad: 0,
    })
}

/// Counts datagrams for `duration`, and checks them against what `udp-send`
/// sends: all of the first one's length, the payload pattern intact, sequence
/// numbers rising.
pub fn udp_sink(listen: std::net::SocketAddrV4, duration: Duration) -> Result<UdpSummary> {
    use netslice_io::sock::{RecvInfo, Socket as NsSocket, wait_readable};
    let sock = NsSocket::udp(listen.port())?;
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| vec![0u8; 65_536]).collect();
    let mut info = [RecvInfo::default(); 32];
    let start = Instant::now();
    let (mut packets, mut bytes, mut first, mut last) = (0u64, 0u64, None, start);
    let mut per_second: Vec<u64> = Vec::new();
    let (mut size, mut next_seq, mut out_of_order, mut bad) = (None, 0u64, 0u64, 0u64);
    let mut late: Option<(u64, u64)> = None;
    let expect: Vec<u8> = (0..65_536).map(pattern).collect();
    while start.elapsed() < duration {
        match sock.recv_batch(&mut bufs, 0, &mut info) {
            Ok(n) => {
                let now = Instant::now();
                let f = *first.get_or_insert(now);
                last = now;
                let sec = (now - f).as_secs() as usize;
                if per_second.len() <= sec {
                    per_second.resize(sec + 1, 0);
                }
                per_second[sec] += n as u64;
                packets += n as u64;
                bytes += info[..n].iter().map(|i| i.len as u64).sum::<u64>();
                for (b, i) in bufs.iter().zip(&info).take(n) {
                    let d = &b[..i.len];
                    let want = *size.get_or_insert(i.len);
                    let from = if want >= 8 { 8 } else { 0 };
                    if i.len != want || d.get(from..) != expect.get(from..i.len) {
                        bad += 1;
                        continue;
                    }
                    if want >= 8 {
                        let seq = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
                        if seq < next_seq {
                            out_of_order += 1;
                            late = Some(late.map_or((seq, seq), |(lo, hi)| (lo.min(seq), hi.max(seq))));
                        }
                        next_seq = next_seq.max(seq + 1);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = wait_readable(sock.fd(), 50);
            }
            Err(e) => return Err(e).context("receiving"),
        }
    }
    let seconds = first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0);
    // The last second is partial: report whole seconds only.
    per_second.pop();
    Ok(UdpSummary {
        packets,
        bytes,
        seconds,
        pps: if seconds > 0.0 { packets as f64 / seconds } else { 0.0 },
        per_second,
        out_of_order,
        late,
        bad,
    })
}

/// Runs a tool.
pub fn command(cmd: ToolCmd) -> Result<ExitCode> {
    match cmd {
        ToolCmd::UdpSend { addr, size, seconds, count, rate, json } => {
            let s = udp_send(addr, size, Duration::from_secs_f64(seconds), count, rate.map(|r| r.bps()))?;
            print_udp("sent", &s, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::Relay { ends, seconds } => {
            let c = crate::relay::run(&ends, seconds)?;
            println!(
                "relayed {} frames, {} not taken",
                c.frames.load(std::sync::atomic::Ordering::Relaxed),
                c.dropped.load(std::sync::atomic::Ordering::Relaxed)
            );
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::UdpSink { listen, seconds, json } => {
            let s = udp_sink(listen, Duration::from_secs_f64(seconds))?;
            print_udp("received", &s, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::ExtmacSend { iface, dst, src, count, interval, payload } => {
            extmac_send(&iface, &dst, &src, count, Duration::from_secs_f64(interval), payload.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::MacFlood { iface, count } => {
            mac_flood(&iface, count)?;
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::ExtmacRecv { iface, count, timeout, json } => {
            let got = extmac_recv(&iface, count, Duration::from_secs_f64(timeout))?;
            if json {
                println!("{}", serde_json::to_string(&got)?);
            } else {
                for f in &got {
                    println!("{} -> {}: {}", f.src, f.dst, f.payload);
                }
            }
            Ok(if got.len() as u32 >= count { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ToolCmd::Ping { addr, count, interval, timeout, ttl, json } => {
            let s = ping(addr, count, Duration::from_secs_f64(interval), Duration::from_secs_f64(timeout), ttl, !json)?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            }
            Ok(if s.received > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ToolCmd::TcpServer { listen, banner, count } => {
            tcp_server(listen, &banner, count)?;
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::TcpClient { addr, seconds, expect_banner, connect_timeout, json } => {
            let s = tcp_client(addr, Duration::from_secs_f64(seconds), Duration::from_secs_f64(connect_timeout))?;
            if let Some(want) = expect_banner
                && s.banner != want
            {
                bail!("server banner is {:?}, expected {want:?}: reached the wrong server", s.banner);
            }
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "sent to {addr} ({}): {} in {:.2}s = {:.3} Gbit/s",
                    s.banner,
                    crate::slice::bytes(s.bytes),
                    s.seconds,
                    s.bits_per_second / 1e9
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Sends `count` echo requests to `addr`; prints per-reply lines when `verbose`.
pub fn ping(
    addr: Ipv4Addr,
    count: u32,
    interval: Duration,
    timeout: Duration,
    ttl: u8,
    verbose: bool,
) -> Result<PingSummary> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .context("opening a raw ICMP socket (needs root)")?;
    sock.set_ttl_v4(u32::from(ttl)).context("setting the TTL")?;
    let mut errors = Vec::new();
    let ident = (std::process::id() & 0xffff) as u16;
    let dst: SocketAddr = (addr, 0).into();
    let mut rtts = Vec::new();
    let mut sent = 0;
    for seq in 1..=count {
        let payload = b"netslice-ping-00000000";
        let repr = icmpv4::Repr::EchoRequest { ident, seq_no: seq as u16, data_len: payload.len() };
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[icmpv4::HEADER_LEN..].copy_from_slice(payload);
        repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
        let start = Instant::now();
        sent += 1;
        if let Err(e) = sock.send_to(&buf, &dst.into()) {
            // No route, say: the request is lost, which is a result, not a failure.
            if verbose {
                println!("cannot send to {addr}: seq={seq}: {e}");
            }
            if seq < count {
                std::thread::sleep(interval);
            }
            continue;
        }
        let deadline = start + timeout;
        let mut got = None;
        while got.is_none() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            sock.set_read_timeout(Some(deadline - now))?;
            let mut bytes = [0u8; 2048];
            let n = match (&sock).read(&mut bytes) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
                Err(e) => return Err(e).context("receiving ICMP"),
            };
            if let Some(from) = icmp_error_about(&bytes[..n], ident, seq as u16) {
                if verbose {
                    println!("{from} from seq={seq}");
                }
                errors.push(from);
                break;
            }
            if let Ok(ip) = ipv4::Packet::new_checked(&bytes[..n])
                && ip.src_addr() == addr
                && ip.protocol() == ipv4::protocol::ICMP
                && let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload())
                && let Ok(icmpv4::Repr::EchoReply { ident: i, seq_no, .. }) = icmpv4::Repr::parse(&icmp)
                && i == ident
                && seq_no == seq as u16
            {
                got = Some((start.elapsed(), ip.ttl()));
            }
        }
        match got {
            Some((rtt, ttl)) => {
                let ms = rtt.as_secs_f64() * 1000.0;
                if verbose {
                    println!("reply from {addr}: seq={seq} ttl={ttl} time={ms:.3} ms");
                }
                rtts.push(ms);
            }
            None => {
                if verbose {
                    println!("no reply from {addr}: seq={seq}");
                }
            }
        }
        if seq < count {
            std::thread::sleep(interval.saturating_sub(start.elapsed()));
        }
    }
    let received = rtts.len() as u32;
    let mut sorted = rtts.clone();
    sorted.sort_by(f64::total_cmp);
    let s = PingSummary {
        errors,
        rtt_p50_ms: percentile(&sorted, 50.0),
        rtt_p99_ms: percentile(&sorted, 99.0),
        sent,
        received,
        rtt_min_ms: rtts.iter().copied().reduce(f64::min),
        rtt_avg_ms: (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64),
        rtt_max_ms: rtts.iter().copied().reduce(f64::max),
    };
    if verbose {
        println!(
            "{addr}: {sent} sent, {received} received, {:.0}% loss{}",
            100.0 * f64::from(sent - received) / f64::from(sent.max(1)),
            match (s.rtt_min_ms, s.rtt_avg_ms, s.rtt_max_ms) {
                (Some(a), Some(b), Some(c)) => format!(", rtt min/avg/max {a:.3}/{b:.3}/{c:.3} ms"),
                _ => String::new(),
            }
        );
    }
    Ok(s)
}

/// If `packet` (an IPv4 packet from a raw ICMP socket) is an ICMP error about our
/// echo request `ident`/`seq`, says which and from where.
fn icmp_error_about(packet: &[u8], ident: u16, seq: u16) -> Option<String> {
    let ip = ipv4::Packet::new_checked(packet).ok()?;
    if ip.protocol() != ipv4::protocol::ICMP {
        return None;
    }
    let icmp = icmpv4::Packet::new_checked(ip.payload()).ok()?;
    let what = match icmpv4::Repr::parse(&icmp).ok()? {
        icmpv4::Repr::TimeExceeded { .. } => "time exceeded".to_string(),
        icmpv4::Repr::DstUnreachable { code, .. } => format!("destination unreachable (code {code})"),
        _ => return None,
    };
    // The quoted packet: our IPv4 header, then the first 8 bytes of our request.
    let inner = ipv4::Packet::new_unchecked(icmp.data());
    let hl = if icmp.data().len() >= 20 { inner.header_len() } else { return None };
    let q = icmp.data().get(hl..hl + 8)?;
    let (qi, qs) = (u16::from_be_bytes([q[4], q[5]]), u16::from_be_bytes([q[6], q[7]]));
    (q[0] == icmpv4::msg_type::ECHO_REQUEST && qi == ident && qs == seq)
        .then(|| format!("{what} from {}", ip.src_addr()))
}

/// Sends `count` extended-MAC frames on `iface` (Ethernet broadcast carrying the
/// 16-byte addresses).
pub fn extmac_send(iface: &str, dst: &str, src: &str, count: u32, interval: Duration, payload: &[u8]) -> Result<()> {
    use netslice_wire::extmac::{self, ExtAddr};
    use netslice_wire::{EtherType, MacAddr, ethernet};
    let dst: ExtAddr = dst.parse().map_err(|e| anyhow::anyhow!("--dst: {e}"))?;
    let src: ExtAddr = src.parse().map_err(|e| anyhow::anyhow!("--src: {e}"))?;
    let sock = netslice_io::packet::PacketSocket::bind(iface)?;
    let mut f = vec![0u8; ethernet::HEADER_LEN + extmac::HEADER_LEN + payload.len()];
    let mut eth_src = [0x02, 0, 0, 0, 0, 0];
    eth_src[1..].copy_from_slice(&src.0[11..16]);
    ethernet::Repr { src_addr: MacAddr(eth_src), dst_addr: MacAddr::BROADCAST, ethertype: EtherType::ExtMac }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    extmac::Repr { ethertype: EtherType::Unknown(0x88b6), dst_addr: dst, src_addr: src }
        .emit(&mut extmac::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]));
    f[ethernet::HEADER_LEN + extmac::HEADER_LEN..].copy_from_slice(payload);
    for i in 0..count {
        let (_, err) = sock.send_batch(&[&f]);
        if let Some(e) = err {
            return Err(e).with_context(|| format!("sending on {iface}"));
        }
        if i + 1 < count {
            std::thread::sleep(interval);
        }
    }
    eprintln!("sent {count} extended-MAC frames {src} -> {dst} on {iface}");
    Ok(())
}

/// Sends `count` frames with random unicast source and destination MACs.
pub fn mac_flood(iface: &str, count: u32) -> Result<()> {
    let sock = netslice_io::packet::PacketSocket::bind(iface)?;
    let mut x =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64 | 1;
    let mut frames = vec![vec![0u8; 60]; 32];
    let mut sent = 0;
    while sent < count {
        let n = (count - sent).min(32) as usize;
        for f in frames.iter_mut().take(n) {
            for half in [0usize, 6] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = x.to_be_bytes();
                f[half..half + 6].copy_from_slice(&b[..6]);
                f[half] = (f[half] & 0xfe) | 0x02; // unicast, locally administered
            }
            f[12..14].copy_from_slice(&[0x88, 0xb6]);
        }
        let refs: Vec<&[u8]> = frames.iter().take(n).map(|f| &f[..]).collect();
        let (k, err) = sock.send_batch(&refs);
        sent += k as u32;
        if let Some(e) = err {
            return Err(e).with_context(|| format!("sending on {iface}"));
        }
    }
    eprintln!("sent {count} frames with random MACs on {iface}");
    Ok(())
}

/// Receives up to `count` extended-MAC frames on `iface` within `timeout`.
pub fn extmac_recv(iface: &str, count: u32, timeout: Duration) -> Result<Vec<ExtmacFrame>> {
    use netslice_io::packet::{FrameInfo, PacketSocket};
    use netslice_wire::{EtherType, ethernet, extmac};
    let sock = PacketSocket::bind(iface)?;
    sock.filter_ethertypes(&[0x88b5])?;
    let deadline = Instant::now() + timeout;
    let mut bufs = vec![vec![0u8; 16_384]; 8];
    let mut info = [FrameInfo::default(); 8];
    let mut got = Vec::new();
    while (got.len() as u32) < count && Instant::now() < deadline {
        let n = match sock.recv_batch(&mut bufs, 4, &mut info) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = netslice_io::sock::wait_readable(sock.fd(), 100);
                continue;
            }
            Err(e) => return Err(e).context("receiving"),
        };
        for (b, fi) in bufs.iter().zip(info.iter()).take(n) {
            if fi.outgoing {
                continue;
            }
            let frame = &b[fi.start..fi.start + fi.len];
            let Ok(eth) = ethernet::Frame::new_checked(frame) else { continue };
            if eth.ethertype() != EtherType::ExtMac {
                continue;
            }
            let Ok(p) = extmac::Packet::new_checked(eth.payload()) else { continue };
            let Ok(r) = extmac::Repr::parse(&p) else { continue };
            got.push(ExtmacFrame {
                src: r.src_addr.to_string(),
                dst: r.dst_addr.to_string(),
                payload: String::from_utf8_lossy(p.payload()).trim_end_matches('\0').to_string(),
            });
        }
    }
    Ok(got)
}

/// Serves bulk-transfer clients.
pub fn tcp_server(listen: SocketAddr, banner: &str, count: u32) -> Result<()> {
    let l = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    eprintln!("tcp-server {banner:?} listening on {listen}");
    let mut served = 0;
    for conn in l.incoming() {
        let mut c = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let peer = c.peer_addr().ok();
        let banner = banner.to_string();
        let handle = std::thread::spawn(move || -> std::io::Result<u64> {
            c.write_all(format!("netslice-tcp {banner}\n").as_bytes())?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = c.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            c.write_all(format!("received {total}\n").as_bytes())?;
            Ok(total)
        });
        served += 1;
        if count > 0 && served >= count {
            let r = handle.join();
            if let Ok(Ok(n)) = r {
                eprintln!("received {n} bytes from {peer:?}");
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Sends for `duration`; returns what the server confirmed.
pub fn tcp_client(addr: SocketAddr, duration: Duration, connect_timeout: Duration) -> Result<TcpSummary> {
    let s = TcpStream::connect_timeout(&addr, connect_timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line).context("reading the server's banner")?;
    let banner = line.trim().strip_prefix("netslice-tcp ").context("not a netslice tcp-server")?.to_string();
    let mut w = s;
    let chunk = vec![0x5au8; 128 * 1024];
    let start = Instant::now();
    while start.elapsed() < duration {
        w.write_all(&chunk).context("sending")?;
    }
    w.shutdown(Shutdown::Write)?;
    line.clear();
    reader.read_line(&mut line).context("reading the server's byte count")?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes: u64 = line
        .trim()
        .strip_prefix("received ")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected answer {line:?}"))?;
    Ok(TcpSummary { banner, bytes, seconds, bits_per_second: bytes as f64 * 8.0 / seconds })
}
