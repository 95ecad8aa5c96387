//! Per-packet cost of the redirector's decisions, without I/O: ingress (port rule +
//! GRE/VXLAN encapsulation) and transit (parse + label swap), at 1372-byte frames.
//!
//!   cargo bench -p netslice-dataplane --bench redirector
//!
//! The baseline in the same run is a plain copy of the frame (what any forwarder
//! pays at least once per packet), so the ratio says what the decisions cost.

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

fn tables() -> (Tables, Tables, u32) {
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
    (Tables::build(&cfgs["a"], None, &reg), Tables::build(&cfgs["t"], None, &reg), p.nodes[0].interfaces[0].port)
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
        let v = transit.on_substrate(GRE, black_box(&mut pkt), HEADROOM..n);
        assert!(matches!(v, Verdict::Send { .. }));
        black_box(v);
    }
    report("transit: IPv4+GRE parse, label swap", start, Some(base));
}

fn cat() -> netslice_model::types::StaticCatalog {
    netslice_model::types::StaticCatalog::builtin()
}
