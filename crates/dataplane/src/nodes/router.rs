//! `router`: an IPv4 router in the agent's fast path. Longest-prefix match over
//! its connected subnets and the node's static routes, ARP (answering for its
//! addresses, resolving next hops with a bounded queue of waiting packets), TTL
//! decrement with an incremental checksum update (RFC 1624), and ICMP: echo
//! replies for its own addresses, time exceeded (RFC 792 type 11) and destination
//! unreachable (type 3) errors quoting the offending header plus 8 bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use netslice_model::types::{NodeDecl, NodeTypeInfo, ParamError};
use netslice_wire::{EtherType, MacAddr, arp, ethernet, icmpv4, ipv4};

use super::params::check_keys;
use crate::program::{NodeInstance, NodeProgram, Outputs};
use crate::registry::{InstantiateError, NodeTypePlugin};

/// Packets waiting for one next hop's ARP answer, at most.
const PENDING_PER_HOP: usize = 16;
/// How long a next hop may stay unresolved before its queue is dropped, ns.
const PENDING_TIMEOUT: u64 = 3_000_000_000;
/// How often an unanswered ARP request is repeated, ns.
const ARP_RETRY: u64 = 1_000_000_000;
/// How long a neighbour entry lives, ns.
const NEIGH_TTL: u64 = 300_000_000_000;

/// The `router` node type.
#[derive(Debug, Clone, Copy)]
pub struct RouterType;

