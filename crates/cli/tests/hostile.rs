//! The hostile-client suite: a real manager process under deep, huge, slow
//! and malformed bodies, bad queries, path tricks, encodings and credential
//! tricks from several tokens at once, while a well-behaved client measures
//! its own latency. Every hostile request must get a 4xx within its bound
//! (a client that never finishes its request head is cut off instead: there
//! is no request to answer), the well-behaved client's p99 must stay under
//! 100 ms, and nothing may change. No root needed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::mgr::*;
use common::raw::{Answer, exchange, head};
use common::*;
use serde_json::Value;

/// What a hostile request must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// An answer with a 4xx status within the bound.
    Status4xx,
    /// This status.
    Exactly(u16),
    /// The connection closed (or a 4xx) within the bound: the client never
    /// completed its request head.
    Closed,
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    parts: Vec<(Duration, Vec<u8>)>,
    expect: Expect,
    bound: Duration,
}

fn case(name: &str, parts: Vec<(Duration, Vec<u8>)>, expect: Expect, bound: Duration) -> Case {
    Case { name: name.into(), parts, expect, bound }
}

fn now(bytes: Vec<u8>) -> Vec<(Duration, Vec<u8>)> {
    vec![(Duration::ZERO, bytes)]
}

/// A request with a body, sent at once.
fn with_body(method: &str, path: &str, token: Option<&str>, ct: &str, body: &[u8]) -> Vec<(Duration, Vec<u8>)> {
    let len = format!("Content-Length: {}", body.len());
    let ctype = format!("Content-Type: {ct}");
    let mut b = head(method, path, token, &[&len, &ctype]);
    b.extend_from_slice(body);
    now(b)
}

const FAST: Duration = Duration::from_secs(2);

