//! Per-packet cost of the redirector's decisions, without I/O: ingress (port rule +
//! GRE/VXLAN encapsulation) and transit (parse + label swap), at 1372-byte frames.
//!
//!   cargo bench -p netslice-dataplane --bench redirector
//!
//! The baseline in the same run is a plain copy of the frame (what any forwarder
//! pays at least once per packet), so the ratio says what the decisions cost.

// A benchmark measures wall time; the crate it measures stays sans-IO.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use netslice_dataplane::{HEADROOM, Tables, Verdict};
use netslice_embed::{Allocations, node_configs, plan};
use netslice_model::{SliceSpec, Substrate};
use netslice_wire::ipv4;

const FRAME: usize = 1372;
/// Index of `gre` in the built-in registry.
const GRE: netslice_dataplane::TypeIdx = 0;
const N: u32 = 5_000_000;

fn tables() -> (Tables, Tables, netslice_model::PortNo) {
    let s = Substrate::from_text(
        "name: b\nhosts:\n  - {name: a, role: vnode}\n  - {name: t, role: transport}\n  - {name: b, role: vnode}\nlinks:\n  - {endpoints: [a, t], bandwidth: 10Gbit}\n  - {endpoints: [t, b], bandwidth: 10Gbit}\n",
    )
    .unwrap();
    let spec = SliceSpec::from_text(
        "name: s\nnodes:\n  - {name: x, host: a}\n  - {name: y, host: b}\nlinks:\n  - {name: l, bandwidth: 1Gbit, endpoints: [{node: x}, {node: y}]}\n",
    )
    .unwrap();
    let p = plan(&s, &spec, &Allocations::default(), &cat()).unwrap();
    let cfgs = node_configs(&s, &[(&spec, &p)], &cat());
    let reg = std::sync::Arc::new(netslice_dataplane::Registry::builtin());
    (
        Tables::build(&cfgs["a"], None, &reg, Default::default()),
        Tables::build(&cfgs["t"], None, &reg, Default::default()),
        netslice_model::PortNo(p.nodes[0].interfaces[0].port),
    )
}

fn report(what: &str, start: Instant, base_ns: Option<f64>) -> f64 {
    let ns = start.elapsed().as_nanos() as f64 / f64::from(N);
    let ratio = base_ns.map(|b| format!("  ({:.2} x copy)", ns / b)).unwrap_or_default();
    println!("{what:<44} {ns:>7.1} ns/packet {:>7.2} Mpps/core{ratio}", 1e3 / ns);
    ns
}

