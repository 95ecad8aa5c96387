//! End-to-end tests: real processes (manager, agents, tools) in real network
//! namespaces, real packets through the userspace redirector.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn example() -> std::path::PathBuf {
    repo_file("examples/substrate.yaml")
}

#[test]
fn overlapping_slices_carry_ping_and_tcp_and_stay_isolated() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("iso", &example());
    tb.apply(&repo_file("examples/red.yaml"));
    tb.apply(&repo_file("examples/blue.yaml"));
    // The agents use the substrate I/O this run asked for (scripts/test.sh runs
    // these tests with the default, AF_XDP, and again with the sockets).
    let hosts: serde_json::Value = serde_json::from_str(&tb.ok(&["node", "list", "--json"])).unwrap();
    let want = if std::env::var("NETSLICE_IO").as_deref() == Ok("sockets") {
        "raw-ip+udp(gso,gro)+af_packet"
    } else {
        "af_xdp("
    };
    for h in hosts.as_array().unwrap() {
        assert!(h["io_backend"].as_str().unwrap_or("").starts_with(want), "{h}");
    }

    // Ping in each slice, across the transit host and (red) through a routing sliver.
    let (ok, v) = tb.ping("red", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "red a -> b: {v}");
    let (ok, v) = tb.ping("red", "a", "10.0.1.2", "3");
    assert!(ok && v["received"] == 3, "red a -> c: {v}");
    let (ok, v) = tb.ping("blue", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "blue a -> b: {v}");

    // TCP in each slice to the same address and port: each reaches its own server.
    let mut servers = Vec::new();
    for slice in ["red", "blue"] {
        servers.push(tb.spawn_exec(slice, "b", &["tool", "tcp-server", "--banner", slice]));
    }
    std::thread::sleep(Duration::from_millis(500));
    for slice in ["red", "blue"] {
        let out = tb.exec(
            slice,
            "a",
            &["tool", "tcp-client", "10.0.0.2:5201", "--seconds", "1", "--expect-banner", slice, "--json"],
        );
        assert!(out.status.success(), "tcp in {slice}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["bytes"].as_u64().unwrap() > 1_000_000, "tcp in {slice} moved too little: {v}");
    }

    // TCP crossed as super-frames: every host on the path counts the same
    // segments (the transit host too, which has no sliver to learn the MTU
    // from), but for what a host dropped beyond red's share of forwarding
    // work when CPU ran short (TCP runs past its 100 Mbit/s guarantee up to
    // its ceiling: the cores run short, and that excess is what goes).
    wait_until_or(
        Duration::from_secs(10),
        || {
            let drop_at = |h: &str| tb.drops("red", "ab", "forward", h, "cpu");
            let i = tb.counter("red", "ab", "forward", "h1");
            let t = tb.counter("red", "ab", "forward", "t1");
            i > 1000 && i - drop_at("h1") == t && t - drop_at("t1") == tb.counter("red", "ab", "forward", "h2")
        },
        || format!("red's ab counters to agree along the path: {}", tb.counters_text("red")),
    );

    // Isolation: a UDP sink in red's c counts what arrives. Blue's a sends 200
    // datagrams toward 10.0.1.2 (its route points into blue); red's a sends 20
    // (the positive control). Exactly red's 20 must arrive.
    let sink = tb.spawn_exec("red", "c", &["tool", "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", "4", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    let blue_ab_before = tb.counter("blue", "ab", "forward", "h1");
    let out = tb.exec("blue", "a", &["tool", "udp-send", "10.0.1.2:9999", "--size", "100", "--count", "200", "--json"]);
    assert!(out.status.success(), "blue udp-send: {}", text(&out));
    let out = tb.exec("red", "a", &["tool", "udp-send", "10.0.1.2:9999", "--size", "100", "--count", "20", "--json"]);
    assert!(out.status.success(), "red udp-send: {}", text(&out));
    let out = sink.wait_with_output().unwrap();
    assert!(out.status.success(), "sink: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 20, "red's c must receive exactly red's 20 datagrams: {v}");
    let (ok, v) = tb.ping("blue", "a", "10.0.1.2", "3");
    assert!(!ok && v["received"] == 0, "blue reached red's c: {v}");
    // Blue's datagrams did leave on blue's own link (counters show where they went).
    wait_until("blue's counters to include its 200 datagrams", Duration::from_secs(10), || {
        tb.counter("blue", "ab", "forward", "h1") >= blue_ab_before + 200
    });

    for mut s in servers {
        let _ = s.kill();
        let _ = s.wait();
    }
    tb.ok(&["slice", "delete", "blue"]);
    let list = tb.ok(&["slice", "list"]);
    assert!(list.contains("red") && !list.contains("blue"), "{list}");
    // blue's slivers are gone from the machine.
    assert!(!tb.namespaces().iter().any(|n| n.contains(".blue.")), "{:?}", tb.namespaces());
}

#[test]
fn agent_kill_and_manager_restart_lose_nothing() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("rst", &example());
    tb.apply(&repo_file("examples/red.yaml"));
    let mut server = tb.spawn_exec("red", "b", &["tool", "tcp-server", "--banner", "red"]);
    std::thread::sleep(Duration::from_millis(500));
    let client = tb.spawn_exec(
        "red",
        "a",
        &["tool", "tcp-client", "10.0.0.2:5201", "--seconds", "8", "--expect-banner", "red", "--json"],
    );
    // Kill the transit agent in the middle of the transfer, then restart it.
    std::thread::sleep(Duration::from_secs(2));
    let before = tb.counter("red", "ab", "forward", "t1");
    assert!(before > 0, "transfer was flowing through t1 before the kill");
    kill9(tb.agent_pid("t1"));
    std::thread::sleep(Duration::from_secs(1));
    tb.ok(&["testbed", "restart", &tb.name, "--agent", "t1"]);
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "transfer across the agent restart: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["bytes"].as_u64().unwrap() > 1_000_000, "{v}");
    // The slice works again without being re-applied, and t1 forwards again.
    let (ok, v) = tb.ping("red", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "after agent restart: {v}");
    wait_until("t1 reporting again", Duration::from_secs(10), || tb.counter("red", "ab", "forward", "t1") > 0);

    // Manager: kill -9, the data plane keeps carrying traffic, restart, state is back.
    kill9(tb.manager_pid());
    let (ok, v) = tb.ping("red", "a", "10.0.1.2", "3");
    assert!(ok && v["received"] == 3, "with the manager down: {v}");
    tb.ok(&["testbed", "restart", &tb.name, "--manager"]);
    wait_until("red listed as ready", Duration::from_secs(20), || {
        tb.cli(&["slice", "list"]).stdout.windows(5).any(|w| w == b"ready")
    });
    let list = tb.ok(&["slice", "list"]);
    assert!(list.contains("red"), "{list}");
    let (ok, v) = tb.ping("red", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "after manager restart: {v}");
    let out = tb.exec("red", "a", &["tool", "tcp-client", "10.0.0.2:5201", "--seconds", "1", "--expect-banner", "red"]);
    assert!(out.status.success(), "tcp after manager restart: {}", text(&out));
    let _ = server.kill();
    let _ = server.wait();
}

/// Review item 10: a crashed agent stopped its host's traffic until someone
/// restarted it (5.2 s of lost pings). The testbed's supervisor restarts it.
#[test]
fn crashed_daemons_are_restarted_within_a_second() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("sup", &example());
    tb.apply(&repo_file("examples/red.yaml"));
    let alive = |pid: i32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    // Pings every 50 ms across t1 while its agent is killed.
    let pinger = tb.spawn_exec("red", "a", &["tool", "ping", "10.0.0.2", "-c", "80", "-i", "0.05", "--json"]);
    std::thread::sleep(Duration::from_millis(800));
    let old = tb.agent_pid("t1");
    kill9(old);
    let t = Instant::now();
    wait_until("a new agent for t1", Duration::from_secs(5), || {
        let pid = tb.agent_pid("t1");
        pid != old && alive(pid)
    });
    let restarted = t.elapsed();
    eprintln!("agent of t1 restarted {restarted:?} after kill -9");
    assert!(restarted < Duration::from_secs(1), "{restarted:?}");
    let out = pinger.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let lost = v["sent"].as_u64().unwrap_or(0).saturating_sub(v["received"].as_u64().unwrap_or(0));
    eprintln!("pings lost across the crash: {lost} of {} (50 ms apart)", v["sent"]);
    assert!(v["sent"] == 80 && lost * 50 < 2000, "traffic back within 2 s of the crash: {v} {}", text(&out));
    let status = tb.ok(&["testbed", "status"]);
    let line = status.lines().find(|l| l.trim_start().starts_with("t1 ")).unwrap_or_default();
    assert!(line.contains("restarts 1") && line.contains("killed by signal 9 (SIGKILL)"), "{status}");
    // The manager too, at the same address; state is back.
    let old = tb.manager_pid();
    kill9(old);
    let t = Instant::now();
    wait_until("a new manager", Duration::from_secs(5), || {
        let pid = tb.manager_pid();
        pid != old && alive(pid)
    });
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    wait_until("red listed again", Duration::from_secs(15), || {
        tb.cli(&["slice", "list"]).stdout.windows(3).any(|w| w == b"red")
    });
    // A restart someone asks for is not a crash.
    tb.ok(&["testbed", "restart", &tb.name, "--agent", "h1"]);
    let status = tb.ok(&["testbed", "status"]);
    let line = status.lines().find(|l| l.trim_start().starts_with("h1 ")).unwrap_or_default();
    assert!(line.contains("restarts 0") && line.contains("stopped by `testbed restart`"), "{status}");
    wait_until("a reaching b after h1's restart", Duration::from_secs(10), || {
        let (ok, v) = tb.ping("red", "a", "10.0.0.2", "3");
        ok && v["received"] == 3
    });
    // A killed supervisor: the daemons keep running; the next restart starts
    // a new one, which adopts the live daemons and starts the dead one.
    let sup = tb.state()["supervisor"]["pid"].as_i64().unwrap() as i32;
    kill9(sup);
    let h2 = tb.agent_pid("h2");
    let h3 = tb.agent_pid("h3");
    kill9(h2);
    std::thread::sleep(Duration::from_millis(500));
    let status = tb.ok(&["testbed", "status"]);
    assert!(status.contains("supervisor pid") && status.contains("STOPPED"), "{status}");
    tb.ok(&["testbed", "restart", &tb.name, "--agent", "t1"]);
    wait_until("h2 started again", Duration::from_secs(5), || alive(tb.agent_pid("h2")));
    assert_eq!(tb.agent_pid("h3"), h3, "h3 was adopted, not restarted");
    let status = tb.ok(&["testbed", "status"]);
    assert!(!status.contains("STOPPED"), "{status}");
    wait_until("red's a reaching c through h2 again", Duration::from_secs(10), || {
        let (ok, v) = tb.ping("red", "a", "10.0.1.2", "3");
        ok && v["received"] == 3
    });
}

/// Review item 9: the demo removed any testbed of its name.
#[test]
fn the_demo_leaves_a_testbed_it_did_not_make_alone() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("dmo", &example());
    let out = tb.cli(&["demo", "--name", &tb.name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("does not remove a testbed it did not make"), "{}", text(&out));
    assert!(err.contains("running: supervisor, manager, agent of h1"), "{err}");
    // Still there, all of it.
    let status = tb.ok(&["testbed", "status"]);
    assert!(!status.contains("STOPPED") && status.contains(&tb.name), "{status}");
    tb.ok(&["node", "list"]);
}

#[test]
fn bad_specs_are_refused_with_the_field_and_change_nothing() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("bad", &example());
    tb.apply(&repo_file("examples/blue.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "missing-node.yaml",
            "name: bad\nnodes:\n  - {name: a}\nlinks:\n  - {name: l, bandwidth: 1Mbit, endpoints: [{node: a}, {node: x}]}\n",
            "links[0].endpoints[1].node",
        ),
        ("unknown-field.yaml", "name: bad\nnodes:\n  - {name: a, cpus: 2}\n", "line 3"),
        ("dup.yaml", "name: bad\nnodes:\n  - {name: a}\n  - {name: a}\n", "nodes[1].name"),
        ("pin.yaml", "name: bad\nnodes:\n  - {name: a, host: nowhere}\n", "nodes[0].host"),
        ("transport.yaml", "name: bad\nnodes:\n  - {name: a, host: t1}\n", "nodes[0].host"),
        (
            "bw.yaml",
            "name: bad\nnodes:\n  - {name: a}\n  - {name: b}\nlinks:\n  - {name: l, bandwidth: -5, endpoints: [{node: a}, {node: b}]}\n",
            "links[0].bandwidth",
        ),
        ("neg-cpu.yaml", "name: bad\nnodes:\n  - {name: a, cpu: -1}\n", "nodes[0].cpu"),
        ("huge-cpu.yaml", "name: bad\nnodes:\n  - {name: a, cpu: 100000}\n", "nodes[0].cpu"),
        ("huge-mem.yaml", "name: bad\nnodes:\n  - {name: a, memory: 900Ti}\n", "nodes[0].memory"),
        ("lease.yaml", "name: bad\nlease: 30d\nnodes:\n  - {name: a}\n", "lease"),
        (
            "fat-link.yaml",
            "name: bad\nnodes:\n  - {name: a}\n  - {name: b}\nlinks:\n  - {name: l, bandwidth: 40Gbit, endpoints: [{node: a}, {node: b}]}\n",
            "links[0].bandwidth",
        ),
        (
            "mtu.yaml",
            "name: bad\nnodes:\n  - {name: a, host: h2, cpu: 0.1}\n  - {name: b, host: h3, cpu: 0.1}\nlinks:\n  - {name: l, mtu: 9000, bandwidth: 1Mbit, endpoints: [{node: a}, {node: b}]}\n",
            "links[0].mtu",
        ),
    ];
    // JSON, not the table: the table's EXPIRES column is relative to now.
    let before_list = tb.ok(&["slice", "list", "--json"]);
    let before_ns = tb.namespaces();
    for (file, body, field) in cases {
        let p = dir.path().join(file);
        std::fs::write(&p, body).unwrap();
        let out = tb.cli(&["slice", "apply", "-f", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was accepted");
        assert!(err.contains(field), "{file}: error does not name {field}: {err}");
        // Errors found by the manager's admission (not by parsing the file) name
        // the field but not the file.
        let admission =
            ["nodes[0].host", "links[0].mtu", "nodes[0].cpu", "nodes[0].memory", "lease", "links[0].bandwidth"];
        if !admission.contains(&field) {
            assert!(err.contains(file), "{file}: error does not name the file: {err}");
        }
    }
    // The manager refuses the same things when they bypass the CLI's checks.
    let url = tb.state()["manager_url"].as_str().unwrap().to_string();
    let tbdir = std::path::PathBuf::from(tb.state()["dir"].as_str().unwrap());
    let token = std::fs::read_to_string(tbdir.join("operator.token")).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(tbdir.join("tls/cert.pem"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["-X", "PUT", "--data-binary", "{\"name\": \"bad\", \"nodes\": [{\"name\": \"a\", \"cpu\": \"x\"}]}"])
        .arg(format!("{url}/api/v1/slices/bad"))
        .output()
        .expect("curl is installed by scripts/test.sh");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl over TLS with the testbed certificate: {}", text(&out));
    assert!(body.contains("nodes[0]"), "{body}");
    // Without a token the manager answers 401 and changes nothing.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(tbdir.join("tls/cert.pem"))
        .args(["-X", "PUT", "--data-binary", "name: bad\n"])
        .arg(format!("{url}/api/v1/slices/bad"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    assert_eq!(tb.ok(&["slice", "list", "--json"]), before_list, "a refused spec changed the slice list");
    assert_eq!(tb.namespaces(), before_ns, "a refused spec changed the namespaces");

    // A bad substrate file is refused before anything is built.
    let sub = dir.path().join("substrate.yaml");
    std::fs::write(
        &sub,
        "name: x\nhosts:\n  - {name: h1, role: vnode}\nlinks:\n  - {endpoints: [h1, h9], bandwidth: 1Gbit}\n",
    )
    .unwrap();
    let name = unique_name("bs");
    let out = tb.cli(&["testbed", "up", sub.to_str().unwrap(), "--name", &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("links[0].endpoints[1]") && err.contains("substrate.yaml"), "{err}");
    assert!(!std::path::Path::new("/run/netns").join(format!("{name}.h1")).exists());
    assert!(!tb.root.path().join(&name).exists());
}

#[test]
fn physical_link_delay_and_loss_are_emulated() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("lossy.yaml");
    std::fs::write(
        &sub,
        "name: lossy\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit, delay: 5ms, loss: 20%}\n",
    )
    .unwrap();
    let spec = dir.path().join("s.yaml");
    std::fs::write(
        &spec,
        "name: s\nnodes:\n  - {name: a, host: h1, cpu: 0.1}\n  - {name: b, host: h2, cpu: 0.1}\nlinks:\n  - {name: ab, bandwidth: 10Mbit, endpoints: [{node: a, address: 10.0.0.1/24}, {node: b, address: 10.0.0.2/24}]}\n",
    )
    .unwrap();
    let tb = Testbed::up("imp", &sub);
    tb.apply(&spec);
    let out = tb.exec("s", "a", &["tool", "ping", "10.0.0.2", "-c", "60", "-i", "0.03", "-W", "0.5", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let received = v["received"].as_u64().unwrap_or(0);
    // Each echo crosses the lossy link twice: about 64% come back.
    assert!((15..=55).contains(&received), "received {received} of 60 through 20% loss each way: {v}");
    let min = v["rtt_min_ms"].as_f64().unwrap();
    assert!(min >= 10.0, "RTT {min} ms through 5 ms each way");
    wait_until("loss drops counted", Duration::from_secs(10), || {
        let s = tb.show("s");
        s["counters"].as_array().into_iter().flatten().any(|c| c["drops"]["loss"].as_u64().unwrap_or(0) > 0)
    });
}

/// Bursts of datagrams on VXLAN and GRE links through the transit host arrive
/// whole and in order. With socket I/O the
/// VXLAN bursts cross each physical link as UDP GSO sends and leave the next
/// host's socket as GRO buffers, which the agent cuts up again (the test suite
/// runs once more with `NETSLICE_IO=sockets`).
#[test]
fn bursts_cross_the_transit_host_whole_and_in_order() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("burst", &example());
    tb.apply(&repo_file("crates/cli/tests/specs/bench.yaml"));
    for addr in ["10.0.2.2", "10.0.0.2"] {
        let (ok, v) = tb.ping("bench", "a", addr, "1");
        assert!(ok, "a -> {addr}: {v}");
    }
    // Sliver a's interfaces: eth0 for ab (gre), eth1 for abx (vxlan).
    for (link, addr, ifname) in [("vxlan", "10.0.2.2", "eth1"), ("gre", "10.0.0.2", "eth0")] {
        for (size, rate) in [("1330", Some("300Mbit")), ("1330", None), ("22", None), ("3000", Some("300Mbit"))] {
            let sink = tb.spawn_exec(
                "bench",
                "b",
                &["tool", "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", "3", "--json"],
            );
            std::thread::sleep(Duration::from_millis(500));
            let dst = format!("{addr}:9999");
            let mut args = vec!["tool", "udp-send", &dst, "--size", size, "--count", "20000", "--json"];
            if let Some(r) = rate {
                args.extend(["--rate", r]);
            }
            let dropped_before = tb.tx_dropped("bench", "a", ifname);
            let kernel_before = tb.kernel_drops();
            let cpu_before = tb.cpu_drops("bench");
            let out = tb.exec("bench", "a", &args);
            assert!(out.status.success(), "udp-send: {}", text(&out));
            let out = sink.wait_with_output().unwrap();
            let at_tap = tb.tx_dropped("bench", "a", ifname) - dropped_before;
            let mut kernel = tb.kernel_drops();
            for (k, v) in kernel.iter_mut() {
                *v -= kernel_before.get(k).copied().unwrap_or(0).min(*v);
            }
            kernel.retain(|_, v| *v > 0);
            let in_kernel: u64 = kernel.values().sum();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let case = format!("{link}, {size}-byte payloads, rate {rate:?}: {v}");
            let got = v["packets"].as_u64().unwrap_or(0);
            // One line per case (shown with --no-capture), for the record on order.
            eprintln!("burst {case}, {at_tap} dropped at the TAP, {kernel:?} by the hosts' kernels");
            assert_eq!(v["bad"], 0, "every datagram whole: {case}");
            // Order: strict, because sliver a already knows b's MAC (the
            // pings above). Without them, the first datagrams of the first
            // burst could arrive late (`late: [0, 36]` in one run): a's kernel
            // holds them while it resolves b's MAC, then sends them from the
            // thread that got the ARP answer while udp-send sends newer ones.
            // That is the sender's kernel, not the data plane.
            assert_eq!(v["out_of_order"], 0, "datagrams out of order: {case}");
            // Unpaced, the sender outruns the path and loses some. Paced, what
            // the data plane took from sliver a's TAP arrives (at most 1%
            // lost past it), except what a host's kernel dropped before its
            // agent could read it. Both happen when an agent waits for a
            // core: on the sockets-and-workers pass (debug builds, ~10 busy
            // threads on 2 cores) 200 - 1300 of the 20000 were dropped at the
            // TAP (1000 frames, 37 ms at this rate) in about one run of five,
            // and once (CI at 8b06bf0) 868 vanished past the TAP on GRE with
            // no data-plane drop counted, which is why the kernels' drops
            // are counted here and printed.
            // (And what the agents dropped for CPU: frames beyond the link's
            // share of forwarding work while a thread was behind; CI at
            // b563df2 counted 269 on a paced burst that had met the share
            // exactly, when the guarantee was 300 Mbit/s; it is 350 now.)
            let cpu = tb.cpu_drops("bench") - cpu_before;
            if rate.is_some() {
                assert!(
                    got + at_tap + in_kernel + cpu >= 19_800,
                    "{got} of 20000 arrived, {at_tap} were dropped at the TAP, {kernel:?} by the hosts' kernels and {cpu} for CPU: {case}; counters: {}",
                    tb.counters_text("bench")
                );
                // A floor on what the sender's TAP lets through. On the
                // sockets-and-workers pass the port reader waits for a core
                // and the sliver's kernel drops at the TAP: 19126, and at
                // d8f18c3 14777, of 20000 arrived in the 3000-byte GRE case
                // (every loss at the TAP; the accounting above held), so that
                // pass's floor is lower.
                let floor = if std::env::var("NETSLICE_WORKERS").is_ok_and(|w| !w.is_empty() && w != "0") {
                    12_000
                } else {
                    15_000
                };
                assert!(got >= floor, "{got} of 20000 arrived ({at_tap} dropped at the TAP): {case}");
            } else {
                assert!(got >= 1_000, "{got} of 20000 arrived: {case}");
            }
        }
    }
    if std::env::var("NETSLICE_IO").as_deref() == Ok("sockets") {
        // No send was refused the offload on the way.
        let hosts: serde_json::Value = serde_json::from_str(&tb.ok(&["node", "list", "--json"])).unwrap();
        for h in hosts.as_array().unwrap() {
            assert!(h["io_backend"].as_str().unwrap_or("").contains("udp(gso,gro)"), "{h}");
        }
    }
}

/// Agents write their substrate peers' MACs into the hosts' neighbour tables,
/// so traffic leaving through the kernel's sockets never waits for ARP. Here t1
/// stops answering ARP on its link to h1 and a paced burst still crosses whole.
/// Left to ARP, h1's kernel held the first datagrams in its neighbour queue
/// (about 200 KB), dropped the rest, and gave up after three seconds.
#[test]
fn substrate_traffic_does_not_wait_for_arp() {
    if !need_root() {
        return;
    }
    let tb = Testbed::up("arp", &example());
    tb.apply(&repo_file("crates/cli/tests/specs/bench.yaml"));
    let ip = |args: &[&str]| {
        let o = std::process::Command::new("ip").args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (h1, t1) = (format!("{}.h1", tb.name), format!("{}.t1", tb.name));
    let entry = ip(&["-n", &h1, "neigh", "show", "dev", "to-t1"]);
    assert!(entry.contains("PERMANENT"), "h1's entry for t1: {entry}");
    // The slivers know each other (their own ARP crosses the slice); the hosts
    // forget what they learnt (permanent entries stay) and t1 goes deaf to ARP.
    let (ok, v) = tb.ping("bench", "a", "10.0.2.2", "1");
    assert!(ok, "{v}");
    for ns in [&h1, &t1] {
        ip(&["-n", ns, "neigh", "flush", "all"]);
    }
    ip(&["-n", &t1, "link", "set", "to-h1", "arp", "off"]);
    let sink =
        tb.spawn_exec("bench", "b", &["tool", "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", "3", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    // With AF_XDP these datagrams leave with the MACs the agent writes itself;
    // this half bites with socket I/O (CI's second pass), the entry check above
    // with both.
    let args = ["tool", "udp-send", "10.0.2.2:9999", "--size", "1330", "--count", "20000", "--rate", "300Mbit"];
    let out = tb.exec("bench", "a", &[&args[..], &["--json"]].concat());
    assert!(out.status.success(), "udp-send: {}", text(&out));
    let out = sink.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let got = v["packets"].as_u64().unwrap_or(0);
    assert!(got >= 19_000, "{got} of 20000 arrived: {v}");
    assert_eq!(v["out_of_order"], 0, "{v}");
}

/// Two slices share one 100 Mbit/s physical link; A floods at 10x its 20 Mbit/s
/// guarantee, B sends at its 20 Mbit/s guarantee and must keep >= 95% of it.
#[test]
fn a_flooding_slice_cannot_take_another_slices_guarantee() {
    if !need_root() {
        return;
    }
    flood_case("shaped", ", ceiling: 100Mbit");
}

/// The same with the aggressor in the cheap policed mode.
#[test]
fn a_flooding_policed_slice_cannot_take_another_slices_guarantee() {
    if !need_root() {
        return;
    }
    flood_case("policed", ", ceiling: 100Mbit, isolation: policed");
}

fn flood_case(mode: &str, aggr: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("qos.yaml");
    std::fs::write(
        &sub,
        "name: qos\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 100Mbit}\n",
    )
    .unwrap();
    let slice = |name: &str, extra: &str| {
        let p = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!(
                "name: {name}\nnodes:\n  - {{name: x, host: h1, cpu: 0.1}}\n  - {{name: y, host: h2, cpu: 0.1}}\nlinks:\n  - {{name: l, bandwidth: 20Mbit{extra}, endpoints: [{{node: x, address: 10.0.0.1/24}}, {{node: y, address: 10.0.0.2/24}}]}}\n"
            ),
        )
        .unwrap();
        p
    };
    let tb = Testbed::up(&mode[..3], &sub);
    tb.apply(&slice("aggr", aggr));
    tb.apply(&slice("victim", ""));
    // Prime ARP in both slices so the measurement sees only the data.
    assert!(tb.ping("aggr", "x", "10.0.0.2", "2").0 && tb.ping("victim", "x", "10.0.0.2", "2").0);
    let sink_a = tb.spawn_exec("aggr", "y", &["tool", "udp-sink", "--seconds", "6", "--json"]);
    let sink_v = tb.spawn_exec("victim", "y", &["tool", "udp-sink", "--seconds", "6", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    let flood = tb.spawn_exec(
        "aggr",
        "x",
        &["tool", "udp-send", "10.0.0.2:9999", "--rate", "200Mbit", "--seconds", "4", "--json"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let out =
        tb.exec("victim", "x", &["tool", "udp-send", "10.0.0.2:9999", "--rate", "20Mbit", "--seconds", "3", "--json"]);
    assert!(out.status.success(), "victim send: {}", text(&out));
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(flood.wait_with_output().unwrap().status.success());
    let frame_bits = |v: &serde_json::Value| v["pps"].as_f64().unwrap() * (1330.0 + 42.0) * 8.0;
    let v: serde_json::Value = serde_json::from_slice(&sink_v.wait_with_output().unwrap().stdout).unwrap();
    let a: serde_json::Value = serde_json::from_slice(&sink_a.wait_with_output().unwrap().stdout).unwrap();
    let (victim, aggr) = (frame_bits(&v), frame_bits(&a));
    eprintln!(
        "victim {:.1} Mbit/s (sent {:.1}), aggressor {:.1} Mbit/s",
        victim / 1e6,
        frame_bits(&sent) / 1e6,
        aggr / 1e6
    );
    let where_lost = || tb.counters_text("victim");
    assert!(
        victim >= 0.95 * 20e6,
        "victim kept {:.1} Mbit/s of its 20 Mbit/s guarantee (counters: {})",
        victim / 1e6,
        where_lost()
    );
    assert!(
        v["packets"].as_u64().unwrap() as f64 >= 0.95 * sent["packets"].as_f64().unwrap(),
        "victim lost packets: {v} vs {sent}"
    );
    assert!(
        aggr > 40e6 && aggr < 100e6,
        "aggressor borrows spare capacity but stays under the link: {:.1}",
        aggr / 1e6
    );
    // The flood's excess was dropped and counted: by a bounded queue (shaped) or
    // by the ingress policer (policed).
    let reason = if mode == "policed" { "policed" } else { "queue_full" };
    wait_until("flood drops counted", Duration::from_secs(10), || {
        let s = tb.show("aggr");
        s["counters"].as_array().into_iter().flatten().any(|c| c["drops"][reason].as_u64().unwrap_or(0) > 0)
    });
}

/// Changing a link's rate in the spec changes it on the running data plane,
/// without losing the slice's traffic.
#[test]
fn link_rates_change_live_without_dropping_traffic() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("live.yaml");
    std::fs::write(
        &sub,
        "name: live\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 100Mbit}\n",
    )
    .unwrap();
    let spec = |bw: &str| {
        let p = dir.path().join(format!("s-{bw}.yaml"));
        std::fs::write(
            &p,
            format!("name: s\nnodes:\n  - {{name: x, host: h1, cpu: 0.1}}\n  - {{name: y, host: h2, cpu: 0.1}}\nlinks:\n  - {{name: l, bandwidth: {bw}, endpoints: [{{node: x, address: 10.0.0.1/24}}, {{node: y, address: 10.0.0.2/24}}]}}\n"),
        )
        .unwrap();
        p
    };
    let tb = Testbed::up("live", &sub);
    tb.apply(&spec("10Mbit"));
    let rate = || {
        let sink = tb.spawn_exec("s", "y", &["tool", "udp-sink", "--seconds", "3", "--json"]);
        std::thread::sleep(Duration::from_millis(300));
        let out = tb.exec("s", "x", &["tool", "udp-send", "10.0.0.2:9999", "--rate", "40Mbit", "--seconds", "2"]);
        assert!(out.status.success(), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&sink.wait_with_output().unwrap().stdout).unwrap();
        v["pps"].as_f64().unwrap() * 1372.0 * 8.0
    };
    let before = rate();
    assert!((before / 10e6 - 1.0).abs() < 0.1, "shaped to 10 Mbit/s: {:.1}", before / 1e6);
    let labels = tb.show("s")["plan"]["links"][0]["forward_labels"].clone();
    // A ping stream across the change loses nothing.
    let ping = tb.spawn_exec("s", "x", &["tool", "ping", "10.0.0.2", "-c", "40", "-i", "0.05", "--json"]);
    std::thread::sleep(Duration::from_millis(700));
    let out = tb.cli(&["slice", "apply", "-f", spec("30Mbit").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("updated in place"), "{}", text(&out));
    let p = ping.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(v["received"], 40, "pings lost across the change: {v}");
    let after = rate();
    assert!((after / 30e6 - 1.0).abs() < 0.1, "reshaped to 30 Mbit/s: {:.1}", after / 1e6);
    assert_eq!(tb.show("s")["plan"]["links"][0]["forward_labels"], labels, "same labels: nothing was rebuilt");
}

#[test]
fn live_modification_adds_and_removes_parts_without_disturbing_the_rest() {
    if !need_root() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tb = Testbed::up("live", &example());
    let dir = tempfile::tempdir().unwrap();
    let ab = "  - {name: ab, type: gre, bandwidth: 50Mbit, endpoints: [{node: a, address: 10.0.0.1/24}, {node: b, address: 10.0.0.2/24}]}\n";
    let v1 = format!(
        "name: live\nnodes:\n  - {{name: a, host: h1, cpu: 0.1}}\n  - {{name: b, host: h2, cpu: 0.1}}\nlinks:\n{ab}"
    );
    let v2 = format!(
        "name: live\nnodes:\n  - {{name: a, host: h1, cpu: 0.1}}\n  - {{name: b, host: h2, cpu: 0.1}}\n  - {{name: c, host: h3, cpu: 0.1}}\nlinks:\n{ab}  - {{name: bc, type: vxlan, bandwidth: 20Mbit, endpoints: [{{node: b, address: 10.0.1.1/24}}, {{node: c, address: 10.0.1.2/24}}]}}\n"
    );
    let (f1, f2) = (dir.path().join("v1.yaml"), dir.path().join("v2.yaml"));
    std::fs::write(&f1, &v1).unwrap();
    std::fs::write(&f2, &v2).unwrap();
    tb.apply(&f1);
    let before = tb.show("live");
    let ns_a = before["plan"]["nodes"][0]["netns"].as_str().unwrap().to_string();
    let ino = |ns: &str| std::fs::metadata(format!("/run/netns/{ns}")).map(|m| m.ino()).unwrap_or(0);
    let ino_a = ino(&ns_a);

    // Steady traffic on ab while the slice grows and shrinks around it.
    let sink =
        tb.spawn_exec("live", "b", &["tool", "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", "16", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    let sender = tb.spawn_exec(
        "live",
        "a",
        &["tool", "udp-send", "10.0.0.2:9999", "--count", "3000", "--rate", "4Mbit", "--json"],
    );
    std::thread::sleep(Duration::from_millis(500));
    // Add a node and a link: the new link works at once.
    let out = tb.cli(&["slice", "apply", "-f", f2.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("updated in place"), "{}", text(&out));
    let (ok, v) = tb.ping("live", "b", "10.0.1.2", "3");
    assert!(ok && v["received"] == 3, "new link bc: {v}");
    let mid = tb.show("live");
    assert_eq!(mid["plan"]["links"][0], before["plan"]["links"][0], "ab kept its path, labels and reservation");
    // Remove them again.
    let out = tb.cli(&["slice", "apply", "-f", f1.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("updated in place"), "{}", text(&out));
    wait_until("c's sliver to be removed", Duration::from_secs(15), || {
        !tb.namespaces().iter().any(|n| n.ends_with(".live.c"))
    });
    let out = sender.wait_with_output().unwrap();
    assert!(out.status.success(), "sender: {}", text(&out));
    let out = sink.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 3000, "every datagram on the untouched link arrived: {v}");
    assert_eq!(ino(&ns_a), ino_a, "a's sliver was never recreated");
    // Change ab's bandwidth in place: admitted, same path and labels, new reservation.
    std::fs::write(&f1, v1.replace("50Mbit", "80Mbit")).unwrap();
    let out = tb.cli(&["slice", "apply", "-f", f1.to_str().unwrap()]);
    assert!(out.status.success() && text(&out).contains("updated in place"), "{}", text(&out));
    let after = tb.show("live");
    assert_eq!(after["plan"]["links"][0]["reserved"], 80_000_000);
    assert_eq!(after["plan"]["links"][0]["forward_labels"], before["plan"]["links"][0]["forward_labels"]);
    let (ok, v) = tb.ping("live", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "ab after the bandwidth change: {v}");
    // A change that does not fit is refused as a whole and changes nothing.
    std::fs::write(&f1, v1.replace("50Mbit", "20Gbit")).unwrap();
    let out = tb.cli(&["slice", "apply", "-f", f1.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("INSUFFICIENT_BANDWIDTH"), "{}", text(&out));
    assert_eq!(tb.show("live")["plan"], after["plan"]);
}

/// Name and `Cpus_allowed_list` of every thread of process `pid`.
fn thread_cpus(pid: i32) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        v.push((comm, cpus));
    }
    v
}

#[test]
fn dedicated_cpus_carry_a_slice_on_its_own_pinned_threads() {
    if !need_root() {
        return;
    }
    // Skipped unless this process may use exactly CPUs 0 and 1 (as on CI and
    // the dev machines): the expected affinities below are written for that
    // (CPU 1 dedicated, CPU 0 left for everything else).
    let own = thread_cpus(std::process::id() as i32);
    if !own.iter().all(|(_, c)| c == "0-1") {
        eprintln!("skipped: written for a machine with CPUs 0-1, this one allows {:?}", own.first());
        return;
    }
    let tb = Testbed::up("cpu", &example());
    let dir = tempfile::tempdir().unwrap();
    // Small guarantees and slivers: a dedicated CPU is half of this 2-core
    // machine's budget (1.8 cores for all the testbed's hosts).
    let spec = |name: &str, cpus: &str| {
        let p = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!(
                "name: {name}\nqos: {{cpus: {cpus}}}\nnodes:\n  - {{name: a, host: h1, cpu: 0.05}}\n  - {{name: b, host: h2, cpu: 0.05}}\n\
                 links:\n  - name: ab\n    type: gre\n    bandwidth: 20Mbit\n    ceiling: 1Gbit\n    endpoints:\n\
                 \x20     - {{node: a, address: 10.0.0.1/24}}\n      - {{node: b, address: 10.0.0.2/24}}\n"
            ),
        )
        .unwrap();
        p
    };
    // fast also has a vxlan link (its own VXLAN socket is checked below).
    let fast = spec("fast", "[1]");
    let mut text_of_fast = std::fs::read_to_string(&fast).unwrap();
    text_of_fast.push_str(
        "  - name: cd\n    type: vxlan\n    bandwidth: 20Mbit\n    ceiling: 1Gbit\n    endpoints:\n\
         \x20     - {node: a, address: 10.0.1.1/24}\n      - {node: b, address: 10.0.1.2/24}\n",
    );
    std::fs::write(&fast, text_of_fast).unwrap();
    tb.apply(&fast);
    tb.apply(&repo_file("examples/blue.yaml"));

    // On every host of fast's path, its worker runs on CPU 1 only, and the
    // shared threads (substrate receivers, the egress timer) are moved off
    // CPU 1; on h1 and h2 fast's sliver ports are read by its own poller on
    // CPU 1 and blue's by the shared poller, which is not.
    for host in ["h1", "t1", "h2"] {
        let pid = tb.agent_pid(host);
        wait_until(&format!("{host}'s threads to be pinned"), Duration::from_secs(10), || {
            let t = thread_cpus(pid);
            let worker = t.iter().any(|(n, c)| n == "w-fast-0" && c == "1");
            let shared: Vec<&(String, String)> =
                t.iter().filter(|(n, _)| n.starts_with("rx-ip") || n == "egress-timer").collect();
            let rx_off = shared.len() >= 3 && shared.iter().all(|(_, c)| c == "0");
            let own_poller = t.iter().any(|(n, c)| n == "ports-fast" && c == "1");
            let shared_pollers: Vec<&(String, String)> =
                t.iter().filter(|(n, _)| n.starts_with("ports-") && n != "ports-fast").collect();
            let shared_off = !shared_pollers.is_empty() && shared_pollers.iter().all(|(_, c)| c == "0");
            let ports_ok =
                if host == "t1" { !own_poller && shared_pollers.is_empty() } else { own_poller && shared_off };
            // fast's GRE and VXLAN frames arrive on sockets of its own, read on CPU 1.
            let own_rx = ["rx-fast-ip0", "rx-fast-ip1"].iter().all(|r| t.iter().any(|(n, c)| n == r && c == "1"));
            worker && rx_off && ports_ok && own_rx
        });
    }
    wait_until("h1 to report fast's CPUs", Duration::from_secs(10), || {
        let hosts: serde_json::Value = serde_json::from_str(&tb.ok(&["node", "list", "--json"])).unwrap();
        hosts
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "h1" && h["forwarding"].as_str().unwrap_or("").contains("fast on CPUs [1]"))
    });

    // Traffic of both slices flows: fast's through its pinned threads and its
    // own receive socket at t1 (requests and replies), blue's not.
    let own = |host: &str, ty: &str| -> u64 {
        let hosts: serde_json::Value = serde_json::from_str(&tb.ok(&["node", "list", "--json"])).unwrap();
        let h = hosts.as_array().unwrap().iter().find(|h| h["name"] == host).unwrap().clone();
        let f = h["forwarding"].as_str().unwrap_or("").to_string();
        let tag = format!("own {ty} socket: ");
        let n = f.split(tag.as_str()).nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok());
        n.unwrap_or_else(|| panic!("{host} reports no {ty} socket of fast's own: {f}"))
    };
    let before = own("t1", "gre");
    let (ok, v) = tb.ping("fast", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "fast a -> b: {v}");
    // (Agents report every 2 s.)
    wait_until("t1 to report fast's pings read on its socket", Duration::from_secs(10), || {
        own("t1", "gre") >= before + 6
    });
    let (ok, v) = tb.ping("blue", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "blue a -> b: {v}");
    // Each of fast's frames is read once: by its own socket, not also by the
    // shared one (which would forward a second copy).
    // (Counted with what sliver a's TAP queue dropped, if its reader ever
    // waited for a core that long: a copy would still show as too many.)
    let once_each = |to: &str, ifname: &str| {
        let sink =
            tb.spawn_exec("fast", "b", &["tool", "udp-sink", "--listen", "0.0.0.0:9997", "--seconds", "3", "--json"]);
        std::thread::sleep(Duration::from_millis(500));
        let dst = format!("{to}:9997");
        // 5 Mbit/s of 142-byte frames: within the link's share of forwarding
        // work (20 Mbit/s reserved at 512-byte frames, 4,883 frames/s).
        let args = ["tool", "udp-send", &dst, "--size", "100", "--count", "2000", "--rate", "5Mbit", "--json"];
        let dropped_before = tb.tx_dropped("fast", "a", ifname);
        let cpu_before = tb.cpu_drops("fast");
        let out = tb.exec("fast", "a", &args);
        assert!(out.status.success(), "fast udp-send to {to}: {}", text(&out));
        let out = sink.wait_with_output().unwrap();
        let at_tap = tb.tx_dropped("fast", "a", ifname) - dropped_before;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let got = v["packets"].as_u64().unwrap_or(0);
        // (And what CPU shortage cost: frames beyond the link's share while a
        // forwarding thread was behind, on this busy 2-core machine.)
        let cpu = tb.cpu_drops("fast") - cpu_before;
        assert_eq!(
            got + at_tap + cpu,
            2000,
            "fast's datagrams to {to} arrive once each ({at_tap} dropped at the TAP, {cpu} for CPU): {v}"
        );
        assert!(got >= 1500, "{got} of fast's 2000 datagrams to {to} arrived ({at_tap} dropped at the TAP): {v}");
    };
    once_each("10.0.0.2", "eth0");

    // A slice without dedicated CPUs on a gre link of the same path: 2000 of
    // its datagrams cross t1 through the shared socket, none through fast's
    // (a few frames of fast's own may still come: its slivers re-check each
    // other's MACs by ARP some seconds after the pings).
    tb.apply(&spec("plain", "[]"));
    let (ok, v) = tb.ping("plain", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "plain a -> b: {v}");
    // `other` sends 2000 datagrams over its link ab through t1; fast's `ty`
    // socket there reads none of them. The check waits until t1 has forwarded
    // at least 1900 of them: on this test's sockets-and-workers pass every
    // thread but fast's shares CPU 0 with the sender and three debug-built
    // agents, and a stall there may cost a few datagrams at a full queue
    // (seen once in CI: t1's count stayed short of all 2000). Fast's socket
    // reading them would show as ~2000, far above the 10 allowed.
    let not_to_fast = |other: &str, ty: &str| {
        let after = own("t1", ty);
        let start = tb.counter(other, "ab", "forward", "t1");
        let args = ["tool", "udp-send", "10.0.0.2:9", "--size", "100", "--count", "2000", "--rate", "4Mbit", "--json"];
        let out = tb.exec(other, "a", &args);
        assert!(out.status.success(), "{other} udp-send: {}", text(&out));
        let forwarded = || tb.counter(other, "ab", "forward", "t1").saturating_sub(start);
        wait_until_or(
            Duration::from_secs(10),
            || forwarded() >= 1900,
            || {
                format!(
                    "t1 forwarded {} of {other}'s 2000 datagrams within 10 s ({} dropped at a's TAP so far); counters: {}",
                    forwarded(),
                    tb.tx_dropped(other, "a", "eth0"),
                    tb.counters_text(other)
                )
            },
        );
        std::thread::sleep(Duration::from_secs(3));
        let later = own("t1", ty);
        assert!(later < after + 10, "{other}'s frames do not reach fast's {ty} socket: {after} -> {later}");
    };
    not_to_fast("plain", "gre");
    tb.ok(&["slice", "delete", "plain"]);

    // The same for fast's vxlan link: its datagrams are read on its own VXLAN
    // socket at t1 (the port's SO_REUSEPORT selector hands them there, by
    // VNI), once each; blue's vxlan datagrams on the same path never are.
    let before = own("t1", "vxlan");
    let (ok, v) = tb.ping("fast", "a", "10.0.1.2", "3");
    assert!(ok && v["received"] == 3, "fast a -> b over vxlan: {v}");
    wait_until("t1 to report fast's VXLAN pings read on its socket", Duration::from_secs(10), || {
        own("t1", "vxlan") >= before + 6
    });
    once_each("10.0.1.2", "eth1");
    let (ok, v) = tb.ping("blue", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "blue a -> b: {v}");
    std::thread::sleep(Duration::from_secs(3));
    not_to_fast("blue", "vxlan");
    let server = tb.spawn_exec("fast", "b", &["tool", "tcp-server", "--banner", "fast"]);
    std::thread::sleep(Duration::from_millis(500));
    // The slice's own processes run on its CPU (cpuset), other slices' on the rest.
    let cpus_of = |pid: u32| thread_cpus(pid as i32).first().map(|(_, c)| c.clone()).unwrap_or_default();
    assert_eq!(cpus_of(server.id()), "1", "fast's server is confined to CPU 1");
    let mut other = tb.spawn_exec("blue", "b", &["tool", "udp-sink", "--listen", "0.0.0.0:9998", "--seconds", "2"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpus_of(other.id()), "0", "blue's process is kept off fast's CPU");
    let _ = other.wait();
    let out = tb.exec(
        "fast",
        "a",
        &["tool", "tcp-client", "10.0.0.2:5201", "--seconds", "1", "--expect-banner", "fast", "--json"],
    );
    assert!(out.status.success(), "tcp in fast: {}", text(&out));
    drop(server);
    wait_until("fast's frames to be counted at t1", Duration::from_secs(10), || {
        tb.counter("fast", "ab", "forward", "t1") > 1000
    });

    // A second slice cannot have CPU 1 where fast has it; nothing changes.
    let out = tb.cli(&["slice", "apply", "-f", spec("greedy", "[1]").to_str().unwrap()]);
    let msg = text(&out);
    assert!(!out.status.success(), "greedy was admitted: {msg}");
    assert!(msg.contains("qos.cpus[0]") && msg.contains("dedicated to another slice"), "{msg}");
    assert!(!tb.ok(&["slice", "list", "--json"]).contains("greedy"));

    // fast gives CPU 1 back but stays: its own receivers stop on every host,
    // the shared GRE socket takes its keys back and the VXLAN selector its
    // VNIs, and its traffic still arrives, once each.
    let released = std::fs::read_to_string(&fast).unwrap().replace("qos: {cpus: [1]}", "qos: {cpus: []}");
    let fast_shared = dir.path().join("fast-shared.yaml");
    std::fs::write(&fast_shared, released).unwrap();
    tb.apply(&fast_shared);
    for host in ["h1", "t1", "h2"] {
        let pid = tb.agent_pid(host);
        wait_until(&format!("{host}'s receivers of fast to stop"), Duration::from_secs(15), || {
            !thread_cpus(pid).iter().any(|(n, _)| n.starts_with("rx-fast-") || n == "w-fast-0")
        });
    }
    for (to, ifname) in [("10.0.0.2", "eth0"), ("10.0.1.2", "eth1")] {
        let (ok, v) = tb.ping("fast", "a", to, "3");
        assert!(ok && v["received"] == 3, "fast a -> b ({to}) on shared receivers: {v}");
        once_each(to, ifname);
    }

    // Deleting fast returns CPU 1 to everyone and stops its worker.
    tb.ok(&["slice", "delete", "fast"]);
    let pid = tb.agent_pid("h1");
    wait_until("h1's threads to be unpinned", Duration::from_secs(15), || {
        let t = thread_cpus(pid);
        !t.iter().any(|(n, _)| n == "w-fast-0" || n == "rx-fast-ip0")
            && t.iter().filter(|(n, _)| n.starts_with("rx-ip")).all(|(_, c)| c == "0-1")
    });
    let (ok, v) = tb.ping("blue", "a", "10.0.0.2", "3");
    assert!(ok && v["received"] == 3, "blue a -> b after fast left: {v}");
    let mut other = tb.spawn_exec("blue", "b", &["tool", "udp-sink", "--listen", "0.0.0.0:9998", "--seconds", "2"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpus_of(other.id()), "0-1", "blue's processes get every CPU back");
    let _ = other.wait();
}
