//! Permanent neighbour entries for substrate peers, in a real namespace (needs
//! root): written when the local interface carries the planned MAC, replaced
//! when the peer's MAC changes, removed when the link leaves the config, and
//! not written when the interface's MAC is not the planned one.

use std::net::Ipv4Addr;
use std::process::Command;

use netslice_agent::neigh::Neighbours;
use netslice_io::netns;
use netslice_model::Bandwidth;
use netslice_model::api::UnderlayLink;

fn root() -> bool {
    netslice_io::process::need_root_for_tests()
}

/// A namespace of its own, deleted (by name) when dropped.
struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip").arg("-n").arg(ns).args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link(local_mac: &str, peer_mac: &str) -> UnderlayLink {
    UnderlayLink {
        name: "h1-t1".into(),
        ifname: "nb0".into(),
        local: Ipv4Addr::new(10, 78, 0, 1),
        peer_host: "t1".into(),
        peer: Ipv4Addr::new(10, 78, 0, 2),
        local_mac: local_mac.parse().unwrap(),
        peer_mac: peer_mac.parse().unwrap(),
        mtu: 9000,
        bandwidth: Bandwidth(10_000_000_000),
        delay: None,
        loss: None,
    }
}

#[test]
fn peers_get_permanent_entries_that_follow_the_config() {
    if !root() {
        return;
    }
    let ns = Ns(format!("nb{}", std::process::id() % 100_000));
    netns::create(&ns.0).unwrap();
    ip(&ns.0, &["link", "add", "nb0", "address", "06:00:00:00:00:01", "type", "veth", "peer", "name", "nb1"]);
    ip(&ns.0, &["link", "set", "nb0", "up"]);
    ip(&ns.0, &["addr", "add", "10.78.0.1/30", "dev", "nb0"]);
    let table = || ip(&ns.0, &["neigh", "show", "dev", "nb0"]);
    let mut n = Neighbours::default();

    assert!(n.sync(Some(&ns.0), &[link("06:00:00:00:00:01", "06:00:00:00:00:02")]).is_empty());
    let t = table();
    assert!(t.contains("10.78.0.2 lladdr 06:00:00:00:00:02 PERMANENT"), "{t}");

    // The peer's MAC changes in the config: the entry follows.
    assert!(n.sync(Some(&ns.0), &[link("06:00:00:00:00:01", "06:00:00:00:00:03")]).is_empty());
    let t = table();
    assert!(t.contains("10.78.0.2 lladdr 06:00:00:00:00:03 PERMANENT"), "{t}");

    // The link leaves the config: the entry goes.
    assert!(n.sync(Some(&ns.0), &[]).is_empty());
    assert!(!table().contains("10.78.0.2"), "{}", table());

    // The interface does not carry the planned MAC: the peer is left to ARP.
    assert!(n.sync(Some(&ns.0), &[link("06:00:00:00:00:09", "06:00:00:00:00:02")]).is_empty());
    assert!(!table().contains("PERMANENT"), "{}", table());
}
