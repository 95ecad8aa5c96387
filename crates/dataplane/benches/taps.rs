//! What measurement jobs cost the forwarding path: the ingress decision
//! (port rule + GRE encapsulation) of 1372-byte UDP frames with no job, with
//! a counting job, with a counting job and a tcpdump filter (compiled by
//! libpcap, run by the agents' interpreter), and with a capture job
//! (128 bytes a frame, taken every 10,000 frames as the agent does every
//! 250 ms), all in the same run; the ratio is against no job.
//!
//!   cargo bench -p netslice-dataplane --bench taps

// A benchmark measures wall time; the crate it measures stays sans-IO.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use netslice_dataplane::{HEADROOM, Tables, Verdict};
use netslice_embed::{Allocations, node_configs, plan};
use netslice_model::api::{BpfInsn, CaptureConfig, Direction, NodeConfig, TapConfig};
use netslice_model::{SliceSpec, Substrate};

const FRAME: usize = 1372;
const N: u32 = 3_000_000;
const ROUNDS: usize = 3;

fn config() -> (NodeConfig, netslice_model::PortNo) {
    let s = Substrate::from_text(
        "name: b\nhosts:\n  - {name: a, role: vnode}\n  - {name: b, role: vnode}\nlinks:\n  - {endpoints: [a, b], bandwidth: 10Gbit}\n",
    )
    .unwrap();
    let spec = SliceSpec::from_text(
        "name: s\nnodes:\n  - {name: x, host: a}\n  - {name: y, host: b}\nlinks:\n  - {name: l, bandwidth: 1Gbit, endpoints: [{node: x}, {node: y}]}\n",
    )
    .unwrap();
    let cat = netslice_dataplane::Registry::builtin();
    let p = plan(&s, &spec, &Allocations::default(), &cat).unwrap();
    let cfgs = node_configs(&s, &[(&spec, &p)], &cat);
    (cfgs["a"].clone(), netslice_model::PortNo(p.nodes[0].interfaces[0].port))
}

fn filter(expr: &str) -> Vec<BpfInsn> {
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
    let prog = cap.compile(expr, true).unwrap();
    prog.get_instructions()
        .iter()
        .map(|i| {
            let f: Vec<u32> = i.to_string().split_whitespace().map(|v| v.parse().unwrap()).collect();
            BpfInsn { code: f[0] as u16, jt: f[1] as u8, jf: f[2] as u8, k: f[3] }
        })
        .collect()
}

fn tap(filter: Option<Vec<BpfInsn>>, capture: Option<CaptureConfig>) -> TapConfig {
    TapConfig {
        job: 1,
        slice: "s".into(),
        link: "l".into(),
        directions: Direction::BOTH.to_vec(),
        stage: None,
        filter,
        start_ms: 0,
        end_ms: 3_600_000,
        interval_ms: 1000,
        capture,
        probe: None,
    }
}

fn main() {
    let (cfg, port) = config();
    let reg = std::sync::Arc::new(netslice_dataplane::Registry::builtin());
    // A UDP frame to port 9999, as the filter wants it.
    let mut frame = vec![0u8; HEADROOM + FRAME];
    let f = &mut frame[HEADROOM..];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..34].copy_from_slice(&[0x45, 0, 5, 0x4e, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f[34..38].copy_from_slice(&[0x9c, 0x40, 0x27, 0x0f]);
    let expr = "udp and dst port 9999 and host 10.0.0.2";
    let cases: Vec<(&str, Option<TapConfig>)> = vec![
        ("no job", None),
        ("counting job", Some(tap(None, None))),
        ("counting job, filter", Some(tap(Some(filter(expr)), None))),
        (
            "capture job, filter, 128 B a frame",
            Some(tap(Some(filter(expr)), Some(CaptureConfig { snaplen: 128, max_bytes: u64::MAX }))),
        ),
    ];
    println!("ingress (port rule + GRE) of {FRAME}-byte UDP frames, {N} per round, best of {ROUNDS}; filter: {expr}");
    let mut base = None;
    for (what, t) in cases {
        let mut c = cfg.clone();
        c.taps = t.into_iter().collect();
        let tables = Tables::build(&c, None, &reg, Default::default());
        let taps: Vec<_> = tables.taps().values().cloned().collect();
        let mut best = f64::MAX;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for i in 0..N {
                let v = tables.on_port(1, port, black_box(&mut frame), HEADROOM..HEADROOM + FRAME);
                debug_assert!(matches!(v, Verdict::Send { .. }));
                black_box(v);
                if i % 10_000 == 0 {
                    for t in &taps {
                        black_box(t.take_captured());
                    }
                }
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(N));
        }
        let b = *base.get_or_insert(best);
        if let Some(t) = taps.first() {
            let r = t.report(2);
            assert!(r.frames >= u64::from(N), "the job counted {} of {N}", r.frames);
        }
        println!(
            "{what:<36} {best:>6.1} ns/frame {:>6.2} Mpps/core  {:.2}x the rate with no job",
            1e3 / best,
            b / best
        );
    }
}
