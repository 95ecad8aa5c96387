//! The NW Monitoring Manager, end to end: the agents' and the manager's
//! Prometheus endpoints (checked by `promtool` and scraped by a real
//! Prometheus server), `slice stats`, counters that survive an agent
//! restart, and who may read what.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn substrate(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("mon.yaml");
    std::fs::write(
        &p,
        "name: mon\nhosts:\n  - {name: h1, role: vnode}\n  - {name: t1, role: transport}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, t1], bandwidth: 1Gbit}\n  - {endpoints: [t1, h2], bandwidth: 1Gbit}\n",
    )
    .unwrap();
    p
}

fn slice(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &p,
        format!(
            "name: {name}\nnodes:\n  - {{name: x, host: h1, cpu: 0.1}}\n  - {{name: y, host: h2, cpu: 0.1}}\nlinks:\n  - {{name: l, bandwidth: 50Mbit, endpoints: [{{node: x, address: 10.0.0.1/24}}, {{node: y, address: 10.0.0.2/24}}]}}\n"
        ),
    )
    .unwrap();
    p
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().expect("curl");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// `promtool check metrics` on `text`: its complaints, empty if none.
fn promtool(text: &str) -> String {
    use std::io::Write;
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    if out.status.success() {
        String::new()
    } else {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

/// A sample's value in the text format: the first line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn metrics_endpoints_pass_promtool_prometheus_scrapes_them_and_slice_stats_shows_rates() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up("mon", &substrate(dir.path()));
    tb.apply(&slice(dir.path(), "mon"));
    tb.apply(&slice(dir.path(), "other"));
    let st = tb.state();
    let tbdir = Path::new(st["dir"].as_str().unwrap()).to_path_buf();
    let manager = st["manager_url"].as_str().unwrap().to_string();
    let ca = tbdir.join("tls").join("cert.pem");
    let operator_token = tbdir.join("operator.token");
    let agent =
        |h: &str| st["metrics"][h].as_str().unwrap_or_else(|| panic!("no metrics address for {h}: {st}")).to_string();
    let auth = format!("Authorization: Bearer {}", std::fs::read_to_string(&operator_token).unwrap().trim());
    let manager_metrics = || {
        let (ok, body) = curl(&["--cacert", ca.to_str().unwrap(), "-H", &auth, &format!("{manager}/metrics")]);
        assert!(ok, "manager /metrics: {body}");
        body
    };

    // Steady traffic in slice mon: 20 Mbit/s of UDP, x -> y, across t1.
    assert!(tb.ping("mon", "x", "10.0.0.2", "2").0);
    let sink = tb.spawn_exec("mon", "y", &["tool", "udp-sink", "--seconds", "40", "--json"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut sender = tb.spawn_exec(
        "mon",
        "x",
        &["tool", "udp-send", "10.0.0.2:9999", "--rate", "20Mbit", "--size", "1000", "--seconds", "35", "--json"],
    );

    // Prometheus scrapes every agent (plain HTTP) and the manager (HTTPS,
    // the operator's token) each second.
    let prom_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let agents: Vec<String> = ["h1", "t1", "h2"].iter().map(|h| format!("'{}'", agent(h))).collect();
    let host = manager.trim_start_matches("https://");
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n  - job_name: agents\n    static_configs: [{{targets: [{}]}}]\n  - job_name: manager\n    scheme: https\n    tls_config: {{ca_file: '{}'}}\n    authorization: {{credentials_file: '{}'}}\n    static_configs: [{{targets: ['{host}']}}]\n",
        agents.join(", "),
        ca.display(),
        operator_token.display()
    );
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(prom_log)
            .spawn()
            .expect("prometheus (Debian package prometheus; scripts/test.sh installs it)"),
    );

    // Every endpoint passes promtool, with the slice's families in it.
    std::thread::sleep(Duration::from_secs(3));
    for h in ["h1", "t1", "h2"] {
        let (ok, body) = curl(&[&format!("http://{}/metrics", agent(h))]);
        assert!(ok, "{h} /metrics: {body}");
        assert_eq!(promtool(&body), "", "promtool on {h}'s metrics:\n{body}");
        assert!(
            body.contains("netslice_link_frames_total{slice=\"mon\",link=\"l\",direction=\"forward\""),
            "{h}: {body}"
        );
        assert!(body.contains("netslice_forwarding_threads{"), "{h}: {body}");
    }
    let (ok, om) = curl(&["-H", "Accept: application/openmetrics-text", &format!("http://{}/metrics", agent("h1"))]);
    assert!(ok && om.ends_with("# EOF\n"), "OpenMetrics when asked: {om}");
    let m = manager_metrics();
    assert_eq!(promtool(&m), "", "promtool on the manager's metrics:\n{m}");
    for family in
        ["netslice_slices{state=\"ready\"} 2", "netslice_admissions_total{operation=\"apply\",outcome=\"created\"} 2"]
    {
        assert!(m.contains(family), "manager metrics lack {family}:\n{m}");
    }
    assert!(m.contains("netslice_api_request_duration_seconds_bucket{"), "{m}");

    // slice stats: every hop of the path, in order, at about the rate sent.
    let rate_at = |hop: &str| -> Option<f64> {
        let v: serde_json::Value = serde_json::from_str(&tb.ok(&["slice", "stats", "mon", "-o", "json"])).ok()?;
        let fwd = v["links"].as_array()?.iter().find(|l| l["link"] == "l" && l["direction"] == "forward")?.clone();
        let hops: Vec<&str> = fwd["hops"].as_array()?.iter().filter_map(|h| h["host"].as_str()).collect();
        assert_eq!(hops, ["h1", "t1", "h2"], "{fwd}");
        fwd["hops"].as_array()?.iter().find(|h| h["host"] == hop)?["bits_per_second"].as_f64()
    };
    // The sender paces its frames (1042 bytes for 1000 of payload) at 20 Mbit/s.
    let want = 20e6;
    for hop in ["h1", "t1", "h2"] {
        wait_until(&format!("{hop}'s rate near {want:.0} bit/s"), Duration::from_secs(15), || {
            rate_at(hop).is_some_and(|r| (r - want).abs() < 0.05 * want)
        });
    }
    let table = tb.ok(&["slice", "stats", "mon", "--once", "-o", "wide"]);
    eprintln!("{table}");
    assert!(table.contains("LINK") && table.contains("Mbit/s") && table.contains("t1"), "{table}");

    // Prometheus answers a PromQL query for the slice's link rate.
    // The agents' series: read at each scrape (the manager's move with the
    // agents' 2-second reports, too coarse for a 5-second rate).
    let query = "sum(rate(netslice_link_bytes_total{job=\"agents\",slice=\"mon\",link=\"l\",direction=\"forward\",stage=\"transit\"}[5s]))*8";
    let mut last = String::new();
    let got = (|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let (ok, body) = curl(&[
                "-G",
                &format!("http://127.0.0.1:{prom_port}/api/v1/query"),
                "--data-urlencode",
                &format!("query={query}"),
            ]);
            last = body.clone();
            if ok
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && let Some(r) = v["data"]["result"][0]["value"][1].as_str().and_then(|s| s.parse::<f64>().ok())
                && (r - want).abs() < 0.1 * want
            {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        None
    })();
    let prom_text = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(got.is_some(), "PromQL {query} never came near {want:.0}: {last}\nprometheus log:\n{prom_text}");
    eprintln!("PromQL transit rate {:.0} bit/s (sent {want:.0})", got.unwrap_or(0.0));
    // The agents' own series are there too.
    let (ok, body) = curl(&[
        "-G",
        &format!("http://127.0.0.1:{prom_port}/api/v1/query"),
        "--data-urlencode",
        "query=count(up{job=\"agents\"} == 1)",
    ]);
    assert!(ok && body.contains("\"3\""), "every agent scraped: {body}");
    let (ok, body) = curl(&[
        "-G",
        &format!("http://127.0.0.1:{prom_port}/api/v1/query"),
        "--data-urlencode",
        "query=count(netslice_link_frames_total{job=\"manager\",slice=\"mon\"})",
    ]);
    assert!(ok && body.contains("\"6\""), "the manager's series of the slice (3 hosts x 2 directions): {body}");

    // An agent restart: its own counters start again, the manager's carry on.
    let total = |m: &str| {
        sample(
            m,
            "netslice_link_frames_total{slice=\"mon\",link=\"l\",direction=\"forward\",host=\"t1\",stage=\"transit\"}",
        )
        .unwrap_or(0.0)
    };
    let before = total(&manager_metrics());
    assert!(before > 0.0);
    kill9(tb.agent_pid("t1"));
    wait_until("t1's agent to be back and counting", Duration::from_secs(20), || {
        let m = manager_metrics();
        sample(&m, "netslice_agent_restarts_total{host=\"t1\"}").unwrap_or(0.0) >= 1.0 && total(&m) > before
    });

    // A developer reads their own slice's figures, nobody else's, and not
    // the platform's metrics.
    let dev_token = dir.path().join("dev.token");
    tb.ok(&["user", "add", "dev", "--save-token", dev_token.to_str().unwrap()]);
    let dev_secret = std::fs::read_to_string(&dev_token).unwrap().trim().to_string();
    let as_dev = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token-file", dev_token.to_str().unwrap()]);
        tb.cli(&all)
    };
    let out = as_dev(&["slice", "stats", "mon", "--once"]);
    assert!(!out.status.success() && text(&out).contains("another user"), "{}", text(&out));
    let dev_auth = format!("Authorization: Bearer {dev_secret}");
    let (_, body) = curl(&["--cacert", ca.to_str().unwrap(), "-H", &dev_auth, &format!("{manager}/metrics")]);
    assert!(body.contains("forbidden"), "a developer read the platform's metrics: {body}");

    let _ = sender.kill();
    let _ = sender.wait();
    drop(sink);
}

