use super::*;
use netslice_model::api::Action;
use netslice_model::spec::SliceQos;
use proptest::prelude::*;

const SUBSTRATE: &str = r#"
name: lab
hosts:
  - { name: h1, role: vnode, slivers: 4 }
  - { name: h2, role: vnode, slivers: 4 }
  - { name: h3, role: vnode, slivers: 4 }
  - { name: t1, role: transport }
links:
  - { endpoints: [h1, t1], bandwidth: 1Gbit }
  - { endpoints: [t1, h2], bandwidth: 1Gbit }
  - { endpoints: [t1, h3], bandwidth: 1Gbit, mtu: 1500 }
"#;

fn substrate() -> Substrate {
    Substrate::from_text(SUBSTRATE).unwrap()
}

fn slice(name: &str, pins: [&str; 2], link_type: &str) -> SliceSpec {
    SliceSpec::from_text(&format!(
        r#"
name: {name}
nodes:
  - {{ name: a, host: {} }}
  - {{ name: b, host: {} }}
links:
  - name: ab
    type: {link_type}
    bandwidth: 10Mbit
    endpoints:
      - {{ node: a, address: 10.0.0.1/24 }}
      - {{ node: b, address: 10.0.0.2/24 }}
"#,
        pins[0], pins[1]
    ))
    .unwrap()
}

/// Follows a frame from `port` on `host` through the configs until it is delivered;
/// returns the hosts visited and the port it is delivered to.
fn trace(cfgs: &BTreeMap<String, NodeConfig>, host: &str, port: u32) -> (Vec<String>, u32) {
    let mut visited = vec![host.to_string()];
    let rule = cfgs[host].ports.iter().find(|r| r.port.0 == port).expect("port rule");
    let mut action = rule.action.clone();
    let mut here = host.to_string();
    for _ in 0..16 {
        match action {
            Action::Deliver { port } => return (visited, port.0),
            Action::Send { label, next_hop, link_type, ref underlay } => {
                let l = cfgs[&here].underlay.iter().find(|u| &u.name == underlay).expect("underlay");
                assert_eq!(l.peer, next_hop, "next hop is the peer on the link");
                here = l.peer_host.to_string();
                visited.push(here.clone());
                let r = cfgs[&here]
                    .labels
                    .iter()
                    .find(|r| r.label == label && r.link_type == link_type)
                    .expect("label rule at next hop");
                action = r.action.clone();
            }
        }
    }
    panic!("forwarding loop");
}

#[test]
fn plans_transit_path_and_forwarding_closes() {
    let s = substrate();
    let spec = slice("red", ["h1", "h2"], "gre");
    let p = plan(&s, &spec, &Allocations::default(), &cat()).unwrap();
    assert_eq!(p.links[0].path, ["h1", "t1", "h2"]);
    assert_eq!(p.links[0].underlay, ["h1-t1", "t1-h2"]);
    assert_eq!(p.nodes[0].netns.as_deref(), Some("lab.red.a"));
    let cfgs = node_configs(&s, &[(&spec, &p)], &cat());
    let pa = p.nodes[0].interfaces[0].port;
    let pb = p.nodes[1].interfaces[0].port;
    assert_eq!(trace(&cfgs, "h1", pa), (vec!["h1".into(), "t1".into(), "h2".into()], pb));
    assert_eq!(trace(&cfgs, "h2", pb), (vec!["h2".into(), "t1".into(), "h1".into()], pa));
    assert_eq!(cfgs["t1"].labels.len(), 2);
    assert!(cfgs["h3"].labels.is_empty() && cfgs["h3"].slivers.is_empty());
}

#[test]
fn local_link_is_port_to_port() {
    let s = substrate();
    let spec = slice("red", ["h1", "h1"], "vxlan");
    let p = plan(&s, &spec, &Allocations::default(), &cat()).unwrap();
    let cfgs = node_configs(&s, &[(&spec, &p)], &cat());
    let pa = p.nodes[0].interfaces[0].port;
    let pb = p.nodes[1].interfaces[0].port;
    assert_eq!(trace(&cfgs, "h1", pa), (vec!["h1".into()], pb));
    assert_eq!(trace(&cfgs, "h1", pb), (vec!["h1".into()], pa));
}

