//! Traffic tools built into `netslice`, so a fresh machine needs no extra packages
//! to exercise a slice: run them inside slivers with `slice exec ... --
//! netslice tool ...` (the command line is `netslice`'s; this crate is what
//! they do).
//!
//! - `ping`: ICMP echo over a raw socket, with RTT statistics.
//! - `tcp-server` / `tcp-client`: a bulk TCP transfer with a banner (which proves
//!   which server answered) and the byte count confirmed by the receiver.
//! - `udp-send` / `udp-sink`: paced or flat-out UDP in batches, and a sink
//!   that checks every datagram's contents and order.
//! - `extmac-send` / `extmac-recv`, `mac-flood`: frames for the fast-path
//!   switches.
//! - [`relay`]: the I/O floor of a data path.

#![warn(missing_docs, unreachable_pub)]

pub mod relay;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netslice_wire::{icmpv4, ipv4};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

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

/// A byte count for people, in decimal units: `512 B`, `1.5 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
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
    tcp_client_mss(addr, duration, connect_timeout, None)
}

/// [`tcp_client`] with the connection's segments capped at `mss` payload
/// bytes (`TCP_MAXSEG` before connecting): 146 makes 200-byte frames.
pub fn tcp_client_mss(
    addr: SocketAddr,
    duration: Duration,
    connect_timeout: Duration,
    mss: Option<u32>,
) -> Result<TcpSummary> {
    let s = match mss {
        None => TcpStream::connect_timeout(&addr, connect_timeout).with_context(|| format!("connecting to {addr}"))?,
        Some(m) => {
            let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
            sock.set_tcp_mss(m).with_context(|| format!("setting the MSS to {m}"))?;
            sock.connect_timeout(&addr.into(), connect_timeout).with_context(|| format!("connecting to {addr}"))?;
            TcpStream::from(sock)
        }
    };
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
