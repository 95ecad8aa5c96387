//! The data plane of several hosts, in memory, on a virtual clock: the
//! pipelines the agents run, driven by the configs the manager derives. No
//! root; each test runs in milliseconds and repeats exactly.

use netslice_dataplane::gso;
use netslice_sim::{Flow, MS, Nanos, Net, SEC, read_udp_frame};
use netslice_wire::{EtherType, MacAddr, ethernet, ipv4};

/// h1 - t1 - t2 - t3 - h2: three transit hosts between two vnodes.
const CHAIN: &str = "name: chain
hosts:
  - {name: h1, role: vnode}
  - {name: t1, role: transport}
  - {name: t2, role: transport}
  - {name: t3, role: transport}
  - {name: h2, role: vnode}
links:
  - {endpoints: [h1, t1], bandwidth: 1Gbit}
  - {endpoints: [t1, t2], bandwidth: 1Gbit}
  - {endpoints: [t2, t3], bandwidth: 1Gbit}
  - {endpoints: [t3, h2], bandwidth: 1Gbit}
";

/// h1 - t1 - h2 at 100 Mbit/s.
fn pair(extra: &str) -> String {
    format!(
        "name: pair
hosts:
  - {{name: h1, role: vnode}}
  - {{name: t1, role: transport}}
  - {{name: h2, role: vnode}}
links:
  - {{endpoints: [h1, t1], bandwidth: 100Mbit{extra}}}
  - {{endpoints: [t1, h2], bandwidth: 100Mbit}}
"
    )
}

/// A slice of nodes a (on h1) and b (on h2) joined by link `ab`.
fn two_nodes(name: &str, link: &str) -> String {
    format!(
        "name: {name}
nodes:
  - {{name: a, host: h1}}
  - {{name: b, host: h2}}
links:
  - {{name: ab, {link}, endpoints: [{{node: a, address: 10.0.0.1/24}}, {{node: b, address: 10.0.0.2/24}}]}}
"
    )
}

/// Sequence numbers received, in arrival order.
fn seqs(got: &[(u64, Nanos, Nanos)]) -> Vec<u64> {
    got.iter().map(|g| g.0).collect()
}

#[test]
fn a_label_switched_path_crosses_three_transit_hosts() {
    for ty in ["gre", "vxlan"] {
        let mut net = Net::new(CHAIN);
        let plan = net.apply(&two_nodes("red", &format!("type: {ty}, bandwidth: 100Mbit")));
        assert_eq!(plan.links[0].path, ["h1", "t1", "t2", "t3", "h2"]);
        // Every hop has a label of its own, chosen by the host that receives it.
        let labels: Vec<u32> = plan.links[0].forward_labels.clone();
        assert_eq!(labels.len(), 4);
        for (hop, host) in ["t1", "t2", "t3", "h2"].iter().enumerate() {
            let cfg = net.config(host);
            assert!(cfg.labels.iter().any(|l| l.label.0 == labels[hop] && l.slice == "red"), "{host} knows its label");
        }
        let f = net.flow(Flow::udp("red", "a", "ab", 50_000_000, 1000).between(0, 100 * MS));
        let back = net.flow(Flow::udp("red", "b", "ab", 5_000_000, 200).between(0, 100 * MS));
        net.run_until(200 * MS);
        let n = net.sent(f);
        assert_eq!(n, 625);
        assert_eq!(seqs(&net.received(f)), (0..n).collect::<Vec<_>>(), "{ty}: every frame, in order");
        assert_eq!(net.received(back).len() as u64, net.sent(back), "{ty}: the reverse direction too");
        // Each transit host swapped the label of every frame, once.
        for host in ["t1", "t2", "t3"] {
            let c = net.counters(host);
            let fwd =
                c.iter().find(|c| c.slice == "red" && c.direction == Some(netslice_model::api::Direction::Forward));
            assert_eq!(fwd.map(|c| c.packets), Some(n), "{ty}: {host}: {c:?}");
        }
    }
}