#[test]
fn two_slices_get_distinct_labels_and_ports() {
    let s = substrate();
    let red = slice("red", ["h1", "h2"], "gre");
    let blue = slice("blue", ["h1", "h2"], "gre");
    let pr = plan(&s, &red, &Allocations::default(), &cat()).unwrap();
    let held = Allocations::from_plans([&pr]);
    let pb = plan(&s, &blue, &held, &cat()).unwrap();
    let cfgs = node_configs(&s, &[(&red, &pr), (&blue, &pb)], &cat());
    for cfg in cfgs.values() {
        let labels: BTreeSet<u32> = cfg.labels.iter().map(|r| r.label.0).collect();
        assert_eq!(labels.len(), cfg.labels.len(), "labels unique on {}", cfg.host);
        let ports: BTreeSet<u32> = cfg.ports.iter().map(|r| r.port.0).collect();
        assert_eq!(ports.len(), cfg.ports.len(), "ports unique on {}", cfg.host);
    }
    let a_red = pr.nodes[0].interfaces[0].port;
    let b_red = pr.nodes[1].interfaces[0].port;
    let a_blue = pb.nodes[0].interfaces[0].port;
    let b_blue = pb.nodes[1].interfaces[0].port;
    assert_eq!(trace(&cfgs, "h1", a_red).1, b_red);
    assert_eq!(trace(&cfgs, "h1", a_blue).1, b_blue);
}

/// The configs of some hosts, from the slices that use them, are those
/// hosts' configs from every slice (what lets the manager recompute only the
/// hosts a change touches).
#[test]
fn configs_of_some_hosts_equal_their_part_of_all() {
    let s = substrate();
    let red = slice("red", ["h1", "h2"], "gre");
    let blue = slice("blue", ["h2", "h1"], "gre");
    let pr = plan(&s, &red, &Allocations::default(), &cat()).unwrap();
    let pb = plan(&s, &blue, &Allocations::from_plans([&pr]), &cat()).unwrap();
    let all = node_configs(&s, &[(&blue, &pb), (&red, &pr)], &cat());
    for host in ["h1", "h2", "h3", "t1"] {
        let users: Vec<_> = [(&blue, &pb), (&red, &pr)].into_iter().filter(|(_, p)| p.hosts().contains(host)).collect();
        let some = node_configs_of(&s, &users, &cat(), &BTreeSet::from([host]));
        assert_eq!(some.len(), 1);
        assert_eq!(some[host], all[host], "{host}");
    }
}

#[test]
fn refusals_name_the_field() {
    let s = substrate();
    let e = plan(&s, &slice("red", ["h1", "h9"], "gre"), &Allocations::default(), &cat()).unwrap_err();
    assert_eq!(e.field(), "nodes[1].host");
    let e = plan(&s, &slice("red", ["h1", "t1"], "gre"), &Allocations::default(), &cat()).unwrap_err();
    assert!(matches!(e, PlanError::NotVnode { .. }));
    // h3 sits behind a 1500-byte link: a 1500-byte virtual link does not fit.
    let e = plan(&s, &slice("red", ["h1", "h3"], "gre"), &Allocations::default(), &cat()).unwrap_err();
    assert_eq!(e.field(), "links[0].mtu");
    assert!(e.to_string().contains("t1-h3"), "{e}");
    // Fill h1's four slots, then ask for a fifth.
    let mut held = Allocations::default();
    held.slivers.insert("h1".into(), 4);
    let e = plan(&s, &slice("red", ["h1", "h2"], "gre"), &held, &cat()).unwrap_err();
    assert!(matches!(e, PlanError::NoHost { resource: "sliver slots", .. }), "{e}");
}

#[test]
fn unpinned_nodes_spread() {
    let s = substrate();
    let spec = SliceSpec::from_text("name: s\nnodes:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n").unwrap();
    let p = plan(&s, &spec, &Allocations::default(), &cat()).unwrap();
    let hosts: BTreeSet<&str> = p.nodes.iter().map(|n| n.host.as_str()).collect();
    assert_eq!(hosts.len(), 3);
    assert!(!hosts.contains("t1"));
}

#[test]
fn macs_are_stable_and_local() {
    let m = interface_mac("lab", "red", "a", "eth0");
    assert_eq!(m, interface_mac("lab", "red", "a", "eth0"));
    assert_ne!(m, interface_mac("lab", "red", "a", "eth1"));
    assert!(m.is_local() && m.is_unicast() && m.to_string().starts_with("02:"));
}

