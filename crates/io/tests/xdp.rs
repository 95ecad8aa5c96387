//! AF_XDP on a real veth pair between two namespaces (needs root): carrier
//! frames are stolen into the socket, everything else (ARP, ICMP, IP fragments)
//! still reaches the kernel, and frames sent through the TX ring arrive. Also
//! the socket path's offloads on the same kind of link: a run of UDP datagrams
//! crosses the veth as one segmented send and arrives as one GRO buffer.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use netslice_io::netns;
use netslice_io::sock::{RecvInfo, Socket};
use netslice_io::xdp::{Filter, PassKey, PassMap, Xsk};

fn root() -> bool {
    netslice_io::process::need_root_for_tests()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair; removed (by name) when dropped.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new() -> Pair {
        // Unique per process and per test in it (tests may run as threads).
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("x{}n{n}", std::process::id() % 100_000);
        let p = Pair { a: format!("{tag}a"), b: format!("{tag}b") };
        netns::create(&p.a).unwrap();
        netns::create(&p.b).unwrap();
        ip(&["link", "add", "xa0", "netns", &p.a, "type", "veth", "peer", "name", "xb0", "netns", &p.b]);
        for (ns, dev, addr) in [(&p.a, "xa0", "10.77.0.1/30"), (&p.b, "xb0", "10.77.0.2/30")] {
            ip(&["-n", ns, "link", "set", dev, "mtu", "9000", "up"]);
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        }
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = netns::delete(&self.a);
        let _ = netns::delete(&self.b);
    }
}

