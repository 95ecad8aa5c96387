//! The REST API over real HTTP against a real manager (no root needed).

use std::time::Duration;

use netslice_model::Substrate;
use serde_json::Value;

const SUBSTRATE: &str = "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit}\n";
const RED: &str = "name: red\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h2}\nlinks:\n  - {name: l, bandwidth: 1Mbit, endpoints: [{node: a, address: 10.0.0.1/24}, {node: b, address: 10.0.0.2/24}]}\n";

struct Mgr {
    base: String,
    /// Operator client.
    c: Http,
    dir: std::path::PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    h: tokio::task::JoinHandle<()>,
}

/// A reqwest client that pins the manager's certificate and sends a token.
#[derive(Clone)]
struct Http {
    inner: reqwest::Client,
    token: String,
}

impl Http {
    fn new(dir: &std::path::Path, token: &str) -> Http {
        let inner = netslice_api::http::client(Some(&dir.join("tls/cert.pem")), Duration::from_secs(3)).unwrap();
        Http { inner, token: token.trim().to_string() }
    }
    fn get(&self, url: String) -> reqwest::RequestBuilder {
        self.inner.get(url).bearer_auth(&self.token)
    }
    fn put(&self, url: String) -> reqwest::RequestBuilder {
        self.inner.put(url).bearer_auth(&self.token)
    }
    fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.inner.post(url).bearer_auth(&self.token)
    }
    fn delete(&self, url: String) -> reqwest::RequestBuilder {
        self.inner.delete(url).bearer_auth(&self.token)
    }
}

async fn manager(dir: &std::path::Path) -> Mgr {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let opts = netslice_manager::Options::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("m.db"),
        Some(Substrate::from_text(SUBSTRATE).unwrap()),
    );
    let started = netslice_manager::start(opts, async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    assert_eq!(started.cert, dir.join("tls/cert.pem"));
    let serve = started.serve;
    let h = tokio::spawn(async move {
        serve.await.unwrap();
    });
    let token = std::fs::read_to_string(dir.join("operator.token")).unwrap();
    Mgr { base: format!("https://{}", started.addr), c: Http::new(dir, &token), dir: dir.to_path_buf(), stop: tx, h }
}