fn main() {
    let (ingress, transit, port) = tables();
    let mut frame = vec![0u8; HEADROOM + FRAME];
    frame[HEADROOM..HEADROOM + 12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1]);
    frame[HEADROOM + 12] = 0x08;

    // Baseline: copy the frame once.
    let mut dst = vec![0u8; HEADROOM + FRAME];
    let start = Instant::now();
    for _ in 0..N {
        dst.copy_from_slice(black_box(&frame));
        black_box(&dst);
    }
    let base = report("baseline: copy a 1372-byte frame", start, None);

    // Ingress: port rule, MTU check, GRE header written in the headroom.
    let start = Instant::now();
    let mut gre_pkt = None;
    for _ in 0..N {
        let v = ingress.on_port(0, port, black_box(&mut frame), HEADROOM..HEADROOM + FRAME);
        if gre_pkt.is_none()
            && let Verdict::Send { packet, .. } = &v
        {
            gre_pkt = Some(frame[packet.clone()].to_vec());
        }
        black_box(v);
    }
    report("ingress: port rule + GRE encapsulation", start, Some(base));

    // Transit: what the raw socket delivers (IPv4 + GRE + frame): parse, look up
    // the label, write the next hop's GRE header.
    let gre = gre_pkt.expect("ingress sent");
    let mut pkt = vec![0u8; HEADROOM + 20 + gre.len()];
    ipv4::Repr {
        src_addr: Ipv4Addr::new(172, 31, 0, 1),
        dst_addr: Ipv4Addr::new(172, 31, 0, 2),
        protocol: ipv4::protocol::GRE,
        payload_len: gre.len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut pkt[HEADROOM..]))
    .unwrap();
    pkt[HEADROOM + 20..].copy_from_slice(&gre);
    let n = pkt.len();
    let start = Instant::now();
    for _ in 0..N {
        let v = transit.on_substrate(0, GRE, black_box(&mut pkt), HEADROOM..n);
        assert!(matches!(v, Verdict::Send { .. }));
        black_box(v);
    }
    report("transit: IPv4+GRE parse, label swap", start, Some(base));

    // Transit with conversion: VLAN in, PBB out is what t1 does between an
    // 802.1Q hop and an 802.1ah hop; measure the two plugins on their own.
    let reg = netslice_dataplane::Registry::builtin();
    let (vlan, pbb) = (reg.link(2).unwrap(), reg.link(3).unwrap());
    let hop = netslice_dataplane::HopAddrs {
        next_hop: Ipv4Addr::new(172, 31, 0, 2),
        local_mac: netslice_wire::MacAddr([6, 0, 0, 0, 0, 1]),
        peer_mac: netslice_wire::MacAddr([6, 0, 0, 0, 0, 2]),
    };
    let start = Instant::now();
    for _ in 0..N {
        let pkt =
            vlan.encap(netslice_model::Label(100), &hop, black_box(&mut frame), HEADROOM..HEADROOM + FRAME).unwrap();
        let (_, inner) = vlan.decap(&mut frame, pkt).unwrap();
        let pkt = pbb.encap(netslice_model::Label(200), &hop, &mut frame, inner).unwrap();
        black_box(pbb.decap(&mut frame, pkt));
    }
    report("conversion: 802.1Q encap+decap, 802.1ah encap+decap", start, Some(base));

    // Node programs, one frame at a time, as the agent calls them.
    use netslice_dataplane::program::{InstanceIface, NodeInstance, Outputs};
    let iface = |k: u8| InstanceIface {
        name: format!("eth{k}"),
        port: netslice_model::PortNo(u32::from(k) + 1),
        mac: netslice_wire::MacAddr([2, 0, 0, 0, 1, k]),
        addresses: vec![format!("10.{k}.0.1/24").parse().unwrap()],
        mtu: 1500,
    };
    let node = |t: &str, routes: Vec<netslice_model::spec::RouteSpec>| {
        let inst = NodeInstance {
            slice: "s".into(),
            node: "n".into(),
            params: serde_json::Value::Null,
            interfaces: vec![iface(0), iface(1)],
            routes,
        };
        reg.node(t).unwrap().instantiate(&inst).unwrap().unwrap()
    };
    let mut out = Outputs::default();
    // l2switch: known unicast after learning both ends.
    let mut sw = node("l2switch", vec![]);
    let mut f = vec![0u8; FRAME];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa]);
    let mut back = f.clone();
    back[..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xa, 2, 0, 0, 0, 0, 0xb]);
    sw.process(0, 1, &mut back, &mut out);
    let start = Instant::now();
    for _ in 0..N {
        out.clear();
        sw.process(1, 0, black_box(&mut f), &mut out);
    }
    assert_eq!(out.forward, [1]);
    report("node l2switch: learn + known unicast", start, Some(base));
    // extmac-switch: the same on 16-byte addresses.
    let mut xs = node("extmac-switch", vec![]);
    let mk = |dst: u8, src: u8| {
        let mut f = vec![0u8; FRAME];
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        netslice_wire::extmac::Repr {
            ethertype: netslice_wire::EtherType::Unknown(0x88b6),
            dst_addr: netslice_wire::extmac::ExtAddr([dst; 16]),
            src_addr: netslice_wire::extmac::ExtAddr([src; 16]),
        }
        .emit(&mut netslice_wire::extmac::Packet::new_unchecked(&mut f[14..]));
        f
    };
    let (mut xf, mut xb) = (mk(4, 2), mk(2, 4));
    xs.process(0, 1, &mut xb, &mut out);
    let start = Instant::now();
    for _ in 0..N {
        out.clear();
        xs.process(1, 0, black_box(&mut xf), &mut out);
    }
    assert_eq!(out.forward, [1]);
    report("node extmac-switch: learn + known unicast", start, Some(base));
    // router: LPM, TTL decrement, MAC rewrite with a resolved neighbour.
    let mut r = node("router", vec![]);
    let mut arp = vec![0u8; 42];
    netslice_wire::ethernet::Repr {
        src_addr: netslice_wire::MacAddr([2, 0, 0, 0, 0, 0xb]),
        dst_addr: netslice_wire::MacAddr([2, 0, 0, 0, 1, 1]),
        ethertype: netslice_wire::EtherType::Arp,
    }
    .emit(&mut netslice_wire::ethernet::Frame::new_unchecked(&mut arp[..]));
    netslice_wire::arp::Repr {
        operation: netslice_wire::arp::Operation::Reply,
        source_hardware_addr: netslice_wire::MacAddr([2, 0, 0, 0, 0, 0xb]),
        source_protocol_addr: Ipv4Addr::new(10, 1, 0, 2),
        target_hardware_addr: netslice_wire::MacAddr([2, 0, 0, 0, 1, 1]),
        target_protocol_addr: Ipv4Addr::new(10, 1, 0, 1),
    }
    .emit(&mut netslice_wire::arp::Packet::new_unchecked(&mut arp[14..]));
    r.process(0, 1, &mut arp, &mut out);
    let mut ipf = vec![0u8; FRAME];
    netslice_wire::ethernet::Repr {
        src_addr: netslice_wire::MacAddr([2, 0, 0, 0, 0, 0xa]),
        dst_addr: netslice_wire::MacAddr([2, 0, 0, 0, 1, 0]),
        ethertype: netslice_wire::EtherType::Ipv4,
    }
    .emit(&mut netslice_wire::ethernet::Frame::new_unchecked(&mut ipf[..]));
    let ipr = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 0, 0, 2),
        dst_addr: Ipv4Addr::new(10, 1, 0, 2),
        protocol: 17,
        payload_len: FRAME - 34,
        ttl: 255,
        tos: 0,
        ident: 0,
        dont_frag: true,
    };
    let macs: [u8; 12] = ipf[..12].try_into().unwrap();
    let start = Instant::now();
    for i in 0..N {
        if i % 200 == 0 {
            // Keep the TTL from running out.
            ipr.emit(&mut ipv4::Packet::new_unchecked(&mut ipf[14..])).unwrap();
        }
        // The router rewrote the addresses of the last frame: restore them.
        ipf[..12].copy_from_slice(&macs);
        out.clear();
        r.process(1, 0, black_box(&mut ipf), &mut out);
    }
    assert_eq!(out.forward, [1]);
    report("node router: LPM + TTL + MAC rewrite (ARP resolved)", start, Some(base));
}

fn cat() -> netslice_model::types::StaticCatalog {
    netslice_model::types::StaticCatalog::builtin()
}
