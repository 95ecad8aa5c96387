use super::*;
use netslice_embed::{Allocations, node_configs, plan};
use netslice_model::PortNo;
use netslice_model::{SliceSpec, Substrate};
use netslice_wire::ipv4;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SUBSTRATE: &str = r#"
name: lab
hosts:
  - { name: h1, role: vnode }
  - { name: h2, role: vnode }
  - { name: t1, role: transport }
links:
  - { endpoints: [h1, t1], bandwidth: 1Gbit }
  - { endpoints: [t1, h2], bandwidth: 1Gbit }
"#;

fn spec(name: &str, link_type: &str) -> SliceSpec {
    SliceSpec::from_text(&format!(
        "name: {name}\nnodes:\n  - {{name: a, host: h1}}\n  - {{name: b, host: h2}}\nlinks:\n  - {{name: ab, type: {link_type}, bandwidth: 1Mbit, endpoints: [{{node: a}}, {{node: b}}]}}\n"
    ))
    .unwrap()
}

struct World {
    tables: BTreeMap<String, Tables>,
    addr_host: BTreeMap<Ipv4Addr, String>,
}

fn world(slices: &[(&str, &str)]) -> (World, Vec<(PortNo, PortNo)>) {
    let s = Substrate::from_text(SUBSTRATE).unwrap();
    let mut held = Allocations::default();
    let specs: Vec<SliceSpec> = slices.iter().map(|(n, t)| spec(n, t)).collect();
    let mut plans = Vec::new();
    for sp in &specs {
        let p = plan(&s, sp, &held, &cat()).unwrap();
        held.add(&p);
        plans.push(p);
    }
    let pairs: Vec<_> = specs.iter().zip(plans.iter()).collect();
    let cfgs = node_configs(&s, &pairs, &cat());
    let ports =
        plans.iter().map(|p| (PortNo(p.nodes[0].interfaces[0].port), PortNo(p.nodes[1].interfaces[0].port))).collect();
    let mut addr_host = BTreeMap::new();
    for l in &s.links {
        for e in &l.ends {
            addr_host.insert(e.addr, e.host.clone());
        }
    }
    let reg = Arc::new(Registry::builtin());
    let tables = cfgs.iter().map(|(h, c)| (h.clone(), Tables::build(c, None, &reg, Default::default()))).collect();
    (World { tables, addr_host }, ports)
}

fn frame(tag: u8, len: usize) -> Vec<u8> {
    let mut f = vec![tag; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, tag]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

impl World {
    /// Carries a frame from `port` on `host` until it is delivered or dropped;
    /// each hop goes through real encapsulation bytes, with an outer IPv4 header
    /// built the way the kernel's raw socket presents it.
    fn carry(&self, host: &str, port: PortNo, f: &[u8]) -> Option<(String, PortNo, Vec<u8>)> {
        let mut buf = vec![0u8; HEADROOM + f.len()];
        buf[HEADROOM..].copy_from_slice(f);
        let mut here = host.to_string();
        let mut verdict = self.tables[&here].on_port(0, port, &mut buf, HEADROOM..HEADROOM + f.len());
        for _ in 0..8 {
            match verdict {
                Verdict::Deliver { port, frame, .. } => return Some((here, port, buf[frame].to_vec())),
                Verdict::Drop => return None,
                Verdict::Send { link_type, carrier, next_hop, packet, .. } => {
                    here = self.addr_host[&next_hop].clone();
                    let payload = buf[packet].to_vec();
                    let mut next = vec![0u8; HEADROOM];
                    verdict = match carrier {
                        Carrier::IpProto(proto) => {
                            let ip = ipv4::Repr {
                                src_addr: Ipv4Addr::new(172, 31, 0, 1),
                                dst_addr: next_hop,
                                protocol: proto,
                                payload_len: payload.len(),
                                ttl: 64,
                                tos: 0,
                                ident: 0,
                                dont_frag: true,
                            };
                            next.resize(HEADROOM + 20, 0);
                            ip.emit(&mut ipv4::Packet::new_unchecked(&mut next[HEADROOM..])).unwrap();
                            next.extend_from_slice(&payload);
                            let n = next.len();
                            self.tables[&here].on_substrate(0, link_type, &mut next, HEADROOM..n)
                        }
                        Carrier::Udp(_) | Carrier::Ethernet(_) => {
                            next.extend_from_slice(&payload);
                            let n = next.len();
                            self.tables[&here].on_substrate(0, link_type, &mut next, HEADROOM..n)
                        }
                    };
                    buf = next;
                }
            }
        }
        panic!("loop");
    }
}

#[test]
fn frames_cross_a_transit_hop_both_ways_and_both_types() {
    for t in ["gre", "vxlan", "vlan", "pbb"] {
        let (w, ports) = world(&[("red", t)]);
        let (pa, pb) = ports[0];
        let f = frame(1, 1514);
        assert_eq!(w.carry("h1", pa, &f), Some(("h2".into(), pb, f.clone())), "{t} forward");
        assert_eq!(w.carry("h2", pb, &f), Some(("h1".into(), pa, f.clone())), "{t} reverse");
        let c = w.tables["t1"].snapshot("t1");
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|r| r.packets == 1 && r.bytes == 1514 && r.stage == Some(Stage::Transit)));
    }
}

