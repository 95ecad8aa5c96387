//! An old database opens: `tests/data/store-schema3.db` was written by the
//! manager at commit aaab2f5 (schema 3, plans without a record version; see
//! `tests/data/store-schema3.md`). This manager migrates it, reads every
//! slice, plan, owner, lease and token back, leaves the stored records as
//! they were, and keeps working on it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use netslice_dataplane::Registry;
use netslice_manager::{Core, Policy, Precondition};
use netslice_model::SliceSpec;
use netslice_model::api::SliceState;
use rusqlite::Connection;

const ADMIN: &str = "91170085eca11c7c255bb3659bcfb276ac6608d2225d61d587084830c7f5094a";
const CAROL: &str = "cf287adfde28491c8185c811b41e399a1805d25db81525a261f2b146c1e447f1";

/// A copy of the fixture (the checked-in file is never opened for writing).
fn fixture(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-schema3.db");
    let db = dir.join("m.db");
    std::fs::copy(src, &db).unwrap();
    db
}

fn raw_rows(db: &Path) -> Vec<(String, String, String)> {
    let c = Connection::open(db).unwrap();
    let mut st = c.prepare("SELECT name, spec, plan FROM slices ORDER BY name").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

fn now() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

fn open(db: &Path) -> Core {
    Core::open(db, None, Arc::new(Registry::builtin()), Policy::default(), now()).unwrap()
}

#[test]
fn a_schema_3_database_opens_with_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path());
    let before = raw_rows(&db);
    let core = open(&db);
    let s = core.snapshot();

    assert_eq!(s.revision(), 4);
    assert_eq!(s.substrate().name, "example");
    let admin = s.authenticate(ADMIN).expect("the old operator token still works");
    assert!(admin.is_operator());
    let carol = s.authenticate(CAROL).expect("the old developer token still works");
    assert_eq!((carol.user(), carol.is_operator()), (Some("carol"), false));

    let list: Vec<_> = s.slice_list(now(), &admin).into_iter().map(|x| (x.name, x.owner, x.revision)).collect();
    assert_eq!(
        list,
        [("blue".into(), "admin".into(), 3), ("green".into(), "carol".into(), 4), ("red".into(), "admin".into(), 1)]
    );
    // Carol sees only her own.
    assert_eq!(s.slice_list(now(), &carol).len(), 1);

    let red = s.slice_info(now(), "red", &admin).unwrap();
    assert_eq!(red.spec, SliceSpec::from_text(include_str!("data/red-schema3.yaml")).unwrap());
    let a = red.plan.node("a").unwrap();
    assert_eq!((a.host.as_str(), a.netns.as_deref(), a.cpu_milli), ("h1", Some("example.red.a"), 500));
    assert_eq!(a.interfaces[0].mac.to_string(), "02:03:4e:72:31:b4");
    let ab = red.plan.link("ab").unwrap();
    assert_eq!(ab.path, ["h1", "t1", "h2"]);
    assert_eq!((ab.forward_labels.as_slice(), ab.reverse_labels.as_slice()), (&[16, 16][..], &[16, 17][..]));
    assert_eq!(ab.reserved, 1_000_000_000);
    assert_eq!(ab.hop_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(), ["gre", "gre"]);

    let blue = s.slice_info(now(), "blue", &admin).unwrap();
    assert_eq!(blue.state, SliceState::Deleting);

    let green = s.slice_info(now(), "green", &carol).unwrap();
    assert_eq!(green.plan.cpus, [1]);
    assert_eq!(green.spec.qos.as_ref().unwrap().weight, 3);
    let sw = green.plan.node("sw").unwrap();
    assert_eq!((sw.netns.as_deref(), sw.cpu_milli), (None, 10), "a fast-path node, as stored");
    assert!(green.expires > green.created + 47 * 3600);

    drop((s, core));
    assert_eq!(raw_rows(&db), before, "opening rewrote stored records");
    let c = Connection::open(&db).unwrap();
    let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 5, "every migration ran");
    let versions: Vec<i64> = c
        .prepare("SELECT plan_version FROM slices")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions, [1, 1, 1]);
}

#[test]
fn an_upgraded_database_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path());
    let mut s = open(&db);
    let carol = s.snapshot().authenticate(CAROL).unwrap();
    // Carol's slice changes in place: what stays keeps its placement.
    let mut spec = s.snapshot().slice_info(now(), "green", &carol).unwrap().spec;
    let old_plan = s.snapshot().slice_info(now(), "green", &carol).unwrap().plan;
    spec.description = Some("renamed".into());
    spec.links[0].bandwidth = "20Mbit".parse().unwrap();
    s.apply(now(), spec, Precondition::None, &carol, false).unwrap();
    let new = s.snapshot().slice_info(now(), "green", &carol).unwrap();
    assert_eq!(new.plan.nodes, old_plan.nodes);
    assert_eq!(new.plan.link("xs").unwrap().forward_labels, old_plan.link("xs").unwrap().forward_labels);
    assert_eq!(new.revision, 5);
    // A new slice fits beside the old ones (their reservations were read back).
    let admin = s.snapshot().authenticate(ADMIN).unwrap();
    let spec = SliceSpec::from_text("name: teal\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h3}\nlinks:\n  - {name: l, bandwidth: 1Mbit, endpoints: [{node: a}, {node: b}]}\n").unwrap();
    s.apply(now(), spec, Precondition::Create, &admin, false).unwrap();
    drop(s);
    let s = open(&db).snapshot();
    assert_eq!(s.revision(), 6);
    assert_eq!(s.slice_info(now(), "green", &carol).unwrap().spec.description.as_deref(), Some("renamed"));
    assert!(s.slice_info(now(), "teal", &admin).is_ok());
}
