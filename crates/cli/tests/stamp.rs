//! STAMP probes (RFC 8762) end to end: the agents' sender and reflector
//! measure a physical link's injected loss and delay from inside a slice's
//! virtual link, and interoperate with an independent implementation of
//! the packet formats (scapy's `contrib.stamp`, PyPI `scapy`) as reflector
//! and as sender.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// h1-h2 delays 5 ms and loses 2% each way; h1-h3 is clean.
fn substrate(dir: &Path) -> PathBuf {
    let p = dir.join("stamp.yaml");
    std::fs::write(
        &p,
        "name: stamp\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\n  - {name: h3, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit, delay: 5ms, loss: 2%}\n  - {endpoints: [h1, h3], bandwidth: 1Gbit}\n",
    )
    .unwrap();
    p
}

/// x on h1; y on h2 over the lossy link (l); z on h3 over the clean one (m).
fn slice(dir: &Path) -> PathBuf {
    let p = dir.join("st.yaml");
    std::fs::write(
        &p,
        "name: st\nnodes:\n  - {name: x, host: h1, cpu: 0.4}\n  - {name: y, host: h2, cpu: 0.4}\n  - {name: z, host: h3, cpu: 0.4}\nlinks:\n  - {name: l, bandwidth: 50Mbit, endpoints: [{node: x, address: 10.0.0.1/24}, {node: y, address: 10.0.0.2/24}]}\n  - {name: m, bandwidth: 50Mbit, endpoints: [{node: x, address: 10.0.1.1/24}, {node: z, address: 10.0.1.2/24}]}\n",
    )
    .unwrap();
    p
}