proptest! {
    /// Any sequence of plans and releases keeps the incremental allocations equal to
    /// those recomputed from the live plans, never reuses a label on a host, and
    /// returns to empty when everything is released.
    #[test]
    fn release_returns_exactly_what_was_taken(ops in proptest::collection::vec((0usize..6, 0usize..4, 0usize..4, any::<bool>()), 1..40)) {
        let s = substrate();
        let vnodes = ["h1", "h2", "h3", "h1"];
        let mut live: BTreeMap<usize, (SliceSpec, SlicePlan)> = BTreeMap::new();
        let mut alloc = Allocations::default();
        for (id, a, b, vx) in ops {
            if let Some((_, p)) = live.remove(&id) {
                alloc.remove(&p);
            } else {
                let mut spec = slice(&format!("s{id}"), [vnodes[a], vnodes[b]], if vx { "vxlan" } else { "gre" });
                if id % 2 == 0 {
                    // Some slices claim dedicated CPUs (exclusive per host).
                    spec.qos = Some(SliceQos { cpus: vec![id as u32 % 3], ..SliceQos::default() });
                }
                if let Ok(p) = plan(&s, &spec, &alloc, &cat()) {
                    alloc.add(&p);
                    live.insert(id, (spec, p));
                }
            }
            let recomputed = Allocations::from_plans(live.values().map(|(_, p)| p));
            prop_assert_eq!(&alloc, &recomputed);
            prop_assert!(alloc.cpus.values().flat_map(|m| m.values()).all(|&n| n == 1), "a CPU claimed twice: {:?}", alloc.cpus);
            let pairs: Vec<(&SliceSpec, &SlicePlan)> = live.values().map(|(s, p)| (s, p)).collect();
            for cfg in node_configs(&s, &pairs, &cat()).values() {
                let labels: BTreeSet<u32> = cfg.labels.iter().map(|r| r.label.0).collect();
                prop_assert_eq!(labels.len(), cfg.labels.len());
            }
        }
        for (_, p) in live.values() {
            alloc.remove(p);
        }
        prop_assert_eq!(alloc, Allocations::default());
    }
}

#[test]
fn bandwidth_is_admitted_per_link_and_direction() {
    let s = Substrate::from_text(
        "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 100Mbit}\n",
    )
    .unwrap();
    let spec = |name: &str, bw: &str| {
        SliceSpec::from_text(&format!(
            "name: {name}\nnodes:\n  - {{name: a, host: h1}}\n  - {{name: b, host: h2}}\nlinks:\n  - {{name: l, bandwidth: {bw}, endpoints: [{{node: a}}, {{node: b}}]}}\n"
        ))
        .unwrap()
    };
    let p1 = plan(&s, &spec("one", "70Mbit"), &Allocations::default(), &cat()).unwrap();
    let held = Allocations::from_plans([&p1]);
    assert_eq!(held.bandwidth[&("h1-h2".to_string(), "h1".to_string())], 70_000_000);
    assert_eq!(held.bandwidth[&("h1-h2".to_string(), "h2".to_string())], 70_000_000);
    let e = plan(&s, &spec("two", "50Mbit"), &held, &cat()).unwrap_err();
    assert_eq!(e.field(), "links[0].bandwidth");
    assert_eq!(e.to_string(), "links[0].bandwidth: link h1-h2 (h1 -> h2) has 30Mbit free, 50Mbit asked");
    assert!(plan(&s, &spec("two", "30Mbit"), &held, &cat()).is_ok());
    let mut back = held.clone();
    back.remove(&p1);
    assert_eq!(back, Allocations::default());
}

fn cat() -> netslice_model::types::StaticCatalog {
    netslice_model::types::StaticCatalog::builtin()
}

#[test]
fn dedicated_cpus_are_exclusive_per_host() {
    let s = substrate();
    let with_cpus = |name: &str, pins: [&str; 2], cpus: Vec<u32>| {
        let mut sp = slice(name, pins, "gre");
        sp.qos = Some(SliceQos { cpus, ..SliceQos::default() });
        sp
    };
    let red = with_cpus("red", ["h1", "h2"], vec![1]);
    let pr = plan(&s, &red, &Allocations::default(), &cat()).unwrap();
    assert_eq!(pr.cpus, vec![1]);
    let held = Allocations::from_plans([&pr]);
    // The transit host t1 counts: red's frames cross it.
    assert_eq!(held.cpus.keys().map(String::as_str).collect::<Vec<_>>(), ["h1", "h2", "t1"]);
    // The same CPU on hosts red uses: refused, naming it.
    let e = plan(&s, &with_cpus("blue", ["h1", "h2"], vec![0, 1]), &held, &cat()).unwrap_err();
    assert_eq!(e.field(), "qos.cpus[1]");
    assert_eq!(e.geni_code(), "UNAVAILABLE");
    assert!(e.to_string().contains("CPU 1 on host"), "{e}");
    // Another CPU, or no dedicated CPU at all: admitted.
    plan(&s, &with_cpus("blue", ["h1", "h2"], vec![0]), &held, &cat()).unwrap();
    plan(&s, &slice("green", ["h1", "h2"], "gre"), &held, &cat()).unwrap();
    // Red's change of its own CPUs is checked against the others only.
    let red2 = with_cpus("red", ["h1", "h2"], vec![1, 0]);
    replan(&s, &red2, Some((&red, &pr)), &Allocations::default(), &cat()).unwrap();
    // The claims reach the agents.
    let cfgs = node_configs(&s, &[(&red, &pr)], &cat());
    assert_eq!(cfgs["t1"].slices["red"].cpus, vec![1]);
}