#[test]
fn slices_stay_apart() {
    let (w, ports) = world(&[("red", "gre"), ("blue", "gre")]);
    let (ra, rb) = ports[0];
    let (ba, bb) = ports[1];
    assert_ne!(rb, bb);
    assert_eq!(w.carry("h1", ra, &frame(1, 100)).unwrap().1, rb);
    assert_eq!(w.carry("h1", ba, &frame(2, 100)).unwrap().1, bb);
    let red: u64 = w.tables["t1"].snapshot("t1").iter().filter(|c| c.slice == "red").map(|c| c.packets).sum();
    let blue: u64 = w.tables["t1"].snapshot("t1").iter().filter(|c| c.slice == "blue").map(|c| c.packets).sum();
    assert_eq!((red, blue), (1, 1));
}

#[test]
fn oversize_and_unknown_are_counted() {
    let (w, ports) = world(&[("red", "gre")]);
    let (pa, _) = ports[0];
    assert_eq!(w.carry("h1", pa, &frame(1, 1515)), None);
    let c = w.tables["h1"].port_rule(pa).unwrap().counters.clone();
    assert_eq!(c.drops(DropReason::TooBig), 1);
    assert_eq!(w.carry("h1", PortNo(999), &frame(1, 100)), None);
    assert_eq!(w.tables["h1"].unmatched.no_port_rule.load(Ordering::Relaxed), 1);
    let mut junk = vec![0u8; 100];
    assert_eq!(w.tables["h1"].on_substrate(0, 0, &mut junk, 64..100), Verdict::Drop);
    assert_eq!(w.tables["h1"].unmatched.malformed.load(Ordering::Relaxed), 1);
}

#[test]
fn counters_survive_rebuild() {
    let s = Substrate::from_text(SUBSTRATE).unwrap();
    let sp = spec("red", "gre");
    let p = plan(&s, &sp, &Allocations::default(), &cat()).unwrap();
    let cfgs = node_configs(&s, &[(&sp, &p)], &cat());
    let reg = Arc::new(Registry::builtin());
    let t1 = Tables::build(&cfgs["h1"], None, &reg, Default::default());
    let port = PortNo(p.nodes[0].interfaces[0].port);
    let f = frame(1, 100);
    let mut buf = vec![0u8; HEADROOM + 100];
    buf[HEADROOM..].copy_from_slice(&f);
    t1.on_port(0, port, &mut buf, HEADROOM..HEADROOM + 100);
    let t2 = Tables::build(&cfgs["h1"], Some(&t1), &reg, Default::default());
    assert_eq!(t2.port_rule(port).unwrap().counters.packets(), 1);
}

#[test]
fn a_policer_keeps_its_tokens_when_the_tables_are_rebuilt() {
    let s = Substrate::from_text(SUBSTRATE).unwrap();
    let sp = SliceSpec::from_text(
        "name: red\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h2}\nlinks:\n  - {name: ab, bandwidth: 1Mbit, isolation: policed, endpoints: [{node: a}, {node: b}]}\n",
    )
    .unwrap();
    let p = plan(&s, &sp, &Allocations::default(), &cat()).unwrap();
    let cfgs = node_configs(&s, &[(&sp, &p)], &cat());
    let reg = Arc::new(Registry::builtin());
    let port = PortNo(p.nodes[0].interfaces[0].port);
    let send = |t: &Tables| {
        let f = frame(1, 1000);
        let mut buf = vec![0u8; HEADROOM + 1000];
        buf[HEADROOM..].copy_from_slice(&f);
        t.on_port(0, port, &mut buf, HEADROOM..HEADROOM + 1000) != Verdict::Drop
    };
    let t1 = Tables::build(&cfgs["h1"], None, &reg, Default::default());
    // At one instant the burst runs out.
    let passed = (0..1000).take_while(|_| send(&t1)).count();
    assert!(passed < 1000);
    // The same config again: the meter is the same, still empty.
    let t2 = Tables::build(&cfgs["h1"], Some(&t1), &reg, Default::default());
    assert!(!send(&t2), "re-applying the config refilled the policer");
    // Other rates: a new meter.
    let mut faster = cfgs["h1"].clone();
    faster.ports[0].qos.rate *= 2;
    faster.ports[0].qos.ceil *= 2;
    let t3 = Tables::build(&faster, Some(&t2), &reg, Default::default());
    assert!(send(&t3));
}