#[test]
fn overlapping_slices_never_see_each_others_frames() {
    let mut net = Net::new(CHAIN);
    // Same node names, same addresses, same hosts.
    net.apply(&two_nodes("red", "type: gre, bandwidth: 100Mbit"));
    net.apply(&two_nodes("blue", "type: vxlan, bandwidth: 100Mbit"));
    let red = net.flow(Flow::udp("red", "a", "ab", 20_000_000, 500).between(0, 50 * MS));
    let blue = net.flow(Flow::udp("blue", "a", "ab", 30_000_000, 700).between(0, 50 * MS));
    net.run_until(100 * MS);
    for (f, slice) in [(red, "red"), (blue, "blue")] {
        let (host, port, ..) = net.end(slice, "b", "ab");
        let frames = net.delivered(&host, port);
        assert_eq!(frames.len() as u64, net.sent(f), "{slice}: everything arrives");
        // Nothing of the other slice's flow reached this interface.
        assert!(frames.iter().all(|d| read_udp_frame(&d.frame).map(|(tag, ..)| tag) == Some(f.0)), "{slice}");
    }
}

#[test]
fn a_victim_keeps_its_guarantee_under_a_tenfold_flood_at_every_hop() {
    for aggr in ["ceiling: 100Mbit", "ceiling: 100Mbit, isolation: policed"] {
        let mut net = Net::new(&pair(""));
        net.apply(&two_nodes("aggr", &format!("bandwidth: 20Mbit, {aggr}")));
        net.apply(&two_nodes("victim", "bandwidth: 20Mbit"));
        // The aggressor sends 10x its guarantee, the victim exactly its guarantee.
        let flood = net.flow(Flow::udp("aggr", "a", "ab", 200_000_000, 1372).between(0, SEC));
        let victim = net.flow(Flow::udp("victim", "a", "ab", 20_000_000, 1372).between(0, SEC));
        net.run_until(SEC + 200 * MS);
        let sent = net.sent(victim);
        let got = net.received(victim).len() as u64;
        assert!(got * 100 >= sent * 99, "{aggr}: victim got {got} of {sent}");
        // At every hop the victim's frames were forwarded, and none was
        // dropped on the way out (the egress queues count their drops on
        // the rule that sent the frame).
        for host in ["h1", "t1", "h2"] {
            let (n, drops) = net.forwarded(host, "victim", "ab");
            assert!(n * 100 >= sent * 99, "{aggr}: {host} forwarded {n} of {sent} ({drops:?})");
            assert!(drops.is_empty(), "{aggr}: {host} dropped the victim's frames: {drops:?}");
        }
        // The aggressor got no more than the link had left.
        let flood_bits = net.received(flood).len() as u64 * 1372 * 8;
        assert!(flood_bits <= 100_000_000 + 1_000_000, "{aggr}: {flood_bits}");
        assert!(flood_bits >= 60_000_000, "{aggr}: the flood used the spare capacity ({flood_bits})");
    }
}

#[test]
fn a_flood_from_elsewhere_meets_the_victim_at_a_transit_host_and_loses() {
    // The aggressor enters at h3 with room to spare (1 Gbit/s up to t1, a
    // 1 Gbit/s ceiling), so nothing slows it before t1, where it meets the
    // victim from h1 on the 100 Mbit/s link to h2: t1's scheduler alone
    // keeps the victim's guarantee.
    let mut net = Net::new(
        "name: fan
hosts:
  - {name: h1, role: vnode}
  - {name: h3, role: vnode}
  - {name: t1, role: transport}
  - {name: h2, role: vnode}
links:
  - {endpoints: [h1, t1], bandwidth: 1Gbit}
  - {endpoints: [h3, t1], bandwidth: 1Gbit}
  - {endpoints: [t1, h2], bandwidth: 100Mbit}
",
    );
    let slice = |name: &str, from: &str, link: &str| {
        format!(
            "name: {name}
nodes:
  - {{name: a, host: {from}}}
  - {{name: b, host: h2}}
links:
  - {{name: ab, {link}, endpoints: [{{node: a, address: 10.0.0.1/24}}, {{node: b, address: 10.0.0.2/24}}]}}
"
        )
    };
    net.apply(&slice("aggr", "h3", "bandwidth: 20Mbit, ceiling: 1Gbit"));
    net.apply(&slice("victim", "h1", "bandwidth: 20Mbit"));
    let flood = net.flow(Flow::udp("aggr", "a", "ab", 200_000_000, 1372).between(0, SEC));
    let victim = net.flow(Flow::udp("victim", "a", "ab", 20_000_000, 1372).between(0, SEC));
    net.run_until(SEC + 200 * MS);
    // All of the flood reached t1; t1 cut it down, not the victim.
    let (at_h3, _) = net.forwarded("h3", "aggr", "ab");
    assert!(at_h3 * 100 >= net.sent(flood) * 99, "the flood crossed h3 whole ({at_h3} of {})", net.sent(flood));
    let (_, t1_drops) = net.forwarded("t1", "aggr", "ab");
    assert!(t1_drops.get("queue_full").copied().unwrap_or(0) > 1000, "t1 dropped the excess: {t1_drops:?}");
    let (sent, got) = (net.sent(victim), net.received(victim).len() as u64);
    assert!(got * 100 >= sent * 99, "victim got {got} of {sent}");
    let (_, drops) = net.forwarded("t1", "victim", "ab");
    assert!(drops.is_empty(), "t1 dropped the victim's frames: {drops:?}");
}

