//! The management system as a real process: concurrent admission from many real
//! HTTPS clients (the CLI), `kill -9` in the middle of applies, restarts, leases.
//! No root needed: the manager runs on loopback without agents.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::mgr::*;
use common::*;

/// Checks that no host or link is overbooked and that the reservations equal
/// exactly what the listed slices' plans hold. Returns the slice names.
fn check_books(m: &Manager) -> Vec<String> {
    let usage = m.json(&["substrate", "show", "--json"]);
    let slices = m.json(&["slice", "list", "--json"]);
    let mut cpu = std::collections::BTreeMap::<String, u64>::new();
    let mut bw = std::collections::BTreeMap::<(String, String), u64>::new();
    let mut names = Vec::new();
    for s in slices.as_array().unwrap() {
        let name = s["name"].as_str().unwrap().to_string();
        if s["state"] == "deleting" {
            continue;
        }
        let info = m.json(&["slice", "show", &name, "--json"]);
        for n in info["plan"]["nodes"].as_array().unwrap() {
            *cpu.entry(n["host"].as_str().unwrap().into()).or_default() += n["cpu_milli"].as_u64().unwrap();
        }
        for l in info["plan"]["links"].as_array().unwrap() {
            let path: Vec<&str> = l["path"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
            for (i, u) in l["underlay"].as_array().unwrap().iter().enumerate() {
                for from in [path[i], path[i + 1]] {
                    *bw.entry((u.as_str().unwrap().into(), from.into())).or_default() +=
                        l["reserved"].as_u64().unwrap();
                }
            }
        }
        names.push(name);
    }
    for h in usage["hosts"].as_array().unwrap() {
        let name = h["name"].as_str().unwrap();
        let used = h["cpu_used"].as_f64().unwrap();
        assert!(used <= h["cpu"].as_f64().unwrap() + 1e-9, "host {name} overbooked: {h}");
        let expect = cpu.get(name).copied().unwrap_or(0) as f64 / 1000.0;
        assert!((used - expect).abs() < 1e-9, "host {name}: {used} cpu reserved, the slices hold {expect}");
    }
    for l in usage["links"].as_array().unwrap() {
        let (name, from) = (l["name"].as_str().unwrap().to_string(), l["from"].as_str().unwrap().to_string());
        let reserved = l["reserved"].as_u64().unwrap();
        assert!(reserved <= l["bandwidth"].as_u64().unwrap(), "link {name} from {from} overbooked: {l}");
        let expect = bw.get(&(name.clone(), from.clone())).copied().unwrap_or(0);
        assert_eq!(reserved, expect, "link {name} from {from}: reserved differs from what the slices hold");
    }
    names
}

#[test]
fn fifty_concurrent_applies_never_overbook() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    // Nearly full: a filler takes 70 of a-b's 100 Mbit/s and a core of a and b.
    let filler = dir.path().join("filler.yaml");
    std::fs::write(
        &filler,
        "name: filler\nnodes:\n  - {name: x, host: a, cpu: 1}\n  - {name: y, host: b, cpu: 1}\nlinks:\n  - {name: l, bandwidth: 70Mbit, endpoints: [{node: x}, {node: y}]}\n",
    )
    .unwrap();
    let out = run(&mut m.cli(&m.admin(), &["slice", "apply", "-f", filler.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    // 50 clients at once, each asking for two cores and 40 Mbit/s.
    let children: Vec<(String, Child)> = (0..50)
        .map(|i| {
            let name = format!("s{i:02}");
            let f = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&f, two_nodes(&name, "40Mbit")).unwrap();
            let c = m
                .cli(&m.admin(), &["slice", "apply", "-f", f.to_str().unwrap(), "--wait", "0"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (name, c)
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refusals = Vec::new();
    for (name, c) in children {
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            admitted.push(name);
        } else {
            refusals.push(String::from_utf8_lossy(&out.stderr).to_string());
        }
    }
    eprintln!("{} admitted, {} refused", admitted.len(), refusals.len());
    assert!(!admitted.is_empty(), "something fits");
    assert!(refusals.len() >= 40, "the substrate holds at most 7 more two-core slices");
    for r in &refusals {
        assert!(r.contains("INSUFFICIENT_"), "every refusal is an admission refusal with a reason: {r}");
    }
    let mut listed = check_books(&m);
    listed.retain(|n| n != "filler");
    assert_eq!(listed, admitted, "exactly the admitted slices exist");
    // The same books after a restart.
    let mut m = m;
    m.restart();
    let mut again = check_books(&m);
    again.retain(|n| n != "filler");
    assert_eq!(again, admitted);
}

#[test]
fn kill_9_during_applies_loses_nothing_committed_and_leaves_nothing_half_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Manager::start(dir.path(), &[]);
    let (mut cut_off, mut confirmed_total) = (0, 0);
    for round in 0..5u64 {
        // Half a core per node: all 24 two-node slices fit, so every failure
        // below is the kill, not a refusal.
        let children: Vec<(String, Child)> = (0..24)
            .map(|i| {
                let name = format!("r{round}s{i:02}");
                let f = dir.path().join(format!("{name}.yaml"));
                std::fs::write(&f, two_nodes(&name, "1Mbit").replace("cpu: 1", "cpu: 0.25")).unwrap();
                let c = m
                    .cli(&m.admin(), &["slice", "apply", "-f", f.to_str().unwrap(), "--wait", "0"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (name, c)
            })
            .collect();
        // Kill the manager while those requests are arriving.
        std::thread::sleep(Duration::from_millis(15 + 10 * round));
        m.kill9();
        let mut confirmed = Vec::new();
        for (name, c) in children {
            let out = c.wait_with_output().unwrap();
            if out.status.success() {
                confirmed.push(name);
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!err.contains("INSUFFICIENT"), "everything fits; only the kill may fail a request: {err}");
                cut_off += 1;
            }
        }
        confirmed_total += confirmed.len();
        m.restart();
        let listed = check_books(&m);
        for n in &confirmed {
            assert!(listed.contains(n), "slice {n} was confirmed to its client but is gone after kill -9");
        }
        eprintln!(
            "round {round}: {} confirmed before the kill, {} slices after restart",
            confirmed.len(),
            listed.len()
        );
        // Free everything for the next round (and check deletion releases exactly).
        for n in listed {
            let out = run(&mut m.cli(&m.admin(), &["slice", "delete", &n, "--wait", "0"]));
            assert!(out.status.success(), "{}", text(&out));
        }
        check_books(&m);
        let usage = m.json(&["substrate", "show", "--json"]);
        assert!(usage["links"].as_array().unwrap().iter().all(|l| l["reserved"] == 0), "{usage}");
        assert!(usage["hosts"].as_array().unwrap().iter().all(|h| h["cpu_used"] == 0.0), "{usage}");
    }
    eprintln!("{confirmed_total} applies confirmed, {cut_off} cut off by kill -9");
    assert!(cut_off > 0 && confirmed_total > 0, "the kills must land while applies are in flight");
    assert!(!m.log().contains("panicked"), "{}", m.log());
}

#[test]
fn developers_tokens_leases_and_dry_runs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &["--lease-default", "3s", "--lease-max", "1h"]);
    let admin = m.admin();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&admin).unwrap().permissions().mode() & 0o777, 0o600, "token file is private");
    let tok = |who: &str| {
        let f = dir.path().join(format!("{who}.token"));
        let out = run(&mut m.cli(&admin, &["user", "add", who, "--save-token", f.to_str().unwrap()]));
        assert!(out.status.success(), "{}", text(&out));
        f
    };
    let (alice, bob) = (tok("alice"), tok("bob"));
    let out = run(&mut m.cli(&alice, &["user", "add", "eve"]));
    assert!(!out.status.success() && text(&out).contains("only operators"), "{}", text(&out));
    let out = run(&mut m.cli(&alice, &["whoami"]));
    assert!(text(&out).contains("alice (developer)"), "{}", text(&out));

    let spec = dir.path().join("red.yaml");
    std::fs::write(&spec, two_nodes("red", "10Mbit")).unwrap();
    // Dry run: the plan, nothing reserved.
    let out = run(&mut m.cli(&alice, &["slice", "apply", "--dry-run", "-f", spec.to_str().unwrap()]));
    assert!(out.status.success() && text(&out).contains("would be admitted (create)"), "{}", text(&out));
    assert!(m.json(&["substrate", "show", "--json"])["links"].as_array().unwrap().iter().all(|l| l["reserved"] == 0));
    // A refusal names the resource, for the dry run and the real thing.
    let big = dir.path().join("big.yaml");
    std::fs::write(
        &big,
        "name: big\nnodes:\n  - {name: x, host: a, cpu: 4}\n  - {name: y, host: b, cpu: 5}\nlinks:\n  - {name: l, bandwidth: 1Mbit, endpoints: [{node: x}, {node: y}]}\n",
    )
    .unwrap();
    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["slice", "apply", "-f", big.to_str().unwrap(), "--wait", "0"];
        args.extend_from_slice(extra);
        let out = run(&mut m.cli(&alice, &args));
        let t = text(&out);
        assert!(!out.status.success(), "{t}");
        assert!(t.contains("no host with 5 cpu free among [b] (pinned)"), "{t}");
        assert!(t.contains("INSUFFICIENT_NODES"), "{t}");
    }
    let wide = dir.path().join("wide.yaml");
    std::fs::write(&wide, two_nodes("wide", "150Mbit")).unwrap();
    let out = run(&mut m.cli(&alice, &["slice", "apply", "-f", wide.to_str().unwrap(), "--wait", "0"]));
    assert!(
        text(&out).contains("100Mbit free, 150Mbit asked") && text(&out).contains("INSUFFICIENT_BANDWIDTH"),
        "{}",
        text(&out)
    );

    let out = run(&mut m.cli(&alice, &["slice", "apply", "-f", spec.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    // Bob neither sees nor touches it.
    let out = run(&mut m.cli(&bob, &["slice", "list"]));
    assert!(text(&out).contains("no slices"), "{}", text(&out));
    for args in [&["slice", "show", "red"][..], &["slice", "delete", "red", "--wait", "0"], &["slice", "renew", "red"]]
    {
        let out = run(&mut m.cli(&bob, args));
        assert!(!out.status.success() && text(&out).contains("belongs to another user"), "{args:?}: {}", text(&out));
    }
    // Renew keeps it past the 3 s default lease; without renewal the lease ends
    // and housekeeping deletes it, releasing everything.
    let out = run(&mut m.cli(&alice, &["slice", "renew", "red", "--for", "2h"]));
    assert!(!out.status.success() && text(&out).contains("operator's maximum"), "over the 1h maximum: {}", text(&out));
    let out = run(&mut m.cli(&alice, &["slice", "renew", "red", "--for", "8s"]));
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_secs(4));
    assert!(check_books(&m).contains(&"red".to_string()), "renewed past the default lease");
    let start = Instant::now();
    wait_until("the lease of red ends", Duration::from_secs(15), || {
        m.json(&["slice", "list", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "red" || s["state"] == "deleting")
    });
    eprintln!("lease ended {:?} after the check", start.elapsed());
    assert!(m.json(&["substrate", "show", "--json"])["links"].as_array().unwrap().iter().all(|l| l["reserved"] == 0));
    assert!(m.log().contains("lease of slice red ended"), "{}", m.log());
    // Revoked: the token stops working.
    let out = run(&mut m.cli(&admin, &["user", "revoke", "bob"]));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&mut m.cli(&bob, &["slice", "list"]));
    assert!(!out.status.success() && text(&out).contains("unknown or revoked token"), "{}", text(&out));
}

/// Issue 16: `slice get -o yaml` gives back what `slice apply -f` takes, so
/// applying it again changes nothing (the revision stays); `-o name` and
/// `-o json` are for scripts; `--if-revision` refuses a stale change.
#[test]
fn a_slice_read_as_yaml_applies_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let admin = m.admin();
    let spec = dir.path().join("red.yaml");
    std::fs::write(&spec, two_nodes("red", "10Mbit")).unwrap();
    let out = run(&mut m.cli(&admin, &["slice", "apply", "-f", spec.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    // Every optional field a spec can carry comes back as it went in.
    let rich = dir.path().join("rich.yaml");
    std::fs::write(
        &rich,
        "name: rich\nlease: 48h\nshare_hosts: false\nqos: {weight: 2}\nnodes:\n  - {name: a, host: a, cpu: 1, memory: 512Mi, ip_forward: true, routes: [{to: 10.8.0.0/24, via: 10.9.0.2}]}\n  - {name: b, type: l2switch, params: {max_entries: 64}}\n  - {name: c, cpu: 0.25}\nlinks:\n  - {name: ab, type: vxlan, bandwidth: 2Mbit, ceiling: 5Mbit, burst: 64Ki, mtu: 1400, endpoints: [{node: a, interface: eth3, addresses: [10.9.0.1/24, \"fd00::1/64\"]}, {node: b}]}\n  - {name: bc, bandwidth: 1Mbit, isolation: policed, endpoints: [{node: b}, {node: c, address: 10.9.0.3/24}]}\n",
    )
    .unwrap();
    let out = run(&mut m.cli(&admin, &["slice", "apply", "-f", rich.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    let got = run(&mut m.cli(&admin, &["slice", "get", "rich", "-o", "yaml"]));
    assert!(got.status.success(), "{}", text(&got));
    let back = dir.path().join("rich-back.yaml");
    std::fs::write(&back, &got.stdout).unwrap();
    let out = run(&mut m.cli(&admin, &["slice", "apply", "-f", back.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success() && text(&out).contains("unchanged (revision"), "{}", text(&out));
    let got = run(&mut m.cli(&admin, &["slice", "get", "red", "-o", "yaml"]));
    assert!(got.status.success(), "{}", text(&got));
    let yaml = String::from_utf8(got.stdout).unwrap();
    assert!(yaml.starts_with("# slice red at revision 1"), "{yaml}");
    let back = dir.path().join("back.yaml");
    std::fs::write(&back, &yaml).unwrap();
    let out = run(&mut m.cli(&admin, &["slice", "apply", "-f", back.to_str().unwrap(), "--wait", "0"]));
    assert!(out.status.success() && text(&out).contains("unchanged (revision 1)"), "{}", text(&out));
    assert_eq!(m.json(&["slice", "get", "red", "-o", "json"])["revision"], 1);
    let out = run(&mut m.cli(&admin, &["slice", "list", "-o", "name"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "red\nrich\n", "{}", text(&out));
    // A change on top of a revision that is no longer current is refused
    // and changes nothing.
    std::fs::write(&spec, two_nodes("red", "20Mbit")).unwrap();
    let out =
        run(&mut m.cli(&admin, &["slice", "apply", "-f", spec.to_str().unwrap(), "--if-revision", "7", "--wait", "0"]));
    assert!(!out.status.success() && text(&out).contains("revision"), "{}", text(&out));
    assert_eq!(m.json(&["slice", "get", "red", "-o", "json"])["revision"], 1);
    let out =
        run(&mut m.cli(&admin, &["slice", "apply", "-f", spec.to_str().unwrap(), "--if-revision", "1", "--wait", "0"]));
    assert!(out.status.success(), "{}", text(&out));
    // Revisions are the manager's (global): red 1, rich 2, now red 3.
    assert_eq!(m.json(&["slice", "get", "red", "-o", "json"])["revision"], 3);
}

/// Issue 16: the manager writes one access line per API request, naming the
/// caller, the status and the problem code of a refusal, and never the token.
#[test]
fn every_request_leaves_an_access_line_naming_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let admin = m.admin();
    let out = run(&mut m.cli(&admin, &["slice", "list"]));
    assert!(out.status.success(), "{}", text(&out));
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "not-a-token-0123456789").unwrap();
    let out = run(&mut m.cli(&bad, &["slice", "list"]));
    assert!(!out.status.success(), "{}", text(&out));
    let secret = std::fs::read_to_string(&admin).unwrap();
    let mut lines = Vec::new();
    wait_until("two access lines", Duration::from_secs(5), || {
        let log = m.log();
        lines = log
            .lines()
            .filter(|l| l.contains("path=/api/v1/slices") && l.contains("method=GET"))
            .map(String::from)
            .collect();
        lines.len() >= 2
    });
    assert!(
        lines
            .iter()
            .any(|l| l.contains("status=200") && l.contains("caller=user:admin") && l.contains("peer=127.0.0.1:")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("status=401") && l.contains("caller=-") && l.contains("problem=invalid_token")),
        "{lines:#?}"
    );
    let log = m.log();
    assert!(!log.contains(secret.trim()) && !log.contains("not-a-token-0123456789"), "a token in the log");
    // Not a terminal: no colour codes.
    assert!(!log.contains('\x1b'), "ANSI codes in a log file: {log}");

    // --log-format json: one object per line, the same fields.
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &["--log-format", "json"]);
    let out = run(&mut m.cli(&m.admin(), &["slice", "list"]));
    assert!(out.status.success(), "{}", text(&out));
    let mut access = Vec::new();
    wait_until("a JSON access line", Duration::from_secs(5), || {
        let log = m.log();
        let lines: Vec<serde_json::Value> =
            log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
        access = lines.into_iter().filter(|v| v["target"] == "netslice::access").collect();
        !access.is_empty()
    });
    let a = &access[0];
    assert!(a["caller"] == "user:admin" && a["status"] == 200 && a["path"] == "/api/v1/slices", "{a}");
}

/// Issue 16: `user list` in each format, shell completions and man pages
/// made from the command definitions.
#[test]
fn users_are_listed_and_completions_and_man_pages_are_made() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::start(dir.path(), &[]);
    let admin = m.admin();
    let out = run(&mut m.cli(&admin, &["user", "add", "a-rather-long-user-name-for-tab"]));
    assert!(out.status.success(), "{}", text(&out));
    let users = m.json(&["user", "list", "-o", "json"]);
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-rather-long-user-name-for-tab", "admin"], "{users}");
    let out = run(&mut m.cli(&admin, &["user", "list"]));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("ROLE") && lines.len() == 3, "{table}");
    // The columns stay aligned under a long name.
    let col = lines[0].find("ROLE").unwrap();
    assert!(
        lines[1..].iter().all(|l| l[col..].starts_with("developer") || l[col..].starts_with("operator")),
        "{table}"
    );
    let out = run(&mut m.cli(&admin, &["user", "list", "-o", "name"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a-rather-long-user-name-for-tab\nadmin\n");

    let out = run(std::process::Command::new(EXE).args(["completions", "bash"]));
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && script.contains("_netslice") && script.contains("apply"), "{}", text(&out));
    let man = dir.path().join("man");
    let out = run(std::process::Command::new(EXE).args(["man", man.to_str().unwrap()]));
    assert!(out.status.success(), "{}", text(&out));
    for page in ["netslice.1", "netslice-slice.1", "netslice-slice-apply.1", "netslice-user-list.1"] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}: {text}");
    }
}
