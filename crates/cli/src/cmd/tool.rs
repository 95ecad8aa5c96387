//! `netslice tool ...`: the traffic tools (`netslice-tools`) for use inside
//! slivers.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;
use netslice_tools::{
    UdpSummary, bytes, extmac_recv, extmac_send, mac_flood, ping, tcp_client_mss, tcp_server, udp_send, udp_sink,
};

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
        ends: Vec<netslice_tools::relay::Endpoint>,
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
        /// Largest segment payload (TCP_MAXSEG), e.g. 146 for 200-byte
        /// frames; default: what the path allows.
        #[arg(long, value_parser = clap::value_parser!(u32).range(88..=9000))]
        mss: Option<u32>,
        /// Print a JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn print_udp(what: &str, s: &UdpSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(s)?);
    } else {
        println!(
            "{what} {} datagrams ({}) in {:.2}s = {:.0} pps, {:.3} Gbit/s of payload",
            s.packets,
            bytes(s.bytes),
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

/// Runs a tool.
pub fn command(cmd: ToolCmd) -> Result<ExitCode> {
    match cmd {
        ToolCmd::UdpSend { addr, size, seconds, count, rate, json } => {
            let s = udp_send(addr, size, Duration::from_secs_f64(seconds), count, rate.map(|r| r.bps()))?;
            print_udp("sent", &s, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ToolCmd::Relay { ends, seconds } => {
            let c = netslice_tools::relay::run(&ends, seconds)?;
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
        ToolCmd::TcpClient { addr, seconds, expect_banner, connect_timeout, mss, json } => {
            let s =
                tcp_client_mss(addr, Duration::from_secs_f64(seconds), Duration::from_secs_f64(connect_timeout), mss)?;
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
                    bytes(s.bytes),
                    s.seconds,
                    s.bits_per_second / 1e9
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
