//! `netslice tool relay` (the I/O floor of scripts/bench-floor.py) moves real
//! frames between real interfaces: TAP to TAP, AF_XDP socket to AF_XDP socket
//! on veths, and TAP to UDP socket and back, in namespaces of the test's own.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{EXE, need_root, text, unique_name};

/// Namespaces and relay processes of one test, removed by name and PID on drop.
struct Scene {
    netns: Vec<String>,
    relays: Vec<Child>,
}

impl Scene {
    fn new(tags: &[&str]) -> Scene {
        let base = unique_name("rl");
        let netns: Vec<String> = tags.iter().map(|t| format!("{base}{t}")).collect();
        for n in &netns {
            ip(&["netns", "add", n]);
        }
        Scene { netns, relays: Vec::new() }
    }

    fn ns(&self, i: usize) -> &str {
        &self.netns[i]
    }

    fn relay(&mut self, ends: &[String]) {
        let mut child = Command::new(EXE)
            .args(["tool", "relay"])
            .args(ends)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let out = child.wait_with_output().unwrap();
            panic!("relay {ends:?} did not start: {}", text(&out));
        }
        self.relays.push(child);
    }

    fn stop_relays(&mut self) {
        for c in &mut self.relays {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.relays.clear();
    }

    /// Addresses 10.66.0.1 and .2 on `x0` in namespaces 0 and 1, offloads off
    /// (an AF_XDP ring takes no partial checksums).
    fn address_slivers(&self) {
        for (i, a) in [(0, "10.66.0.1/24"), (1, "10.66.0.2/24")] {
            let ns = self.ns(i);
            ip(&["-n", ns, "addr", "add", a, "dev", "x0"]);
            ip(&["-n", ns, "link", "set", "x0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            let st = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", "x0", "tx", "off", "tso", "off", "gso", "off"])
                .status()
                .unwrap();
            assert!(st.success(), "ethtool in {ns}");
        }
    }

    fn tool(&self, i: usize, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(i), EXE, "tool"]).args(args);
        c
    }

    fn ping_ok(&self) -> bool {
        self.tool(0, &["ping", "10.66.0.2", "-c", "3", "-i", "0.1", "-W", "0.5"]).status().unwrap().success()
    }

    /// Sends `n` paced datagrams from namespace 0 to 1; how many arrived.
    fn udp(&self, n: u64) -> u64 {
        let sink = self
            .tool(1, &["udp-sink", "--listen", "0.0.0.0:9999", "--seconds", "3", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let out = self
            .tool(0, &["udp-send", "10.66.0.2:9999", "--count", &n.to_string(), "--rate", "50Mbit", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "udp-send: {}", text(&out));
        let got = sink.wait_with_output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&got.stdout).expect("sink JSON");
        assert_eq!(v["bad"], 0, "corrupted datagrams: {v}");
        v["packets"].as_u64().unwrap()
    }
}

impl Scene {
    /// Starts a relay of `ends` (TAPs are created by it, so the slivers are
    /// addressed after it starts; veths exist before): pings and 2000
    /// datagrams cross it, and pings stop when it stops.
    fn carries(&mut self, ends: &[String], veths: bool) {
        if veths {
            self.address_slivers();
        }
        self.relay(ends);
        if !veths {
            self.address_slivers();
        }
        assert!(self.ping_ok(), "no ping across the relay {ends:?}");
        assert_eq!(self.udp(2000), 2000, "datagrams lost across {ends:?}");
        self.stop_relays();
        assert!(!self.ping_ok(), "pings crossed without the relay {ends:?}");
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.stop_relays();
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", text(&out));
}

#[test]
fn relay_carries_frames_between_taps_af_xdp_sockets_and_udp_sockets() {
    if !need_root() {
        return;
    }
    // TAP to TAP: the relay creates the TAPs in the slivers' namespaces.
    let mut s = Scene::new(&["a", "b"]);
    let ends = [format!("tap:{}:x0", s.ns(0)), format!("tap:{}:x0", s.ns(1))];
    s.carries(&ends, false);
    drop(s);

    // AF_XDP to AF_XDP on veths into a middle namespace.
    let mut s = Scene::new(&["a", "b", "t"]);
    for (i, end) in [(0, "pa"), (1, "pb")] {
        ip(&["link", "add", end, "netns", s.ns(2), "type", "veth", "peer", "name", "x0", "netns", s.ns(i)]);
        ip(&["-n", s.ns(2), "link", "set", end, "up"]);
    }
    let ends = [format!("xsk:{}:pa", s.ns(2)), format!("xsk:{}:pb", s.ns(2))];
    s.carries(&ends, true);
    drop(s);

    // TAP -> UDP -> UDP -> TAP: two relays exchanging frames as datagrams
    // over the loopback of a middle namespace.
    let mut s = Scene::new(&["a", "b", "m"]);
    ip(&["-n", s.ns(2), "link", "set", "lo", "up"]);
    let m = s.ns(2).to_string();
    s.relay(&[format!("tap:{}:x0", s.ns(0)), format!("udp:{m}:5000:127.0.0.1:5001")]);
    let ends = [format!("udp:{m}:5001:127.0.0.1:5000"), format!("tap:{}:x0", s.ns(1))];
    s.carries(&ends, false);
}

#[test]
fn relay_refuses_bad_endpoints_with_a_clear_error() {
    for (args, want) in [
        (vec!["raw:x:y", "tap:x:y"], "is not tap, xsk or udp"),
        (vec!["udp:x:5000", "tap:x:y"], "expected udp:NAMESPACE:PORT:PEER_IP:PEER_PORT"),
        (vec!["tap:x", "tap:x:y"], "expected tap:NAMESPACE:IFNAME"),
        (vec!["tap:a:x", "tap:b:x", "tap:c:x"], "in pairs"),
    ] {
        let out = Command::new(EXE).args(["tool", "relay"]).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{args:?}: {}", text(&out));
    }
    // A namespace that does not exist: named in the error, nothing left behind.
    if need_root() {
        let ns = unique_name("rlmissing");
        let out = Command::new(EXE).args(["tool", "relay", &format!("tap:{ns}:x0"), "tap:other:x0"]).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(&ns), "{}", text(&out));
    }
}