/// Requests answered at once: bodies, queries, paths, encodings, credentials.
fn fast_cases(tok: &str) -> Vec<Case> {
    let t = Some(tok);
    let deep = 100_000;
    let mut v = Vec::new();
    let body = |name: &str, ct: &str, b: Vec<u8>, e: Expect| {
        case(name, with_body("PUT", "/api/v1/slices/x", t, ct, &b), e, FAST)
    };
    // Deep and huge.
    v.push(body(
        "deep JSON arrays",
        "application/json",
        format!("{{\"name\": \"x\", \"nodes\": {}{}}}", "[".repeat(deep), "]".repeat(deep)).into_bytes(),
        Expect::Exactly(400),
    ));
    v.push(body(
        "deep YAML flow sequences",
        "application/yaml",
        format!("name: x\nnodes: {}{}\n", "[".repeat(deep), "]".repeat(deep)).into_bytes(),
        Expect::Exactly(400),
    ));
    v.push(body(
        "deep YAML flow mappings",
        "text/plain",
        format!("name: x\nnodes: {}{}\n", "{a: ".repeat(deep / 2), "}".repeat(deep / 2)).into_bytes(),
        Expect::Exactly(400),
    ));
    v.push(body(
        "deep YAML blocks",
        "application/yaml",
        format!("name: x\nnodes:\n{}", (0..200).map(|i| format!("{}-\n", " ".repeat(2 * i + 2))).collect::<String>())
            .into_bytes(),
        Expect::Exactly(400),
    ));
    let mut bomb = String::from("name: x\nnodes: []\nl0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..9 {
        bomb.push_str(&format!("l{i}: &l{i} [{}]\n", vec![format!("*l{}", i - 1); 10].join(", ")));
    }
    v.push(body("YAML alias bomb", "application/yaml", bomb.into_bytes(), Expect::Exactly(400)));
    v.push(case(
        "2 MiB declared",
        now(head("PUT", "/api/v1/slices/x", t, &["Content-Length: 2097152", "Content-Type: application/json"])),
        Expect::Exactly(413),
        FAST,
    ));
    let mut chunked = now(head("PUT", "/api/v1/slices/x", t, &["Transfer-Encoding: chunked"]));
    for _ in 0..20 {
        chunked.push((Duration::ZERO, format!("10000\r\n{}\r\n", "a".repeat(65536)).into_bytes()));
    }
    v.push(case("1.25 MiB chunked", chunked, Expect::Exactly(413), FAST));
    // Malformed.
    for (name, ct, b) in [
        ("truncated JSON", "application/json", b"{\"name\": ".to_vec()),
        ("binary", "application/octet-stream", vec![0, 1, 2, 3, 0xff]),
        ("invalid UTF-8", "application/yaml", b"name: \xc3\x28\n".to_vec()),
        ("YAML syntax", "application/yaml", b"name: [\n".to_vec()),
        ("wrong types", "application/json", br#"{"name": 5, "nodes": "many"}"#.to_vec()),
        ("unknown field", "application/json", br#"{"name": "x", "nodes": [{"name": "a"}], "evil": 1}"#.to_vec()),
        ("lone surrogate", "application/json", br#"{"name": "\ud800", "nodes": []}"#.to_vec()),
        ("empty", "application/json", Vec::new()),
        ("NUL in a name", "application/json", b"{\"name\": \"x\\u0000\", \"nodes\": [{\"name\": \"a\"}]}".to_vec()),
        ("YAML said JSON", "application/json", b"name: x\nnodes: [{name: a}]\n".to_vec()),
        ("form encoding", "application/x-www-form-urlencoded", b"name=x&nodes=a".to_vec()),
        ("huge numbers", "application/json", br#"{"name": "x", "nodes": [{"name": "a", "cpu": 1e400}]}"#.to_vec()),
        ("negative memory", "application/yaml", b"name: x\nnodes: [{name: a, memory: -5}]\n".to_vec()),
        ("unplaceable", "application/yaml", b"name: x\nnodes: [{name: a, cpu: 200}]\n".to_vec()),
    ] {
        v.push(body(name, ct, b, Expect::Status4xx));
    }
    v.push(case(
        "gzip that is not",
        with_body("PUT", "/api/v1/slices/x", t, "application/json", b"\x1f\x8b\x08garbage")
            .into_iter()
            .map(|(d, b)| {
                (
                    d,
                    String::from_utf8_lossy(&b)
                        .replace("Connection: close", "Connection: close\r\nContent-Encoding: gzip")
                        .into_bytes(),
                )
            })
            .collect(),
        Expect::Status4xx,
        FAST,
    ));
    // Queries.
    for q in ["dry_run=maybe", "dry_run=true&dry_run=false", "x=1", "dry_run=%ff%fe", "%zz", "dry_run"] {
        v.push(case(
            &format!("query {q}"),
            with_body("PUT", &format!("/api/v1/slices/x?{q}"), t, "application/yaml", b"name: x\nnodes: [{name: a}]\n"),
            Expect::Exactly(400),
            FAST,
        ));
    }
    v.push(case(
        "audit query as a developer",
        now(head("GET", "/api/v1/audit?after=-1", t, &[])),
        Expect::Status4xx,
        FAST,
    ));
    // Paths.
    let long = format!("/api/v1/slices/{}", "a".repeat(10_000));
    for p in [
        "/api/v1/slices/..%2F..%2Fusers%2Fgood",
        "/api/v1/slices/%2e%2e/users/good",
        "/api/v1/slices/mine/../../users/good",
        "/api/v1/slices/%00",
        "/api/v1/slices/m%C3%AFne",
        "/api/v1/slices/%ff",
        "//api//v1//slices//mine",
        "/api/v1/users/good%2F..",
        "/api/v1/nodes/a/config?wait=99999999999999999999999",
        long.as_str(),
    ] {
        for m in ["GET", "DELETE"] {
            v.push(case(&format!("{m} {}", &p[..p.len().min(60)]), now(head(m, p, t, &[])), Expect::Status4xx, FAST));
        }
    }
    v.push(case("TRACE", now(head("TRACE", "/api/v1/slices", t, &[])), Expect::Exactly(405), FAST));
    // Another developer's slice and the operators' routes.
    v.push(case(
        "delete another's slice",
        now(head("DELETE", "/api/v1/slices/mine", t, &[])),
        Expect::Exactly(403),
        FAST,
    ));
    v.push(case(
        "renew another's slice",
        with_body("POST", "/api/v1/slices/mine/renew", t, "application/json", b"{}"),
        Expect::Exactly(403),
        FAST,
    ));
    v.push(case("revoke a user", now(head("DELETE", "/api/v1/users/good", t, &[])), Expect::Exactly(403), FAST));
    v.push(case(
        "add an operator",
        with_body("POST", "/api/v1/users", t, "application/json", br#"{"name": "evil", "role": "operator"}"#),
        Expect::Exactly(403),
        FAST,
    ));
    v.push(case(
        "an agent's report",
        with_body("POST", "/api/v1/nodes/a/status", t, "application/json", b"{}"),
        Expect::Status4xx,
        FAST,
    ));
    // Credentials.
    for (name, auth) in [
        ("no token", None),
        ("empty bearer", Some("Authorization: Bearer ")),
        ("wrong token", Some("Authorization: Bearer 0000")),
        ("basic auth", Some("Authorization: Basic YWRtaW46YWRtaW4=")),
    ] {
        let extra: Vec<&str> = auth.into_iter().collect();
        v.push(case(name, now(head("GET", "/api/v1/slices", None, &extra)), Expect::Exactly(401), FAST));
    }
    v.push(case(
        "registration without the enrollment token",
        with_body("POST", "/api/v1/nodes/a/register", t, "application/json", br#"{"version": "x"}"#),
        Expect::Exactly(401),
        FAST,
    ));
    // Framing.
    let big_header = format!("X-Big: {}", "b".repeat(100_000));
    v.push(case("100 KB header", now(head("GET", "/api/v1/slices", t, &[&big_header])), Expect::Status4xx, FAST));
    v.push(case("garbage request line", now(b"GARBAGE\r\n\r\n".to_vec()), Expect::Exactly(400), FAST));
    v.push(case(
        "two Content-Lengths",
        now(head("PUT", "/api/v1/slices/x", t, &["Content-Length: 5", "Content-Length: 7"])),
        Expect::Exactly(400),
        FAST,
    ));
    v
}

/// Requests that trickle: each must be cut off in bounded time.
fn slow_cases(tok: &str) -> Vec<Case> {
    let t = Some(tok);
    let mut slow_body =
        now(head("PUT", "/api/v1/slices/x", t, &["Content-Length: 100", "Content-Type: application/yaml"]));
    for _ in 0..30 {
        slow_body.push((Duration::from_secs(1), b"n".to_vec()));
    }
    let mut slow_head = now(b"PUT /api/v1/slices/x HTTP/1.1\r\n".to_vec());
    for _ in 0..30 {
        slow_head.push((Duration::from_secs(1), b"X".to_vec()));
    }
    let bound = Duration::from_secs(12);
    vec![
        case("a body byte a second", slow_body, Expect::Exactly(408), bound),
        case("a header byte a second", slow_head, Expect::Closed, bound),
        case("a silent connection", vec![(Duration::from_secs(30), Vec::new())], Expect::Closed, bound),
    ]
}

fn check(c: &Case, a: &Answer) -> Result<(), String> {
    let ok = match c.expect {
        Expect::Status4xx => a.status.is_some_and(|s| (400..500).contains(&s)),
        Expect::Exactly(s) => a.status == Some(s),
        Expect::Closed => a.status.is_none_or(|s| (400..500).contains(&s)),
    };
    if !ok {
        return Err(format!(
            "{}: expected {:?}, got {:?} {}",
            c.name,
            c.expect,
            a.status,
            &a.body[..a.body.len().min(300)]
        ));
    }
    if a.elapsed > c.bound {
        return Err(format!("{}: answered after {:?}, more than {:?}", c.name, a.elapsed, c.bound));
    }
    // Answers the API itself gives are in its error format.
    if let Some(s) = a.status
        && a.body.starts_with('{')
    {
        let v: Value = serde_json::from_str(&a.body).map_err(|e| format!("{}: {e}: {}", c.name, a.body))?;
        if v["code"].as_str().is_none() || v["detail"].as_str().is_none_or(str::is_empty) {
            return Err(format!("{}: {s} without code and detail: {}", c.name, a.body));
        }
    }
    Ok(())
}

fn snapshot(m: &Manager) -> (Value, Value, usize) {
    (
        m.json(&["slice", "list", "--json"]),
        m.json(&["substrate", "show", "--json"]),
        m.json(&["audit", "--json"]).as_array().unwrap().len(),
    )
}

#[test]
fn hostile_clients_get_4xx_in_bounded_time_and_cannot_slow_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let good = m.user("good");
    let hostile: Vec<String> = ["h1", "h2", "h3", "h4"].iter().map(|h| m.secret(&m.user(h))).collect();
    let spec = dir.path().join("mine.yaml");
    std::fs::write(&spec, two_nodes("mine", "1Mbit").replace("cpu: 1", "cpu: 0.5")).unwrap();
    let out = run(&mut m.cli(&good, &["slice", "apply", "-f", spec.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    let before = snapshot(&m);
    let cert = m.dir.join("tls/cert.pem");
    let url = m.url.clone();

    // The well-behaved client: its slice and /healthz over one kept-alive connection.
    let done = Arc::new(AtomicBool::new(false));
    let good_secret = m.secret(&good);
    let good_client = {
        let (done, http, url) = (done.clone(), m.http(), url.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut lat = Vec::new();
                let mut failures = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    for path in ["/api/v1/slices/mine", "/healthz"] {
                        let t = Instant::now();
                        let r = http.get(format!("{url}{path}")).bearer_auth(&good_secret).send().await;
                        let ok = match r {
                            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                            Ok(r) => {
                                failures.push(format!("{path}: {}", r.status()));
                                false
                            }
                            Err(e) => {
                                failures.push(format!("{path}: {e}"));
                                false
                            }
                        };
                        if ok {
                            lat.push(t.elapsed());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (lat, failures)
            })
        })
    };

    // Hostile clients: the slow ones from h1, 12 slow bodies at once from h4
    // (more than its 8 in flight), and every fast case in a loop from h1, h2
    // and h3 until the slow ones are done.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (results, rounds) = rt.block_on(async {
        let mut slow = tokio::task::JoinSet::new();
        for c in slow_cases(&hostile[0]) {
            let (url, cert) = (url.clone(), cert.clone());
            slow.spawn(async move {
                let a = exchange(&url, &cert, c.parts.clone(), c.bound + Duration::from_secs(5)).await;
                (c, a)
            });
        }
        let mut crowd = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (url, cert) = (url.clone(), cert.clone());
            let mut parts = now(head(
                "PUT",
                "/api/v1/slices/x",
                Some(&hostile[3]),
                &["Content-Length: 50", "Content-Type: text/plain"],
            ));
            parts.push((Duration::from_secs(30), b"x".to_vec()));
            crowd.spawn(async move { exchange(&url, &cert, parts, Duration::from_secs(17)).await });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut loops = tokio::task::JoinSet::new();
        for tok in &hostile[..3] {
            let (url, cert, stop, cases) = (url.clone(), cert.clone(), stop.clone(), fast_cases(tok));
            loops.spawn(async move {
                let mut out = Vec::new();
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) || rounds == 0 {
                    for c in &cases {
                        let a = exchange(&url, &cert, c.parts.clone(), c.bound + Duration::from_secs(3)).await;
                        out.push((c.clone(), a));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    rounds += 1;
                }
                (out, rounds)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = slow.join_next().await {
            results.push(r.unwrap());
        }
        let mut crowd_status = Vec::new();
        while let Some(a) = crowd.join_next().await {
            crowd_status.push(a.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        let mut rounds = 0;
        while let Some(r) = loops.join_next().await {
            let (out, n) = r.unwrap();
            results.extend(out);
            rounds += n;
        }
        // The crowd: some refused at once for being too many, the rest cut off.
        let too_many = crowd_status.iter().filter(|a| a.status == Some(429)).count();
        let timed_out = crowd_status.iter().filter(|a| a.status == Some(408)).count();
        assert!(too_many >= 4 && too_many + timed_out == 12, "{crowd_status:?}");
        assert!(
            crowd_status.iter().filter(|a| a.status == Some(429)).all(|a| a.elapsed < Duration::from_secs(2)),
            "429s come at once: {crowd_status:?}"
        );
        (results, rounds)
    });
    done.store(true, Ordering::Relaxed);
    let (mut lat, failures) = good_client.join().unwrap();

    let problems: Vec<String> = results.iter().filter_map(|(c, a)| check(c, a).err()).collect();
    eprintln!("{} hostile requests ({rounds} rounds of the fast cases), {} problems", results.len(), problems.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(failures.is_empty(), "the good client failed: {failures:?}");
    lat.sort();
    assert!(lat.len() > 100, "the good client made {} requests", lat.len());
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    eprintln!(
        "good client: {} requests, p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        p(0.5),
        p(0.99),
        lat.last().unwrap()
    );
    assert!(p(0.99) < Duration::from_millis(100), "p99 {:?} (p50 {:?})", p(0.99), p(0.5));
    assert_eq!(snapshot(&m), before, "hostile requests changed nothing");
    assert!(!m.log().contains("panicked"), "{}", m.log());
}
