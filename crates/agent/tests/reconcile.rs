//! The control thread reconciles: applying the same config again restarts
//! no thread, reopens no socket and loses no frame queued in a delay line;
//! whatever leaves the config is stopped. Real namespaces, a real sliver, a
//! real veth and real GRE packets (needs root).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netslice_agent::control::{Control, Setup};
use netslice_agent::xsk::IoMode;
use netslice_dataplane::Registry;
use netslice_io::netns;
use netslice_io::sock::Socket;
use netslice_model::api::{
    Action, Direction, InterfaceConfig, LinkQos, NodeConfig, PortRule, SliverConfig, UnderlayLink,
};
use netslice_model::{Bandwidth, Isolation, Memory, Micros};

fn root() -> bool {
    netslice_io::process::need_root_for_tests()
}

/// Namespaces of this test, deleted (by name) when dropped.
struct Names(Vec<String>);

impl Drop for Names {
    fn drop(&mut self) {
        for n in &self.0 {
            netslice_io::sliver::kill_processes(n, false);
            let _ = netns::delete(n);
        }
    }
}

fn ip(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip").arg("-n").arg(ns).args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mac_of(ns: &str, dev: &str) -> String {
    netslice_io::cmd::link_mac(Some(ns), dev).unwrap()
}

/// The agent threads of this process, by thread id.
fn threads() -> BTreeSet<(u32, String)> {
    let agent = ["rx-", "xsk-", "egress-timer", "ports-", "worker-", "w-"];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?.trim().to_string();
            agent.iter().any(|p| name.starts_with(p)).then_some((tid, name))
        })
        .collect()
}

fn config(tag: &str, local_mac: &str, peer_mac: &str, sliver: bool) -> NodeConfig {
    let qos =
        LinkQos { rate: 100_000_000, ceil: 100_000_000, burst: 64 * 1024, isolation: Isolation::Shaped, frame_size: 0 };
    let underlay = UnderlayLink {
        name: "h1-t1".into(),
        ifname: format!("{tag}0"),
        local: Ipv4Addr::new(10, 79, 0, 1),
        peer_host: "t1".into(),
        peer: Ipv4Addr::new(10, 79, 0, 2),
        local_mac: local_mac.parse().unwrap(),
        peer_mac: peer_mac.parse().unwrap(),
        mtu: 1500,
        bandwidth: Bandwidth(1_000_000_000),
        delay: Some(Micros(400_000)),
        loss: None,
    };
    let slivers = if sliver {
        vec![SliverConfig {
            slice: "s".into(),
            node: "a".into(),
            node_type: "slowpath".into(),
            fast_path: false,
            params: serde_json::Value::Null,
            netns: Some(format!("{tag}.s.a")),
            cpu: 0.5,
            memory: Memory(256 << 20),
            ip_forward: false,
            interfaces: vec![InterfaceConfig {
                name: "eth0".into(),
                port: netslice_model::PortNo(1),
                mac: "02:00:00:00:00:01".parse().unwrap(),
                mtu: 1400,
                addresses: vec!["10.0.0.1/24".parse().unwrap()],
                link: "ab".into(),
            }],
            routes: Vec::new(),
        }]
    } else {
        Vec::new()
    };
    let ports = if sliver {
        vec![PortRule {
            port: netslice_model::PortNo(1),
            slice: "s".into(),
            link: "ab".into(),
            direction: Direction::Forward,
            action: Action::Send {
                link_type: netslice_model::LinkType("gre".into()),
                label: netslice_model::Label(4242),
                underlay: "h1-t1".into(),
                next_hop: Ipv4Addr::new(10, 79, 0, 2),
            },
            qos,
        }]
    } else {
        Vec::new()
    };
    NodeConfig {
        host: "h1".into(),
        substrate: tag.into(),
        revision: 1,
        epoch: "e".into(),
        underlay: if sliver { vec![underlay] } else { Vec::new() },
        slivers,
        ports,
        labels: Vec::new(),
        slices: Default::default(),
        taps: Vec::new(),
    }
}

