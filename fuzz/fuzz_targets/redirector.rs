//! Fuzz target: the redirector's substrate input for every built-in link type
//! (GRE with its IPv4 header, VXLAN payloads, 802.1Q and 802.1ah frames) against
//! real tables of a transit host: never panics, and a frame it forwards stays
//! inside the caller's buffer.
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
        let p = plan(&s, &spec, &Allocations::default(), &cat()).unwrap();
        let cfgs = node_configs(&s, &[(&spec, &p)], &cat());
        Tables::build(&cfgs["t"], None, &std::sync::Arc::new(netslice_dataplane::Registry::builtin()), Default::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tables();
    let mut buf = vec![0u8; HEADROOM + data.len()];
    buf[HEADROOM..].copy_from_slice(data);
    let n = buf.len();
    for ty in 0..4 {
        match t.on_substrate(0, ty, &mut buf.clone(), HEADROOM..n) {
            Verdict::Send { packet, .. } => assert!(packet.end <= n),
            Verdict::Deliver { frame, .. } => assert!(frame.end <= n),
            Verdict::Drop => {}
        }
    }
});


fn cat() -> netslice_model::types::StaticCatalog {
    netslice_model::types::StaticCatalog::builtin()
}
