//! Fuzz target: the redirector's substrate input (raw GRE packets with their IPv4
//! header, VXLAN payloads) against real tables of a transit host: never panics,
//! and a frame it forwards stays inside the caller's buffer.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use netslice_dataplane::{HEADROOM, Tables, Verdict};
use netslice_embed::{Allocations, node_configs, plan};
use netslice_model::{SliceSpec, Substrate};

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let s = Substrate::from_text(
            "name: f\nhosts:\n  - {name: a, role: vnode}\n  - {name: t, role: transport}\n  - {name: b, role: vnode}\nlinks:\n  - {endpoints: [a, t], bandwidth: 1Gbit}\n  - {endpoints: [t, b], bandwidth: 1Gbit}\n",
        )
        .unwrap();
        let spec = SliceSpec::from_text(
            "name: s\nnodes:\n  - {name: x, host: a}\n  - {name: y, host: b}\nlinks:\n  - {name: l, bandwidth: 1Mbit, endpoints: [{node: x}, {node: y}]}\n  - {name: m, type: vxlan, bandwidth: 1Mbit, endpoints: [{node: x}, {node: y}]}\n",
        )
        .unwrap();
        let p = plan(&s, &spec, &Allocations::default()).unwrap();
        let cfgs = node_configs(&s, &[(&spec, &p)]);
        Tables::build(&cfgs["t"], None)
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tables();
    let mut buf = vec![0u8; HEADROOM + data.len()];
    buf[HEADROOM..].copy_from_slice(data);
    let n = buf.len();
    for v in [t.on_gre(&mut buf.clone(), HEADROOM..n), t.on_vxlan(&mut buf, HEADROOM..n)] {
        match v {
            Verdict::Send { packet, .. } => assert!(packet.end <= n),
            Verdict::Deliver { frame, .. } => assert!(frame.end <= n),
            Verdict::Drop => {}
        }
    }
});
