//! House rules checked by machine (docs/architecture.md, "House rules"):
//! crates depend only on crates of lower layers, as the document lists them;
//! no two files of a crate refer to each other, directly or around a circle.
//! No root, no network: `cargo metadata --offline` and the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The layers docs/architecture.md documents: the fenced block after the
/// line `<!-- crate-layers -->`, one `N: crate, crate` line per layer.
fn documented_layers() -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let block = doc.split("<!-- crate-layers -->").nth(1).expect("docs/architecture.md lists the crate layers");
    let block = block.split("```").nth(1).expect("a fenced block after the marker");
    let mut layers = BTreeMap::new();
    for line in block.lines().filter(|l| l.contains(':')) {
        let (n, crates) = line.split_once(':').unwrap();
        let Ok(n) = n.trim().parse::<u32>() else { continue };
        for c in crates.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            layers.insert(c.to_string(), n);
        }
    }
    layers
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let layers = documented_layers();
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: BTreeSet<String> =
        meta["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    let mut wrong = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(&mine) = layers.get(name) else {
            wrong.push(format!("{name} is in no documented layer"));
            continue;
        };
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            // Only normal dependencies: a test may use a crate of any layer
            // (a benchmark starts the manager it measures, say).
            if !members.contains(dep) || !d["kind"].is_null() {
                continue;
            }
            match layers.get(dep) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => wrong.push(format!("{name} (layer {mine}) depends on {dep} (layer {theirs})")),
                None => wrong.push(format!("{dep} is in no documented layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "against the documented direction:\n{}", wrong.join("\n"));
}

/// A source file with comments removed (doc links name items that are
/// not dependencies), up to its unit tests (an inline test module's
/// `super::` is the file itself).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect();
    let mut end = lines.len();
    for (i, l) in lines.iter().enumerate() {
        let next = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.is_empty()).unwrap_or("");
        if l.trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            end = i;
            break;
        }
    }
    lines[..end].join("\n")
}

/// The module tree of one crate: module path -> file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(Vec::<String>::new(), src.join("lib.rs"))];
    while let Some((path, file)) = todo.pop() {
        let code = code_of(&file);
        let dir = if file.ends_with("lib.rs") || file.ends_with("mod.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for line in code.lines() {
            let l = line.trim();
            let l = l.trim_start_matches("pub(crate) ").trim_start_matches("pub ");
            let Some(rest) = l.strip_prefix("mod ") else { continue };
            let Some(name) = rest.strip_suffix(';') else { continue };
            let child =
                [dir.join(format!("{name}.rs")), dir.join(name).join("mod.rs")].into_iter().find(|p| p.exists());
            if let Some(child) = child {
                let mut p = path.clone();
                p.push(name.to_string());
                todo.push((p, child));
            }
        }
        out.insert(path, file);
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// A use tree after its prefix: `a::b`, `a::{b, c::{d, e}}`, each leaf
/// path pushed with `segs` in front; returns the rest of the text.
fn use_tree<'a>(mut s: &'a str, segs: &[String], out: &mut Vec<Vec<String>>) -> &'a str {
    let mut segs = segs.to_vec();
    loop {
        s = s.trim_start();
        if let Some(group) = s.strip_prefix('{') {
            let mut rest = group;
            loop {
                rest = use_tree(rest, &segs, out).trim_start();
                match rest.chars().next() {
                    Some(',') => rest = &rest[1..],
                    Some('}') => return &rest[1..],
                    _ => return rest,
                }
                if rest.trim_start().starts_with('}') {
                    return &rest.trim_start()[1..];
                }
            }
        }
        let id = ident(s);
        if id.is_empty() {
            out.push(segs);
            return s;
        }
        segs.push(id.to_string());
        s = &s[id.len()..];
        match s.strip_prefix("::") {
            Some(more) => s = more,
            None => {
                out.push(segs);
                return s;
            }
        }
    }
}

/// The paths in `code` of module `module` that name modules of the crate:
/// after `crate::`, `super::` and `self::`, and bare paths that start with
/// one of the module's children (`child::f()`, `use child::X`).
fn references(code: &str, module: &[String], children: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let parent = module[..module.len().saturating_sub(1)].to_vec();
    let starts = [("crate::", Vec::new()), ("super::", parent), ("self::", module.to_vec())];
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        // Only at the start of a path: not inside an identifier or after `::`.
        let at_start = i == 0 || {
            let p = bytes[i - 1];
            !(p.is_ascii_alphanumeric() || p == b'_' || p == b':')
        };
        if at_start && code.is_char_boundary(i) {
            let rest = &code[i..];
            if let Some((prefix, base)) = starts.iter().find(|(p, _)| rest.starts_with(p)) {
                use_tree(&rest[prefix.len()..], base, &mut out);
                i += prefix.len();
                continue;
            }
            let id = ident(rest);
            if !id.is_empty() && children.iter().any(|c| c == id) && rest[id.len()..].starts_with("::") {
                let mut base = module.to_vec();
                base.push(id.to_string());
                use_tree(&rest[id.len() + 2..], &base, &mut out);
            }
        }
        i += 1;
    }
    out
}