#[test]
fn bad_cpu_lists_are_refused_by_field() {
    for (cpus, field) in [("[1, 1]", "qos.cpus[1]"), ("[2000]", "qos.cpus[0]")] {
        let text = format!("name: red\nqos: {{cpus: {cpus}}}\nnodes:\n  - {{name: a}}\n");
        let e = SliceSpec::from_text(&text).unwrap_err().to_string();
        assert!(e.contains(field), "{cpus}: {e}");
    }
}

#[test]
fn fast_path_nodes_are_charged_their_forwarding_work_not_a_sliver() {
    // h3 holds one sliver.
    let s = Substrate::from_text(
        r#"
name: lab
hosts:
  - { name: h1, role: vnode }
  - { name: h2, role: vnode }
  - { name: h3, role: vnode, slivers: 1 }
links:
  - { endpoints: [h1, h3], bandwidth: 1Gbit }
  - { endpoints: [h2, h3], bandwidth: 1Gbit }
"#,
    )
    .unwrap();
    let spec = SliceSpec::from_text(
        r#"
name: sw
share_hosts: true
nodes:
  - { name: a, host: h1 }
  - { name: b, host: h2 }
  - { name: s, type: l2switch, host: h3 }
  - { name: t, type: router, host: h3 }
  - { name: c, host: h3 }
links:
  - { name: as, bandwidth: 300Mbit, endpoints: [ { node: a }, { node: s } ] }
  - { name: bs, bandwidth: 100Mbit, endpoints: [ { node: b }, { node: s } ] }
  - { name: st, bandwidth: 1Mbit, endpoints: [ { node: s }, { node: t, address: 10.0.0.1/24 } ] }
  - { name: tc, bandwidth: 1Mbit, endpoints: [ { node: t, address: 10.0.1.1/24 }, { node: c } ] }
"#,
    )
    .unwrap();
    // Two fast-path nodes and a sliver on a host with one sliver slot.
    let p = plan(&s, &spec, &Allocations::default(), &cat()).unwrap();
    let sw = p.node("s").unwrap();
    assert_eq!(sw.netns, None, "a fast-path node has no namespace");
    // 401 Mbit/s of guaranteed frames at 4 Gbit/s per core: 100.25 -> 101 millicores.
    assert_eq!(sw.cpu_milli, 101);
    assert_eq!(sw.memory, netslice_model::types::FAST_PATH_MEMORY);
    assert_eq!(p.node("t").unwrap().cpu_milli, 10, "at least 0.01 cores");
    let a = p.node("a").unwrap();
    assert_eq!((a.cpu_milli, a.memory), (500, 256 << 20), "slivers keep their limits");
    let held = Allocations::from_plans([&p]);
    assert_eq!(held.slivers.get("h3"), Some(&1), "only c takes a sliver slot on h3");
    assert_eq!(held.cpu_milli["h3"], 101 + 10 + 500);
    let mut back = held.clone();
    back.remove(&p);
    assert_eq!(back, Allocations::default(), "remove is the exact inverse of add");
    let cfgs = node_configs(&s, &[(&spec, &p)], &cat());
    let cfg = cfgs["h3"].slivers.iter().find(|x| x.node == "s").unwrap();
    assert!(cfg.fast_path && cfg.netns.is_none());
}

// --- forwarding capacity as an admitted resource

const FWD_SUBSTRATE: &str = r#"
name: lab
hosts:
  - { name: h1, role: vnode, slivers: 32, memory: 64Gi }
  - { name: h2, role: vnode, slivers: 32, memory: 64Gi }
  - { name: h3, role: vnode, slivers: 32, memory: 64Gi }
  - { name: t1, role: transport }