/// Measurement jobs: a job on a link's transit hop during an iperf3 run
/// reports iperf3's rate, two points of the link report no loss, the filter
/// selects, bad requests create nothing, and a developer cannot reach
/// another's slice.
#[test]
fn measurement_jobs_count_at_chosen_points_and_refuse_bad_requests() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up("job", &substrate(dir.path()));
    tb.apply(&slice(dir.path(), "mon"));
    assert!(tb.ping("mon", "x", "10.0.0.2", "2").0);
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    };

    // iperf3 (UDP, 40 Mbit/s, 1400-byte datagrams) from x to y for 9 s; a job
    // counts 5 s of it at t1, another at both ends (loss), a third only
    // frames the filter selects (none: the wrong port).
    let mut server = tb
        .cmd(&["slice", "exec", "mon", "y", "--", "iperf3", "-s", "-1", "-J"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let client = tb
        .cmd(&[
            "slice", "exec", "mon", "x", "--", "iperf3", "-c", "10.0.0.2", "-u", "-b", "40M", "-l", "1400", "-t", "9",
            "-J",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let create = |extra: &[&str]| {
        let mut args = vec!["measure", "create", "--slice", "mon", "--start", "+2s", "--duration", "5s", "-o", "json"];
        args.extend_from_slice(extra);
        json(tb.cli(&args))
    };
    let hop = create(&["--point", "l/t1"]);
    let ends = create(&["--point", "l@y", "--point", "l@x", "--direction", "forward"]);
    let filtered = create(&["--point", "x:eth0", "--filter", "udp and dst port 9"]);
    let id = |v: &serde_json::Value| v["id"].as_u64().unwrap().to_string();
    let results = |v: &serde_json::Value| json(tb.cli(&["measure", "results", &id(v), "--wait", "-o", "json"]));
    let (hop, ends, filtered) = (results(&hop), results(&ends), results(&filtered));
    let out = client.wait_with_output().unwrap();
    assert!(out.status.success(), "iperf3 client: {}", text(&out));
    let _ = server.kill();
    let _ = server.wait();
    let iperf: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = iperf["end"]["sum"]["bits_per_second"].as_f64().unwrap();
    let ours = hop["points"][0]["bits_per_second"].as_f64().unwrap();
    eprintln!("iperf3 {:.2} Mbit/s, the job at t1 {:.2} Mbit/s (frames: payload + 42 bytes)", theirs / 1e6, ours / 1e6);
    assert!((ours - theirs).abs() <= 0.05 * theirs, "job {ours:.0} bit/s vs iperf3 {theirs:.0}: {hop}");
    assert_eq!(hop["state"], "done");
    assert_eq!(hop["points"][0]["intervals"].as_array().unwrap().len(), 5, "{hop}");
    // Loss between the ends: the first point is the one frames pass first.
    let loss = &ends["loss"];
    assert_eq!(loss["from"], "l@x", "{ends}");
    assert!(loss["sent"].as_u64().unwrap() > 10_000, "{ends}");
    assert!(loss["ratio"].as_f64().unwrap() < 0.01, "{ends}");
    assert_eq!(filtered["points"][0]["frames"], 0, "the filter selects none of iperf3's frames: {filtered}");

    // Bad requests: a clear error naming the field, and no job.
    let before = json(tb.cli(&["measure", "list", "-o", "json"])).as_array().unwrap().len();
    for (args, field) in [
        (vec!["--point", "l/t1", "--duration", "5s", "--filter", "tcp port eighty"], "filter"),
        (vec!["--point", "nope/t1", "--duration", "5s"], "points[0]"),
        (vec!["--point", "l/h9", "--duration", "5s"], "points[0]"),
        (vec!["--point", "l/t1", "--duration", "5s", "--start", "1000"], "start"),
        (vec!["--point", "l/t1", "--duration", "30d"], "duration"),
        (vec!["--point", "l@x", "--point", "l@y", "--duration", "5s"], "direction"),
    ] {
        let mut all = vec!["measure", "create", "--slice", "mon"];
        all.extend(args.iter());
        let out = tb.cli(&all);
        assert!(
            !out.status.success() && text(&out).contains(field),
            "{args:?} must be refused naming {field}: {}",
            text(&out)
        );
    }
    let out = tb.cli(&["measure", "create", "--slice", "mon", "--point", "l/t1", "--duration", "5s", "--capture"]);
    assert!(!out.status.success() && text(&out).contains("capture-bytes"), "{}", text(&out));
    assert_eq!(
        json(tb.cli(&["measure", "list", "-o", "json"])).as_array().unwrap().len(),
        before,
        "no job was created"
    );

    // A developer can neither create nor read jobs on another's slice.
    let dev_token = dir.path().join("dev.token");
    tb.ok(&["user", "add", "dev", "--save-token", dev_token.to_str().unwrap()]);
    let as_dev = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token-file", dev_token.to_str().unwrap()]);
        tb.cli(&all)
    };
    let out = as_dev(&["measure", "create", "--slice", "mon", "--point", "l/t1", "--duration", "5s"]);
    assert!(!out.status.success() && text(&out).contains("another user"), "{}", text(&out));
    let out = as_dev(&["measure", "show", &id(&hop)]);
    assert!(!out.status.success() && text(&out).contains("another user"), "{}", text(&out));
    let listed = json(as_dev(&["measure", "list", "-o", "json"]));
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    tb.ok(&["measure", "delete", &id(&hop)]);
    let out = tb.cli(&["measure", "show", &id(&hop)]);
    assert!(!out.status.success(), "{}", text(&out));
}

/// `tshark`'s fields of every frame in `file`, one line a frame.
fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<String> {
    let mut args = vec!["-r".to_string(), file.display().to_string(), "-T".into(), "fields".into()];
    for f in fields {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    let out = Command::new("tshark").args(&args).output().expect("tshark (Debian package tshark)");
    assert!(out.status.success(), "tshark -r {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// Capture jobs: at a transit hop and at a fast-path node's port, the
/// pcapng opens in capinfos and tshark, names its point, and holds exactly
/// the frames the filter selects, byte for byte as the receiving sliver
/// saw them (read independently by tshark inside it); a capture stops at its
/// byte cap and says so.
#[test]
fn captures_hold_exactly_the_filtered_frames_at_a_transit_hop_and_a_fast_path_port() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tb = Testbed::up("cap", &substrate(dir.path()));
    // y runs tshark, which takes seconds of CPU to start: in a 0.1-core
    // sliver it was not capturing yet when the datagrams came.
    let spec = dir.path().join("cap.yaml");
    std::fs::write(
        &spec,
        "name: cap\nnodes:\n  - {name: x, host: h1, cpu: 0.1}\n  - {name: y, host: h2, cpu: 0.6}\n  - {name: sw, type: l2switch, host: h2}\nlinks:\n  - {name: xs, bandwidth: 50Mbit, endpoints: [{node: x, address: 10.9.0.1/24}, {node: sw}]}\n  - {name: sy, bandwidth: 50Mbit, endpoints: [{node: sw}, {node: y, address: 10.9.0.2/24}]}\n",
    )
    .unwrap();
    tb.apply(&spec);
    assert!(tb.ping("cap", "x", "10.9.0.2", "2").0);
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    };
    let filter = "udp and dst port 9999";
    let create = |point: &str, cap: &str| {
        json(tb.cli(&[
            "measure",
            "create",
            "--slice",
            "cap",
            "--point",
            point,
            "--start",
            "+2s",
            "--duration",
            "7s",
            "--filter",
            filter,
            "--capture",
            "--snaplen",
            "200",
            "--capture-bytes",
            cap,
            "-o",
            "json",
        ]))
    };
    let transit = create("xs/t1", "10Mi");
    let port = create("sw:eth1", "10Mi");
    let small = create("xs/t1", "3000");
    // The independent read: tshark inside y, on its interface, same filter.
    let theirs = dir.path().join("y.pcapng");
    let reader = tb
        .cmd(&[
            "slice",
            "exec",
            "cap",
            "y",
            "--",
            "tshark",
            "-q",
            "-i",
            "eth0",
            "-f",
            filter,
            "-a",
            "duration:10",
            "-w",
            theirs.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // Inside the windows: 150 datagrams the filter selects, 40 it does not, pings.
    let out = tb.exec(
        "cap",
        "x",
        &["tool", "udp-send", "10.9.0.2:9999", "--size", "300", "--count", "150", "--rate", "1Mbit", "--json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = tb.exec("cap", "x", &["tool", "udp-send", "10.9.0.2:9998", "--size", "300", "--count", "40", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(tb.ping("cap", "x", "10.9.0.2", "3").0);
    let read = reader.wait_with_output().unwrap();
    assert!(read.status.success(), "tshark in y: {}", text(&read));

    let get = |job: &serde_json::Value, name: &str| {
        let id = job["id"].as_u64().unwrap().to_string();
        let file = dir.path().join(name);
        tb.ok(&["measure", "capture", &id, "--wait", "-f", file.to_str().unwrap()]);
        let info = json(tb.cli(&["measure", "show", &id, "-o", "json"]));
        (file, info)
    };
    let want = tshark_fields(&theirs, &["frame.len", "frame.cap_len", "data.data"]);
    assert_eq!(want.len(), 150, "y saw {} matching frames", want.len());
    // What y saw, cut at our snaplen: the bytes of each frame's first 200.
    let y_bytes: Vec<String> = {
        let out = Command::new("tshark").args(["-r", theirs.to_str().unwrap(), "-x"]).output().unwrap();
        assert!(out.status.success());
        hex_frames(&String::from_utf8_lossy(&out.stdout), 200)
    };
    for (job, name, point) in [(&transit, "transit.pcapng", "xs/t1"), (&port, "port.pcapng", "sw:eth1")] {
        let (file, info) = get(job, name);
        let out = Command::new("capinfos")
            .args(["-c", "-T", file.to_str().unwrap()])
            .output()
            .expect("capinfos (Debian package wireshark-common)");
        assert!(out.status.success(), "capinfos {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
        let caps = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(caps.trim_end().ends_with("\t150"), "capinfos on the {point} capture: {caps}");
        let descr = tshark_fields(&file, &["frame.interface_description"]);
        assert!(descr[0].contains(point) && descr[0].contains("slice cap"), "{descr:?}");
        let ours: Vec<String> = {
            let out = Command::new("tshark").args(["-r", file.to_str().unwrap(), "-x"]).output().unwrap();
            hex_frames(&String::from_utf8_lossy(&out.stdout), 200)
        };
        assert_eq!(ours, y_bytes, "the {point} capture holds exactly the frames y saw, byte for byte");
        let lens = tshark_fields(&file, &["frame.len", "frame.cap_len", "udp.dstport"]);
        assert!(lens.iter().all(|l| l == "342\t200\t9999"), "{point}: {lens:?}");
        assert_eq!(info["points"][0]["captured"], 150, "{info}");
        assert_eq!(info["points"][0]["capture_full"], 0, "{info}");
    }
    // The small capture kept what fits in 3000 bytes (blocks of 232) and
    // says how many it left out.
    let (file, info) = get(&small, "small.pcapng");
    let n = tshark_fields(&file, &["frame.number"]).len() as u64;
    let p = &info["points"][0];
    assert!(n > 0 && n * 232 <= 3000, "{n} frames in a 3000-byte cap");
    assert_eq!(p["captured"].as_u64().unwrap(), n, "{info}");
    assert_eq!(p["captured"].as_u64().unwrap() + p["capture_full"].as_u64().unwrap(), 150, "{info}");
    assert!(info["capture_bytes"].as_u64().unwrap() <= 3000, "{info}");
    let shown = tb.ok(&["measure", "show", &small["id"].as_u64().unwrap().to_string()]);
    assert!(shown.contains("cap full"), "{shown}");
}

/// The frames of `tshark -x` output as hex strings of their first `cut` bytes.
fn hex_frames(dump: &str, cut: usize) -> Vec<String> {
    let mut frames = Vec::new();
    let mut cur = String::new();
    for line in dump.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                frames.push(std::mem::take(&mut cur));
            }
            continue;
        }
        // "0000  02 00 ...  ascii": the offset, then up to 16 hex bytes.
        let hex: String = line.get(6..).unwrap_or("").split("  ").next().unwrap_or("").split_whitespace().collect();
        cur.push_str(&hex);
    }
    if !cur.is_empty() {
        frames.push(cur);
    }
    frames.into_iter().map(|f| f.chars().take(cut * 2).collect()).collect()
}

/// The guarantee check: a victim within its guarantee meets it in every
/// window while another slice floods through netslice (the schedulers keep
/// them apart); when traffic netslice does not carry floods the physical
/// link (isolation broken from outside), the check marks the windows
/// violated and says the frames were lost between hosts.
#[test]
fn slice_check_marks_windows_met_in_the_normal_case_and_violated_when_isolation_breaks() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("chk.yaml");
    std::fs::write(
        &sub,
        "name: chk\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 100Mbit}\n",
    )
    .unwrap();
    // Socket I/O: the agents' frames pass the physical links' qdiscs, as the
    // cross traffic below does (AF_XDP transmits past them).
    let tb = Testbed { name: unique_name("chk"), root: tempfile::tempdir().unwrap() };
    let out = run(tb.cmd(&["testbed", "up", sub.to_str().unwrap(), "--name", &tb.name]).env("NETSLICE_IO", "sockets"));
    assert!(out.status.success(), "testbed up: {}", text(&out));
    for name in ["victim", "aggr"] {
        let p = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &p,
            format!("name: {name}\nnodes:\n  - {{name: x, host: h1, cpu: 0.1}}\n  - {{name: y, host: h2, cpu: 0.1}}\nlinks:\n  - {{name: l, bandwidth: 20Mbit, endpoints: [{{node: x, address: 10.0.0.1/24}}, {{node: y, address: 10.0.0.2/24}}]}}\n"),
        )
        .unwrap();
        tb.apply(&p);
        assert!(tb.ping(name, "x", "10.0.0.2", "2").0);
    }
    let check = |since: &str| -> (bool, serde_json::Value) {
        let out = tb.cli(&["slice", "check", "victim", "--since", since, "-o", "json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        (out.status.success(), v)
    };
    let fwd = |v: &serde_json::Value| {
        v["links"].as_array().unwrap().iter().find(|l| l["direction"] == "forward").unwrap().clone()
    };
    let run = |secs: &str, flood: &mut dyn FnMut()| {
        let sink = tb.spawn_exec("victim", "y", &["tool", "udp-sink", "--seconds", "9", "--json"]);
        std::thread::sleep(Duration::from_millis(300));
        flood();
        let out = tb.exec(
            "victim",
            "x",
            &["tool", "udp-send", "10.0.0.2:9999", "--rate", "15Mbit", "--seconds", secs, "--json"],
        );
        assert!(out.status.success(), "{}", text(&out));
        let _ = sink.wait_with_output();
    };

    // The normal case: the aggressor floods its own link at 200 Mbit/s through netslice.
    let mut aggr = None;
    run("6", &mut || {
        aggr = Some(tb.spawn_exec(
            "aggr",
            "x",
            &["tool", "udp-send", "10.0.0.2:9999", "--rate", "200Mbit", "--seconds", "6"],
        ));
    });
    let _ = aggr.take().unwrap().wait_with_output();
    std::thread::sleep(Duration::from_secs(3)); // the last seconds reach the manager
    let (ok, v) = check("14s");
    let l = fwd(&v);
    let windows = l["windows"].as_array().unwrap();
    let busy: Vec<_> = windows.iter().filter(|w| w["offered_bps"].as_f64().unwrap() > 10e6).collect();
    eprintln!(
        "normal case: {} windows judged, {} with the victim sending; violated {}",
        windows.len(),
        busy.len(),
        l["violated"]
    );
    assert!(busy.len() >= 4, "the victim's sending seconds were judged: {l}");
    assert!(ok && l["violated"] == 0, "every window met while the aggressor flooded through netslice: {v}");

    // Isolation broken from outside: traffic netslice does not carry floods
    // the physical link h1 -> h2 (100 Mbit/s) from h1's own namespace.
    std::thread::sleep(Duration::from_secs(2));
    let ns = format!("{}.h1", tb.name);
    let neigh = Command::new("ip").args(["-n", &ns, "-j", "neigh"]).output().unwrap();
    let neigh: serde_json::Value = serde_json::from_slice(&neigh.stdout).unwrap();
    let peer = neigh
        .as_array()
        .unwrap()
        .iter()
        .find_map(|n| n["dst"].as_str().filter(|a| a.contains('.')))
        .unwrap()
        .to_string();
    let mut cross = None;
    run("6", &mut || {
        cross = Some(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    EXE,
                    "tool",
                    "udp-send",
                    &format!("{peer}:9"),
                    "--rate",
                    "400Mbit",
                    "--seconds",
                    "6",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    });
    let st = cross.take().unwrap().wait().unwrap();
    eprintln!("cross traffic to {peer} in {ns}: {st}");
    std::thread::sleep(Duration::from_secs(3));
    let (ok, v) = check("14s");
    let l = fwd(&v);
    let violated: Vec<_> = l["windows"].as_array().unwrap().iter().filter(|w| w["verdict"] == "violated").collect();
    eprintln!("broken isolation: {} windows violated; {l}", violated.len());
    assert!(!ok, "slice check exits 1 when a window was violated");
    assert!(violated.len() >= 3, "{v}");
    assert!(violated.iter().all(|w| w["why"].as_str().unwrap_or("").contains("lost between hosts")), "{v}");
    let table = tb.cli(&["slice", "check", "victim", "--since", "12s"]);
    assert!(text(&table).contains("violated"), "{}", text(&table));

    // The manager counts the same verdicts for Prometheus.
    let st = tb.state();
    let tbdir = Path::new(st["dir"].as_str().unwrap()).to_path_buf();
    let token = std::fs::read_to_string(tbdir.join("operator.token")).unwrap();
    let (ok, m) = curl(&[
        "--cacert",
        tbdir.join("tls").join("cert.pem").to_str().unwrap(),
        "-H",
        &format!("Authorization: Bearer {}", token.trim()),
        &format!("{}/metrics", st["manager_url"].as_str().unwrap()),
    ]);
    assert!(ok, "{m}");
    let windows = |verdict: &str| {
        sample(
            &m,
            &format!("netslice_guarantee_windows_total{{slice=\"victim\",link=\"l\",direction=\"forward\",verdict=\"{verdict}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(windows("met") >= 4.0 && windows("violated") >= 3.0, "guarantee windows in the metrics:\n{m}");
    assert_eq!(promtool(&m), "", "promtool on the manager's metrics");
}
