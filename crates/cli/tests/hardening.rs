//! Regression tests of the hardening review (issue 14): each test names the
//! review item it covers and failed before its fix. A real manager process
//! on loopback, the real CLI and raw HTTPS requests; no root needed.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::mgr::*;
use common::*;
use serde_json::{Value, json};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A raw request: (status, body as JSON or Null, elapsed).
fn req(
    m: &Manager,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, Value, Duration) {
    let http = m.http();
    let url = format!("{}{path}", m.url);
    rt().block_on(async {
        let mut r = http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some((ct, b)) = body {
            r = r.header("content-type", ct).body(b);
        }
        let t = Instant::now();
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), t.elapsed())
    })
}

/// Asserts an answer in the API's error format with this status and code.
fn api_error(r: &(u16, Value, Duration), status: u16, code: &str) {
    assert_eq!(r.0, status, "{r:?}");
    assert_eq!(r.1["code"], code, "{r:?}");
    assert!(r.1["detail"].as_str().is_some_and(|m| !m.is_empty()), "an error says what is wrong: {r:?}");
}

fn spec_file(m: &Manager, name: &str, text: &str) -> String {
    let f = m.dir.join(name);
    std::fs::write(&f, text).unwrap();
    f.to_str().unwrap().to_string()
}

/// Item 1: names become URL paths unescaped.
#[test]
fn names_are_checked_and_encoded_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let admin = m.admin();
    let dave = m.user("dave");
    let f = spec_file(&m, "x.yaml", &two_nodes("x", "1Mbit").replace("cpu: 1", "cpu: 0.5"));
    let out = run(&mut m.cli(&admin, &["slice", "apply", "-f", &f, "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    let audit_before = m.json(&["audit", "--json"]).as_array().unwrap().len();

    // The review: `slice delete ../users/dave` revoked dave; `user revoke
    // ../slices/x` deleted x; `slice show ../etc` printed an empty 404.
    for (args, what) in [
        (&["slice", "delete", "../users/dave", "--wait", "0"][..], "slice name"),
        (&["user", "revoke", "../slices/x"], "user name"),
        (&["slice", "show", "../etc"], "slice name"),
        (&["slice", "renew", "x/../../users/dave"], "slice name"),
        (&["slice", "exec", "../x", "a", "--", "true"], "slice name"),
    ] {
        let out = run(&mut m.cli(&admin, args));
        let t = text(&out);
        assert!(!out.status.success(), "{args:?}: {t}");
        assert!(t.contains(what) && t.contains("not a valid") || t.contains("not a user name"), "{args:?}: {t}");
    }
    let out = run(&mut m.cli(&dave, &["whoami"]));
    assert!(out.status.success() && text(&out).contains("dave (developer)"), "dave is not revoked: {}", text(&out));
    let out = run(&mut m.cli(&admin, &["slice", "show", "x"]));
    assert!(out.status.success(), "x is not deleted: {}", text(&out));
    assert_eq!(m.json(&["audit", "--json"]).as_array().unwrap().len(), audit_before, "nothing changed");

    // The API checks names in paths too, whatever a client sends.
    let tok = m.secret(&admin);
    // (Raw requests: an HTTP client library would resolve `%2e%2e` itself.)
    for path in
        ["/api/v1/slices/..%2Fusers%2Fdave", "/api/v1/slices/%2e%2e", "/api/v1/users/a%2Fb", "/api/v1/slices/RED"]
    {
        let a = rt().block_on(raw::exchange(
            &m.url,
            &m.dir.join("tls/cert.pem"),
            vec![(Duration::ZERO, raw::head("DELETE", path, Some(&tok), &[]))],
            Duration::from_secs(5),
        ));
        assert_eq!(a.status, Some(400), "{path}: {a:?}");
        assert_eq!(a.json()["errors"][0]["field"], "name", "{path}: {a:?}");
    }
    api_error(&req(&m, Some(&tok), "GET", "/api/v1/nodes/..%2F..%2Fx/config", None), 400, "invalid");
}

/// Item 2: deep nesting stalled the manager (21 s for 100,000 levels).
#[test]
fn deeply_nested_bodies_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let tok = m.secret(&m.admin());
    let deep = 100_000;
    let bodies = [
        ("application/json", format!("{{\"name\": \"x\", \"nodes\": {}{}}}", "[".repeat(deep), "]".repeat(deep))),
        ("application/yaml", format!("name: x\nnodes: {}{}\n", "[".repeat(deep), "]".repeat(deep))),
        ("text/plain", format!("name: x\nnodes: {}{}\n", "{a: ".repeat(deep / 2), "}".repeat(deep / 2))),
    ];
    for (ct, body) in bodies {
        let r = req(&m, Some(&tok), "PUT", "/api/v1/slices/x", Some((ct, body.into_bytes())));
        api_error(&r, 400, "invalid");
        assert!(r.1["errors"][0]["message"].as_str().unwrap().contains("deeper than 32 levels"), "{r:?}");
        assert!(r.2 < Duration::from_secs(1), "{ct}: refused in {:?}", r.2);
    }
    // The CLI refuses the same file before sending it.
    let f = spec_file(&m, "deep.yaml", &format!("name: x\nnodes: {}{}\n", "[".repeat(deep), "]".repeat(deep)));
    let t0 = Instant::now();
    let out = run(&mut m.cli(&m.admin(), &["slice", "apply", "-f", &f]));
    assert!(!out.status.success() && text(&out).contains("deeper than 32 levels"), "{}", text(&out));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

/// Item 3: valid JSON (`json.dumps` of an emoji) was refused.
#[test]
fn json_bodies_are_parsed_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let tok = m.secret(&m.admin());
    let spec = json!({"name": "emoji", "description": "EMOJI", "nodes": [{"name": "a"}]}).to_string();
    // What Python's json.dumps writes: an escaped surrogate pair.
    let spec = spec.replace("EMOJI", "\\ud83d\\ude00 party");
    for ct in ["application/json", "application/yaml; charset=utf-8", "text/plain"] {
        let r = req(&m, Some(&tok), "PUT", "/api/v1/slices/emoji?dry_run=true", Some((ct, spec.clone().into_bytes())));
        assert_eq!(r.0, 200, "{ct}: {r:?}");
    }
    let f = spec_file(&m, "emoji.json", &spec);
    let out = run(&mut m.cli(&m.admin(), &["slice", "apply", "-f", &f, "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    let info = m.json(&["slice", "show", "emoji", "--json"]);
    assert_eq!(info["spec"]["description"], "\u{1F600} party");
}

/// Item 4: errors outside the JSON error format, or naming the wrong thing.
#[test]
fn every_error_is_in_the_api_format_and_names_the_right_thing() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let tok = m.secret(&m.admin());
    // Oversized: 413 in the error format, from Content-Length and from a body without one.
    let big = vec![b'a'; (1 << 20) + 1];
    api_error(
        &req(&m, Some(&tok), "PUT", "/api/v1/slices/x", Some(("application/yaml", big.clone()))),
        413,
        "too_large",
    );
    // Chunked, with no Content-Length: refused once the limit is passed.
    let mut parts =
        vec![(Duration::ZERO, raw::head("PUT", "/api/v1/slices/x", Some(&tok), &["Transfer-Encoding: chunked"]))];
    for _ in 0..20 {
        parts.push((Duration::ZERO, format!("{:x}\r\n{}\r\n", 64 << 10, "a".repeat(64 << 10)).into_bytes()));
    }
    let a = rt().block_on(raw::exchange(&m.url, &m.dir.join("tls/cert.pem"), parts, Duration::from_secs(10)));
    assert_eq!((a.status, a.json()["code"].as_str()), (Some(413), Some("too_large")), "chunked: {a:?}");
    // A bad node-status body (was a plain-text 422), from the host's own agent.
    let cred = enroll(&m, "a");
    let r =
        req(&m, Some(&cred), "POST", "/api/v1/nodes/a/status", Some(("application/json", b"{\"host\": 5}".to_vec())));
    api_error(&r, 400, "invalid");
    assert!(r.1["detail"].as_str().unwrap().contains("report"), "{r:?}");
    assert_eq!(r.1["errors"][0]["field"], "host", "{r:?}");
    // Renew with {"for": "48h"} works; a bad one names the renew request and its field.
    let f = spec_file(&m, "r.yaml", &two_nodes("r", "1Mbit"));
    assert!(run(&mut m.cli(&m.admin(), &["slice", "apply", "-f", &f, "--wait", "0"])).status.success());
    let r = req(
        &m,
        Some(&tok),
        "POST",
        "/api/v1/slices/r/renew",
        Some(("application/json", br#"{"for": "48h"}"#.to_vec())),
    );
    assert_eq!(r.0, 200, "{r:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(r.1["expires"].as_u64().unwrap().abs_diff(now + 48 * 3600) < 60, "{r:?}");
    let r = req(
        &m,
        Some(&tok),
        "POST",
        "/api/v1/slices/r/renew",
        Some(("application/json", br#"{"for": "soon"}"#.to_vec())),
    );
    api_error(&r, 400, "invalid");
    assert_eq!(r.1["detail"], "invalid renew request", "{r:?}");
    assert_eq!(r.1["errors"][0]["field"], "for", "{r:?}");
    // A huge burst names the burst and its unit, not "memory".
    let burst = two_nodes("b", "1Mbit").replace("bandwidth: 1Mbit,", "bandwidth: 1Mbit, burst: 18446744073709551615,");
    let r = req(&m, Some(&tok), "PUT", "/api/v1/slices/b", Some(("application/yaml", burst.into_bytes())));
    api_error(&r, 400, "invalid");
    let e = &r.1["errors"][0];
    assert_eq!(e["field"], "links[0].burst", "{r:?}");
    assert!(
        e["message"].as_str().unwrap().contains("outside one frame") && !r.1.to_string().contains("memory"),
        "{r:?}"
    );
    // Unknown paths and methods, bad and unknown query parameters, bad UTF-8.
    api_error(&req(&m, Some(&tok), "GET", "/api/v2/slices", None), 404, "not_found");
    api_error(&req(&m, Some(&tok), "PATCH", "/api/v1/slices", None), 405, "method_not_allowed");
    let r = req(
        &m,
        Some(&tok),
        "PUT",
        "/api/v1/slices/r?dry_run=maybe",
        Some(("application/yaml", f.clone().into_bytes())),
    );
    api_error(&r, 400, "invalid");
    assert_eq!(r.1["errors"][0]["field"], "dry_run", "{r:?}");
    let r = req(&m, Some(&tok), "PUT", "/api/v1/slices/r?dryrun=true", Some(("application/yaml", b"x".to_vec())));
    api_error(&r, 400, "invalid");
    assert!(r.1.to_string().contains("dryrun"), "a typo of dry_run must not apply for real: {r:?}");
    api_error(
        &req(&m, Some(&tok), "POST", "/api/v1/users", Some(("application/json", vec![0xff, 0xfe]))),
        400,
        "invalid",
    );
    api_error(&req(&m, None, "GET", "/api/v1/slices", None), 401, "unauthorized");
    // A registration without the enrollment token is refused before its body is parsed.
    let deep = format!("{{\"version\": {}{}}}", "[".repeat(50_000), "]".repeat(50_000));
    api_error(
        &req(&m, Some("nope"), "POST", "/api/v1/nodes/a/register", Some(("application/json", deep.into_bytes()))),
        401,
        "invalid_token",
    );
    // Renew: a duration shorter than a second or longer than the maximum names `for`.
    for d in ["500ms", "30d"] {
        let body = format!("{{\"for\": \"{d}\"}}").into_bytes();
        let r = req(&m, Some(&tok), "POST", "/api/v1/slices/r/renew", Some(("application/json", body)));
        api_error(&r, 400, "invalid");
        assert_eq!(
            (r.1["detail"].as_str(), r.1["errors"][0]["field"].as_str()),
            (Some("invalid renew request"), Some("for")),
            "{d}: {r:?}"
        );
    }
    // A YAML flow document (it starts with `{`, like JSON) goes through the CLI as YAML.
    let flow = spec_file(&m, "flow.yaml", "{name: flow, nodes: [{name: a}]}");
    let out = run(&mut m.cli(&m.admin(), &["slice", "apply", "--dry-run", "-f", &flow]));
    assert!(out.status.success(), "{}", text(&out));
}

/// The agent credential of host `h`, enrolled with the enrollment token.
fn enroll(m: &Manager, h: &str) -> String {
    let enroll = std::fs::read_to_string(m.dir.join("enroll.token")).unwrap();
    let r = req(
        m,
        Some(enroll.trim()),
        "POST",
        &format!("/api/v1/nodes/{h}/register"),
        Some(("application/json", br#"{"version": "test"}"#.to_vec())),
    );
    assert_eq!(r.0, 200, "{r:?}");
    r.1["credential"].as_str().unwrap().to_string()
}

/// Item 5: one duration grammar everywhere.
#[test]
fn durations_read_the_same_in_specs_the_api_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let f = spec_file(&m, "l.yaml", &format!("lease: 7d\n{}", two_nodes("l", "1Mbit")));
    let out = run(&mut m.cli(&m.admin(), &["slice", "apply", "-f", &f, "--wait", "0"]));
    assert!(out.status.success(), "lease: 7d in a spec: {}", text(&out));
    let out = run(&mut m.cli(&m.admin(), &["slice", "renew", "l", "--for", "7d"]));
    assert!(out.status.success(), "{}", text(&out));
    // A bare number is refused the same way everywhere.
    let f = spec_file(&m, "l2.yaml", &format!("lease: 7\n{}", two_nodes("l2", "1Mbit")));
    let out = run(&mut m.cli(&m.admin(), &["slice", "apply", "-f", &f]));
    assert!(text(&out).contains("lease") && text(&out).contains("needs a unit"), "{}", text(&out));
    let out = run(&mut m.cli(&m.admin(), &["slice", "renew", "l", "--for", "7"]));
    assert!(!out.status.success() && text(&out).contains("needs a unit"), "{}", text(&out));
    let out = run(std::process::Command::new(EXE).args(["manager", "--lease-max", "7", "--db", "/nonexistent/x.db"]));
    assert!(!out.status.success() && text(&out).contains("needs a unit"), "{}", text(&out));
}

/// Item 6: a closed pipe made `netslice types | head -1` panic (exit 101).
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let f = spec_file(&m, "p.yaml", &two_nodes("p", "1Mbit"));
    let apply = ["slice", "apply", "--dry-run", "-f", f.as_str()];
    // A traffic tool too (it prints its summary when its second is up).
    let sink = ["tool", "udp-sink", "--listen", "127.0.0.1:0", "--seconds", "1", "--json"];
    for args in [&["types", "--builtin"][..], &["types"], &["substrate", "show"], &["node", "list"], &apply, &sink] {
        let mut cmd = if args[0] == "tool" {
            let mut c = std::process::Command::new(EXE);
            c.args(args);
            c
        } else {
            m.cli(&m.admin(), args)
        };
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Close the reading end before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?} ends quietly (or by SIGPIPE, as `ls` would): {:?} {err}",
            out.status
        );
    }
}

/// Item 8: revocations were not logged and deletions did not name the caller.
#[test]
fn every_change_is_in_the_audit_trail_with_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let admin = m.admin();
    let alice = m.user("alice");
    let f = spec_file(&m, "a.yaml", &two_nodes("a", "1Mbit"));
    for (tok, args) in [
        (&alice, &["slice", "apply", "-f", f.as_str(), "--wait", "0"][..]),
        (&alice, &["slice", "renew", "a", "--for", "2h"]),
        (&admin, &["slice", "delete", "a", "--wait", "0"]),
        (&admin, &["user", "revoke", "alice"]),
    ] {
        let out = run(&mut m.cli(tok, args));
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    let trail = m.json(&["audit", "--json"]);
    let rows: Vec<(String, String, String, String)> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("caller"), s("role"), s("action"), s("object"))
        })
        .collect();
    let want = [
        ("system", "system", "user.add", "admin"),
        ("admin", "operator", "user.add", "alice"),
        ("alice", "developer", "slice.create", "a"),
        ("alice", "developer", "slice.renew", "a"),
        ("admin", "operator", "slice.delete", "a"),
        ("admin", "operator", "user.revoke", "alice"),
    ];
    let want: Vec<(String, String, String, String)> =
        want.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string())).collect();
    assert_eq!(rows, want, "{trail}");
    assert!(m.log().contains("audit: admin (operator) user.revoke alice"), "{}", m.log());
    assert!(m.log().contains("audit: admin (operator) slice.delete a"), "{}", m.log());
    // Developers may not read it; it survives a restart.
    let bob = m.user("bob");
    let out = run(&mut m.cli(&bob, &["audit"]));
    assert!(!out.status.success() && text(&out).contains("only operators"), "{}", text(&out));
    let mut m = m;
    m.restart();
    assert_eq!(m.json(&["audit", "--json"]).as_array().unwrap().len(), rows.len() + 1, "bob's user.add too");
}

/// The manager closes a connection that sends nothing for 10 s (its header
/// timeout); netslice's own HTTP client drops idle connections before that,
/// so a request after a pause never lands on a connection being closed (the
/// demo's summary did, before).
#[test]
fn a_request_after_a_long_pause_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let tok = m.secret(&m.admin());
    let http = m.http();
    // As the demo does: a runtime driven only during each request, so the
    // pool cannot notice a close while it sits idle.
    let rt = rt();
    let url = format!("{}/api/v1/whoami", m.url);
    assert!(rt.block_on(http.get(&url).bearer_auth(&tok).send()).unwrap().status().is_success());
    std::thread::sleep(Duration::from_secs(11));
    let r = rt
        .block_on(http.post(format!("{}/api/v1/users", m.url)).bearer_auth(&tok).json(&json!({"name": "late"})).send());
    assert_eq!(r.expect("no reset after the pause").status(), 201);
}