#[test]
fn reapplying_a_config_restarts_nothing_and_loses_nothing_and_what_leaves_stops() {
    if !root() {
        return;
    }
    let tag = format!("rc{}", std::process::id() % 100_000);
    let (host, peer) = (format!("{tag}.h1"), format!("{tag}.t1"));
    let names = Names(vec![format!("{tag}.s.a"), host.clone(), peer.clone()]);
    netns::create(&host).unwrap();
    netns::create(&peer).unwrap();
    let (a, b) = (format!("{tag}0"), format!("{tag}1"));
    ip(&host, &["link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &peer]);
    ip(&host, &["addr", "add", "10.79.0.1/30", "dev", &a]);
    ip(&host, &["link", "set", &a, "up"]);
    ip(&peer, &["addr", "add", "10.79.0.2/30", "dev", &b]);
    ip(&peer, &["link", "set", &b, "up"]);
    let (amac, bmac) = (mac_of(&host, &a), mac_of(&peer, &b));
    // What arrives at the peer: GRE packets on a raw socket there.
    let gre = netns::run_in(&peer, || Socket::raw_ip(47)).unwrap();

    let state = tempfile::tempdir().unwrap();
    let setup = Setup {
        netns: Some(host.clone()),
        buf_len: 70_000,
        io: IoMode::Sockets,
        workers: 0,
        state_dir: state.path().to_path_buf(),
        cpu_shares: true,
    };
    let mut control = Control::start(Arc::new(Registry::builtin()), setup).unwrap();
    let cfg = config(&tag, &amac, &bmac, true);
    assert_eq!(control.apply(&cfg), Vec::new());
    let status = control.status();
    let (started, opened) = (status.load().threads_started, status.load().opened);
    // (A new thread names itself as it starts.)
    let deadline = Instant::now() + Duration::from_secs(2);
    while threads().len() < status.load().threads.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = threads();
    assert!(before.iter().any(|(_, n)| n.starts_with("ports-")), "{before:?}");

    // 20 datagrams from the sliver, into a delay line of 400 ms ...
    let sliver = format!("{tag}.s.a");
    ip(&sliver, &["neigh", "replace", "10.0.0.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0"]);
    let sock = netns::run_in(&sliver, || {
        UdpSocket::bind("10.0.0.1:0").map_err(|e| netslice_io::Error::Os { what: "bind".into(), source: e })
    })
    .unwrap();
    let sent_at = Instant::now();
    for i in 0..20u8 {
        sock.send_to(&[i; 100], SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    // ... while the same config is applied twice more.
    assert_eq!(control.apply(&cfg), Vec::new());
    assert_eq!(control.apply(&cfg), Vec::new());
    // (The re-applies must fall inside the delay for the test to mean
    // anything; they take milliseconds.)
    assert!(sent_at.elapsed() < Duration::from_millis(350), "re-applying took too long for this test");
    assert_eq!(status.load().threads_started, started, "a thread was restarted");
    assert_eq!(status.load().opened, opened, "a socket or device was reopened");
    assert_eq!(threads(), before, "thread ids changed");

    // Every datagram crosses, none before its delay.
    let mut got = 0;
    let mut bufs = vec![vec![0u8; 2048]; 32];
    let mut info = [netslice_io::sock::RecvInfo::default(); 32];
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < 20 && Instant::now() < deadline {
        match gre.recv_batch(&mut bufs, 0, &mut info) {
            Ok(n) => {
                if got == 0 {
                    assert!(sent_at.elapsed() >= Duration::from_millis(400), "arrived before its delay");
                }
                got += n;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert_eq!(got, 20, "frames queued in the delay line were lost");

    // Everything leaves the config: the sliver, its poller, the link's line.
    assert_eq!(control.apply(&config(&tag, &amac, &bmac, false)), Vec::new());
    let after = threads();
    assert!(!after.iter().any(|(_, n)| n.starts_with("ports-")), "{after:?}");
    assert!(!netns::exists(&sliver), "the sliver's namespace is gone");
    control.stop();
    assert!(threads().is_empty(), "{:?}", threads());
    drop(names);
}
