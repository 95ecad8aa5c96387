//! The REST API over real HTTP against a real manager (no root needed).

use std::time::Duration;

use netslice_model::Substrate;
use serde_json::Value;

const SUBSTRATE: &str = "name: lab\nhosts:\n  - {name: h1, role: vnode}\n  - {name: h2, role: vnode}\nlinks:\n  - {endpoints: [h1, h2], bandwidth: 1Gbit}\n";
const RED: &str = "name: red\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h2}\nlinks:\n  - {name: l, bandwidth: 1Mbit, endpoints: [{node: a, address: 10.0.0.1/24}, {node: b, address: 10.0.0.2/24}]}\n";

async fn manager(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let opts = netslice_manager::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: dir.join("m.db"),
        substrate: Some(Substrate::from_text(SUBSTRATE).unwrap()),
    };
    let (addr, serve) = netslice_manager::start(opts, async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    let h = tokio::spawn(async move {
        serve.await.unwrap();
    });
    (format!("http://{addr}"), tx, h)
}

#[tokio::test]
async fn api_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (base, stop, h) = manager(dir.path()).await;
    let c = reqwest::Client::new();

    let doc: Value = c.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
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
    let cfg: Value =
        c.get(format!("{base}/api/v1/nodes/h1/config?after=0&wait=1")).send().await.unwrap().json().await.unwrap();
    let rev = cfg["revision"].as_u64().unwrap();
    let epoch = cfg["epoch"].as_str().unwrap().to_string();
    assert_eq!(cfg["slivers"][0]["netns"], "lab.red.a");
    let r = c.get(format!("{base}/api/v1/nodes/h1/config?after={rev}&epoch={epoch}&wait=1")).send().await.unwrap();
    assert_eq!(r.status(), 204, "no change within the wait");
    // A waiting watcher is woken by a change.
    let watch = tokio::spawn({
        let (c, base, epoch) = (c.clone(), base.clone(), epoch.clone());
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
    assert_eq!(r.status(), 404);
    let r = c.get(format!("{base}/api/v1/nodes/h9/config")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let _ = stop.send(());
    h.await.unwrap();
}
