//! End-to-end tests of programmability: fast-path node types (l2switch,
//! extmac-switch, router), L2 link types (vlan, pbb) with format conversion at a
//! transit host, per-slice switch tables, and parameter checks.

mod common;

use std::time::Duration;

use common::*;

/// h1 reaches the others over an IP link; t1-h2 is Ethernet-only carrying
/// 802.1Q, t1-h3 Ethernet-only carrying 802.1ah: an IP-type virtual link is
/// converted at t1, and h2 <-> h3 converts between VLAN and MAC-in-MAC.
const SUBSTRATE: &str = "name: prog
hosts:
  - {name: h1, role: vnode, cpu: 8}
  - {name: h2, role: vnode, cpu: 8}
  - {name: h3, role: vnode, cpu: 8}
  - {name: t1, role: transport}
links:
  - {endpoints: [h1, t1], bandwidth: 1Gbit}
  - {endpoints: [t1, h2], bandwidth: 1Gbit, network: ethernet, l2: vlan}
  - {endpoints: [t1, h3], bandwidth: 1Gbit, network: ethernet, l2: pbb}
";

fn setup(tag: &str) -> (Testbed, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("prog.yaml");
    std::fs::write(&sub, SUBSTRATE).unwrap();
    (Testbed::up(tag, &sub), dir)
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn l2switch_joins_three_slivers_on_three_hosts_across_vlan_and_pbb_hops() {
    if !need_root() {
        return;
    }
    let (tb, dir) = setup("sw");
    let spec = write(
        &dir,
        "sw.yaml",
        "name: lan
nodes:
  - {name: a, host: h1, cpu: 0.1}
  - {name: b, host: h2, cpu: 0.1}
  - {name: c, host: h3, cpu: 0.1}
  - {name: sw, type: l2switch, host: h2, params: {max_entries: 128, aging: 60s}}
links:
  - {name: a-sw, type: vxlan, bandwidth: 10Mbit, ceiling: 100Mbit, endpoints: [{node: a, address: 10.5.0.1/24}, {node: sw}]}
  - {name: b-sw, bandwidth: 10Mbit, endpoints: [{node: b, address: 10.5.0.2/24}, {node: sw}]}
  - {name: c-sw, type: gre, bandwidth: 10Mbit, ceiling: 100Mbit, endpoints: [{node: c, address: 10.5.0.3/24}, {node: sw}]}
",
    );
    tb.apply(&spec);
    let show = tb.show("lan");
    let hops = |link: &str| {
        show["plan"]["links"].as_array().unwrap().iter().find(|l| l["name"] == link).unwrap()["hop_types"].clone()
    };
    assert_eq!(
        hops("a-sw"),
        serde_json::json!(["vxlan", "vlan"]),
        "vxlan converted to 802.1Q on the Ethernet-only hop"
    );
    assert_eq!(hops("c-sw"), serde_json::json!(["pbb", "vlan"]), "MAC-in-MAC converted to 802.1Q at t1");
    for (from, to) in [("a", "10.5.0.2"), ("a", "10.5.0.3"), ("b", "10.5.0.3"), ("c", "10.5.0.1")] {
        let (ok, v) = tb.ping("lan", from, to, "3");
        assert!(ok && v["received"] == 3, "{from} -> {to}: {v}");
    }
    let out =
        tb.exec("lan", "a", &["tool", "tcp-client", "10.5.0.3:5201", "--seconds", "0.5", "--connect-timeout", "1"]);
    // Nothing listens there: a refused connection still proves TCP crossed both ways.
    assert!(!out.status.success());
    wait_until("switch counters reported", Duration::from_secs(10), || {
        let s = tb.show("lan");
        s["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["node"] == "sw" && p["stats"]["entries"].as_u64().unwrap_or(0) >= 3)
    });
    // The switch is a fast-path node, not a sliver (review item 7): no
    // namespace, no sliver slot, its forwarding work reserved instead of
    // 0.5 CPU and 256Mi; show and exec say so.
    let sw = show["plan"]["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "sw").unwrap().clone();
    assert!(sw["netns"].is_null(), "{sw}");
    assert_eq!(sw["cpu_milli"], 10, "30 Mbit/s guaranteed: the 0.01-core floor: {sw}");
    assert_eq!(sw["memory"], (64 << 10) + 128 * 64, "its table at 128 entries: {sw}");
    let text = tb.ok(&["slice", "show", "lan"]);
    let line = text.lines().find(|l| l.trim_start().starts_with("sw ")).unwrap_or_default();
    assert!(line.contains("the agent (fast path)") && !line.contains(".lan.sw"), "{text}");
    let out = tb.cli(&["slice", "exec", "lan", "sw", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is a fast-path node (l2switch)"), "{err}");
    let usage: serde_json::Value = serde_json::from_str(&tb.ok(&["substrate", "show", "--json"])).unwrap();
    let h2 = usage["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "h2").unwrap().clone();
    assert_eq!(h2["slivers_used"], 1, "only b is a sliver on h2: {h2}");
}

#[test]
fn extmac_switch_carries_a_non_ip_protocol_end_to_end() {
    if !need_root() {
        return;
    }
    let (tb, dir) = setup("xm");
    let spec = write(
        &dir,
        "xm.yaml",
        "name: xmac
nodes:
  - {name: a, host: h1, cpu: 0.1}
  - {name: c, host: h3, cpu: 0.1}
  - {name: x, type: extmac-switch, host: h2}
links:
  - {name: a-x, bandwidth: 10Mbit, endpoints: [{node: a}, {node: x}]}
  - {name: c-x, type: pbb, bandwidth: 10Mbit, endpoints: [{node: c}, {node: x}]}
",
    );
    tb.apply(&spec);
    let a = "0200:0000:0000:0000:0000:0000:0000:000a";
    let c = "0200:0000:0000:0000:0000:0000:0000:000c";
    let recv = tb.spawn_exec(
        "xmac",
        "c",
        &["tool", "extmac-recv", "--iface", "eth0", "--count", "3", "--timeout", "5", "--json"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let out = tb.exec(
        "xmac",
        "a",
        &["tool", "extmac-send", "--iface", "eth0", "--src", a, "--dst", c, "--count", "3", "--payload", "hi c"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = recv.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v[0]["src"], a);
    assert_eq!(v[0]["dst"], c);
    assert_eq!(v[0]["payload"], "hi c");
    wait_until("switch learned a", Duration::from_secs(10), || {
        let s = tb.show("xmac");
        s["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["node"] == "x" && p["stats"]["learned"].as_u64().unwrap_or(0) >= 1)
    });
}

#[test]
fn router_forwards_between_subnets_and_reports_ttl_expiry() {
    if !need_root() {
        return;
    }
    let (tb, dir) = setup("rt");
    let spec = write(
        &dir,
        "rt.yaml",
        "name: routed
nodes:
  - {name: a, host: h1, cpu: 0.1, routes: [{to: 10.2.0.0/24, via: 10.1.0.1}, {to: 10.9.0.0/16, via: 10.1.0.1}]}
  - {name: b, host: h3, cpu: 0.1, routes: [{to: 10.1.0.0/24, via: 10.2.0.1}]}
  - {name: r, type: router, host: h2}
links:
  - {name: a-r, bandwidth: 10Mbit, endpoints: [{node: a, address: 10.1.0.2/24}, {node: r, address: 10.1.0.1/24}]}
  - {name: b-r, bandwidth: 10Mbit, endpoints: [{node: b, address: 10.2.0.2/24}, {node: r, address: 10.2.0.1/24}]}
",
    );
    tb.apply(&spec);
    let (ok, v) = tb.ping("routed", "a", "10.2.0.2", "3");
    assert!(ok && v["received"] == 3, "a -> b through the router: {v}");
    assert!(v["rtt_min_ms"].as_f64().is_some());
    let (ok, v) = tb.ping("routed", "a", "10.1.0.1", "2");
    assert!(ok && v["received"] == 2, "the router answers for itself: {v}");
    // TTL 1: the router must answer with ICMP time exceeded from its a-side address.
    let out = tb.exec("routed", "a", &["tool", "ping", "10.2.0.2", "-c", "2", "-t", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["received"], 0);
    assert_eq!(v["errors"][0], "time exceeded from 10.1.0.1", "{v}");
    // No route: destination unreachable.
    let out = tb.exec("routed", "a", &["tool", "ping", "10.9.0.9", "-c", "1", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0], "destination unreachable (code 0) from 10.1.0.1", "{v}");
    wait_until("router counters", Duration::from_secs(10), || {
        let s = tb.show("routed");
        s["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["node"] == "r" && p["stats"]["ttl_exceeded"].as_u64().unwrap_or(0) >= 2)
    });
}

#[test]
fn a_table_flood_in_one_slice_leaves_another_slices_switch_alone() {
    if !need_root() {
        return;
    }
    let (tb, dir) = setup("fl");
    let spec = |name: &str| {
        write(
            &dir,
            &format!("{name}.yaml"),
            &format!(
                "name: {name}
nodes:
  - {{name: a, host: h1, cpu: 0.1}}
  - {{name: b, host: h1, cpu: 0.1}}
  - {{name: sw, type: l2switch, host: h1, params: {{max_entries: 64}}}}
links:
  - {{name: a-sw, bandwidth: 50Mbit, endpoints: [{{node: a, address: 10.7.0.1/24}}, {{node: sw}}]}}
  - {{name: b-sw, bandwidth: 50Mbit, endpoints: [{{node: b, address: 10.7.0.2/24}}, {{node: sw}}]}}
"
            ),
        )
    };
    tb.apply(&spec("noisy"));
    tb.apply(&spec("quiet"));
    let (ok, _) = tb.ping("quiet", "a", "10.7.0.2", "2");
    assert!(ok);
    let out = tb.exec("noisy", "a", &["tool", "mac-flood", "--iface", "eth0", "--count", "20000"]);
    assert!(out.status.success(), "{}", text(&out));
    // The quiet slice's switch still knows its two hosts and answers at once.
    let (ok, v) = tb.ping("quiet", "a", "10.7.0.2", "5");
    assert!(ok && v["received"] == 5, "{v}");
    assert!(v["rtt_max_ms"].as_f64().unwrap() < 50.0, "{v}");
    let stat = |slice: &str, key: &str| {
        tb.show(slice)["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["node"] == "sw")
            .map(|p| p["stats"][key].as_u64().unwrap_or(0))
    };
    wait_until("noisy switch full", Duration::from_secs(10), || stat("noisy", "table_full").unwrap_or(0) > 1000);
    assert_eq!(stat("noisy", "entries"), Some(64), "the flood fills only the noisy slice's table");
    assert_eq!(stat("quiet", "table_full"), Some(0));
    assert_eq!(stat("quiet", "entries"), Some(2), "the quiet slice's entries were not evicted");
}

#[test]
fn bad_node_parameters_are_refused_with_the_field() {
    if !need_root() {
        return;
    }
    let (tb, dir) = setup("bp");
    let base = "name: bad
nodes:
  - {name: a, host: h1, cpu: 0.1}
  - {name: b, host: h1, cpu: 0.1}
  - NODE
links:
  - {name: a-n, bandwidth: 1Mbit, endpoints: [{node: a, address: 10.0.0.1/24}, {node: n}]}
  - {name: b-n, bandwidth: 1Mbit, endpoints: [{node: b, address: 10.0.1.1/24}, {node: n}]}
";
    let cases = [
        ("{name: n, type: l2switch, params: {max_entries: 0}}", "nodes[2].params.max_entries"),
        ("{name: n, type: l2switch, params: {colour: blue}}", "nodes[2].params.colour"),
        ("{name: n, type: l2switch, params: {aging: forever}}", "nodes[2].params.aging"),
        ("{name: n, type: router}", "interface eth0 (link a-n) needs exactly one IPv4 address"),
        ("{name: n, type: warpdrive}", "nodes[2].type"),
        ("{name: n, params: {x: 1}}", "nodes[2].params.x"),
        ("{name: n, type: l2switch, cpu: 0.5}", "nodes[2].cpu: l2switch is a fast-path node type"),
        ("{name: n, type: router, memory: 1Gi}", "nodes[2].memory: router is a fast-path node type"),
    ];
    for (node, want) in cases {
        let p = write(&dir, "bad.yaml", &base.replace("NODE", node));
        let out = tb.cli(&["slice", "apply", "-f", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{node}: {err}");
    }
    let types = tb.ok(&["types"]);
    assert!(types.contains("l2switch") && types.contains("params.max_entries") && types.contains("pbb"), "{types}");
    // "no slices" is a note on stderr (like kubectl's "No resources
    // found"), so that a pipe reading stdout sees nothing.
    let out = tb.cli(&["slice", "list"]);
    assert!(out.status.success() && out.stdout.is_empty() && text(&out).contains("no slices"), "{}", text(&out));
}