#[test]
fn the_wires_own_delay_and_loss_add_to_the_pipelines() {
    // The physical medium may itself be slow or lossy (a real link, not a
    // veth): the harness's wires model that beside what the agents emulate.
    let mut net = Net::new(&pair(", delay: 2ms"));
    net.apply(&two_nodes("s", "bandwidth: 20Mbit"));
    net.wire("h1-t1").delay = 3 * MS;
    net.wire("t1-h2").loss_ppm = 50_000;
    let f = net.flow(Flow::udp("s", "a", "ab", 1_000_000, 500).between(0, SEC));
    net.run_until(SEC + 100 * MS);
    let got = net.received(f);
    // 2 ms by h1's emulation, 3 ms by the wire, nothing queued at this load.
    assert!(got.iter().all(|g| g.2 - g.1 == 5 * MS), "{:?}", got.iter().find(|g| g.2 - g.1 != 5 * MS));
    // What is missing is what the lossy wire lost, no more (5% of 250).
    let lost = net.wire("t1-h2").lost;
    assert_eq!(got.len() as u64 + lost, net.sent(f));
    assert!((2..=30).contains(&lost), "{lost} lost");
}

/// Runs 64-byte frames across a link delaying 2 ms and losing 1%; returns
/// (sequence numbers lost, one-way delays seen).
fn lossy_run(seed: u64) -> (Vec<u64>, Vec<Nanos>, u64) {
    let opts = netslice_pipeline::host::HostOptions { seed, ..Default::default() };
    let mut net = Net::with_options(&pair(", delay: 2ms, loss: 1%"), opts);
    net.apply(&two_nodes("s", "bandwidth: 20Mbit"));
    let f = net.flow(Flow::udp("s", "a", "ab", 10_000_000, 64).between(0, 2 * SEC));
    net.run_until(2 * SEC + 100 * MS);
    let got = net.received(f);
    let mut seen = vec![false; net.sent(f) as usize];
    for g in &got {
        seen[g.0 as usize] = true;
    }
    let lost = (0..net.sent(f)).filter(|&s| !seen[s as usize]).collect();
    (lost, got.iter().map(|g| g.2 - g.1).collect(), net.sent(f))
}

#[test]
fn delay_and_loss_are_emulated_within_exact_bounds() {
    let (lost, delays, sent) = lossy_run(7);
    assert_eq!(sent, 39_063);
    // The delay is exact: at this load nothing queues, so every frame takes 2 ms.
    assert!(delays.iter().all(|&d| d == 2 * MS), "{:?}", delays.iter().find(|&&d| d != 2 * MS));
    // 1% of 39,063 is 391 (sd 19.7): within 5 sd.
    assert!((292..=490).contains(&lost.len()), "{} lost", lost.len());
    // The same seed loses the same frames; another seed others.
    assert_eq!(lossy_run(7).0, lost);
    assert_ne!(lossy_run(8).0, lost);
}