#[test]
fn rules_naming_what_the_host_lacks_are_left_out_with_an_error() {
    let s = Substrate::from_text(SUBSTRATE).unwrap();
    let sp = spec("red", "gre");
    let p = plan(&s, &sp, &Allocations::default(), &cat()).unwrap();
    let mut cfg = node_configs(&s, &[(&sp, &p)], &cat())["h1"].clone();
    let port = PortNo(p.nodes[0].interfaces[0].port);
    // A physical link the host's config does not have: not "link 0".
    if let netslice_model::api::Action::Send { underlay, .. } = &mut cfg.ports[0].action {
        *underlay = "nowhere".into();
    }
    let reg = Arc::new(Registry::builtin());
    let t = Tables::build(&cfg, None, &reg, Default::default());
    assert!(t.port_rule(port).is_none());
    assert_eq!(
        t.errors,
        [RuleError::UnknownUnderlay { slice: "red".into(), link: "ab".into(), underlay: "nowhere".into() }]
    );
    assert_eq!(t.errors[0].to_string(), "slice red link ab: no physical link nowhere on this host");
}

proptest! {
    #[test]
    fn substrate_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (w, _) = world(&[("red", "gre")]);
        let mut buf = vec![0u8; HEADROOM];
        buf.extend_from_slice(&data);
        let n = buf.len();
        for t in 0..4 {
            let _ = w.tables["t1"].on_substrate(0, t, &mut buf.clone(), HEADROOM..n);
        }
    }
}

fn cat() -> netslice_model::types::StaticCatalog {
    netslice_model::types::StaticCatalog::builtin()
}

#[test]
fn taps_and_probes_outlive_a_rebuild_on_a_clock_read_a_little_differently_and_stay_in_their_slice() {
    use netslice_model::api::{ProbeConfig, ProbeRole, TapConfig};
    let s = Substrate::from_text(SUBSTRATE).unwrap();
    let mut held = Allocations::default();
    let specs = [spec("red", "gre"), spec("blue", "gre")];
    let plans: Vec<_> = specs
        .iter()
        .map(|sp| {
            let p = plan(&s, sp, &held, &cat()).unwrap();
            held.add(&p);
            p
        })
        .collect();
    let pairs: Vec<_> = specs.iter().zip(plans.iter()).collect();
    let mut cfg = node_configs(&s, &pairs, &cat())["h1"].clone();
    let (red_a, blue_a) = (PortNo(plans[0].nodes[0].interfaces[0].port), PortNo(plans[1].nodes[0].interfaces[0].port));
    let probe = |port| ProbeConfig {
        role: ProbeRole::Reflector { session: None },
        port,
        mac: Default::default(),
        ip: Ipv4Addr::LOCALHOST,
    };
    let tap = |job, probe| TapConfig {
        job,
        slice: "red".into(),
        link: "ab".into(),
        directions: Vec::new(),
        stage: None,
        filter: None,
        start_ms: 1_000,
        end_ms: 61_000,
        interval_ms: 1000,
        capture: None,
        probe,
    };
    cfg.taps = vec![tap(1, None), tap(2, Some(probe(red_a))), tap(3, Some(probe(blue_a)))];
    let reg = Arc::new(Registry::builtin());
    let t1 = Tables::build(&cfg, None, &reg, WallClock { now: 5_000_000_000, unix_ms: 5_000 });
    // Another reading of the clocks, 0.6 ms apart from the first mapping.
    let t2 = Tables::build(&cfg, Some(&t1), &reg, WallClock { now: 9_000_600_000, unix_ms: 9_000 });
    assert!(Arc::ptr_eq(&t1.taps()[&1], &t2.taps()[&1]), "the tap was made anew");
    assert!(Arc::ptr_eq(&t1.probes()[&2], &t2.probes()[&2]), "the probe point was made anew");
    // Job 3 names blue's port for a red job: no point, and an error.
    assert!(!t2.probes().contains_key(&3));
    assert!(t2.errors.iter().any(|e| matches!(e, RuleError::ProbePort { job: 3, .. })), "{:?}", t2.errors);
    // Another window is another tap.
    cfg.taps[0].end_ms = 62_000;
    let t3 = Tables::build(&cfg, Some(&t2), &reg, WallClock { now: 9_000_600_000, unix_ms: 9_000 });
    assert!(!Arc::ptr_eq(&t2.taps()[&1], &t3.taps()[&1]));
}