links:
  - { endpoints: [h1, t1], bandwidth: 10Gbit, mtu: 9000 }
  - { endpoints: [t1, h2], bandwidth: 10Gbit, mtu: 9000 }
  - { endpoints: [t1, h3], bandwidth: 10Gbit, mtu: 9000 }
"#;

fn fwd_substrate() -> Substrate {
    Substrate::from_text(FWD_SUBSTRATE).unwrap()
}

fn capacity(cores: f64, ends_ns: f64, transit_ns: f64) -> netslice_model::capacity::ForwardingCapacity {
    use netslice_model::capacity::{Cost, ForwardingCapacity, LinkTypeCost};
    ForwardingCapacity {
        cores,
        io: "xdp".into(),
        link_types: vec![LinkTypeCost {
            link_type: "gre".into(),
            ends: Cost { per_frame_ns: ends_ns, per_byte_ns: 0.0 },
            transit: Cost { per_frame_ns: transit_ns, per_byte_ns: 0.0 },
            points: vec![],
        }],
        source: "test".into(),
    }
}

fn caps(hosts: &[&str], c: &netslice_model::capacity::ForwardingCapacity) -> Capacities {
    hosts.iter().map(|h| (h.to_string(), c.clone())).collect()
}

/// A slice a (h1) - b (h2) over t1 with `bw` at `size`-byte frames, slivers of 0.01 CPU.
fn fwd_slice(name: &str, bw: &str, size: u32) -> SliceSpec {
    SliceSpec::from_text(&format!(
        r#"
name: {name}
nodes:
  - {{ name: a, host: h1, cpu: 0.01 }}
  - {{ name: b, host: h2, cpu: 0.01 }}
links:
  - name: ab
    bandwidth: {bw}
    frame_size: {size}
    endpoints:
      - {{ node: a, address: 10.0.0.1/24 }}
      - {{ node: b, address: 10.0.0.2/24 }}
"#
    ))
    .unwrap()
}