/// An Ethernet + IPv4 + TCP super-frame from a to b with `segs` segments of
/// `mss` bytes, its checksum partial (as a TSO sender hands it over).
fn super_frame(
    src: (MacAddr, std::net::Ipv4Addr),
    dst: (MacAddr, std::net::Ipv4Addr),
    mss: usize,
    segs: usize,
) -> Vec<u8> {
    let tcp_hl = 20;
    let payload = mss * segs;
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_hl + payload];
    ethernet::Repr { src_addr: src.0, dst_addr: dst.0, ethertype: EtherType::Ipv4 }
        .emit(&mut ethernet::Frame::new_unchecked(&mut f[..]));
    let ip = ipv4::Repr {
        src_addr: src.1,
        dst_addr: dst.1,
        protocol: ipv4::protocol::TCP,
        payload_len: tcp_hl + payload,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..])).unwrap();
    let th = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    f[th..th + 2].copy_from_slice(&5001u16.to_be_bytes());
    f[th + 2..th + 4].copy_from_slice(&5201u16.to_be_bytes());
    f[th + 4..th + 8].copy_from_slice(&1000u32.to_be_bytes());
    f[th + 12] = 5 << 4; // data offset
    f[th + 13] = 0x18; // PSH, ACK
    f[th + 14..th + 16].copy_from_slice(&65535u16.to_be_bytes());
    for (i, b) in f[th + tcp_hl..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

fn tso_header(mss: usize) -> gso::VnetHdr {
    gso::VnetHdr {
        flags: gso::F_NEEDS_CSUM,
        gso_type: gso::GSO_TCPV4,
        hdr_len: (ethernet::HEADER_LEN + ipv4::HEADER_LEN + 20) as u16,
        gso_size: mss as u16,
        csum_start: (ethernet::HEADER_LEN + ipv4::HEADER_LEN) as u16,
        csum_offset: 16,
    }
}

/// Sends one super-frame of `segs` segments from a to b across `substrate`
/// (h1 - t1 - h2) and checks that every host counts it as its segments;
/// returns what b's interface received.
fn cross_with_a_super_frame(substrate: &str, link: &str) -> (Vec<netslice_sim::Delivery>, usize) {
    let (mss, segs) = (1448, 10);
    let mut net = Net::new(substrate);
    net.apply(&two_nodes("s", link));
    let (host, port, smac, sip) = net.end("s", "a", "ab");
    let (bhost, bport, dmac, dip) = net.end("s", "b", "ab");
    let frame = super_frame((smac, sip), (dmac, dip), mss, segs);
    net.send(&host, port, &frame, &tso_header(mss));
    net.run_for(10 * MS);
    let hdr = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 20;
    let wire = frame.len() + (segs - 1) * hdr;
    for host in ["h1", "t1", "h2"] {
        let c = net.counters(host);
        let c = c.iter().find(|c| c.slice == "s" && c.packets > 0).expect("a rule that forwarded it");
        assert_eq!((c.packets, c.bytes), (segs as u64, wire as u64), "{substrate}: {host}: {c:?}");
    }
    (net.delivered(&bhost, bport).to_vec(), mss * segs)
}

#[test]
fn super_frames_are_counted_as_their_segments_at_every_hop() {
    let hdr = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 20;
    // gre over IP hops end to end: carried whole, taken whole by b's interface.
    let (got, _) = cross_with_a_super_frame(&pair(""), "type: gre, bandwidth: 50Mbit");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].gso.map(|g| g.segs), Some(10));
    // The hop t1 - h2 carries Ethernet only (802.1Q): cut at t1, and a lossy
    // link must lose segments, not super-frames: cut at h1.
    let ethernet_only = "name: mixed
hosts:
  - {name: h1, role: vnode}
  - {name: t1, role: transport}
  - {name: h2, role: vnode}
links:
  - {endpoints: [h1, t1], bandwidth: 10Gbit}
  - {endpoints: [t1, h2], bandwidth: 10Gbit, network: ethernet, l2: vlan}
";
    for (substrate, why) in [(ethernet_only.to_string(), "Ethernet hop"), (pair(", loss: 0.001%"), "lossy link")] {
        let (got, payload) = cross_with_a_super_frame(&substrate, "type: gre, bandwidth: 50Mbit");
        // Every segment arrives on its own, within the MTU, the payload whole.
        assert_eq!(got.len(), 10, "{why}");
        assert!(got.iter().all(|d| d.frame.len() <= 1514 && d.gso.is_none()), "{why}");
        assert_eq!(got.iter().map(|d| d.frame.len() - hdr).sum::<usize>(), payload, "{why}");
    }
}