/// The file a path refers into: the deepest module it names, or, for an
/// item of a module re-exported there (`pub use x::Item`), the module it
/// comes from.
fn target(
    path: &[String],
    mods: &BTreeMap<Vec<String>, PathBuf>,
    reexports: &BTreeMap<(Vec<String>, String), Vec<String>>,
) -> Vec<String> {
    let mut m: Vec<String> = Vec::new();
    for seg in path {
        let mut next = m.clone();
        next.push(seg.clone());
        if mods.contains_key(&next) {
            m = next;
            continue;
        }
        if let Some(from) = reexports.get(&(m.clone(), seg.clone())) {
            return from.clone();
        }
        break;
    }
    m
}

#[test]
fn no_crate_has_files_that_refer_to_each_other_in_a_circle() {
    let mut circles = Vec::new();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap().flatten() {
        let src = entry.path().join("src");
        if !src.join("lib.rs").exists() {
            continue;
        }
        let mods = modules(&src);
        // `pub use child::Item` in a module: Item is defined in child.
        let mut reexports: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
        for (m, file) in &mods {
            for line in code_of(file).lines() {
                let l = line.trim();
                let Some(u) = l.strip_prefix("pub use ").or_else(|| l.strip_prefix("pub(crate) use ")) else {
                    continue;
                };
                let child = ident(u.trim_start_matches("self::").trim_start_matches("crate::"));
                let mut cm = m.clone();
                cm.push(child.to_string());
                if !mods.contains_key(&cm) {
                    continue;
                }
                let items = u
                    .split_once('{')
                    .map(|(_, r)| r.split('}').next().unwrap_or(""))
                    .unwrap_or_else(|| u.rsplit("::").next().unwrap_or(""));
                for item in items.split(',') {
                    let name = ident(item.trim().rsplit("::").next().unwrap_or("").trim());
                    if !name.is_empty() {
                        reexports.insert((m.clone(), name.to_string()), cm.clone());
                    }
                }
            }
        }
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (m, file) in &mods {
            let code = code_of(file);
            let set = edges.entry(m.clone()).or_default();
            let children: Vec<String> = mods
                .keys()
                .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
                .map(|k| k[m.len()].clone())
                .collect();
            for r in references(&code, m, &children) {
                let t = target(&r, &mods, &reexports);
                if t != *m && !m.starts_with(&t) || (t != *m && t.is_empty() && !m.is_empty()) {
                    // A module using its ancestor's items depends on the ancestor.
                    set.insert(t);
                } else if t != *m && !t.starts_with(m) {
                    set.insert(t);
                }
            }
            // `pub use child::...` and plain `use child::...` from a parent.
            for line in code.lines() {
                let l = line.trim().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                if let Some(u) = l.strip_prefix("use ") {
                    let first = ident(u);
                    let mut cm = m.clone();
                    cm.push(first.to_string());
                    if mods.contains_key(&cm) {
                        set.insert(cm);
                    }
                }
            }
        }
        if std::env::var("HOUSE_RULES_EDGES").as_deref() == Ok(&*entry.file_name().to_string_lossy()) {
            for (m, to) in &edges {
                eprintln!("{m:?} -> {to:?}");
            }
        }
        // Any circle: a path from a module back to itself.
        for start in edges.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> = vec![(start.clone(), vec![start.clone()])];
            while let Some((at, trail)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == start {
                        let names: Vec<String> =
                            trail.iter().map(|m| if m.is_empty() { "lib".into() } else { m.join("::") }).collect();
                        circles.push(format!(
                            "{}: {} -> {}",
                            entry.file_name().to_string_lossy(),
                            names.join(" -> "),
                            names[0]
                        ));
                    } else if seen.insert(next.clone()) {
                        let mut t = trail.clone();
                        t.push(next.clone());
                        stack.push((next.clone(), t));
                    }
                }
            }
        }
    }
    circles.sort();
    circles.dedup();
    assert!(circles.is_empty(), "files that refer to each other in a circle:\n{}", circles.join("\n"));
}