#[test]
fn a_guaranteed_rate_reserves_forwarding_work_on_every_host_of_its_path() {
    let s = fwd_substrate();
    // 10 us per frame at the ends, 5 us per transit hop, 1.2 cores each.
    let c = caps(&["h1", "h2", "h3", "t1"], &capacity(1.2, 10_000.0, 5_000.0));
    // 40 Mbit/s of 500-byte frames: 10,000 frames/s each way.
    let spec = fwd_slice("red", "40Mbit", 500);
    let p = replan_with(&s, &spec, None, &Allocations::default(), &cat(), &c).unwrap();
    // Ends: f x 10 us = 0.1 core; transit: 2f x 5 us = 0.1 core.
    assert_eq!(p.links[0].path, ["h1", "t1", "h2"]);
    assert_eq!(p.links[0].forwarding, [100_000_000, 100_000_000, 100_000_000]);
    let a = Allocations::from_plans([&p]);
    assert_eq!(a.forwarding.get("t1"), Some(&100_000_000));
    // Nine more fit (1.1 cores at h1: 10 x (0.1 + a sliver's 0.01)), the
    // eleventh's sliver does, its link not: h1, the first host of its
    // path, can forward 0.09 core's worth more.
    let mut held = a;
    for i in 0..9 {
        let p = replan_with(&s, &fwd_slice(&format!("s{i}"), "40Mbit", 500), None, &held, &cat(), &c).unwrap();
        held.add(&p);
    }
    let err = replan_with(&s, &fwd_slice("late", "40Mbit", 500), None, &held, &cat(), &c).unwrap_err();
    match &err {
        PlanError::Forwarding { field, host, free, asked, frame_size, .. } => {
            assert_eq!(field, "links[0].bandwidth");
            assert_eq!(host, "h1", "the first host of the path that is full");
            assert_eq!((free.bps(), asked.bps(), *frame_size), (36_000_000, 40_000_000, 500));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "links[0].bandwidth: host h1 can forward 36Mbit more at 500-byte frames, 40Mbit asked");
    assert_eq!(err.reason(), "insufficient_forwarding");
}

#[test]
fn a_refusal_says_how_much_the_host_can_still_forward_and_small_frames_cost_more() {
    let s = fwd_substrate();
    // One core left beside the sliver's 0.01.
    let c = caps(&["h1", "h2", "h3", "t1"], &capacity(1.01, 10_000.0, 5_000.0));
    // 1500-byte frames: 1 core forwards 100,000 frames/s at the ends = 1.2 Gbit/s.
    let err = replan_with(&s, &fwd_slice("big", "2Gbit", 1500), None, &Allocations::default(), &cat(), &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "links[0].bandwidth: host h1 can forward 1200Mbit more at 1500-byte frames, 2Gbit asked"
    );
    let ok = replan_with(&s, &fwd_slice("big", "900Mbit", 1500), None, &Allocations::default(), &cat(), &c).unwrap();
    assert_eq!(ok.links[0].forwarding[0], 750_000_000);
    // The same rate at 200-byte frames needs 7.5 times the frames.
    let err =
        replan_with(&s, &fwd_slice("small", "900Mbit", 200), None, &Allocations::default(), &cat(), &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "links[0].bandwidth: host h1 can forward 160Mbit more at 200-byte frames, 900Mbit asked"
    );
}

#[test]
fn hosts_on_one_machine_share_its_budget_with_their_slivers() {
    let text = format!("{FWD_SUBSTRATE}machines:\n  - {{ name: box, cpu: 1 }}\n")
        .replace(
            "{ name: h1, role: vnode, slivers: 32, memory: 64Gi }",
            "{ name: h1, role: vnode, slivers: 32, memory: 64Gi, machine: box }",
        )
        .replace(
            "{ name: h2, role: vnode, slivers: 32, memory: 64Gi }",
            "{ name: h2, role: vnode, slivers: 32, memory: 64Gi, machine: box }",
        )
        .replace("{ name: t1, role: transport }", "{ name: t1, role: transport, machine: box }");
    let s = Substrate::from_text(&text).unwrap();
    let c = caps(&["h1", "h2", "h3", "t1"], &capacity(2.0, 10_000.0, 5_000.0));
    // 0.32 core of the machine per slice (three hosts x 0.1 and two slivers
    // of 0.01): three fit, not four.
    let mut held = Allocations::default();
    for i in 0..3 {
        held.add(&replan_with(&s, &fwd_slice(&format!("s{i}"), "40Mbit", 500), None, &held, &cat(), &c).unwrap());
    }
    let err = replan_with(&s, &fwd_slice("s3", "40Mbit", 500), None, &held, &cat(), &c).unwrap_err();
    assert!(err.to_string().contains("(machine box, shared with"), "the refusal names the shared machine: {err}");
    // A sliver's CPU comes out of the same budget.
    let mut spec = fwd_slice("cpu", "1Mbit", 500);
    spec.nodes[0].cpu = Some(0.2);
    let err = replan_with(&s, &spec, None, &held, &cat(), &c).unwrap_err();
    assert!(matches!(&err, PlanError::NoHost { resource: "cpu", .. }), "{err:?}");
    // Without reported capacities only slivers count against the machine.
    let p = replan_with(&s, &fwd_slice("s3", "40Mbit", 500), None, &held, &cat(), &Capacities::new()).unwrap();
    assert!(p.links[0].forwarding.is_empty());
}

#[test]
fn a_slice_with_dedicated_cpus_forwards_within_them() {
    let s = fwd_substrate();
    let c = caps(&["h1", "h2", "h3", "t1"], &capacity(4.0, 10_000.0, 5_000.0));
    // One dedicated CPU: up to 100,000 frames/s at an end.
    let mut spec = fwd_slice("d", "360Mbit", 500);
    spec.qos = Some(SliceQos { cpus: vec![1], ..SliceQos::default() });
    let p = replan_with(&s, &spec, None, &Allocations::default(), &cat(), &c).unwrap();
    assert!(p.links[0].forwarding.is_empty(), "not charged to the shared budget");
    spec.links[0].bandwidth = netslice_model::Bandwidth(480_000_000);
    let err = replan_with(&s, &spec, None, &Allocations::default(), &cat(), &c).unwrap_err();
    assert!(err.to_string().contains("(its 1 dedicated CPU)"), "{err}");
}

#[test]
fn releasing_a_plan_returns_its_forwarding_work() {
    let s = fwd_substrate();
    let c = caps(&["h1", "h2", "h3", "t1"], &capacity(1.1, 10_000.0, 5_000.0));
    let p = replan_with(&s, &fwd_slice("red", "40Mbit", 500), None, &Allocations::default(), &cat(), &c).unwrap();
    let mut a = Allocations::from_plans([&p]);
    a.remove(&p);
    assert_eq!(a, Allocations::default());
}