fn v4(addrs: &[IpNet]) -> Vec<Ipv4Net> {
    addrs
        .iter()
        .filter_map(|a| match a {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
        .collect()
}

impl NodeTypePlugin for RouterType {
    fn info(&self) -> NodeTypeInfo {
        NodeTypeInfo {
            name: "router".into(),
            description: "IPv4 router in the agent's fast path: longest-prefix match over connected subnets and the node's `routes`, ARP, TTL, ICMP errors"
                .into(),
            fast_path: true,
            params: Vec::new(),
        }
    }

    fn check(&self, node: &NodeDecl<'_>) -> Vec<ParamError> {
        let mut errs = check_keys(node.params, &[]);
        for i in node.interfaces {
            if v4(&i.addresses).len() != 1 {
                errs.push(ParamError::node(format!(
                    "interface {} (link {}) needs exactly one IPv4 address on a router",
                    i.name, i.link
                )));
            }
        }
        for (r, route) in node.routes.iter().enumerate() {
            if !(route.to.addr().is_ipv4() && route.via.is_ipv4()) {
                errs.push(ParamError::new(format!("routes[{r}]"), "a router routes IPv4 only"));
            }
        }
        errs
    }

    fn memory(&self, node: &NodeDecl<'_>) -> u64 {
        // Routes, and per interface a full queue of packets waiting for ARP
        // (bounded per next hop) and its neighbour entries, plus 64 KiB.
        let queues: u64 = node.interfaces.iter().map(|i| PENDING_PER_HOP as u64 * (u64::from(i.mtu) + 14) * 4).sum();
        (64 << 10) + node.routes.len() as u64 * 64 + queues
    }

    fn instantiate(&self, node: &NodeInstance) -> Result<Option<Box<dyn NodeProgram>>, InstantiateError> {
        Ok(Some(Box::new(Router::new(node)?)))
    }
}

#[derive(Debug, Clone, Copy)]
struct RIface {
    mac: MacAddr,
    net: Ipv4Net,
    mtu: u32,
}

/// Frames waiting for a next hop's ARP answer, and when it was last asked.
type Pending = (u64, VecDeque<Vec<u8>>);

/// A running router.
#[derive(Debug)]
pub struct Router {
    ifaces: Vec<RIface>,
    routes: Vec<(Ipv4Net, usize, Option<Ipv4Addr>)>,
    neigh: HashMap<(usize, Ipv4Addr), (MacAddr, u64)>,
    pending: HashMap<(usize, Ipv4Addr), Pending>,
    stats: BTreeMap<&'static str, u64>,
}

impl Router {
    /// A router for `node`: its interfaces' IPv4 addresses and its static routes.
    pub fn new(node: &NodeInstance) -> Result<Router, InstantiateError> {
        let mut ifaces = Vec::new();
        for i in &node.interfaces {
            let net = *v4(&i.addresses)
                .first()
                .ok_or_else(|| ParamError::node(format!("interface {} has no IPv4 address", i.name)))?;
            ifaces.push(RIface { mac: i.mac, net, mtu: i.mtu });
        }
        let mut routes: Vec<(Ipv4Net, usize, Option<Ipv4Addr>)> =
            ifaces.iter().enumerate().map(|(k, i)| (i.net.trunc(), k, None)).collect();
        for r in &node.routes {
            let (IpNet::V4(to), std::net::IpAddr::V4(via)) = (r.to, r.via) else { continue };
            let out = ifaces
                .iter()
                .position(|i| i.net.contains(&via))
                .ok_or_else(|| ParamError::node(format!("route to {to}: {via} is on no interface")))?;
            routes.push((to.trunc(), out, Some(via)));
        }
        // Longest prefix first; the first match wins.
        routes.sort_by_key(|r| std::cmp::Reverse(r.0.prefix_len()));
        Ok(Router { ifaces, routes, neigh: HashMap::new(), pending: HashMap::new(), stats: BTreeMap::new() })
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    /// The output interface and next hop for `dst`.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<(usize, Ipv4Addr)> {
        self.routes.iter().find(|(net, _, _)| net.contains(&dst)).map(|(_, i, gw)| (*i, gw.unwrap_or(dst)))
    }

    fn is_mine(&self, ip: Ipv4Addr) -> bool {
        self.ifaces.iter().any(|i| i.net.addr() == ip)
    }

    fn arp_frame(&self, iface: usize, op: arp::Operation, dst_mac: MacAddr, tha: MacAddr, tpa: Ipv4Addr) -> Vec<u8> {
        let me = self.ifaces[iface];
        let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
        ethernet::Repr { src_addr: me.mac, dst_addr: dst_mac, ethertype: EtherType::Arp }
            .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        arp::Repr {
            operation: op,
            source_hardware_addr: me.mac,
            source_protocol_addr: me.net.addr(),
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        }
        .emit(&mut arp::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]));
        f
    }

    /// An ICMP message from this router's address on `iface` back to the sender of
    /// `orig` (an Ethernet frame received on `iface`), quoting its IP header + 8.
    fn icmp_back(&self, iface: usize, orig: &[u8], kind: IcmpKind) -> Option<Vec<u8>> {
        let eth = ethernet::Frame::new_checked(orig).ok()?;
        let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
        let me = self.ifaces[iface];
        let data: Vec<u8> = match kind {
            IcmpKind::EchoReply { .. } => ip.payload().get(icmpv4::HEADER_LEN..)?.to_vec(),
            _ => {
                let quote = (ip.header_len() + 8).min(usize::from(ip.total_len()));
                eth.payload()[..quote].to_vec()
            }
        };
        let repr = match kind {
            IcmpKind::EchoReply { ident, seq_no } => icmpv4::Repr::EchoReply { ident, seq_no, data_len: data.len() },
            IcmpKind::TimeExceeded => icmpv4::Repr::TimeExceeded { code: 0, data_len: data.len() },
            IcmpKind::NetUnreachable => icmpv4::Repr::DstUnreachable { code: 0, data_len: data.len() },
        };
        let icmp_len = repr.buffer_len();
        let ip_repr = ipv4::Repr {
            src_addr: if matches!(kind, IcmpKind::EchoReply { .. }) { ip.dst_addr() } else { me.net.addr() },
            dst_addr: ip.src_addr(),
            protocol: ipv4::protocol::ICMP,
            payload_len: icmp_len,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
        };
        let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + icmp_len];
        ethernet::Repr { src_addr: me.mac, dst_addr: eth.src_addr(), ethertype: EtherType::Ipv4 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        ip_repr.emit(&mut ipv4::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..])).ok()?;
        let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        f[at + icmpv4::HEADER_LEN..].copy_from_slice(&data);
        repr.emit(&mut icmpv4::Packet::new_unchecked(&mut f[at..]));
        Some(f)
    }

    fn on_arp(&mut self, now: u64, iface: usize, frame: &[u8], out: &mut Outputs) {
        let Ok(r) = arp::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).and_then(|p| arp::Repr::parse(&p)) else {
            self.count("malformed");
            return;
        };
        let me = self.ifaces[iface];
        if r.target_protocol_addr != me.net.addr() {
            self.count("arp_not_mine");
            return;
        }
        let key = (iface, r.source_protocol_addr);
        self.neigh.insert(key, (r.source_hardware_addr, now));
        if r.operation == arp::Operation::Request {
            let reply = self.arp_frame(
                iface,
                arp::Operation::Reply,
                r.source_hardware_addr,
                r.source_hardware_addr,
                r.source_protocol_addr,
            );
            out.generated.push((iface, reply));
            self.count("arp_replies");
        }
        // Release what waited for this neighbour.
        if let Some((_, q)) = self.pending.remove(&key) {
            for mut f in q {
                f[..6].copy_from_slice(&r.source_hardware_addr.0);
                out.generated.push((iface, f));
                self.count("forwarded");
            }
        }
    }

    fn on_ipv4(&mut self, now: u64, iface: usize, frame: &mut [u8], out: &mut Outputs) {
        let me = self.ifaces[iface];
        let (dst_mac, ok) = match ethernet::Frame::new_checked(&*frame) {
            Ok(e) => (e.dst_addr(), true),
            Err(_) => (MacAddr::default(), false),
        };
        if !ok || (dst_mac != me.mac && !dst_mac.is_broadcast()) {
            self.count("not_for_me");
            return;
        }
        let (dst, ttl, total, proto) = match ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]) {
            Ok(p) if p.version() == 4 && p.verify_checksum() => (p.dst_addr(), p.ttl(), p.total_len(), p.protocol()),
            _ => {
                self.count("malformed");
                return;
            }
        };
        if self.is_mine(dst) {
            let echo = (proto == ipv4::protocol::ICMP)
                .then(|| {
                    let p = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).ok()?;
                    let icmp = icmpv4::Packet::new_checked(p.payload()).ok()?;
                    match icmpv4::Repr::parse(&icmp).ok()? {
                        icmpv4::Repr::EchoRequest { ident, seq_no, .. } => Some((ident, seq_no)),
                        _ => None,
                    }
                })
                .flatten();
            match echo.and_then(|(ident, seq_no)| self.icmp_back(iface, frame, IcmpKind::EchoReply { ident, seq_no })) {
                Some(f) => {
                    out.generated.push((iface, f));
                    self.count("echo_replies");
                }
                None => self.count("local_dropped"),
            }
            return;
        }
        if ttl <= 1 {
            if let Some(f) = self.icmp_back(iface, frame, IcmpKind::TimeExceeded) {
                out.generated.push((iface, f));
            }
            self.count("ttl_exceeded");
            return;
        }
        let Some((out_if, nh)) = self.lookup(dst) else {
            if let Some(f) = self.icmp_back(iface, frame, IcmpKind::NetUnreachable) {
                out.generated.push((iface, f));
            }
            self.count("unreachable");
            return;
        };
        if u32::from(total) > self.ifaces[out_if].mtu {
            // No fragmentation on the fast path.
            self.count("too_big");
            return;
        }
        ipv4::Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]).decrement_ttl();
        frame[6..12].copy_from_slice(&self.ifaces[out_if].mac.0);
        let key = (out_if, nh);
        match self.neigh.get(&key) {
            Some(&(mac, seen)) if now.saturating_sub(seen) <= NEIGH_TTL => {
                frame[..6].copy_from_slice(&mac.0);
                out.forward.push(out_if);
                self.count("forwarded");
            }
            _ => {
                // Queue a copy and ask (again, if the last request is old).
                let entry = self.pending.entry(key).or_insert((0, VecDeque::new()));
                if entry.0 != 0 && now.saturating_sub(entry.0) > PENDING_TIMEOUT {
                    let dropped = entry.1.len() as u64;
                    entry.1.clear();
                    *self.stats.entry("arp_timeout_drops").or_default() += dropped;
                    entry.0 = 0;
                }
                let entry = self.pending.get_mut(&key).expect("just inserted");
                if entry.1.len() < PENDING_PER_HOP {
                    entry.1.push_back(frame.to_vec());
                } else {
                    *self.stats.entry("arp_queue_full").or_default() += 1;
                }
                if entry.0 == 0 || now.saturating_sub(entry.0) > ARP_RETRY {
                    entry.0 = now.max(1);
                    let req =
                        self.arp_frame(out_if, arp::Operation::Request, MacAddr::BROADCAST, MacAddr::default(), nh);
                    out.generated.push((out_if, req));
                    self.count("arp_requests");
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum IcmpKind {
    EchoReply { ident: u16, seq_no: u16 },
    TimeExceeded,
    NetUnreachable,
}

impl NodeProgram for Router {
    fn process(&mut self, now: u64, iface: usize, frame: &mut [u8], out: &mut Outputs) {
        if iface >= self.ifaces.len() {
            return;
        }
        match ethernet::Frame::new_checked(&*frame).map(|f| f.ethertype()) {
            Ok(EtherType::Arp) => self.on_arp(now, iface, frame, out),
            Ok(EtherType::Ipv4) => self.on_ipv4(now, iface, frame, out),
            Ok(_) => self.count("not_ipv4"),
            Err(_) => self.count("malformed"),
        }
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        let mut s: BTreeMap<String, u64> = self.stats.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        s.insert("neighbours".into(), self.neigh.len() as u64);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::InstanceIface;
    use netslice_model::PortNo;

    const R0: MacAddr = MacAddr([2, 0, 0, 0, 1, 0]);
    const R1: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
    const H0: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const H1: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

    fn router() -> Router {
        let inst = NodeInstance {
            slice: "s".into(),
            node: "r".into(),
            params: serde_json::Value::Null,
            interfaces: vec![
                InstanceIface {
                    name: "eth0".into(),
                    port: PortNo(1),
                    mac: R0,
                    addresses: vec!["10.0.0.1/24".parse().unwrap()],
                    mtu: 1500,
                },
                InstanceIface {
                    name: "eth1".into(),
                    port: PortNo(2),
                    mac: R1,
                    addresses: vec!["10.1.0.1/24".parse().unwrap()],
                    mtu: 1500,
                },
            ],
            routes: vec![netslice_model::spec::RouteSpec {
                to: "10.9.0.0/16".parse().unwrap(),
                via: "10.1.0.2".parse().unwrap(),
            }],
        };
        Router::new(&inst).unwrap()
    }

    fn ip_frame(dst_mac: MacAddr, src: &str, dst: &str, ttl: u8) -> Vec<u8> {
        let payload = 8 + 4;
        let mut f = vec![0u8; 14 + 20 + payload];
        ethernet::Repr { src_addr: H0, dst_addr: dst_mac, ethertype: EtherType::Ipv4 }
            .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
        ipv4::Repr {
            src_addr: src.parse().unwrap(),
            dst_addr: dst.parse().unwrap(),
            protocol: ipv4::protocol::ICMP,
            payload_len: payload,
            ttl,
            tos: 0,
            ident: 7,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut f[14..]))
        .unwrap();
        icmpv4::Repr::EchoRequest { ident: 1, seq_no: 1, data_len: 4 }
            .emit(&mut icmpv4::Packet::new_unchecked(&mut f[34..]));
        f
    }

    #[test]
    fn lpm_prefers_longer_prefixes() {
        let r = router();
        assert_eq!(r.lookup("10.9.1.1".parse().unwrap()), Some((1, "10.1.0.2".parse().unwrap())));
        assert_eq!(r.lookup("10.0.0.7".parse().unwrap()), Some((0, "10.0.0.7".parse().unwrap())));
        assert_eq!(r.lookup("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn resolves_then_forwards_with_ttl_decremented() {
        let mut r = router();
        let mut out = Outputs::default();
        let mut f = ip_frame(R0, "10.0.0.2", "10.1.0.2", 64);
        r.process(0, 0, &mut f, &mut out);
        assert!(out.forward.is_empty(), "waits for ARP");
        assert_eq!(out.generated.len(), 1);
        let (i, req) = &out.generated[0];
        assert_eq!(*i, 1);
        let a = arp::Repr::parse(&arp::Packet::new_checked(&req[14..]).unwrap()).unwrap();
        assert_eq!(a.target_protocol_addr, "10.1.0.2".parse::<Ipv4Addr>().unwrap());
        // The answer releases the queued packet.
        let mut reply = vec![0u8; 42];
        ethernet::Repr { src_addr: H1, dst_addr: R1, ethertype: EtherType::Arp }
            .emit(&mut ethernet::Frame::new_unchecked(&mut reply[..]));
        arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: H1,
            source_protocol_addr: "10.1.0.2".parse().unwrap(),
            target_hardware_addr: R1,
            target_protocol_addr: "10.1.0.1".parse().unwrap(),
        }
        .emit(&mut arp::Packet::new_unchecked(&mut reply[14..]));
        out.clear();
        r.process(1, 1, &mut reply, &mut out);
        assert_eq!(out.generated.len(), 1);
        let (i, fwd) = &out.generated[0];
        assert_eq!(*i, 1);
        assert_eq!(&fwd[..6], &H1.0);
        assert_eq!(&fwd[6..12], &R1.0);
        let ip = ipv4::Packet::new_checked(&fwd[14..]).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
        // Next packets go straight out.
        out.clear();
        let mut f = ip_frame(R0, "10.0.0.2", "10.1.0.2", 64);
        r.process(2, 0, &mut f, &mut out);
        assert_eq!(out.forward, [1]);
    }

    #[test]
    fn ttl_expiry_and_unreachable_send_icmp_errors() {
        let mut r = router();
        let mut out = Outputs::default();
        let mut f = ip_frame(R0, "10.0.0.2", "10.1.0.2", 1);
        r.process(0, 0, &mut f, &mut out);
        let (i, err) = &out.generated[0];
        assert_eq!(*i, 0);
        assert_eq!(&err[..6], &H0.0, "back to the sender's MAC");
        let ip = ipv4::Packet::new_checked(&err[14..]).unwrap();
        assert_eq!(ip.src_addr(), "10.0.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(ip.dst_addr(), "10.0.0.2".parse::<Ipv4Addr>().unwrap());
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmpv4::Repr::parse(&icmp).unwrap(), icmpv4::Repr::TimeExceeded { code: 0, data_len: 28 });
        out.clear();
        let mut f = ip_frame(R0, "10.0.0.2", "192.0.2.1", 64);
        r.process(0, 0, &mut f, &mut out);
        let ip = ipv4::Packet::new_checked(&out.generated[0].1[14..]).unwrap();
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert!(matches!(icmpv4::Repr::parse(&icmp).unwrap(), icmpv4::Repr::DstUnreachable { code: 0, .. }));
    }

    #[test]
    fn answers_arp_and_ping_for_itself() {
        let mut r = router();
        let mut out = Outputs::default();
        let mut f = ip_frame(R0, "10.0.0.2", "10.0.0.1", 64);
        r.process(0, 0, &mut f, &mut out);
        let ip = ipv4::Packet::new_checked(&out.generated[0].1[14..]).unwrap();
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmpv4::Repr::parse(&icmp).unwrap(), icmpv4::Repr::EchoReply { ident: 1, seq_no: 1, data_len: 4 });
        assert_eq!(r.stats()["echo_replies"], 1);
    }
}