#[tokio::test]
async fn api_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c, stop, h, .. } = manager(dir.path()).await;

    let doc: Value = c.inner.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/api/v1/slices/{name}"]["put"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["SliceSpec"].is_object());

    // Unknown field: 400, field path and line.
    let r =
        c.put(format!("{base}/api/v1/slices/red")).body(RED.replace("{name: a,", "{nmae: a,")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "invalid");
    assert_eq!(e["errors"][0]["field"], "nodes[0]");
    assert_eq!(e["errors"][0]["line"], 3);
    // Semantic error: names the field.
    let r =
        c.put(format!("{base}/api/v1/slices/red")).body(RED.replace("{node: b,", "{node: zz,")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["field"], "links[0].endpoints[1].node");
    // Not JSON or YAML at all.
    let r = c.put(format!("{base}/api/v1/slices/red")).body("{{{").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // URL and body disagree.
    let r = c.put(format!("{base}/api/v1/slices/blue")).body(RED).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Unplaceable: pinned to a host that does not exist.
    let r = c.put(format!("{base}/api/v1/slices/red")).body(RED.replace("host: h2", "host: h9")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["field"], "nodes[1].host");
    let list: Value = c.get(format!("{base}/api/v1/slices")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list, Value::Array(vec![]), "refused requests created nothing");

    // Create, re-apply, watch.
    let r = c.put(format!("{base}/api/v1/slices/red")).body(RED).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = c.put(format!("{base}/api/v1/slices/red")).body(RED).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.post(format!("{base}/api/v1/slices")).body(RED).send().await.unwrap();
    assert_eq!(r.status(), 409);
    // Agents enroll with the enrollment token and use their own credential.
    let enroll = std::fs::read_to_string(dir.path().join("enroll.token")).unwrap();
    let reg: Value = c
        .inner
        .post(format!("{base}/api/v1/nodes/h1/register"))
        .bearer_auth(enroll.trim())
        .json(&serde_json::json!({"version": "test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent = Http::new(dir.path(), reg["credential"].as_str().unwrap());
    let r = c.get(format!("{base}/api/v1/nodes/h1/config?after=0&wait=1")).send().await.unwrap();
    assert_eq!(r.status(), 403, "an operator token is not an agent credential");
    let r = agent.get(format!("{base}/api/v1/nodes/h2/config?after=0&wait=1")).send().await.unwrap();
    assert_eq!(r.status(), 403, "h1's credential cannot act for h2");
    let r = agent.get(format!("{base}/api/v1/slices")).send().await.unwrap();
    assert_eq!(r.status(), 403, "agents do not read slices");
    let c_agent = agent.clone();
    let cfg: Value = c_agent
        .get(format!("{base}/api/v1/nodes/h1/config?after=0&wait=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rev = cfg["revision"].as_u64().unwrap();
    let epoch = cfg["epoch"].as_str().unwrap().to_string();
    assert_eq!(cfg["slivers"][0]["netns"], "lab.red.a");
    let r =
        c_agent.get(format!("{base}/api/v1/nodes/h1/config?after={rev}&epoch={epoch}&wait=1")).send().await.unwrap();
    assert_eq!(r.status(), 204, "no change within the wait");
    // A waiting watcher is woken by a change.
    let watch = tokio::spawn({
        let (c, base, epoch) = (c_agent.clone(), base.clone(), epoch.clone());
        async move {
            c.get(format!("{base}/api/v1/nodes/h1/config?after={rev}&epoch={epoch}&wait=30"))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.delete(format!("{base}/api/v1/slices/red")).send().await.unwrap();
    assert_eq!(r.status(), 202, "deletion finishes after the answer");
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), watch).await.unwrap().unwrap(), 200);
    let r = c.delete(format!("{base}/api/v1/slices/red")).send().await.unwrap();
    assert_eq!(r.status(), 202, "deleting a slice that is being deleted is a no-op");
    let r = c.delete(format!("{base}/api/v1/slices/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test]
async fn tokens_roles_and_ownership_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c: admin, stop, h, dir: d } = manager(dir.path()).await;
    // No token, a wrong token: 401 with a JSON error.
    let anon = Http::new(&d, "");
    let r = anon.inner.get(format!("{base}/api/v1/slices")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "unauthorized");
    let r = Http::new(&d, "0123").get(format!("{base}/api/v1/slices")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Plain HTTP is not spoken.
    let plain = reqwest::Client::new().get(base.replace("https://", "http://") + "/healthz").send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "plain HTTP must not be served");
    // The operator adds two developers.
    let who: Value = admin.get(format!("{base}/api/v1/whoami")).send().await.unwrap().json().await.unwrap();
    assert_eq!(who, serde_json::json!({"name": "admin", "role": "operator"}));
    let mut toks = Vec::new();
    for name in ["alice", "bob"] {
        let r =
            admin.post(format!("{base}/api/v1/users")).json(&serde_json::json!({"name": name})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["role"], "developer");
        toks.push(Http::new(&d, t["token"].as_str().unwrap()));
    }
    let (alice, bob) = (toks[0].clone(), toks[1].clone());
    let r =
        alice.post(format!("{base}/api/v1/users")).json(&serde_json::json!({"name": "mallory"})).send().await.unwrap();
    assert_eq!(r.status(), 403, "developers do not add users");
    let r = admin
        .post(format!("{base}/api/v1/users"))
        .json(&serde_json::json!({"name": "x", "role": "king"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Alice's slice: bob gets 403 on every verb, and does not see it listed.
    assert_eq!(alice.put(format!("{base}/api/v1/slices/red")).body(RED).send().await.unwrap().status(), 201);
    for r in [
        bob.get(format!("{base}/api/v1/slices/red")).send().await.unwrap(),
        bob.put(format!("{base}/api/v1/slices/red")).body(RED.replace("1Mbit", "2Mbit")).send().await.unwrap(),
        bob.put(format!("{base}/api/v1/slices/red?dry_run=true")).body(RED).send().await.unwrap(),
        bob.post(format!("{base}/api/v1/slices/red/renew")).body("{}").send().await.unwrap(),
        bob.delete(format!("{base}/api/v1/slices/red")).send().await.unwrap(),
    ] {
        assert_eq!(r.status(), 403);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["code"], "forbidden");
    }
    let list: Value = bob.get(format!("{base}/api/v1/slices")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list, serde_json::json!([]));
    let list: Value = admin.get(format!("{base}/api/v1/slices")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["owner"], "alice", "operators see every slice");
    let info: Value = alice.get(format!("{base}/api/v1/slices/red")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["spec"]["links"][0]["bandwidth"], "1Mbit", "bob changed nothing");
    // Dry run: admitted with a plan, nothing reserved.
    let before: Value = admin.get(format!("{base}/api/v1/substrate/usage")).send().await.unwrap().json().await.unwrap();
    let blue = RED.replace("name: red", "name: blue").replace("1Mbit", "600Mbit");
    let r = bob.put(format!("{base}/api/v1/slices/blue?dry_run=true")).body(blue.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let dr: Value = r.json().await.unwrap();
    assert_eq!((dr["admitted"].as_bool(), dr["action"].as_str()), (Some(true), Some("create")));
    assert_eq!(dr["plan"]["links"][0]["reserved"], 600_000_000);
    let after: Value = admin.get(format!("{base}/api/v1/substrate/usage")).send().await.unwrap().json().await.unwrap();
    assert_eq!(before, after, "a dry run reserves nothing");
    let r = bob.get(format!("{base}/api/v1/slices/blue")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Refusal explains which link and how much.
    let r =
        bob.put(format!("{base}/api/v1/slices/blue")).body(blue.replace("600Mbit", "1000Mbit")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["geni_code"], "INSUFFICIENT_BANDWIDTH");
    assert_eq!(e["reason"], "insufficient_bandwidth");
    let msg = e["errors"][0]["message"].as_str().unwrap();
    eprintln!("REFUSAL {msg}");
    assert!(msg.contains("999Mbit free, 1Gbit asked"), "{msg}");
    // Renew: within the maximum, and over it refused.
    let r = alice
        .post(format!("{base}/api/v1/slices/red/renew"))
        .json(&serde_json::json!({"seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let exp = r.json::<Value>().await.unwrap()["expires"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 3590..=now + 3610).contains(&exp));
    let r = alice
        .post(format!("{base}/api/v1/slices/red/renew"))
        .json(&serde_json::json!({"seconds": 99_999_999}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Revoked tokens stop working at once.
    let r = admin.delete(format!("{base}/api/v1/users/bob")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(bob.get(format!("{base}/api/v1/slices")).send().await.unwrap().status(), 401);
    // The operator deletes alice's slice.
    assert_eq!(admin.delete(format!("{base}/api/v1/slices/red")).send().await.unwrap().status(), 202);
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test]
async fn operator_supplied_certificate_is_served_and_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The operator's certificate (made here with rcgen; any PEM chain and key will do).
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    std::fs::write(d.join("op-cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(d.join("op-key.pem"), ck.signing_key.serialize_pem()).unwrap();
    let mut opts = netslice_manager::Options::new(
        "127.0.0.1:0".parse().unwrap(),
        d.join("m.db"),
        Some(Substrate::from_text(SUBSTRATE).unwrap()),
    );
    opts.tls = netslice_manager::CertSource::Files { cert: d.join("op-cert.pem"), key: d.join("op-key.pem") };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started = netslice_manager::start(opts, async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    assert_eq!(started.cert, d.join("op-cert.pem"));
    assert!(!d.join("tls").exists(), "no self-signed certificate when the operator gives one");
    let serve = started.serve;
    let h = tokio::spawn(async move { serve.await.unwrap() });
    let base = format!("https://{}", started.addr);
    let token = std::fs::read_to_string(d.join("operator.token")).unwrap();
    let pinned = netslice_api::http::client(Some(&d.join("op-cert.pem")), Duration::from_secs(3)).unwrap();
    let who: Value = pinned
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["role"], "operator");
    // A client pinning some other certificate refuses the connection.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(d.join("other.pem"), other.cert.pem()).unwrap();
    let wrong = netslice_api::http::client(Some(&d.join("other.pem")), Duration::from_secs(3)).unwrap();
    assert!(wrong.get(format!("{base}/healthz")).send().await.is_err(), "an unknown certificate must be refused");
    // The manager keeps serving after a failed handshake.
    assert!(pinned.get(format!("{base}/healthz")).send().await.unwrap().status().is_success());
    let _ = tx.send(());
    h.await.unwrap();
}

/// Asserts `r` is a problem document (RFC 9457) for `path` with `status`,
/// and returns it.
async fn problem(r: reqwest::Response, status: u16, path: &str) -> Value {
    assert_eq!(r.status(), status, "{path}");
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "{path}");
    let p: Value = r.json().await.unwrap();
    let code = p["code"].as_str().unwrap_or_else(|| panic!("{path}: {p}")).to_string();
    assert_eq!(p["type"], format!("/problems/{code}"), "{path}: {p}");
    assert_eq!(p["status"], status, "{path}: {p}");
    assert_eq!(p["instance"], path, "{path}: {p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{path}: {p}");
    assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()), "{path}: {p}");
    p
}

/// Every route of the OpenAPI document, with every method it takes, is
/// tried with a bad query, a bad body, a body over the limit, no token and a
/// method it does not take: every refusal is a problem document with the
/// right status, `Allow` on 405 and `WWW-Authenticate` on 401.
#[tokio::test]
async fn every_error_is_a_problem_document() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c, stop, h, dir: d } = manager(dir.path()).await;
    assert_eq!(c.put(format!("{base}/api/v1/slices/red")).body(RED).send().await.unwrap().status(), 201);
    let doc: Value = c.inner.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    // The routes table (what 405 answers in Allow) is the document's.
    let table: Vec<&str> = netslice_manager::api::ROUTES.iter().map(|(p, _)| *p).collect();
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).chain(["/openapi.json"]).collect();
    documented.sort_unstable();
    let mut sorted = table.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, documented, "api::ROUTES and the OpenAPI document disagree");
    let anon = Http::new(&d, "");
    let mut tried = 0;
    for (template, item) in paths {
        let path = template
            .replace("{name}", "red")
            .replace("{host}", "h1")
            .replace("{code}", "not_found")
            .replace("{id}", "1");
        let path = if template.starts_with("/api/v1/users/") { path.replace("red", "admin") } else { path };
        let url = format!("{base}{path}");
        let methods: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        for m in &methods {
            let method = reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let op = &item[*m];
            let secured = op.get("security").is_some();
            // A parameter no route takes.
            let r = c.inner.request(method.clone(), format!("{url}?zzz=1")).bearer_auth(&c.token).send().await.unwrap();
            let p = problem(r, 400, &path).await;
            assert_eq!(p["code"], "invalid", "{m} {path}: {p}");
            if secured {
                // No token; a wrong one.
                let r = anon.inner.request(method.clone(), &url).send().await.unwrap();
                let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
                problem(r, 401, &path).await;
                assert!(www.is_some_and(|w| w.starts_with("Bearer")), "{m} {path}");
                let r = c.inner.request(method.clone(), &url).bearer_auth("nope").send().await.unwrap();
                let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap();
                assert!(www.contains("invalid_token"), "{m} {path}: {www}");
                problem(r, 401, &path).await;
            }
            if op.get("requestBody").is_some() {
                for (ct, body) in [("application/json", "{{{"), ("application/yaml", "a: [")] {
                    let r = c
                        .inner
                        .request(method.clone(), &url)
                        .bearer_auth(&c.token)
                        .header("content-type", ct)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    // Registration checks the enrollment token first.
                    let want = if path.ends_with("/register") { 401 } else { 400 };
                    problem(r, want, &path).await;
                }
                let big = "#".repeat(2 << 20);
                let r = c.inner.request(method.clone(), &url).bearer_auth(&c.token).body(big).send().await.unwrap();
                let want = if path.ends_with("/register") { 401 } else { 413 };
                problem(r, want, &path).await;
            }
            tried += 1;
        }
        // A method the path does not take.
        let allowed = netslice_manager::api::allowed(&path).unwrap();
        for m in ["PATCH", "PUT", "DELETE", "POST"] {
            if allowed.contains(m) {
                continue;
            }
            let r = c
                .inner
                .request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), &url)
                .bearer_auth(&c.token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.headers().get("allow").unwrap(), allowed, "{m} {path}");
            let p = problem(r, 405, &path).await;
            assert_eq!(p["code"], "method_not_allowed");
        }
    }
    assert!(tried >= 20, "only {tried} operations tried");
    // Unknown paths and problem types.
    problem(c.get(format!("{base}/api/v1/nope")).send().await.unwrap(), 404, "/api/v1/nope").await;
    problem(c.get(format!("{base}/api/v2/slices")).send().await.unwrap(), 404, "/api/v2/slices").await;
    let t: Value = c.get(format!("{base}/problems/precondition_failed")).send().await.unwrap().json().await.unwrap();
    assert_eq!((t["status"].as_u64(), t["code"].as_str()), (Some(412), Some("precondition_failed")));
    // Bad conditional headers.
    let r = c.put(format!("{base}/api/v1/slices/red")).header("if-match", "42").body(RED).send().await.unwrap();
    let p = problem(r, 400, "/api/v1/slices/red").await;
    assert_eq!(p["errors"][0]["field"], "If-Match");
    let _ = stop.send(());
    h.await.unwrap();
}

fn etag(r: &reqwest::Response) -> String {
    r.headers().get("etag").expect("an ETag").to_str().unwrap().to_string()
}

/// A writer holding an old revision changes nothing: every conditional
/// write with a stale `If-Match` gets 412 and the slice, its plan and the
/// substrate's reservations stay as they were.
#[tokio::test]
async fn a_stale_if_match_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c, stop, h, .. } = manager(dir.path()).await;
    let url = format!("{base}/api/v1/slices/red");
    // Create: 201, Location, ETag.
    let r = c.put(url.clone()).header("if-none-match", "*").body(RED).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("location").unwrap(), "/api/v1/slices/red");
    let first = etag(&r);
    assert_eq!(first, "\"1\"");
    // Create-only again: 412.
    let r = c.put(url.clone()).header("if-none-match", "*").body(RED).send().await.unwrap();
    problem(r, 412, "/api/v1/slices/red").await;
    // A conditional update at the current revision: applied, new ETag.
    let faster = RED.replace("1Mbit", "2Mbit");
    let r = c.put(url.clone()).header("if-match", &first).body(faster.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let second = etag(&r);
    assert_ne!(second, first);
    // The GET agrees, and If-None-Match with it is a 304.
    let r = c.get(url.clone()).send().await.unwrap();
    assert_eq!(etag(&r), second);
    let r = c.get(url.clone()).header("if-none-match", &second).send().await.unwrap();
    assert_eq!(r.status(), 304);
    // Every write with the stale tag: 412, nothing changes.
    let before: (Value, Value) = (
        c.get(url.clone()).send().await.unwrap().json().await.unwrap(),
        c.get(format!("{base}/api/v1/substrate/usage")).send().await.unwrap().json().await.unwrap(),
    );
    let stale = [
        c.put(url.clone()).header("if-match", &first).body(RED.replace("1Mbit", "3Mbit")).send().await.unwrap(),
        c.put(format!("{url}?dry_run=true")).header("if-match", &first).body(RED).send().await.unwrap(),
        c.post(format!("{url}/renew")).header("if-match", &first).body("{}").send().await.unwrap(),
        c.delete(url.clone()).header("if-match", &first).send().await.unwrap(),
        c.delete(url.clone()).header("if-match", "W/\"2\"").send().await.unwrap(),
    ];
    for r in stale {
        let path = r.url().path().to_string();
        let p = problem(r, 412, &path).await;
        assert!(p["detail"].as_str().unwrap().contains("read it again"), "{p}");
    }
    let after: (Value, Value) = (
        c.get(url.clone()).send().await.unwrap().json().await.unwrap(),
        c.get(format!("{base}/api/v1/substrate/usage")).send().await.unwrap().json().await.unwrap(),
    );
    assert_eq!(before, after, "a refused conditional write changed something");
    // If-Match on a slice that does not exist.
    let r = c
        .put(format!("{base}/api/v1/slices/blue"))
        .header("if-match", "*")
        .body(RED.replace("name: red", "name: blue"))
        .send()
        .await
        .unwrap();
    problem(r, 412, "/api/v1/slices/blue").await;
    // The typed client says the same.
    let client =
        netslice_api::Client::new(&base, Some(&dir.path().join("tls/cert.pem")), Some(c.token.clone())).unwrap();
    let e = client.apply_if("red", RED.to_string(), false, Some(1)).await.unwrap_err();
    assert_eq!(e.status(), Some(412), "{e}");
    // Renew at the current revision moves it; delete at the new one: 202.
    let r = c.post(format!("{url}/renew")).header("if-match", &second).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let third = etag(&r);
    assert_ne!(third, second, "a renewal is a change of the slice");
    let e = client.delete_slice_if("red", Some(2)).await.unwrap_err();
    assert_eq!(e.status(), Some(412));
    let rev: u64 = third.trim_matches('"').parse().unwrap();
    let deleted = client.delete_slice_if("red", Some(rev)).await.unwrap();
    assert!(deleted.revision > rev);
    let _ = stop.send(());
    h.await.unwrap();
}

/// `GET /api/v1/slices/{name}?watch=true` long-polls: nothing moves, 204
/// after the wait; a change wakes it at once with the new revision; a
/// deletion too.
#[tokio::test]
async fn a_slice_watch_wakes_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c, stop, h, .. } = manager(dir.path()).await;
    let client =
        netslice_api::Client::new(&base, Some(&dir.path().join("tls/cert.pem")), Some(c.token.clone())).unwrap();
    let info = match client.apply("red", RED.to_string(), false).await.unwrap() {
        netslice_api::Applied::Done { info, .. } => info,
        other => panic!("{other:?}"),
    };
    let t = std::time::Instant::now();
    let none = client.watch_slice("red", info.revision, Some(info.state), Duration::from_secs(1)).await.unwrap();
    assert!(none.is_none());
    assert!(t.elapsed() >= Duration::from_millis(900), "answered before the wait");
    // The state it has differs from the one given: answered at once.
    let now = client
        .watch_slice("red", info.revision, Some(netslice_model::api::SliceState::Ready), Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.state, info.state);
    let w = tokio::spawn({
        let client = client.clone();
        let rev = info.revision;
        async move { client.watch_slice("red", rev, None, Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    client.apply("red", RED.replace("1Mbit", "5Mbit"), false).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), w).await.unwrap().unwrap().unwrap().unwrap();
    assert!(woke.revision > info.revision);
    assert!(t.elapsed() < Duration::from_secs(2), "the watch was not woken by the change");
    let w = tokio::spawn({
        let client = client.clone();
        let rev = woke.revision;
        async move { client.watch_slice("red", rev, None, Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.delete_slice("red").await.unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(5), w).await.unwrap().unwrap().unwrap().unwrap();
    assert_eq!(gone.state, netslice_model::api::SliceState::Deleting);
    // Watch parameters without watch=true are refused.
    let r = c.get(format!("{base}/api/v1/slices/red?after=3")).send().await.unwrap();
    problem(r, 400, "/api/v1/slices/red").await;
    let r = c.get(format!("{base}/api/v1/slices/red?watch=true&state=bogus")).send().await.unwrap();
    problem(r, 400, "/api/v1/slices/red").await;
    // Users are listed for operators.
    let users = client.users().await.unwrap();
    assert_eq!(users.iter().map(|u| (u.name.as_str(), u.role.as_str())).collect::<Vec<_>>(), [("admin", "operator")]);
    let _ = stop.send(());
    h.await.unwrap();
}

/// The document describes what the API does: query parameters are in the
/// query (a generated SDK puts them where the server reads them), every path
/// parameter is in its template, an apply's 200 is a bare `SliceInfo` or
/// `DryRun` as sent, and every API call may answer 500 and 503.
#[tokio::test]
async fn the_document_says_what_the_api_does() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c, stop, h, .. } = manager(dir.path()).await;
    let doc: Value = c.inner.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str().unwrap() {
                    "path" => assert!(template.contains(&format!("{{{name}}}")), "{m} {template}: {p}"),
                    "query" | "header" => {}
                    other => panic!("{m} {template}: parameter {name} in {other}"),
                }
            }
            if template.starts_with("/api/") {
                for code in ["400", "500", "503"] {
                    assert!(op["responses"][code].is_object(), "{m} {template} declares no {code}");
                }
            }
        }
    }
    let query = |path: &str, m: &str| -> Vec<String> {
        doc["paths"][path][m]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(query("/api/v1/slices/{name}", "put"), ["dry_run"]);
    let watch = query("/api/v1/slices/{name}", "get");
    assert!(["watch", "after", "state", "wait"].iter().all(|q| watch.iter().any(|w| w == q)), "{watch:?}");
    // PUT's 200: one of the two bodies, unwrapped.
    let ok = &doc["paths"]["/api/v1/slices/{name}"]["put"]["responses"]["200"]["content"]["application/json"]["schema"];
    let ok = match ok["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => ok,
    };
    let s = ok.to_string();
    assert!(s.contains("#/components/schemas/SliceInfo") && s.contains("#/components/schemas/DryRun"), "{ok}");
    assert!(!s.contains("\"Slice\"") && !s.contains("\"DryRun\":"), "wrapped variants: {ok}");
    // And the bodies are what it says: the dry run's fields at the top.
    let r = c.put(format!("{base}/api/v1/slices/red?dry_run=true")).body(RED).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["admitted"] == true && v["plan"].is_object(), "{v}");
    stop.send(()).unwrap();
    h.await.unwrap();
}

/// What the CLI refuses before asking (a probe with a filter or a capture)
/// the server refuses too, naming the field, and creates nothing.
#[tokio::test]
async fn probe_requests_are_checked_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let Mgr { base, c, stop, h, .. } = manager(dir.path()).await;
    let r = c.put(format!("{base}/api/v1/slices/red")).body(RED).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let probe = serde_json::json!({"slice": "red", "points": ["l@a", "l@b"], "duration": "5s", "probe": {"rate": 100}});
    let with = |k: &str, v: Value| {
        let mut p = probe.clone();
        p[k] = v;
        p
    };
    for (body, field) in [
        (with("filter", "udp".into()), "filter"),
        (with("capture", true.into()), "capture"),
        (with("capture_bytes", 1000.into()), "capture_bytes"),
        (with("direction", "forward".into()), "direction"),
        (with("interval", "1s".into()), "interval"),
        (with("reflect", true.into()), "reflect"),
        (with("points", serde_json::json!(["l@a"])), "points"),
        (with("points", serde_json::json!(["l/h1", "l@b"])), "points[0]"),
        (with("probe", serde_json::json!({"rate": 0})), "probe.rate"),
        (with("probe", serde_json::json!({"rate": 100, "reflector": "nobody"})), "probe"),
    ] {
        let r = c.post(format!("{base}/api/v1/measurements")).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let e: Value = r.json().await.unwrap();
        assert!((400..500).contains(&status), "{body} was accepted: {e}");
        assert!(e.to_string().contains(field), "{body}: the error should name {field}: {e}");
    }
    let list: Value = c.get(format!("{base}/api/v1/measurements")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list, Value::Array(vec![]), "refused requests created nothing");
    // The probe as asked is made; a reflector job too.
    let r = c.post(format!("{base}/api/v1/measurements")).json(&probe).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let reflect = serde_json::json!({"slice": "red", "points": ["l@b"], "duration": "5s", "reflect": true});
    let r = c.post(format!("{base}/api/v1/measurements")).json(&reflect).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = c.post(format!("{base}/api/v1/measurements")).json(&reflect).send().await.unwrap();
    assert_eq!(r.status(), 409, "a second reflector job at l@b: {}", r.text().await.unwrap());
    let _ = stop.send(());
    h.await.unwrap();
}