#[test]
fn node_programs_forward_in_the_path() {
    let mut net = Net::new(
        "name: tri
hosts:
  - {name: h1, role: vnode}
  - {name: h3, role: vnode}
  - {name: h2, role: vnode}
links:
  - {endpoints: [h1, h3], bandwidth: 1Gbit}
  - {endpoints: [h3, h2], bandwidth: 1Gbit}
",
    );
    net.apply(
        "name: lan
nodes:
  - {name: a, host: h1}
  - {name: b, host: h2}
  - {name: sw, type: l2switch, host: h3, params: {max_entries: 16}}
links:
  - {name: a-sw, bandwidth: 10Mbit, endpoints: [{node: a, address: 10.5.0.1/24}, {node: sw}]}
  - {name: b-sw, bandwidth: 10Mbit, endpoints: [{node: b, address: 10.5.0.2/24}, {node: sw}]}
",
    );
    let ab = net.flow(Flow::udp("lan", "a", "a-sw", 1_000_000, 300).to("b", "b-sw").between(0, 50 * MS));
    let ba = net.flow(Flow::udp("lan", "b", "b-sw", 1_000_000, 300).to("a", "a-sw").between(MS, 50 * MS));
    net.run_until(100 * MS);
    assert_eq!(seqs(&net.received(ab)), (0..net.sent(ab)).collect::<Vec<_>>());
    assert_eq!(net.received(ba).len() as u64, net.sent(ba));
    // The switch ran in h3's pipeline (no sliver there).
    assert_eq!(net.host("h3").plane().nodes.len(), 1);
}

#[test]
fn reconfiguration_mid_flow_loses_nothing_that_stays() {
    let mut net = Net::new(CHAIN);
    net.apply(&two_nodes("red", "type: gre, bandwidth: 50Mbit"));
    let f = net.flow(Flow::udp("red", "a", "ab", 40_000_000, 1000).between(0, 400 * MS));
    net.run_until(100 * MS);
    // Another slice comes on the same hosts and physical links ...
    net.apply(&two_nodes("blue", "type: vxlan, bandwidth: 30Mbit"));
    let g = net.flow(Flow::udp("blue", "a", "ab", 20_000_000, 800).between(net.now(), 300 * MS));
    net.run_until(200 * MS);
    // ... red's own rate changes, blue changes, then leaves.
    net.apply(&two_nodes("red", "type: gre, bandwidth: 60Mbit"));
    net.run_until(250 * MS);
    net.apply(&two_nodes("blue", "type: vxlan, bandwidth: 10Mbit, ceiling: 40Mbit"));
    net.run_until(300 * MS);
    net.delete("blue");
    net.run_until(500 * MS);
    assert_eq!(seqs(&net.received(f)), (0..net.sent(f)).collect::<Vec<_>>(), "red lost or reordered frames");
    assert_eq!(net.received(g).len() as u64, net.sent(g), "blue's frames sent before it left arrived");
}

#[test]
fn reapplying_an_identical_config_leaves_queued_frames_untouched() {
    // A delaying link holds frames in its delay line, and a slice sending
    // over its ceiling holds frames in its class queue, when every host gets
    // its config again (as an agent re-applies after an error or a restart).
    let run = |reapply: bool| {
        let mut net = Net::new(&pair(", delay: 5ms"));
        net.apply(&two_nodes("s", "bandwidth: 10Mbit"));
        // A policed slice over its rate: its meter must not be refilled.
        net.apply(&two_nodes("p", "bandwidth: 5Mbit, isolation: policed"));
        let f = net.flow(Flow::udp("s", "a", "ab", 15_000_000, 1000).between(0, 20 * MS));
        let g = net.flow(Flow::udp("p", "a", "ab", 20_000_000, 1000).between(0, 20 * MS));
        for t in [3, 7, 12, 18] {
            net.run_until(t * MS);
            if reapply {
                assert!(net.host("h1").backlog() > 0, "frames queued at h1 at {t} ms");
                net.reapply();
                net.reapply();
            }
        }
        net.run_until(100 * MS);
        (net.received(f), net.received(g), net.counters("h1"), net.counters("h2"))
    };
    let (plain, reapplied) = (run(false), run(true));
    assert!(!plain.0.is_empty());
    assert_eq!(plain, reapplied, "re-applying changed what arrived, when, or what was counted");
}