/// The Python with scapy that `scripts/test.sh` sets up.
fn scapy_python() -> String {
    let py = std::env::var("NETSLICE_SCAPY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_file("target/scapy/venv/bin/python"));
    assert!(
        py.exists(),
        "{} is missing: scripts/test.sh installs scapy (PyPI) into a virtualenv there, or set NETSLICE_SCAPY_PYTHON",
        py.display()
    );
    py.display().to_string()
}

fn json(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn stamp_probes_measure_injected_loss_and_delay_and_interoperate_with_scapy() {
    if !need_root() {
        return;
    }
    let python = scapy_python();
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up("stp", &substrate(dir.path()));
    tb.apply(&slice(dir.path()));
    assert!(tb.ping("st", "x", "10.0.1.2", "2").0);

    // 10,000 probes at 1000 a second across the lossy, delayed link. The
    // window starts in 2 s so that both agents hold the job when it begins.
    // Midway another job changes both hosts' configs: the probe runs on.
    let probe = tb
        .cmd(&[
            "measure",
            "create",
            "--slice",
            "st",
            "--point",
            "l@x",
            "--point",
            "l@y",
            "--probe",
            "--rate",
            "1000",
            "--start",
            "+2s",
            "--duration",
            "10s",
            "--wait",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let other = json(tb.cli(&[
        "measure",
        "create",
        "--slice",
        "st",
        "--point",
        "l@x",
        "--point",
        "l@y",
        "--direction",
        "forward",
        "--duration",
        "2s",
        "-o",
        "json",
    ]));
    assert_eq!(other["state"], "running", "{other}");
    let job = json(probe.wait_with_output().unwrap());
    let s = &job["stamp"];
    let sent = u(&s["sent"]);
    assert!((9_990..=10_000).contains(&sent), "sent {sent} in a 10 s window at 1000/s: {job}");
    let out_loss = u(&s["lost_forward"]) as f64 / sent as f64 * 100.0;
    let back_loss = u(&s["lost_reverse"]) as f64 / u(&s["reflected"]) as f64 * 100.0;
    assert!((out_loss - 2.0).abs() <= 0.5, "loss on the way out {out_loss:.2}%, 2% injected: {s}");
    assert!((back_loss - 2.0).abs() <= 0.5, "loss on the way back {back_loss:.2}%, 2% injected: {s}");
    assert_eq!(u(&s["duplicated"]), 0, "{s}");
    let out = f(&s["forward"]["median_ms"]);
    let back = f(&s["reverse"]["median_ms"]);
    assert!((out - 5.0).abs() <= 0.2, "one-way delay out {out:.3} ms, 5 ms injected: {s}");
    assert!((back - 5.0).abs() <= 0.2, "one-way delay back {back:.3} ms, 5 ms injected: {s}");
    assert!(f(&s["round_trip"]["min_ms"]) >= 10.0, "a round trip beat the injected 10 ms: {s}");
    let hist = s["round_trip"]["histogram_1ms"].as_array().unwrap();
    assert_eq!(hist.iter().map(u).sum::<u64>(), u(&s["received"]), "the histogram holds every reply: {s}");
    // Honest clocks: the Error Estimate is what adjtimex says, never 0.
    assert!(f(&s["sender_error_s"]) > 0.0 && f(&s["reflector_error_s"]) > 0.0, "{s}");
    // The reflector's own count: at least what its numbers told the sender
    // (a lost last reply hides the last numbers), at most what was sent.
    let answered = u(&job["reflected"]);
    assert!(answered >= u(&s["reflected"]) && answered <= sent, "the reflector's own count: {job}");
    assert!(s["directions_known"] == true, "{s}");
    assert_eq!(job["probe_dropped"], 0, "the probe points kept up: {job}");

    // scapy as the reflector: the agent of h1 sends to a STAMP reflector
    // built on scapy.contrib.stamp in z, over the clean link.
    let script = |name: &str| repo_file(&format!("crates/cli/tests/stamp/{name}")).display().to_string();
    let reflector = tb
        .cmd(&["slice", "exec", "st", "z", "--", &python, &script("scapy_reflector.py"), "11"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The window opens in 3 s: scapy is listening by then.
    let job = json(tb.cli(&[
        "measure",
        "create",
        "--slice",
        "st",
        "--point",
        "m@x",
        "--point",
        "m@z",
        "--probe",
        "--reflector",
        "sliver",
        "--rate",
        "100",
        "--start",
        "+3s",
        "--duration",
        "3s",
        "--wait",
        "-o",
        "json",
    ]));
    let seen = json(reflector.wait_with_output().unwrap());
    let s = &job["stamp"];
    let ssid = u(&seen["ssids"][0]);
    assert_eq!(seen["ssids"].as_array().unwrap().len(), 1, "one session: {seen}");
    assert!(ssid > 0, "{seen}");
    assert_eq!(seen["ttls"], serde_json::json!([255]), "test packets leave with TTL 255: {seen}");
    assert_eq!(seen["short"], 0, "{seen}");
    assert_eq!(seen["senders"], serde_json::json!(["10.0.1.1"]), "{seen}");
    assert!(u(&s["sent"]) >= 290, "{s}");
    assert_eq!(u(&s["received"]), u(&seen["answered"]), "every answer came back (clean link): {s} {seen}");
    assert_eq!(u(&s["lost"]), u(&s["sent"]) - u(&seen["answered"]), "{s}");
    // scapy's reflector states its error as 7 x 2^(10-32) s.
    let want = 7.0 * 2f64.powi(10 - 32);
    assert!((f(&s["reflector_error_s"]) - want).abs() < 1e-12, "the reflector's Error Estimate: {s}");
    assert!(f(&s["round_trip"]["median_ms"]) < 5.0, "a clean link's round trip: {s}");

    // scapy as the sender: from x to a reflector job of the agent of h3.
    let job = json(tb.cli(&[
        "measure",
        "create",
        "--slice",
        "st",
        "--point",
        "m@z",
        "--reflect",
        "--duration",
        "12s",
        "-o",
        "json",
    ]));
    let id = u(&job["id"]).to_string();
    // The agents take a new config within milliseconds; 3 s is ample.
    std::thread::sleep(Duration::from_secs(3));
    let res = json(tb.cli(&[
        "slice",
        "exec",
        "st",
        "x",
        "--",
        &python,
        &script("scapy_sender.py"),
        "10.0.1.2",
        "200",
        "4242",
    ]));
    assert_eq!(res["problems"], serde_json::json!([]), "{res}");
    assert_eq!(u(&res["received"]), 200, "every test packet answered (clean link): {res}");
    assert_eq!(res["reflector_seqs"], true, "the stateful reflector numbers from 0 without gaps: {res}");
    assert_eq!(res["reflector_seqs_in_order"], true, "{res}");
    wait_until("the reflector job to report", Duration::from_secs(10), || {
        json(tb.cli(&["measure", "show", &id, "-o", "json"]))["reflected"] == 200
    });
    tb.ok(&["measure", "delete", &id]);

    // Bad probes: a hop is no sliver interface, the rate is bounded, a probe
    // neither filters nor captures, a reflector has one point.
    for (args, field) in [
        (vec!["--point", "l/h1", "--point", "l@y", "--probe"], "points[0]"),
        (vec!["--point", "l@x", "--point", "m@z", "--probe"], "one link"),
        (vec!["--point", "l@x", "--point", "l@y", "--probe", "--rate", "0"], "probe.rate"),
        (vec!["--point", "l@x", "--point", "l@y", "--probe", "--rate", "10001"], "probe.rate"),
        (vec!["--point", "l@x", "--point", "l@y", "--probe", "--rate", "10000", "--duration", "30s"], "200000"),
        (vec!["--point", "l@x", "--point", "l@y", "--reflect"], "one point"),
        (vec!["--point", "l@x", "--point", "l@x", "--probe"], "same interface"),
    ] {
        let mut a = vec!["measure", "create", "--slice", "st"];
        a.extend(args.iter());
        if !args.contains(&"--duration") {
            a.extend(["--duration", "5s"]);
        }
        let out = tb.cli(&a);
        assert!(!out.status.success(), "{args:?} was accepted: {}", text(&out));
        assert!(text(&out).contains(field), "{args:?}: the error should name {field}: {}", text(&out));
    }
    // Two reflectors at one interface at once, or one host's senders over
    // 20,000 test packets a second together: refused (scheduled an hour
    // ahead, so nothing runs).
    let later = |extra: &[&str]| {
        let mut a = vec!["measure", "create", "--slice", "st", "--start", "+1h", "--duration", "10s"];
        a.extend_from_slice(extra);
        tb.cli(&a)
    };
    let first = json(later(&["--point", "l@y", "--reflect", "-o", "json"]));
    let out = later(&["--point", "l@y", "--reflect"]);
    assert!(!out.status.success() && text(&out).contains("already has a STAMP reflector"), "{}", text(&out));
    let fast = ["--point", "m@x", "--point", "m@z", "--probe", "--rate", "10000", "-o", "json"];
    let fast: Vec<serde_json::Value> = (0..2).map(|_| json(later(&fast))).collect();
    let out = later(&["--point", "l@x", "--point", "l@y", "--probe", "--rate", "100"]);
    assert!(!out.status.success() && text(&out).contains("at most 20000"), "{}", text(&out));
    for j in fast.iter().chain([&first]) {
        tb.ok(&["measure", "delete", &u(&j["id"]).to_string()]);
    }
    let out = tb.cli(&["measure", "create", "--slice", "st", "--point", "l@x", "--probe", "--filter", "udp"]);
    assert!(!out.status.success(), "{}", text(&out));
    let listed = json(tb.cli(&["measure", "list", "-o", "json"]));
    assert_eq!(listed.as_array().unwrap().len(), 3, "no job was made of the bad requests: {listed}");
}