fn mac(ns: &str, dev: &str) -> [u8; 6] {
    let out = Command::new("ip").args(["-n", ns, "-o", "link", "show", dev]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let m = text.split("link/ether ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let v: Vec<u8> = m.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    v.try_into().unwrap()
}

#[test]
fn carrier_frames_are_stolen_and_the_rest_reaches_the_kernel() {
    if !root() {
        return;
    }
    let pair = Pair::new();
    let filter = Filter { ip_protos: vec![47], udp_ports: vec![4789], ..Default::default() };
    let xsk = {
        let f = filter.clone();
        netns::run_in(&pair.b, move || Xsk::open("xb0", &f)).expect("AF_XDP on veth")
    };
    eprintln!("XDP mode: {}", xsk.mode());
    // Raw GRE socket in b: sees only what the kernel still gets.
    let raw_b = netns::run_in(&pair.b, || Socket::raw_ip(47)).unwrap();
    let raw_a = netns::run_in(&pair.a, || Socket::raw_ip(47)).unwrap();
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 0);
    // Small GRE packets: stolen.
    let small = [0x5au8; 100];
    let (sent, err) = raw_a.send_batch(&[(&small[..], dst), (&small[..], dst), (&small[..], dst)]);
    assert_eq!((sent, err.map(|e| e.to_string())), (3, None));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < 3 && Instant::now() < deadline {
        xsk.recv(64, |f| got.push(f.to_vec()));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(got.len(), 3, "three GRE frames in the AF_XDP socket");
    assert_eq!(&got[0][12..14], &[0x08, 0x00]);
    assert_eq!(got[0][23], 47);
    assert_eq!(&got[0][34..], &small[..]);
    // A 20 KB GRE packet is fragmented on the wire: the fragments reach the
    // kernel, which reassembles them for the raw socket.
    let big = vec![0xa5u8; 20_000];
    assert_eq!(raw_a.send_batch(&[(&big[..], dst)]).0, 1);
    let mut bufs = vec![vec![0u8; 70_000]; 4];
    let mut info = [RecvInfo::default(); 4];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while n == 0 && Instant::now() < deadline {
        n = raw_b.recv_batch(&mut bufs, 0, &mut info).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(n, 1, "the reassembled packet reaches the raw socket");
    assert_eq!(info[0].len, 20_020);
    // Other UDP traffic (and the ARP before it) still reaches the kernel.
    let rx = netns::run_in(&pair.b, || Socket::udp(5555)).unwrap();
    let tx = netns::run_in(&pair.a, || Socket::udp(5556)).unwrap();
    assert_eq!(tx.send_batch(&[(&b"hello"[..], SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 5555))]).0, 1);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while n == 0 && Instant::now() < deadline {
        n = rx.recv_batch(&mut bufs, 0, &mut info).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!((n, &bufs[0][..5]), (1, &b"hello"[..]), "UDP to another port passes the program");
    // Frames sent through the TX ring arrive at the other side's raw socket.
    let (ma, mb) = (mac(&pair.a, "xa0"), mac(&pair.b, "xb0"));
    let payload = vec![0x33u8; 200];
    let queued = xsk.send(5, |_, frame| {
        frame[0..6].copy_from_slice(&ma);
        frame[6..12].copy_from_slice(&mb);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ipb = &mut frame[14..34];
        ipb.copy_from_slice(&[0x45, 0, 0, 0, 0, 1, 0, 0, 64, 47, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1]);
        ipb[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        let c = !netslice_wire_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        frame[34..34 + payload.len()].copy_from_slice(&payload);
        34 + payload.len()
    });
    assert_eq!(queued, 5);
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen < 5 && Instant::now() < deadline {
        let n = raw_a.recv_batch(&mut bufs, 0, &mut info).unwrap_or(0);
        seen += (0..n).filter(|&i| info[i].len == 220 && bufs[i][20..220] == payload[..]).count();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seen, 5, "frames sent through the TX ring arrive");
    drop(xsk);
    // Detached with the socket: GRE reaches the kernel again.
    assert_eq!(raw_a.send_batch(&[(&small[..], dst)]).0, 1);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while n == 0 && Instant::now() < deadline {
        n = raw_b.recv_batch(&mut bufs, 0, &mut info).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(n, 1, "after the socket closes the program is gone");
}

fn netslice_wire_checksum(b: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[test]
fn a_udp_run_crosses_a_veth_as_one_segmented_send_and_one_gro_buffer() {
    if !root() {
        return;
    }
    let pair = Pair::new();
    let mut rx = netns::run_in(&pair.b, || Socket::udp(5600)).unwrap();
    rx.enable_gro().unwrap();
    let tx = netns::run_in(&pair.a, || Socket::udp(5601)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..40u8).map(|k| vec![k; 1400]).chain([vec![0xee; 99]]).collect();
    let segs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 5600);
    // The first send may wait for ARP; repeat the run until it arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut bufs = vec![vec![0u8; 70_000]; 4];
    let mut info = [RecvInfo::default(); 4];
    loop {
        assert!(Instant::now() < deadline, "no run arrived whole");
        let (sent, err) = tx.send_segments(&segs, &[(0..segs.len(), dst)]);
        assert!(err.is_none() && sent == segs.len(), "{sent}: {err:?}");
        assert!(tx.segments_ok(), "the kernel took the segmented send");
        std::thread::sleep(Duration::from_millis(50));
        let Ok(n) = rx.recv_batch(&mut bufs, 0, &mut info) else { continue };
        let whole = (0..n).find(|&i| info[i].len == 40 * 1400 + 99);
        if let Some(i) = whole {
            assert_eq!(info[i].seg, 1400, "one GRO buffer of 1400-byte datagrams");
            let got: Vec<Vec<u8>> = info[i].datagrams(0).map(|r| bufs[i][r].to_vec()).collect();
            assert_eq!(got, payloads);
            return;
        }
    }
}

/// A GRE header with key `key` (and a checksum field first with `csum`),
/// then a marker byte.
fn gre(key: Option<u32>, csum: bool, marker: u8) -> Vec<u8> {
    let flags: u16 = if key.is_some() { 0x2000 } else { 0 } | if csum { 0x8000 } else { 0 };
    let mut p = flags.to_be_bytes().to_vec();
    p.extend_from_slice(&0x6558u16.to_be_bytes());
    if csum {
        p.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        p.extend_from_slice(&k.to_be_bytes());
    }
    p.extend_from_slice(&[marker; 60]);
    p
}

/// Markers of the GRE packets waiting in raw socket `s` (its packets start at
/// the IPv4 header), read until nothing came for 300 ms.
fn markers_raw(s: &Socket) -> Vec<u8> {
    let mut bufs = vec![vec![0u8; 2048]; 16];
    let mut info = [RecvInfo::default(); 16];
    let mut got = Vec::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(300) {
        match s.recv_batch(&mut bufs, 0, &mut info) {
            Ok(n) if n > 0 => {
                got.extend((0..n).map(|i| bufs[i][info[i].len - 1]));
                quiet = Instant::now();
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    got.sort();
    got
}

/// Markers of the frames in the AF_XDP socket, read the same way.
fn markers_xsk(x: &Xsk) -> Vec<u8> {
    let mut got = Vec::new();
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(300) {
        if x.recv(64, |f| got.push(f[f.len() - 1])) > 0 {
            quiet = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    got.sort();
    got
}

/// An AF_XDP socket on `xb0` in namespace `ns` stealing `filter`'s frames
/// except those whose label is in the returned pass map (`keys` at first).
fn xsk_passing(ns: &str, keys: &[PassKey], filter: Filter) -> (std::sync::Arc<PassMap>, Xsk) {
    let pass = std::sync::Arc::new(PassMap::new().unwrap());
    pass.set(&keys.iter().copied().collect()).unwrap();
    let xsk = netns::run_in(ns, {
        let pass = pass.clone();
        move || Xsk::open_passing("xb0", &filter, Some(&pass))
    })
    .expect("AF_XDP on veth");
    (pass, xsk)
}

#[test]
fn gre_keys_split_between_a_dedicated_socket_and_the_shared_paths() {
    if !root() {
        return;
    }
    let pair = Pair::new();
    let dedicated = netns::run_in(&pair.b, || Socket::raw_ip(47)).unwrap();
    dedicated.filter_gre_keys(&[7, 9], true).unwrap();
    let shared = netns::run_in(&pair.b, || Socket::raw_ip(47)).unwrap();
    shared.filter_gre_keys(&[7, 9], false).unwrap();
    let tx = netns::run_in(&pair.a, || Socket::raw_ip(47)).unwrap();
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 0);
    // Markers: 1-2 key 7 (2 with a checksum field), 3 key 9, 4 key 8, 5 no key.
    let pkts = [gre(Some(7), false, 1), gre(Some(7), true, 2), gre(Some(9), false, 3), gre(Some(8), false, 4)];
    let pkts: Vec<Vec<u8>> = pkts.into_iter().chain([gre(None, false, 5)]).collect();
    let send = || {
        let msgs: Vec<(&[u8], SocketAddrV4)> = pkts.iter().map(|p| (p.as_slice(), dst)).collect();
        assert_eq!(tx.send_batch(&msgs).0, pkts.len());
    };

    // Sockets only: the filters split the keys.
    send();
    assert_eq!(markers_raw(&dedicated), [1, 2, 3], "the dedicated socket keeps its keys");
    assert_eq!(markers_raw(&shared), [4, 5], "the shared socket gets the rest");

    // With AF_XDP: what is not in the pass map is stolen; keys 7 and 9 pass
    // to the kernel, where the filters hand them to the dedicated socket.
    let filter = Filter { ip_protos: vec![47], ..Default::default() };
    let (pass, xsk) = xsk_passing(&pair.b, &[PassKey::Gre(7), PassKey::Gre(9)], filter);
    send();
    assert_eq!(markers_xsk(&xsk), [4, 5], "AF_XDP steals the other keys");
    assert_eq!(markers_raw(&dedicated), [1, 2, 3], "the passed keys reach the dedicated socket");
    assert_eq!(markers_raw(&shared), Vec::<u8>::new(), "and only it");

    // Keys leave the map (and the filter): everything is stolen again.
    pass.set(&[PassKey::Gre(9)].into()).unwrap();
    dedicated.filter_gre_keys(&[9], true).unwrap();
    shared.filter_gre_keys(&[9], false).unwrap();
    send();
    assert_eq!(markers_xsk(&xsk), [1, 2, 4, 5]);
    assert_eq!(markers_raw(&dedicated), [3]);
    pass.set(&Default::default()).unwrap();
    shared.filter_gre_keys(&[], false).unwrap();
    send();
    assert_eq!(markers_xsk(&xsk), [1, 2, 3, 4, 5]);
    drop(xsk);
    send();
    assert_eq!(markers_raw(&shared), [1, 2, 3, 4, 5], "no filter: the shared socket gets everything");
    assert_eq!(markers_raw(&dedicated), [3]);
}

/// A VXLAN-like datagram: 8-byte header with `vni`, then a marker byte.
fn vxlan(vni: u32, marker: u8) -> Vec<u8> {
    let mut p = vec![0x08, 0, 0, 0];
    p.extend_from_slice(&(vni << 8).to_be_bytes());
    p.extend_from_slice(&[marker; 40]);
    p
}

#[test]
fn vxlan_labels_steer_datagrams_between_sockets_of_one_port() {
    if !root() {
        return;
    }
    use netslice_io::reuseport::ReuseportSteer;
    let pair = Pair::new();
    let (shared, dedicated, steer) = netns::run_in(&pair.b, || {
        let shared = Socket::udp_reuseport(4789)?;
        let steer = ReuseportSteer::new(4)?;
        steer.set_socket(0, &shared)?;
        steer.attach(&shared)?;
        let dedicated = Socket::udp_reuseport(4789)?;
        Ok((shared, dedicated, steer))
    })
    .unwrap();
    let tx = netns::run_in(&pair.a, || Socket::udp(4790)).unwrap();
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 4789);
    // Markers: 1 VNI 7, 2 VNI 9, 3 VNI 8, 4 a datagram too short for a header.
    let pkts = [vxlan(7, 1), vxlan(9, 2), vxlan(8, 3), vec![4; 5]];
    let send = || {
        let msgs: Vec<(&[u8], SocketAddrV4)> = pkts.iter().map(|p| (p.as_slice(), dst)).collect();
        assert_eq!(tx.send_batch(&msgs).0, pkts.len());
    };
    let markers_udp = |s: &Socket| {
        let mut got = markers_raw(s);
        got.dedup();
        got
    };

    // Registered but no label yet: everything to the shared socket (index 0),
    // none spread by flow hash to the other member of the group.
    steer.set_socket(1, &dedicated).unwrap();
    send();
    assert_eq!(markers_udp(&shared), [1, 2, 3, 4]);
    assert_eq!(markers_udp(&dedicated), Vec::<u8>::new());

    // VNIs 7 and 9 to socket 1.
    steer.set_labels(&[(7, 1), (9, 1)].into()).unwrap();
    send();
    assert_eq!(markers_udp(&dedicated), [1, 2], "the dedicated socket gets its VNIs");
    assert_eq!(markers_udp(&shared), [3, 4], "the shared socket the rest");

    // With AF_XDP: VNIs in the pass map reach the kernel (and the group).
    let filter = Filter { udp_ports: vec![4789], udp_labels: vec![(4789, 4)], ..Default::default() };
    let keys = [PassKey::Udp { port: 4789, label: 7 }, PassKey::Udp { port: 4789, label: 9 }];
    let (_pass, xsk) = xsk_passing(&pair.b, &keys, filter);
    send();
    assert_eq!(markers_xsk(&xsk), [3, 4], "AF_XDP steals the other datagrams");
    assert_eq!(markers_udp(&dedicated), [1, 2], "the passed VNIs reach the dedicated socket");
    assert_eq!(markers_udp(&shared), Vec::<u8>::new());
    drop(xsk);

    // A label whose socket is gone falls back to the shared socket.
    steer.clear_socket(1).unwrap();
    send();
    assert_eq!(markers_udp(&shared), [1, 2, 3, 4]);
    assert_eq!(markers_udp(&dedicated), Vec::<u8>::new());
}
