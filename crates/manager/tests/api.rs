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
    assert_eq!(r.status(), 200);
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), watch).await.unwrap().unwrap(), 200);
    let r = c.delete(format!("{base}/api/v1/slices/red")).send().await.unwrap();
    assert_eq!(r.status(), 200, "deleting a slice that is being deleted is a no-op");
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
    assert_eq!(admin.delete(format!("{base}/api/v1/slices/red")).send().await.unwrap().status(), 200);
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
